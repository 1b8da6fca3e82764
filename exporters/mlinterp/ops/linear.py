"""linear and matmul (iOS15 linear.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import current_ios, register_op
from ._util import back, same_type, scalar, split_type, tt


@register_op()
def linear(x, weight, bias=None):
    """x · weightᵀ + bias, weight (D_out, D_in)."""
    dt = split_type(x, weight=weight, bias=bias)
    if np.ndim(weight) != 2 or np.shape(x)[-1] != np.shape(weight)[1]:
        raise ProgramTypeError(f"linear weight {np.shape(weight)} does not fit x {np.shape(x)}")
    kinds = {np.asarray(v).dtype.kind for v in (x, weight, bias) if v is not None}
    if kinds & {"i", "u"}:  # iOS17 int32 x or weights: exact in int64, or in float64 when mixed with floats
        wide = np.int64 if kinds <= {"i", "u"} else np.float64
        y = np.asarray(x, wide) @ np.asarray(weight, wide).T
        y = y if bias is None else y + np.asarray(bias, wide)
        return (np.trunc(y) if dt.kind in "iu" and wide is np.float64 else y).astype(dt)
    _float_only(dt)
    return back(F.linear(tt(x), tt(weight), None if bias is None else tt(bias)), dt)


def _float_only(dt: np.dtype) -> None:
    if dt not in (np.dtype(np.float16), np.dtype(np.float32)):
        raise ProgramTypeError(f"x must be fp16, fp32 or (iOS17+) int32, got {dt}")


@register_op()
def matmul(x, y, transpose_x=False, transpose_y=False, const_inputs=frozenset()):
    """Batched matrix product with numpy broadcasting; rank-1 operands as in numpy.

    iOS17: x and y may differ in dtype when exactly one is a constant; the result takes the dtype of
    the other (the non-constant) one.
    """
    xd, yd = np.asarray(x).dtype, np.asarray(y).dtype
    if xd != yd and current_ios() >= 17 and (("x" in const_inputs) != ("y" in const_inputs)):
        dt = yd if "x" in const_inputs else xd
    else:
        dt = same_type(x=x, y=y)
    if xd.kind in "iu" and yd.kind in "iu":
        a, b = torch.from_numpy(np.asarray(x, np.int64)), torch.from_numpy(np.asarray(y, np.int64))
    elif xd.kind == "f" and yd.kind == "f":  # fp16 widens to fp32 exactly
        a, b = tt(x), tt(y)
    else:  # int × float (iOS17, one side constant): exact in float64
        a, b = torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y, np.float64))
    if bool(scalar(transpose_x)) and a.dim() >= 2:
        a = a.transpose(-1, -2)
    if bool(scalar(transpose_y)) and b.dim() >= 2:
        b = b.transpose(-1, -2)
    try:
        r = torch.matmul(a, b)
        return back(torch.trunc(r) if dt.kind in "iu" and r.is_floating_point() else r, dt)
    except RuntimeError as e:
        raise ProgramTypeError(f"matmul shapes {tuple(a.shape)} × {tuple(b.shape)}: {e}") from None


matmul.const_inputs = True  # type: ignore[attr-defined]  (the executor passes which inputs are constants)



def _einsum_pattern(equation: str) -> int:
    """Rank of the one pattern MIL's einsum defines, [*D,C,H,W1] × [*D,W1,H,W2] → [*D,C,H,W2], or an error."""
    eq = equation.replace(" ", "")
    try:
        lhs, out = eq.split("->")
        a, b = lhs.split(",")
    except ValueError:
        raise UnsupportedOpError(f"einsum equation {equation!r}: expected 'x,y->out'") from None
    if not (len(a) == len(b) == len(out) and len(a) in (3, 4) and len(set(a + b + out)) == len(a) + 1):
        raise UnsupportedOpError(f"einsum equation {equation!r} is not one MIL defines (e.g. 'nchw,nwhu->nchu')")
    *d, c, h, w1 = a
    ok = b == "".join(d) + w1 + h + b[-1] and out == "".join(d) + c + h + b[-1]
    if not ok:
        raise UnsupportedOpError(f"einsum equation {equation!r} is not one MIL defines (e.g. 'nchw,nwhu->nchu')")
    return len(a)


@register_op()
def einsum(values, equation):
    """[*D, C, H, W1] × [*D, W1, H, W2] → [*D, C, H, W2] (a matmul over W1 for every H), D and H broadcast."""
    if len(values) != 2:
        raise ProgramTypeError(f"einsum takes two tensors, got {len(values)}")
    x, y = values
    dt = same_type(x=x, y=y)
    rank = _einsum_pattern(str(equation))
    if np.ndim(x) != rank or np.ndim(y) != rank:
        raise ProgramTypeError(f"einsum {equation!r} of shapes {np.shape(x)} and {np.shape(y)}")
    a = tt(x).transpose(-3, -2)  # [*D, H, C, W1]
    b = tt(y).transpose(-3, -2)  # [*D, H, W1, W2]
    try:
        return back(torch.matmul(a, b).transpose(-3, -2), dt)
    except RuntimeError as e:
        raise ProgramTypeError(f"einsum shapes {np.shape(x)} × {np.shape(y)}: {e}") from None
