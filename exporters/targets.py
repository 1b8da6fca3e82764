"""Target registry: one converter per target, filled by @register_target (like coremltools' op registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch


@dataclass
class ExportRequest:
    """What a target converter gets: the (rewritten) program and everything the user asked for."""

    model_name: str
    program: torch.export.ExportedProgram  # after the generic and this target's rewrite passes
    module: torch.nn.Module  # the eval-mode PyTorch model, the parity reference
    example_inputs: tuple[torch.Tensor, ...]
    out_path: Path  # where to write; the pipeline writes to a temporary name and moves it into place
    precision: str = "fp32"  # fp32 | fp16 | int8
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    labels: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # target-specific (min_target, tensor_input, layout, …)


@dataclass
class TargetResult:
    """What a converter returns, recorded in the manifest."""

    artifact: Path
    converter: str  # e.g. "coremltools"
    converter_version: str
    inputs: list[dict[str, Any]]  # name, shape, dtype, layout (+ normalization for image inputs)
    outputs: list[dict[str, Any]]  # name, shape, dtype
    extra: dict[str, Any] = field(default_factory=dict)  # opset, min_target, delegated nodes, …


@dataclass(frozen=True)
class Target:
    """A registered target: its converter, artifact suffix and the rewrite passes it needs."""

    name: str
    suffix: str
    convert: Callable[[ExportRequest], TargetResult]
    rewrites: tuple[str, ...] = ()
    extra: str = ""  # the pip extra that brings its converter


_TARGETS: dict[str, Target] = {}


def register_target(name: str, suffix: str, rewrites: tuple[str, ...] = (), extra: str = ""):
    """Register `fn(request) -> TargetResult` as the converter of a target."""

    def deco(fn: Callable[[ExportRequest], TargetResult]) -> Callable[[ExportRequest], TargetResult]:
        _TARGETS[name] = Target(name, suffix, fn, rewrites, extra or name)
        return fn

    return deco


def get_target(name: str) -> Target:
    """A registered target (its module imported on demand)."""
    import importlib

    from mobiledeploy.errors import UserError

    if name not in _TARGETS:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError:
            pass
    if name not in _TARGETS:
        raise UserError(f"unknown target {name!r}", f"choose one of: {', '.join(TARGET_NAMES)}")
    return _TARGETS[name]


# Modules under exporters/ that register a target of the same name.
TARGET_NAMES = ("onnx", "tflite", "coreml", "ort")
