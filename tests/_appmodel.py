"""Shared, once-per-session builders for the bundle/metadata/quantization tests (issue 7).

The trained digits model is shipped as test data (tests/data/digits_mobilenetv2_035.*: checkpoint and
held-out split), never retrained here: a model trained on another CPU is another model. Its fp32
exports are built at most once per session however many test files ask for them.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def train_module():
    """benchmarks/train_small.py as a module (benchmarks/ is scripts, not a package)."""
    name = "mobiledeploy_train_small"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "train_small.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def export(module: torch.nn.Module, example: torch.Tensor, target: str, out: Path, name: str = "model",
           tensor_input: bool = False) -> Path:
    """Export through the registered target's converter (the same code the CLI runs)."""
    from mobiledeploy.exporters.options import CoreMLOptions, TargetOptions
    from mobiledeploy.exporters.targets import ExportRequest, get_target

    module.eval()
    program = torch.export.export(module, (example,))
    req = ExportRequest(model_name=name, program=program, module=module, example_inputs=(example,),
                        out_path=Path(out), options=TargetOptions(coreml=CoreMLOptions(tensor_input=tensor_input)))
    return Path(get_target(target).convert(req).artifact)


@dataclass
class Digits:
    """The trained digits classifier, its app-facing wrapper and fp32 exports (made on first use)."""

    trained: object  # train_small.TrainedModel
    wrapper: torch.nn.Module  # NHWC [0, 1] input, normalisation inside
    example: torch.Tensor
    x_train: np.ndarray  # (N, H, W, 3) pixels in [0, 255], what the app-facing graph takes
    x_test: np.ndarray
    y_test: np.ndarray
    torch_test: np.ndarray  # PyTorch logits of x_test
    workdir: Path

    # Lazy: several users (the ARM board's fp16/int8 tests) need the checkpoint only, not these exports.
    @functools.cached_property
    def tflite(self) -> Path:
        return export(self.wrapper, self.example, "tflite", self.workdir / "digits.tflite", "mobilenetv2_035")

    @functools.cached_property
    def onnx(self) -> Path:
        return export(self.wrapper, self.example, "onnx", self.workdir / "digits.onnx", "mobilenetv2_035")


_DIGITS: Digits | None = None


def digits(workdir: Path) -> Digits:
    """The shipped trained digits model and its app-facing form (exported to TFLite and ONNX on first use)."""
    global _DIGITS
    if _DIGITS is not None:
        return _DIGITS
    from mobiledeploy.exporters.app_input import wrap_for_app

    ts = train_module()
    torch.set_num_threads(1)
    tm = ts.load_shipped(DATA)
    model = tm.create()
    x_tr, _, x_te, y_te = ts.digits_split(tm.size, indices=tm.split)
    wrapper, spec, example = wrap_for_app(model, tm.size, tm.size, "nhwc", tm.mean, tm.std)
    x_train = (x_tr.permute(0, 2, 3, 1) * 255).contiguous().numpy()
    x_test = (x_te.permute(0, 2, 3, 1) * 255).contiguous().numpy()
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(x_test)).numpy()
    workdir.mkdir(parents=True, exist_ok=True)
    _DIGITS = Digits(tm, wrapper, example, x_train, x_test, y_te.numpy(), ref, workdir)
    return _DIGITS


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 error of a against reference b."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
