"""The runtimes: how to load an artifact and call it once, per runtime, registered with @register_runner
(the registry itself is in runtime.py), and how to pick the runner for an artifact.

Only numpy and the standard library at module level: this module runs on boards inside the
on-device agent, where click, rich and torch are usually absent. Each runtime is imported
when its runner is built.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mobiledeploy.errors import UserError, quiet_native_stderr
from mobiledeploy.versions import dist_version

from .runtime import (  # noqa: F401  (the registry's names, importable from here as before)
    Call, Runner, TensorSpec, _op_table, _require, get_runner, normalize_op, register_runner, runner_names)
from .runtime import _RUNNERS


def _np_dtype(onnx_type: str) -> str:
    """'tensor(float)' → 'float32' (onnxruntime's type strings)."""
    table = {"float": "float32", "float16": "float16", "double": "float64", "int8": "int8", "uint8": "uint8",
             "int16": "int16", "int32": "int32", "int64": "int64", "bool": "bool"}
    inner = onnx_type[len("tensor("):-1] if onnx_type.startswith("tensor(") else onnx_type
    return table.get(inner, "float32")


LITERT_NOISE = "INFO: Created TensorFlow Lite XNNPACK delegate"


def _dims(shape: Any) -> list[int]:
    """Static dims as ints; symbolic or unknown ones (batch, -1, None) as -1, filled in later."""
    return [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else -1 for d in shape]


@register_runner
class OnnxRuntimeRunner(Runner):
    """onnxruntime on the CPU execution provider, sequential, `threads` intra-op threads."""

    name = "onnxruntime"
    suffixes = (".onnx", ".ort")
    extra = "onnx"
    board_pip = "numpy onnxruntime"
    runtime_modules = ("onnxruntime",)

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        self.ort = _require("onnxruntime", type(self))
        self.session = self._session(profile_dir=None)

    def _session(self, profile_dir: str | None):
        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if profile_dir is not None:
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(profile_dir, "ort")
        return ort.InferenceSession(self.artifact, sess_options=so, providers=["CPUExecutionProvider"])

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, _dims(i.shape), _np_dtype(i.type)) for i in self.session.get_inputs()]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(o.name, _dims(o.shape), _np_dtype(o.type)) for o in self.session.get_outputs()]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        run, feeds = self.session.run, dict(inputs)
        return lambda: run(None, feeds)

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(version=self.ort.__version__, delegate="CPUExecutionProvider",
                 providers=self.session.get_providers())
        return d

    def op_profile(self, inputs: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            sess = self._session(profile_dir=tmp)
            for _ in range(runs + 1):
                sess.run(None, inputs)
            events = _ort_kernel_events(sess.end_profiling(), skip_runs=1)
        per_type: dict[str, list[float]] = {}
        for ev in events:
            per_type.setdefault(ev["op"], []).append(ev["us"])
        return _op_table(per_type, runs, source="onnxruntime profiler (kernel time)")


def _ort_kernel_events(trace_path: str, skip_runs: int = 0) -> list[dict[str, Any]]:
    """Kernel executions from an onnxruntime Chrome-trace profile: op type and duration in µs.

    The first `skip_runs` runs (allocation, lazy init) are dropped by their model_run timestamps.
    """
    with open(trace_path) as f:
        trace = json.load(f)
    os.unlink(trace_path)
    starts = sorted(ev["ts"] for ev in trace if ev.get("name") == "model_run")
    t0 = starts[skip_runs] if skip_runs and len(starts) > skip_runs else float("-inf")
    out = []
    for ev in trace:
        if ev.get("cat") == "Node" and str(ev.get("name", "")).endswith("_kernel_time") and ev["ts"] >= t0:
            out.append({"op": ev.get("args", {}).get("op_name", "?"), "us": float(ev.get("dur", 0))})
    return out


# Op names differ per runtime (Conv, CONV_2D, aten::convolution); the table compares families.


@register_runner
class LiteRTRunner(Runner):
    """LiteRT's Python interpreter (ai-edge-litert; tflite_runtime on boards that only have that)."""

    name = "litert"
    suffixes = (".tflite",)
    extra = "tflite"
    board_pip = "numpy ai-edge-litert   (older boards: pip install numpy tflite-runtime)"
    runtime_modules = ("ai_edge_litert.interpreter",)  # (a tflite-runtime board imports its fallback in the load)

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        try:
            from ai_edge_litert import interpreter as tfl  # type: ignore[import-not-found]
            self.package = "ai-edge-litert"
        except ImportError:
            try:
                from tflite_runtime import interpreter as tfl  # type: ignore[import-not-found]
                self.package = "tflite-runtime"
            except ImportError:
                _require("ai_edge_litert", type(self))
                raise
        self.module = tfl
        self.interp = tfl.Interpreter(model_path=artifact, num_threads=threads)
        with quiet_native_stderr(LITERT_NOISE):  # the delegate announces itself once per process, on fd 2
            self.interp.allocate_tensors()

    def _names(self, kind: str) -> dict[int, str]:
        """Tensor index → the signature's name for it (what converters and manifests call the I/O)."""
        sigs = self.interp.get_signature_list()
        if len(sigs) != 1:
            return {}
        runner = self.interp.get_signature_runner(next(iter(sigs)))
        details = runner.get_input_details() if kind == "inputs" else runner.get_output_details()
        return {int(d["index"]): name for name, d in details.items()}

    def _specs(self, details: list[dict[str, Any]], names: dict[int, str]) -> list[TensorSpec]:
        out = []
        for d in details:
            scale, zero = d.get("quantization", (0.0, 0))
            quant = (float(scale), int(zero)) if scale and np.dtype(d["dtype"]).kind in "iu" else None
            out.append(TensorSpec(names.get(int(d["index"]), d["name"]), _dims(d.get("shape_signature", d["shape"])),
                                  np.dtype(d["dtype"]).name, quant))
        return out

    def input_specs(self) -> list[TensorSpec]:
        return self._specs(self.interp.get_input_details(), self._names("inputs"))

    def output_specs(self) -> list[TensorSpec]:
        return self._specs(self.interp.get_output_details(), self._names("outputs"))

    def resize(self, specs: list[TensorSpec]) -> None:
        """Give dynamic inputs the manifest's concrete shapes."""
        changed = False
        for d, s in zip(self.interp.get_input_details(), specs):
            if list(d["shape"]) != s.shape:
                self.interp.resize_tensor_input(d["index"], s.shape)
                changed = True
        if changed:
            self.interp.allocate_tensors()

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        it = self.interp
        ins = [(d["index"], inputs[s.name]) for d, s in zip(it.get_input_details(), self.input_specs())]
        outs = [d["index"] for d in it.get_output_details()]
        set_tensor, invoke, get_tensor = it.set_tensor, it.invoke, it.get_tensor

        def call() -> list[np.ndarray]:
            for idx, arr in ins:
                set_tensor(idx, arr)
            invoke()
            return [get_tensor(o) for o in outs]

        return call

    def info(self) -> dict[str, Any]:
        d = super().info()
        version = dist_version(self.package, missing=None)
        d.update(version=version, package=self.package)
        counts = self.delegation()
        if counts:
            d.update(counts)
            # The Python interpreter applies XNNPACK as its default delegate; it is the only one here.
            d["delegate"] = "XNNPACK (default)" if counts["partitions"] else None
        return d

    def delegation(self) -> dict[str, Any] | None:
        """Delegated/total nodes and partitions, from the node list after delegation.

        Every DELEGATE node is one partition; the original nodes it replaced are found by walking
        back from its outputs to its inputs (partitions are closed under that walk).
        """
        try:
            ops = self.interp._get_ops_details()  # private, but the only view of the execution plan
        except Exception:
            return None
        delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
        original = [o for o in ops if o["op_name"] != "DELEGATE"]
        producer = {int(t): o["index"] for o in original for t in o["outputs"]}
        by_index = {o["index"]: o for o in original}
        delegated: set[int] = set()
        for dlg in delegates:
            stop = {int(t) for t in dlg["inputs"]}
            todo = [int(t) for t in dlg["outputs"]]
            seen: set[int] = set()
            while todo:
                t = todo.pop()
                if t in seen or t in stop or t not in producer:
                    continue
                seen.add(t)
                node = producer[t]
                if node not in delegated:
                    delegated.add(node)
                    todo.extend(int(x) for x in by_index[node]["inputs"])
        left = sorted({o["op_name"] for o in original if o["index"] not in delegated})
        return {"delegated_nodes": len(delegated), "total_nodes": len(original), "partitions": len(delegates),
                "undelegated_ops": left}

    def op_profile(self, inputs: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
        return {"available": False,
                "reason": "LiteRT's Python interpreter exposes no op profiler; on a phone, "
                          "--device adb://SERIAL --profile-ops uses benchmark_model's op profiling"}


@register_runner
class TorchRunner(Runner):
    """PyTorch eager, the reference point: a `.pt2` ExportedProgram or a registered model name."""

    name = "torch"
    suffixes = (".pt2",)
    extra = "all"
    board_pip = "numpy torch"
    runtime_modules = ("torch",)

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        self.torch = torch = _require("torch", type(self))
        torch.set_num_threads(threads)
        self._specs: list[TensorSpec]
        if os.path.exists(artifact):
            ep = torch.export.load(artifact)
            self.module = ep.module()
            user_inputs = set(ep.graph_signature.user_inputs)
            self._specs = []
            for node in ep.graph.nodes:
                if node.op == "placeholder" and node.name in user_inputs:
                    val = node.meta.get("val")
                    self._specs.append(TensorSpec(node.name, _dims(getattr(val, "shape", [1])),
                                                  str(getattr(val, "dtype", "torch.float32")).replace("torch.", "")))
        else:
            from mobiledeploy.models import create_model, get_cfg

            self.module = create_model(artifact).eval()
            self._specs = [TensorSpec("input", [1, *get_cfg(artifact).input_size], "float32")]

    def input_specs(self) -> list[TensorSpec]:
        return list(self._specs)

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec("output", [-1], "float32")]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        torch = self.torch
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[s.name])) for s in self._specs]
        module, mode = self.module, torch.inference_mode

        def call() -> Any:
            with mode():
                return module(*tensors)

        return call

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(version=self.torch.__version__, delegate="eager",
                 threads=self.torch.get_num_threads())
        return d

    def op_profile(self, inputs: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
        from torch.profiler import ProfilerActivity, profile

        call = self.prepare(inputs)
        call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                call()
        per_type: dict[str, list[float]] = {}
        for ev in prof.key_averages():
            # Self time only, so nested aten calls are not counted twice.
            if ev.self_cpu_time_total > 0 and ev.key.startswith("aten::"):
                per_type[ev.key] = [ev.self_cpu_time_total / ev.count] * ev.count
        return _op_table(per_type, runs, source="torch.profiler (self CPU time of aten ops)")


@register_runner
class CoreMLRunner(Runner):
    """Core ML through coremltools; predictions need macOS."""

    name = "coreml"
    suffixes = (".mlpackage", ".mlmodel")
    extra = "coreml"
    board_pip = "numpy coremltools   (macOS only)"

    @classmethod
    def available(cls) -> bool:
        if sys.platform != "darwin":
            return False
        try:
            import coremltools.libcoremlpython  # noqa: F401  (coremltools' bridge to the Core ML framework)
        except ImportError:
            return False
        return True

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        if sys.platform != "darwin":
            raise UserError(f"Core ML runs only on macOS; this is {sys.platform}",
                            "bench the .mlpackage on a Mac, or bench the ONNX/TFLite artifact here")
        ct = _require("coremltools", type(self))
        self.ct = ct
        self.model = ct.models.MLModel(artifact, compute_units=ct.ComputeUnit.CPU_ONLY)
        self.spec = self.model.get_spec()

    def input_specs(self) -> list[TensorSpec]:
        specs = []
        for inp in self.spec.description.input:
            arr = inp.type.multiArrayType
            specs.append(TensorSpec(inp.name, [int(s) for s in arr.shape] or [1], "float32"))
        return specs

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(o.name, [-1], "float32") for o in self.spec.description.output]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        predict, feeds = self.model.predict, dict(inputs)
        return lambda: predict(feeds)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """MLModel.predict with pixels as PIL images; the class→probability dict as an array in label order."""
        from PIL import Image

        from mobiledeploy.exporters.mlinterp.model import class_labels

        feeds = {}
        for i in self.spec.description.input:
            a = np.asarray(inputs[i.name])
            if i.type.WhichOneof("Type") == "imageType":
                a = a.reshape(a.shape[-3:]).transpose(1, 2, 0) if a.shape[-3] == 3 else a.reshape(a.shape[-3:])
                feeds[i.name] = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")
            else:
                feeds[i.name] = a
        raw = self.model.predict(feeds)
        labels = class_labels(self.spec, Path(self.artifact))
        out = {}
        for o in self.spec.description.output:
            v = raw[o.name]
            if isinstance(v, dict):
                out[o.name] = np.array([[v[k] for k in (labels or list(v))]], dtype=np.float32)
            else:
                out[o.name] = np.array([v]) if isinstance(v, str) else np.asarray(v)
        return out

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(version=self.ct.__version__, delegate="CPU_ONLY", threads=None)
        return d


@register_runner
class CoreMLInterpreterRunner(Runner):
    """mobiledeploy's Core ML reference interpreter (numpy, the MIL op specs): parity off macOS, never timing."""

    name = "mlinterp"
    suffixes = (".mlpackage",)
    extra = "coreml"
    board_pip = "numpy coremltools"
    reference = True

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        from mobiledeploy.exporters.mlinterp import CoreMLModel

        self.model = CoreMLModel(artifact)

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, [-1], "float32") for i in self.model.description.input]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(o.name, [-1], "float32") for o in self.model.description.output]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        predict, feeds, names = self.model.predict, dict(inputs), [s.name for s in self.output_specs()]

        def call() -> list[Any]:
            out = predict(feeds)
            return [out[n] for n in names]

        return call

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(name="mobiledeploy Core ML reference interpreter", version=dist_version("mobiledeploy", missing=None),
                 delegate=None, threads=1)
        return d


def runner_for(artifact: str, runtime: str = "auto") -> type[Runner]:
    """Pick the runner for an artifact (by suffix for 'auto'); refuse a runtime that cannot run it."""
    path = Path(artifact)
    suffix = path.suffix.lower()
    if not path.exists():
        if runtime in ("auto", "torch") and _is_registered_model(artifact):
            return get_runner("torch")
        raise UserError(f"artifact not found: {artifact}",
                        "check the path, or give a registered model name (see `mobiledeploy models`)")
    if runtime == "auto":
        for cls in _RUNNERS.values():
            if suffix in cls.suffixes and not cls.reference:
                return cls
        raise UserError(f"no runtime for '{suffix or path.name}' files: {artifact}",
                        f"pass --runtime ({', '.join(_RUNNERS)}) or an artifact ending in "
                        + ", ".join(s for c in _RUNNERS.values() for s in c.suffixes))
    cls = get_runner(runtime)
    if suffix not in cls.suffixes:
        want = next((c.name for c in _RUNNERS.values() if suffix in c.suffixes), None)
        raise UserError(f"runtime '{runtime}' cannot run '{path.name}' ({cls.name} runs "
                        f"{', '.join(cls.suffixes)} files)",
                        f"use --runtime {want}" if want else "use --runtime auto")
    return cls


def _is_registered_model(name: str) -> bool:
    if os.sep in name or "." in name:
        return False
    try:
        from mobiledeploy.models import list_models
    except ImportError:  # a board with only the agent: no model registry there
        return False
    return name in list_models()


def host_runner_class(artifact: str | Path) -> type[Runner] | None:
    """The runner that checks an artifact's numerics on this host: its real runtime where this host has it,
    else a reference implementation (Core ML's interpreter off macOS), else None."""
    suffix = Path(artifact).suffix.lower()
    fitting = [c for c in _RUNNERS.values() if suffix in c.suffixes]
    for cls in sorted(fitting, key=lambda c: c.reference):
        if cls.available():
            return cls
    return None


_LOADED: dict[tuple[str, int, str, int], Runner] = {}


def load_runner(artifact: str | Path, threads: int = 1, cls: type[Runner] | None = None) -> Runner:
    """A loaded runner for an artifact, kept while the file is unchanged (parity runs it once per sample)."""
    p = Path(artifact).resolve()
    cls = cls or host_runner_class(p)
    if cls is None:
        raise UserError(f"no runtime on this host runs {p.suffix} files", "verify it on a device that has one")
    key = (str(p), p.stat().st_mtime_ns, cls.name, threads)
    if key not in _LOADED:
        if len(_LOADED) >= 4:  # artifacts hold whole models: keep a few, not every one of a long session
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = cls(str(p), threads)
    return _LOADED[key]


def run_artifact(artifact: str | Path, inputs: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    """Run an artifact once on this host's runtime for it; every output by name."""
    return load_runner(artifact, threads).run(inputs)

from . import executorch_runner  # noqa: E402,F401  (registers ExecuTorchRunner; executorch is imported lazily)
from . import executorch_coreml  # noqa: E402,F401  (a Core ML-delegated .pte on the interpreter)
