"""TFLite target: litert-torch on the rewritten program, then flatbuffer passes; run with ai-edge-litert (XNNPACK)."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mobiledeploy.errors import UserError, require
from mobiledeploy.versions import dist_version

from .runtimes import register_runtime
from .targets import ExportRequest, TargetResult, register_target

# Checked by the pipeline before any heavy work, so a missing extra fails fast with its pip line.
REQUIRES = ("litert_torch", "ai_edge_litert")
# Flatbuffer passes for every .tflite, in order; issue 7's metadata writer is one more name here.
# The gate multiply goes first: it consumes the 2x resizes feeding a MUL; the rest become DEPTH_TO_SPACE
# (or per-axis copies when H and W differ); stepped slices and wide concats (odd resizes) last, so that
# every nearest resize stays inside one XNNPACK partition.
FB_PASSES = ["nearest_gate_broadcast_mul", "nearest_to_depth_to_space", "nearest_axis_repeat",
             "strided_slice_as_depthwise", "split_wide_concatenations"]
_DTYPES = {np.float32: "float32", np.float16: "float16", np.int32: "int32", np.int64: "int64", np.int8: "int8",
           np.uint8: "uint8"}


@register_target("tflite", ".tflite", extra="tflite")
def convert(req: ExportRequest) -> TargetResult:
    """Convert the program with litert-torch, make every resize XNNPACK-friendly, optionally store fp16 weights."""
    with _quiet():  # its import chatters on stderr (absl, oneDNN)
        litert_torch = require("litert_torch", "tflite")
    from .diagnose import conversion_error
    from .tflite_flatbuffer import run_fb_passes

    if req.precision not in ("fp32", "fp16"):
        raise UserError(f"--precision {req.precision} is not supported for tflite", "use fp32 or fp16")
    module = _eval_module(req.program)
    try:
        with _quiet():
            edge = litert_torch.convert(module, tuple(req.example_inputs))
            data = edge.model_content() if callable(getattr(edge, "model_content", None)) else edge.model_content
    except Exception as e:  # litert-torch raises many kinds; find the op it names
        raise conversion_error(req.program, e, "tflite") from e
    passes = list(FB_PASSES) + (["fp16_weights"] if req.precision == "fp16" else [])
    passes += list(req.options.get("tflite_passes", ()))
    data, applied = run_fb_passes(bytes(data), passes, req.options)
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


def interpreter(path: Path, threads: int = 1) -> Any:
    """An ai-edge-litert Interpreter (XNNPACK delegate applied) with tensors allocated."""
    lite = require("ai_edge_litert.interpreter", "tflite")
    it = lite.Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def delegate_report(path: Path) -> dict[str, Any]:
    """Nodes delegated to XNNPACK, total nodes, partitions, the ops left outside, and the I/O signature."""
    with _quiet():
        it = interpreter(path)
    core = it._interpreter  # the node table is only exposed on the wrapped C++ interpreter
    n = core.NumNodes()
    names = [core.NodeName(i) for i in range(n)]
    delegates = [i for i in range(n) if names[i] == "DELEGATE"]
    original = [i for i in range(n) if names[i] != "DELEGATE"]
    producer = {int(t): i for i in original for t in core.NodeOutputs(i)}
    inside: set[int] = set()
    for d in delegates:
        # A partition's nodes are the producers reachable from its outputs without crossing its inputs.
        stop = {int(t) for t in core.NodeInputs(d)}
        stack = [int(t) for t in core.NodeOutputs(d)]
        while stack:
            t = stack.pop()
            if t in stop or t not in producer or producer[t] in inside:
                continue
            inside.add(producer[t])
            stack.extend(int(x) for x in core.NodeInputs(producer[t]) if x >= 0)
    left = sorted({names[i] for i in original if i not in inside})
    sig = it.get_signature_runner()
    ins = sig.get_input_details()
    outs = sig.get_output_details()
    return {
        "delegate": "XNNPACK",
        "delegated_nodes": len(inside),
        "total_nodes": len(original),
        "partitions": len(delegates),
        "undelegated_ops": left,
        "inputs": [{"name": k, "shape": [int(x) for x in v["shape"]], "dtype": _dt(v["dtype"])} for k, v in ins.items()],
        "outputs": [{"name": k, "shape": [int(x) for x in v["shape"]], "dtype": _dt(v["dtype"])} for k, v in outs.items()],
    }


def _dt(t: Any) -> str:
    return _DTYPES.get(t, np.dtype(t).name)


def _runtime_info() -> dict[str, str]:
    return {"name": "ai-edge-litert", "version": dist_version("ai-edge-litert"), "delegate": "XNNPACK"}


@functools.lru_cache(maxsize=4)
def _runner(path: str, mtime_ns: int, threads: int) -> Any:
    with _quiet():
        it = interpreter(Path(path), threads)
    return it, it.get_signature_runner()


@register_runtime("tflite", info=_runtime_info)
def run(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a .tflite file on ai-edge-litert's interpreter with its default XNNPACK delegate, 1 thread."""
    p = Path(path)
    _, sig = _runner(str(p.resolve()), p.stat().st_mtime_ns, 1)
    out = sig(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
    return {k: np.array(v) for k, v in out.items()}
