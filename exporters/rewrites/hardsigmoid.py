"""hardsigmoid as add / clamp / div with float scalars, so that no constant crosses into a delegate at run time.

ExecuTorch's edge decomposition of `aten.hardsigmoid` writes `x + 3` and `/ 6` with int64 scalar tensors
and casts each to float32 with `_to_dim_order_copy`. XNNPACK's partitioner refuses casts, so the two casts
run outside the delegate on every call and their outputs enter it as inputs, not constants (GhostNetV2:
14 of them, one per SE block). Float scalars need no cast. PyTorch's own CPU kernel computes
min(max(x + 3, 0), 6) / 6, so the rewritten graph is bit-identical to it.
"""

from __future__ import annotations

import torch

from . import RewriteContext, register_rewrite
from ._graph import call_nodes, finished, insert, replace

aten = torch.ops.aten


@register_rewrite("hardsigmoid_float_scalars")
def hardsigmoid_float_scalars(program: torch.export.ExportedProgram, ctx: RewriteContext
                              ) -> tuple[torch.export.ExportedProgram, int]:
    """hardsigmoid(x) → clamp(x + 3.0, 0.0, 6.0) / 6.0 with float scalars (no int constants to cast at run time)."""
    graph = program.graph_module.graph
    n = 0
    for node in call_nodes(program, (aten.hardsigmoid.default,)):
        x = node.args[0]
        shifted = insert(graph, node, aten.add.Tensor, (x, 3.0), node)
        clamped = insert(graph, node, aten.clamp.default, (shifted, 0.0, 6.0), node)
        replace(graph, node, insert(graph, node, aten.div.Tensor, (clamped, 6.0), node))
        n += 1
    return finished(program, n)
