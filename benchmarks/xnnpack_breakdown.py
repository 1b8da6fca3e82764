"""Where a .tflite spends its time in XNNPACK: `perf` samples grouped by microkernel family, per invoke.

    .venv/bin/python benchmarks/xnnpack_breakdown.py [A.tflite B.tflite ...] [--seconds 10] [--write-md]

LiteRT's Python interpreter has no op profiler, but XNNPACK's microkernels keep their symbol names
(xnn_f32_gemm_…, xnn_f32_dwconv_…), so Linux `perf` attributes every sample to a kernel family. Each
model runs alone in a subprocess, 1 thread, for a fixed time; samples are turned into µs per invoke.
Without arguments it exports ours of GhostNetV1 and GhostNetV2 (random weights) and compares them:
the difference is what GhostNetV2's DFC attention costs, family by family. perf slows the run a
little (its totals sit above the plain latency); read the families side by side, not as absolute times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _mdsection import write_section  # noqa: E402

SECTION = "## Where GhostNetV2's extra time goes on LiteRT"
FREQ = 4000  # samples per second

# First match wins: symbol substring → family.
FAMILIES = (
    ("gemm_minmax_ukernel_1x", "GEMM, 1 row (head, SE, FC: weight-bound)"),
    ("gemm", "GEMM (1×1 and stem convs)"),
    ("dwconv", "depthwise conv"),
    ("vmul", "multiply"),
    ("vadd", "add"),
    ("vsigmoid", "sigmoid"),
    ("avgpool", "average pool"),
    ("rdsum", "mean"),
    ("memmove", "copies (concat, reshape, depth-to-space)"),
    ("memcpy", "copies (concat, reshape, depth-to-space)"),
    ("copy_ukernel", "copies (concat, reshape, depth-to-space)"),
    ("transpose", "transpose (NCHW input)"),
    ("xnn_", "XNNPACK runtime"),
    ("pthreadpool", "XNNPACK runtime"),
    ("tflite", "TFLite runtime"),
)

_LOOP = """
import sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1); it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.random.default_rng(0).standard_normal(d["shape"]).astype(d["dtype"]))
for _ in range(20): it.invoke()
ctl, ack = open(sys.argv[3], "w"), open(sys.argv[4])
def perf(cmd):  # perf samples only between "enable" and "disable": loading and packing stay out
    ctl.write(cmd + chr(10)); ctl.flush(); ack.readline()
perf("enable")
n, t = 0, time.time()
while time.time() - t < float(sys.argv[2]):
    it.invoke(); n += 1
wall = time.time() - t
perf("disable")
print("invokes", n, wall, flush=True)
"""


def family(symbol: str) -> str:
    """The kernel family a perf symbol belongs to ('other' for Python and the kernel)."""
    for key, name in FAMILIES:
        if key in symbol:
            return name
    return "other (Python loop, OS)"


def profile(path: Path, seconds: float) -> dict[str, float]:
    """µs per invoke spent in each kernel family while `path` runs alone for `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        data, ctl, ack = Path(tmp) / "perf.data", Path(tmp) / "ctl", Path(tmp) / "ack"
        os.mkfifo(ctl)
        os.mkfifo(ack)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        run = subprocess.run(["perf", "record", "-q", "-F", str(FREQ), "-D", "-1", f"--control=fifo:{ctl},{ack}",
                              "-o", str(data), sys.executable, "-c", _LOOP, str(path), str(seconds), str(ctl), str(ack)],
                             capture_output=True, text=True, env=env)
        if run.returncode or "invokes" not in run.stdout:
            raise SystemExit(f"perf run of {path} failed: {(run.stderr or run.stdout).strip()[-800:]}")
        m = re.search(r"invokes (\d+) ([\d.]+)", run.stdout)
        invokes, wall = int(m.group(1)), float(m.group(2))
        rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "symbol",
                              "-F", "sample,symbol", "--stdio"], capture_output=True, text=True, check=True).stdout
    out: dict[str, float] = {}
    for line in rep.splitlines():
        m = re.match(r"\s*(\d+)\s+\[[.k]\]\s+(\S+)", line)
        if m:
            fam = family(m.group(2))
            out[fam] = out.get(fam, 0.0) + int(m.group(1)) / FREQ / invokes * 1e6
    out["total (wall, under perf)"] = wall / invokes * 1e6
    return out


def _export_defaults(folder: Path) -> list[Path]:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import randomize_bn

    from mobiledeploy.models import create_model
    from mobiledeploy.pipeline import ExportOptions, export

    paths = []
    for name in ("ghostnet_100", "ghostnetv2_100"):
        path = folder / f"{name}.tflite"
        if not path.exists():
            torch.manual_seed(0)
            w = folder / f"{name}.pth"
            torch.save(randomize_bn(create_model(name), seed=1).state_dict(), w)
            export(ExportOptions(name, "tflite", weights=str(w), out_dir=folder, verify=False))
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path, help=".tflite files (default: ours of GhostNetV1 and V2)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="folder for the default exports (reused when present)")
    ap.add_argument("--write-md", action="store_true", help="replace this section of BENCHMARKS.md")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        print("perf is not installed: no breakdown measured (apt install linux-perf)", file=sys.stderr)
        sys.exit(2)
    paths = args.models or _export_defaults(Path(args.out or tempfile.mkdtemp(prefix="xnn_breakdown_")))
    profiles = [profile(p, args.seconds) for p in paths]
    fams = sorted({f for p in profiles for f in p if not f.startswith("total")},
                  key=lambda f: -max(p.get(f, 0.0) for p in profiles))
    names = [p.stem for p in paths]
    head = "| kernel family | " + " | ".join(f"{n} µs" for n in names) + (" | difference µs |" if len(paths) == 2 else " |")
    lines = [SECTION, "",
             f"Run {dt.date.today().isoformat()}; ai-edge-litert {md.version('ai-edge-litert')}, XNNPACK on 1 thread. "
             f"Command: `.venv/bin/python benchmarks/xnnpack_breakdown.py --seconds {args.seconds:g}"
             f"{' --write-md' if args.write_md else ''}`",
             "(perf samples at 4 kHz grouped by XNNPACK microkernel; µs per invoke; perf adds a few % to every row).",
             "", head, "|---" * (len(paths) + 1 + (len(paths) == 2)) + "|"]
    for f in [*fams, "total (wall, under perf)"]:
        vals = [p.get(f, 0.0) for p in profiles]
        diff = f" | {vals[1] - vals[0]:+.0f}" if len(paths) == 2 else ""
        lines.append(f"| {f} | " + " | ".join(f"{v:.0f}" for v in vals) + diff + " |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write_md:
        write_section(ROOT / "BENCHMARKS.md", SECTION, text)


if __name__ == "__main__":
    main()
