"""Elementwise binary and unary ops (iOS15 elementwise_binary.py / elementwise_unary.py), and cast."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ..values import BY_NAME, dtype_name
from ._util import f32, floating, same_type, scalar


def _binary(fn, x, y, logical: bool = False):
    """numpy broadcasting; x and y share one type T; fp16 computes in fp32 and rounds once."""
    dt = same_type(x=x, y=y)
    r = np.asarray(fn(f32(x), f32(y)))
    return r.astype(np.bool_) if logical else r.astype(dt, copy=False)


def _reg_binary(name: str, fn, logical: bool = False) -> None:
    register_op(name)(lambda x, y: _binary(fn, x, y, logical))


for _name, _fn in {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide,
    "floor_div": np.floor_divide, "mod": np.mod, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum,
}.items():
    _reg_binary(_name, _fn)
for _name, _fn in {
    "equal": np.equal, "not_equal": np.not_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}.items():
    _reg_binary(_name, _fn, logical=True)


def _unary(fn, x, *, allow_int: bool = False):
    dt = np.asarray(x).dtype
    if not allow_int:
        floating(x)
    with np.errstate(all="ignore"):  # inf/nan are values here, as on the device
        return np.asarray(fn(f32(x))).astype(dt, copy=False)


def _torch(fn):
    return lambda a: fn(torch.from_numpy(np.ascontiguousarray(a))).numpy()


for _name, _fn in {
    "sqrt": np.sqrt, "exp": np.exp, "exp2": np.exp2, "floor": np.floor, "ceil": np.ceil,
    "round": np.round, "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": _torch(torch.tanh),
    "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "atanh": np.arctanh,
    "sinh": np.sinh, "cosh": np.cosh, "erf": _torch(torch.erf),
}.items():
    register_op(_name)(lambda x, _f=_fn: _unary(_f, x))
for _name, _fn in {"abs": np.abs, "sign": np.sign, "square": np.square}.items():
    register_op(_name)(lambda x, _f=_fn: _unary(_f, x, allow_int=True))


@register_op()
def rsqrt(x, epsilon=1e-12):
    """1 / sqrt(x + epsilon)."""
    return _unary(lambda a: 1.0 / np.sqrt(a + np.float32(scalar(epsilon))), x)


@register_op()
def inverse(x, epsilon=1e-4):
    """1 / (x + epsilon)."""
    return _unary(lambda a: 1.0 / (a + np.float32(scalar(epsilon))), x)


@register_op()
def log(x, epsilon=1e-45):
    """log(x + epsilon)."""
    return _unary(lambda a: np.log(a + np.float32(scalar(epsilon))), x)


@register_op()
def clip(x, alpha, beta):
    """min(max(x, alpha), beta)."""
    return _unary(lambda a: np.minimum(np.maximum(a, f32(alpha)), f32(beta)), x)


@register_op()
def threshold(x, alpha):
    """max(x, alpha)."""
    return _unary(lambda a: np.maximum(a, f32(alpha)), x)


@register_op()
def logical_not(x):
    """Elementwise not of a bool tensor."""
    if np.asarray(x).dtype != np.bool_:
        raise ProgramTypeError(f"x must be bool, got {dtype_name(np.asarray(x).dtype)}")
    return np.logical_not(x)


@register_op()
def select(cond, a, b):
    """cond ? a : b, broadcast."""
    dt = same_type(a=a, b=b)
    return np.where(np.asarray(cond).astype(bool), a, b).astype(dt, copy=False)


@register_op()
def cast(x, dtype):
    """Convert to `dtype` ('fp16', 'fp32', 'int32', 'bool', …); float → int truncates toward zero."""
    if dtype not in BY_NAME:
        raise UnsupportedOpError(f"cast to {dtype!r} is not supported")
    target = BY_NAME[dtype]
    a = np.asarray(x)
    if target.kind in "iu" and a.dtype.kind == "f":
        a = np.trunc(a)
    return a.astype(target)


@register_op()
def identity(x):
    """x unchanged."""
    return np.asarray(x)
