"""Where a training step of ViT-T and KAT-T spends its time: wall clock vs device time, top ops.

kat_train.py says how fast; this says why. For each model (built exactly as kat_train.py builds it)
it times steps by wall clock, then records the same number of steps with torch.profiler and reports
per step: device (kernel) time, kernel launches, and the ops with the most device and host time.
A step whose wall time is well above its device time is bound by the host (Python, dispatch,
launches), not by the kernels.

    python benchmarks/kat_profile.py [--models vit,kat] [--steps 10] [--batch 128] [--out prof.json]

Without a GPU it profiles 2 fp32 steps at batch 2 on the CPU (reference rational) and says that the
device columns need a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kat_train import build, cpu_models, setup, sync  # noqa: E402  (the same model and step as the throughput benchmark)

from mobiledeploy.fsio import write_json  # noqa: E402


def _device_us(evt) -> float:
    """Self device time of a profiler row in µs (the attribute was renamed in torch 2.4)."""
    return float(getattr(evt, "self_device_time_total", getattr(evt, "self_cuda_time_total", 0.0)))


def profile_model(kind: str, device: str, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int,
                  top: int) -> dict:
    """Wall ms/step, then a profiled run of the same steps: device ms/step, launches/step, top ops."""
    from torch.profiler import ProfilerActivity, profile

    _, step = build(kind, device)
    for _ in range(warmup):
        step(x, y)
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    sync(device)
    wall_ms = (time.perf_counter() - t) * 1e3 / steps

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step(x, y)
        sync(device)
    rows = prof.key_averages()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    device_ms = sum(e.time_range.elapsed_us() for e in kernels) / 1e3 / steps
    by_dev = sorted(rows, key=_device_us, reverse=True)[:top]
    by_cpu = sorted(rows, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "wall_ms_per_step": wall_ms,
        "device_ms_per_step": device_ms if device == "cuda" else None,
        "kernels_per_step": len(kernels) / steps if device == "cuda" else None,
        "top_device": [{"op": e.key, "self_device_ms_per_step": _device_us(e) / 1e3 / steps,
                        "calls_per_step": e.count / steps} for e in by_dev if _device_us(e) > 0],
        "top_host": [{"op": e.key, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                      "calls_per_step": e.count / steps} for e in by_cpu],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vit,kat")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    gpu = torch.cuda.is_available()
    if not gpu:
        print("no CUDA device: 2 fp32 steps at batch 2 on the CPU with the reference rational; "
              "the device columns need a GPU.", flush=True)
        args.batch, args.steps, args.warmup = 2, 2, 1
        args.models = cpu_models(args.models)
    env = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if gpu else None}
    device, x, y = setup(args.batch)
    result = {"schema": "mobiledeploy.bench.kat_profile/1", "env": env, "device": device,
              "protocol": {"batch": args.batch, "steps": args.steps, "warmup": args.warmup}, "models": {}}
    for kind in args.models.split(","):
        try:
            m = result["models"][kind] = profile_model(kind, device, x, y, args.steps, args.warmup, args.top)
        except Exception as e:  # one failing model must not lose the others
            result["models"][kind] = {"error": f"{type(e).__name__}: {e}"[:300]}
            print(f"{kind}: FAILED {type(e).__name__}: {e}", flush=True)
            continue
        dev = m["device_ms_per_step"]
        print(f"\n{kind}: wall {m['wall_ms_per_step']:.2f} ms/step"
              + (f", device {dev:.2f} ms/step, {m['kernels_per_step']:.0f} kernels/step" if dev is not None else ""))
        for r in m["top_device"][:args.top]:
            print(f"  dev  {r['self_device_ms_per_step']:8.3f} ms  x{r['calls_per_step']:<5.0f} {r['op'][:70]}")
        for r in m["top_host"][:args.top]:
            print(f"  host {r['self_cpu_ms_per_step']:8.3f} ms  x{r['calls_per_step']:<5.0f} {r['op'][:70]}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result, indent=1)
        print(f"wrote {args.out}")
    if not gpu:
        print("(CPU smoke run; device numbers need a GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
