"""Parity check: run an artifact on its runtime and compare it with the PyTorch fp32 model.

Inputs are seeded random tensors and real photos (scikit-image's chelsea, astronaut and coffee,
resized and center-cropped like timm's eval transform, normalised with the model's mean/std).
int8 artifacts are also fed augmented crops of those photos (and images of their calibration folder,
when they had one) and are judged on the images of their calibration domain only (see JUDGED_ON);
their random-noise figures are reported for information.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from mobiledeploy.errors import UserError

PHOTOS = ("chelsea", "astronaut", "coffee")

# The bars: fp32 must compute what PyTorch computes (worst sample's relative L2 ≤ 1e-5, every top-1
# identical). fp16 is judged against a stated tolerance: fp16 keeps 11 significant bits, and over a
# hundred layers we measured relative L2 of 1e-4 to 1e-3 (fp16 weights, TFLite) and ~1e-3 (fp16
# compute, onnxruntime); the bar leaves 10x headroom. Top-1 may flip where logits are near-tied.
#
# int8 is judged against PyTorch fp32 on images of its calibration domain (JUDGED_ON below: the
# calibration folder's images, else the scikit-image photos and crops of them; random-noise figures stay
# in the manifest for information): worst rel L2 over those images, mean top-1 agreement.
# Measured worst cases (coremltools 9.0, ai-edge-quantizer 0.10, onnxruntime 1.32; 9 judged images):
# - TFLite/ONNX (weights and activations int8, bar "int8"): TFLite 0.35 / top-1 5/9 on random-weight
#   mobilenetv2_035 @96 (0.20 / 7/9 for mobilenetv2_100 @224), 0.12 / 9/9 on the trained digits model
#   calibrated on digits; ONNX ≤ 0.10 / ≥ 7/9 everywhere. Fails, as it should: TFLite digits
#   calibrated on photos (0.59; its held-out accuracy drops from 98.6 % to 88 %).
# - Core ML (weights only, activations float, bar "int8_weights", named by its quantization step):
#   int8 linear ≤ 0.024, 6-bit palettes ≤ 0.14 (top-1 ≥ 7/9); 4-bit per-tensor palettes measure
#   0.23 / 5/9 and fail this bar.
# Random 1000-class logits stay close, hence the low top-1 bars. Accuracy itself is held by the trained
# digits model's tests (≤ 1 point drop) and BENCHMARKS.md.
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"rel_l2": 1e-5, "top1_agreement": 1.0},
    "fp16": {"rel_l2": 2e-2, "top1_agreement": 0.85},
    "int8": {"rel_l2": 0.25, "top1_agreement": 0.5},
    "int8_weights": {"rel_l2": 0.2, "top1_agreement": 2 / 3},
}
# Precisions judged on some inputs only: groups of input-name prefixes, the first group present in the
# batch is judged, the rest is reported for information. int8 is judged in its calibration domain on
# images the calibration never saw: the held-out images of the user's calibration folder ("heldout:",
# every 5th by name) when it had one, else scikit-image's photos and crops of them, which the default
# calibration set leaves out; random noise lies outside any calibration range.
JUDGED_ON: dict[str, tuple[tuple[str, ...], ...]] = {"int8": (("heldout:",), ("photo:", "crop:"))}
# Full-integer int8's per-image error is heavy-tailed (digits model, 360 held-out images: median 0.09,
# worst 0.62 for TFLite), so the worst of a few images flips with which images are drawn; it is judged
# on the median image instead (the worst stays in per_sample). Held-out accuracy is the real judge.
STATISTIC: dict[str, str] = {"int8": "median"}
# Below this input sensitivity (spread of the reference outputs over the samples / their RMS) a parity
# check cannot tell a wrong artifact from a right one. timm:lcnet_050 with random weights measured ~1e-9;
# working models measure 0.1 and more.
MIN_SENSITIVITY = 1e-4
# Extra natural images for those precisions: augmented photo crops, drawn with their own seed (the
# default int8 calibration draws its crops with seed 0, the fp32-vs-int8 agreement check with seed 1).
N_CROPS: dict[str, int] = {"int8": 6}
CROP_SEED = 2
# Where PyTorch fp32 is itself far from the exact result (an ill-conditioned model on these inputs, e.g.
# efficientnet_b0 with random weights on a photo), the 1e-5 bar against it cannot hold for any fp32 artifact.
# An fp32 artifact that misses the bar is then judged against the model run in float64: where PyTorch fp32
# is within 1e-5 of float64 the bar stays 1e-5 (now against float64); where it is not, the artifact's worst
# sample may be up to FLOAT64_FACTOR x PyTorch fp32's own worst distance (the worse of its run with one
# thread and with all: its reductions split differently). Correct fp32 runtimes differ by several times in
# that distance. Measured on efficientnet_b0's worst photo (random weights, 64 px), on an Intel Xeon: PyTorch
# 2.2e-5 (2 threads) / 2.9e-5 (1 thread), our Core ML interpreter 2.5e-5, LiteRT 8.3e-5, onnxruntime 1.2e-4
# (the same graph 1.4e-5 without its x86 blocked-layout NCHWc kernels): 4.1x PyTorch's worse run; on an AMD
# EPYC PyTorch was 9e-5 and onnxruntime 1.2e-4. A wrong artifact is off by far more (and must keep every top-1).
FLOAT64_FACTOR = 8.0


@dataclass
class Sample:
    """One parity input: where it came from, the model-space arrays for PyTorch and the artifact's feeds."""

    name: str
    arrays: tuple[np.ndarray, ...]  # what the PyTorch model takes (NCHW, normalised)
    feeds: tuple[np.ndarray, ...] = ()  # what the artifact takes (pixels, NHWC, … as its inputs say)

    def __post_init__(self) -> None:
        if not self.feeds:
            self.feeds = self.arrays


@dataclass
class ParityReport:
    """Worst-case agreement over all samples (rel_l2 and max_abs: max; cosine: min; top-1: mean)."""

    reference: str
    max_abs: float
    rel_l2: float
    cosine: float
    top1_agreement: float | None
    n_samples: int
    inputs: list[str]
    tolerance: dict[str, float]
    passed: bool
    per_sample: list[dict[str, Any]] = field(default_factory=list)
    # Inputs run but not judged (random noise for int8): their figures, for information only.
    informational: dict[str, Any] | None = None
    # Several outputs: each one's worst figures over the judged samples, by output name.
    outputs: dict[str, dict[str, float]] | None = None
    # How much PyTorch's outputs change from one input to the next, relative to their size. Near 0 the
    # model ignores its input (e.g. random weights whose activations collapse): agreement proves nothing.
    input_sensitivity: float | None = None
    # Judged against float64 (see FLOAT64_FACTOR): the figures against PyTorch fp32 it missed the bar by, and
    # PyTorch fp32's own distance from float64 that set the bar. None when judged against PyTorch fp32.
    float64: dict[str, Any] | None = None

    @property
    def vacuous(self) -> bool:
        """True when the reference barely depends on its input, so matching it says nothing."""
        return self.input_sensitivity is not None and self.input_sensitivity < MIN_SENSITIVITY

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form for the manifest."""
        return asdict(self)

    def summary(self) -> str:
        """One line with the numbers and the bar."""
        t1 = "n/a" if self.top1_agreement is None else f"{self.top1_agreement:.3f}"
        tol = self.tolerance
        against = ""
        if self.float64:
            against = (f" against float64 (PyTorch fp32 is {self.float64['torch_fp32_rel_l2']:.1e} from it; "
                       f"{self.float64['rel_l2_vs_fp32']:.1e} from PyTorch fp32)")
        return (f"rel_l2 {self.rel_l2:.2e} (bar {tol['rel_l2']:.2g}{', median image' if 'statistic' in tol else ''}){against}, "
                f"max_abs {self.max_abs:.2e}, cosine {self.cosine:.7f}, top-1 agreement {t1} "
                f"(bar {tol['top1_agreement']:.2f}) over {self.n_samples} samples")


def photo_pixels(name: str, size: tuple[int, int], crop_pct: float = 0.875) -> np.ndarray:
    """A scikit-image photo as (3, H, W) float32 pixels in [0, 255], resized and center-cropped like timm eval."""
    from mobiledeploy.errors import require

    data = require("skimage.data", "photos")
    img = torch.from_numpy(np.ascontiguousarray(getattr(data, name)())).permute(2, 0, 1)[None].float()
    h, w = size
    scale = max(h / crop_pct / img.shape[2], w / crop_pct / img.shape[3])
    rh, rw = max(h, round(img.shape[2] * scale)), max(w, round(img.shape[3] * scale))
    img = torch.nn.functional.interpolate(img, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (rh - h) // 2, (rw - w) // 2
    # Whole pixel values: what a camera frame or a decoded JPEG hands an app.
    return img[0, :, top:top + h, left:left + w].round().clamp(0, 255).numpy().astype(np.float32)


def crop_pixels(n: int, size: tuple[int, int], seed: int = CROP_SEED) -> list[tuple[str, np.ndarray]]:
    """`n` (name, (3, H, W) whole pixels) random crops of scikit-image's photos, flipped and brightened at
    random: the augmentation of exporters.quantize's default calibration set, other draws.
    """
    from mobiledeploy.errors import require

    from . import quantize

    data = require("skimage.data", "photos")
    sources = []
    for name in PHOTOS:  # held out of the default calibration set (quantize.HELD_OUT_PHOTOS)
        try:
            sources.append((name, quantize._as_rgb01(getattr(data, name)())))
        except Exception:  # a photo that needs a download (pooch), or an older scikit-image without it
            continue
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        name, src = sources[int(rng.integers(len(sources)))]
        h, w = src.shape[:2]
        frac = rng.uniform(0.4, 1.0)
        ch, cw = max(2, int(h * frac)), max(2, int(w * frac))
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img = quantize.resize_center(src[y0:y0 + ch, x0:x0 + cw], *size)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = np.clip(img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1), 0, 1)
        out.append((f"crop:{name}#{i}", np.round(img * 255).transpose(2, 0, 1).astype(np.float32)))
    return out


def folder_pixels(directory: str | Path, n: int, size: tuple[int, int], seed: int = CROP_SEED
                  ) -> list[tuple[str, np.ndarray]]:
    """(name, (3, H, W) whole pixels) of up to `n` of a calibration folder's held-out images (never calibrated
    on), center-cropped and resized; none when the folder is too small to hold any out."""
    from mobiledeploy.errors import UserError, require

    from . import quantize

    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"the int8 calibration folder {d} recorded in the manifest is gone",
                        "int8 is judged on its held-out images: restore it, or re-export")
    try:
        _, files = quantize.split_folder(d)
    except UserError:
        raise UserError(f"no images left in the int8 calibration folder {d}", "restore them, or re-export") from None
    if not files:
        return []
    io = require("skimage.io", "photos")
    pick = sorted(np.random.default_rng(seed).choice(len(files), min(n, len(files)), replace=False))
    out = []
    for i in pick:
        img = quantize.resize_center(quantize._as_rgb01(io.imread(str(files[i]))), *size)
        out.append((f"heldout:{files[i].name}", np.round(img * 255).transpose(2, 0, 1).astype(np.float32)))
    return out


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(pixels/255 - mean) / std over the channel axis 1 of an NCHW batch, in float32."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((pixels.astype(np.float32) / np.float32(255.0) - m) / s).astype(np.float32)


def takes_pixels(spec: Mapping[str, Any]) -> bool:
    """True when an artifact input wants raw pixels in [0, 255] (normalisation folded into the artifact)."""
    vr = spec.get("value_range")
    return spec.get("kind") == "image" or (isinstance(vr, (list, tuple)) and list(vr) == [0, 255])


def to_feed(arr_nchw: np.ndarray, pixels: np.ndarray | None, spec: Mapping[str, Any]) -> np.ndarray:
    """The array an artifact input takes: pixels or the normalised tensor, in its layout and dtype."""
    a = pixels if takes_pixels(spec) and pixels is not None else arr_nchw
    if spec.get("layout") == "NHWC" and a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    dt = spec.get("dtype")
    if dt in ("float32", "float16", "uint8", "int8") and not takes_pixels(spec):
        a = a.astype(dt)
    return np.ascontiguousarray(a)


def samples(input_shapes: Sequence[Sequence[int]], mean: Sequence[float], std: Sequence[float],
            n_random: int = 3, photos: bool = True, seed: int = 0, crop_pct: float = 0.875,
            specs: Sequence[Mapping[str, Any]] | None = None, precision: str = "fp32",
            target_info: Mapping[str, Any] | None = None) -> list[Sample]:
    """Seeded random inputs, plus the photos (and, for int8, photo crops) when the model takes one 3-channel image.

    An int8 artifact calibrated on a folder of images (target_info.quantization.calibration_dir) also gets
    images drawn from that folder, and is judged on them: the domain it was calibrated for (they may be
    among the calibration images themselves).

    `input_shapes` are the PyTorch model's (NCHW); `specs` the artifact's inputs (name, layout,
    kind/value_range), which decide whether it is fed normalised tensors or pixels.
    """
    specs = list(specs or [{} for _ in input_shapes])
    gen = torch.Generator().manual_seed(seed)
    image = len(input_shapes) == 1 and len(input_shapes[0]) == 4 and input_shapes[0][1] == len(mean)
    out = []
    for i in range(n_random):
        if image and takes_pixels(specs[0]):
            # The artifact takes pixels: random pixels, normalised exactly as the reference expects.
            px = torch.randint(0, 256, tuple(input_shapes[0]), generator=gen).numpy().astype(np.float32)
            arrays, pixels = (normalise(px, mean, std),), (px,)
        else:
            arrays = tuple(torch.randn(tuple(s), generator=gen).numpy() for s in input_shapes)
            pixels = (None,) * len(arrays)
        feeds = tuple(to_feed(a, p, sp) for a, p, sp in zip(arrays, pixels, specs))
        out.append(Sample(f"random:seed={seed}#{i}", arrays, feeds))
    if photos and image:
        shp = tuple(input_shapes[0])
        pics = [(f"photo:{p}", photo_pixels(p, (shp[2], shp[3]), crop_pct)) for p in PHOTOS]
        pics += crop_pixels(N_CROPS.get(precision, 0), (shp[2], shp[3]))
        calib = ((target_info or {}).get("quantization") or {}).get("calibration_dir")
        if calib and precision in N_CROPS:
            pics += folder_pixels(calib, N_CROPS[precision] + len(PHOTOS), (shp[2], shp[3]))
        for k, (name, _) in enumerate(pics):
            px = np.stack([pics[(k + j) % len(pics)][1] for j in range(shp[0])])
            arr = normalise(px, mean, std)
            out.append(Sample(name, (arr,), (to_feed(arr, px, specs[0]),)))
    if not out:  # a parity check over nothing would pass vacuously
        raise UserError("no input to compare on: no random inputs asked for, and the photos only fit a "
                        "3-channel image input", "ask for at least one random input")
    return out


def compare(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], names: Sequence[str] | None = None
            ) -> dict[str, Any]:
    """Agreement of one sample's outputs: rel L2, max abs, cosine and top-1 (for 2-D logits); with several
    outputs each is also compared on its own (`outputs`), and the headline figures are the worst of them, so
    a small output cannot hide its error inside a large one."""
    if len(ref) != len(got):
        raise ValueError(f"the model has {len(ref)} outputs, the artifact gave {len(got)}")
    if len(ref) > 1:
        names = list(names or [f"output_{i}" for i in range(len(ref))])
        each = {n: _compare_one([a], [b]) for n, a, b in zip(names, ref, got)}
        whole = _compare_one(ref, got)
        return {"rel_l2": max(e["rel_l2"] for e in each.values()), "max_abs": whole["max_abs"],
                "cosine": min(e["cosine"] for e in each.values()), "top1": whole["top1"],
                "outputs": {n: {k: e[k] for k in ("rel_l2", "max_abs", "cosine")} for n, e in each.items()}}
    return _compare_one(ref, got)


def _compare_one(ref: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> dict[str, Any]:
    r = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in ref])
    g = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in got])
    if r.shape != g.shape:
        raise ValueError(f"output sizes differ: reference {r.size} values, artifact {g.size}")
    diff = g - r
    rn = np.linalg.norm(r)
    rel = float(np.linalg.norm(diff) / rn) if rn > 0 else float(np.linalg.norm(diff))
    den = np.linalg.norm(r) * np.linalg.norm(g)
    cos = float(r @ g / den) if den > 0 else float(np.array_equal(r, g))
    rows = [np.argmax(np.asarray(a), -1) == np.argmax(np.asarray(b), -1)
            for a, b in zip(ref, got) if np.ndim(a) == 2 and np.shape(a)[-1] > 1]
    top1 = float(np.mean(np.concatenate(rows))) if rows else None
    return {"rel_l2": rel, "max_abs": float(np.abs(diff).max()) if diff.size else 0.0, "cosine": cos, "top1": top1}


def reference_outputs(module: Callable, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the PyTorch model in fp32, no grad; outputs (tuples, lists, dicts, nested) flattened in pytree
    order, the order every target's outputs follow."""
    from torch.utils import _pytree as pytree

    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
    return [t.detach().float().numpy() for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def check(reference: Callable, run: Callable[[Path, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]],
          artifact: Path, input_names: Sequence[str], output_names: Sequence[str], batch: Sequence[Sample],
          precision: str = "fp32", reference_name: str = "PyTorch fp32",
          target_info: Mapping[str, Any] | None = None) -> ParityReport:
    """Run every sample through the artifact and the reference; judge the worst case against the bar.

    `output_names` are the artifact outputs that correspond, in order, to the model's outputs.
    """
    per, refs, refs32, gots = [], [], [], []
    for s in batch:
        ref = reference_outputs(reference, s.arrays)
        refs32.append(ref)
        refs.append(np.concatenate([np.asarray(a, np.float64).ravel() for a in ref]))
        got = run(artifact, dict(zip(input_names, s.feeds)))
        missing = [n for n in output_names if n not in got]
        if missing:
            raise UserError(f"{Path(artifact).name}: its runtime returned no output named {missing[0]!r} (it gave "
                            f"{sorted(got)})", "the manifest lists outputs the artifact does not have: restore the "
                                               "manifest, or re-export")
        gots.append([np.asarray(got[n]) for n in output_names])
        m = compare(ref, gots[-1], output_names)
        m["input"] = s.name
        per.append(m)
    tol = TOLERANCES[precision]
    # A quantization step may name a bar of its own (Core ML's weight-only int8 is held tighter).
    bar = ((target_info or {}).get("quantization") or {}).get("bar")
    if precision in JUDGED_ON and bar in TOLERANCES:
        tol = TOLERANCES[bar]
    groups = [g for g in JUDGED_ON.get(precision, ()) if any(m["input"].startswith(g) for m in per)]
    for m in per:
        m["judged"] = not groups or m["input"].startswith(groups[0])
    judged = [m for m in per if m["judged"]]
    if not judged:  # no natural images for this model (not one RGB input): judge on what there is
        judged = per
        for m in per:
            m["judged"] = True
    agg = _aggregate(judged)
    if STATISTIC.get(precision) == "median" and bar not in TOLERANCES:
        agg["rel_l2"] = float(np.median([m["rel_l2"] for m in judged]))
        tol = {**tol, "statistic": "median rel_l2 over the judged images"}
    ok = bool(agg["rel_l2"] <= tol["rel_l2"] and (agg["top1_agreement"] is None
                                                  or agg["top1_agreement"] >= tol["top1_agreement"]))
    float64 = None
    if not ok and precision == "fp32":
        judged64 = _judge_float64(reference, batch, refs32, gots, per, output_names)
        if judged64 is not None:
            judged, agg, tol, float64 = judged64
            ok = float64.pop("passed")
            reference_name = f"PyTorch float64 (torch {torch.__version__}), eval mode"
    rest = [m for m in per if not m["judged"]]
    info = None
    if rest:
        info = {**_aggregate(rest), "n_samples": len(rest), "inputs": [m["input"] for m in rest],
                "note": f"not judged: {precision} is judged on images of its calibration domain "
                        f"({', '.join(groups[0]) if groups else 'all inputs'})"}
    return ParityReport(
        reference=reference_name,
        **agg,
        n_samples=len(judged),
        inputs=[m["input"] for m in judged],
        tolerance=dict(tol),
        passed=ok,
        per_sample=per,
        informational=info,
        outputs=_per_output(judged),
        input_sensitivity=_sensitivity(refs),
        float64=float64,
    )


def float64_model(module: Callable) -> Callable[[Sequence[np.ndarray]], list[np.ndarray] | None] | None:
    """A float64 copy of the model as `arrays -> outputs` (flattened like reference_outputs; None where it
    cannot run in float64: an op or a constant fixed to float32), or None for a module that is not one."""
    import copy

    from torch.utils import _pytree as pytree

    if not isinstance(module, torch.nn.Module):
        return None
    try:
        m64 = copy.deepcopy(module).double()  # once per check, not per sample
    except Exception:  # a module that cannot be copied or cast: judged against fp32 alone
        return None

    def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        try:
            with torch.no_grad():
                xs = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
                out = m64(*[x.double() if x.is_floating_point() else x for x in xs])
        except Exception:  # not every model runs in float64; it is then judged against fp32 alone
            return None
        leaves = [t.detach() for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        if any(t.dtype != torch.float64 for t in leaves if t.is_floating_point()):
            return None  # part of it stayed in float32: not an exact reference
        return [t.numpy() for t in leaves]

    return run


def _judge_float64(reference: Callable, batch: Sequence[Sample], refs32: Sequence[Sequence[np.ndarray]],
                   gots: Sequence[Sequence[np.ndarray]], per: list[dict[str, Any]], output_names: Sequence[str]
                   ) -> tuple | None:
    """Judge an fp32 artifact that missed the bar against float64 (FLOAT64_FACTOR): (per-sample
    figures, aggregate, tolerance, float64 facts incl. 'passed'), or None where float64 cannot run."""
    judged, torch_errs, vs32 = [], [], []
    exact = float64_model(reference)
    if exact is None:
        return None
    for s, ref32, got, m32 in zip(batch, refs32, gots, per):
        ref64 = exact(s.arrays)
        if ref64 is None:
            return None
        torch_err = max(compare(ref64, r)["rel_l2"] for r in (ref32, *_one_thread_outputs(reference, s.arrays)))
        m = compare(ref64, got, output_names)
        m.update(input=s.name, judged=True, rel_l2_vs_fp32=m32["rel_l2"], torch_fp32_rel_l2=torch_err)
        judged.append(m)
        torch_errs.append(torch_err)
        vs32.append(m32["rel_l2"])
    per[:] = judged
    agg = _aggregate(judged)
    fp32_bar = TOLERANCES["fp32"]["rel_l2"]
    bar = fp32_bar if max(torch_errs) <= fp32_bar else FLOAT64_FACTOR * max(torch_errs)
    ok = agg["rel_l2"] <= bar and (agg["top1_agreement"] is None
                                   or agg["top1_agreement"] >= TOLERANCES["fp32"]["top1_agreement"])
    tol = {"rel_l2": bar, "top1_agreement": TOLERANCES["fp32"]["top1_agreement"],
           "reference": f"float64: within {FLOAT64_FACTOR:g}x PyTorch fp32's own distance from it where that "
                        f"exceeds {fp32_bar:g}, else within {fp32_bar:g}"}
    facts = {"passed": bool(ok), "torch_fp32_rel_l2": float(max(torch_errs)), "rel_l2_vs_fp32": float(max(vs32)),
             "factor": FLOAT64_FACTOR, "why": "PyTorch fp32 itself misses the 1e-5 bar against float64 on these inputs"
             if max(torch_errs) > TOLERANCES["fp32"]["rel_l2"] else "the artifact missed the bar against PyTorch fp32"}
    return judged, agg, tol, facts


def _one_thread_outputs(reference: Callable, arrays: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """PyTorch fp32's outputs run on one thread ([] where it already ran on one, or is not a module)."""
    if not isinstance(reference, torch.nn.Module) or torch.get_num_threads() == 1:
        return []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [reference_outputs(reference, arrays)]
    finally:
        torch.set_num_threads(threads)


def _sensitivity(refs: Sequence[np.ndarray]) -> float | None:
    """RMS distance of each sample's reference outputs from their mean over samples, over their RMS size."""
    if len(refs) < 2 or len({r.size for r in refs}) != 1:
        return None
    r = np.stack(refs)
    size = float(np.sqrt(np.mean(r ** 2)))
    return float(np.sqrt(np.mean((r - r.mean(0)) ** 2)) / size) if size > 0 else 0.0


def _per_output(per: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]] | None:
    """Each output's worst rel L2 / max abs and least cosine over the samples (None for one output)."""
    if not per or "outputs" not in per[0]:
        return None
    names = list(per[0]["outputs"])
    return {n: {"rel_l2": max(m["outputs"][n]["rel_l2"] for m in per),
                "max_abs": max(m["outputs"][n]["max_abs"] for m in per),
                "cosine": min(m["outputs"][n]["cosine"] for m in per)} for n in names}


def _aggregate(per: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Worst case over samples: max rel_l2 and max_abs, min cosine, mean top-1 agreement."""
    tops = [m["top1"] for m in per if m["top1"] is not None]
    return {"max_abs": max(m["max_abs"] for m in per), "rel_l2": max(m["rel_l2"] for m in per),
            "cosine": min(m["cosine"] for m in per), "top1_agreement": float(np.mean(tops)) if tops else None}
