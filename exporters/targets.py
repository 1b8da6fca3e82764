"""Target registry: one module per target owns every stage of its artifact, registered with @register_target.

A target is a `Target` subclass: `prepare` (the app-facing input, int8 as fp32 + a quantize step),
`convert`, `finish` (metadata in the artifact, int8), `extra_files` (files written beside the final
artifact, e.g. the .ort operator config) and its parity bars. The pipeline calls the stages in order and
never branches on a target's name. Adding a target is its module plus one line in TARGET_MODULES.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .options import TargetOptions

if TYPE_CHECKING:  # the CLI checks target names through this module without importing torch
    import torch

    from .app_input import InputSpec

# target name → module under exporters/ that registers it (imported on demand: converters are heavy).
TARGET_MODULES: dict[str, str] = {
    "onnx": "onnx",
    "tflite": "tflite",
    "coreml": "coreml",
    "ort": "ort",
    "executorch": "executorch",
}
TARGET_NAMES = tuple(TARGET_MODULES)


@dataclass
class ExportRequest:
    """What a target's stages get: the (rewritten) program and everything the user asked for."""

    model_name: str
    program: torch.export.ExportedProgram  # after the generic and this target's rewrite passes
    module: torch.nn.Module  # the eval-mode PyTorch model, the parity reference
    example_inputs: tuple[torch.Tensor, ...]
    out_path: Path  # where to write; the pipeline writes to a temporary name and moves it into place
    precision: str = "fp32"  # what the converter produces: fp32 | fp16 (int8 arrives here as fp32 + int8)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    labels: list[str] | None = None
    options: TargetOptions = field(default_factory=TargetOptions)
    weights: Path | None = None  # the checkpoint file the model was loaded from, if any
    # The model's outputs in pytree order, named after dict keys (else output_0, output_1, …); None for one
    # plain tensor, which keeps each target's usual name. Every target gives its outputs these names.
    output_names: list[str] | None = None
    int8: bool = False  # set by prepare: quantize the fp32 artifact in finish
    app_input: InputSpec | None = None  # set by prepare when the graph takes app pixels (--layout)

    @property
    def final_precision(self) -> str:
        """The precision the finished artifact has (int8 after finish)."""
        return "int8" if self.int8 else self.precision


@dataclass
class TargetResult:
    """What a target returns, recorded in the manifest."""

    artifact: Path
    converter: str  # e.g. "coremltools"
    converter_version: str
    inputs: list[dict[str, Any]]  # name, shape, dtype, layout (+ normalization for image inputs)
    outputs: list[dict[str, Any]]  # name, shape, dtype
    extra: dict[str, Any] = field(default_factory=dict)  # opset, min_target, delegated nodes, …


class Target:
    """A registered target; subclasses set the class attributes and implement `convert`."""

    name: ClassVar[str] = ""
    suffix: ClassVar[str] = ""
    extra: ClassVar[str] = ""  # the pip extra that brings its converter
    requires: ClassVar[tuple[str, ...]] = ()  # modules checked before any tracing
    rewrites: ClassVar[tuple[str, ...]] = ()  # torch.export passes after the generic ones
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")
    takes_layout: ClassVar[bool] = False  # --layout shapes its input (Core ML takes an image instead)

    def prepare(self, req: ExportRequest) -> ExportRequest:
        """int8 is converted at fp32 and quantized in `finish`; --layout wraps the graph's input."""
        from .app_input import wrap_app_input

        if req.precision not in self.precisions:
            from mobiledeploy.errors import UserError

            raise UserError(f"--precision {req.precision} is not supported for {self.name}",
                            f"use {' or '.join(self.precisions)}")
        if req.precision == "int8":
            req = dataclasses.replace(req, precision="fp32", int8=True)
        layout = req.options.layout_for(self.takes_layout)
        return wrap_app_input(req, layout) if layout else req

    def convert(self, req: ExportRequest) -> TargetResult:
        """Write the artifact at `req.out_path`."""
        raise NotImplementedError

    def finish(self, req: ExportRequest, result: TargetResult) -> TargetResult:
        """Post-process the converted artifact (still under its temporary name): the input contract by default."""
        from .app_input import describe_input

        describe_input(req, result)
        return result

    def extra_files(self, artifact: Path, target_info: dict[str, Any]) -> list[Path]:
        """Write files that go beside the final artifact (and into its bundle); none by default."""
        return []


_TARGETS: dict[str, Target] = {}


def output_names(program: "torch.export.ExportedProgram") -> list[str] | None:
    """Names of a program's outputs in flattened (pytree) order: dict keys joined along the path
    (`{"det": (a, b)}` → det_0, det_1), else output_<i>; None when it returns one plain tensor."""
    from torch.utils import _pytree as pytree

    spec = program.call_spec.out_spec
    if spec is None or spec.num_leaves <= 1 and spec.type is None:
        return None
    leaves = pytree.tree_unflatten(list(range(spec.num_leaves)), spec)
    paths = [path for path, _ in pytree.tree_flatten_with_path(leaves)[0]]
    if len(paths) == 1 and not any(isinstance(k, pytree.MappingKey) for k in paths[0]):
        return None
    if not any(isinstance(k, pytree.MappingKey) for p in paths for k in p):
        return [f"output_{i}" for i in range(len(paths))]
    names = ["_".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in p) for p in paths]
    if len(set(names)) != len(names):  # keys that collide once joined: fall back to positions
        return [f"output_{i}" for i in range(len(paths))]
    return names


def register_target(cls: type[Target]) -> type[Target]:
    """Register a Target subclass under its `name` (one instance serves every export)."""
    _TARGETS[cls.name] = cls()
    return cls


def get_target(name: str) -> Target:
    """A registered target (its module imported on demand)."""
    from mobiledeploy.errors import UserError

    if name not in _TARGETS and name in TARGET_MODULES:
        importlib.import_module(f"{__package__}.{TARGET_MODULES[name]}")
    if name not in _TARGETS:
        raise UserError(f"unknown target {name!r}", f"choose one of: {', '.join(TARGET_NAMES)}")
    return _TARGETS[name]
