"""One rank of the GR-KAN DDP test: a tiny KAT, one training step's gradients on this rank's batch slice.

    python tests/_grkan_ddp_worker.py RANK WORLD INIT_FILE OUT.pt

The model is wrapped in DistributedDataParallel (gloo, CPU) and rank r gets the r-th equal slice of
the global batch. Run with TRITON_INTERPRET=1 so that GR-KAN runs the Triton kernels (interpreted) on
the CPU. single_process_gradients() is the reference: the whole global batch in one process, no DDP.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

GLOBAL_BATCH = 4


def model_and_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The same seeded tiny KAT (GR-KAN through the Triton op) and global batch on every rank."""
    from mobiledeploy.models.kat import KAT

    torch.manual_seed(0)
    model = KAT(32, 2, 2, img_size=16, patch_size=8, num_classes=10, backend="triton")
    with torch.no_grad():  # non-trivial rationals: identity init would hide a wrong coefficient gradient
        for name, p in model.named_parameters():
            if "weight_denominator" in name:
                p.add_(0.05 * torch.randn(p.shape))
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(GLOBAL_BATCH, 3, 16, 16, generator=g), torch.randint(0, 10, (GLOBAL_BATCH,), generator=g)


def single_process_gradients() -> dict[str, torch.Tensor]:
    """Every parameter's gradient of the mean loss over the whole global batch, in this process."""
    model, x, y = model_and_batch()
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    model, x, y = model_and_batch()
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    per = GLOBAL_BATCH // world
    F.cross_entropy(ddp(x[rank * per:(rank + 1) * per]), y[rank * per:(rank + 1) * per]).backward()
    torch.save({n: p.grad.clone() for n, p in model.named_parameters()}, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
