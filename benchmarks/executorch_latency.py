"""ExecuTorch `.pte` (ours vs naive) beside our `.tflite` and `.onnx`, 1 thread, interleaved in one process.

    .venv/bin/python benchmarks/executorch_latency.py [--out out/executorch_latency] [--rounds 10] [--write-md]

Naive = `to_edge_transform_and_lower(torch.export.export(model), partitioner=[XnnpackPartitioner()])` of the
unmodified model. Ours = the generic rewrites plus the executorch target's (`exporters/executorch.py`).
Our .tflite / .onnx come from the export pipeline. Same randomised-BN weights for all. Each round runs
every artifact in a new shuffled order; medians pooled over rounds, and each bar's ratio also per round.
The per-op split of ours .pte comes from ExecuTorch's ETDump in a separate pass (profiling never touches
the timed runs). Artifacts are reused from --out when present (lowering takes minutes per model).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gc
import importlib.metadata as md
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # conftest.randomize_bn: the same randomised BN as the tests
from _mdsection import write_section  # noqa: E402  (benchmarks/ is the script's folder)

MODELS = ("ghostnetv2_100", "ghostnet_100", "mobilenetv2_100")
KINDS = ("pte_ours", "pte_naive", "tflite", "onnx")
SECTION = "## ExecuTorch latency"
SIZE = 224


def _model(name: str, folder: Path) -> tuple[torch.nn.Module, Path]:
    from conftest import randomize_bn

    from mobiledeploy.models import create_model

    torch.manual_seed(0)
    model = randomize_bn(create_model(name), seed=1).eval()
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return model, path


def _pte(model: torch.nn.Module, name: str, folder: Path, ours: bool) -> tuple[Path, dict]:
    """Lower (or reuse) one .pte; its delegation facts are kept beside it."""
    from mobiledeploy.exporters import executorch as ET

    path = folder / f"{name}_{'ours' if ours else 'naive'}.pte"
    meta = path.with_suffix(".pte.delegation.json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    x = torch.randn(1, 3, SIZE, SIZE)
    ep = torch.export.export(model, (x,))
    t0 = time.time()
    if ours:
        from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites

        ep, _ = apply_rewrites(ep, (*GENERIC, *ET.REWRITES), RewriteContext((x,), "executorch"))
        info = ET.convert(ep, (x,), "fp32", path)["extra"]
    else:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        path.write_bytes(edge.to_executorch().buffer)
        info = ET.delegation(edge.exported_program().graph_module)
    info["lower_s"] = round(time.time() - t0, 1)
    meta.write_text(json.dumps(info))
    return path, info


def _pipeline(name: str, weights: Path, folder: Path, target: str) -> Path:
    from mobiledeploy.pipeline import ExportOptions, export

    path = folder / f"{name}.{target}"
    if not path.exists():
        export(ExportOptions(name, target, weights=str(weights), out_dir=folder, verify=False), cache={})
    return path


class _Timed:
    """One artifact on its runtime, 1 thread, bound to a fixed input; `call()` returns the first output."""

    def __init__(self, kind: str, path: Path, x: np.ndarray) -> None:
        if kind.startswith("pte"):
            from mobiledeploy.exporters import executorch as ET

            # The method points into its program: keep both alive for as long as it runs.
            program, method = ET.load_method(path, threads=1)
            xt = [torch.from_numpy(x)]
            self.call = lambda keep=program: method.execute(xt)[0].numpy()
        else:  # our devicebench runners: 1 thread, the same loaders `bench` uses
            from mobiledeploy.devicebench.runners import get_runner

            runner = get_runner("onnxruntime" if kind == "onnx" else "litert")(str(path), 1)
            fn = runner.prepare({runner.input_specs()[0].name: x})
            self.runner = runner
            self.call = lambda: fn()[0]
        self.times: list[float] = []
        self.cpu: list[float] = []

    def run(self, n: int) -> None:
        # Wall time and this thread's CPU time per call: with 1 thread every runtime computes in the calling
        # thread, so CPU time is the latency minus the time the OS gave other processes (a shared host).
        call, wall, cpu = self.call, time.perf_counter, time.thread_time
        for _ in range(n):
            t, c = wall(), cpu()
            call()
            c1, t1 = cpu(), wall()
            self.times.append((t1 - t) * 1e3)
            self.cpu.append((c1 - c) * 1e3)


def _parity(model: torch.nn.Module, kind: str, path: Path) -> float:
    """Worst rel L2 vs PyTorch fp32 over 3 random inputs (a fresh runtime object per input set)."""
    worst = 0.0
    for seed in range(3):
        x = np.random.default_rng(100 + seed).standard_normal((1, 3, SIZE, SIZE), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        out = _Timed(kind, path, x).call()
        worst = max(worst, float(np.linalg.norm(out - ref) / np.linalg.norm(ref)))
    return worst


def _pieces(kind: str, path: Path, pte_info: dict | None) -> str:
    if kind.startswith("pte"):
        return f"{pte_info['partitions']} ({pte_info['delegated_nodes']}/{pte_info['total_nodes']} nodes)"
    if kind == "tflite":
        from mobiledeploy.devicebench.runners import get_runner

        r = get_runner("litert")(str(path), 1).delegation()
        return f"{r['partitions']} ({r['delegated_nodes']}/{r['total_nodes']} nodes)"
    return "n/a (CPU EP)"


def _op_split(path: Path, runs: int = 20) -> dict[str, float]:
    """ms per run by XNNPACK operator type (and portable kernel) from ETDump, plus what the delegate call adds.

    Medians over runs; the delegate call's time outside its operators is taken run by run (the call less
    the sum of its operators in that same run), so one run's descheduling does not land in it."""
    from executorch.devtools import Inspector

    from mobiledeploy.exporters import executorch as ET

    program, method = ET.load_method(path, threads=1, etdump=True)
    x = [torch.randn(1, 3, SIZE, SIZE)]
    for _ in range(runs + 1):
        method.execute(x)
    with tempfile.TemporaryDirectory() as tmp:
        program.write_etdump_result_to_file(os.path.join(tmp, "e.etdp"), os.path.join(tmp, "d.bin"))
        ins = Inspector(etdump_path=os.path.join(tmp, "e.etdp"))
    per_run: dict[str, np.ndarray] = collections.defaultdict(lambda: np.zeros(runs))
    for block in ins.event_blocks:
        for ev in block.events:
            raw = list(ev.perf_data.raw) if ev.perf_data is not None else []
            if len(raw) < runs + 1:
                continue
            per_run[re.sub(r"\s*#\d+$", "", ev.name)] += np.asarray(raw[1:runs + 1], dtype=float)
    wrappers = ("Method::execute", "DELEGATE_CALL", "OPERATOR_CALL")
    inside = sum((v for k, v in per_run.items() if k not in wrappers and "(" in k and not k.startswith("native_call")),
                 np.zeros(runs))
    ops = {k: float(np.median(v)) for k, v in per_run.items() if k not in wrappers}
    ops["(delegate call outside its operators)"] = float(np.median(per_run["DELEGATE_CALL"] - inside))
    ops["(method total)"] = float(np.median(per_run["Method::execute"]))
    return ops


def _versions() -> str:
    out = []
    for p in ("torch", "executorch", "ai-edge-litert", "litert-torch", "onnxruntime"):
        try:
            out.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)


def _pin_prefix() -> str:
    """`taskset -c N ` when this process runs pinned to fewer CPUs than the machine has."""
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (os.cpu_count() or 0):
        return f"taskset -c {','.join(map(str, sorted(os.sched_getaffinity(0))))} "
    return ""


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    pinned = ""
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (os.cpu_count() or 0):
        pinned = f", process pinned to CPU {','.join(map(str, sorted(os.sched_getaffinity(0))))}"
    return (f"{cpu}, {os.cpu_count()} cores visible{pinned}, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}; load average {load:.1f} at the start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/executorch_latency", help="artifact folder (reused when present)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--iters", type=int, default=10, help="runs per artifact per round")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--write-md", action="store_true", help="replace the ExecuTorch latency section of BENCHMARKS.md")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = tuple(m for m in args.models.split(",") if m)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    arts: dict[tuple[str, str], Path] = {}
    info: dict[tuple[str, str], dict] = {}
    rel: dict[tuple[str, str], float] = {}
    for name in models:
        print(f"artifacts of {name}", file=sys.stderr)
        model, weights = _model(name, folder)
        arts[(name, "pte_ours")], info[(name, "pte_ours")] = _pte(model, name, folder, ours=True)
        arts[(name, "pte_naive")], info[(name, "pte_naive")] = _pte(model, name, folder, ours=False)
        arts[(name, "tflite")] = _pipeline(name, weights, folder, "tflite")
        arts[(name, "onnx")] = _pipeline(name, weights, folder, "onnx")
        for k in KINDS:
            rel[(name, k)] = _parity(model, k, arts[(name, k)])
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE), dtype=np.float32)
    timed = {k: _Timed(k[1], p, x) for k, p in arts.items()}
    for t in timed.values():
        t.run(args.warmup)
        t.times.clear()
        t.cpu.clear()
    rng = np.random.default_rng(0)
    order = list(timed)
    gc.disable()  # no collector pauses inside a timed call (nothing here makes cycles)
    for r in range(args.rounds):
        rng.shuffle(order)
        for k in order:
            timed[k].run(args.iters)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    gc.enable()
    med = {k: statistics.median(t.times) for k, t in timed.items()}
    # The fastest runs are the ones the machine's other load touched least: on a shared host their
    # ratios say more about the artifacts than the medians do (both are reported).
    low = {k: min(t.times) for k, t in timed.items()}
    cpu = {k: statistics.median(t.cpu) for k, t in timed.items()}
    per_round = {k: [statistics.median(t.cpu[i * args.iters:(i + 1) * args.iters]) for i in range(args.rounds)]
                 for k, t in timed.items()}
    splits = {name: _op_split(arts[(name, "pte_ours")]) for name in models}
    rows = [{"model": n, "kind": k, "ms": med[(n, k)], "min_ms": low[(n, k)], "cpu_ms": cpu[(n, k)],
             "rel_l2": rel[(n, k)], "pieces": _pieces(k, arts[(n, k)], info.get((n, k)))}
            for n in models for k in KINDS]
    bars = _bars(models, med, low, cpu, per_round)
    text = _markdown(rows, bars, splits, args, machine)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "bars": bars, "splits": splits}, indent=2))
    if args.write_md:
        write_section(ROOT / "BENCHMARKS.md", SECTION, text)


def _bars(models: tuple[str, ...], med: dict, low: dict, cpu: dict, per_round: dict) -> list[dict]:
    """The issue's bars: ratios of the median wall times, of the fastest runs and of the median CPU times, and
    the 10-90 % range of the CPU-time ratio per round. Met only when all three ratios meet the bar."""

    def bar(label: str, a: tuple, b: tuple, limit: float | None) -> dict:
        rounds = [x / y for x, y in zip(per_round[a], per_round[b])]
        ratio = med[a] / med[b]
        fastest = low[a] / low[b]
        cpu_ratio = cpu[a] / cpu[b]
        return {"bar": label, "ratio": ratio, "min_ratio": fastest, "cpu_ratio": cpu_ratio, "limit": limit,
                "met": None if limit is None else max(ratio, fastest, cpu_ratio) <= limit,
                "p10": float(np.percentile(rounds, 10)), "p90": float(np.percentile(rounds, 90))}

    out = []
    if "ghostnetv2_100" in models:
        out.append(bar("GhostNetV2 .pte ours / naive ≤ 0.6", ("ghostnetv2_100", "pte_ours"),
                       ("ghostnetv2_100", "pte_naive"), 0.6))
    for n in models:
        out.append(bar(f"{n} .pte ours / our .tflite ≤ 1.05", (n, "pte_ours"), (n, "tflite"), 1.05))
    if {"ghostnetv2_100", "ghostnet_100"} <= set(models):
        out.append(bar("GhostNetV2 / GhostNetV1, .pte ours ≤ 1.25", ("ghostnetv2_100", "pte_ours"),
                       ("ghostnet_100", "pte_ours"), 1.25))
        out.append(bar("GhostNetV2 / GhostNetV1, .tflite (reference)", ("ghostnetv2_100", "tflite"),
                       ("ghostnet_100", "tflite"), None))
    return out


def _markdown(rows: list[dict], bars: list[dict], splits: dict, args: argparse.Namespace, machine: str) -> str:
    label = {"pte_ours": "ExecuTorch .pte, ours", "pte_naive": "ExecuTorch .pte, naive",
             "tflite": "LiteRT .tflite, ours", "onnx": "onnxruntime .onnx, ours"}
    lines = [SECTION, "",
             f"Run {dt.date.today().isoformat()} on {machine}; {_versions()}.",
             f"Command: `{_pin_prefix()}.venv/bin/python benchmarks/executorch_latency.py --rounds {args.rounds} "
             f"--iters {args.iters}"
             f"{' --write-md' if args.write_md else ''}`. 1 thread, batch 1, {SIZE}×{SIZE}, randomised-BN weights "
             f"shared by every artifact; {args.rounds} interleaved rounds × {args.iters} runs, shuffled order, "
             "medians. rel L2 = worst of 3 random inputs vs PyTorch fp32.", "",
             "| model | artifact | median ms | fastest ms | median CPU ms | rel L2 | pieces (delegated/total nodes) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {label[r['kind']]} | {r['ms']:.2f} | {r['min_ms']:.2f} | {r['cpu_ms']:.2f} "
                     f"| {r['rel_l2']:.1e} | {r['pieces']} |")
    lines += ["", "CPU ms = the calling thread's CPU time per run (`time.thread_time`; with 1 thread each runtime "
              "computes in that thread): the latency less the time the OS gave other processes. A bar is met when "
              "the median, fastest-run and CPU-time ratios all meet it; the range is the CPU-time ratio per round.",
              "", "| bar | median ratio | fastest-run ratio | CPU-time ratio | per-round 10-90 % (CPU) | met |",
              "|---|---|---|---|---|---|"]
    for b in bars:
        met = "—" if b["met"] is None else ("yes" if b["met"] else "**no**")
        lines.append(f"| {b['bar']} | {b['ratio']:.3f} | {b['min_ratio']:.3f} | {b['cpu_ratio']:.3f} "
                     f"| {b['p10']:.3f}–{b['p90']:.3f} | {met} |")
    lines += ["", "Ours .pte by operator (ExecuTorch ETDump, median ms per run, separate profiling pass):", "",
              "| operator | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    keys = sorted({k for s in splits.values() for k in s}, key=lambda k: -max(s.get(k, 0.0) for s in splits.values()))
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{s.get(k, 0.0):.3f}" for s in splits.values()) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
