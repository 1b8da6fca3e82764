"""ExecuTorch target (`.pte`): XNNPACK by default, fp32 / fp16 / int8 (pt2e XNNPACKQuantizer), or Core ML.

The stages are plain functions so the target-module API can call them as they are: `lower` turns the
rewritten ExportedProgram into ExecuTorch's programs, `convert` writes the `.pte` and returns what the
manifest records (delegate, delegated/total nodes, pieces, the ops left outside). `run` executes a `.pte`
with ExecuTorch's own runtime, the one the parity check and `bench` use.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from mobiledeploy.errors import UserError, require
from mobiledeploy.versions import dist_version

from .targets import ExportRequest, Target, TargetResult, output_names, register_target

# Checked by the pipeline before any heavy work, so a missing extra fails fast with its pip line.
REQUIRES = ("executorch",)
EXTRA = "executorch"
SUFFIX = ".pte"
DELEGATES = ("xnnpack", "coreml")
PRECISIONS = ("fp32", "fp16", "int8")
# torch.export passes after the generic ones: the integer nearest resizes as ops the XNNPACK delegate takes.
REWRITES = ("xnnpack_nearest_gate", "hardsigmoid_float_scalars", "xnnpack_views")
# Graph nodes that are bookkeeping, not compute: never counted as "left outside the delegate".
_BOOKKEEPING = ("getitem", "executorch_call_delegate", "alloc", "output")


def lower(program: torch.export.ExportedProgram, example_inputs: tuple[torch.Tensor, ...], precision: str = "fp32",
          delegate: str = "xnnpack", calibration: Iterable[np.ndarray] | None = None) -> tuple[Any, Any]:
    """ExecuTorch's edge program (after partitioning) and its executorch program, for one precision and delegate."""
    require("executorch.exir", EXTRA)  # imported inside require: it keeps torchao's import-time log line quiet
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from .rewrites.nearest_gate import restore_aten

    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision} is not supported for executorch", f"use {', '.join(PRECISIONS)}")
    if delegate not in DELEGATES:
        raise UserError(f"unknown ExecuTorch delegate {delegate!r}", f"use one of: {', '.join(DELEGATES)}")
    program = copy.deepcopy(program)
    inputs = tuple(example_inputs)
    if delegate != "xnnpack" or precision == "int8":
        # Our two resize ops exist only in the XNNPACK delegate (and the int8 quantizer does not annotate them).
        program, _ = restore_aten(program)
    if precision == "fp16":
        program, inputs = _to_fp16(program, inputs)
    elif precision == "int8":
        program = _quantize(program, inputs, calibration)
    partitioner = _partitioner(delegate, precision)
    # Our ops are not core ATen; the edge verifier would refuse them before the partitioner sees them.
    config = EdgeCompileConfig(_check_ir_validity=False)
    # Constants computed from weights alone (GR-KAN's coefficients picked out of its parameters, the class
    # token's expand) folded before partitioning: XNNPACK has no select_copy, and they need no run time.
    with _converter_output(delegate):
        edge = to_edge_transform_and_lower(program, transform_passes=[_constant_prop()], partitioner=[partitioner],
                                           compile_config=config)
    return edge, edge.to_executorch()


def convert(program: torch.export.ExportedProgram, example_inputs: Sequence[torch.Tensor], precision: str,
            out_path: Path, delegate: str = "xnnpack", calibration: Iterable[np.ndarray] | None = None) -> dict[str, Any]:
    """Write the `.pte`; returns converter, versions, inputs/outputs and delegation facts for the manifest."""
    edge, et = lower(program, tuple(example_inputs), precision, delegate, calibration)
    Path(out_path).write_bytes(et.buffer)
    ep = edge.exported_program()
    info = delegation(ep.graph_module)
    info["delegate"] = {"xnnpack": "XNNPACK", "coreml": "CoreML"}[delegate]
    info["verified_here"] = delegate == "xnnpack"  # the Core ML backend runs only on Apple platforms
    if delegate == "coreml":  # off Apple platforms: the Core ML program it embeds, on our interpreter
        info["host_runner"] = "executorch-coreml-mlinterp"
    return {
        "artifact": Path(out_path),
        "converter": "executorch (to_edge_transform_and_lower)",
        "converter_version": f"executorch {dist_version('executorch')}, torch {torch.__version__}",
        "inputs": [_io(f"input_{i}" if len(example_inputs) > 1 else "input", t) for i, t in enumerate(example_inputs)],
        "outputs": _outputs(ep, program),
        "extra": {**info, "precision": precision},
    }


def delegation(graph_module: torch.fx.GraphModule) -> dict[str, Any]:
    """Delegated and total compute nodes, delegate pieces, and the op types left outside the delegate."""
    from executorch.devtools.backend_debug import get_delegation_info

    d = get_delegation_info(graph_module)
    left = {op: b.non_delegated for op, b in d.delegation_by_operator.items()
            if b.non_delegated and not any(k in op for k in _BOOKKEEPING)}
    delegated = int(d.num_delegated_nodes)
    return {"delegated_nodes": delegated, "total_nodes": delegated + sum(left.values()),
            "partitions": int(d.num_delegated_subgraphs), "undelegated_ops": dict(sorted(left.items()))}


def _converter_output(delegate: str) -> Any:
    """The Core ML backend runs coremltools, whose progress bars and warnings would fill the CLI's stderr."""
    if delegate != "coreml":
        return contextlib.nullcontext()
    from .coreml import quiet

    return quiet()


def _constant_prop() -> Any:
    """ExecuTorch's constant propagation as an edge transform pass (quantize/dequantize ops are kept)."""
    from executorch.exir.pass_base import ExportedProgramPassBase, ExportedProgramPassResult
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    class ConstantProp(ExportedProgramPassBase):
        def call(self, program: torch.export.ExportedProgram) -> ExportedProgramPassResult:
            return ExportedProgramPassResult(constant_prop_pass(program), True)

    return ConstantProp()


def _partitioner(delegate: str, precision: str) -> Any:
    if delegate == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        # The backend computes in fp16 unless told otherwise: an fp32 .pte must compute in fp32.
        compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
        return CoreMLPartitioner(compile_specs=CoreMLBackend.generate_compile_specs(compute_precision=compute))
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    from .executorch_xnnpack import partitioner_configs

    return XnnpackPartitioner(configs=list(partitioner_configs()))


class _Half(torch.nn.Module):
    """fp32 in, fp32 out, fp16 inside: the app feeds the same tensors at every precision."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.inner = module.half()

    def forward(self, *xs: torch.Tensor) -> Any:
        out = self.inner(*(x.half() for x in xs))
        return tuple(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()


def _to_fp16(program: torch.export.ExportedProgram, inputs: tuple[torch.Tensor, ...]
             ) -> tuple[torch.export.ExportedProgram, tuple[torch.Tensor, ...]]:
    return torch.export.export(_Half(program.module()), inputs), inputs


def _quantize(program: torch.export.ExportedProgram, inputs: tuple[torch.Tensor, ...],
              calibration: Iterable[np.ndarray] | None) -> torch.export.ExportedProgram:
    """pt2e static int8: per-channel symmetric weights, per-tensor activations, calibrated on `calibration`."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if calibration is None:
        raise UserError("int8 needs calibration inputs", "pass calibration samples (the pipeline's calibration images)")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(program.module(), quantizer)
    with torch.no_grad():
        for x in calibration:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            prepared(t if t.dim() == inputs[0].dim() else t[None])
    return torch.export.export(convert_pt2e(prepared), inputs)


def _io(name: str, t: torch.Tensor) -> dict[str, Any]:
    return {"name": name, "shape": [int(d) for d in t.shape], "dtype": str(t.dtype).replace("torch.", "")}


def _outputs(ep: torch.export.ExportedProgram, program: torch.export.ExportedProgram) -> list[dict[str, Any]]:
    """The lowered program's outputs, named from the user's program (dict keys) as every target names them."""
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    vals = [a.meta.get("val") for a in out_node.args[0] if isinstance(a, torch.fx.Node)]
    from mobiledeploy.devicebench.runtime import positional_names  # the names its runners give unnamed outputs

    names = output_names(program)  # dict keys / output_<i>, as the other targets name them (targets.output_names)
    if names is None or len(names) != len(vals):
        names = positional_names(len(vals))
    return [_io(n, v) for n, v in zip(names, vals) if v is not None]


# --- runtime ---------------------------------------------------------------------------------------


def load_method(path: Path | str | bytes, threads: int = 1, etdump: bool = False) -> tuple[Any, Any]:
    """(program, forward method) loaded by ExecuTorch's runtime with `threads` XNNPACK threads.

    The method points into the program: keep a reference to the program for as long as the method runs
    (dropping it crashes the next call in native code).
    """
    require("executorch", EXTRA)
    from executorch.runtime import Runtime

    from mobiledeploy.devicebench.executorch_runner import reset_threadpool

    reset_threadpool(threads)  # the pool is process-wide
    data = path if isinstance(path, (bytes, bytearray)) else Path(path).read_bytes()
    program = Runtime.get().load_program(bytes(data), enable_etdump=etdump)
    return program, program.load_method("forward")


def run(path: Path | str | bytes, inputs: Sequence[np.ndarray], threads: int = 1) -> list[np.ndarray]:
    """Run a `.pte` once on ExecuTorch's runtime; the outputs as numpy arrays."""
    program, method = load_method(path, threads)  # noqa: F841  (the method needs its program alive)
    outs = method.execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outs]


# --- the target ---------------------------------------------------------------------------------


def calibration_inputs(req: ExportRequest) -> np.ndarray:
    """Calibration images in the graph's input form: app pixels in their layout, or the normalised NCHW tensor."""
    from . import quantize as Q

    quant = req.options.quant
    spec = req.app_input
    if spec is not None:
        imgs = Q.calibration_images(spec.height, spec.width, quant.calibration, n=quant.samples)
        return Q.to_input(imgs, spec.layout, spec.value_range)
    h, w = (int(d) for d in req.example_inputs[0].shape[-2:])
    imgs = Q.calibration_images(h, w, quant.calibration, n=quant.samples)
    return Q.to_input(imgs, "nchw", (0.0, 1.0), req.mean, req.std)


@register_target
class ExecuTorchTarget(Target):
    """ExecuTorch `.pte`: XNNPACK (default) or Core ML delegate; fp32, fp16, int8 (pt2e)."""

    name, suffix, extra = "executorch", SUFFIX, EXTRA
    requires = REQUIRES
    rewrites = REWRITES
    precisions = PRECISIONS
    takes_layout = True

    def convert(self, req: ExportRequest) -> TargetResult:
        """Lower and write the `.pte`; int8 (set by prepare) is quantized here, on the graph, by pt2e."""
        precision = "int8" if req.int8 else req.precision
        calibration = list(calibration_inputs(req)) if req.int8 else None
        info = convert(req.program, req.example_inputs, precision, req.out_path, req.options.executorch.delegate,
                       calibration)
        if calibration is not None:
            from .app import calibration_facts

            # As the other targets record it: the parity check judges int8 on the calibration folder's
            # held-out images (it judged a digits model's .pte on photos of cats without this).
            info["extra"]["quantization"] = {
                "method": "pt2e XNNPACKQuantizer (static)", "weights": "int8 per-channel (symmetric)",
                "activations": "int8 per-tensor", "calibration_samples": len(calibration), **calibration_facts(req)}
        return TargetResult(artifact=info["artifact"], converter=info["converter"],
                            converter_version=info["converter_version"], inputs=info["inputs"],
                            outputs=info["outputs"], extra=info["extra"])

    def finish(self, req: ExportRequest, result: TargetResult) -> TargetResult:
        """The input contract; with --bundled-io also the bundled program (the parity inputs and PyTorch's
        outputs), built here from the converted .pte and written beside the final one by extra_files."""
        result = super().finish(req, result)
        if req.options.executorch.bundled_io:
            from .executorch_bundled import make

            result.extra["bundled_io"] = make(req, result)
        return result

    def extra_files(self, artifact: Path, target_info: dict[str, Any]) -> list[Path]:
        """`<name>.bpte` beside the `.pte` when the export asked for --bundled-io; without it, a `.bpte` an
        earlier export left there is removed (it bundles the program this export replaced)."""
        from .executorch_bundled import bundled_path, write_beside

        if not target_info.get("bundled_io"):
            bundled_path(artifact).unlink(missing_ok=True)
            return []
        return [write_beside(artifact, target_info["bundled_io"])]
