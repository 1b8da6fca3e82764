"""The measurement protocol: load, first call, warm-up, counted runs interleaved across artifacts (A B A B …).

Only numpy and the standard library at module level (runs on boards inside the agent).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mobiledeploy.errors import UserError
from mobiledeploy.manifest import Manifest

from . import device, stats
from .runners import Runner, TensorSpec, runner_for

SCHEMA = "mobiledeploy.bench/1"
RUN_SCHEMA = "mobiledeploy.bench-run/1"
# What one timed call does, for every runtime alike (benchmark_model on phones times invoke only).
CALL_SCOPE = "set inputs + run + fetch outputs"


@dataclass
class Protocol:
    """How to measure: warm-up and counted runs/seconds, cool-down, threads, CPU affinity."""

    warmup: int = 10
    warmup_seconds: float = 0.0
    runs: int = 50
    min_seconds: float = 0.0
    cooldown: float = 0.0  # idle seconds before every counted call (benchmark_model's --run_delay)
    threads: int = 1
    cores: list[int] | None = None
    profile_ops: bool = False
    profile_runs: int = 20
    seed: int = 0
    max_seconds: float = 3600.0  # a guard against a min_seconds typo, per phase
    # Loads of each artifact, rotated and pooled: one load's memory placement can shift every run of
    # it by 4-7 % (two loads of the same .onnx, measured on the development VM), which no amount of
    # interleaving removes.
    sessions: int = 1

    def validate(self) -> None:
        """Reject values that cannot describe a measurement."""
        if self.runs < 1:
            raise UserError(f"--runs must be at least 1 (got {self.runs})", "pass e.g. --runs 50")
        if self.warmup < 0 or self.warmup_seconds < 0 or self.min_seconds < 0 or self.cooldown < 0:
            raise UserError("--warmup, --warmup-seconds, --min-seconds and --cooldown cannot be negative")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more (got {self.seed})", "pass e.g. --seed 0")
        if self.sessions < 1:
            raise UserError(f"--sessions must be at least 1 (got {self.sessions})", "pass e.g. --sessions 3")
        if self.threads < 1:
            raise UserError(f"--threads must be at least 1 (got {self.threads})",
                            "threads are explicit here: pass the count the app will use")

    def to_json(self) -> dict[str, Any]:
        """The protocol as recorded in a result."""
        d = asdict(self)
        d["call"] = CALL_SCOPE
        return d


@dataclass
class Measured:
    """One artifact's runner and everything measured about it."""

    label: str
    artifact: str
    runner: Runner
    call: Callable[[], Any]
    inputs: dict[str, np.ndarray]
    specs: list[TensorSpec]
    manifest: str | None
    init_ms: float
    first_ms: float
    rss_load_mb: float | None
    warmup_count: int = 0
    rss_run_mb: float | None = None  # largest RSS growth across one of its (untimed) warm-up calls
    samples_ms: list[float] = field(default_factory=list)
    session_medians_ms: list[float] = field(default_factory=list)  # one per load, with --sessions > 1


def find_manifest(artifact: str) -> str | None:
    """The export manifest beside an artifact: `<artifact>.json`, else `<stem>.json`."""
    p = Path(artifact)
    for cand in (Path(str(p) + ".json"), p.with_suffix(".json")):
        if cand != p and cand.is_file():
            return str(cand)
    return None


def load_manifest(manifest: str) -> Manifest:
    """The manifest beside an artifact, read leniently: no schema or field check (bench uses whatever a
    hand-written or older manifest says; absent fields read as empty), only its JSON must have the right shape."""
    try:
        m = json.loads(Path(manifest).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read manifest {manifest}: {e}", "fix or remove the manifest file") from None
    try:
        return Manifest.from_json(m)
    except (ValueError, TypeError) as e:  # manifest.ManifestFormatError, or a field of the wrong kind
        raise UserError(f"cannot read manifest {manifest}: {e}", "fix or remove the manifest file") from None


def manifest_specs(manifest: str | None, runtime_specs: list[TensorSpec]) -> list[TensorSpec]:
    """Concrete input specs: the artifact's static dims, the manifest's for dynamic ones, else 1.

    Inputs pair up by position (converters rename them); the artifact stays the authority on static dims.
    """
    inputs = load_manifest(manifest).inputs if manifest is not None else []
    shapes: list[Any] = [i.shape for i in inputs] if len(inputs) == len(runtime_specs) else [None] * len(runtime_specs)
    out = []
    for spec, m_shape in zip(runtime_specs, shapes):
        if not isinstance(m_shape, list) or len(m_shape) != len(spec.shape):
            m_shape = [None] * len(spec.shape)
        shape = [d if d > 0 else (m if isinstance(m, int) and m > 0 else 1) for d, m in zip(spec.shape, m_shape)]
        out.append(TensorSpec(spec.name, shape, spec.dtype))  # the artifact fixes the dtype
    return out


def make_inputs(specs: list[TensorSpec], seed: int) -> dict[str, np.ndarray]:
    """Deterministic inputs: N(0,1) floats, in-range integers, random booleans."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        dt = np.dtype(s.dtype)
        if dt.kind == "f":
            arr = rng.standard_normal(s.shape).astype(dt)
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            arr = rng.integers(max(info.min, -128), min(info.max, 255) + 1, size=s.shape).astype(dt)
        elif dt.kind == "b":
            arr = rng.random(s.shape) < 0.5
        else:
            raise UserError(f"input {s.name!r} has dtype {s.dtype}, which bench cannot fill",
                            "bench a float, integer or boolean input model")
        out[s.name] = np.ascontiguousarray(arr)
    return out


def sha256(path: str) -> str | None:
    """Content hash of an artifact file (or of every file in a directory artifact like .mlpackage)."""
    p = Path(path)
    if not p.exists():
        return None
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def rss_mb() -> float | None:
    """Current resident set size of this process in MB (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def pin(cores: Sequence[int] | None) -> None:
    """Pin this process (and the runtime threads it starts later) to `cores`."""
    if not cores:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise UserError("--cores needs Linux CPU affinity (os.sched_setaffinity)", "drop --cores on this OS")
    avail = os.cpu_count() or 1
    bad = [c for c in cores if c < 0 or c >= avail]
    if bad:
        raise UserError(f"--cores lists CPU(s) {bad} but this machine has CPUs 0-{avail - 1}",
                        "pass cores that exist, e.g. --cores 0")
    try:
        os.sched_setaffinity(0, set(cores))
    except OSError as e:
        raise UserError(f"cannot pin to cores {list(cores)}: {e.strerror}",
                        "pick cores this process may use (see `taskset -p $$`)") from None


def _load(artifact: str, runtime: str, proto: Protocol, label: str) -> Measured:
    cls = runner_for(artifact, runtime)
    manifest = find_manifest(artifact) if os.path.exists(artifact) else None
    cls.load_runtime()  # the import is not the load: init and memory are the artifact's alone
    rss0 = rss_mb()
    t0 = time.perf_counter_ns()
    try:
        runner = cls(artifact, proto.threads)
        specs = manifest_specs(manifest, runner.input_specs())
        if hasattr(runner, "resize"):
            runner.resize(specs)  # type: ignore[attr-defined]
        inputs = make_inputs(specs, proto.seed)
        call = runner.prepare(inputs)
    except UserError:
        raise
    except Exception as e:  # a corrupt or unsupported artifact: the runtime's reason, in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{cls.name} could not load {artifact}: {first}",
                        "check that the file is a complete artifact for this runtime") from None
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    t0 = time.perf_counter_ns()
    try:
        call()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{cls.name} failed to run {artifact}: {first}",
                        "check the input shapes (manifest) and the artifact") from None
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    rss1 = rss_mb()
    return Measured(label, artifact, runner, call, inputs, specs, manifest, init_ms, first_ms,
                    None if rss0 is None or rss1 is None else rss1 - rss0)


def _rounds(items: list[Measured], min_count: int, min_seconds: float, max_seconds: float,
            cooldown: float, record: bool) -> None:
    """Call every artifact once per round, in order, until each has min_count calls and min_seconds passed."""
    clock = time.perf_counter_ns
    start = clock()
    n = 0
    while True:
        elapsed = (clock() - start) / 1e9
        if n >= min_count and elapsed >= min_seconds:
            break
        if n >= min_count and elapsed >= max_seconds:
            break
        for m in items:
            if record:
                if cooldown:
                    time.sleep(cooldown)
                fn = m.call
                t0 = clock()
                fn()
                t1 = clock()
                m.samples_ms.append((t1 - t0) / 1e6)
            else:
                # RSS is sampled around warm-up calls only: the counted runs stay free of the extra syscalls.
                before = rss_mb()
                m.call()
                after = rss_mb()
                if before is not None and after is not None:
                    m.rss_run_mb = max(m.rss_run_mb or 0.0, after - before)
                m.warmup_count += 1
        n += 1


def measure(artifacts: Sequence[str], runtime: str | Sequence[str], proto: Protocol,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole protocol on this machine and return the run result (schema RUN_SCHEMA)."""
    proto.validate()
    if not artifacts:
        raise UserError("no artifact given", "pass at least one artifact path or model name")
    runtimes = [runtime] * len(artifacts) if isinstance(runtime, str) else list(runtime)
    # Resolve every artifact before loading any, so a typo in the third fails before minutes of work.
    for a, r in zip(artifacts, runtimes):
        runner_for(a, r)
    previous = sorted(os.sched_getaffinity(0)) if proto.cores and hasattr(os, "sched_getaffinity") else None
    pin(proto.cores)
    try:
        facts = device.host_facts()
        say = progress or (lambda _msg: None)
        items = []  # session-major: items[s * len(artifacts) + i] is load s of artifact i
        for s in range(proto.sessions):
            for i, (a, r) in enumerate(zip(artifacts, runtimes)):
                say(f"loading {a}" + (f" ({s + 1}/{proto.sessions})" if proto.sessions > 1 else ""))
                items.append(_load(a, r, proto, label=_label(a, i, artifacts)))
        gc_was = gc.isenabled()
        gc.collect()
        # The collector's pauses belong to the harness, not to the model: keep them out of timed calls.
        gc.disable()
        try:
            say("warming up")
            _rounds(items, proto.warmup, proto.warmup_seconds, proto.max_seconds, 0.0, record=False)
            say("measuring")
            per_session = -(-proto.runs // proto.sessions)  # --runs counts per artifact, over its loads
            _rounds(items, per_session, proto.min_seconds, proto.max_seconds, proto.cooldown, record=True)
        finally:
            if gc_was:
                gc.enable()
        peak = peak_rss_mb()
        facts["temperatures_c"]["after"] = device.temperatures()
        results = _results(_pool(items, len(artifacts)), proto, facts, peak, say)
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)  # a library caller's process is not left pinned
    return {"schema": RUN_SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "device": facts, "protocol": results[0]["protocol"], "results": results,
            "notes": caveats(proto, facts, artifacts)}


def caveats(proto: Protocol, facts: dict[str, Any], artifacts: Sequence[str] = ()) -> list[str]:
    """What the reader of these numbers must know about how they were taken (printed, and kept in the JSON)."""
    notes = []
    used = facts.get("cores_used") or []
    if used and proto.threads > len(used):
        notes.append(f"--threads {proto.threads} is more than the {len(used)} CPU(s) this run could use "
                     f"({','.join(map(str, used))}): the runtime's threads took turns on them, so these times "
                     "include that contention; use --threads ≤ the cores the app will have")
    machine = str(facts.get("machine", "")).lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        for a in (a for a in artifacts if str(a).endswith(".ort")):
            platform_ = _ort_platform(a)
            if platform_ in ("arm", None):
                said = "was optimised for ARM (the phones it is for)" if platform_ else \
                    "has no manifest saying which CPU it was optimised for; if ARM (mobiledeploy's default)"
                notes.append(f"{Path(a).name} {said}: on this {machine} host onnxruntime cannot use its x86 layout "
                             "optimisations on it, so it runs slower here than the same .onnx (2.0× for "
                             "MobileNetV2, BENCHMARKS.md); time .ort files on the board or phone, the .onnx here")
    return notes


def _ort_platform(artifact: str) -> str | None:
    """The platform an .ort was optimised for, from its manifest; None without a readable one."""
    m = find_manifest(artifact)
    try:
        info = load_manifest(m).target_info if m else {}
    except UserError:  # a broken manifest already failed the load; here it only means "unknown"
        return None
    return (info.get("ort") or {}).get("target_platform")


def _pool(items: list[Measured], n_artifacts: int) -> list[Measured]:
    """One Measured per artifact: the first load's, with every load's samples interleaved round by round."""
    pooled = []
    for i in range(n_artifacts):
        loads = items[i::n_artifacts]
        first = loads[0]
        if len(loads) > 1:
            first.session_medians_ms = [statistics.median(m.samples_ms) for m in loads]
            first.samples_ms = [x for rnd in zip(*(m.samples_ms for m in loads)) for x in rnd]
            first.warmup_count = sum(m.warmup_count for m in loads)
        pooled.append(first)
    return pooled


def _results(items: list[Measured], proto: Protocol, facts: dict[str, Any], peak: float,
             say: Callable[[str], None]) -> list[dict[str, Any]]:
    """One schema-conforming result per artifact (op profiles are taken here, after the timed runs)."""
    protocol = proto.to_json()
    protocol["gc"] = "disabled during warm-up and counted runs"
    protocol["interleaved"] = len(items) > 1
    results = []
    for m in items:
        ops = None
        if proto.profile_ops:
            say(f"profiling ops of {m.artifact}")
            ops = m.runner.op_profile(m.inputs, proto.profile_runs)
        lat = stats.summarize(m.samples_ms)
        lat.update(init=m.init_ms, first=m.first_ms, warmup_count=m.warmup_count)
        if m.session_medians_ms:
            lat["session_medians"] = m.session_medians_ms
        results.append({
            "schema": SCHEMA,
            "label": m.label,
            "artifact": {
                "path": m.artifact,
                "name": Path(m.artifact).name,
                "sha256": sha256(m.artifact),
                "manifest": m.manifest,
                "inputs": [asdict(s) for s in m.specs],
            },
            "runtime": m.runner.info(),
            "device": facts,
            "protocol": protocol,
            "latency_ms": lat,
            "memory_mb": {
                "rss_load_delta": m.rss_load_mb,
                "rss_run_delta_max": m.rss_run_mb,
                "process_peak_rss": peak,
                "note": "rss_load_delta: RSS growth while loading this artifact and running it once; "
                        "rss_run_delta_max: the largest RSS growth across one of its warm-up runs (sampled "
                        "before and after each call); process_peak_rss: the whole process's peak, the same "
                        "for every artifact of this run",
            },
            "ops": ops,
        })
    add_ratios(results)
    return results


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Each result's median relative to the first artifact's (means when some result has no median)."""
    lats = [r.get("latency_ms") or {} for r in results]
    key = "median" if all(lat.get("median") is not None for lat in lats) else "mean"
    base = lats[0].get(key) if lats else None
    for r, lat in zip(results, lats):
        c = lat.get(key)
        r["ratio_to_first"] = c / base if c is not None and base else None
        r["ratio_stat"] = key


def _label(artifact: str, i: int, all_: Sequence[str]) -> str:
    """Short unique label: the file name, with its position when names repeat."""
    name = Path(artifact).name
    names = [Path(a).name for a in all_]
    return f"{name} [{i + 1}]" if names.count(name) > 1 else name
