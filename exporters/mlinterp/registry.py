"""Op registry: one small function per MIL op, registered by name (coremltools' op registry style).

An op function takes the op's inputs as keyword arguments (ndarrays; 0-d for scalars; str for string
constants; a list for variadic inputs) and returns a value or a tuple of values, in the dtype the MIL
op definition says it produces. The executor then checks that against the type the program declares.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import UnsupportedOpError

OpFn = Callable[..., Any]
OPS: dict[str, OpFn] = {}
# Inputs that take any number of arguments (concat's `values`, …) and always arrive as a list.
VARIADIC = {"values"}


def register_op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register `fn` as the implementation of the MIL op(s) `names` (default: the function's name)."""

    def deco(fn: OpFn) -> OpFn:
        for name in names or (fn.__name__,):
            if name in OPS:
                raise ValueError(f"MIL op {name!r} registered twice")
            OPS[name] = fn
        return fn

    return deco


def get_op(op_type: str, where: str) -> OpFn:
    """The implementation of `op_type`, or a refusal that names the op."""
    _ensure_loaded()
    if op_type not in OPS:
        raise UnsupportedOpError(
            f"{where}: MIL op {op_type!r} is not implemented by the Core ML reference interpreter; "
            "refusing to guess its result"
        )
    return OPS[op_type]


def _ensure_loaded() -> None:
    from . import ops  # noqa: F401  (its modules fill OPS)
