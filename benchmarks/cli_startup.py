"""How long the CLI takes to answer when it needs no model: --help, argument errors, `models`.

Each case runs in a fresh interpreter (what a user's shell does), `--repeat` times, median reported.
Side by side, in the same run, the path the CLI took before issue 14 (item 16): torch and the model
registry imported before the arguments were checked, and `models` building every model to count its
parameters and MACs. The CLI now checks names against mobiledeploy/data/catalog.json and never imports
torch on these paths (asserted by tests/test_cli_fast.py; times are only measured here).

    python benchmarks/cli_startup.py [--repeat 5] [--write]     # --write: update BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("--help", ["--help"]),
    ("export --help", ["export", "--help"]),
    ("unknown model", ["export", "nosuchnet", "-t", "onnx"]),
    ("unknown target", ["export", "mobilenetv2_035", "-t", "tensorrt"]),
    ("bad --input-size", ["export", "mobilenetv2_035", "-t", "onnx", "--input-size", "0"]),
    ("models", ["models"]),
    ("models --json", ["models", "--json"]),
]

# The old order of work, reproduced with today's code: heavy imports first, then the same CLI call.
_BEFORE = ("import sys; import torch; import mobiledeploy.models as m; m.list_models(); "
           "import mobiledeploy.exporters.targets; {extra}from mobiledeploy.cli import main; sys.exit(main(sys.argv[1:]))")


def _time(argv: list[str], repeat: int) -> float:
    """Median wall seconds of `argv` in a fresh interpreter."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(repeat: int) -> list[tuple[str, float, float]]:
    """(case, seconds now, seconds on the old path) for every case."""
    rows = []
    for name, args in CASES:
        now = _time([sys.executable, "-m", "mobiledeploy", *args], repeat)
        # `models` used to create every model and count its MACs: that is what the catalog precomputes.
        extra = "from mobiledeploy.commands import _catalog; _catalog.build(); " if args[0] == "models" else ""
        before = _time([sys.executable, "-c", _BEFORE.format(extra=extra), *args], repeat)
        rows.append((name, now, before))
        print(f"{name:18s} now {now:6.2f} s   old path {before:6.2f} s", flush=True)
    return rows


def _cpu() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def section(rows: list[tuple[str, float, float]], repeat: int, load: tuple[float, float, float]) -> str:
    """The BENCHMARKS.md section for these figures."""
    import torch

    lines = ["## CLI start-up", "",
             "`python benchmarks/cli_startup.py` (issue 14, item 16): wall time of a fresh `python -m mobiledeploy …`, "
             f"median of {repeat}, beside the old path (torch and the model registry imported before the "
             "arguments were checked; `models` building every model for its parameters and MACs) measured in "
             "the same run. Bars: argument errors and `--help` under 1 s on an idle machine, `models` under 2 s.",
             "",
             f"Machine: {_cpu()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
             f"(1/5/15 min) when it started; Python {platform.python_version()}, torch {torch.__version__}.",
             "", "| command | now (s) | old path (s) |", "|---|---:|---:|"]
    lines += [f"| `mobiledeploy {' '.join(dict(CASES)[name])}` | {now:.2f} | "
              f"{before:.2f} |" for name, now, before in rows]
    busy = load[0] > (os.cpu_count() or 1)
    lines += ["", ("The machine was busy (load above its CPU count): idle figures would be lower. " if busy else "")
              + "The old path's `models` time is mostly building every model for its MACs, which the catalog "
              "precomputes. What is asserted instead of times: tests/test_cli_fast.py checks that none of these paths imports "
              "torch, timm or a converter, and that mobiledeploy/data/catalog.json equals the registries."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    a = ap.parse_args()
    load = os.getloadavg()
    rows = measure(a.repeat)
    text = section(rows, a.repeat, load)
    print(text)
    if a.write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _mdsection import write_section

        write_section(ROOT / "BENCHMARKS.md", "## CLI start-up", text)


if __name__ == "__main__":
    main()
