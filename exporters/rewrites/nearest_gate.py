"""Integer nearest upsampling as two small ops that ExecuTorch's XNNPACK delegate runs without transposes.

ExecuTorch's XNNPACK partitioner has no rule for `upsample_nearest2d`, so each resize splits the graph
(GhostNetV2: 33 pieces). Writing the 2x gate product as a 6-D broadcast multiply in ATen gives one piece,
but the delegate keeps 4-D tensors in NHWC and converts every `view` input back to NCHW: per gate that is
either an NCHW multiply whose innermost broadcast dim is 2 (0.99 ms for one 56x56x72 gate, per-op trace)
or four full-size transposes around an NHWC-ordered multiply (4 x 25 us). Two ops keep the whole thing
inside the delegate's NHWC layout (`exporters/executorch_xnnpack.py` teaches the delegate both):

- `mobiledeploy::nearest_gate_mul(x, g)` = x * nearest_resize(g, x's size) for an integer factor: in
  NHWC it is reshape(x, N,h,qh,w,qw,C) * reshape(g, N,h,1,w,1,C), the graph LiteRT's XNNPACK runs for
  our .tflite; no upsampled gate is written (33 us for that gate, no transposes).
- `mobiledeploy::nearest_repeat(g, qh, qw)` = the integer nearest resize itself, for resizes that feed
  anything else (the odd 3->7 DFC maps: resize + slices + concat from `exact_nearest_upsample`):
  NHWC concatenations of g with itself and free reshapes.

Both compute exactly what PyTorch computes (the product is the same single multiply per element).
Targets that cannot run the ops get the ATen form back with `restore_aten`.
"""

from __future__ import annotations

import torch

from . import RewriteContext, register_rewrite
from ._graph import call_nodes, finished, insert, replace, val
from .nearest import index_maps, integer_factor

aten = torch.ops.aten
_UPSAMPLE = (aten.upsample_nearest2d.vec, aten.upsample_nearest2d.default)
# The repeat op copies through XNNPACK's concatenate, which takes at most 5 inputs.
MAX_REPEAT = 5


@torch.library.custom_op("mobiledeploy::nearest_gate_mul", mutates_args=())
def nearest_gate_mul(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """x * nearest_resize(g, x.shape[-2:]) where x's size is an integer multiple of g's."""
    n, c, hh, ww = x.shape
    h, w = g.shape[-2:]
    return (x.reshape(n, c, h, hh // h, w, ww // w) * g.reshape(n, c, h, 1, w, 1)).reshape(n, c, hh, ww)


@nearest_gate_mul.register_fake
def _(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("mobiledeploy::nearest_repeat", mutates_args=())
def nearest_repeat(g: torch.Tensor, qh: int, qw: int) -> torch.Tensor:
    """Nearest resize of g by the integer factors (qh, qw): every pixel repeated qh x qw times."""
    n, c, h, w = g.shape
    return g.reshape(n, c, h, 1, w, 1).expand(n, c, h, qh, w, qw).reshape(n, c, h * qh, w * qw)


@nearest_repeat.register_fake
def _(g: torch.Tensor, qh: int, qw: int) -> torch.Tensor:
    n, c, h, w = g.shape
    return g.new_empty((n, c, h * qh, w * qw))


GATE_MUL = torch.ops.mobiledeploy.nearest_gate_mul.default
REPEAT = torch.ops.mobiledeploy.nearest_repeat.default


def _factors(node: torch.fx.Node) -> tuple[int, int] | None:
    """(qh, qw) when the resize repeats every source pixel an integer number of times, else None."""
    xv, yv = val(node.args[0]), val(node)
    if xv is None or yv is None or xv.dim() != 4 or not xv.dtype.is_floating_point:
        return None
    if not all(isinstance(d, int) for d in (*xv.shape, *yv.shape)):
        return None  # symbolic sizes: static_shapes runs first in the pipeline
    idx_h, idx_w = index_maps(node)
    qh, qw = integer_factor(idx_h, int(xv.shape[2])), integer_factor(idx_w, int(xv.shape[3]))
    return (qh, qw) if qh and qw else None


def _gate_partner(node: torch.fx.Node) -> tuple[torch.fx.Node, torch.fx.Node] | None:
    """(mul, other operand) when the resize's only use is a same-shape, same-dtype multiply."""
    users = list(node.users)
    if len(users) != 1:
        return None
    mul = users[0]
    if mul.op != "call_function" or mul.target is not aten.mul.Tensor or mul.kwargs or len(mul.args) != 2:
        return None
    a, b = mul.args
    other = b if a is node else a
    if other is node or not isinstance(other, torch.fx.Node):
        return None
    ov, uv = val(other), val(node)
    if ov is None or tuple(ov.shape) != tuple(uv.shape) or ov.dtype != uv.dtype:
        return None
    return mul, other


@register_rewrite("xnnpack_nearest_gate")
def xnnpack_nearest_gate(program: torch.export.ExportedProgram, ctx: RewriteContext
                         ) -> tuple[torch.export.ExportedProgram, int]:
    """Integer nearest resizes become nearest_gate_mul (feeding a multiply) or nearest_repeat: one XNNPACK piece, no transposes."""
    graph = program.graph_module.graph
    n = 0
    for node in call_nodes(program, _UPSAMPLE):
        q = _factors(node)
        if q is None or q == (1, 1):
            continue
        g = node.args[0]
        partner = _gate_partner(node)
        if partner is not None:
            mul, other = partner
            replace(graph, mul, insert(graph, mul, GATE_MUL, (other, g), mul))
        elif max(q) <= MAX_REPEAT:
            replace(graph, node, insert(graph, node, REPEAT, (g, *q), node))
        else:
            continue
        n += 1
    return finished(program, n)


def restore_aten(program: torch.export.ExportedProgram) -> tuple[torch.export.ExportedProgram, int]:
    """Put the ATen resize (and multiply) back in place of the two ops, for backends that lack them."""
    graph = program.graph_module.graph
    n = 0
    for node in call_nodes(program, (GATE_MUL, REPEAT)):
        if node.target is REPEAT:
            g, qh, qw = node.args
            _, _, h, w = val(g).shape
            up = insert(graph, node, aten.upsample_nearest2d.vec, (g, [h * qh, w * qw], None), node)
            replace(graph, node, up)
        else:
            x, g = node.args
            up = insert(graph, node, aten.upsample_nearest2d.vec, (g, list(val(x).shape[-2:]), None), node)
            replace(graph, node, insert(graph, node, aten.mul.Tensor, (x, up), node))
        n += 1
    return finished(program, n)
