"""Typed export options: what the user asked for beyond model, target and precision, built once by the CLI.

Each group belongs to one concern (the app-facing input, int8, Core ML); targets read the fields they
need and nothing travels as a private string key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

COREML_COMPRESSIONS = ("linear8", "palettize4", "palettize6", "palettize8")


@dataclass(frozen=True)
class QuantOptions:
    """int8: where the calibration images come from and how the quantized graph meets the app."""

    calibration: Path | None = None  # a folder of images; None: scikit-image photos + augmentations
    samples: int = 64  # calibration images drawn
    int8_io: bool = False  # TFLite: int8 input/output tensors instead of float ones


@dataclass(frozen=True)
class CoreMLOptions:
    """Core ML only: deployment target, tensor instead of image input, int8 weight compression mode."""

    min_target: str | None = None  # e.g. "iOS16" (the default), "iOS17", "macOS13"
    tensor_input: bool = False
    compression: str = "linear8"  # one of COREML_COMPRESSIONS, used for --precision int8


@dataclass(frozen=True)
class ExecuTorchOptions:
    """ExecuTorch only: the backend its partitioner lowers to, and whether to write a bundled program."""

    delegate: str = "xnnpack"  # "xnnpack" (runs everywhere) | "coreml" (Apple platforms only)
    bundled_io: bool = False  # also <name>.bpte: the program with the parity inputs and PyTorch's outputs


@dataclass(frozen=True)
class TargetOptions:
    """Options every target may read; each field is a user-facing flag or a library caller's setting."""

    layout: str | None = None  # app-facing tensor input: "nhwc" | "nchw" pixels with normalisation inside
    bundle: bool | Path = False  # True: <name>_<target>_bundle/ beside the artifact; a Path: there
    labels: tuple[str, ...] | None = None  # class names, resolved once (from --labels or the model)
    quant: QuantOptions = field(default_factory=QuantOptions)
    coreml: CoreMLOptions = field(default_factory=CoreMLOptions)
    executorch: ExecuTorchOptions = field(default_factory=ExecuTorchOptions)
    opset: int | None = None  # ONNX opset (None: the exporter's default)
    tflite_passes: tuple[str, ...] = ()  # extra flatbuffer passes after the default ones

    def layout_for(self, takes_layout: bool) -> str | None:
        """The app-facing layout for a target (nhwc by default in a bundle), or None for the plain tensor input."""
        from .app_input import check_layout

        layout = self.layout if self.layout is not None else ("nhwc" if self.bundle else None)
        if layout is None or not takes_layout:
            return None
        return check_layout(layout)
