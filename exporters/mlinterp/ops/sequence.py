"""cumsum, range_1d, one_hot, band_part (iOS15 tensor_operation.py)."""

from __future__ import annotations

import numpy as np

from ..errors import ProgramTypeError
from ..registry import register_op
from ._util import axis_of, f32, scalar


@register_op()
def cumsum(x, axis=0, exclusive=False, reverse=False):
    """Running sum along `axis` (exclusive: shifted by one, starting at 0; reverse: from the end)."""
    a = np.asarray(x)
    ax = axis_of(axis, a.ndim)
    w = f32(a) if a.dtype.kind == "f" else a.astype(np.int64)
    if bool(scalar(reverse)):
        w = np.flip(w, ax)
    c = np.cumsum(w, axis=ax, dtype=w.dtype)
    if bool(scalar(exclusive)):
        c = c - w
    if bool(scalar(reverse)):
        c = np.flip(c, ax)
    return np.ascontiguousarray(c).astype(a.dtype)


@register_op()
def range_1d(start, end, step):
    """numpy's arange(start, end, step) in the inputs' type."""
    dt = np.asarray(start).dtype
    s, e, st = (scalar(f32(v)) for v in (start, end, step))
    if st == 0:
        raise ProgramTypeError("range_1d step 0")
    return np.arange(s, e, st).astype(dt)


@register_op()
def one_hot(indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    """A new axis of length `one_hot_vector_size` holding on_value at each index, off_value elsewhere."""
    idx = np.asarray(indices).astype(np.int64)
    n = int(scalar(one_hot_vector_size))
    ax = axis_of(axis, idx.ndim + 1)
    on, off = np.asarray(on_value), np.asarray(off_value)
    if on.dtype != off.dtype:
        raise ProgramTypeError(f"one_hot on_value {on.dtype} and off_value {off.dtype} differ")
    hot = np.expand_dims(idx, ax) == np.arange(n).reshape([-1 if i == ax else 1 for i in range(idx.ndim + 1)])
    return np.where(hot, on, off).astype(on.dtype)


@register_op()
def band_part(x, lower=-1, upper=-1):
    """Zero everything outside the band lower ≥ m − n, upper ≥ n − m of the last two dims (negative: no limit)."""
    a = np.asarray(x)
    lo, up = int(scalar(lower)), int(scalar(upper))
    m = np.arange(a.shape[-2])[:, None]
    n = np.arange(a.shape[-1])[None, :]
    keep = ((lo < 0) | (m - n <= lo)) & ((up < 0) | (n - m <= up))
    return np.where(keep, a, np.zeros((), a.dtype)).astype(a.dtype)
