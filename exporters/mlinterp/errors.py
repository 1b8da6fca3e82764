"""Errors of the Core ML reference interpreter: each one names the op and the value it stopped at."""

from __future__ import annotations

from mobiledeploy.errors import VerificationError


class MLInterpError(VerificationError):
    """The interpreter could not compute the program's outputs; nothing was verified."""


class UnsupportedOpError(MLInterpError):
    """An op (or an op's mode) the interpreter does not implement: refused, never passed through."""


class AmbiguousOpError(MLInterpError):
    """An op whose result the MIL specification leaves open (e.g. fractional nearest upsampling)."""


class ProgramTypeError(MLInterpError):
    """The program is ill-typed: values whose dtype or shape differs from what the program declares."""
