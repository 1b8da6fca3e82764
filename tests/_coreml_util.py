"""Helpers for the Core ML tests: convert through the coreml target, run through the interpreter, compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobiledeploy.exporters.targets import ExportRequest, TargetResult, get_target


def convert(module: torch.nn.Module, x: torch.Tensor, path: Path, precision: str = "fp32", name: str = "test",
            labels: str | None = None, weights: str | None = None, tensor_input: bool = False,
            min_target: str | None = None) -> TargetResult:
    """Export `module` with torch.export and convert it with the coreml target (`labels`: a labels file)."""
    from mobiledeploy.exporters.labels import read_labels
    from mobiledeploy.exporters.options import CoreMLOptions, TargetOptions

    module = module.eval()
    program = torch.export.export(module, (x,))
    names = read_labels(labels) if labels else None
    options = TargetOptions(labels=tuple(names) if names else None,
                            coreml=CoreMLOptions(min_target=min_target, tensor_input=tensor_input))
    req = ExportRequest(name, program, module, (x,), Path(path), precision=precision, labels=names, options=options,
                        weights=Path(weights) if weights else None)
    return get_target("coreml").convert(req)


def op_types(artifact: Path) -> set[str]:
    """The MIL op types in an artifact's main function."""
    from mobiledeploy.exporters.mlinterp import MLProgram

    return {s.op_type for s in MLProgram(artifact).steps}


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    """‖a − ref‖ / ‖ref‖ in float64."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-30))


def normalise(pixels: np.ndarray, mean, std) -> torch.Tensor:
    """(1, 3, H, W) pixel values in [0, 255] → the model's input, in float64 then fp32."""
    m = np.asarray(mean, np.float64).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float64).reshape(1, -1, 1, 1)
    return torch.from_numpy(((pixels.astype(np.float64) / 255 - m) / s).astype(np.float32))


def photos(size: int) -> dict[str, np.ndarray]:
    """skimage's chelsea, astronaut and coffee: centre-cropped, resized to size², (1, 3, H, W) uint8."""
    from skimage import data

    out = {}
    for name in ("chelsea", "astronaut", "coffee"):
        img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float()
        h, w = img.shape[-2:]
        c = min(h, w)
        img = img[..., (h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c]
        img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", antialias=True)
        out[name] = img.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def random_pixels(size: int, seed: int = 0) -> np.ndarray:
    """Seeded random 8-bit pixels, (1, 3, size, size)."""
    return np.random.default_rng(seed).integers(0, 256, (1, 3, size, size)).astype(np.uint8)


def image_parity(artifact: Path, module: torch.nn.Module, result: TargetResult, images: list[np.ndarray],
                 mean, std) -> tuple[float, bool, list[np.ndarray]]:
    """(worst rel L2 of logits, all top-1 equal, artifact logits) for pixel images through the runtime."""
    from mobiledeploy.devicebench.runners import run_artifact as run
    worst, same, outs = 0.0, True, []
    for pix in images:
        with torch.no_grad():
            ref = module(normalise(pix, mean, std)).numpy()
        named = result.extra["reference_output"]  # "logits" for a classifier, else every output in order
        got = run(artifact, {"image": pix})[named if isinstance(named, str) else named[0]]
        worst = max(worst, rel_l2(got, ref))
        same &= int(np.argmax(got)) == int(np.argmax(ref))
        outs.append(got)
    return worst, same, outs
