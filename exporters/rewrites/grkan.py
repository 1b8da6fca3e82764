"""GR-KAN lowering: the `mobiledeploy::grkan_fwd` custom op (Triton in training) → elementwise ATen ops.

y = P(x)/Q(x) per channel group, P and Q in Horner form: mul/add, one abs, one division, computed in
fp32 even for fp16 inputs (P overflows fp16 long before the result does). Every target has these ops.
"""

from __future__ import annotations

import torch

from . import RewriteContext, register_rewrite
from ._graph import finished, insert, replace, val

aten = torch.ops.aten
OP_NAME = "mobiledeploy.grkan_fwd.default"


def _lower(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node:
    x, num, den = node.args[:3]
    xv, dv = val(x), val(den)
    groups, chans = int(dv.shape[0]), int(xv.shape[-1])

    def op(target, *args):
        return insert(graph, node, target, args, node)

    dtype = xv.dtype
    if dtype not in (torch.float32, torch.float64):
        x = insert(graph, node, aten._to_copy.default, (x,), node, {"dtype": torch.float32})
    xg = op(aten.view.default, x, [*xv.shape[:-1], groups, chans // groups])
    a = op(aten.view.default, num, [6])
    b = op(aten.unsqueeze.default, op(aten.abs.default, den), -1)  # (G, 4, 1)
    ak = [op(aten.select.int, a, 0, k) for k in range(6)]
    bk = [op(aten.select.int, b, 1, k) for k in range(4)]
    p = op(aten.add.Tensor, op(aten.mul.Tensor, ak[5], xg), ak[4])
    for k in (3, 2, 1, 0):
        p = op(aten.add.Tensor, op(aten.mul.Tensor, p, xg), ak[k])
    ax = op(aten.abs.default, xg)
    q = op(aten.add.Tensor, op(aten.mul.Tensor, bk[3], ax), bk[2])
    for k in (1, 0):
        q = op(aten.add.Tensor, op(aten.mul.Tensor, q, ax), bk[k])
    q = op(aten.add.Tensor, op(aten.mul.Tensor, q, ax), 1.0)
    y = op(aten.view.default, op(aten.div.Tensor, p, q), list(xv.shape))
    if dtype not in (torch.float32, torch.float64):
        y = insert(graph, node, aten._to_copy.default, (y,), node, {"dtype": dtype})
    return y


@register_rewrite("grkan_lowering")
def grkan_lowering(program: torch.export.ExportedProgram, ctx: RewriteContext) -> tuple[torch.export.ExportedProgram, int]:
    """GR-KAN custom ops become Horner-form mul/add, abs and one division (fp32 inside)."""
    graph = program.graph_module.graph
    nodes = [n for n in graph.nodes if n.op == "call_function" and str(n.target) == OP_NAME]
    for node in nodes:
        replace(graph, node, _lower(graph, node))
    return finished(program, len(nodes))
