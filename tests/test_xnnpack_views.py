"""A ViT in one ExecuTorch XNNPACK piece: q/k/v unbind, matmul, LayerNorm and the class token rewritten
(exporters/rewrites/xnnpack_views.py), GR-KAN's coefficients folded; exact against PyTorch."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("executorch", reason="the executorch extra is not installed")

from test_executorch_target import REL_L2, check_export  # noqa: E402

from mobiledeploy.exporters import executorch as ET  # noqa: E402
from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites  # noqa: E402
from mobiledeploy.models.kat import KAT  # noqa: E402


def small_kat() -> torch.nn.Module:
    torch.manual_seed(0)
    return KAT(48, 2, 3, img_size=32, num_classes=10).eval()  # 2 blocks, 5 tokens, GR-KAN MLPs


def test_kat_one_piece_every_node_delegated_and_exact(tmp_path):
    r = check_export(small_kat(), (32, 32), tmp_path)
    assert r["partitions"] == 1 and r["undelegated_ops"] == {}, r
    assert r["delegated_nodes"] == r["total_nodes"] > 50
    assert r["rel_l2"] <= REL_L2, r


def test_without_the_rewrite_the_vit_ops_stay_outside(tmp_path):
    """The rewrite is what does it: ExecuTorch's partitioner alone leaves these ops to portable kernels."""
    x = torch.randn(1, 3, 32, 32)
    ep = torch.export.export(small_kat(), (x,))
    others = tuple(n for n in ET.REWRITES if n != "xnnpack_views")
    ep, _ = apply_rewrites(ep, (*GENERIC, *others), RewriteContext((x,), "executorch"))
    info = ET.convert(ep, (x,), "fp32", tmp_path / "plain.pte")["extra"]
    left = set(info["undelegated_ops"])
    assert info["partitions"] > 1
    assert {"aten_native_layer_norm_default", "aten_squeeze_copy_dims", "aten_expand_copy_default"} <= left, left


@pytest.mark.parametrize("shape_a,shape_b", [((2, 3, 5, 4), (2, 3, 4, 6)), ((3, 5, 4), (3, 4, 2))])
def test_matmul_and_layer_norm_rewrites_match_pytorch(shape_a, shape_b):
    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(shape_b[-1])

        def forward(self, a, b):
            q, k = torch.stack([a, a * 2]).unbind(0)
            return self.norm((q + k) @ b)[..., 0]

    torch.manual_seed(0)
    m = M().eval()
    a, b = torch.randn(shape_a), torch.randn(shape_b)
    ep = torch.export.export(m, (a, b))
    ep, applied = apply_rewrites(ep, ("xnnpack_views",), RewriteContext((a, b), "executorch"))
    assert applied and applied[0]["changed"] >= 4
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not targets & {"aten.layer_norm.default", "aten.unbind.int", "aten.matmul.default", "aten.select.int"}
    got, ref = ep.module()(a, b), m(a, b)
    assert torch.linalg.norm(got - ref) / torch.linalg.norm(ref) < 1e-6
