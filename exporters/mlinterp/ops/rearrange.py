"""Data movement ops of iOS15–18 tensor_transformation.py / tensor_operation.py beyond the basic ones:
space_to_batch, batch_to_space, reverse_sequence, sliding_windows, slice_update, reshape_like,
fill_like, non_zero."""

from __future__ import annotations

import numpy as np

from ..errors import ProgramTypeError
from ..registry import register_op
from ._util import axis_of, ints, scalar
from .tensor import slice_index


@register_op()
def space_to_batch(x, block_shape, paddings):
    """Pad H and W, then move each (i, j) offset of the block grid into the batch: TensorFlow's order,
    out[(i·bw + j)·N + n, c, h, w] = padded[n, c, h·bh + i, w·bw + j]."""
    bh, bw = ints(block_shape)
    (t, b), (left, right) = np.asarray(paddings).reshape(2, 2).tolist()
    a = np.pad(np.asarray(x), [(0, 0), (0, 0), (t, b), (left, right)])
    n, c, h, w = a.shape
    if h % bh or w % bw:
        raise ProgramTypeError(f"space_to_batch: padded {h}×{w} is not divisible by block {bh}×{bw}")
    y = a.reshape(n, c, h // bh, bh, w // bw, bw).transpose(3, 5, 0, 1, 2, 4)
    return np.ascontiguousarray(y.reshape(bh * bw * n, c, h // bh, w // bw))


@register_op()
def batch_to_space(x, block_shape, crops):
    """The inverse of space_to_batch, then crop H and W."""
    bh, bw = ints(block_shape)
    (t, b), (left, right) = np.asarray(crops).reshape(2, 2).tolist()
    a = np.asarray(x)
    nb, c, h, w = a.shape
    if nb % (bh * bw):
        raise ProgramTypeError(f"batch_to_space: batch {nb} is not divisible by block {bh}×{bw}")
    n = nb // (bh * bw)
    y = a.reshape(bh, bw, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
    return np.ascontiguousarray(y[:, :, t : h * bh - b, left : w * bw - right])


@register_op()
def reverse_sequence(x, lengths, seq_axis=0, batch_axis=0):
    """For each index i along batch_axis, reverse the first lengths[i] elements along seq_axis."""
    a = np.asarray(x)
    sa, ba = axis_of(seq_axis, a.ndim), axis_of(batch_axis, a.ndim)
    out = a.copy()
    for i, n in enumerate(ints(lengths)):
        if not 0 <= n <= a.shape[sa]:
            raise ProgramTypeError(f"reverse_sequence length {n} for a sequence of {a.shape[sa]}")
        src = [slice(None)] * a.ndim
        src[ba] = i
        seq = [slice(None)] * (a.ndim - 1)
        seq[sa - (sa > ba)] = slice(0, n)
        view = out[tuple(src)]
        view[tuple(seq)] = np.flip(a[tuple(src)][tuple(seq)], sa - (sa > ba))
    return out


@register_op()
def sliding_windows(x, axis, size, stride=1):
    """All windows of `size` along `axis`, `stride` apart: a new axis of length size after the window index."""
    a = np.asarray(x)
    ax = axis_of(axis, a.ndim)
    k, s = int(scalar(size)), int(scalar(stride))
    n = (a.shape[ax] - k) // s + 1
    if n <= 0:
        raise ProgramTypeError(f"sliding_windows of size {k} over a dimension of {a.shape[ax]}")
    wins = [np.take(a, np.arange(i * s, i * s + k), axis=ax) for i in range(n)]
    return np.stack(wins, ax)


@register_op()
def slice_update(x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    """x with the slice that slice_by_index would read replaced by `update`."""
    a = np.asarray(x).copy()
    idx = slice_index(a, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    if a[idx].shape != np.shape(update):
        raise ProgramTypeError(f"slice_update: update {np.shape(update)} for a slice of shape {a[idx].shape}")
    if np.asarray(update).dtype != a.dtype:
        raise ProgramTypeError(f"slice_update: update {np.asarray(update).dtype} into x {a.dtype}")
    a[idx] = update
    return a


@register_op()
def reshape_like(x, ref_tensors, begins, ends, end_masks):
    """x reshaped to the concatenation of ref_tensors[i].shape[begins[i]:ends[i]] (to the end with end_masks[i])."""
    shape: list[int] = []
    for ref, b, e, m in zip(ref_tensors, begins, ends, end_masks):
        dims = np.shape(ref)
        shape += list(dims[int(scalar(b)):] if bool(scalar(m)) else dims[int(scalar(b)):int(scalar(e))])
    if int(np.prod(shape)) != np.size(x):
        raise ProgramTypeError(f"reshape_like: {np.shape(x)} cannot take shape {shape}")
    return np.reshape(np.asarray(x), shape)


@register_op()
def fill_like(ref_tensor, value=0.0):
    """A tensor of ref_tensor's shape filled with `value` (in value's type)."""
    v = np.asarray(value)
    return np.full(np.shape(ref_tensor), v, dtype=v.dtype)


@register_op()
def non_zero(x):
    """Indices (N, rank) of the non-zero elements, in row-major order, as int32."""
    return np.argwhere(np.asarray(x) != 0).astype(np.int32)
