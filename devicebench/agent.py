"""The on-device agent: `python -m mobiledeploy.devicebench.agent ARTIFACT... [options]`.

It runs the same protocol as a local `mobiledeploy bench` and prints the run result as JSON
between two marker lines on stdout (runtimes may print their own lines there too).
It needs only Python 3.9+, numpy and the runtime on the board: `mobiledeploy bench
--device ssh://…` copies this package's agent files to a temporary folder there, so nothing
of mobiledeploy has to be installed on the board. No click, rich or torch at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

BEGIN = "@@mobiledeploy-bench-result-begin@@"
END = "@@mobiledeploy-bench-result-end@@"


def parser() -> argparse.ArgumentParser:
    """The agent's options; `ssh.agent_argv` builds the same list from a Protocol."""
    p = argparse.ArgumentParser(prog="python -m mobiledeploy.devicebench.agent",
                                description="Measure artifact latency on this machine (devicebench agent).")
    p.add_argument("artifacts", nargs="+")
    p.add_argument("--runtime", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cores", default=None, help="CPU list, e.g. 0-3 or 4,5")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--warmup-seconds", type=float, default=0.0)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--cooldown", type=float, default=0.0)
    p.add_argument("--profile-ops", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--out", default=None, help="write the JSON here instead of stdout")
    p.add_argument("--infer", default=None, metavar="DIR",
                   help="verify mode: run the inputs listed in DIR/index.json through the one artifact and "
                        "return its outputs (no timing)")
    return p


def run(argv: list[str]) -> dict[str, Any]:
    """Parse agent arguments and measure; raises UserError on bad input."""
    from mobiledeploy.errors import UserError

    from .device import parse_cpu_list
    from .protocol import Protocol, measure

    a = parser().parse_args(argv)
    a.runtime = board_runtime(a.artifacts, a.runtime)
    if a.infer:
        from .infer import run_folder

        if len(a.artifacts) != 1:
            raise UserError("--infer runs one artifact", "pass exactly one artifact")
        result = run_folder(a.infer, a.artifacts[0], a.runtime, a.threads)
        result["agent"] = {"python": sys.version.split()[0], "executable": sys.executable, "file": __file__}
        return result
    try:
        cores = parse_cpu_list(a.cores) if a.cores else None
    except ValueError as e:
        raise UserError(f"bad --cores {a.cores!r}: {e}", "use a CPU list like 0-3 or 4,5") from None
    proto = Protocol(warmup=a.warmup, warmup_seconds=a.warmup_seconds, runs=a.runs, min_seconds=a.min_seconds,
                     cooldown=a.cooldown, threads=a.threads, cores=cores, profile_ops=a.profile_ops, seed=a.seed,
                     sessions=a.sessions)
    result = measure(a.artifacts, a.runtime, proto)
    result["agent"] = {"python": sys.version.split()[0], "executable": sys.executable, "file": __file__}
    return result


def board_runtime(artifacts: list[str], runtime: str) -> str:
    """'auto' for `.pte` files on a machine without ExecuTorch's Python package (it needs torch) but with its
    C++ runtime and our shim (scripts/arm-board.sh installs those): the torch-free runner; else as given."""
    import importlib.util

    from .executorch_native import ExecuTorchNativeRunner

    if runtime != "auto" or not artifacts or not all(a.lower().endswith(".pte") for a in artifacts):
        return runtime
    if importlib.util.find_spec("executorch") is None and ExecuTorchNativeRunner.available():
        return ExecuTorchNativeRunner.name
    return runtime


def main(argv: list[str] | None = None) -> int:
    """Entry point: JSON between markers on stdout; a one-line `error: …` on stderr and exit 2 on bad input."""
    try:
        import numpy  # noqa: F401  (the one hard dependency besides the runtime)
    except ImportError:
        print("error: numpy is not installed for this Python on the device "
              f"({sys.executable}) (install it there: pip install numpy, plus the runtime: "
              "onnxruntime or ai-edge-litert / tflite-runtime)", file=sys.stderr)
        return 2
    from mobiledeploy.errors import UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = run(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    text = json.dumps(result)
    out = parser().parse_args(argv).out
    if out:
        with open(out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(f"\n{BEGIN}\n{text}\n{END}\n")
        sys.stdout.flush()
    return 0


def extract(stdout: str) -> dict[str, Any] | None:
    """The result JSON between the markers in an agent's stdout, or None when absent or broken."""
    start = stdout.rfind(BEGIN)
    end = stdout.rfind(END)
    if start < 0 or end < start:
        return None
    try:
        return json.loads(stdout[start + len(BEGIN):end])
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
