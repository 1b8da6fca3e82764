"""Exact nearest upsampling: PyTorch's sampling rule built from ops every target computes identically.

PyTorch's nearest resize takes source row floor(dst * in/out). Converters lower it to resize ops
with other rules: litert-torch emits RESIZE_NEAREST_NEIGHBOR with half-pixel centers, so GhostNetV2's
3→7 DFC gate reads rows [0,0,1,1,1,2,2] instead of [0,0,0,1,1,2,2], and Core ML gets a fractional
scale whose rule its spec leaves open. Integer multiples agree everywhere, so we keep one resize by
the largest integer factor (the runtimes' fast path) and fix the remainder with slices and a concat.
ONNX is the exception: its Resize (nearest, floor, asymmetric, output sizes) has a floor rule of its
own, and where that rule picks PyTorch's rows the Resize is already exact and cheaper than slices;
tiny maps become one MatMul with a 0/1 selection matrix, onnxruntime's fastest way to move them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from . import RewriteContext, register_rewrite
from ._graph import call_nodes, finished, insert, replace, val

aten = torch.ops.aten
_NEAREST = (
    aten.upsample_nearest2d.vec,
    aten.upsample_nearest2d.default,
    aten._upsample_nearest_exact2d.vec,
    aten._upsample_nearest_exact2d.default,
)
_EXACT = (aten._upsample_nearest_exact2d.vec, aten._upsample_nearest_exact2d.default)
# Targets whose exporter writes upsample_nearest2d as ONNX Resize(nearest, floor, asymmetric, sizes).
_ONNX_RESIZE = ("onnx", "ort")


def index_maps(node: torch.fx.Node) -> tuple[list[int], list[int]]:
    """The source row and column of every output row and column, computed by PyTorch's own kernel."""
    x = val(node.args[0])
    hi, wi = int(x.shape[-2]), int(x.shape[-1])
    rows = torch.arange(hi, dtype=torch.float64).view(1, 1, hi, 1).expand(1, 1, hi, wi).contiguous()
    cols = torch.arange(wi, dtype=torch.float64).view(1, 1, 1, wi).expand(1, 1, hi, wi).contiguous()
    rest, kw = tuple(node.args[1:]), dict(node.kwargs)
    r = node.target(rows, *rest, **kw)
    c = node.target(cols, *rest, **kw)
    return [int(v) for v in r[0, 0, :, 0].tolist()], [int(v) for v in c[0, 0, 0, :].tolist()]


def onnx_resize_indices(n_in: int, n_out: int) -> list[int]:
    """Source index of each output of ONNX Resize(nearest, floor, asymmetric) given output sizes.

    The spec's x_original = x_resized / scale with scale = out/in, in float32 as onnxruntime computes
    it (checked against onnxruntime for every in < 70, out < 230). It differs from PyTorch's
    floor(dst * float32(in/out)) for ~3 % of size pairs, so each node is checked, never assumed.
    """
    scale = np.float32(n_out) / np.float32(n_in)
    dst = np.arange(n_out, dtype=np.float32)
    return np.minimum(np.floor(dst / scale), n_in - 1).astype(np.int64).tolist()


def _onnx_resize_is_exact(node: torch.fx.Node, idx_h: list[int], idx_w: list[int], hi: int, wi: int) -> bool:
    """True when the ONNX Resize this node exports to picks exactly PyTorch's rows and columns."""
    if node.target not in (aten.upsample_nearest2d.vec, aten.upsample_nearest2d.default):
        return False
    scales = node.args[2:] if len(node.args) > 2 else ()
    if node.args[1] is None or any(s is not None for s in scales):
        return False  # written with scales, not sizes: the runtime's rule then depends on the float given
    return onnx_resize_indices(hi, len(idx_h)) == idx_h and onnx_resize_indices(wi, len(idx_w)) == idx_w


def integer_factor(idx: list[int], n_in: int) -> int | None:
    """q when idx repeats every source index q times in order (an integer-multiple upsample), else None."""
    if len(idx) % n_in:
        return None
    q = len(idx) // n_in
    return q if idx == [i for i in range(n_in) for _ in range(q)] else None


def positions(idx: list[int], q: int) -> list[int]:
    """Rows of a q× upsampled map to take, in order, so that the result follows idx."""
    counts, seen, out = Counter(idx), Counter(), []
    for i in idx:
        extra = max(0, counts[i] - q)  # copies beyond the q that the upsample provides come first
        out.append(i * q + max(0, seen[i] - extra))
        seen[i] += 1
    return out


def runs(pos: list[int]) -> list[tuple[int, int, int]]:
    """Cover pos with few (start, end, step) slices: contiguous or evenly strided runs."""
    out, p, n = [], 0, len(pos)
    while p < n:
        start, e = pos[p], p
        if p + 1 < n and pos[p + 1] > start:
            step = pos[p + 1] - start
            e = p + 1
            while e + 1 < n and pos[e + 1] - pos[e] == step:
                e += 1
        else:
            step = 1
        out.append((start, pos[e] + 1, step))
        p = e + 1
    return out


def plan(idx: list[int], n_in: int) -> tuple[int, list[tuple[int, int, int]]]:
    """(integer factor for the resize, slices of its output that make the exact result) for one axis."""
    q = integer_factor(idx, n_in)
    if q is not None:
        return q, []
    counts = Counter(idx)
    q = max(1, min(counts.get(i, 0) for i in range(n_in)))
    pieces = runs(positions(idx, q))
    if pieces == [(0, q * n_in, 1)]:
        pieces = []
    return q, pieces


# ONNX: a map of at most this many pixels (GhostNetV2's 3×3 gates) is resized by one MatMul with a 0/1
# selection matrix. onnxruntime runs it in its GEMM; a non-integer Resize runs in plain NCHW between
# layout conversions and cost 4× more there. Each output sums one x·1 and zeros: exact for finite x.
_SELECT_MAX_PIXELS = 16


def _floor_rule(idx: list[int], n_in: int) -> bool:
    """True when idx is the integer floor(dst · in / out), which the graph can rebuild from integer ops."""
    return idx == [(d * n_in) // len(idx) for d in range(len(idx))]


def _selectable(xv: torch.Tensor, idx_h: list[int], idx_w: list[int]) -> bool:
    """A small floating-point map whose rows and columns follow the integer floor rule."""
    h, w = int(xv.shape[2]), int(xv.shape[3])
    return (xv.dtype.is_floating_point and h * w <= _SELECT_MAX_PIXELS
            and _floor_rule(idx_h, h) and _floor_rule(idx_w, w))


def _selection_matmul(graph: torch.fx.Graph, node: torch.fx.Node, out_h: int, out_w: int) -> torch.fx.Node:
    """x (N,C,h,w) → reshape (N·C, h·w) @ S (h·w, H·W) → (N,C,H,W), S built from integer ops (folded on export)."""
    x = node.args[0]
    xv = val(x)
    nb, c, h, w = (int(d) for d in xv.shape)

    def op(target, *args, **kw):
        return insert(graph, node, target, args, node, kw or None)

    def floor_index(n_out: int, n_in: int) -> torch.fx.Node:  # floor(dst · in / out), exact in int64
        dst = op(aten.arange.default, n_out, dtype=torch.int64, device=xv.device)
        return op(aten.floor_divide.default, op(aten.mul.Tensor, dst, n_in), n_out)

    rows = op(aten.view.default, floor_index(out_h, h), [out_h, 1])
    cols = op(aten.view.default, floor_index(out_w, w), [1, out_w])
    src = op(aten.view.default, op(aten.add.Tensor, op(aten.mul.Tensor, rows, w), cols), [1, out_h * out_w])
    pixel = op(aten.view.default, op(aten.arange.default, h * w, dtype=torch.int64, device=xv.device), [h * w, 1])
    select = op(aten._to_copy.default, op(aten.eq.Tensor, pixel, src), dtype=xv.dtype)
    flat = op(aten.reshape.default, x, [nb * c, h * w])  # reshape: x may be channels-last
    return op(aten.view.default, op(aten.mm.default, flat, select), [nb, c, out_h, out_w])


@register_rewrite("exact_nearest_upsample")
def exact_nearest(program: torch.export.ExportedProgram, ctx: RewriteContext) -> tuple[torch.export.ExportedProgram, int]:
    """Nearest resizes follow PyTorch's floor rule on every target: integer resize + slices + concat."""
    graph = program.graph_module.graph
    n = 0
    for node in call_nodes(program, _NEAREST):
        x = node.args[0]
        xv = val(x)
        if xv is None or xv.dim() != 4 or not all(isinstance(d, int) for d in xv.shape):
            continue  # symbolic shapes: static_shapes runs first in the pipeline
        hi, wi = int(xv.shape[2]), int(xv.shape[3])
        idx_h, idx_w = index_maps(node)
        (qh, ph), (qw, pw) = plan(idx_h, hi), plan(idx_w, wi)
        integer = not ph and not pw and node.target not in _EXACT
        if ctx.target in _ONNX_RESIZE and not integer and _selectable(xv, idx_h, idx_w):
            replace(graph, node, _selection_matmul(graph, node, len(idx_h), len(idx_w)))
            n += 1
            continue
        if ctx.target in _ONNX_RESIZE and _onnx_resize_is_exact(node, idx_h, idx_w, hi, wi):
            continue
        if integer and (qh, qw) != (1, 1):
            continue  # already an integer multiple: exact on every runtime, and their fast path
        y = x
        if (qh, qw) != (1, 1):
            y = insert(graph, node, aten.upsample_nearest2d.vec, (y, [qh * hi, qw * wi], None), node)
        for dim, pieces in ((2, ph), (3, pw)):
            if pieces:
                parts = [insert(graph, node, aten.slice.Tensor, (y, dim, s, e, st), node) for s, e, st in pieces]
                y = parts[0] if len(parts) == 1 else insert(graph, node, aten.cat.default, (parts, dim), node)
        replace(graph, node, y)
        n += 1
    return finished(program, n)
