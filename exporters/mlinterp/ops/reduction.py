"""reduce_* ops (iOS15 reduction.py): axes absent means all axes."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ProgramTypeError
from ..registry import register_op
from ._util import axis_of, back, ints, scalar, tt


def _axes(x, axes) -> tuple[int, ...]:
    return tuple(range(np.ndim(x))) if axes is None else tuple(sorted({axis_of(a, np.ndim(x)) for a in ints(axes)}))


def _reduce(fn, x, axes, keep_dims):
    dt = np.asarray(x).dtype
    ax = _axes(x, axes)
    r = fn(tt(x), ax) if ax else tt(x)
    keep = bool(scalar(keep_dims))
    if keep:
        for a in ax:
            r = r.unsqueeze(a)
    return back(r, dt)


_REDUCTIONS = {
    "reduce_mean": lambda t, ax: t.mean(ax),
    "reduce_sum": lambda t, ax: t.sum(ax),
    "reduce_max": lambda t, ax: t.amax(ax),
    "reduce_min": lambda t, ax: t.amin(ax),
    "reduce_prod": lambda t, ax: _prod(t, ax),
    "reduce_sum_square": lambda t, ax: (t * t).sum(ax),
    "reduce_l1_norm": lambda t, ax: t.abs().sum(ax),
    "reduce_l2_norm": lambda t, ax: torch.sqrt((t * t).sum(ax)),
    "reduce_log_sum": lambda t, ax: torch.log(t.sum(ax)),
    "reduce_log_sum_exp": lambda t, ax: torch.logsumexp(t, ax),
}


def _prod(t: torch.Tensor, ax: tuple[int, ...]) -> torch.Tensor:
    for a in sorted(ax, reverse=True):
        t = t.prod(a)
    return t


for _name, _fn in _REDUCTIONS.items():
    register_op(_name)(lambda x, axes=None, keep_dims=False, _f=_fn: _reduce(_f, x, axes, keep_dims))


_INDEX_DTYPES = {"int32": np.int32, "uint16": np.uint16}


def _arg(fn, x, axis, keep_dims, output_dtype):
    output_dtype = str(output_dtype).lower()  # coremltools lower-cases it too
    if output_dtype not in _INDEX_DTYPES:
        raise ProgramTypeError(f"output_dtype {output_dtype!r}: MIL allows int32 or uint16")
    ax = axis_of(axis, np.ndim(x))
    a = np.asarray(x)
    t = tt(a) if a.dtype.kind == "f" else torch.from_numpy(a.astype(np.int64))  # iOS17 also takes ints
    return fn(t, ax, keepdim=bool(scalar(keep_dims))).numpy().astype(_INDEX_DTYPES[output_dtype])


@register_op()
def reduce_argmax(x, axis=-1, keep_dims=False, output_dtype="int32"):
    """Index of the maximum along `axis` (first on ties), as int32 or (iOS17 output_dtype) uint16."""
    return _arg(torch.argmax, x, axis, keep_dims, output_dtype)


@register_op()
def reduce_argmin(x, axis=-1, keep_dims=False, output_dtype="int32"):
    """Index of the minimum along `axis` (first on ties), as int32 or (iOS17 output_dtype) uint16."""
    return _arg(torch.argmin, x, axis, keep_dims, output_dtype)
