"""Benchmarks on Android phones over ADB, with the user's LiteRT `benchmark_model` binary.

Pushes the .tflite files and the binary to a fresh folder under /data/local/tmp, pins the run to
the big cores (the cores with the highest cpuinfo_max_freq), records model/SoC, governors and
temperatures before and after, and turns benchmark_model's log into the bench result schema.
`adb shell` hands one string to the phone's shell, so every command line is built from
shlex-quoted arguments; the folder is removed in a `finally`, also on Ctrl-C.
"""

from __future__ import annotations

import math
import re
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from mobiledeploy.errors import UserError

from . import stats
from .device import millideg_to_c
from .runners import normalize_op
from .protocol import RUN_SCHEMA, SCHEMA, Protocol, add_ratios, caveats, sha256
from .ssh import _sigint_deferred

DEVICE_TMP = "/data/local/tmp"
_SERIAL = re.compile(r"[A-Za-z0-9._:\-]+")
_RC = "@@mobiledeploy-rc="
# Rounds per artifact when several are compared: A B A B A B, so drift (heat, other apps) hits all alike.
ROUNDS_WHEN_COMPARING = 3
PROPS = ("ro.product.manufacturer", "ro.product.model", "ro.product.device", "ro.soc.manufacturer", "ro.soc.model",
         "ro.board.platform", "ro.hardware", "ro.product.cpu.abi", "ro.build.version.release",
         "ro.build.version.sdk", "ro.build.fingerprint")


class BenchmarkOutputError(UserError):
    """benchmark_model printed something we cannot read; the message carries the raw text."""


def parse_adb_url(url: str) -> str:
    """adb://SERIAL → SERIAL (as `adb devices` lists it)."""
    if not url.startswith("adb://"):
        raise UserError(f"not an adb:// device: {url!r}", "use --device adb://SERIAL (see `adb devices`)")
    serial = url[len("adb://"):].rstrip("/")
    if not serial or serial.startswith("-") or not _SERIAL.fullmatch(serial):
        raise UserError(f"bad serial in {url!r}", "use --device adb://SERIAL exactly as `adb devices` lists it")
    return serial


# ---------------------------------------------------------------- parsing benchmark_model's log


_NUM = r"(-?[0-9.]+(?:e[+-]?\d+)?)"


def parse_stat_line(line: str) -> dict[str, float]:
    """'count=50 first=… curr=… min=… max=… avg=… std=… [p5=… median=… p95=…]' (any order; '(all same)')."""
    vals = {k: float(v) for k, v in re.findall(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=" + _NUM, line)}
    if "(all same)" in line or ("count" in vals and "avg" not in vals and "curr" in vals):
        # Stat prints only count and curr when every sample was equal.
        v = vals["curr"]
        vals.update(min=v, max=v, avg=v, std=0.0)
        vals.setdefault("first", v)
    return vals


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """Read benchmark_model's log (LiteRT/TFLite formats of 2019-2025) into numbers; µs are kept as µs."""
    out: dict[str, Any] = {}
    m = re.search(r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM
                  + r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM, text)
    if m:
        out.update(init_us=float(m.group(1)), first_us=float(m.group(2)), warmup_avg_us=float(m.group(3)),
                   inference_avg_us=float(m.group(4)))
    else:
        # The pre-2020 summary line.
        m = re.search(r"Average inference timings in us: Warmup: " + _NUM + r", Init: " + _NUM
                      + r", (?:Inference|no stats): " + _NUM, text)
        if not m:
            raise BenchmarkOutputError(
                "could not find 'Inference timings in us: …' in benchmark_model's output",
                "is --benchmark-binary LiteRT's benchmark_model for this phone's ABI? Its raw output:\n"
                + _tail(text))
        out.update(warmup_avg_us=float(m.group(1)), init_us=float(m.group(2)), inference_avg_us=float(m.group(3)))
    # The two "count=" lines after each "Running benchmark for at least …": warm-up, then counted runs.
    phases = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Running benchmark for at least" in line:
            for nxt in lines[i + 1:i + 4]:
                if "count=" in nxt:
                    phases.append(parse_stat_line(nxt))
                    break
    if len(phases) >= 2:
        out["warmup_stats_us"], out["run_stats_us"] = phases[0], phases[-1]
    elif len(phases) == 1:
        out["run_stats_us"] = phases[0]
    m = re.search(r"Initialized session in " + _NUM + r"\s*ms", text)
    if m:
        out["session_init_ms"] = float(m.group(1))
    m = re.search(r"The input model file size \(MB\): " + _NUM, text)
    if m:
        out["model_size_mb"] = float(m.group(1))
    m = re.search(r"Num threads: \[(\d+)\]", text)
    if m:
        out["threads"] = int(m.group(1))
    m = re.search(r"Explicitly applied (\w+) delegate, and the model graph will be (completely|partially) executed"
                  r" by the delegate(?: w/ (\d+) delegate kernels)?", text)
    if m:
        out["delegate"] = m.group(1)
        out["partitions"] = 1 if m.group(2) == "completely" else int(m.group(3) or 0) or None
        out["fully_delegated"] = m.group(2) == "completely"
    elif re.search(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed", text):
        out["delegate"] = None
        out["partitions"] = 0
        out["fully_delegated"] = False
    m = re.search(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): init="
                  + _NUM + r" overall=" + _NUM, text)
    if m:
        out["mem_init_mb"], out["mem_overall_mb"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _NUM, text)
    if m:
        out["mem_peak_mb"] = float(m.group(1))
    ops = parse_op_summary(text)
    if ops is not None:
        out["ops"] = ops
    return out


def parse_op_summary(text: str) -> list[dict[str, Any]] | None:
    """The 'Summary by node type' table of the regular runs (--enable_op_profiling=true), or None."""
    start = text.rfind("Operator-wise Profiling Info for Regular Benchmark Runs")
    if start < 0:
        return None
    at = text.find("Summary by node type", start)
    if at < 0:
        return None
    rows = []
    row = re.compile(r"^\s*(.+?)\s+(\d+)\s+" + _NUM + r"\s+" + _NUM + r"%\s+" + _NUM + r"%\s+" + _NUM + r"\s+(\d+)\s*$")
    for line in text[at:].splitlines()[2:]:
        line = re.sub(r"^(?:INFO:|I\s+\S+\s*:)\s*", "", line)
        if not line.strip() or line.startswith("Timings"):
            break
        m = row.match(line)
        if m:
            rows.append({"op": m.group(1).strip(), "kind": normalize_op(m.group(1).strip()),
                         "count": int(m.group(2)), "ms_per_run": float(m.group(3)),
                         "percent": float(m.group(4)), "times_called": int(m.group(7))})
    return rows


def _tail(text: str, n: int = 25) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[-n:]) if lines else "(no output)"


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` listing ('[key]: [value]' per line) → dict."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE))


def big_core_mask(max_freq_khz: dict[int, int], threads: int = 1) -> tuple[str, list[int]] | None:
    """Hex taskset mask and cores of the fastest cluster(s): clusters by cpuinfo_max_freq, fastest first,
    until there is a core for every thread (prime alone for 1 thread; prime + big for 4 on a 1+3+4 SoC)."""
    if not max_freq_khz:
        return None
    cores: list[int] = []
    for f in sorted(set(max_freq_khz.values()), reverse=True):
        cores += [c for c, cf in max_freq_khz.items() if cf == f]
        if len(cores) >= threads:
            break
    cores.sort()
    return cores_mask(cores), cores


def cores_mask(cores: Sequence[int]) -> str:
    """[4, 5, 6, 7] → 'f0'."""
    return format(sum(1 << c for c in cores), "x")


# ---------------------------------------------------------------- talking to the phone


class ADB:
    """`adb -s SERIAL …` with quoted shell command lines and the exit status of the remote command."""

    def __init__(self, serial: str, adb: str = "adb", timeout: float = 60.0) -> None:
        self.serial, self.adb, self.timeout = serial, adb, timeout

    def _run(self, args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.adb, *args], capture_output=True, text=True,
                                  timeout=timeout or self.timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise UserError(f"'{self.adb}' not found", "install Android platform-tools and put adb on PATH") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"adb {' '.join(args[:3])} did not finish within {timeout or self.timeout:.0f} s",
                            "check the phone's connection (adb devices)") from None

    def state(self) -> str:
        """The phone's state as `adb devices` lists it: device, offline, unauthorized, … or 'missing'."""
        proc = self._run(["devices"])
        if proc.returncode != 0:
            raise UserError(f"adb devices failed: {proc.stderr.strip() or proc.stdout.strip()}",
                            "restart the server: adb kill-server")
        for line in proc.stdout.splitlines()[1:]:
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] == self.serial:
                return parts[1].strip()
        return "missing"

    def check(self) -> None:
        """Refuse offline, unauthorized and absent phones with what to do about each."""
        st = self.state()
        if st == "device":
            return
        hints = {
            "unauthorized": "unlock the phone and accept the 'Allow USB debugging' prompt, then retry",
            "offline": "reconnect the cable or run `adb kill-server && adb devices`",
            "missing": "check the serial against `adb devices` and that USB debugging is on",
        }
        hint = hints.get(st.split()[0] if st else st, "see `adb devices`; udev rules may be missing (no permissions)")
        raise UserError(f"phone {self.serial} is {st}", hint)

    def shell(self, argv: Sequence[str], timeout: float | None = None) -> tuple[int, str]:
        """Run argv on the phone; (exit status, stdout+stderr). The status is echoed, as old adb drops it."""
        line = " ".join(shlex.quote(a) for a in argv) + f" 2>&1; echo {_RC}$?"
        proc = self._run(["-s", self.serial, "shell", line], timeout)
        out = proc.stdout + proc.stderr
        m = re.search(re.escape(_RC) + r"(\d+)\s*$", out)
        if not m:
            if proc.returncode != 0:
                raise UserError(f"adb shell on {self.serial} failed: {_tail(out, 3)}", "check `adb devices`")
            return proc.returncode, out
        return int(m.group(1)), out[:m.start()]

    def sh(self, script: str, *args: str, timeout: float | None = None) -> tuple[int, str]:
        """A constant sh script with values as positional parameters."""
        return self.shell(["sh", "-c", script, "mobiledeploy-bench", *args], timeout)

    def push(self, local: str | Path, remote: str) -> None:
        """Copy a file to the phone (adb's sync protocol takes the remote path verbatim, no shell)."""
        proc = self._run(["-s", self.serial, "push", str(local), remote], timeout=max(self.timeout, 300))
        if proc.returncode != 0:
            raise UserError(f"adb push {Path(local).name} failed: {_tail(proc.stderr + proc.stdout, 2)}",
                            "check free space in /data/local/tmp and the connection")

    def pull(self, remote: str, local: str | Path) -> None:
        """Copy a file from the phone."""
        proc = self._run(["-s", self.serial, "pull", remote, str(local)], timeout=max(self.timeout, 300))
        if proc.returncode != 0 or not Path(local).is_file():
            raise UserError(f"adb pull {remote} failed: {_tail(proc.stderr + proc.stdout, 2)}", "check the connection")


_MAX_FREQS = ('for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do '
              '[ -r "$f" ] && printf "%s\\t%s\\n" "$f" "$(cat "$f")"; done; true')
_SNAPSHOT = ('for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do '
             '[ -r "$f" ] && printf "gov\\t%s\\t%s\\n" "$f" "$(cat "$f")"; done; '
             'for z in /sys/class/thermal/thermal_zone*; do '
             '[ -r "$z/temp" ] && printf "temp\\t%s\\t%s\\n" "$(cat "$z/type" 2>/dev/null)" "$(cat "$z/temp")"; done; true')
_RUN = ('d=$1; mask=$2; shift 2; cd "$d" || exit 97; chmod 755 ./benchmark_model || exit 96; '
        # Probe the mask first: cores can be offline (hotplug), and then the run goes unpinned, on record.
        'if [ -n "$mask" ] && taskset "$mask" true >/dev/null 2>&1; then exec taskset "$mask" ./benchmark_model "$@"; '
        'elif [ -n "$mask" ]; then echo "@@mobiledeploy-no-taskset"; fi; exec ./benchmark_model "$@"')


def read_max_freqs(adb: ADB) -> dict[int, int]:
    """cpuinfo_max_freq (kHz) per CPU, where readable."""
    _, out = adb.sh(_MAX_FREQS)
    freqs = {}
    for path, val in re.findall(r"cpu(\d+)/cpufreq/cpuinfo_max_freq\t(\d+)", out):
        freqs[int(path)] = int(val)
    return freqs


def snapshot(adb: ADB) -> dict[str, Any]:
    """Governor per CPU and every readable thermal zone in °C."""
    _, out = adb.sh(_SNAPSHOT)
    govs: dict[str, str] = {}
    temps: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "gov":
            m = re.search(r"cpu(\d+)/", parts[1])
            if m:
                govs[m.group(1)] = parts[2].strip()
        elif len(parts) == 3 and parts[0] == "temp" and re.fullmatch(r"-?\d+", parts[2].strip()):
            name = parts[1].strip() or f"zone{len(temps)}"
            key, k = name, 1
            while key in temps:
                k += 1
                key = f"{name}#{k}"
            temps[key] = millideg_to_c(int(parts[2]))
    return {"governors": govs, "temperatures_c": temps}


def benchmark_argv(graph: str, proto: Protocol, runs: int, warmup: int) -> list[str]:
    """benchmark_model flags for one round of the protocol."""
    argv = [f"--graph={graph}", f"--num_threads={proto.threads}", f"--num_runs={runs}",
            f"--warmup_runs={warmup}", f"--warmup_min_secs={proto.warmup_seconds:g}",
            f"--min_secs={proto.min_seconds:g}", "--report_peak_memory_footprint=true"]
    if proto.cooldown:
        argv.append(f"--run_delay={proto.cooldown:g}")
    if proto.profile_ops:
        argv.append("--enable_op_profiling=true")
    return argv


def _latency(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency in ms from one or several benchmark_model rounds of one artifact."""
    first = rounds[0]
    parts = []
    for r in rounds:
        s = r.get("run_stats_us")
        if not s or "avg" not in s:
            s = {"count": float("nan"), "avg": r["inference_avg_us"], "std": float("nan"),
                 "min": float("nan"), "max": float("nan")}
        parts.append({"count": s.get("count", float("nan")), "mean": s["avg"] / 1000, "std": s.get("std", 0) / 1000,
                      "min": s.get("min", float("nan")) / 1000, "max": s.get("max", float("nan")) / 1000})
    if any(math.isnan(p["count"]) for p in parts):
        merged: dict[str, Any] = {"count": None, "mean": sum(p["mean"] for p in parts) / len(parts),
                                  "std": None, "min": None, "max": None, "cv": None}
    else:
        merged = stats.merge_summaries(parts)
        merged["count"] = int(merged["count"])
    single = (rounds[0].get("run_stats_us") or {}) if len(rounds) == 1 else {}
    lat: dict[str, Any] = {
        "init": first["init_us"] / 1000 if "init_us" in first else None,
        "first": first["first_us"] / 1000 if "first_us" in first else None,
        "warmup_mean": first["warmup_avg_us"] / 1000,
        **merged,
        # benchmark_model prints a median (and p5/p95) only in newer builds, and never raw samples.
        "median": single["median"] / 1000 if "median" in single else None,
        "p5": single["p5"] / 1000 if "p5" in single else None,
        "p95": single["p95"] / 1000 if "p95" in single else None,
        "p90": None, "p99": None, "trimmed_mean": None, "raw": None,
        "rounds": [{"count": p["count"], "mean": p["mean"]} for p in parts],
        "source": "benchmark_model (times Invoke only)",
    }
    return lat


def bench_adb(url: str, artifacts: Sequence[str], proto: Protocol, benchmark_binary: str | None,
              adb_bin: str = "adb", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Push, pin, run benchmark_model (interleaved rounds for several artifacts), parse, clean up."""
    proto.validate()
    serial = parse_adb_url(url)
    say = progress or (lambda _m: None)
    if not benchmark_binary:
        raise UserError("--device adb:// needs --benchmark-binary PATH",
                        "download LiteRT's benchmark_model for the phone's ABI (android_aarch64) and pass its path")
    binary = Path(benchmark_binary)
    if not binary.is_file():
        raise UserError(f"benchmark binary not found: {binary}", "pass the path of LiteRT's benchmark_model")
    for a in artifacts:
        if not Path(a).is_file():
            raise UserError(f"artifact not found: {a}", "check the path")
        if Path(a).suffix.lower() != ".tflite":
            raise UserError(f"phones run .tflite artifacts through benchmark_model; got {Path(a).name}",
                            "export with --target tflite, or bench this artifact on the host or over SSH")
    adb = ADB(serial, adb_bin)
    adb.check()
    workdir = f"{DEVICE_TMP}/mobiledeploy-bench-{secrets.token_hex(6)}"
    rc, out = adb.shell(["mkdir", "-p", workdir])
    if rc != 0:
        raise UserError(f"cannot create {workdir} on {serial}: {_tail(out, 2)}", "check that /data/local/tmp is writable")
    removed = False
    try:
        say(f"pushing {len(artifacts)} model(s) and benchmark_model to {serial}")
        graphs = []
        for i, a in enumerate(artifacts):
            # Fixed names on the phone: nothing the user named ever reaches the phone's shell.
            remote = f"{workdir}/m{i}.tflite"
            adb.push(a, remote)
            graphs.append(remote)
        adb.push(binary, f"{workdir}/benchmark_model")
        _, props_text = adb.shell(["getprop"])
        props = parse_getprop(props_text)
        freqs = read_max_freqs(adb)
        if proto.cores:
            pinned: tuple[str, list[int]] | None = (cores_mask(proto.cores), list(proto.cores))
        else:
            pinned = big_core_mask(freqs, proto.threads)
        before = snapshot(adb)
        rounds_n = 1 if len(artifacts) == 1 else min(ROUNDS_WHEN_COMPARING, proto.runs)
        runs_each = math.ceil(proto.runs / rounds_n)
        parsed: list[list[dict[str, Any]]] = [[] for _ in artifacts]
        raw_logs: list[list[str]] = [[] for _ in artifacts]
        for rnd in range(rounds_n):
            for i, g in enumerate(graphs):
                say(f"round {rnd + 1}/{rounds_n}: {Path(artifacts[i]).name}")
                argv = benchmark_argv(g, proto, runs_each, proto.warmup)
                rc, text = adb.sh(_RUN, workdir, pinned[0] if pinned else "", *argv, timeout=3600)
                if rc != 0 and "Inference timings in us" not in text:
                    raise BenchmarkOutputError(
                        f"benchmark_model exited with status {rc} on {serial} for {Path(artifacts[i]).name}",
                        "its raw output:\n" + _tail(text))
                result = parse_benchmark_output(text)
                result["taskset_missing"] = "@@mobiledeploy-no-taskset" in text
                parsed[i].append(result)
                raw_logs[i].append(text)
        after = snapshot(adb)
    finally:
        with _sigint_deferred():
            try:
                rc_rm, _ = adb.shell(["rm", "-rf", workdir])
                rc_ls, _ = adb.shell(["ls", "-d", workdir])
                removed = rc_rm == 0 and rc_ls != 0
            except UserError:
                removed = False
        if not removed:
            print(f"warning: could not verify that {workdir} was removed on {serial}", file=sys.stderr)
    pinned_ok = pinned is not None and not any(r.get("taskset_missing") for rs in parsed for r in rs)
    device = {
        "kind": "adb",
        "serial": serial,
        "model": " ".join(v for v in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if v) or None,
        "soc": " ".join(v for v in (props.get("ro.soc.manufacturer"), props.get("ro.soc.model")) if v)
        or props.get("ro.board.platform") or props.get("ro.hardware"),
        "cpu": props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware"),
        "android": props.get("ro.build.version.release"),
        "sdk": props.get("ro.build.version.sdk"),
        "abi": props.get("ro.product.cpu.abi"),
        "props": {k: props[k] for k in PROPS if k in props},
        "cores_total": len(freqs) or None,
        "cpu_max_freq_khz": {str(k): v for k, v in sorted(freqs.items())} or None,
        "cores_used": pinned[1] if pinned_ok else None,
        "taskset_mask": pinned[0] if pinned_ok else None,
        "pinning": ("fastest cores by cpuinfo_max_freq" if not proto.cores else "--cores") if pinned_ok
        else "not pinned (no cpufreq data, no taskset, or the mask was rejected)",
        "governor": _one(before["governors"]),
        "governors": {"before": before["governors"], "after": after["governors"]},
        "temperatures_c": {"before": before["temperatures_c"], "after": after["temperatures_c"]},
        "workdir": workdir,
        "workdir_removed": removed,
    }
    protocol = proto.to_json()
    protocol.update(call="Invoke only (benchmark_model)", rounds=rounds_n, runs_per_round=runs_each,
                    interleaved=len(artifacts) > 1,
                    device_command=f"taskset {pinned[0] if pinned_ok else '(none)'} benchmark_model "
                            + " ".join(benchmark_argv("<graph>", proto, runs_each, proto.warmup)))
    bin_info = {"name": "litert benchmark_model", "binary": binary.name, "binary_sha256": sha256(str(binary))}
    results = []
    for i, a in enumerate(artifacts):
        first = parsed[i][0]
        ops = None
        if proto.profile_ops:
            table = first.get("ops")
            ops = ({"available": True, "source": "benchmark_model --enable_op_profiling (Summary by node type)",
                    "runs": runs_each, "table": table} if table is not None
                   else {"available": False, "reason": "benchmark_model printed no op profile"})
        results.append({
            "schema": SCHEMA,
            "label": Path(a).name,
            "artifact": {"path": str(a), "name": Path(a).name, "sha256": sha256(str(a)),
                         "size_mb": first.get("model_size_mb")},
            "runtime": {**bin_info, "version": None, "delegate": first.get("delegate"),
                        "threads": first.get("threads", proto.threads), "delegated_nodes": None,
                        "total_nodes": None, "partitions": first.get("partitions"),
                        "fully_delegated": first.get("fully_delegated")},
            "device": device,
            "protocol": protocol,
            "latency_ms": _latency(parsed[i]),
            "memory_mb": {"init_delta": first.get("mem_init_mb"), "overall_delta": first.get("mem_overall_mb"),
                          "peak": first.get("mem_peak_mb"),
                          "note": "benchmark_model's footprint figures (approximate, tool included)"},
            "ops": ops,
            "raw_log_tail": _tail(raw_logs[i][0], 40),
        })
    add_ratios(results)
    return {"schema": RUN_SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "device": device, "protocol": protocol, "results": results,
            "notes": caveats(proto, device)}  # e.g. --cores 7 with --threads 4: contention on one core


def _one(d: dict[str, str]) -> Any:
    vals = sorted(set(d.values()))
    return vals[0] if len(vals) == 1 else (vals or None)

