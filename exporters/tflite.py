"""TFLite target: litert-torch on the rewritten program, then flatbuffer passes; run with ai-edge-litert (XNNPACK)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mobiledeploy.errors import UserError, require
from mobiledeploy.versions import dist_version

from .targets import ExportRequest, Target, TargetResult, register_target

# Flatbuffer passes for every .tflite, in order; issue 7's metadata writer is one more name here.
# The gate multiply goes first: it consumes the 2x resizes feeding a MUL; the rest become DEPTH_TO_SPACE
# (or per-axis copies when H and W differ); stepped slices and wide concats (odd resizes) last, so that
# every nearest resize stays inside one XNNPACK partition.
FB_PASSES = ["nearest_gate_broadcast_mul", "nearest_to_depth_to_space", "nearest_axis_repeat",
             "strided_slice_as_depthwise", "split_wide_concatenations"]
_DTYPES = {np.float32: "float32", np.float16: "float16", np.int32: "int32", np.int64: "int64", np.int8: "int8",
           np.uint8: "uint8"}


@register_target
class TFLiteTarget(Target):
    """`.tflite` for LiteRT: XNNPACK-friendly resizes, fp16 weights, int8 (ai-edge-quantizer), image metadata."""

    name, suffix, extra = "tflite", ".tflite", "tflite"
    requires = ("litert_torch", "ai_edge_litert")
    takes_layout = True

    def convert(self, req: ExportRequest) -> TargetResult:
        """Convert with litert-torch, make every resize XNNPACK-friendly, optionally store fp16 weights."""
        return convert(req)

    def finish(self, req: ExportRequest, result: TargetResult) -> TargetResult:
        """The input contract, int8 (judged against the fp32 artifact), then metadata into the int8 file."""
        from .app import quantize_in_place, write_tflite_metadata
        from .app_input import describe_input

        describe_input(req, result)
        if req.int8:
            quantize_in_place(req, result)
            # The artifact is the int8 model: its own delegation figures, not the fp32 model's.
            result.extra.update(result.extra["quantization"].get("xnnpack") or {})
        write_tflite_metadata(req, result)
        return result


def convert(req: ExportRequest) -> TargetResult:
    """Convert the program with litert-torch, make every resize XNNPACK-friendly, optionally store fp16 weights."""
    with _quiet():  # its import chatters on stderr (absl, oneDNN)
        litert_torch = require("litert_torch", "tflite")
    from .diagnose import conversion_error
    from .tflite_flatbuffer import run_fb_passes

    if req.precision not in ("fp32", "fp16"):  # int8 arrives as fp32: TFLiteTarget.finish quantizes it
        raise UserError(f"--precision {req.precision} is not supported for tflite", "use fp32 or fp16")
    module = _eval_module(req.program)
    try:
        with _quiet():
            edge = litert_torch.convert(module, tuple(req.example_inputs))
            data = edge.model_content() if callable(getattr(edge, "model_content", None)) else edge.model_content
    except Exception as e:  # litert-torch raises many kinds; find the op it names
        raise conversion_error(req.program, e, "tflite") from e
    passes = list(FB_PASSES) + (["fp16_weights"] if req.precision == "fp16" else [])
    passes += list(req.options.tflite_passes)
    data, applied = run_fb_passes(bytes(data), passes)
    if req.output_names:
        data = name_outputs(data, req.output_names)
    Path(req.out_path).write_bytes(data)
    info = delegate_report(req.out_path)
    return TargetResult(
        artifact=req.out_path,
        converter="litert-torch",
        converter_version=dist_version("litert-torch"),
        inputs=info.pop("inputs"),
        outputs=info.pop("outputs"),
        extra={**info, "flatbuffer_passes": applied},
    )


def name_outputs(data: bytes, names: list[str]) -> bytes:
    """Give the signature's outputs the model's names: litert-torch calls the i-th flattened output `output_i`."""
    import re

    from .tflite_flatbuffer import dump, load

    model = load(data)
    for sig in model.signatureDefs or []:
        outs = sig.outputs or []
        if len(outs) != len(names):
            raise UserError(f"the .tflite has {len(outs)} outputs, the model {len(names)}",
                            "a model output that is not a tensor (None, a number) cannot be exported")
        for t in outs:
            if (t.name.decode() if isinstance(t.name, bytes) else str(t.name)) in names:
                continue  # litert-torch already named it after the model's dict key
            m = re.fullmatch(r"output_(\d+)", t.name.decode() if isinstance(t.name, bytes) else str(t.name))
            if m is None:
                raise UserError(f"unexpected .tflite output name {t.name!r}", "report this with the model")
            t.name = names[int(m.group(1))].encode()
    return dump(model)


def _eval_module(program: Any) -> Any:
    """The program as a module flagged eval when its graph is (litert-torch warns "converted in training mode" otherwise)."""
    from .eval_mode import mark_eval, training_ops

    module = program.module()
    return module if training_ops(program) else mark_eval(module)


class _quiet:
    """Silence the converter's progress lines: Python-level prints and C++/absl writes to fds 1 and 2."""

    def __enter__(self) -> None:
        import io
        import sys

        self._py = (sys.stdout, sys.stderr)
        sys.stdout = sys.stderr = io.StringIO()
        self._saved = [os.dup(1), os.dup(2)]
        self._sink = tempfile.TemporaryFile()
        os.dup2(self._sink.fileno(), 1)
        os.dup2(self._sink.fileno(), 2)

    def __exit__(self, *exc: Any) -> None:
        import sys

        said = sys.stdout.getvalue() if hasattr(sys.stdout, "getvalue") else ""
        sys.stdout, sys.stderr = self._py
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        if exc[0] is not None:  # keep what the converter said when it failed: it goes to the traceback
            self._sink.seek(0)
            tail = (said + self._sink.read().decode(errors="replace"))[-4000:]
            if tail.strip():
                sys.stderr.write(tail)
        self._sink.close()


def delegate_report(path: Path) -> dict[str, Any]:
    """Nodes delegated to XNNPACK, total nodes, partitions, the ops left outside, and the I/O signature."""
    from mobiledeploy.devicebench.runners import LiteRTRunner

    with _quiet():
        runner = LiteRTRunner(str(path), threads=1)
    counts = runner.delegation() or {}
    sig = runner.interp.get_signature_runner()
    ins = sig.get_input_details()
    outs = sig.get_output_details()
    return {
        "delegate": "XNNPACK",
        **counts,
        "inputs": [{"name": k, "shape": [int(x) for x in v["shape"]], "dtype": _dt(v["dtype"])} for k, v in ins.items()],
        "outputs": [{"name": k, "shape": [int(x) for x in v["shape"]], "dtype": _dt(v["dtype"])} for k, v in outs.items()],
    }


def _dt(t: Any) -> str:
    return _DTYPES.get(t, np.dtype(t).name)
