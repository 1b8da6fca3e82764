"""Transformer ops ExecuTorch's XNNPACK partitioner has no rule for, as ops it has (exact, or within an ulp).

ExecuTorch 1.5.1's XNNPACK partitioner takes `slice_copy`, `view_copy`, `mean.dim` (4-D, over the two
innermost dims), `rsqrt`, but no `select_copy`, `squeeze_copy`, `expand_copy` or `native_layer_norm`. A ViT
(KAT-T: `unbind` of q/k/v, the no-op expands of matmul's decomposition, LayerNorm, the class token's
`x[:, 0]`) then runs in 62 pieces with 4 op types between them on portable kernels. Each is rewritten:

- select(x, d, i) and unbind's pieces → view(slice(x, d, i, i+1)): the same elements (unbind otherwise
  becomes split + squeeze_copy at the edge).
- squeeze(x, dims) → view(x): the same elements.
- matmul of two tensors with the same batch dims → view to 3-D, bmm, view back: what matmul decomposes
  to, less the `expand_copy` of operands to the shape they already have.
- layer_norm over the last dims → (x − mean) · rsqrt(var + eps) · w + b with both means as `mean.dim` over
  a (1, rows, 1, features) view: two-pass, as PyTorch's CPU kernel computes it (rel L2 ~1e-7 vs it).
"""

from __future__ import annotations

import math

import torch

from . import RewriteContext, register_rewrite
from ._graph import call_nodes, finished, insert, replace, val

aten = torch.ops.aten


def _shape(node: torch.fx.Node) -> list[int]:
    return [int(d) for d in val(node).shape]


@register_rewrite("xnnpack_views")
def xnnpack_views(program: torch.export.ExportedProgram, ctx: RewriteContext
                  ) -> tuple[torch.export.ExportedProgram, int]:
    """select/squeeze as slice+view, no-op expands dropped, LayerNorm as mean.dim/rsqrt: ops XNNPACK delegates."""
    graph = program.graph_module.graph
    n = 0
    for node in call_nodes(program, (aten.select.int,)):
        x, dim, index = node.args
        dim = dim % len(_shape(x))
        index = index % _shape(x)[dim]
        piece = insert(graph, node, aten.slice.Tensor, (x, dim, index, index + 1), node)
        replace(graph, node, insert(graph, node, aten.view.default, (piece, _shape(node)), node))
        n += 1
    for node in call_nodes(program, (aten.unbind.int,)):
        n += _unbind(graph, node)
    for node in call_nodes(program, (aten.squeeze.dims, aten.squeeze.dim, aten.squeeze.default)):
        replace(graph, node, insert(graph, node, aten.view.default, (node.args[0], _shape(node)), node))
        n += 1
    for node in call_nodes(program, (aten.matmul.default,)):
        n += _matmul(graph, node)
    for node in call_nodes(program, (aten.layer_norm.default,)):
        if _layer_norm(graph, node):
            n += 1
    return finished(program, n)


def _unbind(graph: torch.fx.Graph, node: torch.fx.Node) -> int:
    """unbind's getitem users → slice + view each; 0 where a user is not a plain getitem."""
    import operator

    x, dim = node.args[0], (node.args[1] if len(node.args) > 1 else 0)
    dim = dim % len(_shape(x))
    users = list(node.users)
    if not all(u.target is operator.getitem for u in users):
        return 0
    for u in users:
        piece = insert(graph, u, aten.slice.Tensor, (x, dim, u.args[1], u.args[1] + 1), u)
        replace(graph, u, insert(graph, u, aten.view.default, (piece, _shape(u)), u))
    graph.erase_node(node)
    return 1


def _matmul(graph: torch.fx.Graph, node: torch.fx.Node) -> int:
    """a @ b with equal batch dims (rank ≥ 3) → view, bmm, view; 0 (left alone) otherwise."""
    a, b = node.args[:2]
    sa, sb = _shape(a), _shape(b)
    if len(sa) < 3 or len(sa) != len(sb) or sa[:-2] != sb[:-2] or val(a).dtype != val(b).dtype:
        return 0
    batch = math.prod(sa[:-2])
    try:
        a3 = insert(graph, node, aten.view.default, (a, [batch, *sa[-2:]]), node)
        b3 = insert(graph, node, aten.view.default, (b, [batch, *sb[-2:]]), node)
    except RuntimeError:  # batch dims whose strides a view cannot merge: leave it (dead nodes are dropped)
        return 0
    mm = insert(graph, node, aten.bmm.default, (a3, b3), node)
    replace(graph, node, insert(graph, node, aten.view.default, (mm, _shape(node)), node))
    return 1


def _layer_norm(graph: torch.fx.Graph, node: torch.fx.Node) -> bool:
    """Replace one aten.layer_norm by mean.dim/sub/mul/rsqrt; False (left alone) where it does not fit."""
    x, normalized = node.args[0], [int(d) for d in node.args[1]]
    weight = node.args[2] if len(node.args) > 2 else node.kwargs.get("weight")
    bias = node.args[3] if len(node.args) > 3 else node.kwargs.get("bias")
    eps = node.args[4] if len(node.args) > 4 else node.kwargs.get("eps", 1e-5)
    shape = _shape(x)
    if val(x).dtype != torch.float32 or shape[len(shape) - len(normalized):] != normalized:
        return False
    rows, feats = math.prod(shape[:len(shape) - len(normalized)]), math.prod(normalized)

    def op(target, *args):
        return insert(graph, node, target, args, node)

    x4 = op(aten.view.default, x, [1, rows, 1, feats])  # mean.dim in XNNPACK: 4-D, over dims 2 and 3
    mean = op(aten.mean.dim, x4, [2, 3], True)
    centred = op(aten.sub.Tensor, x4, mean)
    var = op(aten.mean.dim, op(aten.mul.Tensor, centred, centred), [2, 3], True)
    y = op(aten.mul.Tensor, centred, op(aten.rsqrt.default, op(aten.add.Tensor, var, float(eps))))
    y = op(aten.view.default, y, shape)
    if weight is not None:
        y = op(aten.mul.Tensor, y, weight)
    if bias is not None:
        y = op(aten.add.Tensor, y, bias)
    replace(graph, node, y)
    return True
