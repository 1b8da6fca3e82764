"""Op registry: one small function per MIL op, registered by name (coremltools' op registry style).

An op function takes the op's inputs as keyword arguments (ndarrays; 0-d for scalars; str for string
constants; a list for variadic inputs) and returns a value or a tuple of values, in the dtype the MIL
op definition says it produces. The executor then checks that against the type the program declares.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

from .errors import UnsupportedOpError

OpFn = Callable[..., Any]
OPS: dict[str, OpFn] = {}
# Inputs that take any number of arguments (concat's `values`, reshape_like's tuples) and always arrive as a list.
VARIADIC = {"values", "ref_tensors", "begins", "ends", "end_masks"}
# The iOS version of the running program's opset (CoreML5 → 15, …, CoreML8 → 18): some ops' type rules
# depend on it (iOS17 lets conv/linear/matmul/norm weights have another dtype than x; reshape takes 0).
_IOS: ContextVar[int] = ContextVar("mlinterp_ios", default=15)
_OPSETS = {"CoreML5": 15, "CoreML6": 16, "CoreML7": 17, "CoreML8": 18}


def ios_of_opset(opset: str) -> int:
    """The iOS version of an ML program opset name ('CoreML7' → 17)."""
    if opset not in _OPSETS:
        raise UnsupportedOpError(f"ML program opset {opset!r} is not supported (known: {', '.join(_OPSETS)})")
    return _OPSETS[opset]


def current_ios() -> int:
    """The iOS version of the program that is running (15 outside a run)."""
    return _IOS.get()


@contextmanager
def running_ios(ios: int) -> Iterator[None]:
    """Ops called inside follow the type rules of iOS `ios`."""
    token = _IOS.set(ios)
    try:
        yield
    finally:
        _IOS.reset(token)


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
