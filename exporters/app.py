"""App-ready export stages that several targets share: the app-facing input, int8, metadata, bundles.

- (exporters.app_input, a target's prepare: the graph's input becomes RGB pixels in the asked layout with
  the normalisation inside.)
- `quantize_in_place`, `write_tflite_metadata`, `finish_onnx`, `compress_coreml_in_place`
  (a target's finish, on the artifact still under its temporary name).
- `bundle_dest` / bundles: after the artifact and its manifest are in place.

Each target module calls the ones it needs; nothing here knows a target by name.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import quantize as Q
from .app_input import describe_input
from .targets import ExportRequest, TargetResult

N_AGREEMENT = 32  # calibration-style photos on which an int8 artifact is compared with its fp32 self


# --- finish -------------------------------------------------------------------------------------


def finish_onnx(req: ExportRequest, result: TargetResult) -> TargetResult:
    """int8 (static QDQ) and metadata_props on an ONNX graph (the onnx target's finish; ort serialises it)."""
    from .onnx_metadata import image_classifier_props, write_onnx_metadata

    describe_input(req, result)
    if req.int8:
        quantize_in_place(req, result)
    spec = req.app_input
    inp = result.inputs[0]
    shape = inp.get("shape", [])
    if len(shape) == 4:
        layout = spec.layout if spec else "nchw"
        h, w = (shape[1], shape[2]) if layout == "nhwc" else (shape[2], shape[3])
        props = image_classifier_props(
            source_model=req.model_name, input_name=inp["name"], layout=layout, height=int(h), width=int(w),
            mean=spec.mean if spec else req.mean, std=spec.std if spec else req.std,
            value_range=spec.value_range if spec else (0.0, 1.0), normalization_in_graph=bool(spec),
            labels=req.labels, precision=req.final_precision)
        write_onnx_metadata(Path(result.artifact), props)
        result.extra["metadata"] = {"format": "onnx metadata_props", "keys": sorted(props)}
    return result


def write_tflite_metadata(req: ExportRequest, result: TargetResult) -> None:
    """Image-classifier metadata (normalisation, image properties, labels) inside the .tflite."""
    from .tflite_metadata import ImageClassifierMetadata, write_metadata

    spec = req.app_input
    if spec is None:
        return
    if spec.layout != "nhwc":
        result.extra["metadata"] = {"format": "tflite metadata", "written": False,
                                    "reason": "MediaPipe and the TFLite support library need an NHWC input"}
        return
    mean, std = spec.pixel_mean_std()
    labels = req.labels
    meta = ImageClassifierMetadata(name=req.model_name, height=spec.height, width=spec.width, mean=mean[:1],
                                   std=std[:1], labels=labels, input_name=result.inputs[0]["name"],
                                   output_name=result.outputs[0]["name"] if result.outputs else "score")
    write_metadata(Path(result.artifact), meta)
    result.extra["metadata"] = {"format": "tflite metadata (TFLITE_METADATA, schema 1.0.0)", "written": True,
                                "normalization": {"mean": mean[:1], "std": std[:1]},
                                "associated_files": [meta.labels_file] if labels else []}


def _calibration_inputs(req: ExportRequest, result: TargetResult, n: int, seed: int = 0) -> np.ndarray:
    """Calibration-domain images in the graph's input form (pixels in its layout, or the normalised NCHW tensor)."""
    spec = req.app_input
    h, w = _hw(req, result)
    imgs = Q.calibration_images(h, w, req.options.quant.calibration, n=n, seed=seed)
    if spec is not None:
        return Q.to_input(imgs, spec.layout, (0.0, 255.0))
    return Q.to_input(imgs, "nchw", (0.0, 1.0), req.mean, req.std)


def quantize_in_place(req: ExportRequest, result: TargetResult) -> None:
    """Replace the fp32 .tflite/.onnx by its int8 version; keep size and agreement with fp32 in result.extra."""
    art = Path(result.artifact)
    data = _calibration_inputs(req, result, req.options.quant.samples)
    with tempfile.TemporaryDirectory(prefix="mobiledeploy-int8-") as tmp:
        fp32 = Path(tmp) / ("fp32" + art.suffix)
        shutil.copyfile(art, fp32)
        out = Path(tmp) / ("int8" + art.suffix)
        if art.suffix == ".tflite":
            info = Q.quantize_tflite(fp32, out, data, int8_io=req.options.quant.int8_io)
        else:
            info = Q.quantize_onnx(fp32, out, data)
        # Agreement with the fp32 artifact on held-back augmented photos (not the calibration batch).
        x = _calibration_inputs(req, result, N_AGREEMENT, seed=1)
        agreement = Q.compare(Q.run_batch(fp32, x), Q.run_batch(out, x))
        info |= {"size": Q.size_report(fp32, out), "vs_fp32": agreement, **calibration_facts(req)}
        shutil.copyfile(out, art)
    result.extra["quantization"] = info
    if info.get("io_dtype") == "int8":
        from mobiledeploy.devicebench.runners import load_runner

        (spec,) = load_runner(art).input_specs()
        result.inputs[0]["dtype"] = "int8"
        result.inputs[0]["quantization"] = {"scale": spec.quantization[0], "zero_point": spec.quantization[1]}


def calibration_facts(req: ExportRequest) -> dict[str, str | None]:
    """What an int8 export was calibrated on, for its manifest (`calibration_dir` steers the parity check)."""
    return {"calibration": str(req.options.quant.calibration or "scikit-image photos + augmentations"),
            "calibration_dir": calibration_dir(req)}


def calibration_dir(req: ExportRequest) -> str | None:
    """The user's calibration folder (absolute), where the parity check draws the images int8 is judged on."""
    d = req.options.quant.calibration
    return str(Path(d).resolve()) if d else None


def _hw(req: ExportRequest, result: TargetResult) -> tuple[int, int]:
    spec = req.app_input
    if spec is not None:
        return spec.height, spec.width
    shape = result.inputs[0]["shape"]
    return int(shape[2]), int(shape[3])


def compress_coreml_in_place(req: ExportRequest, result: TargetResult) -> None:
    """int8 linear (or palettized) weights in the .mlpackage; activations stay float."""
    art = Path(result.artifact)
    mode = req.options.coreml.compression
    with tempfile.TemporaryDirectory(prefix="mobiledeploy-int8-") as tmp:
        out = Path(tmp) / "int8.mlpackage"
        info = Q.compress_coreml(art, out, mode)
        info["size"] = Q.size_report(art, out)
        info["vs_fp32"] = _coreml_agreement(req, art, out)
        info["calibration_dir"] = calibration_dir(req)
        info["bar"] = "int8_weights"
        shutil.rmtree(art)
        shutil.copytree(out, art)
    result.extra["quantization"] = info


def _coreml_agreement(req: ExportRequest, fp: Path, compressed: Path) -> dict[str, Any]:
    """Top-1 agreement of compressed vs float weights on photos, both run by the reference interpreter.

    No Core ML runtime exists off macOS: the interpreter decompresses the constexpr ops as the MIL
    spec defines them, so this checks the stored weights, not the phone's kernels.
    """
    from .mlinterp import CoreMLModel

    a, b = CoreMLModel(fp), CoreMLModel(compressed)
    name = next(iter(a.program.inputs))
    outs = [o.name for o in a.description.output]
    key = "logits" if "logits" in outs else outs[0]
    shape = a.program.inputs[name][2]
    h, w = int(shape[-2]), int(shape[-1])
    imgs = Q.calibration_images(h, w, req.options.quant.calibration, n=N_AGREEMENT, seed=1)
    if name in a.image_inputs:
        feeds = [np.round(im * 255).astype(np.uint8) for im in imgs]
    else:
        feeds = list(Q.to_input(imgs, "nchw", (0.0, 1.0), req.mean, req.std)[:, None])
    ya = np.concatenate([np.asarray(a.predict({name: f})[key]).reshape(1, -1) for f in feeds])
    yb = np.concatenate([np.asarray(b.predict({name: f})[key]).reshape(1, -1) for f in feeds])
    return Q.compare(ya, yb) | {"note": "compressed weights decoded and run by mobiledeploy's reference interpreter"}


# --- after export --------------------------------------------------------------------------------


def bundle_dest(artifact: Path, target: Any, option: bool | Path) -> Path | None:
    """Where the bundle of this artifact goes: None without --bundle, a path given by a library caller,
    else <name>_<target>_bundle beside the artifact."""
    if not option:
        return None
    if isinstance(option, (str, Path)):
        return Path(option)
    from .bundle import bundle_path

    return bundle_path(artifact, target.name, target.suffix)
