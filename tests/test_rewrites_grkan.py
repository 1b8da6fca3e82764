"""GR-KAN lowering: a program holding the Triton-backed custom op becomes plain ops, exact, and exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobiledeploy.exporters.rewrites import RewriteContext, apply_rewrites
from mobiledeploy.models.grkan.op import grkan
from mobiledeploy.models.grkan.reference import grkan_reference

SWISH_A = [3.0549e-7, 0.50000079, 0.24999783, 0.05326628, 0.00580303, 0.00027520]


class KanMLP(torch.nn.Module):
    """fc → GR-KAN (8 groups, swish init with random denominators) → fc, through the custom op."""

    def __init__(self, dim=32, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = torch.nn.Linear(dim, dim).to(dtype)
        self.numerator = torch.nn.Parameter(torch.tensor(SWISH_A, dtype=dtype).view(1, 6))
        self.denominator = torch.nn.Parameter((0.1 * torch.randn(8, 4, generator=g)).to(dtype))
        self.out = torch.nn.Linear(dim, 10).to(dtype)

    def forward(self, x):
        return self.out(grkan(self.fc(x), self.numerator, self.denominator))


def _ops(ep):
    return {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_custom_op_is_lowered_exactly(dtype):
    model = KanMLP(dtype=dtype).eval()
    x = (3 * torch.randn(2, 5, 32)).to(dtype)
    ep = torch.export.export(model, (x,), strict=False)
    assert "mobiledeploy.grkan_fwd.default" in _ops(ep)
    ep, applied = apply_rewrites(ep, ["grkan_lowering"], RewriteContext((x,)))
    assert applied[0]["changed"] == 1 and not any("grkan" in o for o in _ops(ep))
    assert {"aten.abs.default", "aten.div.Tensor"} <= _ops(ep)
    h = model.fc(x)
    want = model.out(grkan_reference(h, model.numerator, model.denominator))
    assert torch.equal(ep.module()(x), want)  # same ops in the same order: bit for bit


def test_lowered_program_runs_on_onnxruntime(tmp_path):
    from mobiledeploy.exporters.rewrites import GENERIC
    from mobiledeploy.devicebench.runners import run_artifact
    from mobiledeploy.exporters.targets import ExportRequest, get_target

    model = KanMLP().eval()
    x = 3 * torch.randn(1, 7, 32)
    ep = torch.export.export(model, (x,), strict=False)
    ep, _ = apply_rewrites(ep, GENERIC, RewriteContext((x,)))
    res = get_target("onnx").convert(ExportRequest("kan", ep, model, (x,), tmp_path / "kan.onnx"))
    y = run_artifact(tmp_path / "kan.onnx", {"input": x.numpy()})["output"]
    ref = model(x).detach().numpy()
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-6
    assert res.outputs[0]["shape"] == [1, 7, 10]
