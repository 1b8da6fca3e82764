"""conv (iOS15 conv.py): 1-D to 3-D, groups, strides, dilations, the four pad types."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ._util import back, floating, ints, same_type, scalar, tt


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
    dt = same_type(x=x, weight=weight, bias=bias)
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
