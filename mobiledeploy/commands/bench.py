"""`mobiledeploy bench`: latency of artifacts on this host, on an ARM board over SSH, or on a phone over ADB."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

RUNTIMES = ("auto", "onnxruntime", "litert", "torch", "coreml")


def _command_line(artifacts: tuple[str, ...], params: dict[str, Any]) -> str:
    """The canonical command that reproduces this run (recorded in the JSON)."""
    argv = ["mobiledeploy", "bench", *artifacts]
    for key, val in params.items():
        if val is None or val is False:
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if val is True else [flag, str(val)]
    return shlex.join(argv)


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True)
@click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
              help="auto picks by suffix: .onnx→onnxruntime, .tflite→litert, .pt2 or a model name→torch, "
                   ".mlpackage→coreml (macOS).")
@click.option("--threads", type=int, default=1, show_default=True, help="Intra-op threads (explicit, never 'all').")
@click.option("--cores", default=None, help="Pin to these CPUs, e.g. 0 or 4-7 (on a phone: default = fastest cores).")
@click.option("--runs", type=int, default=50, show_default=True, help="Counted runs per artifact (at least).")
@click.option("--warmup", type=int, default=10, show_default=True, help="Warm-up runs per artifact (at least).")
@click.option("--warmup-seconds", type=float, default=0.0, show_default=True, help="Warm up for at least this long.")
@click.option("--min-seconds", type=float, default=0.0, show_default=True,
              help="Keep counting runs until at least this many seconds have passed.")
@click.option("--cooldown", type=float, default=0.0, show_default=True, help="Idle seconds before each counted run.")
@click.option("--profile-ops", is_flag=True, help="Add a per-op-type time table (separate pass, not in the latency).")
@click.option("--device", default=None, metavar="ssh://user@host[:port] | adb://SERIAL",
              help="Where to measure; default this machine.")
@click.option("--json", "json_path", default=None, metavar="PATH", help="Write the result JSON here ('-': stdout).")
@click.option("--plot", "plot_path", default=None, metavar="PATH", help="Write a PNG of the latency distributions.")
@click.option("--remote-python", default="python3", show_default=True, envvar="MOBILEDEPLOY_REMOTE_PYTHON",
              help="Python on the board that runs the agent; it needs numpy and the runtime "
                   "(pip install numpy onnxruntime / ai-edge-litert / tflite-runtime).")
@click.option("--ssh-config", default=None, envvar="MOBILEDEPLOY_SSH_CONFIG", metavar="FILE",
              help="ssh -F FILE (default: your ~/.ssh/config).")
@click.option("--connect-timeout", type=int, default=10, show_default=True, help="SSH connect timeout, seconds.")
@click.option("--benchmark-binary", default=None, metavar="PATH",
              help="LiteRT benchmark_model for the phone (needed with adb://).")
@click.option("--adb", "adb_bin", default="adb", envvar="MOBILEDEPLOY_ADB", show_default=True, help="adb executable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--sessions", type=int, default=1, show_default=True,
              help="Load each artifact this many times and rotate between the loads, samples pooled (--runs in "
                   "all): one load's memory placement can shift all its runs by several %. Host and ssh:// only.")
def command(artifacts: tuple[str, ...], runtime: str, threads: int, cores: str | None, runs: int, warmup: int,
            warmup_seconds: float, min_seconds: float, cooldown: float, profile_ops: bool, device: str | None,
            json_path: str | None, plot_path: str | None, remote_python: str, ssh_config: str | None,
            connect_timeout: int, benchmark_binary: str | None, adb_bin: str, seed: int, sessions: int) -> None:
    """Measure latency of ARTIFACTS, interleaved (A B A B …), with ratios to the first."""
    from rich.console import Console

    from mobiledeploy.devicebench import report
    from mobiledeploy.devicebench.device import parse_cpu_list
    from mobiledeploy.devicebench.protocol import Protocol
    from mobiledeploy.errors import UserError
    from mobiledeploy.fsio import check_writable

    try:
        core_list = parse_cpu_list(cores) if cores else None
    except ValueError as e:
        raise UserError(f"bad --cores {cores!r}: {e}", "use a CPU list like 0, 0-3 or 4,5") from None
    proto = Protocol(warmup=warmup, warmup_seconds=warmup_seconds, runs=runs, min_seconds=min_seconds,
                     cooldown=cooldown, threads=threads, cores=core_list, profile_ops=profile_ops, seed=seed,
                     sessions=sessions)
    proto.validate()
    cmdline = _command_line(artifacts, dict(
        runtime=None if runtime == "auto" else runtime, threads=threads, cores=cores, runs=runs, warmup=warmup,
        warmup_seconds=warmup_seconds or None, min_seconds=min_seconds or None, cooldown=cooldown or None,
        profile_ops=profile_ops, device=device, seed=seed or None, sessions=sessions if sessions > 1 else None,
        remote_python=remote_python if device and device.startswith("ssh://") else None,
        benchmark_binary=benchmark_binary))
    to_stdout = json_path == "-"
    # Output paths are checked before the run: a typo must not throw away minutes of measurements.
    for path, option in ((None if to_stdout else json_path, "--json"), (plot_path, "--plot")):
        if path:
            check_writable(path, option)
    err = Console(stderr=True)
    with err.status("benchmarking…") as status:
        progress = lambda msg: status.update(msg)  # noqa: E731
        if device is None or device in ("local", "host"):
            from mobiledeploy.devicebench.protocol import measure

            run = measure(list(artifacts), runtime, proto, progress=progress)
        elif device.startswith("ssh://"):
            from mobiledeploy.devicebench.ssh import SSHOptions, bench_ssh

            opts = SSHOptions(config=ssh_config, connect_timeout=connect_timeout, remote_python=remote_python)
            run = bench_ssh(device, list(artifacts), runtime, proto, opts, progress=progress)
        elif device.startswith("adb://"):
            from mobiledeploy.devicebench.adb import bench_adb

            if sessions > 1:
                raise UserError("--sessions is for the host and ssh:// boards",
                                "benchmark_model loads a model once per run on a phone: repeat the command instead")
            if runtime not in ("auto", "litert"):
                raise UserError(f"--runtime {runtime} does not run on phones here",
                                "phones run .tflite through benchmark_model: use --runtime auto or litert")
            run = bench_adb(device, list(artifacts), proto, benchmark_binary, adb_bin=adb_bin, progress=progress)
        else:
            raise UserError(f"unknown --device {device!r}", "use ssh://user@host[:port] or adb://SERIAL, or leave it out")
    run["protocol"]["command"] = cmdline
    for r in run["results"]:
        r["protocol"] = run["protocol"]
    if json_path and not to_stdout:
        report.write_json(run, json_path)
    if plot_path:
        report.plot(run, plot_path)
    if to_stdout:
        import json

        click.echo(json.dumps(run, indent=2))
        return
    out = Console()
    if not out.is_terminal and out.width < 180:
        out = Console(width=180)  # a pipe or a log file: do not squeeze the table into 80 columns
    out.print(report.table(run))
    for path, what in ((json_path, "JSON"), (plot_path, "plot")):
        if path:
            out.print(f"{what}: {path}")
    if any((r.get("ops") or {}).get("available") for r in run["results"]):
        out.print(report.ops_table(run))
    for note in run.get("notes") or []:
        print(f"note: {note}", file=sys.stderr)
    for r in run["results"]:
        ops = r.get("ops")
        if ops and not ops.get("available"):
            print(f"note: no op profile for {r['label']}: {ops.get('reason')}", file=sys.stderr)
