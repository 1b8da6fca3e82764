"""GR-KAN kernel benchmark: eager reference, torch.compile of the reference, and our Triton op, side by side.

For each shape (B, L, D) with 8 groups and each input dtype: forward and forward+backward time, achieved
GB/s next to the copy bandwidth measured in the same run, and the error of y, dx, da, db against float64.
Bytes counted: forward 2·N·s (read x, write y), forward+backward 5·N·s (+ read x and dy, write dx);
at fp32 that is the 8 B and 20 B per element of the roofline in FINDINGS.md.

Rows: eager, compile, ours (the defaults: persistent forward, grouped backward), ours_grouped and
ours_persistent (one kernel generation both ways), ours_atomic (the defaults, atomic coefficient sums;
first dtype only). Times: "graph" = CUDA-graph replay with an L2 flush before every call (device time only), "stream" =
triton's do_bench (includes the host's launch overhead when it exceeds the device time).

    python benchmarks/grkan.py [--shapes kat_t_act1,...] [--dtypes fp32,bf16] [--out results.json]
    python benchmarks/grkan.py --quick   # fp32; compile, ours_grouped, ours_persistent; graph timings only

Without a GPU it times the eager reference at a small batch and says that GPU numbers need a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from mobiledeploy.fsio import write_json

SHAPES = {
    "kat_t_act1": (128, 197, 192),
    "kat_t_act2": (128, 197, 768),
    "kat_s_act2": (128, 197, 1536),
    "kat_b_act2": (128, 197, 3072),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def coefficients(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Swish-init coefficients with per-group perturbations (every b non-zero), fp32 like parameters."""
    from mobiledeploy.models.grkan import init_coefficients

    g = torch.Generator().manual_seed(0)
    a, b = init_coefficients("swish", 8)
    a = a * (1 + 0.2 * torch.randn(a.shape, generator=g))
    b = b + 0.05 * torch.randn(b.shape, generator=g)
    return a.to(device), b.to(device)


def rel_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm()).item()


def bench_graph(fn, n: int = 20, flush_mb: int = 256) -> float:
    """Median device ms per call: CUDA graph of n × (L2 flush, fn) minus a graph of n flushes."""
    flush = torch.empty(flush_mb << 20, dtype=torch.int8, device="cuda")
    fn()  # warm: compile, tune
    torch.cuda.synchronize()
    graphs = []
    for with_fn in (True, False):
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()  # side-stream warm-up before capture, as torch.cuda.graphs recommends
            with torch.cuda.graph(g, stream=s):
                for _ in range(n):
                    flush.zero_()
                    if with_fn:
                        fn()
        torch.cuda.current_stream().wait_stream(s)
        graphs.append(g)

    def replay(g) -> float:
        times = []
        for _ in range(7):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            g.replay()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        return statistics.median(times)

    return max(replay(graphs[0]) - replay(graphs[1]), 1e-6) / n


def bench_stream(fn) -> float:
    """Median ms per call from triton's do_bench (flushes L2; includes host overhead when it dominates)."""
    from triton.testing import do_bench

    return do_bench(fn, warmup=10, rep=40, return_mode="median")


def bench_cpu(fn, reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def copy_bandwidth(numel: int) -> float:
    """GB/s of a device-to-device copy (read + write) of numel fp32 elements."""
    x = torch.randn(numel, device="cuda")
    y = torch.empty_like(x)
    ms = bench_graph(lambda: y.copy_(x))
    return 2 * x.numel() * 4 / ms / 1e6


def implementations(compile_: bool) -> dict:
    from mobiledeploy.models.grkan import grkan_reference

    impls = {"eager": grkan_reference}
    if compile_:
        impls["compile"] = torch.compile(grkan_reference, dynamic=False)
    impls["ours"] = _ours(None, True)
    impls["ours_grouped"] = _ours("grouped", True)  # each generation both ways, same run, same timing method
    impls["ours_persistent"] = _ours("persistent", True)
    impls["ours_atomic"] = _ours(None, False)
    return impls


def _ours(generation: str | None, deterministic: bool):
    """Our op with the kernel generation pinned (None: the defaults), for forward and backward alike."""
    from mobiledeploy.models.grkan import grkan, kernels

    def f(x, a, b):
        if kernels.GENERATION != generation:  # a change drops the launch plans (tuned configurations stay)
            kernels.set_generation(generation)
        return grkan(x, a, b, deterministic)

    return f


def run_case(name: str, shape: tuple[int, int, int], dt: str, impls: dict, device: str, copy_gbs: float | None,
             check: bool, stream: bool = True) -> list[dict]:
    from mobiledeploy.models.grkan import grkan_reference

    dtype = DTYPES[dt]
    g = torch.Generator(device=device).manual_seed(1)
    x = (torch.randn(shape, device=device, generator=g) * 2).to(dtype)
    dy = torch.randn(shape, device=device, generator=g).to(dtype)
    a, b = coefficients(device)
    n = x.numel()
    es = x.element_size()
    want = None
    if check:
        leaves = [t.detach().double().requires_grad_() for t in (x, a, b)]
        y64 = grkan_reference(*leaves)
        want = (y64.detach(), *torch.autograd.grad(y64, leaves, dy.double()))
        del leaves, y64
    rows = []
    for impl, f in impls.items():
        row = {"shape": name, "dims": list(shape), "dtype": dt, "impl": impl, "numel": n}
        xg, ag, bg = (t.detach().requires_grad_() for t in (x, a, b))

        def fwd():
            return f(x, a, b)

        def fwd_bwd():
            return torch.autograd.grad(f(xg, ag, bg), (xg, ag, bg), dy)

        interp_only = device == "cpu" and impl.startswith("ours")
        try:
            if interp_only:
                pass
            elif impl != "ours_atomic":
                row["fwd_ms"] = bench_graph(fwd) if device == "cuda" else bench_cpu(fwd)
                if device == "cuda" and stream:
                    row["fwd_stream_ms"] = bench_stream(fwd)
            if not interp_only:
                row["fwdbwd_ms"] = bench_graph(fwd_bwd) if device == "cuda" else bench_cpu(fwd_bwd)
                if device == "cuda" and stream:
                    row["fwdbwd_stream_ms"] = bench_stream(fwd_bwd)
                row["fwdbwd_gbs"] = 5 * n * es / row["fwdbwd_ms"] / 1e6
            if "fwd_ms" in row:
                row["fwd_gbs"] = 2 * n * es / row["fwd_ms"] / 1e6
            if copy_gbs:
                if "fwd_gbs" in row:
                    row["fwd_pct_copy"] = 100 * row["fwd_gbs"] / copy_gbs
                row["fwdbwd_pct_roofline"] = 100 * row["fwdbwd_gbs"] / copy_gbs
            if want is not None:
                y = f(xg, ag, bg)
                got = (y.detach(), *torch.autograd.grad(y, (xg, ag, bg), dy))
                for key, gt, wt in zip(("y", "dx", "da", "db"), got, want):
                    row[f"err_{key}"] = rel_l2(gt, wt)
        except Exception as e:  # one failing implementation must not lose the others' numbers
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        rows.append(row)
        print_row(row)
    return rows


def print_row(r: dict) -> None:
    def f(k, fmt):
        return format(r[k], fmt) if k in r else "-"

    print(f"{r['shape']:<11} {r['dtype']:<5} {r['impl']:<12} fwd {f('fwd_ms', '8.4f')} ms "
          f"{f('fwd_gbs', '7.0f')} GB/s ({f('fwd_pct_copy', '5.1f')}% copy) | fwd+bwd {f('fwdbwd_ms', '8.4f')} ms "
          f"{f('fwdbwd_gbs', '7.0f')} GB/s ({f('fwdbwd_pct_roofline', '5.1f')}% roofline) | stream "
          f"{f('fwd_stream_ms', '.4f')}/{f('fwdbwd_stream_ms', '.4f')} ms | err y {f('err_y', '.1e')} "
          f"dx {f('err_dx', '.1e')} da {f('err_da', '.1e')} db {f('err_db', '.1e')}"
          + (f" | ERROR {r['error']}" if "error" in r else ""), flush=True)


def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
           "cpu": platform.processor() or platform.machine()}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sms=p.multi_processor_count, cuda=torch.version.cuda,
                   capability=f"{p.major}.{p.minor}")
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--eager-dtypes", default=None,
                    help="dtypes that get the (slow) eager-reference rows; default: all of --dtypes")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile of the reference")
    ap.add_argument("--no-check", action="store_true", help="skip the float64 error columns")
    ap.add_argument("--out", default=None, help="write results JSON here (rewritten after every case)")
    ap.add_argument("--quick", action="store_true",
                    help="fp32 only; rows compile, ours_grouped, ours_persistent; CUDA-graph timings only (no stream "
                         "column)")
    args = ap.parse_args(argv)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    quick_rows = ("compile", "ours_grouped", "ours_persistent", "eager")  # eager stays only on the CPU (no GPU rows there)
    if args.quick:
        args.dtypes = "fp32"
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.cache_size_limit = 64

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    env = environment()
    print("environment:", json.dumps(env), flush=True)
    result = {"schema": "mobiledeploy.bench.grkan/1", "env": env, "rows": [], "quick": args.quick}
    shapes = {k: SHAPES[k] for k in args.shapes.split(",")}
    if not gpu:
        print("no CUDA device: timing the eager PyTorch reference at batch 2 on the CPU only; "
              "the GPU numbers (compile, Triton kernels, GB/s) need a GPU.", flush=True)
        shapes = {k: (2,) + v[1:] for k, v in shapes.items()}
        impls = {"eager": implementations(False)["eager"]}
        result["note"] = "CPU only: eager reference at batch 2; GPU numbers need a GPU"
        if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
            # Triton's interpreter: the kernels' error columns only (interpreted times mean nothing),
            # at (1, 13, D) so that it takes seconds.
            shapes = {k: (1, 13, v[2]) for k, v in shapes.items()}
            impls.update({k: f for k, f in implementations(False).items() if k.startswith("ours")})
            result["note"] = ("CPU only: eager reference at (1, 13, D); ours* rows: Triton interpreter, error "
                              "columns only; GPU numbers need a GPU")
            print("TRITON_INTERPRET=1: shapes (1, 13, D); the ours* rows run interpreted, errors only.",
                  flush=True)
    else:
        biggest = max(shapes.values(), key=lambda s: s[0] * s[1] * s[2])
        result["copy_gbs"] = copy_bandwidth(biggest[0] * biggest[1] * biggest[2])
        print(f"copy bandwidth: {result['copy_gbs']:.0f} GB/s", flush=True)
        impls = implementations(not args.no_compile)
    eager_dtypes = (args.eager_dtypes or args.dtypes).split(",")
    for name, shape in shapes.items():
        for dt in args.dtypes.split(","):
            # The atomic mode only on the first dtype: grkan.py has ~110 s in gpu_run.sh.
            case_impls = {k: f for k, f in impls.items()
                          if (k != "eager" or dt in eager_dtypes or not gpu)
                          and (k != "ours_atomic" or dt == args.dtypes.split(",")[0])
                          and (not args.quick or k in quick_rows and (k != "eager" or not gpu))}
            result["rows"] += run_case(name, shape, dt, case_impls, device, result.get("copy_gbs"),
                                       not args.no_check, stream=not args.quick)
            if args.out:
                write_json(args.out, result, indent=1)
            if gpu:
                torch.cuda.empty_cache()
    if args.out:
        write_json(args.out, result, indent=1)
        print(f"wrote {args.out}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
