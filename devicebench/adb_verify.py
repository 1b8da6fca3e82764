"""`verify --device adb://…`: run the parity inputs through LiteRT's benchmark_model on the phone.

benchmark_model reads each input's raw bytes from `--input_layer_value_files` and, after the run,
writes the raw bytes of every output, in the interpreter's output order, to `--output_filepath`.
We push the inputs, pull that file back and cut it into the outputs by their sizes. The names the
manifest uses are the signature's; benchmark_model speaks tensor names: the host's LiteRT maps them.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mobiledeploy.errors import UserError

from .adb import DEVICE_TMP, ADB, _tail, parse_adb_url, parse_getprop
from .protocol import sha256
from .device_run import DeviceOptions, DeviceRun, Feeds

_FEATURES = re.compile(r"^Features\s*:\s*(.+)$", re.MULTILINE)


@dataclass
class TensorIO:
    """One model input or output: benchmark_model's tensor name, the manifest's (signature) name, shape, dtype."""

    tensor: str
    name: str
    shape: list[int]
    dtype: np.dtype


def tflite_io(artifact: Path) -> tuple[list[TensorIO], list[TensorIO]]:
    """Inputs and outputs in the interpreter's order (what benchmark_model reads and writes)."""
    from mobiledeploy.errors import require

    lite = require("ai_edge_litert.interpreter", "tflite")
    it = lite.Interpreter(model_path=str(artifact))
    sig_in: dict[int, str] = {}
    sig_out: dict[int, str] = {}
    sigs = it.get_signature_list()
    if len(sigs) == 1:
        runner = it.get_signature_runner(next(iter(sigs)))
        sig_in = {int(d["index"]): k for k, d in runner.get_input_details().items()}
        sig_out = {int(d["index"]): k for k, d in runner.get_output_details().items()}

    def io(details: list[dict[str, Any]], names: dict[int, str]) -> list[TensorIO]:
        return [TensorIO(d["name"], names.get(int(d["index"]), d["name"]), [int(x) for x in d["shape"]],
                         np.dtype(d["dtype"])) for d in details]

    return io(it.get_input_details(), sig_in), io(it.get_output_details(), sig_out)


def _escape(name: str) -> str:
    """benchmark_model's value-file map splits name and path at ':'; a ':' inside a name is written '::'."""
    return name.replace(":", "::")


def benchmark_io_argv(graph: str, inputs: Sequence[TensorIO], files: Sequence[str], out_file: str) -> list[str]:
    """benchmark_model flags for one inference on given inputs, outputs saved raw."""
    return [f"--graph={graph}", "--num_threads=1", "--num_runs=1", "--warmup_runs=1", "--min_secs=0",
            "--warmup_min_secs=0",
            "--input_layer=" + ",".join(t.tensor for t in inputs),
            "--input_layer_shape=" + ":".join(",".join(str(d) for d in t.shape) for t in inputs),
            "--input_layer_value_files=" + ",".join(f"{_escape(t.tensor)}:{f}" for t, f in zip(inputs, files)),
            f"--output_filepath={out_file}"]


def split_outputs(raw: bytes, outputs: Sequence[TensorIO]) -> dict[str, np.ndarray]:
    """Cut benchmark_model's output file into the outputs, by their byte sizes in order."""
    sizes = [int(np.prod(t.shape)) * t.dtype.itemsize for t in outputs]
    if len(raw) != sum(sizes):
        raise UserError(f"benchmark_model wrote {len(raw)} output bytes; the model's outputs take {sum(sizes)}",
                        "is --benchmark-binary a LiteRT benchmark_model with --output_filepath (2023 or later)?")
    out, pos = {}, 0
    for t, n in zip(outputs, sizes):
        out[t.name] = np.frombuffer(raw[pos:pos + n], dtype=t.dtype).reshape(t.shape).copy()
        pos += n
    return out


_RUN = 'd=$1; shift; cd "$d" || exit 97; chmod 755 ./benchmark_model || exit 96; exec ./benchmark_model "$@"'


def run_adb(url: str, artifact: Path, feeds: Sequence[Feeds], manifest: Mapping[str, Any],
            opts: DeviceOptions, progress: Callable[[str], None] | None = None) -> DeviceRun:
    """Push the model, benchmark_model and each sample's inputs; run; pull the outputs; clean up."""
    say = progress or (lambda _m: None)
    serial = parse_adb_url(url)
    artifact = Path(artifact)
    if artifact.suffix.lower() == ".pte":
        raise UserError("verifying .pte on a phone (ExecuTorch executor_runner) is not implemented yet",
                        "verify the .tflite on the phone, or the .pte on the host")
    if artifact.suffix.lower() != ".tflite":
        raise UserError(f"phones verify .tflite artifacts through benchmark_model; got {artifact.name}",
                        "export with --target tflite, or verify this artifact on the host or over ssh://")
    if not opts.benchmark_binary:
        raise UserError("--device adb:// needs --benchmark-binary PATH",
                        "download LiteRT's benchmark_model for the phone's ABI (android_aarch64) and pass its path")
    binary = Path(opts.benchmark_binary)
    if not binary.is_file():
        raise UserError(f"benchmark binary not found: {binary}", "pass the path of LiteRT's benchmark_model")
    ins, outs = tflite_io(artifact)
    adb = ADB(serial, opts.adb_bin)
    adb.check()
    workdir = f"{DEVICE_TMP}/mobiledeploy-verify-{secrets.token_hex(6)}"
    rc, text = adb.shell(["mkdir", "-p", workdir])
    if rc != 0:
        raise UserError(f"cannot create {workdir} on {serial}: {_tail(text, 2)}", "check that /data/local/tmp is writable")
    results: list[dict[str, np.ndarray]] = []
    removed = False
    try:
        say(f"pushing {artifact.name} and benchmark_model to {serial}")
        adb.push(artifact, f"{workdir}/model.tflite")
        adb.push(binary, f"{workdir}/benchmark_model")
        with tempfile.TemporaryDirectory(prefix="mobiledeploy-adb-") as tmp:
            for i, f in enumerate(feeds):
                say(f"input {i + 1}/{len(feeds)} on {serial}")
                files = []
                for k, t in enumerate(ins):
                    name = next((n for n in f if n == t.name or n == t.tensor), None)
                    if name is None:
                        raise UserError(f"no value for the model input {t.name!r} (have {sorted(f)})", None)
                    arr = np.ascontiguousarray(np.asarray(f[name], dtype=t.dtype).reshape(t.shape))
                    local = Path(tmp) / f"s{i}_in{k}.bin"
                    local.write_bytes(arr.tobytes())
                    remote = f"{workdir}/s{i}_in{k}.bin"
                    adb.push(local, remote)
                    files.append(remote)
                out_remote = f"{workdir}/s{i}_out.bin"
                rc, log = adb.sh(_RUN, workdir, *benchmark_io_argv(f"{workdir}/model.tflite", ins, files, out_remote),
                                 timeout=600)
                if rc != 0:
                    raise UserError(f"benchmark_model exited with status {rc} on {serial}", "its output:\n" + _tail(log))
                local_out = Path(tmp) / f"s{i}_out.bin"
                adb.pull(out_remote, local_out)
                results.append(split_outputs(local_out.read_bytes(), outs))
        _, props_text = adb.shell(["getprop"])
        _, cpuinfo = adb.shell(["cat", "/proc/cpuinfo"])
    finally:
        try:
            rc_rm, _ = adb.shell(["rm", "-rf", workdir])
            rc_ls, _ = adb.shell(["ls", "-d", workdir])
            removed = rc_rm == 0 and rc_ls != 0
        except UserError:
            removed = False
    props = parse_getprop(props_text)
    m = _FEATURES.search(cpuinfo)
    feats = m.group(1).split() if m else None
    from .device import arm_cores

    have = set(feats or ())
    device = {"kind": "adb", "serial": serial, "workdir_removed": removed,
              "model": " ".join(v for v in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if v)
              or None,
              "cpu": " / ".join(v for v in (props.get("ro.soc.model"), arm_cores(cpuinfo)) if v) or None,
              "android": props.get("ro.build.version.release"), "abi": props.get("ro.product.cpu.abi"),
              "isa": {"machine": "aarch64" if (props.get("ro.product.cpu.abi") or "").startswith("arm64") else
                      props.get("ro.product.cpu.abi"), "cpuinfo_features": feats, "emulated_cpu": None,
                      "vector_path": None if feats is None else ("SME" if "sme" in have else "SVE" if "sve" in have
                                                                 else "NEON" if "asimd" in have else "none")}}
    runtime = {"name": "litert benchmark_model", "package": f"benchmark_model ({binary.name})", "version": None,
               "delegate": "XNNPACK (benchmark_model default)", "binary_sha256": sha256(str(binary))}
    notes = [] if removed else [f"could not verify that {workdir} was removed on {serial}"]
    return DeviceRun(results, device, runtime, notes)
