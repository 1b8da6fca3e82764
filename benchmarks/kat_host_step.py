"""Host cost of a whole training step, KAT-T's structure beside ViT-T's, at a tiny width (CPU, no GPU needed).

Both models have KAT-T's/ViT-T's op structure (12 blocks, 3 heads, MLP ratio 4, class token, the same
step as kat_train.py: autocast bf16, cross-entropy, backward, fused AdamW) at embed 24 and 32×32 images
(5 tokens), so that arithmetic is negligible and what is timed is the host's work per step: Python,
dispatch, autograd, allocations. GR-KAN runs through its Triton path (TRITON_INTERPRET=1 routes it
through the same wrapper code as on a GPU) with every kernel launch stubbed, so Triton's own launcher and
all device time are excluded. The two models run interleaved in rounds on one thread; each round gives
a KAT/ViT ratio of this thread's CPU time, and the median ratio is reported (issue 17's bar: ≤ 1.10).

    python benchmarks/kat_host_step.py [--rounds 9] [--steps 20] [--no-amp] [--out step.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton or the kernels

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grkan_host_overhead import stubbed_launches  # noqa: E402

from mobiledeploy.fsio import write_json  # noqa: E402

EMBED, DEPTH, HEADS, IMG, PATCH = 24, 12, 3, 32, 16


def build(mlp: str, amp: bool):
    """(model, step) with the structure of kat_train.py's step, on the CPU."""
    from mobiledeploy.models.kat import KAT

    torch.manual_seed(0)
    model = KAT(EMBED, DEPTH, HEADS, img_size=IMG, patch_size=PATCH, mlp=mlp, backend="triton").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--no-amp", action="store_true", help="fp32 steps instead of bf16 autocast")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        raise SystemExit("error: --rounds and --steps must be at least 1")
    import triton

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # the stubbed GR-KAN outputs are uninitialised memory
    amp = not args.no_amp
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, IMG, IMG, generator=g)
    y = torch.randint(0, 1000, (args.batch,), generator=g)
    times: dict[str, list[float]] = {"vit": [], "kat": []}
    with stubbed_launches() as stubbed:
        steps = {"vit": build("gelu", amp)[1], "kat": build("kan", amp)[1]}
        for step in steps.values():  # warm: plans, autograd graphs, optimizer state
            for _ in range(5):
                step(x, y)
        for _ in range(args.rounds):
            for name, step in steps.items():
                t = time.thread_time()
                for _ in range(args.steps):
                    step(x, y)
                times[name].append((time.thread_time() - t) / args.steps * 1e3)
    ratios = [k / v for k, v in zip(times["kat"], times["vit"])]
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "schema": "mobiledeploy.bench.kat_host_step/1",
        "env": {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
                "cpu": platform.processor() or platform.machine(), "threads": 1},
        "protocol": {"embed": EMBED, "depth": DEPTH, "heads": HEADS, "img": IMG, "patch": PATCH,
                     "batch": args.batch, "amp": "bf16" if amp else "fp32", "optimizer": "AdamW fused",
                     "rounds": args.rounds, "steps": args.steps, "clock": "thread", "stubbed": stubbed},
        "ms_per_step": {k: {"median": med[k], "min": min(v), "max": max(v)} for k, v in times.items()},
        "kat_over_vit": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
    }
    print(f"host ms per training step (thread CPU time), embed {EMBED}, {IMG}×{IMG}, batch {args.batch}, "
          f"{'bf16 autocast' if amp else 'fp32'}, median of {args.rounds} interleaved rounds × {args.steps} steps:")
    for k, v in times.items():
        print(f"  {k}: {med[k]:.2f} ms  ({min(v):.2f} – {max(v):.2f})")
    r = result["kat_over_vit"]
    print(f"  KAT/ViT: {r['median']:.3f}× (per-round {r['min']:.3f} – {r['max']:.3f}; issue 17's bar: ≤ 1.10)")
    print("(GR-KAN launches stubbed: excludes Triton's own launcher and all device time)")
    if args.out:
        write_json(args.out, result, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
