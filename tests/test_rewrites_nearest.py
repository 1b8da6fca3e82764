"""Graph rewrites on synthetic torch.export programs: bit-exact against PyTorch, no fractional resize left."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobiledeploy.exporters.rewrites import RewriteContext, apply_rewrites, get_rewrite, list_rewrites
from mobiledeploy.exporters.rewrites.nearest import plan
from mobiledeploy.exporters.rewrites.static_shapes import symbolic_dims

aten = torch.ops.aten
NEAREST = {aten.upsample_nearest2d.vec, aten.upsample_nearest2d.default, aten._upsample_nearest_exact2d.vec,
           aten._upsample_nearest_exact2d.default}


class Resize(torch.nn.Module):
    """A DFC-style gate: sigmoid, nearest resize to a size or by a scale, multiply."""

    def __init__(self, size=None, scale=None, mode="nearest"):
        super().__init__()
        self.size, self.scale, self.mode = size, scale, mode

    def forward(self, x):
        g = torch.sigmoid(x)
        if self.scale is not None:
            return F.interpolate(g, scale_factor=self.scale, mode=self.mode) * 3.0
        return F.interpolate(g, size=self.size, mode=self.mode) * 3.0


def _rewrite(model, x, names=("static_shapes", "alias_cleanup", "exact_nearest_upsample")):
    ep = torch.export.export(model, (x,), strict=False)
    return apply_rewrites(ep, names, RewriteContext((x,)))


def _resizes(ep):
    return [n for n in ep.graph.nodes if n.op == "call_function" and n.target in NEAREST]


def test_registry_lists_the_passes():
    assert {"static_shapes", "alias_cleanup", "exact_nearest_upsample"} <= set(list_rewrites())
    assert get_rewrite("exact_nearest_upsample").doc


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("src,dst", [
    ((3, 3), (7, 7)),      # GhostNetV2's DFC gate at 224 (odd)
    ((4, 4), (9, 9)),      # odd, from an even map
    ((5, 6), (11, 13)),    # odd, non-square
    ((3, 5), (7, 10)),     # one odd axis, one 2x axis
    ((4, 3), (8, 6)),      # even: integer 2x, kept as is
    ((6, 6), (7, 7)),      # barely larger
    ((7, 7), (3, 3)),      # downsampling
    ((2, 3), (7, 5)),      # factors 3.5 and 1.67
    ((5, 5), (5, 5)),      # identity
])
def test_rewrite_is_bit_exact(src, dst, mode):
    x = torch.randn(2, 5, *src)
    model = Resize(size=dst, mode=mode).eval()
    ep, applied = _rewrite(model, x)
    assert torch.equal(ep.module()(x), model(x))
    for node in _resizes(ep):
        # Whatever resize is left is a plain integer multiple: every runtime computes it the same way.
        assert node.target in (aten.upsample_nearest2d.vec, aten.upsample_nearest2d.default)
        (hi, wi), (ho, wo) = node.args[0].meta["val"].shape[-2:], node.meta["val"].shape[-2:]
        assert ho % hi == 0 and wo % wi == 0
    integer = all(d % s == 0 for s, d in zip(src, dst)) and dst[0] // src[0] == dst[1] // src[1]
    if mode == "nearest" and integer and src != dst:
        assert applied == []  # already exact on every runtime: left alone
    else:
        assert [a["name"] for a in applied if a["name"] == "exact_nearest_upsample"]


@pytest.mark.parametrize("scale", [2.5, 1.7, 3.0, 0.6])
def test_scale_factor_resizes_follow_pytorchs_rule(scale):
    # With scale_factor PyTorch samples floor(dst / scale), not floor(dst * in / out).
    x = torch.randn(1, 2, 5, 7)
    model = Resize(scale=scale).eval()
    ep, _ = _rewrite(model, x)
    assert torch.equal(ep.module()(x), model(x))


def test_odd_from_half_is_double_then_repeat_first():
    # FINDINGS: floor-nearest k → 2k+1 equals a 2x upsample with the first row repeated once.
    for k in range(2, 120):  # k = 1 is a plain 3x
        idx = [(d * k) // (2 * k + 1) for d in range(2 * k + 1)]
        q, pieces = plan(idx, k)
        assert q == 2 and pieces == [(0, 1, 1), (0, 2 * k, 1)], k


def test_alias_cleanup_removes_whole_tensor_slices():
    class Ghost(torch.nn.Module):
        def forward(self, x):
            y = torch.cat([x, x * 2], 1)
            return y[:, : y.shape[1]] + 1  # the no-op slice GhostNet's `out[:, :out_chs]` traces to

    x = torch.randn(1, 3, 4, 4)
    ep = torch.export.export(Ghost(), (x,), strict=False)
    before = [n for n in ep.graph.nodes if n.target in (aten.alias.default, aten.slice.Tensor)]
    assert before
    ep, applied = apply_rewrites(ep, ["alias_cleanup"], RewriteContext((x,)))
    assert applied[0]["changed"] == len(before)
    assert not [n for n in ep.graph.nodes if n.target in (aten.alias.default, aten.slice.Tensor)]
    assert torch.equal(ep.module()(x), Ghost()(x))


def test_static_shapes_specialises_a_dynamic_program():
    model = Resize(size=(7, 7)).eval()
    x = torch.randn(2, 4, 3, 3)
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", max=64)},), strict=False)
    assert symbolic_dims(ep) == 1
    ep, applied = apply_rewrites(ep, ["static_shapes", "exact_nearest_upsample"], RewriteContext((x,)))
    assert symbolic_dims(ep) == 0 and applied[0] == {**applied[0], "name": "static_shapes", "changed": 1}
    assert torch.equal(ep.module()(x), model(x))


def test_rewritten_graph_keeps_source_lines():
    ep, _ = _rewrite(Resize(size=(7, 7)).eval(), torch.randn(1, 2, 3, 3))
    new = [n for n in ep.graph.nodes if n.target in (aten.slice.Tensor, aten.cat.default)]
    assert new and all("interpolate" in (n.meta.get("stack_trace") or "") for n in new)
