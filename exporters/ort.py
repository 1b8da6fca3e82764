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
from typing import Any

from mobiledeploy.errors import UserError, require

from .onnx import OnnxTarget
from .targets import ExportRequest, Target, TargetResult, register_target

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


@register_target
class OrtTarget(Target):
    """`.ort` (onnxruntime's mobile format) with its reduced operator config beside it."""

    name, suffix, extra = "ort", ".ort", "onnx"
    requires = OnnxTarget.requires
    rewrites = OnnxTarget.rewrites  # .ort is the onnx target's graph, serialised
    precisions = ("fp32", "int8")
    takes_layout = True

    def convert(self, req: ExportRequest) -> TargetResult:
        """The onnx target's whole artifact (int8, metadata), then the ORT format."""
        onnx = OnnxTarget()
        with tempfile.TemporaryDirectory(prefix="mobiledeploy-ort-") as d:
            onnx_req = dataclasses.replace(req, out_path=Path(d) / (Path(req.out_path).stem + ".onnx"))
            res = onnx.finish(onnx_req, onnx.convert(onnx_req))
            # The pipeline moves only the artifact; extra_files writes the operator config beside the
            # final file, from the lines kept in the manifest.
            info = onnx_to_ort(res.artifact, Path(req.out_path), write_config=False)
        extra = dict(res.extra) | {"ort": info, "via": "onnx"}
        return TargetResult(Path(req.out_path), "onnxruntime.tools.convert_onnx_models_to_ort", info["onnxruntime"],
                            res.inputs, res.outputs, extra)

    def prepare(self, req: ExportRequest) -> ExportRequest:
        if req.precision == "fp16":
            # Measured: GhostNetV2 fp16 .ort 25.0 MB, fp32 .ort 24.8 MB; the fp16 .onnx is 12.4 MB.
            raise UserError("--precision fp16 gains nothing for ort: onnxruntime's ORT conversion casts fp16 "
                            "weights back to fp32 for its CPU kernels (the .ort is as large as fp32)",
                            "use --target onnx --precision fp16, or --target ort in fp32 or int8")
        return super().prepare(req)

    def finish(self, req: ExportRequest, result: TargetResult) -> TargetResult:
        return result  # convert finished the ONNX graph before serialising it

    def extra_files(self, artifact: Path, target_info: dict[str, Any]) -> list[Path]:
        """The reduced operator config, `<stem>.required_operators.config`, beside the .ort."""
        cfg = config_path(artifact)
        cfg.write_text("\n".join(target_info["ort"]["operator_config_lines"]) + "\n")
        return [cfg]
