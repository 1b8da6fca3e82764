"""The runtime registry's core: what a runner is (`Runner`), its tensor specs, `@register_runner`, and
the op families every per-op profile is reported in.

Only numpy and the standard library: it runs on boards inside the on-device agent. The runners
themselves live in `runners.py` (onnxruntime, LiteRT, torch, Core ML) and in one module per further
runtime (`executorch_runner.py`), each registered with the decorator below.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from mobiledeploy.errors import MissingExtraError, UserError

Call = Callable[[], Any]


@dataclass
class TensorSpec:
    """One model input: name, concrete shape and numpy dtype name."""

    name: str
    shape: list[int]  # -1 marks a dynamic dim until the manifest (or batch 1) fills it
    dtype: str
    quantization: tuple[float, int] | None = None  # (scale, zero point) of an integer tensor standing for floats


class Runner:
    """Loads one artifact; `prepare` binds inputs and returns the zero-argument call that is timed."""

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""  # the mobiledeploy extra that brings the runtime
    board_pip: ClassVar[str] = ""  # what to pip install on a board that runs only the agent
    # A reference implementation, not a device runtime: parity may use it where the real runtime cannot
    # run (Core ML off macOS), `bench` never picks it by itself (its speed says nothing about a device).
    reference: ClassVar[bool] = False
    # Imported before a load is timed: a load's time and memory are the artifact's, not the runtime's import
    # (ExecuTorch's took 4.4 s and ~0.9 GB, all charged to the first .pte of a bench).
    runtime_modules: ClassVar[tuple[str, ...]] = ()
    # Set by a runner whose format stores no output names (a .pte): see recorded_output_names and name_outputs.
    _out_names: list[str] | None = None

    @classmethod
    def load_runtime(cls) -> None:
        """Import the runtime (once per process); a missing or broken one is left for the constructor to report."""
        for module in cls.runtime_modules:
            try:
                importlib.import_module(module)
            except Exception:  # missing or broken: the constructor raises it where the load reports it
                pass

    @classmethod
    def available(cls) -> bool:
        """Whether this host can run the runtime at all (e.g. Core ML needs macOS)."""
        return True

    def __init__(self, artifact: str, threads: int) -> None:
        self.artifact = artifact
        self.threads = threads

    def input_specs(self) -> list[TensorSpec]:
        """The inputs the loaded artifact expects (-1 where a dim is dynamic)."""
        raise NotImplementedError

    def name_outputs(self, names: Sequence[str]) -> None:
        """Take the export's output names, in order, where the format stores none; a named format keeps its own."""
        if self._out_names is not None and len(names) == len(self._out_names):
            self._out_names = list(names)

    def output_specs(self) -> list[TensorSpec]:
        """The outputs, in the order `prepare`'s call returns them."""
        raise NotImplementedError

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        """Bind inputs once; the returned call feeds them, runs once and fetches every output."""
        raise NotImplementedError

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on `inputs` (by input name); every output by name, as numpy arrays."""
        outs = self.prepare({k: np.ascontiguousarray(v) for k, v in inputs.items()})()
        return {s.name: np.array(o) for s, o in zip(self.output_specs(), outs)}

    def info(self) -> dict[str, Any]:
        """Runtime facts for the result: name, version, delegate, threads, node counts, partitions."""
        return {"name": self.name, "version": None, "delegate": None, "threads": self.threads,
                "delegated_nodes": None, "total_nodes": None, "partitions": None}

    def op_profile(self, inputs: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
        """Per-op-type time per run, measured in a separate pass so profiling never touches the latency."""
        return {"available": False, "reason": f"{self.name} has no per-op profiler here"}


def positional_names(count: int) -> list[str]:
    """`output` for one output, else output_<i>: the names of outputs nobody named."""
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def recorded_output_names(artifact: str, count: int) -> list[str]:
    """Output names for a format that stores none (a `.pte`): the ones the export recorded in the manifest
    beside the artifact, when it records `count` of them, else positional names."""
    # protocol.find_manifest's two places, looked up here: protocol imports the runners (an import cycle).
    for cand in (Path(artifact + ".json"), Path(artifact).with_suffix(".json")):
        try:
            names = [o["name"] for o in json.loads(cand.read_text())["outputs"]]
        except (OSError, ValueError, KeyError, TypeError):  # no manifest there, or not one of ours
            continue
        if len(names) == count and all(isinstance(n, str) for n in names):
            return names
    return positional_names(count)


_RUNNERS: dict[str, type[Runner]] = {}


def register_runner(cls: type[Runner]) -> type[Runner]:
    """Register a Runner subclass under its `name`."""
    if cls.name in _RUNNERS:
        raise ValueError(f"runner {cls.name!r} registered twice")
    _RUNNERS[cls.name] = cls
    return cls


def runner_names() -> list[str]:
    """Registered runtime names, in registration order."""
    return list(_RUNNERS)


def get_runner(name: str) -> type[Runner]:
    """A registered runner class, or a UserError listing the choices."""
    if name not in _RUNNERS:
        raise UserError(f"unknown runtime {name!r}", f"choose one of: auto, {', '.join(_RUNNERS)}")
    return _RUNNERS[name]


def _require(module: str, runner: type[Runner]) -> Any:
    """Import a runtime, or say how to install it both here and on a board that only runs the agent."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name and module.split(".")[0] != e.name.split(".")[0]:
            raise
        err = MissingExtraError(module, runner.extra)
        err.hint = f"pip install 'mobiledeploy[{runner.extra}]', or on a board: pip install {runner.board_pip}"
        raise err from None


_OP_FAMILIES = {
    "conv": ("conv", "conv_2d", "conv2d", "convolution", "_convolution", "mkldnn_convolution", "fusedconv",
             "nchwcconv", "qlinearconv", "convinteger", "conv_3d", "_slow_conv2d_forward", "thnn_conv2d",
             "_conv_depthwise2d", "slow_conv_dilated2d", "_nnpack_spatial_convolution", "convolution_overrideable"),
    "depthwise conv": ("depthwise_conv_2d",),
    "matmul / linear": ("gemm", "matmul", "fully_connected", "linear", "addmm", "mm", "bmm", "batch_matmul",
                        "fusedgemm", "fusedmatmul", "qlinearmatmul"),
    "pool": ("averagepool", "maxpool", "globalaveragepool", "globalmaxpool", "average_pool_2d", "max_pool_2d",
             "mean", "reducemean", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "mean.dim"),
    "activation": ("relu", "relu6", "clip", "hardtanh", "clamp", "clamp_", "clamp_min", "clamp_min_", "hardtanh_", "relu_", "sigmoid", "hardsigmoid",
                   "hard_swish", "hardswish", "logistic", "tanh", "gelu", "silu", "prelu", "leakyrelu", "leaky_relu"),
    "elementwise": ("add", "mul", "sub", "div", "add_", "mul_", "div_", "sub_", "sum", "maximum", "minimum", "pow",
                    "sqrt", "rsqrt"),
    "resize": ("resize", "resize_nearest_neighbor", "resize_bilinear", "upsample_nearest2d", "upsample_bilinear2d"),
    "layout": ("reshape", "transpose", "concatenation", "concat", "cat", "view", "permute", "flatten", "squeeze",
               "unsqueeze", "reorderinput", "reorderoutput", "slice", "strided_slice", "gather", "pad",
               "depth_to_space", "space_to_depth", "split", "expand", "contiguous", "clone", "copy_"),
    "normalization": ("batchnormalization", "batch_norm", "native_batch_norm", "layer_norm", "layernormalization",
                      "_native_batch_norm_legit_no_training", "_batch_norm_impl_index", "batch_norm_cpu"),
    "framework overhead": ("empty", "empty_like", "empty_strided", "fill_", "zero_", "resize_", "as_strided",
                           "as_strided_", "detach", "to", "_to_copy", "t", "resolve_conj", "resolve_neg",
                           "_nnpack_available", "set_", "item", "_local_scalar_dense", "lift_fresh"),
    "softmax": ("softmax", "_softmax", "log_softmax"),
    "delegate kernel": ("tflitexnnpackdelegate", "delegate", "tflitegpudelegatev2"),
}
_OP_KIND = {name: kind for kind, names in _OP_FAMILIES.items() for name in names}


def normalize_op(op: str) -> str:
    """The op family of a runtime-specific op name ('aten::conv2d', 'CONV_2D', 'Conv' → 'conv')."""
    key = op.lower().split("::")[-1].strip()
    return _OP_KIND.get(key, key)


def _op_table(per_type: dict[str, list[float]], runs: int, source: str) -> dict[str, Any]:
    """Normalised op table: per op type, node executions per run, ms per run, share of the total."""
    total_us = sum(sum(v) for v in per_type.values())
    rows = [{
        "op": op,
        "kind": normalize_op(op),
        "count": len(v) / runs,
        "ms_per_run": sum(v) / runs / 1000.0,
        "percent": 100.0 * sum(v) / total_us if total_us else 0.0,
    } for op, v in per_type.items()]
    rows.sort(key=lambda r: -r["ms_per_run"])
    return {"available": True, "source": source, "runs": runs, "table": rows}
