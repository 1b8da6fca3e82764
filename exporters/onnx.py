"""ONNX target: torch.onnx's dynamo exporter on the rewritten program, simplified with onnxsim; run with onnxruntime."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mobiledeploy.errors import require
from mobiledeploy.versions import dist_version

from .runtimes import register_runtime
from .targets import ExportRequest, TargetResult, register_target

# Checked by the pipeline before any heavy work, so a missing extra fails fast with its pip line.
REQUIRES = ("onnx", "onnxscript", "onnxsim", "onnxruntime")
_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 9: "bool", 11: "float64"}


# onnxruntime pools in plain NCHW between layout conversions; its blocked-layout convs are faster.
@register_target("onnx", ".onnx", rewrites=("avgpool_as_depthwise_conv",), extra="onnx")
def convert(req: ExportRequest) -> TargetResult:
    """Export the program with torch.onnx (dynamo), simplify it, optionally cast to fp16, and save it."""
    import torch

    onnx = require("onnx", "onnx")
    require("onnxscript", "onnx")
    onnxsim = require("onnxsim", "onnx")
    from .diagnose import conversion_error

    n_in = len(req.example_inputs)
    input_names = ["input"] if n_in == 1 else [f"input_{i}" for i in range(n_in)]
    try:
        prog = torch.onnx.export(req.program, tuple(req.example_inputs), dynamo=True, external_data=False,
                                 input_names=input_names, optimize=True, verbose=False,
                                 opset_version=req.options.get("opset"))
    except Exception as e:  # the exporter wraps every failure; find the op it names
        raise conversion_error(req.program, e, "onnx") from e
    model = prog.model_proto
    outs = model.graph.output
    if len(outs) == 1 and outs[0].name != "output":
        _rename_output(model, outs[0].name, "output")
    exporter_keys = {e.key for e in model.metadata_props}
    simplified, ok = onnxsim.simplify(model)
    if ok:  # onnxsim checks its result itself; keep the exporter's graph if it could not
        model = simplified
    _drop_foreign_metadata(model, keep=exporter_keys)
    if req.precision == "fp16":
        f16 = require("onnxconverter_common.float16", "onnx")
        # I/O stays fp32 so that apps and the parity check feed the same tensors at both precisions.
        import warnings

        with warnings.catch_warnings():  # it warns once per weight it clamps to fp16's range
            warnings.simplefilter("ignore")
            model = f16.convert_float_to_float16(model, keep_io_types=True)
    elif req.precision != "fp32":
        from mobiledeploy.errors import UserError

        raise UserError(f"--precision {req.precision} is not supported for onnx", "use fp32 or fp16")
    onnx.save(model, str(req.out_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return TargetResult(
        artifact=req.out_path,
        converter="torch.onnx (dynamo) + onnxsim",
        converter_version=f"torch {torch.__version__}, onnxscript {dist_version('onnxscript')}, onnxsim {dist_version('onnxsim')}"
        + (f", onnxconverter-common {dist_version('onnxconverter_common')}" if req.precision == "fp16" else ""),
        inputs=[_io(v) for v in model.graph.input],
        outputs=[_io(v) for v in model.graph.output],
        extra={"opset": opset, "ir_version": int(model.ir_version), "nodes": len(model.graph.node),
               "op_types": sorted({n.op_type for n in model.graph.node})},
    )


def _drop_foreign_metadata(model: Any, keep: set[str]) -> None:
    """Drop metadata_props not in `keep`: onnxsim records ~20 `onnxsim.*` keys (its options, the nodes it
    removed) that would ship inside the app's model; ours are written afterwards by the app-facing step."""
    mine = [e for e in model.metadata_props if e.key in keep]
    del model.metadata_props[:]
    model.metadata_props.extend(mine)


def _rename_output(model: Any, old: str, new: str) -> None:
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    for o in model.graph.output:
        if o.name == old:
            o.name = new


def _io(v: Any) -> dict[str, Any]:
    t = v.type.tensor_type
    return {"name": v.name, "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim],
            "dtype": _DTYPES.get(t.elem_type, str(t.elem_type))}


def _runtime_info() -> dict[str, str]:
    return {"name": "onnxruntime", "version": dist_version("onnxruntime"), "provider": "CPUExecutionProvider"}


@functools.lru_cache(maxsize=4)
def _session(path: str, mtime_ns: int, threads: int) -> Any:
    ort = require("onnxruntime", "onnx")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def session(path: Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session for an artifact (cached while the file is unchanged)."""
    p = Path(path)
    return _session(str(p.resolve()), p.stat().st_mtime_ns, threads)


@register_runtime("onnx", info=_runtime_info)
def run(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an .onnx file on onnxruntime's CPU provider."""
    sess = session(path)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {k: np.ascontiguousarray(v) for k, v in feeds.items()})))
