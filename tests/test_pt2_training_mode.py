"""A .pt2 exported in training mode is refused in one line that says to export after .eval(); an eval-mode one
is not called "converted in training mode" by LiteRT."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from mobiledeploy.cli import main
from mobiledeploy.exporters.eval_mode import training_ops

pytestmark = pytest.mark.timeout(900)


class Net(torch.nn.Module):
    """Conv + batch norm + dropout: the two layers that compute differently in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, 1, 1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.relu(self.bn(self.conv(x))).mean((2, 3))))


def _program(train: bool, layers: str = "both") -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    net = Net()
    if layers == "bn":
        net.drop = torch.nn.Identity()
    elif layers == "dropout":
        net.bn = torch.nn.Identity()
    net.train(train)
    return torch.export.export(net, (torch.randn(2, 3, 16, 16),), strict=False)


def _save(prog: torch.export.ExportedProgram, path: Path) -> Path:
    torch.export.save(prog, str(path))
    return path


@pytest.mark.parametrize("layers,needle", [("both", "batch norm on batch statistics"), ("bn", "batch norm"),
                                           ("dropout", "active dropout")])
def test_a_training_mode_pt2_is_refused_in_one_line(layers, needle, tmp_path, capsys):
    pt2 = _save(_program(train=True, layers=layers), tmp_path / "trained.pt2")
    rc = main(["export", str(pt2), "-t", "onnx,tflite", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err  # once for the model, not once per target, and no traceback
    assert "training mode" in lines[0] and needle in lines[0] and "export it after .eval()" in lines[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_training_ops_are_found_before_and_after_decomposition():
    for prog in (_program(train=True), _program(train=True).run_decompositions()):
        kinds = sorted(what for _, what in training_ops(prog))
        assert kinds == ["active dropout", "batch norm on batch statistics"], kinds
    for prog in (_program(train=False), _program(train=False).run_decompositions()):
        assert training_ops(prog) == []


def test_an_eval_mode_pt2_exports_without_the_training_mode_warning(tmp_path, capsys, caplog):
    pt2 = _save(_program(train=False), tmp_path / "net.pt2")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        rc = main(["export", str(pt2), "-t", "tflite", "--batch", "2", "--out", str(out), "--json"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    said = [r.getMessage() for r in caplog.records] + [capsys.readouterr().err]
    assert not [s for s in said if "training mode" in s], said
    m = json.loads(next(out.glob("*.tflite.json")).read_text())
    assert m["verified"] is True
