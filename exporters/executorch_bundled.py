"""ExecuTorch bundled programs (`<name>.bpte`, `export --bundled-io`): the `.pte` with test inputs and
PyTorch's outputs embedded, so a device (or `mobiledeploy verify X.bpte`) can check the program alone.

The inputs are the parity check's own (seeded random tensors, the photos, and for int8 the crops), fed as
the artifact takes them; the expected outputs are the PyTorch fp32 model's on the same inputs. `verify`
runs the embedded program on ExecuTorch's runtime and judges it with the parity bars of its precision
(exporters.parity.TOLERANCES), not with ExecuTorch's element-wise allclose.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from mobiledeploy.errors import UserError, VerificationError, require

if TYPE_CHECKING:
    from mobiledeploy.manifest import Manifest

    from .parity import ParityReport
    from .targets import ExportRequest, TargetResult

SUFFIX = ".bpte"
METHOD = "forward"
# Bytes made in the target's finish (before the final name exists), by sha256; extra_files writes them beside
# the final .pte. One export at a time per target, so at most one entry is kept.
_PENDING: dict[str, bytes] = {}
# ExecuTorch's ScalarType codes (c10's numbering) of the tensors a bundled program holds.
_DTYPES = {0: np.uint8, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64, 5: np.float16, 6: np.float32,
           7: np.float64, 11: np.bool_}

Case = tuple[str, tuple[np.ndarray, ...], list[np.ndarray]]  # (input name, artifact feeds, expected outputs)


def bundled_path(pte: Path) -> Path:
    """Where the bundled program of a `.pte` lives: the same stem, `.bpte`."""
    return Path(pte).with_suffix(SUFFIX)


def test_cases(req: ExportRequest, result: TargetResult) -> list[Case]:
    """The parity check's inputs (as the artifact takes them) and PyTorch's outputs on each."""
    from . import parity

    batch = parity.samples(_model_shapes(req), req.mean, req.std, crop_pct=_crop_pct(req.module),
                           specs=result.inputs, precision=req.final_precision, target_info=result.extra)
    return [(s.name, tuple(s.feeds), parity.reference_outputs(req.module, s.arrays)) for s in batch]


def _model_shapes(req: ExportRequest) -> list[list[int]]:
    """The PyTorch model's input shapes (NCHW), also when the artifact takes app pixels (--layout)."""
    spec = req.app_input
    if spec is None:
        return [list(t.shape) for t in req.example_inputs]
    return [[int(req.example_inputs[0].shape[0]), len(req.mean), spec.height, spec.width]]


def _crop_pct(module: Any) -> float:
    """The evaluation crop the pipeline's parity check uses for this model (its photos are cropped so):
    our registry's default_cfg, timm's pretrained_cfg, else 0.875 as for a .pt2."""
    cfg = getattr(module, "default_cfg", None)
    if cfg is not None and getattr(cfg, "crop_pct", None):
        return float(cfg.crop_pct)
    timm_cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(timm_cfg, dict) and timm_cfg.get("crop_pct"):
        return float(timm_cfg["crop_pct"])
    return 0.875


def serialize(pte: Path, cases: Sequence[Case]) -> bytes:
    """The `.bpte` bytes: the `.pte` file's program plus one `forward` test case per input."""
    import torch

    require("executorch.devtools", "executorch")  # names the extra; keeps torchao's import-time log line quiet
    from executorch.devtools import BundledProgram
    from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
    from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

    def tensors(arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]

    suite = MethodTestSuite(METHOD, [MethodTestCase(inputs=tensors(feeds), expected_outputs=tensors(outs))
                                     for _, feeds, outs in cases])
    return serialize_from_bundled_program_to_flatbuffer(BundledProgram(None, [suite], pte_file_path=str(pte)))


def make(req: ExportRequest, result: TargetResult) -> dict[str, Any]:
    """Build the bundled program of the converted `.pte` and keep it for `write_beside`; what the manifest
    records of it (file suffix, sha256, size, the test cases by input name)."""
    cases = test_cases(req, result)
    data = serialize(Path(result.artifact), cases)
    digest = hashlib.sha256(data).hexdigest()
    _PENDING.clear()
    _PENDING[digest] = data
    return {"format": "ExecuTorch BundledProgram", "suffix": SUFFIX, "sha256": digest, "size_bytes": len(data),
            "method": METHOD, "test_cases": len(cases), "inputs": [name for name, _, _ in cases],
            "expected_outputs": "PyTorch fp32 (eval mode) on the same inputs"}


def write_beside(pte: Path, record: dict[str, Any]) -> Path:
    """Write the bundled program `make` built for this export beside the final `.pte`."""
    from mobiledeploy.fsio import atomic_write

    data = _PENDING.pop(record["sha256"], None)
    if data is None:  # extra_files without the finish of the same export in this process
        raise UserError("the bundled program of this export was not built", "export again with --bundled-io")
    path = bundled_path(pte)
    atomic_write(path, data)
    return path


# --- verify ----------------------------------------------------------------------------------------


def read(data: bytes) -> tuple[bytes, list[tuple[list[np.ndarray], list[np.ndarray]]]]:
    """The embedded program and the `forward` test cases (inputs, expected outputs) of a `.bpte`."""
    # Through require: a missing extra is named, and torchao's import-time log line stays quiet.
    ser = require("executorch.devtools.bundled_program.serialize", "executorch")
    # The reader shells out to flatc, which prints its whole usage for a foreign file: check the flatbuffer's
    # file identifier (bytes 4-8) first. Private, but it is the schema version this executorch writes.
    if data[4:8] != ser._bundled_program_file_identifier():
        raise ValueError(f"file identifier {data[4:8]!r}")
    bp = ser.deserialize_from_flatbuffer_to_bundled_program(data)
    suite = next((s for s in bp.method_test_suites if s.method_name == METHOD), None)
    if suite is None:
        raise ValueError(f"no test cases for {METHOD!r}")
    cases = [([_array(v.val) for v in c.inputs], [_array(v.val) for v in c.expected_outputs])
             for c in suite.test_cases]
    return bytes(bp.program), cases


def _array(t: Any) -> np.ndarray:
    """A bundled tensor (flatbuffer bytes, ScalarType, sizes, dim order) as a numpy array."""
    if list(t.dim_order) != list(range(len(t.sizes))):
        raise ValueError(f"a bundled tensor in dim order {list(t.dim_order)}; only contiguous ones are read")
    return np.frombuffer(bytes(t.data), dtype=_DTYPES[int(t.scalar_type)]).reshape([int(d) for d in t.sizes])


def verify_bundled(path: Path) -> tuple[Manifest, ParityReport | None, str | None]:
    """Run a `.bpte`'s embedded program on ExecuTorch's runtime for each embedded input and judge its outputs
    against the embedded PyTorch outputs with the parity bars of the precision in the `.pte`'s manifest.

    Returns (manifest, report, reason) like pipeline.verify; report is None with the reason when this host
    cannot run the program (the Core ML delegate)."""
    from mobiledeploy import manifest as mf

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no bundled program at {path}", "check the path (export with --bundled-io writes it)")
    man_path = mf.manifest_path(path.with_suffix(".pte"))
    m = mf.read(man_path)
    if m.target != "executorch":
        raise UserError(f"{man_path.name} describes a {m.target} artifact, not an ExecuTorch program")
    data = path.read_bytes()
    try:
        program, cases = read(data)
    except Exception as e:  # a foreign or truncated file: the flatbuffer reader's own error is no help
        raise UserError(f"{path.name} is not an ExecuTorch bundled program ({str(e)[:80] or type(e).__name__})",
                        "export it again with --bundled-io") from None
    if hashlib.sha256(program).hexdigest() != m.sha256:
        raise VerificationError(f"{path.name} bundles another program than the {m.artifact} its manifest describes",
                                "export again with --bundled-io")
    if not cases:
        raise VerificationError(f"{path.name} holds no test cases", "export again with --bundled-io")
    if m.target_info.get("verified_here") is False:
        return m, None, f"this host has no runtime for its {m.target_info.get('delegate')} delegate"
    return m, _judge(m, data, cases, path.name), None


def _judge(m: Manifest, data: bytes, cases: list[tuple[list[np.ndarray], list[np.ndarray]]],
           name: str) -> ParityReport:
    """parity.check over the embedded cases: the reference is the embedded outputs (by case index), the
    artifact is the embedded program on ExecuTorch's runtime."""
    from . import parity

    recorded = (m.target_info.get("bundled_io") or {}).get("inputs") or []
    # The recorded names keep the parity check's grouping (int8 is judged on the photos, not on noise).
    names = recorded if len(recorded) == len(cases) else [f"bundled#{i}" for i in range(len(cases))]
    in_names = [i.name for i in m.inputs]
    out_names = [o.name for o in m.outputs]
    batch = [parity.Sample(n, (np.array(k),), tuple(ins)) for k, (n, (ins, _)) in enumerate(zip(names, cases))]
    run = _runner(data, in_names, out_names)

    def expected(k: Any) -> list[Any]:
        import torch

        return [torch.from_numpy(np.array(o)) for o in cases[int(k)][1]]

    return parity.check(expected, lambda _path, feeds: run(feeds), Path(name), in_names, out_names, batch,
                        precision=m.precision, reference_name=f"PyTorch fp32 outputs embedded in {name}",
                        target_info=m.target_info)


def _runner(data: bytes, in_names: list[str], out_names: list[str]
            ) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """feeds → outputs by name, through the bundled program loaded by ExecuTorch's runtime, 1 thread."""
    import torch
    from executorch.extension.pybindings.portable_lib import (
        _load_bundled_program_from_buffer,
        _load_for_executorch_from_bundled_program,
    )

    from mobiledeploy.devicebench.executorch_runner import reset_threadpool

    reset_threadpool(1)
    bundle = _load_bundled_program_from_buffer(data)
    module = _load_for_executorch_from_bundled_program(bundle)

    def run(feeds: dict[str, np.ndarray], keep: Any = bundle) -> dict[str, np.ndarray]:  # module points into it
        outs = module.forward([torch.from_numpy(np.array(feeds[n])) for n in in_names])
        return {n: o.numpy() for n, o in zip(out_names, outs)}

    return run
