"""Runtime registry: how to run an artifact of each target on this machine (for parity checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

# target name → fn(artifact_path, {input_name: array}) → {output_name: array}
RunFn = Callable[[Path, Mapping[str, np.ndarray]], dict[str, np.ndarray]]
_RUNTIMES: dict[str, RunFn] = {}


def register_runtime(target: str) -> Callable[[RunFn], RunFn]:
    """Register the function that executes artifacts of `target` on this host."""

    def deco(fn: RunFn) -> RunFn:
        _RUNTIMES[target] = fn
        return fn

    return deco


def get_runtime(target: str) -> RunFn | None:
    """The registered runner for a target, or None when this host has none."""
    return _RUNTIMES.get(target)
