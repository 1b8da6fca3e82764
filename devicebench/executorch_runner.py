"""ExecuTorch runner: `.pte` files on ExecuTorch's runtime (XNNPACK and portable kernels), per-op times from ETDump.

Imported by the runner registry; executorch itself is imported only when a runner is built, so the
registry loads on boards without it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mobiledeploy.errors import UserError, quiet_logger, quiet_native_stderr

from .runtime import Call, Runner, TensorSpec, _op_table, _require, recorded_output_names, register_runner

# C++ info lines the runtime prints on fd 2 when its thread pool is (re)set (the first time also its CPU
# probing: "[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version"). Other lines stay visible.
NOISE = ("[cpuinfo_utils.cpp:", "[threadpool.cpp:")

# ExecuTorch's ScalarType codes → numpy dtype names (the ones a model's inputs use).
_SCALAR = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
           11: "bool"}
# Events that wrap others (the method, a delegate call, one portable kernel call): not ops themselves.
_WRAPPERS = ("Method::execute", "Method::init", "Program::load_method", "DELEGATE_CALL", "OPERATOR_CALL")
# XNNPACK operator names in ETDump ("Convolution (NHWC, F32) DWConv #3") → the op families of runners.py.
_XNN_KINDS = (
    ("dwconv", "depthwise conv"), ("deconvolution", "conv"), ("convolution", "conv"),
    ("fully connected", "matmul / linear"), ("batch matrix", "matmul / linear"),
    ("pooling", "pool"), ("mean", "pool"),
    ("sigmoid", "activation"), ("clamp", "activation"), ("hardswish", "activation"), ("tanh", "activation"),
    ("gelu", "activation"), ("multiply", "elementwise"), ("add", "elementwise"), ("subtract", "elementwise"),
    ("divide", "elementwise"), ("transpose", "layout"), ("copy", "layout"), ("reshape", "layout"),
    ("concatenate", "layout"), ("slice", "layout"), ("constant pad", "layout"), ("resize", "resize"),
    ("softmax", "softmax"),
)


def _kind(op: str) -> str | None:
    low = op.lower()
    return next((k for key, k in _XNN_KINDS if key in low), None)


@register_runner
class ExecuTorchRunner(Runner):
    """ExecuTorch's Python runtime: the `.pte`'s delegates (XNNPACK) and portable kernels, `threads` threads."""

    name = "executorch"
    suffixes = (".pte",)
    extra = "executorch"
    board_pip = "numpy torch executorch"

    @classmethod
    def load_runtime(cls) -> None:
        try:
            import torch  # noqa: F401

            _bindings()
            import executorch.runtime  # noqa: F401
        except Exception:
            pass  # missing or broken: __init__ raises it where the load reports it (the extra to install)

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        _require("executorch", type(self))
        self.torch = _require("torch", type(self))  # its Python runtime takes and returns torch tensors
        reset_threadpool(threads)  # first: it imports the bindings quietly (see there)
        from executorch.runtime import Runtime

        self.runtime = Runtime.get()
        self.data = Path(artifact).read_bytes()
        self.program = self.runtime.load_program(self.data)
        try:
            # A missing kernel makes the registry dump every kernel it has for that op: said below in one line.
            with quiet_native_stderr("[operator_registry.cpp:"):
                self.method = self.program.load_method("forward")
        except RuntimeError as e:
            missing = missing_kernels(self.data)
            if not missing:
                raise
            raise UserError(f"the .pte calls {', '.join(missing)}, which ExecuTorch's runtime has no kernel for "
                            f"({e})", "rewrite that part of the model, or try another --target") from None
        # A .pte stores no output names: those the export recorded, so every target's outputs read alike.
        self._out_names = recorded_output_names(artifact, self.method.metadata.num_outputs())

    def input_specs(self) -> list[TensorSpec]:
        meta = self.method.metadata
        specs = []
        for i in range(meta.num_inputs()):
            t = meta.input_tensor_meta(i)
            specs.append(TensorSpec(f"input_{i}" if meta.num_inputs() > 1 else "input", [int(d) for d in t.sizes()],
                                    _SCALAR.get(int(t.dtype()), "float32")))
        return specs

    def output_specs(self) -> list[TensorSpec]:
        meta = self.method.metadata
        return [TensorSpec(name, [int(d) for d in meta.output_tensor_meta(i).sizes()],
                           _SCALAR.get(int(meta.output_tensor_meta(i).dtype()), "float32"))
                for i, name in enumerate(self._out_names)]

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        torch = self.torch
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[s.name])) for s in self.input_specs()]
        execute, program = self.method.execute, self.program
        reset_threadpool(self.threads)  # the pool is process-wide: another runner may have changed it

        def call(keep: Any = program) -> list[np.ndarray]:  # the method points into its program: keep it alive
            return [o.numpy() for o in execute(tensors)]

        return call

    def info(self) -> dict[str, Any]:
        d = super().info()
        from mobiledeploy.versions import dist_version

        d.update(version=dist_version("executorch", missing=None), **plan_counts(self.data))
        recorded = _manifest_delegation(self.artifact)
        if recorded:  # node counts before lowering live only in the manifest the exporter wrote
            d.update(recorded)
        return d

    def op_profile(self, inputs: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
        from executorch.devtools import Inspector

        torch = self.torch
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[s.name])) for s in self.input_specs()]
        program = self.runtime.load_program(self.data, enable_etdump=True)
        method = program.load_method("forward")
        reset_threadpool(self.threads)
        for _ in range(runs + 1):  # the first run allocates and packs weights: dropped below
            method.execute(tensors)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "run.etdp")
            program.write_etdump_result_to_file(path, os.path.join(tmp, "debug.bin"))
            inspector = Inspector(etdump_path=path)
        per_type: dict[str, list[float]] = {}
        for block in inspector.event_blocks:
            for ev in block.events:
                if ev.perf_data is None or ev.name in _WRAPPERS:
                    continue
                raw = list(ev.perf_data.raw)
                if len(raw) < runs + 1:
                    continue  # init-time events (one per load), not per run
                op = re.sub(r"\s*#\d+$", "", ev.name)
                op = op[len("native_call_"):] if op.startswith("native_call_") else op
                per_type.setdefault(op, []).extend(1000.0 * t for t in raw[1:])  # Inspector gives ms
        table = _op_table(per_type, runs, source="ExecuTorch ETDump (XNNPACK operators and portable kernels)")
        for row in table["table"]:
            row["kind"] = _kind(row["op"]) or row["kind"]
        return table


def _bindings() -> Any:
    """ExecuTorch's pybindings module, imported quietly."""
    import logging

    # Importing the bindings imports torchao, whose pytree registration makes torch log a deprecation
    # warning: not ours to fix, and noise in every verify and bench.
    with quiet_logger("torch.utils._pytree", logging.ERROR):
        from executorch.extension.pybindings import portable_lib
    return portable_lib


def reset_threadpool(threads: int) -> None:
    """Give ExecuTorch's process-wide XNNPACK pool `threads` threads, without its C++ info lines on stderr."""
    with quiet_native_stderr(*NOISE):
        _bindings()._unsafe_reset_threadpool(int(threads))  # private, but the only thread control from Python


def plan_counts(data: bytes) -> dict[str, Any]:
    """Delegate calls (pieces), portable kernel calls and the delegates' names, from the program's execution plan."""
    try:
        from executorch.exir._serialize._program import deserialize_pte_binary
    except ImportError:
        return {}
    prog = deserialize_pte_binary(data)
    prog = getattr(prog, "program", prog)
    plan = prog.execution_plan[0]
    kinds = [type(i.instr_args).__name__ for c in plan.chains for i in c.instructions]
    delegates = sorted({d.id for d in plan.delegates})
    return {"partitions": kinds.count("DelegateCall"), "kernel_calls": kinds.count("KernelCall"),
            "delegate": "+".join(delegates).replace("XnnpackBackend", "XNNPACK") or None}


def missing_kernels(data: bytes) -> list[str]:
    """Operators the program calls that this ExecuTorch runtime has no kernel for (`aten::op.overload`)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    prog = deserialize_pte_binary(data)
    plan = getattr(prog, "program", prog).execution_plan[0]
    have = set(_bindings()._get_operator_names())
    wanted = [f"{op.name}.{op.overload}" if op.overload else op.name for op in plan.operators]
    return sorted({op for op in wanted if op not in have and op.split(".")[0] not in have})


def _manifest_delegation(artifact: str) -> dict[str, Any]:
    """delegated/total nodes recorded by `mobiledeploy export` beside the artifact, when there is a manifest."""
    path = Path(artifact + ".json")
    if not path.exists():
        return {}
    from mobiledeploy.manifest import Manifest

    try:
        extra = Manifest.from_json(json.loads(path.read_text())).target_info  # the target's result.extra
    except (OSError, ValueError, TypeError):
        return {}
    if not isinstance(extra, dict):
        return {}
    return {k: extra[k] for k in ("delegated_nodes", "total_nodes") if isinstance(extra.get(k), int)}
