"""ONNX target: torch.onnx's dynamo exporter on the rewritten program, simplified with onnxsim; run with onnxruntime."""

from __future__ import annotations

from typing import Any

from mobiledeploy.errors import UserError, require
from mobiledeploy.versions import dist_version

from .targets import ExportRequest, Target, TargetResult, register_target

_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 9: "bool", 11: "float64"}


@register_target
class OnnxTarget(Target):
    """`.onnx` for onnxruntime: the dynamo exporter, onnxsim, fp16 casts, int8 (static QDQ), metadata_props."""

    name, suffix, extra = "onnx", ".onnx", "onnx"
    requires = ("onnx", "onnxscript", "onnxsim", "onnxruntime")
    # onnxruntime pools in plain NCHW between layout conversions; its blocked-layout convs are faster.
    rewrites = ("avgpool_as_depthwise_conv",)
    takes_layout = True

    def convert(self, req: ExportRequest) -> TargetResult:
        """Export with torch.onnx (dynamo), simplify, optionally cast to fp16, save."""
        return convert(req)

    def finish(self, req: ExportRequest, result: TargetResult) -> TargetResult:
        """int8 and metadata_props on the graph."""
        from .app import finish_onnx

        return finish_onnx(req, result)


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
                                 opset_version=req.options.opset)
    except Exception as e:  # the exporter wraps every failure; find the op it names
        raise conversion_error(req.program, e, "onnx") from e
    model = prog.model_proto
    outs = model.graph.output
    names = req.output_names or (["output"] if len(outs) == 1 else [o.name for o in outs])
    if len(names) != len(outs):
        raise UserError(f"the ONNX graph has {len(outs)} outputs, the model {len(names)}",
                        "a model output that is not a tensor (None, a number) cannot be exported")
    for o, new in zip(list(outs), names):
        if o.name != new:
            _rename_output(model, o.name, new)
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
    """Rename a graph output everywhere it appears: its producer, the nodes that also consume it (a feature
    map returned and used further on), the graph outputs and its value_info."""
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for v in model.graph.value_info:
        if v.name == old:
            v.name = new
    for o in model.graph.output:
        if o.name == old:
            o.name = new


def _io(v: Any) -> dict[str, Any]:
    t = v.type.tensor_type
    return {"name": v.name, "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim],
            "dtype": _DTYPES.get(t.elem_type, str(t.elem_type))}
