"""Self-check of `mobiledeploy bench`: does its median match a minimal timing loop over the same runtime?

For each artifact, in one process, blocks alternate: `bench`'s protocol (devicebench.protocol.measure,
exactly what the CLI runs on the host) and an independent minimal loop written here against the
runtime's own API (own session/interpreter, perf_counter around one call). Each side's figure is
the median of its block medians, so drift on this shared machine hits both alike. It also measures
the harness overhead per timed call (the protocol timing a call that does nothing).

    .venv/bin/python benchmarks/bench_harness.py [--model mobilenetv2_100] [--size 224] [--runs 200]
        [--blocks 5] [--artifact PATH ...] [--write BENCHMARKS.md]

Exits 1 when a runtime's bench median is not within 10 % of the minimal loop's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from mobiledeploy.devicebench.device import cpu_model, cores_used
from mobiledeploy.devicebench.protocol import Measured, Protocol, _rounds, measure
from mobiledeploy.devicebench.runners import TensorSpec
from _mdsection import write_section  # noqa: E402  (benchmarks/ is the script's folder)

TOLERANCE = 0.10
SECTION = "## devicebench harness self-check"


def export(model: str, size: int, out: Path) -> list[Path]:
    """The model (random weights) as .onnx and .tflite, fp32, batch 1."""
    import torch

    from mobiledeploy.models import create_model

    torch.manual_seed(0)
    net = create_model(model).eval()
    x = torch.randn(1, 3, size, size)
    onnx_path = out / f"{model}_{size}.onnx"
    torch.onnx.export(net, (x,), str(onnx_path), dynamo=True, verbose=False, external_data=False)
    import litert_torch

    tfl_path = out / f"{model}_{size}.tflite"
    litert_torch.convert(net, (x,)).export(str(tfl_path))
    return [onnx_path, tfl_path]


def minimal_loop(path: Path, runs: int, warmup: int, threads: int) -> list[float]:
    """Per-call ms from the runtime's own API: the loop a careful user would write by hand."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        feeds = {inp.name: np.random.default_rng(1).standard_normal([1, *inp.shape[1:]]).astype(np.float32)}

        def call():
            sess.run(None, feeds)
    else:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
        x = np.random.default_rng(1).standard_normal(d_in["shape"]).astype(np.float32)

        def call():
            it.set_tensor(d_in["index"], x)
            it.invoke()
            it.get_tensor(d_out["index"])
    for _ in range(warmup):
        call()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def harness_overhead_us(n: int = 20000) -> float:
    """Median µs the protocol adds to a timed call: it times a call that does nothing."""
    m = Measured("noop", "noop", None, lambda: None, {}, [TensorSpec("x", [1], "float32")], None, 0, 0, None)  # type: ignore[arg-type]
    _rounds([m], n, 0.0, 60.0, 0.0, record=True)
    return statistics.median(m.samples_ms) * 1e3


def check(path: Path, runs: int, blocks: int, warmup: int, threads: int) -> dict:
    """Alternate bench blocks and minimal-loop blocks; compare the medians of block medians."""
    bench_meds, loop_meds, rt = [], [], None
    for _ in range(blocks):
        run = measure([str(path)], "auto", Protocol(runs=runs, warmup=warmup, threads=threads))
        r = run["results"][0]
        rt = r["runtime"]
        bench_meds.append(r["latency_ms"]["median"])
        loop_meds.append(statistics.median(minimal_loop(path, runs, warmup, threads)))
    b, l = statistics.median(bench_meds), statistics.median(loop_meds)
    return {"artifact": path.name, "runtime": f"{rt['name']} {rt['version']}", "bench_ms": b, "loop_ms": l,
            "ratio": b / l, "ok": abs(b / l - 1) <= TOLERANCE, "bench_blocks": bench_meds, "loop_blocks": loop_meds}


def section(rows: list[dict], overhead_us: float, argv: list[str], runs: int, blocks: int, threads: int) -> str:
    """The BENCHMARKS.md section for this run."""
    vers = {p: _v(p) for p in ("onnxruntime", "ai-edge-litert", "numpy", "torch")}
    lines = [
        SECTION, "",
        "Does `mobiledeploy bench` report what a minimal hand-written timing loop over the same runtime "
        "reports? Blocks alternate in one process (bench's protocol, then the runtime's own API in a bare "
        "`perf_counter` loop), and each side's figure is the median of its block medians. Both time the same "
        "work per call: set inputs, run, fetch outputs.", "",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores (cores used: {cores_used()}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; shared and noisy",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"- protocol: {threads} thread(s), {blocks} blocks × {runs} counted runs per side, warm-up before each block",
        f"- command: `{' '.join(shlex.quote(a) for a in argv)}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
        "Absolute times swing with the other users' load on this machine (see the spread of the block "
        "medians); the check is the ratio of the two sides measured alternately.", "",
        "| artifact | runtime | bench median (ms) | minimal loop median (ms) | bench / loop | within 10 % "
        "| block medians, bench (ms) | block medians, loop (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['artifact']} | {r['runtime']} | {r['bench_ms']:.3f} | {r['loop_ms']:.3f} | "
                     f"{r['ratio']:.3f} | {'yes' if r['ok'] else 'NO'} | "
                     f"{min(r['bench_blocks']):.2f}–{max(r['bench_blocks']):.2f} | "
                     f"{min(r['loop_blocks']):.2f}–{max(r['loop_blocks']):.2f} |")
    lines += ["", f"Harness overhead per timed call (the protocol timing a call that does nothing): "
              f"**{overhead_us:.2f} µs** median.", ""]
    return "\n".join(lines)


def _v(dist: str) -> str:
    try:
        return version(dist)
    except Exception:
        return "not installed"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mobilenetv2_100")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--artifact", action="append", default=None, help="bench these instead of exporting")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--write", default=None, metavar="BENCHMARKS.md")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(x) for x in a.artifact] if a.artifact else export(a.model, a.size, Path(tmp))
        rows = [check(path, a.runs, a.blocks, a.warmup, a.threads) for path in paths]
    overhead = harness_overhead_us()
    for r in rows:
        print(f"{r['artifact']:32s} {r['runtime']:22s} bench {r['bench_ms']:.3f} ms  loop {r['loop_ms']:.3f} ms  "
              f"ratio {r['ratio']:.3f}  {'ok' if r['ok'] else 'OUTSIDE 10%'}")
        print(f"{'':32s} block medians: bench {[round(x, 3) for x in r['bench_blocks']]} "
              f"loop {[round(x, 3) for x in r['loop_blocks']]}")
    print(f"harness overhead per timed call: {overhead:.2f} µs")
    if a.write:
        cmd = ["python", "benchmarks/bench_harness.py", *sys.argv[1:]]
        write_section(Path(a.write), SECTION, section(rows, overhead, cmd, a.runs, a.blocks, a.threads))
        print(f"wrote the self-check section into {a.write}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
