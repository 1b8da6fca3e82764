"""`verify --device adb://…`: run the parity inputs on the phone with the runtime's own command-line tool.

- `.tflite`: LiteRT's benchmark_model reads each input's raw bytes from `--input_layer_value_files` and,
  after the run, writes the raw bytes of every output, in the interpreter's output order, to
  `--output_filepath`. We push the inputs, pull that file back and cut it into the outputs by their sizes.
  The names the manifest uses are the signature's; benchmark_model speaks tensor names: the host's LiteRT
  maps them.
- `.pte`: ExecuTorch's executor_runner reads `--inputs a.bin,b.bin` (raw bytes, one file per method input,
  in order) and with `--output_file BASE` writes each tensor output's raw bytes to `BASE-<i>.bin`
  (examples/portable/executor_runner/executor_runner.cpp). Shapes and dtypes come from the program.
- `.onnx` / `.ort`: onnxruntime's onnx_test_runner judges by itself: a test case folder holds the model
  and `test_data_set_<i>/input_<k>.pb`, `output_<k>.pb` (TensorProtos); it runs the inputs and compares
  each output element as |got − expected| ≤ atol + rtol·|expected|, atol and rtol from the folder's
  `config.txt` (`per_sample_tolerance`, `relative_per_sample_tolerance`; onnxruntime/test/onnx/TestCase.cc),
  and prints a summary (TestResultStat.cc). The expected outputs are PyTorch's, from this host. The phone's
  outputs never come back, so the result is that verdict, not a rel_l2 figure: a strict limit whose pass
  implies rel_l2 ≤ the fp32 bar, then, if it failed, a wide one whose failure proves the bar missed; in
  between, "not verified" (see `onnx_tolerances`).

A tool that is on neither the phone nor the command line makes the check "not verified" (exit 4) with
where to get it.
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
# A tool given on the command line is pushed as ./NAME; one installed on the phone runs from where it is.
_RUN_TOOL = 'd=$1; t=$2; shift 2; cd "$d" || exit 97; [ -x "$t" ] || chmod 755 "$t" || exit 96; exec "$t" "$@"'
# Where an installed tool is: on PATH, else where the tools' docs put it (adb push … /data/local/tmp/).
_FIND = 'command -v "$1" 2>/dev/null || { [ -x "$2" ] && echo "$2"; } || true'

# What each artifact needs on the phone: the tool, and where a user gets it.
TOOLS = {
    ".tflite": ("benchmark_model", "download LiteRT's benchmark_model for the phone's ABI (android_aarch64) and "
                                   "pass --benchmark-binary PATH"),
    ".pte": ("executor_runner", "build ExecuTorch's executor_runner for Android (cmake with the Android NDK "
                                "toolchain, -DEXECUTORCH_BUILD_XNNPACK=ON, target executor_runner), then "
                                "adb push it to /data/local/tmp/ or pass --executor-runner PATH"),
    ".onnx": ("onnx_test_runner", "build onnxruntime for Android (./build.sh --android --android_abi arm64-v8a "
                                  "--android_ndk_path … --android_sdk_path …; onnx_test_runner is in the build "
                                  "folder), then adb push it to /data/local/tmp/"),
}
TOOLS[".ort"] = TOOLS[".onnx"]


class NotVerifiedOnDevice(UserError):
    """The check could not run on the phone (its tool is missing there, or it cannot judge this precision)."""

    exit_code = 4  # the CLI's "not verified" status


def _finish_facts(adb: ADB, serial: str, workdir: str, removed: bool) -> dict[str, Any]:
    _, props_text = adb.shell(["getprop"])
    _, cpuinfo = adb.shell(["cat", "/proc/cpuinfo"])
    props = parse_getprop(props_text)
    m = _FEATURES.search(cpuinfo)
    feats = m.group(1).split() if m else None
    from .device import arm_cores

    have = set(feats or ())
    return {"kind": "adb", "serial": serial, "workdir_removed": removed,
            "model": " ".join(v for v in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if v)
            or None,
            "cpu": " / ".join(v for v in (props.get("ro.soc.model"), arm_cores(cpuinfo)) if v) or None,
            "android": props.get("ro.build.version.release"), "abi": props.get("ro.product.cpu.abi"),
            "isa": {"machine": "aarch64" if (props.get("ro.product.cpu.abi") or "").startswith("arm64") else
                    props.get("ro.product.cpu.abi"), "cpuinfo_features": feats, "emulated_cpu": None,
                    "vector_path": None if feats is None else ("SME" if "sme" in have else "SVE" if "sve" in have
                                                               else "NEON" if "asimd" in have else "none")}}


def _tool(adb: ADB, serial: str, artifact: Path, workdir: str, host_path: str | None) -> tuple[str, str | None]:
    """(path to run on the phone, sha256 of a pushed binary or None): the given binary pushed into workdir,
    else the one installed on the phone; NotVerifiedOnDevice when neither."""
    name, how = TOOLS[artifact.suffix.lower()]
    if host_path:
        binary = Path(host_path)
        if not binary.is_file():
            raise UserError(f"{name} not found: {binary}", f"pass the path of {name} built for the phone")
        adb.push(binary, f"{workdir}/{name}")
        return f"./{name}", sha256(str(binary))
    rc, out = adb.sh(_FIND, name, f"{DEVICE_TMP}/{name}")
    found = next((line.strip() for line in out.splitlines() if line.strip().startswith("/")), None)
    if rc != 0 or not found:
        raise NotVerifiedOnDevice(f"{artifact.name} not verified on adb://{serial}: {name} not found on the device "
                           f"(not on PATH, not in {DEVICE_TMP}/)", how)
    return found, None


def run_adb(url: str, artifact: Path, feeds: Sequence[Feeds], manifest: Any, opts: DeviceOptions,
            progress: Callable[[str], None] | None = None,
            references: Sequence[Mapping[str, np.ndarray]] | None = None) -> DeviceRun:
    """Push the model and each sample's inputs, run the artifact's tool, bring the outputs (or its verdict) back,
    clean up. `references` (PyTorch's outputs by name, per sample) are what onnx_test_runner compares against."""
    say = progress or (lambda _m: None)
    serial = parse_adb_url(url)
    artifact = Path(artifact)
    suffix = artifact.suffix.lower()
    if suffix not in TOOLS:
        raise UserError(f"phones verify .tflite, .pte, .onnx and .ort artifacts; got {artifact.name}",
                        "verify this artifact on the host or over ssh://")
    if suffix == ".tflite" and not opts.benchmark_binary:
        raise UserError("--device adb:// needs --benchmark-binary PATH for .tflite", TOOLS[".tflite"][1])
    if suffix in (".onnx", ".ort") and references is None:
        raise UserError("onnx_test_runner compares on the phone: it needs PyTorch's outputs for the inputs", None)
    io = _prepare(artifact, suffix, manifest)
    adb = ADB(serial, opts.adb_bin)
    adb.check()
    workdir = f"{DEVICE_TMP}/mobiledeploy-verify-{secrets.token_hex(6)}"
    rc, text = adb.shell(["mkdir", "-p", workdir])
    if rc != 0:
        raise UserError(f"cannot create {workdir} on {serial}: {_tail(text, 2)}", "check that /data/local/tmp is writable")
    removed = False
    try:
        with tempfile.TemporaryDirectory(prefix="mobiledeploy-adb-") as tmp:
            if suffix == ".tflite":
                results, runtime, verdict = _run_benchmark_model(adb, serial, artifact, feeds, io, opts, workdir,
                                                                 Path(tmp), say)
            elif suffix == ".pte":
                results, runtime, verdict = _run_executor_runner(adb, serial, artifact, feeds, io, opts, workdir,
                                                                 Path(tmp), say)
            else:
                results, runtime, verdict = _run_onnx_test_runner(adb, serial, artifact, feeds, references,
                                                                  manifest, opts, workdir, Path(tmp), say)
    finally:
        try:
            rc_rm, _ = adb.shell(["rm", "-rf", workdir])
            rc_ls, _ = adb.shell(["ls", "-d", workdir])
            removed = rc_rm == 0 and rc_ls != 0
        except UserError:
            removed = False
    device = _finish_facts(adb, serial, workdir, removed)
    notes = [] if removed else [f"could not verify that {workdir} was removed on {serial}"]
    return DeviceRun(results, device, runtime, notes, verdict=verdict)


def _prepare(artifact: Path, suffix: str, manifest: Any) -> Any:
    """What the host must know of the artifact before the phone runs it: tensor layouts in the tool's order."""
    if suffix == ".tflite":
        return tflite_io(artifact)
    if suffix == ".pte":
        return pte_io(artifact)
    return None


def _run_benchmark_model(adb: ADB, serial: str, artifact: Path, feeds: Sequence[Feeds], io: Any, opts: DeviceOptions,
                         workdir: str, tmp: Path, say: Callable[[str], None]) -> tuple[list, dict, None]:
    ins, outs = io
    binary = Path(opts.benchmark_binary or "")
    if not binary.is_file():
        raise UserError(f"benchmark binary not found: {binary}", "pass the path of LiteRT's benchmark_model")
    say(f"pushing {artifact.name} and benchmark_model to {serial}")
    adb.push(artifact, f"{workdir}/model.tflite")
    adb.push(binary, f"{workdir}/benchmark_model")

    def one(i: int, files: list[str]) -> dict[str, np.ndarray]:
        out_remote = f"{workdir}/s{i}_out.bin"
        rc, log = adb.sh(_RUN, workdir, *benchmark_io_argv(f"{workdir}/model.tflite", ins, files, out_remote),
                         timeout=600)
        if rc != 0:
            raise UserError(f"benchmark_model exited with status {rc} on {serial}", "its output:\n" + _tail(log))
        local_out = tmp / f"s{i}_out.bin"
        adb.pull(out_remote, local_out)
        return split_outputs(local_out.read_bytes(), outs)

    results = _each_sample(adb, serial, feeds, ins, workdir, tmp, say, one)
    runtime = {"name": "litert benchmark_model", "package": f"benchmark_model ({binary.name})", "version": None,
               "delegate": "XNNPACK (benchmark_model default)", "binary_sha256": sha256(str(binary))}
    return results, runtime, None


def _each_sample(adb: ADB, serial: str, feeds: Sequence[Feeds], ins: Sequence[TensorIO], workdir: str, tmp: Path,
                 say: Callable[[str], None], run_one: Callable[[int, list[str]], dict[str, np.ndarray]]
                 ) -> list[dict[str, np.ndarray]]:
    """Push each sample's inputs as raw files and run the tool on them; the outputs per sample."""
    results = []
    for i, f in enumerate(feeds):
        say(f"input {i + 1}/{len(feeds)} on {serial}")
        files = [_push_raw(adb, f, t.name, t.tensor, t.shape, t.dtype, tmp, f"{workdir}/s{i}_in{k}.bin")
                 for k, t in enumerate(ins)]
        results.append(run_one(i, files))
    return results


def _push_raw(adb: ADB, feeds: Feeds, name: str, alias: str, shape: Sequence[int], dtype: np.dtype, tmp: Path,
              remote: str) -> str:
    """One input as raw bytes (C order, the tool's dtype) pushed to `remote`; returns `remote`."""
    key = next((n for n in feeds if n == name or n == alias), None)
    if key is None:
        raise UserError(f"no value for the model input {name!r} (have {sorted(feeds)})", None)
    arr = np.ascontiguousarray(np.asarray(feeds[key], dtype=dtype).reshape(shape))
    local = tmp / Path(remote).name
    local.write_bytes(arr.tobytes())
    adb.push(local, remote)
    return remote


# --- ExecuTorch: executor_runner ------------------------------------------------------------------------


def pte_io(artifact: Path) -> tuple[list[TensorIO], list[TensorIO]]:
    """The program's inputs and outputs in method order, named as the host's runner names them."""
    from .runners import host_runner_class, load_runner

    cls = host_runner_class(artifact)
    if cls is None:
        raise UserError(f"this host cannot read {artifact.name}'s inputs and outputs",
                        "pip install 'mobiledeploy[executorch]'")
    runner = load_runner(artifact, threads=1, cls=cls)
    return ([TensorIO(s.name, s.name, list(s.shape), np.dtype(s.dtype)) for s in runner.input_specs()],
            [TensorIO(s.name, s.name, list(s.shape), np.dtype(s.dtype)) for s in runner.output_specs()])


def executor_runner_argv(model: str, inputs: Sequence[str], out_base: str) -> list[str]:
    """executor_runner flags for one run on given input files, every output saved raw as OUT_BASE-<i>.bin."""
    return [f"--model_path={model}", "--inputs=" + ",".join(inputs), f"--output_file={out_base}",
            "--cpu_threads=1"]


def read_executor_outputs(files: Sequence[Path], outputs: Sequence[TensorIO]) -> dict[str, np.ndarray]:
    """executor_runner's BASE-<i>.bin files (raw bytes of output i) as arrays by output name."""
    out = {}
    for f, t in zip(files, outputs):
        raw = f.read_bytes()
        want = int(np.prod(t.shape)) * t.dtype.itemsize
        if len(raw) != want:
            raise UserError(f"executor_runner wrote {len(raw)} bytes for output {t.name!r}; it takes {want} "
                            f"({t.dtype.name} {t.shape})", "is the .pte on the phone the one verified here?")
        out[t.name] = np.frombuffer(raw, dtype=t.dtype).reshape(t.shape).copy()
    return out


def _run_executor_runner(adb: ADB, serial: str, artifact: Path, feeds: Sequence[Feeds], io: Any,
                         opts: DeviceOptions, workdir: str, tmp: Path, say: Callable[[str], None]
                         ) -> tuple[list, dict, None]:
    from .executorch_native import plan_counts

    ins, outs = io
    tool, pushed_sha = _tool(adb, serial, artifact, workdir, opts.executor_runner)
    say(f"pushing {artifact.name} to {serial} ({'the given executor_runner' if pushed_sha else tool})")
    adb.push(artifact, f"{workdir}/model.pte")

    def one(i: int, files: list[str]) -> dict[str, np.ndarray]:
        base = f"{workdir}/s{i}_out"
        rc, log = adb.sh(_RUN_TOOL, workdir, tool, *executor_runner_argv(f"{workdir}/model.pte", files, base),
                         timeout=600)
        if rc != 0:
            raise UserError(f"executor_runner exited with status {rc} on {serial}", "its output:\n" + _tail(log))
        local = []
        for k in range(len(outs)):
            dest = tmp / f"s{i}_out-{k}.bin"
            adb.pull(f"{base}-{k}.bin", dest)
            local.append(dest)
        return read_executor_outputs(local, outs)

    results = _each_sample(adb, serial, feeds, ins, workdir, tmp, say, one)
    counts = plan_counts(artifact.read_bytes())
    runtime = {"name": "executorch executor_runner", "package": f"executor_runner ({tool})", "version": None,
               "delegate": counts.get("delegate"), "partitions": counts.get("partitions"),
               "kernel_calls": counts.get("kernel_calls"), "binary_sha256": pushed_sha}
    return results, runtime, None


# --- onnxruntime: onnx_test_runner ------------------------------------------------------------------------


def onnx_tolerances(references: Sequence[Mapping[str, np.ndarray]], names: Sequence[str], bar: float
                    ) -> tuple[float, float]:
    """(pass_atol, fail_atol) for onnx_test_runner's per-element test |d| ≤ atol (rtol 0), which bracket the
    rel_l2 bar of every output (parity judges each output on its own).

    Passing at pass_atol = bar · the smallest RMS of any expected output implies each output's rel_l2 ≤ bar
    (‖d‖ ≤ √n·atol ≤ bar·‖e‖). Failing at fail_atol = bar · the largest ‖e‖ of any expected output means one
    element alone puts its output's rel_l2 above the bar. Between the two the tool cannot decide: a right
    fp32 artifact's worst element is often a few times its RMS error, so one strict test alone would fail
    artifacts that meet the bar."""
    arrays = [np.asarray(r[n], np.float64).ravel() for r in references for n in names]
    rms = min(float(np.sqrt(np.mean(np.square(a)))) for a in arrays if a.size)
    norm = max(float(np.linalg.norm(a)) for a in arrays)
    return bar * rms, bar * norm


def write_test_case(folder: Path, artifact: Path, feeds: Sequence[Feeds],
                    references: Sequence[Mapping[str, np.ndarray]], out_names: Sequence[str], atol: float,
                    rtol: float) -> None:
    """onnx_test_runner's layout: FOLDER/model.onnx|.ort, config.txt, test_data_set_<i>/input_<k>.pb, output_<k>.pb."""
    from onnx import numpy_helper

    folder.mkdir(parents=True)
    (folder / f"model{artifact.suffix.lower()}").write_bytes(artifact.read_bytes())
    _write_tolerance(folder / "config.txt", atol, rtol)
    for i, (f, ref) in enumerate(zip(feeds, references)):
        d = folder / f"test_data_set_{i}"
        d.mkdir()
        for k, (name, arr) in enumerate(f.items()):
            (d / f"input_{k}.pb").write_bytes(numpy_helper.from_array(np.ascontiguousarray(arr), name)
                                              .SerializeToString())
        for k, name in enumerate(out_names):
            (d / f"output_{k}.pb").write_bytes(numpy_helper.from_array(
                np.ascontiguousarray(np.asarray(ref[name], np.float32)), name).SerializeToString())


def _write_tolerance(config: Path, atol: float, rtol: float) -> None:
    """The test case's config.txt: TestCase.cc reads 'key: value' lines; these replace its 1e-3 defaults."""
    config.write_text(f"per_sample_tolerance: {atol!r}\nrelative_per_sample_tolerance: {rtol!r}\n")


_SUMMARY = {"models": r"Models:\s*(\d+)", "total": r"Total test cases:\s*(\d+)", "succeeded": r"Succeeded:\s*(\d+)",
            "not_implemented": r"Not implemented:\s*(\d+)", "failed": r"\n\s*Failed:\s*(\d+)",
            "result_differs": r"Result differs:\s*(\d+)", "load_failed": r"Got exception while loading model:\s*(\d+)",
            "run_exception": r"Got exception while running:\s*(\d+)"}


def parse_test_runner_summary(text: str) -> dict[str, int] | None:
    """The counts of onnx_test_runner's closing summary (TestResultStat::ToString), or None when it printed none."""
    if "result:" not in text:
        return None
    body = text[text.rindex("result:"):]
    out = {}
    for key, pat in _SUMMARY.items():
        m = re.search(pat, body)
        if m:
            out[key] = int(m.group(1))
    return out if {"models", "total", "succeeded", "failed"} <= set(out) else None


def _run_onnx_test_runner(adb: ADB, serial: str, artifact: Path, feeds: Sequence[Feeds],
                          references: Sequence[Mapping[str, np.ndarray]] | None, manifest: Any,
                          opts: DeviceOptions, workdir: str, tmp: Path, say: Callable[[str], None]
                          ) -> tuple[list, dict, Any]:
    from mobiledeploy.exporters.parity import TOLERANCES

    precision = getattr(manifest, "precision", None) or (manifest.get("precision") if isinstance(manifest, Mapping)
                                                          else None) or "fp32"
    if precision != "fp32":
        raise NotVerifiedOnDevice(f"{artifact.name} not verified on adb://{serial}: onnx_test_runner judges outputs "
                                  f"element by element, which says nothing about the {precision} bar (rel_l2 and "
                                  "top-1 over outputs)", "verify it over ssh:// or on the host")
    refs = list(references or [])
    out_names = list(refs[0]) if refs else []
    tool, pushed_sha = _tool(adb, serial, artifact, workdir, getattr(opts, "onnx_test_runner", None))
    bar = TOLERANCES["fp32"]["rel_l2"]
    pass_atol, fail_atol = onnx_tolerances(refs, out_names, bar)
    case = tmp / "cases" / "test_mobiledeploy"
    write_test_case(case, artifact, feeds, refs, out_names, pass_atol, 0.0)
    say(f"pushing {artifact.name} and {len(feeds)} test data sets to {serial}")
    remote_case = f"{workdir}/cases/test_mobiledeploy"
    for p in sorted(case.rglob("*")):
        if p.is_file():
            adb.push(p, f"{remote_case}/{p.relative_to(case).as_posix()}")
    n = len(feeds)

    def run(atol: float) -> tuple[bool, dict[str, int], int]:
        # One model at a time and one Session::Run at a time (-j 1 -c 1): the defaults use every core.
        rc, log = adb.sh(_RUN_TOOL, workdir, tool, "-j", "1", "-c", "1", f"{workdir}/cases", timeout=900)
        stat = parse_test_runner_summary(log)
        if stat is None:
            raise UserError(f"onnx_test_runner exited with status {rc} on {serial} without its summary",
                            "its output:\n" + _tail(log))
        if stat["models"] != 1 or stat["total"] != n:
            raise UserError(f"onnx_test_runner ran {stat['total']} test data sets of {stat['models']} models; "
                            f"{n} data sets of 1 model were pushed", "its output:\n" + _tail(log))
        ok = rc == 0 and stat["succeeded"] == n and stat["failed"] == 0 and stat.get("not_implemented", 0) == 0
        return ok, stat, rc

    passed, stat, rc = run(pass_atol)
    atol = pass_atol
    if not passed:  # does one element alone prove the bar missed? Only the tolerance changes on the phone.
        config = case / "config.txt"
        _write_tolerance(config, fail_atol, 0.0)
        adb.push(config, f"{remote_case}/config.txt")
        wide_ok, wide_stat, wide_rc = run(fail_atol)
        if wide_ok:
            raise NotVerifiedOnDevice(
                f"{artifact.name} not verified on adb://{serial}: onnx_test_runner found elements off by more than "
                f"{pass_atol:.2g} (bar × the smallest output RMS) but none by more than {fail_atol:.2g} (bar × the "
                "largest output norm), so element-wise checks cannot decide the rel_l2 bar, and the outputs stay "
                "on the phone", "verify it over ssh:// or on the host")
        stat, rc, atol = wide_stat, wide_rc, fail_atol
    runtime = {"name": "onnxruntime onnx_test_runner", "package": f"onnx_test_runner ({tool})", "version": None,
               "delegate": None, "binary_sha256": pushed_sha}
    verdict = tool_verdict(passed, stat, n, [f"s{i}" for i in range(n)], atol, bar, rc)
    return [], runtime, verdict


def tool_verdict(passed: bool, stat: Mapping[str, int], n: int, inputs: Sequence[str], atol: float,
                 bar: float, rc: int) -> Any:
    """A ParityReport that carries onnx_test_runner's verdict (no figures: the outputs stayed on the phone)."""
    from mobiledeploy.exporters.parity import ParityReport

    meaning = (f"passing implies rel_l2 ≤ {bar:.2g}" if passed
               else f"one element over it alone puts its output's rel_l2 above {bar:.2g}")

    class ToolVerdict(ParityReport):
        def summary(self) -> str:  # no rel_l2 to print: say what was tested
            return (f"onnx_test_runner on the phone: {stat['succeeded']}/{n} test data sets within "
                    f"|got − PyTorch| ≤ {atol:.2g} per element ({meaning}; failed {stat['failed']}, exit status "
                    f"{rc}); the outputs stay on the phone, so no rel_l2 figure")

    return ToolVerdict(reference="PyTorch fp32 outputs from this host, compared on the phone by onnx_test_runner",
                       max_abs=None, rel_l2=None, cosine=None, top1_agreement=None, n_samples=n, inputs=list(inputs),
                       tolerance={"rel_l2": bar, "top1_agreement": 1.0, "per_sample_tolerance": atol,
                                  "relative_per_sample_tolerance": 0.0},
                       passed=bool(passed), per_sample=[dict(stat)])
