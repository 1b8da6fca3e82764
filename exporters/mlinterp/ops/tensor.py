"""Shape and data movement ops (iOS15 tensor_operation.py / tensor_transformation.py)."""

from __future__ import annotations

import numpy as np

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import current_ios, register_op
from ._util import axis_of, ints, same_type, scalar


@register_op()
def reshape(x, shape):
    """Same values, new shape; −1 is inferred; 0 copies a dim of x (iOS15/16: positional, len(shape) ==
    rank(x) required; iOS17+: matched from the right, 1 where x has no such dim)."""
    s = ints(shape)
    if 0 in s:
        xs, r, k = np.shape(x), np.ndim(x), len(s)
        if current_ios() < 17 and k != r:
            raise ProgramTypeError(f"reshape with 0 in {s} needs len(shape) == rank {r} before iOS17")
        s = [v if v != 0 else (xs[r - k + i] if r - k + i >= 0 else 1) for i, v in enumerate(s)]
    try:
        return np.reshape(x, s)
    except ValueError as e:
        raise ProgramTypeError(f"reshape {np.shape(x)} → {s}: {e}") from None


@register_op()
def transpose(x, perm):
    """Permute axes."""
    p = ints(perm)
    if sorted(a % max(np.ndim(x), 1) for a in p) != list(range(np.ndim(x))):
        raise ProgramTypeError(f"perm {p} for rank {np.ndim(x)}")
    return np.ascontiguousarray(np.transpose(x, p))


@register_op()
def squeeze(x, axes=None):
    """Drop the size-1 dims in `axes` (all of them when absent)."""
    if axes is None:
        return np.squeeze(x)
    ax = tuple(axis_of(a, np.ndim(x)) for a in ints(axes))
    if any(np.shape(x)[a] != 1 for a in ax):
        raise ProgramTypeError(f"squeeze of non-1 axes {ax} of shape {np.shape(x)}")
    return np.squeeze(x, ax)


@register_op()
def expand_dims(x, axes):
    """Insert size-1 dims at `axes` (indices of the output)."""
    out_rank = np.ndim(x) + len(ints(axes))
    return np.expand_dims(x, tuple(sorted(axis_of(a, out_rank) for a in ints(axes))))


@register_op()
def flatten2d(x, axis=1):
    """(prod(shape[:axis]), prod(shape[axis:])); a negative axis counts from rank(x), so −1 is rank − 1."""
    r = np.ndim(x)
    a = int(scalar(axis))
    if not -r <= a <= r:
        raise ProgramTypeError(f"flatten2d axis {a} out of range for rank {r}")
    a = a + r if a < 0 else a
    sh = np.shape(x)
    return np.reshape(x, (int(np.prod(sh[:a], dtype=np.int64)), int(np.prod(sh[a:], dtype=np.int64))))


@register_op()
def concat(values, axis, interleave=False):
    """Join along `axis`; with interleave, take one slice of each input in turn."""
    same_type(**{f"values[{i}]": v for i, v in enumerate(values)})
    ax = axis_of(axis, np.ndim(values[0]))
    if not bool(scalar(interleave)):
        try:
            return np.concatenate(values, ax)
        except ValueError as e:
            raise ProgramTypeError(f"concat: {e}") from None
    if len({np.shape(v) for v in values}) != 1:
        raise ProgramTypeError("interleaved concat needs inputs of one shape")
    st = np.stack(values, ax + 1)
    sh = list(np.shape(values[0]))
    sh[ax] *= len(values)
    return st.reshape(sh)


@register_op()
def stack(values, axis):
    """Stack along a new axis."""
    same_type(**{f"values[{i}]": v for i, v in enumerate(values)})
    return np.stack(values, axis_of(axis, np.ndim(values[0]) + 1))


@register_op()
def split(x, axis, num_splits=None, split_sizes=None):
    """Cut along `axis` into equal parts (num_splits) or the given sizes."""
    ax = axis_of(axis, np.ndim(x))
    n = np.shape(x)[ax]
    if split_sizes is not None:
        sizes = ints(split_sizes)
    elif num_splits is not None and n % int(scalar(num_splits)) == 0:
        sizes = [n // int(scalar(num_splits))] * int(scalar(num_splits))
    else:
        raise ProgramTypeError(f"split of {n} into {num_splits} equal parts")
    if sum(sizes) != n:
        raise ProgramTypeError(f"split sizes {sizes} do not add up to {n}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], ax))


@register_op()
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    """x[begin:end:stride] per dim (numpy rules); masks ignore begin/end; squeeze_mask indexes."""
    idx = slice_index(x, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    return np.ascontiguousarray(np.asarray(x)[idx])


def slice_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None) -> tuple:
    """The numpy index that slice_by_index's arguments describe (shared with slice_update)."""
    r = np.ndim(x)
    b, e = ints(begin), ints(end)
    st = ints(stride) if stride is not None else [1] * r
    bm = [bool(v) for v in np.asarray(begin_mask).reshape(-1)] if begin_mask is not None else [False] * r
    em = [bool(v) for v in np.asarray(end_mask).reshape(-1)] if end_mask is not None else [False] * r
    sm = [bool(v) for v in np.asarray(squeeze_mask).reshape(-1)] if squeeze_mask is not None else [False] * r
    if not all(len(v) == r for v in (b, e, st, bm, em, sm)):
        raise ProgramTypeError(f"slice_by_index arguments for rank {r}")
    idx: list = []
    for i in range(r):
        if sm[i]:
            if not -np.shape(x)[i] <= b[i] < np.shape(x)[i]:
                raise ProgramTypeError(f"squeeze index {b[i]} out of range for dim {np.shape(x)[i]}")
            idx.append(b[i])
        else:
            if st[i] == 0:
                raise ProgramTypeError("slice stride 0")
            idx.append(slice(None if bm[i] else b[i], None if em[i] else e[i], st[i]))
    return tuple(idx)


@register_op()
def slice_by_size(x, begin, size):
    """x[begin : begin + size] per dim; size −1 runs to the end."""
    b, sz = ints(begin), ints(size)
    idx = []
    for i, (bb, ss) in enumerate(zip(b, sz)):
        n = np.shape(x)[i]
        bb = bb + n if bb < 0 else bb
        end = n if ss == -1 else bb + ss
        if not 0 <= bb <= end <= n:
            raise ProgramTypeError(f"slice_by_size [{bb}:{end}] out of range for dim {n}")
        idx.append(slice(bb, end))
    return np.ascontiguousarray(np.asarray(x)[tuple(idx)])


@register_op()
def pad(x, pad, mode="constant", constant_val=0.0):
    """Pad the last len(pad)/2 dims: constant, reflect or replicate."""
    p = ints(pad)
    r = np.ndim(x)
    if len(p) % 2 or len(p) // 2 > r:
        raise ProgramTypeError(f"pad of length {len(p)} for rank {r}")
    widths = [(0, 0)] * (r - len(p) // 2) + [(p[2 * i], p[2 * i + 1]) for i in range(len(p) // 2)]
    if mode == "constant":
        return np.pad(x, widths, constant_values=np.asarray(constant_val).astype(np.asarray(x).dtype).item())
    if mode in ("reflect", "replicate"):
        return np.pad(x, widths, mode="reflect" if mode == "reflect" else "edge")
    raise UnsupportedOpError(f"pad mode {mode!r}")


@register_op()
def tile(x, reps):
    """Repeat the whole tensor reps[i] times along dim i."""
    return np.tile(x, ints(reps))


@register_op()
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    """x.take(indices, axis); negative indices count from the end."""
    if int(scalar(batch_dims)) != 0:
        raise UnsupportedOpError("gather with batch_dims > 0")
    ax = axis_of(axis, np.ndim(x))
    idx = np.asarray(indices).astype(np.int64)
    n = np.shape(x)[ax]
    if np.any(idx < -n) or np.any(idx >= n):
        raise ProgramTypeError(f"gather index out of range for dim {n}")
    return np.take(x, idx, axis=ax)


@register_op()
def gather_along_axis(x, indices, axis=0, validate_indices=False):
    """out[..i..] = x[..indices[..i..]..] along `axis`."""
    ax = axis_of(axis, np.ndim(x))
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + np.shape(x)[ax], idx)
    return np.take_along_axis(np.asarray(x), idx, ax)


@register_op()
def pixel_shuffle(x, upscale_factor):
    """(N, C·f², H, W) → (N, C, H·f, W·f), PyTorch's channel order."""
    f = int(scalar(upscale_factor))
    n, c, h, w = np.shape(x)
    if c % (f * f):
        raise ProgramTypeError(f"pixel_shuffle of {c} channels by {f}")
    y = np.reshape(x, (n, c // (f * f), f, f, h, w)).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(y.reshape(n, c // (f * f), h * f, w * f))


@register_op()
def fill(shape, value=0.0):
    """A tensor of `shape` filled with `value`."""
    return np.full(ints(shape), np.asarray(value), dtype=np.asarray(value).dtype)


@register_op()
def pixel_unshuffle(x, downscale_factor):
    """(N, C, H·f, W·f) → (N, C·f², H, W), PyTorch's channel order (the inverse of pixel_shuffle)."""
    f = int(scalar(downscale_factor))
    n, c, h, w = np.shape(x)
    if h % f or w % f:
        raise ProgramTypeError(f"pixel_unshuffle of {h}×{w} by {f}")
    y = np.reshape(x, (n, c, h // f, f, w // f, f)).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(y.reshape(n, c * f * f, h // f, w // f))


@register_op()
def depth_to_space(x, block_size):
    """(N, C·b², H, W) → (N, C, H·b, W·b), TensorFlow's (DCR) order: out[c, h·b+i, w·b+j] = x[(i·b+j)·C + c, h, w]."""
    b = int(scalar(block_size))
    n, c, h, w = np.shape(x)
    if c % (b * b):
        raise ProgramTypeError(f"depth_to_space of {c} channels by block {b}")
    y = np.reshape(x, (n, b, b, c // (b * b), h, w)).transpose(0, 3, 4, 1, 5, 2)
    return np.ascontiguousarray(y.reshape(n, c // (b * b), h * b, w * b))


@register_op()
def space_to_depth(x, block_size):
    """(N, C, H·b, W·b) → (N, C·b², H, W), the inverse of depth_to_space (TensorFlow's order)."""
    b = int(scalar(block_size))
    n, c, h, w = np.shape(x)
    if h % b or w % b:
        raise ProgramTypeError(f"space_to_depth of {h}×{w} by block {b}")
    y = np.reshape(x, (n, c, h // b, b, w // b, b)).transpose(0, 3, 5, 1, 2, 4)
    return np.ascontiguousarray(y.reshape(n, c * b * b, h // b, w // b))


@register_op()
def reverse(x, axes=None):
    """Flip along `axes` (all axes when absent)."""
    r = np.ndim(x)
    ax = tuple(range(r)) if axes is None else tuple(axis_of(a, r) for a in ints(axes))
    return np.ascontiguousarray(np.flip(np.asarray(x), ax)) if ax else np.asarray(x).copy()
