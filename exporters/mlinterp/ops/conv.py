"""conv (iOS15 conv.py): 1-D to 3-D, groups, strides, dilations, the four pad types."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ._util import back, floating, ints, scalar, split_type, tt


def spatial_pads(pad_type: str, pad, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) per spatial dim for MIL's valid / custom / same / same_lower."""
    n = len(sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        p = ints(pad) if pad is not None else [0] * 2 * n
        if len(p) != 2 * n:
            raise ProgramTypeError(f"pad has {len(p)} values for {n} spatial dims")
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for d, k, s, dl in zip(sizes, kernel, strides, dilations):
            total = max((math.ceil(d / s) - 1) * s + (k - 1) * dl + 1 - d, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    raise UnsupportedOpError(f"pad_type {pad_type!r}")


def torch_pad(pads: list[tuple[int, int]]) -> list[int]:
    """F.pad order: last dim first."""
    return [v for before_after in reversed(pads) for v in before_after]


@register_op()
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    """Cross-correlation, weight (C_out, C_in/groups, *K); output floor((D + pads − dil·(K−1) − 1)/s) + 1."""
    dt = split_type(x, weight=weight, bias=bias)
    floating(x)
    n = np.ndim(x) - 2
    if n not in (1, 2, 3) or np.ndim(weight) != n + 2:
        raise ProgramTypeError(f"conv of x {np.shape(x)} with weight {np.shape(weight)}")
    g = int(scalar(groups))
    c_in, kernel = np.shape(x)[1], list(np.shape(weight)[2:])
    if c_in % g or np.shape(weight)[1] * g != c_in or np.shape(weight)[0] % g:
        raise ProgramTypeError(f"conv groups={g}: x has {c_in} channels, weight {np.shape(weight)}")
    s = ints(strides) if strides is not None else [1] * n
    d = ints(dilations) if dilations is not None else [1] * n
    pads = spatial_pads(pad_type, pad, np.shape(x)[2:], kernel, s, d)
    xt = F.pad(tt(x), torch_pad(pads)) if any(a or b for a, b in pads) else tt(x)
    fn = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return back(fn(xt, tt(weight), None if bias is None else tt(bias), s, 0, d, g), dt)


@register_op()
def conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                   dilations=None, groups=1):
    """Transposed convolution, weight (C_in, C_out/groups, *K).

    The full result has (D−1)·s + (K−1)·dil + 1 positions per spatial dim; MIL keeps a window of it:
    `custom` drops pad[2i] before and pad[2i+1] after, `valid` keeps all, `same` keeps D·s positions and
    drops half the excess before (same_lower: the larger half). An `output_shape` sets the window's size
    (its start is the pad before, as in TensorFlow's conv2d_transpose); positions past the full result
    hold only the bias.
    """
    dt = split_type(x, weight=weight, bias=bias)
    floating(x)
    n = np.ndim(x) - 2
    if n not in (1, 2, 3) or np.ndim(weight) != n + 2:
        raise ProgramTypeError(f"conv_transpose of x {np.shape(x)} with weight {np.shape(weight)}")
    g = int(scalar(groups))
    c_in, d_in, kernel = np.shape(x)[1], np.shape(x)[2:], np.shape(weight)[2:]
    if np.shape(weight)[0] != c_in or c_in % g:
        raise ProgramTypeError(f"conv_transpose groups={g}: x has {c_in} channels, weight {np.shape(weight)}")
    c_out = np.shape(weight)[1] * g
    s = ints(strides) if strides is not None else [1] * n
    d = ints(dilations) if dilations is not None else [1] * n
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    full = fn(tt(x), tt(weight), None, s, 0, 0, g, d)
    full_sizes = full.shape[2:]
    if output_shape is not None:
        out_shape = ints(output_shape)
        if len(out_shape) != n + 2 or out_shape[:2] != [np.shape(x)[0], c_out]:
            raise ProgramTypeError(f"conv_transpose output_shape {out_shape} for x {np.shape(x)}, {c_out} channels")
        sizes = out_shape[2:]
    else:
        sizes = None
    starts, outs = _transpose_window(pad_type, pad, sizes, d_in, full_sizes, s)
    y = full.new_zeros((full.shape[0], c_out, *outs))
    src = tuple(slice(b, min(b + o, f)) for b, o, f in zip(starts, outs, full_sizes))
    dst = tuple(slice(0, sl.stop - sl.start) for sl in src)
    y[(slice(None), slice(None)) + dst] = full[(slice(None), slice(None)) + src]
    if bias is not None:
        y = y + tt(bias).reshape([1, -1] + [1] * n)
    return back(y, dt)


def _transpose_window(pad_type: str, pad, sizes, d_in, full_sizes, strides) -> tuple[list[int], list[int]]:
    """(start, size) per spatial dim of the window of the full transposed result that MIL returns."""
    n = len(d_in)
    if pad_type == "valid":
        starts, default = [0] * n, list(full_sizes)
    elif pad_type == "custom":
        p = ints(pad) if pad is not None else [0] * 2 * n
        if len(p) != 2 * n:
            raise ProgramTypeError(f"pad has {len(p)} values for {n} spatial dims")
        starts = p[0::2]
        default = [f - a - b for f, a, b in zip(full_sizes, p[0::2], p[1::2])]
    elif pad_type in ("same", "same_lower"):
        default = [di * st for di, st in zip(d_in, strides)]
        want = sizes if sizes is not None else default
        excess = [max(f - o, 0) for f, o in zip(full_sizes, want)]
        starts = [e // 2 if pad_type == "same" else e - e // 2 for e in excess]
    else:
        raise UnsupportedOpError(f"pad_type {pad_type!r}")
    outs = list(sizes) if sizes is not None else default
    if any(o <= 0 for o in outs) or any(b < 0 for b in starts):
        raise ProgramTypeError(f"conv_transpose output size {outs} (start {starts}) is empty or negative")
    return starts, outs
