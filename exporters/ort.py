"""ONNX Runtime's mobile format (.ort) with its reduced operator config, for onnxruntime-mobile apps.

The .ort file is the .onnx graph optimised offline and serialised as a flatbuffer that the
minimal (mobile) onnxruntime build loads without protobuf; `required_operators.config` lists
the kernels it needs, the input of a custom reduced-size onnxruntime build.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mobiledeploy.errors import UserError, require

from .runtimes import register_runtime
from .targets import ExportRequest, TargetResult, register_target

CONFIG_SUFFIX = ".required_operators.config"


def onnx_to_ort(onnx_path: Path, ort_path: Path, target_platform: str = "arm", write_config: bool = True
                ) -> dict[str, Any]:
    """Convert an .onnx to .ort (fixed optimisations); the reduced operator config goes beside it (and in the result)."""
    ort = require("onnxruntime", "onnx")
    conv = require("onnxruntime.tools.convert_onnx_models_to_ort", "onnx")
    src, dst = Path(onnx_path), Path(ort_path)
    if not src.is_file():
        raise UserError(f"ONNX model not found: {src}")
    with tempfile.TemporaryDirectory(prefix="mobiledeploy-ort-") as d:
        work = Path(d)
        # The tool converts whole folders and names outputs after inputs: give it one model alone
        # (with its external weights, if any).
        model = work / "in" / "model.onnx"
        model.parent.mkdir()
        _copy_onnx(src, model)
        out_dir = work / "out"
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the tool prints progress meant for its CLI
            conv.convert_onnx_models_to_ort(model, output_dir=out_dir,
                                            optimization_styles=[conv.OptimizationStyle.Fixed],
                                            target_platform=target_platform)
        produced = out_dir / "model.ort"
        configs = sorted(out_dir.glob("*.config"))
        if not produced.is_file() or not configs:
            raise UserError(f"onnxruntime did not convert {src.name} to the ORT format")
        config_text = configs[0].read_text()
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(produced, tmp)
        tmp.replace(dst)
    config_dst = config_path(dst)
    if write_config:
        config_dst.write_text(config_text)
    ops = [ln for ln in config_text.splitlines() if ln and not ln.startswith("#")]
    return {"onnxruntime": ort.__version__, "target_platform": target_platform, "optimization": "Fixed",
            "operator_config": config_dst.name if write_config else None, "operator_config_lines": ops}


def config_path(ort_path: Path) -> Path:
    """Where the reduced operator config of an .ort file lives: `<stem>.required_operators.config`."""
    return Path(ort_path).with_name(Path(ort_path).stem + CONFIG_SUFFIX)


def _copy_onnx(src: Path, dst: Path) -> None:
    """Copy an .onnx with its external data files, if any."""
    onnx = require("onnx", "onnx")
    model = onnx.load(str(src))  # pulls external data in; mobile models are far below protobuf's 2 GB
    onnx.save(model, str(dst))


def _onnx_rewrites() -> tuple[str, ...]:
    """The onnx target's rewrite passes: .ort is that graph, so it needs the same ones."""
    from .targets import _TARGETS

    try:
        from . import onnx as _  # noqa: F401 - registers the onnx target
    except ImportError:
        return ()
    t = _TARGETS.get("onnx")
    return t.rewrites if t is not None else ()


@register_target("ort", ".ort", rewrites=_onnx_rewrites(), extra="onnx")
def convert(request: ExportRequest) -> TargetResult:
    """Export ONNX through the onnx target, then convert it to the ORT mobile format."""
    from .targets import get_target

    if request.precision == "fp16":
        # Measured: GhostNetV2 fp16 .ort 25.0 MB, fp32 .ort 24.8 MB; the fp16 .onnx is 12.4 MB.
        raise UserError("--precision fp16 gains nothing for ort: onnxruntime's ORT conversion casts fp16 "
                        "weights back to fp32 for its CPU kernels (the .ort is as large as fp32)",
                        "use --target onnx --precision fp16, or --target ort in fp32 or int8")

    from . import app

    onnx_target = get_target("onnx")
    with tempfile.TemporaryDirectory(prefix="mobiledeploy-ort-") as d:
        onnx_path = Path(d) / (Path(request.out_path).stem + ".onnx")
        res = onnx_target.convert(dataclasses.replace(request, out_path=onnx_path))
        # Metadata and int8 are applied to the ONNX graph: the .ort format is their serialisation.
        res = app.finish_onnx(request, res)
        # The pipeline moves only the artifact; the operator config is written beside the final file
        # by the after-export hook, from the lines kept in the manifest.
        info = onnx_to_ort(res.artifact, Path(request.out_path), write_config=False)
    extra = dict(res.extra) | {"ort": info, "via": "onnx"}
    return TargetResult(Path(request.out_path), "onnxruntime.tools.convert_onnx_models_to_ort", info["onnxruntime"],
                        res.inputs, res.outputs, extra)


@register_runtime("ort")
def run_ort(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an .ort model with onnxruntime on the CPU, one thread."""
    ort = require("onnxruntime", "onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(feeds))))
