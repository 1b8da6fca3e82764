"""Deliberately wrong ops, to prove that the peer suite compares numbers (a test that cannot fail is a defect)."""

from __future__ import annotations

import numpy as np


def _relu_plus_one(x):
    return (np.maximum(np.asarray(x, np.float32), 0) + 1).astype(np.asarray(x).dtype)


MUTANTS = {"relu": _relu_plus_one}


def install(op: str) -> None:
    """Replace the interpreter's `op` by its mutant."""
    from mobiledeploy.exporters.mlinterp.registry import OPS, _ensure_loaded

    _ensure_loaded()
    OPS[op] = MUTANTS[op]
