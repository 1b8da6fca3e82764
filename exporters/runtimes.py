"""Runtime registry: how to run an artifact of each target on this machine (for parity checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

# target name → fn(artifact_path, {input_name: array}) → {output_name: array}
RunFn = Callable[[Path, Mapping[str, np.ndarray]], dict[str, np.ndarray]]
_RUNTIMES: dict[str, RunFn] = {}
# target name → fn() → {"name": ..., "version": ...}, recorded in manifests (optional).
_INFO: dict[str, Callable[[], dict[str, str]]] = {}


def register_runtime(target: str, info: Callable[[], dict[str, str]] | None = None) -> Callable[[RunFn], RunFn]:
    """Register the function that executes artifacts of `target` on this host (and, optionally, its name/version)."""

    def deco(fn: RunFn) -> RunFn:
        _RUNTIMES[target] = fn
        if info is not None:
            _INFO[target] = info
        return fn

    return deco


def get_runtime(target: str) -> RunFn | None:
    """The registered runner for a target, or None when this host has none."""
    return _RUNTIMES.get(target)


def runtime_info(target: str) -> dict[str, str] | None:
    """Name and version of the registered runtime of a target, when it told us."""
    fn = _INFO.get(target)
    return fn() if fn is not None else None
