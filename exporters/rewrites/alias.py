"""Alias cleanup: drop `aten.alias` and whole-tensor slices that the export leaves behind.

`x[:, :n]` with n equal to the channel count traces to an alias; coremltools' torch.export frontend
rejects it ("Unsupported fx node alias"), and the other converters gain nothing from it.
"""

from __future__ import annotations

import torch

from . import RewriteContext, register_rewrite
from ._graph import call_nodes, finished, replace, val

aten = torch.ops.aten
_INT_MAX = 2**63 - 1


def _is_noop_slice(node: torch.fx.Node) -> bool:
    x, dim, start, end, step = (list(node.args) + [0, None, None, 1])[:5]
    src, out = val(x), val(node)
    if src is None or out is None or step not in (1, None):
        return False
    return tuple(src.shape) == tuple(out.shape) and (start in (0, None))


@register_rewrite("alias_cleanup")
def alias_cleanup(program: torch.export.ExportedProgram, ctx: RewriteContext) -> tuple[torch.export.ExportedProgram, int]:
    """No aten.alias or whole-tensor slice nodes left (they are identities)."""
    n = 0
    for node in call_nodes(program, (aten.alias.default, aten.slice.Tensor)):
        if node.target is aten.slice.Tensor and not _is_noop_slice(node):
            continue
        src = node.args[0]
        # A user output that is literally a user input would change the program's signature.
        if src.op == "placeholder" and any(u.op == "output" for u in node.users):
            continue
        replace(program.graph_module.graph, node, src)
        n += 1
    return finished(program, n)
