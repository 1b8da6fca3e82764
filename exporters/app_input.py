"""The app-facing input: channels-last RGB pixels in [0, 255], with the model's normalisation inside the graph.

Phones hand models interleaved RGB (Android `Bitmap`, MediaPipe `Image`, `CVPixelBuffer`), so
the app-facing TFLite takes 1×H×W×3; a permute in front of the model makes the exported graph's
input channels-last without touching the model. MediaPipe Tasks refuses per-channel
normalisation ("Per-channel image normalization is not available"), so an ImageNet mean/std
cannot live in its metadata: the wrapper applies (pixel / 255 - mean) / std in the graph (exact,
fp32, the same arithmetic as the parity check's reference) and the metadata says "pixels as they
are" (mean 0, std 1), which every client supports. Integer pixels also quantize exactly to int8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from mobiledeploy.errors import UserError

if TYPE_CHECKING:
    from .targets import ExportRequest, TargetResult

LAYOUTS = ("nchw", "nhwc")


@dataclass(frozen=True)
class InputSpec:
    """What the exported graph's image input expects, for metadata, manifest and snippets."""

    layout: str  # nchw | nhwc
    height: int
    width: int
    mean: tuple[float, ...]  # in units of the graph input's value range
    std: tuple[float, ...]
    value_range: tuple[float, float]  # of the values the app feeds
    normalization_in_graph: bool  # True: the app feeds raw pixels (value_range) and mean/std are neutral

    @property
    def shape(self) -> list[int]:
        """The input tensor shape, batch 1."""
        return [1, self.height, self.width, 3] if self.layout == "nhwc" else [1, 3, self.height, self.width]

    def pixel_mean_std(self) -> tuple[list[float], list[float]]:
        """Mean/std in 0-255 pixel units, as TFLite metadata and MediaPipe define them."""
        scale = 255.0 / (self.value_range[1] - self.value_range[0])
        return [m * scale for m in self.mean], [s * scale for s in self.std]


class AppInput(nn.Module):
    """Wraps a model so its input is an app image: optional NHWC → NCHW, then (x / 255 - mean) / std."""

    def __init__(self, model: nn.Module, layout: str = "nhwc", mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None) -> None:
        super().__init__()
        check_layout(layout)
        self.model = model
        self.layout = layout
        self.normalize = mean is not None
        if self.normalize:
            # (x / 255 - m) / s, not x * a + b: the same float ops as the PyTorch preprocessing.
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        if self.normalize:
            x = (x / 255.0 - self.mean) / self.std
        return self.model(x)


def check_layout(layout: str) -> str:
    """The layout if known, else a UserError."""
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}", f"choose one of: {', '.join(LAYOUTS)}")
    return layout


def wrap_for_app(model: nn.Module, height: int, width: int, layout: str = "nhwc",
                 mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225),
                 normalization_in_graph: bool = True) -> tuple[nn.Module, InputSpec, torch.Tensor]:
    """The app-facing module, its input spec and an example input of the right layout."""
    check_layout(layout)
    if layout == "nchw" and not normalization_in_graph:
        return model, InputSpec("nchw", height, width, tuple(mean), tuple(std), (0.0, 1.0), False), \
            torch.rand(1, 3, height, width)
    wrapped = AppInput(model, layout, mean if normalization_in_graph else None, std if normalization_in_graph else None)
    wrapped.eval()
    if normalization_in_graph:
        spec = InputSpec(layout, height, width, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 255.0), True)
    else:
        spec = InputSpec(layout, height, width, tuple(mean), tuple(std), (0.0, 1.0), False)
    shape = spec.shape
    return wrapped, spec, torch.rand(*shape) * 255


def wrap_app_input(req: ExportRequest, layout: str) -> ExportRequest:
    """Re-export the program behind an input of app pixels (`layout`, 0–255) with mean/std inside."""
    x = req.example_inputs[0]
    if len(req.example_inputs) != 1 or x.dim() != 4 or x.shape[1] != len(req.mean):
        raise UserError("--layout needs a model with one (N, 3, H, W) image input")
    n, _, h, w = x.shape
    wrapper = AppInput(req.program.module(), layout, tuple(req.mean), tuple(req.std))
    wrapper.training = False  # not .eval(): an exported module refuses train()/eval(); its graph is eval already
    example = torch.rand(n, h, w, 3) * 255 if layout == "nhwc" else torch.rand(n, 3, h, w) * 255
    program = torch.export.export(wrapper, (example,), strict=False)
    spec = InputSpec(layout, int(h), int(w), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 255.0), True)
    return dataclasses.replace(req, program=program, example_inputs=(example,), app_input=spec)


def describe_input(req: ExportRequest, result: TargetResult) -> None:
    """Record the app-facing input contract where the parity check and the manifest read it."""
    spec = req.app_input
    if spec is None or not result.inputs:
        return
    d = result.inputs[0]
    d.update({"layout": spec.layout.upper(), "value_range": [0, 255], "color": "RGB",
              "normalization": {"mean": list(req.mean), "std": list(req.std), "in_graph": True}})
