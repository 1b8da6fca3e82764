"""Graph rewrites on torch.export programs, registered by name (one module per pass).

A pass is `fn(program, ctx) -> (program, n_changed)`. Passes match graph patterns, not our module
classes, so they fix any model with the pattern: a timm GhostNetV2, a user's `.pt2`, ours.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Program = torch.export.ExportedProgram


@dataclass
class RewriteContext:
    """What a pass may need beyond the graph: the static example inputs and the target's name."""

    example_inputs: tuple[torch.Tensor, ...] = ()
    target: str = ""


PassFn = Callable[[Program, RewriteContext], "tuple[Program, int]"]


@dataclass(frozen=True)
class Rewrite:
    """A registered pass and the one line that says what it guarantees."""

    name: str
    fn: PassFn
    doc: str


_REWRITES: dict[str, Rewrite] = {}

# Modules whose @register_rewrite decorators fill the registry; a new pass is one line here.
_MODULES = ("static_shapes", "alias", "nearest", "grkan", "pool", "nearest_gate", "hardsigmoid", "xnnpack_views")

# Run for every target, in this order; a target adds its own through Target.rewrites.
GENERIC = ("static_shapes", "grkan_lowering", "alias_cleanup", "exact_nearest_upsample")


def register_rewrite(name: str) -> Callable[[PassFn], PassFn]:
    """Register a pass under `name`; its docstring's first line is what the manifest records."""

    def deco(fn: PassFn) -> PassFn:
        if name in _REWRITES:
            raise ValueError(f"rewrite {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REWRITES[name] = Rewrite(name, fn, doc)
        return fn

    return deco


def list_rewrites() -> list[str]:
    """Names of the registered passes."""
    _ensure_loaded()
    return sorted(_REWRITES)


def get_rewrite(name: str) -> Rewrite:
    """A registered pass by name."""
    _ensure_loaded()
    if name not in _REWRITES:
        raise KeyError(f"unknown rewrite {name!r}; registered: {', '.join(sorted(_REWRITES))}")
    return _REWRITES[name]


def apply_rewrites(program: Program, names: tuple[str, ...] | list[str], ctx: RewriteContext
                   ) -> tuple[Program, list[dict[str, Any]]]:
    """Run the named passes in order; returns the program and one record per pass that changed it."""
    applied = []
    for name in dict.fromkeys(names):  # keep order, drop repeats (generic + target lists overlap)
        rw = get_rewrite(name)
        program, n = rw.fn(program, ctx)
        if n:
            applied.append({"name": name, "changed": int(n), "what": rw.doc})
    return program, applied


def _ensure_loaded() -> None:
    for mod in _MODULES:
        importlib.import_module(f"{__package__}.{mod}")
