"""One rank of the GR-KAN FSDP2 test: the tiny KAT of the DDP test under `fully_shard`, one AdamW step.

    python tests/_grkan_fsdp_worker.py RANK WORLD INIT_FILE OUT.pt

Each transformer block and then the whole model is `fully_shard`ed over a 1-D CPU device mesh (gloo), so
every parameter, the GR-KAN coefficients included, is a DTensor sharded on dim 0 between steps; rank r gets
the r-th equal slice of the global batch. Run with TRITON_INTERPRET=1 so GR-KAN runs the Triton kernels
(interpreted) on the CPU. The step runs twice, on a fresh model each time:

- "eager": GR-KAN's eager path (a planned autograd.Function around the kernels);
- "op": each GR-KAN module's forward torch.compile'd with backend="aot_eager", so the coefficients reach
  the `mobiledeploy::grkan_fwd`/`grkan_bwd` custom ops (no Inductor: nothing is code-generated).

Written for each: every gradient after FSDP's reduce-scatter and every parameter after one AdamW step, both
gathered with full_tensor(), plus what GR-KAN saw: the coefficient types in each GR-KAN forward (a forward
pre-hook), and in "op" mode the types reaching the custom ops' implementations.
reference() is the single process: the whole global batch, no FSDP, the same step.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

from _grkan_ddp_worker import GLOBAL_BATCH, model_and_batch

MODES = ("eager", "op")


def adamw(params) -> torch.optim.Optimizer:
    # foreach=False: the same per-parameter update arithmetic on a DTensor shard as on the whole tensor
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, foreach=False)


def _full(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().clone()


def reference() -> dict[str, dict[str, torch.Tensor]]:
    """{"grad": …, "param": …}: one process, the whole global batch, one AdamW step (eager GR-KAN)."""
    model, x, y = model_and_batch()
    opt = adamw(model.parameters())
    F.cross_entropy(model(x), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    return {"grad": grads, "param": {n: p.detach().clone() for n, p in model.named_parameters()}}


def _sharded_run(mode: str, rank: int, world: int, mesh) -> dict:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Shard

    from mobiledeploy.models.grkan import GRKAN
    from mobiledeploy.models.grkan import op as grkan_op

    model, x, y = model_and_batch()
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    kan = {n: p for n, p in model.named_parameters() if "weight_numerator" in n or "weight_denominator" in n}
    # (sharded on dim 0, this rank's local shape): the (1, 6) numerator leaves rank 1 an empty (0, 6) shard
    sharded = {n: (isinstance(p, DTensor) and p.placements == (Shard(0),), tuple(p.to_local().shape))
               for n, p in kan.items()}

    seen: dict[str, list] = {"module": [], "op_forward": [], "op_backward": []}

    def pre_hook(m, _):
        seen["module"].append((type(m.weight_numerator).__name__, tuple(m.weight_numerator.shape),
                               type(m.weight_denominator).__name__, tuple(m.weight_denominator.shape)))

    grkans = [m for m in model.modules() if isinstance(m, GRKAN)]
    for m in grkans:
        m.register_forward_pre_hook(pre_hook)
        if mode == "op":  # the instance's forward compiled: hooks (FSDP's, ours) stay eager around it
            m.forward = torch.compile(m.forward, backend="aot_eager", fullgraph=True)

    fwd_impl, bwd_impl = grkan_op._forward_impl, grkan_op._backward_impl

    def spy_fwd(x_, a, b, *rest):
        seen["op_forward"].append((type(a).__name__, tuple(a.shape), type(b).__name__, tuple(b.shape)))
        return fwd_impl(x_, a, b, *rest)

    def spy_bwd(g, x_, a, b, *rest):
        seen["op_backward"].append((type(a).__name__, tuple(a.shape), type(b).__name__, tuple(b.shape)))
        return bwd_impl(g, x_, a, b, *rest)

    grkan_op._forward_impl, grkan_op._backward_impl = spy_fwd, spy_bwd
    try:
        per = GLOBAL_BATCH // world
        opt = adamw(model.parameters())
        F.cross_entropy(model(x[rank * per:(rank + 1) * per]), y[rank * per:(rank + 1) * per]).backward()
        grads = {n: _full(p.grad) for n, p in model.named_parameters()}
        grad_sharded = {n: isinstance(p.grad, DTensor) for n, p in kan.items()}
        opt.step()
        params = {n: _full(p) for n, p in model.named_parameters()}
    finally:
        grkan_op._forward_impl, grkan_op._backward_impl = fwd_impl, bwd_impl
    return {"grad": grads, "param": params, "sharded": sharded, "grad_sharded": grad_sharded, "seen": seen}


def main(rank: int, world: int, init_file: str, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    torch.save({mode: _sharded_run(mode, rank, world, mesh) for mode in MODES}, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
