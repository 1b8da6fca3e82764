"""Every nearest resize (integer or not, up or down, square or not) is exact on LiteRT and stays in ONE XNNPACK partition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.timeout(900)

# (input H, W) → output sizes in turn: the user's 7→13→112, downsizing, odd and unequal factors, integer ones.
CHAINS = [
    ((7, 7), [(13, 13), (112, 112)]),
    ((13, 13), [(7, 7), (5, 9)]),
    ((9, 5), [(20, 11), (8, 8)]),
    ((6, 10), [(15, 7), (45, 14)]),
    ((12, 12), [(5, 5), (25, 25)]),
    ((10, 10), [(5, 5), (3, 7)]),
    ((4, 6), [(8, 18), (16, 9)]),
]


class Resizes(torch.nn.Module):
    """x·2 → nearest resize → +1 → … : every op is exact in fp32, so the artifact must equal PyTorch bit for bit."""

    def __init__(self, sizes: list[tuple[int, int]]) -> None:
        super().__init__()
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        for hw in self.sizes:
            y = F.interpolate(y, size=hw, mode="nearest") + 1.0
        return y


def _tflite(model: torch.nn.Module, x: torch.Tensor, path: Path) -> list[dict]:
    """The model through our torch.export rewrites, litert-torch and the .tflite target's flatbuffer passes."""
    import litert_torch

    from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites
    from mobiledeploy.exporters.tflite import FB_PASSES
    from mobiledeploy.exporters.tflite_flatbuffer import run_fb_passes

    prog, _ = apply_rewrites(torch.export.export(model, (x,), strict=False), GENERIC, RewriteContext((x,), "tflite"))
    edge = litert_torch.convert(prog.module(), (x,))
    data = edge.model_content() if callable(getattr(edge, "model_content", None)) else edge.model_content
    data, applied = run_fb_passes(bytes(data), FB_PASSES)
    path.write_bytes(data)
    return applied


@pytest.mark.parametrize("start,sizes", CHAINS, ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else
                         "-".join("x".join(map(str, s)) for s in v))
def test_nearest_resizes_are_exact_and_one_partition(start, sizes, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from mobiledeploy.exporters.tflite import delegate_report

    model = Resizes(sizes).eval()
    x = torch.randn(1, 3, *start, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "resizes.tflite"
    _tflite(model, x, path)
    report = delegate_report(path)
    assert report["partitions"] == 1 and report["undelegated_ops"] == [], report
    assert report["delegated_nodes"] == report["total_nodes"]
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    (name, spec), = runner.get_input_details().items()
    assert list(spec["shape"]) == list(x.shape)
    (got,) = runner(**{name: x.numpy()}).values()
    want = model(x).numpy()
    assert got.shape == want.shape and np.array_equal(got, want), float(np.abs(got - want).max())


def test_wide_concatenations_are_split_for_xnnpack(tmp_path):
    """A user's own 9-way concat (not a resize) is also kept inside the delegate, values unchanged."""
    from ai_edge_litert.interpreter import Interpreter

    from mobiledeploy.exporters.tflite import delegate_report
    from mobiledeploy.exporters.tflite_flatbuffer import CONCAT_MAX_INPUTS, load, op_name

    class Cat(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x * float(i) for i in range(9)], dim=1)

    x = torch.randn(1, 3, 5, 5)
    applied = _tflite(Cat().eval(), x, tmp_path / "cat.tflite")
    assert "split_wide_concatenations" in {a["name"] for a in applied}
    m = load((tmp_path / "cat.tflite").read_bytes())
    widths = [len(op.inputs) for op in m.subgraphs[0].operators if op_name(m, op) == "CONCATENATION"]
    assert widths and max(widths) <= CONCAT_MAX_INPUTS
    assert delegate_report(tmp_path / "cat.tflite")["partitions"] == 1
    runner = Interpreter(model_path=str(tmp_path / "cat.tflite")).get_signature_runner()
    (name, _), = runner.get_input_details().items()
    (got,) = runner(**{name: x.numpy()}).values()
    assert np.array_equal(got, Cat()(x).numpy())


class UserCNN(torch.nn.Module):
    """The issue's model: a CNN whose decoder resizes 7→13 and 13→112 (nearest)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, 4, 1))
        self.mid = torch.nn.Conv2d(16, 16, 3, 1, 1)
        self.out = torch.nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = torch.relu(self.enc(x))  # 112 → 7
        y = torch.relu(self.mid(F.interpolate(y, size=(13, 13), mode="nearest")))
        return self.out(F.interpolate(y, size=(112, 112), mode="nearest"))


def test_the_users_pt2_exports_verified_in_one_partition(tmp_path, capsys):
    from mobiledeploy.cli import main

    torch.manual_seed(0)
    ep = torch.export.export(UserCNN().eval(), (torch.randn(1, 3, 112, 112),), strict=False)
    pt2 = tmp_path / "decoder.pt2"
    torch.export.save(ep, str(pt2))
    out = tmp_path / "out"
    rc = main(["export", str(pt2), "-t", "tflite", "--out", str(out), "--json"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    m = json.loads(next(out.glob("*.tflite.json")).read_text())
    assert m["verified"] is True and m["parity"]["rel_l2"] <= 1e-5
    info = m["target_info"]
    assert info["partitions"] == 1 and info["undelegated_ops"] == [], info
