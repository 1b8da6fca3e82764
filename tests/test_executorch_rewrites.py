"""The ExecuTorch rewrites on synthetic graphs: the two nearest ops, where the pass fires, bit-exactness, undo."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites
from mobiledeploy.exporters.rewrites.nearest_gate import GATE_MUL, REPEAT, nearest_gate_mul, nearest_repeat, restore_aten

aten = torch.ops.aten
PASSES = (*GENERIC, "xnnpack_nearest_gate", "hardsigmoid_float_scalars")


class Gate(torch.nn.Module):
    """GhostNetV2's DFC gate pattern: x * nearest_resize(sigmoid(pool-sized map), x's size)."""

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * F.interpolate(torch.sigmoid(g), size=x.shape[-2:], mode="nearest")


class ResizeAdd(torch.nn.Module):
    """A resize that feeds an add, not a multiply: it must be materialised."""

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x + F.interpolate(g, size=x.shape[-2:], mode="nearest")


class BroadcastMul(torch.nn.Module):
    """A multiply whose other operand broadcasts: folding the resize into it would change the shape."""

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * F.interpolate(g, scale_factor=2.0, mode="nearest")


def _rewrite(module: torch.nn.Module, *inputs: torch.Tensor) -> tuple[torch.export.ExportedProgram, list]:
    ep = torch.export.export(module.eval(), inputs)
    return apply_rewrites(ep, PASSES, RewriteContext(inputs, "executorch"))


def _targets(ep: torch.export.ExportedProgram) -> list:
    return [n.target for n in ep.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("x_shape,g_shape", [((1, 8, 14, 14), (1, 8, 7, 7)), ((2, 5, 12, 9), (2, 5, 4, 3)),
                                             ((1, 3, 6, 8), (1, 3, 6, 4))])
def test_ops_equal_pytorch_bit_for_bit(x_shape, g_shape):
    x, g = torch.randn(x_shape), torch.randn(g_shape)
    up = F.interpolate(g, size=x_shape[-2:], mode="nearest")
    assert torch.equal(nearest_gate_mul(x, g), x * up)
    qh, qw = x_shape[2] // g_shape[2], x_shape[3] // g_shape[3]
    assert torch.equal(nearest_repeat(g, qh, qw), up)


@pytest.mark.parametrize("size,pooled", [(14, 7), (16, 8), (12, 6)])
def test_gate_becomes_one_op_and_stays_exact(size, pooled):
    x, g = torch.randn(1, 6, size, size), torch.randn(1, 6, pooled, pooled)
    ep, applied = _rewrite(Gate(), x, g)
    targets = _targets(ep)
    assert GATE_MUL in targets and REPEAT not in targets
    assert not any(t in (aten.upsample_nearest2d.vec, aten.upsample_nearest2d.default, aten.mul.Tensor) for t in targets)
    assert any(a["name"] == "xnnpack_nearest_gate" for a in applied)
    assert torch.equal(ep.module()(x, g), Gate()(x, g))


@pytest.mark.parametrize("size,pooled", [(7, 3), (15, 7), (13, 6)])
def test_odd_dfc_maps_repeat_then_slices_exact(size, pooled):
    """3→7 and 7→15 are not integer factors: exact_nearest gives a 2x resize + slices, which becomes the repeat op."""
    x, g = torch.randn(1, 4, size, size), torch.randn(1, 4, pooled, pooled)
    ep, _ = _rewrite(Gate(), x, g)
    targets = _targets(ep)
    assert REPEAT in targets and GATE_MUL not in targets
    assert aten.upsample_nearest2d.vec not in targets
    assert torch.equal(ep.module()(x, g), Gate()(x, g))


def test_resize_into_add_is_materialised_exactly():
    x, g = torch.randn(1, 4, 12, 12), torch.randn(1, 4, 4, 6)  # factors 3 and 2
    ep, _ = _rewrite(ResizeAdd(), x, g)
    assert REPEAT in _targets(ep) and GATE_MUL not in _targets(ep)
    assert torch.equal(ep.module()(x, g), ResizeAdd()(x, g))


def test_broadcasting_multiply_is_not_folded():
    x, g = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)
    ep, _ = _rewrite(BroadcastMul(), x, g)
    targets = _targets(ep)
    assert GATE_MUL not in targets and aten.mul.Tensor in targets
    assert torch.equal(ep.module()(x, g), BroadcastMul()(x, g))


def test_restore_aten_round_trip():
    x, g = torch.randn(1, 6, 15, 15), torch.randn(1, 6, 7, 7)
    ep, _ = _rewrite(Gate(), x, g)
    before = ep.module()(x, g)
    ep, n = restore_aten(ep)
    assert n >= 1
    targets = _targets(ep)
    assert GATE_MUL not in targets and REPEAT not in targets
    assert torch.equal(ep.module()(x, g), before)


def test_hardsigmoid_float_scalars_bit_exact():
    m = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1), torch.nn.Hardsigmoid()).eval()
    x = torch.randn(2, 4, 5, 5) * 4
    ep, applied = _rewrite(m, x)
    assert aten.hardsigmoid.default not in _targets(ep)
    assert any(a["name"] == "hardsigmoid_float_scalars" for a in applied)
    # Float scalars only: no integer constant the edge dialect would have to cast at run time.
    ops = (aten.add.Tensor, aten.clamp.default, aten.div.Tensor)
    scalars = [a for n in ep.graph.nodes if n.op == "call_function" and n.target in ops for a in n.args
               if isinstance(a, (int, float)) and not isinstance(a, bool)]
    assert scalars and all(isinstance(a, float) for a in scalars)
    assert torch.equal(ep.module()(x), m(x))
