"""topk and argsort (iOS15 tensor_operation.py; iOS16 adds sort/return_indices, iOS17 output_indices_dtype)."""

from __future__ import annotations

import numpy as np

from ..errors import ProgramTypeError
from ..registry import register_op
from ._util import axis_of, scalar

_INDEX_DTYPES = {"int32": np.int32, "uint16": np.uint16}


def _order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    """Indices that sort `x` along `axis`; equal values keep their input order (a stable sort)."""
    a = np.asarray(x)
    key = a.astype(np.float64) if a.dtype.kind in "fiu" else a
    return np.argsort(key if ascending else -key, axis=axis, kind="stable")


@register_op()
def topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
    """The k largest (smallest with ascending) values along `axis`, sorted, and their indices.

    k = −1 (iOS17) takes all. `sort=False` leaves the order open in the spec; we return them sorted,
    which is one of the allowed orders.
    """
    ax = axis_of(axis, np.ndim(x))
    n = np.shape(x)[ax]
    kk = int(scalar(k))
    kk = n if kk == -1 else kk
    if not 0 <= kk <= n:
        raise ProgramTypeError(f"topk k={kk} for a dimension of {n}")
    dt = str(output_indices_dtype).lower()
    if dt not in _INDEX_DTYPES:
        raise ProgramTypeError(f"output_indices_dtype {dt!r}: MIL allows int32 or uint16")
    idx = np.take(_order(x, ax, bool(scalar(ascending))), np.arange(kk), axis=ax)
    values = np.take_along_axis(np.asarray(x), idx, ax)
    if not bool(scalar(return_indices)):
        return values
    return values, idx.astype(_INDEX_DTYPES[dt])


@register_op()
def argsort(x, axis=-1, ascending=False):
    """Indices that sort x along `axis` (descending unless ascending), ties in input order, as int32."""
    ax = axis_of(axis, np.ndim(x))
    return _order(x, ax, bool(scalar(ascending))).astype(np.int32)
