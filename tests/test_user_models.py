"""A user's own model: several outputs (tuple, dict, nested) on every target, and converter failures that
name the user's op, one line per target, without stopping the other targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from mobiledeploy.cli import main

pytest.importorskip("coremltools")
pytest.importorskip("litert_torch")


class Detector(nn.Module):
    """A detection-style head: per-location class scores and boxes, returned as `kind` asks."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.cls = nn.Conv2d(8, 5, 1)
        self.box = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor):
        f = self.body(x)
        scores = self.cls(f).flatten(2).transpose(1, 2)  # (1, N, 5)
        boxes = self.box(f).flatten(2).transpose(1, 2)  # (1, N, 4): a small output beside a larger one
        if self.kind == "tuple":
            return scores, boxes
        if self.kind == "dict":
            return {"scores": scores, "boxes": boxes}
        return {"det": (scores, boxes), "feat": f.mean((2, 3))}


class Svd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(self.conv(x))[1]


class Fft(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(self.conv(x)).abs()


def _pt2(module: nn.Module, path: Path, shape=(1, 3, 40, 36)) -> Path:
    ep = torch.export.export(module.eval(), (torch.randn(*shape),))
    torch.export.save(ep, str(path))
    return path


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("kind, names", [("tuple", ["output_0", "output_1"]), ("dict", ["scores", "boxes"]),
                                         ("nested", ["det_0", "det_1", "feat"])])
def test_every_output_on_every_target_named_alike(kind, names, tmp_path, capsys):
    pt2 = _pt2(Detector(kind), tmp_path / f"{kind}.pt2")
    targets = ["onnx", "tflite", "coreml", "executorch"]
    rc, out, err = _run(["export", str(pt2), "-t", ",".join(targets), "--out", str(tmp_path / "o"), "--json"],
                        capsys)
    assert rc == 0, err
    manifests = json.loads(out)
    assert [m["target"] for m in manifests] == targets
    for m in manifests:
        assert [o["name"] for o in m["outputs"]] == names, m["target"]
        assert m["verified"] and m["parity"]["rel_l2"] <= 1e-5
        # Each output is judged on its own: its figures are in the manifest, by name.
        assert list(m["parity"]["outputs"]) == names
        assert all(f["rel_l2"] <= 1e-5 for f in m["parity"]["outputs"].values())
    # A .pte does not name its outputs: the runtime takes the names the export recorded, so a later verify
    # compares each output under the name every other target uses.
    rc, out, err = _run(["verify", str(tmp_path / "o" / f"{kind}.pte"), "--json"], capsys)
    assert rc == 0, err
    assert list(json.loads(out)["parity"]["outputs"]) == names


def test_unnamed_outputs_take_the_manifests_names_only_when_they_fit(tmp_path):
    """A .pte runner names outputs from the manifest beside it when it lists as many, else by position."""
    from mobiledeploy.devicebench.runtime import recorded_output_names

    art = tmp_path / "det.pte"
    assert recorded_output_names(str(art), 2) == ["output_0", "output_1"]  # no manifest
    Path(str(art) + ".json").write_text(json.dumps({"outputs": [{"name": "scores"}, {"name": "boxes"}]}))
    assert recorded_output_names(str(art), 2) == ["scores", "boxes"]
    assert recorded_output_names(str(art), 1) == ["output"]  # a manifest of another program: not its names
    Path(str(art) + ".json").write_text("not json")
    assert recorded_output_names(str(art), 2) == ["output_0", "output_1"]


def test_a_wrong_small_output_is_not_hidden_by_a_large_one():
    """Compared as one concatenated vector, a tiny output's 100 % error would vanish in a large output's norm."""
    from mobiledeploy.exporters.parity import compare

    big = [torch.randn(1, 1000).numpy() * 100, torch.randn(1, 4).numpy()]
    got = [big[0], -big[1]]
    m = compare(big, got, ["scores", "boxes"])
    assert m["outputs"]["scores"]["rel_l2"] == 0 and m["outputs"]["boxes"]["rel_l2"] == pytest.approx(2.0)
    assert m["rel_l2"] == pytest.approx(2.0)


def test_converter_failures_are_one_line_each_and_name_the_users_op(tmp_path, capsys):
    pt2 = _pt2(Svd(), tmp_path / "svd.pt2")
    rc, out, err = _run(["export", str(pt2), "-t", "onnx,tflite,coreml", "--out", str(tmp_path / "o")], capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(lines) == 3, err
    for target, line in zip(("onnx", "tflite", "coreml"), lines):
        assert f"the {target} converter cannot take op aten::linalg_svd" in line
        assert f"{Path(__file__).name}:" in line and "torch.linalg.svd(self.conv(x))" in line
    assert "Traceback" not in err


def test_an_op_executorch_lowers_but_its_runtime_lacks_is_one_line(tmp_path, capsys):
    """ExecuTorch lowers svd to a portable-kernel call its runtime has no kernel for: the method fails to load
    at the parity check, which must say which op, in one line, and write nothing (it was a traceback)."""
    pytest.importorskip("executorch")
    pt2 = _pt2(Svd(), tmp_path / "svd.pt2")
    rc, out, err = _run(["export", str(pt2), "-t", "executorch", "--out", str(tmp_path / "o")], capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "aten::_linalg_svd" in lines[0] and "no kernel" in lines[0]
    assert "[operator_registry.cpp:" not in err  # the registry's kernel dump is said in that one line
    assert not list((tmp_path / "o").glob("*.pte"))


def test_a_decomposed_op_is_named_as_the_user_wrote_it_and_the_others_still_export(tmp_path, capsys):
    pt2 = _pt2(Fft(), tmp_path / "fft.pt2")
    rc, out, err = _run(["export", str(pt2), "-t", "onnx,tflite", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "Traceback" not in err
    assert (tmp_path / "o" / "fft.onnx").is_file() and "fft.onnx" in out  # the table is printed
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "the tflite converter cannot take op aten::fft_rfft2" in line and "decomposition" not in line
    assert "torch.fft.rfft2(self.conv(x))" in line
