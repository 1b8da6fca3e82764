"""Training throughput: ViT-T vs KAT-T with our GR-KAN kernels, eager and torch.compile'd, interleaved.

Batch 128, 224², bf16 autocast, fused AdamW, synthetic data. ViT-T is the same transformer code with
timm's MLP (fc1 → GELU → fc2) instead of KAT's, so the ratio isolates the MLP. The models are built
once and run interleaved in rounds (default 5 rounds × 30 steps each); we report the median and the
range of images/s per model and the ratio of medians, because single runs of these short,
launch-bound steps swing widely.

    python benchmarks/kat_train.py [--rounds 5] [--steps 30] [--models vit,kat,vit_compile,kat_compile]
                                   [--out results.json]
    torchrun --nproc-per-node N benchmarks/kat_train.py --ddp [...]   # DDP, --batch images per GPU
    torchrun --nproc-per-node N benchmarks/kat_train.py --fsdp --models vit,kat,vit_compile,kat_compile

With --ddp (under torchrun) every rank trains its own model replica wrapped in DistributedDataParallel
(NCCL on GPUs, gloo on the CPU) on --batch images; the figures are images/s per GPU, the median over
ranks of each rank's rounds, printed and written by rank 0. --fsdp is the same with FSDP2 instead:
each transformer block, then the whole model, `fully_shard`ed over a 1-D device mesh of all ranks
(parameters, gradients and AdamW state sharded; a block's parameters are all-gathered for its forward
and backward, so GR-KAN gets whole plain tensors, and resharded after forward). With --fsdp, *_compile
compiles each block before sharding it (torchtitan's way; patch embedding and head stay eager) rather
than the whole model, and *_cudagraphs is refused. Only the CPU/gloo path of --fsdp has run so far
(`torchrun --nproc-per-node 2 benchmarks/kat_train.py --fsdp --models vit,kat` on a CPU, and the
gradient test tests/test_grkan_fsdp.py); no GPU has run it and no multi-GPU figures exist yet.

Models: vit, kat (our Triton op), kat_ref (PyTorch reference rational), *_compile variants
(torch.compile of the whole model) and *_cudagraphs variants (torch.compile with
mode="reduce-overhead": CUDA graphs, so host launch overhead drops out of the step). Without a GPU it runs a few fp32 steps at batch 2 on the CPU
(reference rational) and says that GPU numbers need a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mobiledeploy.fsio import write_json


def build(kind: str, device: str, num_classes: int = 1000, ddp: bool = False, fsdp: bool = False):
    """(model, step callable) for one entry of --models; ddp wraps the model in DistributedDataParallel,
    fsdp shards it with FSDP2 (each block, then the whole model)."""
    from mobiledeploy.models.kat import KAT

    base = kind.removesuffix("_cudagraphs").removesuffix("_compile")
    if base == "vit":
        model = KAT(192, 12, 3, mlp="gelu", num_classes=num_classes)
    elif base == "kat":
        model = KAT(192, 12, 3, num_classes=num_classes, backend="auto")
    elif base == "kat_ref":
        model = KAT(192, 12, 3, num_classes=num_classes, backend="reference")
    else:
        raise SystemExit(f"unknown model {kind!r}")
    model = model.to(device).train()
    if fsdp:  # before the optimizer is built: it must get the sharded parameters (DTensors)
        _fully_shard(model, kind, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=device == "cuda")
    fwd = model
    if ddp:
        fwd = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()]
                                                        if device == "cuda" else None)
    if fsdp:  # _fully_shard compiled the blocks (*_compile) or refused (*_cudagraphs)
        pass
    elif kind.endswith("_cudagraphs"):  # compile + CUDA graphs: what is left when host launch overhead is gone
        fwd = torch.compile(fwd, mode="reduce-overhead")
    elif kind.endswith("_compile"):
        fwd = torch.compile(fwd)
    amp = device == "cuda"

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, step


def cpu_models(models: str) -> str:
    """The --models entries that run on the CPU: compiled and CUDA-graph variants need a GPU."""
    return ",".join(m for m in models.split(",") if not m.endswith(("_compile", "_cudagraphs")))


def setup(batch: int) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(device, images, labels): the seeded synthetic batch, with TF32 matmuls on a GPU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, device=device, generator=g)
    y = torch.randint(0, 1000, (batch,), device=device, generator=g)
    return device, x, y


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vit,kat,vit_compile,kat_compile")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--ddp", action="store_true", help="DistributedDataParallel under torchrun: img/s per GPU")
    ap.add_argument("--fsdp", action="store_true", help="FSDP2 (fully_shard) under torchrun: img/s per GPU")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.ddp and args.fsdp:
        ap.error("--ddp and --fsdp: pick one")
    distributed = args.ddp or args.fsdp
    gpu = torch.cuda.is_available()
    rank, world = _init_distributed(gpu, "--fsdp" if args.fsdp else "--ddp") if distributed else (0, 1)
    say = print if rank == 0 else _silent  # one rank reports
    if args.out and rank == 0:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    env = {"torch": torch.__version__}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if gpu:
        env["gpu"] = torch.cuda.get_device_name(0)
    else:
        say("no CUDA device: a few fp32 steps at batch 2 on the CPU with the reference rational; "
            "the training numbers need a GPU.", flush=True)
        args.batch, args.rounds, args.steps, args.warmup = 2, 2, 2, 1
        args.models = cpu_models(args.models)
    if distributed:
        env["fsdp2_world_size" if args.fsdp else "ddp_world_size"] = world
    say("environment:", json.dumps(env), flush=True)
    kinds = args.models.split(",")
    device, x, y = setup(args.batch)

    result = {"schema": "mobiledeploy.bench.kat_train/1", "env": env, "device": device,
              "protocol": {"batch": args.batch, "per_gpu": distributed, "world_size": world,
                           "parallel": "fsdp2" if args.fsdp else "ddp" if args.ddp else None,
                           "rounds": args.rounds, "steps": args.steps, "warmup": args.warmup,
                           "amp": "bf16" if gpu else "fp32", "optimizer": "AdamW fused" if gpu else "AdamW"},
              "models": {}}
    steps = {}
    for kind in kinds:
        t = time.perf_counter()
        try:
            _, step = build(kind, device, ddp=args.ddp, fsdp=args.fsdp)
            for _ in range(args.warmup):  # compiles and tunes here
                step(x, y)
            sync(device)
            steps[kind] = step
            result["models"][kind] = {"warmup_s": time.perf_counter() - t, "img_s": []}
            say(f"{kind}: built and warmed up in {time.perf_counter() - t:.1f} s", flush=True)
        except Exception as e:  # a model that fails must not lose the others
            result["models"][kind] = {"error": f"{type(e).__name__}: {e}"[:300]}
            say(f"{kind}: FAILED {type(e).__name__}: {e}", flush=True)
    for r in range(args.rounds):
        for kind, step in steps.items():
            sync(device)
            t = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            sync(device)
            ips = args.steps * args.batch / (time.perf_counter() - t)
            if distributed:  # the median rank of this round, so that every rank's figure counts
                ips = _median_over_ranks(ips, device, world)
            result["models"][kind]["img_s"].append(ips)
            say(f"round {r + 1}: {kind:<12} {ips:8.1f} img/s", flush=True)
        _summarise(result)
        if args.out and rank == 0:
            write_json(args.out, result, indent=1)
    _summarise(result)
    say("\nmodel         median img/s   range")
    for kind, m in result["models"].items():
        if "median" in m:
            say(f"{kind:<13} {m['median']:10.1f}   {m['min']:.1f} – {m['max']:.1f}")
    for k, v in result.get("ratios", {}).items():
        say(f"{k}: {v:.3f}")
    if not gpu:
        say("(CPU smoke run; GPU numbers need a GPU)")
    if args.out and rank == 0:
        write_json(args.out, result, indent=1)
        say(f"wrote {args.out}")
    if distributed:
        torch.distributed.destroy_process_group()
    return 0


def _silent(*_, **__) -> None:
    pass


def _fully_shard(model: torch.nn.Module, kind: str, device: str) -> None:
    """FSDP2 over all ranks: each block (torch.compile'd first for *_compile, FSDP's hooks outside the
    compiled block), then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if kind.endswith("_cudagraphs"):
        raise ValueError("CUDA graphs (*_cudagraphs) are not run under --fsdp")
    mesh = init_device_mesh(device, (torch.distributed.get_world_size(),))
    for i, block in enumerate(model.blocks):
        if kind.endswith("_compile"):
            block = model.blocks[i] = torch.compile(block)
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _init_distributed(gpu: bool, flag: str) -> tuple[int, int]:
    """(rank, world size) of this torchrun process; one GPU per rank (LOCAL_RANK), NCCL, or gloo on the CPU."""
    if "RANK" not in os.environ:
        raise SystemExit(f"error: {flag} needs torchrun, e.g. "
                         f"torchrun --nproc-per-node 8 benchmarks/kat_train.py {flag}")
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group("nccl" if gpu else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _median_over_ranks(value: float, device: str, world: int) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    out = [torch.zeros_like(t) for _ in range(world)]
    torch.distributed.all_gather(out, t)
    return statistics.median(float(v) for v in out)


def _summarise(result: dict) -> None:
    ms = result["models"]
    for m in ms.values():
        if m.get("img_s"):
            m.update(median=statistics.median(m["img_s"]), min=min(m["img_s"]), max=max(m["img_s"]))
    ratios = {}
    for kat, vit in (("kat", "vit"), ("kat_compile", "vit_compile"), ("kat_ref", "vit"),
                     ("kat_ref_compile", "vit_compile"), ("kat_compile", "vit"), ("kat_cudagraphs", "vit_cudagraphs")):
        if "median" in ms.get(kat, {}) and "median" in ms.get(vit, {}):
            ratios[f"{kat}/{vit}"] = ms[kat]["median"] / ms[vit]["median"]
    result["ratios"] = ratios



if __name__ == "__main__":
    sys.exit(main())
