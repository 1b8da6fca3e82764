"""Helpers shared by the op modules: dtype discipline and numpy ↔ torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ProgramTypeError
from ..registry import current_ios
from ..values import dtype_name

FLOATS = (np.dtype(np.float16), np.dtype(np.float32))


def f32(a: np.ndarray) -> np.ndarray:
    """fp16 values widened to fp32: an fp16 op computes in fp32 and rounds its result to fp16 once."""
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype == np.float16 else a


def tt(a: np.ndarray) -> torch.Tensor:
    """A torch view of `f32(a)`."""
    return torch.from_numpy(np.ascontiguousarray(f32(a)))


def back(t: torch.Tensor | np.ndarray, dtype: Any) -> np.ndarray:
    """Result in the op's type: fp32 arithmetic rounded to `dtype` (round to nearest even)."""
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return a.astype(dtype, copy=False)


def same_type(**arrays: Any) -> np.dtype:
    """The common dtype of inputs that the op definition puts in one type domain T; mismatch is an error."""
    present = {k: np.asarray(v).dtype for k, v in arrays.items() if v is not None}
    kinds = set(present.values())
    if len(kinds) > 1:
        got = ", ".join(f"{k}: {dtype_name(d)}" for k, d in present.items())
        raise ProgramTypeError(f"inputs must share one type ({got})")
    return kinds.pop()


def split_type(x: Any, **params: Any) -> np.dtype:
    """x's dtype T for ops whose parameters (weights, bias, gamma, …) form a domain U of their own from iOS17
    on (conv, linear, matmul, the norms); before iOS17 they all share T. Returns T (the result's dtype)."""
    if current_ios() < 17:
        try:
            return same_type(x=x, **params)
        except ProgramTypeError as e:
            raise ProgramTypeError(f"{e.message} (before iOS17 x and the parameters share one type)") from None
    if any(v is not None for v in params.values()):
        same_type(**params)
    return np.asarray(x).dtype


def floating(x: np.ndarray, what: str = "x") -> np.dtype:
    """The dtype of `x`, which the op definition requires to be fp16 or fp32."""
    dt = np.asarray(x).dtype
    if dt not in FLOATS:
        raise ProgramTypeError(f"{what} must be fp16 or fp32, got {dtype_name(dt)}")
    return dt


def ints(v: Any) -> list[int]:
    """A const int tensor as a list of Python ints."""
    return [int(i) for i in np.asarray(v).reshape(-1)]


def scalar(v: Any) -> Any:
    """A 0-d const as a Python scalar."""
    a = np.asarray(v)
    if a.size != 1:
        raise ProgramTypeError(f"expected a scalar, got shape {a.shape}")
    return a.reshape(()).item()


def axis_of(axis: Any, rank: int) -> int:
    """A possibly negative axis, normalised and range-checked."""
    a = int(scalar(axis))
    if not -rank <= a < max(rank, 1):
        raise ProgramTypeError(f"axis {a} out of range for rank {rank}")
    return a % max(rank, 1)
