"""linear and matmul (iOS15 linear.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ProgramTypeError
from ..registry import register_op
from ._util import back, floating, same_type, scalar, tt


@register_op()
def linear(x, weight, bias=None):
    """x · weightᵀ + bias, weight (D_out, D_in)."""
    dt = same_type(x=x, weight=weight, bias=bias)
    floating(x)
    if np.ndim(weight) != 2 or np.shape(x)[-1] != np.shape(weight)[1]:
        raise ProgramTypeError(f"linear weight {np.shape(weight)} does not fit x {np.shape(x)}")
    return back(F.linear(tt(x), tt(weight), None if bias is None else tt(bias)), dt)


@register_op()
def matmul(x, y, transpose_x=False, transpose_y=False):
    """Batched matrix product with numpy broadcasting; rank-1 operands as in numpy."""
    dt = same_type(x=x, y=y)
    a, b = tt(x), tt(y)
    if bool(scalar(transpose_x)) and a.dim() >= 2:
        a = a.transpose(-1, -2)
    if bool(scalar(transpose_y)) and b.dim() >= 2:
        b = b.transpose(-1, -2)
    try:
        return back(torch.matmul(a, b), dt)
    except RuntimeError as e:
        raise ProgramTypeError(f"matmul shapes {tuple(a.shape)} × {tuple(b.shape)}: {e}") from None

