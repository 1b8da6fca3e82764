"""Host (Python) cost of one GR-KAN call beside ViT's GELU: stubbed launches on the CPU, real ones on a GPU.

Without a GPU: TRITON_INTERPRET=1 routes GRKAN(backend="triton") through the same wrapper code as on a
GPU (autograd.Function, geometry, config cache, output allocation), and every Triton kernel object is
replaced by a no-op, so what is timed is our own host code per call, not a kernel and not Triton's own
launcher. On a GPU: the real kernels on a tiny CUDA tensor, whose device time (a few µs) is below the
host's, so the time per call is the whole host cost including Triton's launcher (synchronised once per
round). Rows: the eager path (autograd.Function, what eager KAT training calls), the custom op (what a
torch.compile'd graph calls), and nn.GELU (ViT's activation, the baseline) on the same tensor, forward
and forward+backward, interleaved in rounds; median µs/call. The per-step figure multiplies by KAT-T's
24 GR-KAN calls per training step.

    python benchmarks/grkan_host_overhead.py [--rounds 7] [--calls 2000] [--out overhead.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

import torch

from mobiledeploy.fsio import write_json

GPU = torch.cuda.is_available()
if not GPU:  # before the kernels module is imported: it reads the flag at import
    os.environ["TRITON_INTERPRET"] = "1"

CALLS_PER_KAT_T_STEP = 24  # 12 blocks × (act1, act2)


class _NoLaunch:
    """Stands in for a Triton kernel: `kernel[grid](...)` does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def stubbed_launches():
    """Replace every @triton.jit kernel (a `*_kernel` name) of the GR-KAN modules by a no-op, restore after.

    Launch plans hold the kernel objects they were built with, so they are dropped on the way in and out.
    """
    from triton.runtime.jit import KernelInterface  # JITFunction, or InterpretedFunction under the interpreter

    from mobiledeploy.models.grkan import kernels

    mods = [m for n, m in list(sys.modules.items()) if n.startswith("mobiledeploy.models.grkan.") and m is not None]
    saved = {(m, n): v for m in mods for n, v in vars(m).items()
             if isinstance(v, KernelInterface) and n.endswith("_kernel")}
    if not saved:  # timing real (interpreted) kernels would take hours and measure the wrong thing
        raise RuntimeError("no Triton kernels found to stub in models/grkan/")
    clear = getattr(kernels, "clear_plans", lambda: None)
    for m, n in saved:
        setattr(m, n, _NoLaunch())
    clear()
    try:
        yield sorted(f"{m.__name__.rsplit('.', 1)[-1]}.{n}" for m, n in saved)
    finally:
        for (m, n), v in saved.items():
            setattr(m, n, v)
        clear()


def sync() -> None:
    if GPU:
        torch.cuda.synchronize()


def callables(x: torch.Tensor) -> dict:
    """name → zero-argument callable for each row."""
    from mobiledeploy.models.grkan.layer import GRKAN
    from mobiledeploy.models.grkan.op import grkan_fwd

    act = GRKAN(8, "swish", backend="triton").to(x.device)  # coefficients beside x (CUDA on a GPU)
    gelu = torch.nn.GELU()
    a, b = act.weight_numerator, act.weight_denominator
    ones = torch.ones_like(x)

    def fwd_bwd(f):
        def run():
            x.grad = None
            f(x).backward(ones)
        return run

    def no_grad(f):
        def run():
            with torch.no_grad():
                f(x)
        return run

    op = lambda t: grkan_fwd(t, a, b, True)  # noqa: E731
    return {"grkan eager fwd": no_grad(act), "grkan op fwd": no_grad(op), "gelu fwd": no_grad(gelu),
            "grkan eager fwd+bwd": fwd_bwd(act), "grkan op fwd+bwd": fwd_bwd(op), "gelu fwd+bwd": fwd_bwd(gelu)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--clock", choices=("thread", "wall"), default="thread",
                    help="thread: this thread's CPU time (robust to other processes on a shared machine); "
                         "wall: perf_counter (what a GPU run needs: it includes waiting for the device)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if GPU:
        args.clock = "wall"
    if args.rounds < 1 or args.calls < 1:
        raise SystemExit("error: --rounds and --calls must be at least 1")
    import triton

    torch.set_num_threads(1)
    device = "cuda" if GPU else "cpu"
    # Tiny: the arithmetic is negligible, the host code is not.
    x = torch.randn(2, 3, 64, device=device, requires_grad=True)
    times: dict[str, list[float]] = {}
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    with (contextlib.nullcontext([]) if GPU else stubbed_launches()) as stubbed:
        rows = callables(x)
        for f in rows.values():  # warm caches (config pick, geometry) before timing
            for _ in range(50):
                f()
        for _ in range(args.rounds):
            for name, f in rows.items():
                sync()
                t = clock()
                for _ in range(args.calls):
                    f()
                sync()
                times.setdefault(name, []).append((clock() - t) / args.calls * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "schema": "mobiledeploy.bench.grkan_host_overhead/1",
        "env": {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
                "cpu": platform.processor() or platform.machine(), "threads": 1,
                "gpu": torch.cuda.get_device_name(0) if GPU else None},
        "protocol": {"rounds": args.rounds, "calls": args.calls, "shape": list(x.shape), "device": device,
                     "clock": args.clock,
                     "launches": "real" if GPU else "stubbed", "stubbed": stubbed},
        "us_per_call": {k: {"median": med[k], "min": min(v), "max": max(v)} for k, v in times.items()},
    }
    extra = {kind: med[f"grkan {kind} fwd+bwd"] - med["gelu fwd+bwd"] for kind in ("eager", "op")}
    result["extra_us_per_call_vs_gelu"] = extra
    # Per-round ratios: both rows of a round ran back to back, so load on a shared machine hits both.
    ratios = {kind: statistics.median(g / v for g, v in zip(times[f"grkan {kind} fwd+bwd"], times["gelu fwd+bwd"]))
              for kind in ("eager", "op")}
    result["fwd_bwd_ratio_vs_gelu"] = ratios
    result["extra_ms_per_kat_t_step"] = {k: v * CALLS_PER_KAT_T_STEP / 1e3 for k, v in extra.items()}
    how = "real launches on " + result["env"]["gpu"] if GPU else "Triton launches stubbed"
    print(f"host µs per call ({args.clock} clock), median of {args.rounds} rounds × {args.calls} calls ({how}):")
    for k, v in times.items():
        print(f"  {k:<22} {med[k]:7.1f}   ({min(v):.1f} – {max(v):.1f})")
    for k, v in extra.items():
        print(f"  {k} fwd+bwd minus gelu fwd+bwd: {v:.1f} µs/call, × {CALLS_PER_KAT_T_STEP} calls = "
              f"{result['extra_ms_per_kat_t_step'][k]:.2f} ms per KAT-T step")
    for k, v in ratios.items():
        print(f"  {k} fwd+bwd / gelu fwd+bwd: {v:.2f}× (median of per-round ratios; issue 17's bar: ≤ 1.3×)")
    if not GPU:
        print("(excludes Triton's own launcher and all device time: those need a GPU)")
    if args.out:
        write_json(args.out, result, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
