"""Where a .tflite spends its time in XNNPACK: `perf` samples grouped by microkernel family, per invoke.

    .venv/bin/python benchmarks/xnnpack_breakdown.py [A.tflite B.tflite ...] [--seconds 10] [--write-md]
    .venv/bin/python benchmarks/xnnpack_breakdown.py --pair A.pte A.tflite [--seconds 20]

LiteRT's Python interpreter has no op profiler, but XNNPACK's microkernels keep their symbol names
(xnn_f32_gemm_…, xnn_f32_dwconv_…), so Linux `perf` attributes every sample to a kernel family. Each
model runs alone in a subprocess, 1 thread, for a fixed time; samples are turned into µs per invoke.
Without arguments it exports ours of GhostNetV1 and GhostNetV2 (random weights) and compares them:
the difference is what GhostNetV2's DFC attention costs, family by family. perf slows the run a
little (its totals sit above the plain latency); read the families side by side, not as absolute times.

`--pair X.pte X.tflite` puts ExecuTorch's XNNPACK beside LiteRT's in ONE process, calls alternating
(5 of one, 5 of the other), 1 thread, under `perf record --call-graph dwarf` (stack unwinding, as the
executorch wheel's XNNPACK keeps only exported symbols): every sample is assigned to its runtime and
to the XNNPACK compute it ran in (pthreadpool entry → compute function → microkernel; the wheel's
unnamed functions are named by their start address in libexecutorch_backend_xnnpack.so, found in its
.eh_frame), or to the per-call work around it (xnn_reshape_runtime / xnn_setup_runtime_v2, input and
output copies, runtime and Python glue). Prints ms per call for each row and the difference.
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


# --- ExecuTorch .pte vs LiteRT .tflite in one process (--pair) -----------------------------------------------

_PAIR_LOOP = """
import sys, time, gc, numpy as np, torch
torch.set_num_threads(1)
from mobiledeploy.exporters import executorch as ET
from mobiledeploy.devicebench.runners import get_runner
pte, tfl, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
ctl, ack = open(sys.argv[4], "w"), open(sys.argv[5])
def perf(cmd):
    ctl.write(cmd + chr(10)); ctl.flush(); ack.readline()
r = get_runner("litert")(tfl, 1)
spec = r.input_specs()[0]
x = np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)
prog, m = ET.load_method(pte, threads=1)
xt = [torch.from_numpy(x)]
fn = r.prepare({spec.name: x})
calls = [lambda: m.execute(xt)[0].numpy(), lambda: fn()[0]]
for c in calls:
    for _ in range(10): c()
gc.disable()
n, cpu = [0, 0], [0.0, 0.0]
perf("enable")
t = time.time()
while time.time() - t < secs:
    for i, c in enumerate(calls):
        c0 = time.thread_time()
        for _ in range(5): c()
        cpu[i] += time.thread_time() - c0; n[i] += 5
perf("disable")
print("calls", n[0], n[1], cpu[0], cpu[1], flush=True)
"""

ET_XNN = "libexecutorch_backend_xnnpack.so"
# Per-call work outside XNNPACK's compute (first match from the sampled function outwards).
_PER_CALL = (("xnn_reshape_runtime", "xnn_reshape_runtime (every call)"),
             ("xnn_setup_runtime", "xnn_setup_runtime_v2 (every call)"),
             ("copy_tensor_data", "input copy"), ("SetTensor", "input copy"), ("set_tensor", "input copy"),
             ("clone", "output copy"), ("GetTensor", "output copy"), ("get_tensor", "output copy"),
             ("xnn_invoke_runtime", "XNNPACK runtime (operator loop)"),
             ("xnn_run_operator", "XNNPACK runtime (operator loop)"))


def _fde_starts(lib: Path) -> list[tuple[int, int]]:
    """(start, end) of every function in `lib` from its .eh_frame (readelf), sorted."""
    out = subprocess.run(["readelf", "--debug-dump=frames", str(lib)], capture_output=True, text=True).stdout
    return sorted((int(a, 16), int(b, 16)) for a, b in re.findall(r"FDE cie=\w+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", out))


def _pair_rows(script: str, fdes: list[tuple[int, int]]) -> dict[str, dict[tuple[str, ...], int]]:
    """Samples per runtime ('pte' / 'tflite') and row key, from `perf script -F ip,sym,dso` output."""
    import bisect

    starts = [a for a, _ in fdes]

    def name(frame: str) -> str:
        parts = frame.split(None, 2)
        if len(parts) < 2:
            return "?"
        sym, dso = parts[1], parts[2] if len(parts) > 2 else ""
        if sym == "[unknown]" and ET_XNN in dso:
            off = int(parts[0], 16)
            i = bisect.bisect_right(starts, off) - 1
            return f"et@{starts[i]:x}" if i >= 0 and off < fdes[i][1] else f"et?{off:x}"
        return sym

    rows: dict[str, dict[tuple[str, ...], int]] = {"pte": {}, "tflite": {}}
    for block in script.split("\n\n"):
        frames = [f.strip() for f in block.splitlines() if f.strip()]
        if not frames:
            continue
        rt = ("pte" if any("libexecutorch" in f for f in frames)
              else "tflite" if any("litert" in f or "tflite::" in f for f in frames) else None)
        if rt is None:
            continue
        idx = next((i for i, f in enumerate(frames) if "pthreadpool_parallelize" in f), None)
        if idx is not None:
            entry = re.search(r"pthreadpool_parallelize_(\w+)", frames[idx]).group(1).replace("_dynamic", "")
            key = (entry, name(frames[idx - 1]) if idx >= 1 else "-", name(frames[0]) if idx >= 2 else "-")
        else:
            cat = next((c for f in frames for k, c in _PER_CALL if k in f), "runtime / Python glue")
            key = ("per call", cat, "")
        rows[rt][key] = rows[rt].get(key, 0) + 1
    return rows


def pair(pte: Path, tflite: Path, seconds: float, freq: int = 1000) -> str:
    """Markdown: ms per call of each runtime by XNNPACK compute and per-call work, interleaved in one process."""
    lib = next(Path(p) for p in map(str, __import__("executorch").__path__)) / "lib" / ET_XNN
    with tempfile.TemporaryDirectory() as tmp:
        data, ctl, ack = Path(tmp) / "perf.data", Path(tmp) / "ctl", Path(tmp) / "ack"
        os.mkfifo(ctl)
        os.mkfifo(ack)
        run = subprocess.run(["perf", "record", "-q", "-F", str(freq), "-D", "-1", f"--control=fifo:{ctl},{ack}",
                              "--call-graph", "dwarf,8192", "-o", str(data), sys.executable, "-c", _PAIR_LOOP,
                              str(pte), str(tflite), str(seconds), str(ctl), str(ack)],
                             capture_output=True, text=True)
        m = re.search(r"calls (\d+) (\d+) ([\d.]+) ([\d.]+)", run.stdout)
        if run.returncode or not m:
            raise SystemExit(f"perf run failed: {(run.stderr or run.stdout).strip()[-800:]}")
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym,dso"], capture_output=True,
                                text=True).stdout
    calls = {"pte": int(m.group(1)), "tflite": int(m.group(2))}
    cpu = {"pte": float(m.group(3)) / calls["pte"] * 1e3, "tflite": float(m.group(4)) / calls["tflite"] * 1e3}
    rows = _pair_rows(script, _fde_starts(lib))
    ms = {rt: {k: v / freq / calls[rt] * 1e3 for k, v in r.items()} for rt, r in rows.items()}
    lines = [f"{pte.name} vs {tflite.name}: {calls['pte']} calls each, alternating in one process, 1 thread; "
             f"thread CPU time per call {cpu['pte']:.2f} ms (.pte) vs {cpu['tflite']:.2f} ms (.tflite), ratio "
             f"{cpu['pte'] / cpu['tflite']:.3f}; perf at {freq} Hz, ms per call.", "",
             "| where (pthreadpool entry) | .pte ms | .tflite ms | difference |", "|---|---|---|---|"]
    groups = sorted({k[0] if k[0] != "per call" else k[1] for r in ms.values() for k in r})
    def group_sum(rt: str, g: str) -> float:
        return sum(v for k, v in ms[rt].items() if (k[0] if k[0] != "per call" else k[1]) == g)
    for g in sorted(groups, key=lambda g: -max(group_sum("pte", g), group_sum("tflite", g))):
        a, b = group_sum("pte", g), group_sum("tflite", g)
        if max(a, b) >= 0.005:
            lines.append(f"| {g} | {a:.3f} | {b:.3f} | {a - b:+.3f} |")
    ta, tb = sum(ms["pte"].values()), sum(ms["tflite"].values())
    lines += [f"| **all samples** | {ta:.3f} | {tb:.3f} | {ta - tb:+.3f} |", ""]
    for rt in ("pte", "tflite"):
        lines += [f"Top rows, {rt} (pthreadpool entry | compute function | microkernel):", "",
                  "| row | ms per call |", "|---|---|"]
        for k, v in sorted(ms[rt].items(), key=lambda kv: -kv[1])[:25]:
            lines.append(f"| {' | '.join(x for x in k if x)} | {v:.3f} |".replace(" | |", " |"))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path, help=".tflite files (default: ours of GhostNetV1 and V2)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="folder for the default exports (reused when present)")
    ap.add_argument("--write-md", action="store_true", help="replace this section of BENCHMARKS.md")
    ap.add_argument("--pair", nargs=2, type=Path, metavar=("PTE", "TFLITE"),
                    help="ExecuTorch .pte beside LiteRT .tflite, interleaved in one process")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        print("perf is not installed: no breakdown measured (apt install linux-perf)", file=sys.stderr)
        sys.exit(2)
    if args.pair:
        print(pair(*args.pair, args.seconds))
        return
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
