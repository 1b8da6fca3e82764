"""avg_pool, max_pool, l2_pool (iOS15 pool.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ._util import back, floating, ints, scalar, tt
from .conv import spatial_pads, torch_pad

_AVG = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
_MAX = (F.max_pool1d, F.max_pool2d, F.max_pool3d)


def _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    n = np.ndim(x) - 2
    if n not in (1, 2, 3):
        raise ProgramTypeError(f"pooling needs rank 3 to 5, got shape {np.shape(x)}")
    k = ints(kernel_sizes)
    s = ints(strides) if strides is not None else [1] * n
    pads = spatial_pads(pad_type, pad, np.shape(x)[2:], k, s, [1] * n)
    ceil = bool(scalar(ceil_mode))
    if ceil and any(a != b for a, b in pads):
        raise ProgramTypeError("ceil_mode requires symmetric padding")
    return n, k, s, pads, ceil


def _torch_padding(pads, k):
    """Symmetric pads PyTorch's pooling can take itself (≤ half the kernel), else None."""
    if all(a == b and a <= kk // 2 for (a, b), kk in zip(pads, k)):
        return [a for a, _ in pads]
    return None


@register_op()
def avg_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, exclude_padding_from_average=False,
             ceil_mode=False):
    """Window mean; padded zeros count in the divisor unless exclude_padding_from_average."""
    dt = floating(x)
    n, k, s, pads, ceil = _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    exclude = bool(scalar(exclude_padding_from_average))
    tp = _torch_padding(pads, k)
    if tp is not None:  # also the only form ceil_mode can take: PyTorch's ceil semantics are MIL's
        return back(_AVG[n - 1](tt(x), k, s, tp, ceil, not exclude), dt)
    if ceil:
        raise UnsupportedOpError("avg_pool with ceil_mode and padding over half the kernel")
    xt = F.pad(tt(x), torch_pad(pads))
    total = _AVG[n - 1](xt, k, s, 0) * math.prod(k)
    if not exclude:
        return back(total / math.prod(k), dt)
    ones = F.pad(torch.ones_like(tt(x)[:1, :1]), torch_pad(pads))
    count = _AVG[n - 1](ones, k, s, 0) * math.prod(k)
    return back(total / count, dt)


@register_op()
def max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    """Window maximum; padding never wins."""
    dt = floating(x)
    n, k, s, pads, ceil = _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    tp = _torch_padding(pads, k)
    if tp is not None:
        return back(_MAX[n - 1](tt(x), k, s, tp, 1, ceil), dt)
    if ceil:
        raise UnsupportedOpError("max_pool with ceil_mode and padding over half the kernel")
    xt = F.pad(tt(x), torch_pad(pads), value=-math.inf)
    return back(_MAX[n - 1](xt, k, s, 0), dt)


@register_op()
def l2_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    """sqrt of the window sum of squares (padding adds zeros)."""
    dt = floating(x)
    n, k, s, pads, ceil = _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    if ceil:
        raise ProgramTypeError("l2_pool with ceil_mode is not supported")
    sq = F.pad(tt(x) ** 2, torch_pad(pads))
    return back(torch.sqrt(_AVG[n - 1](sq, k, s, 0) * math.prod(k)), dt)
