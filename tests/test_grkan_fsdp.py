"""KAT with the GR-KAN op under FSDP2 (`fully_shard`): 2 ranks (gloo, CPU device mesh, Triton interpreter)
give one process's gradients and AdamW step on the same global batch.

Tolerances (fp32):
- gradients (FSDP's reduce-scatter, gathered with full_tensor()): rel L2 ≤ 1e-5 per parameter, as in the DDP
  test. Two half-batch sums averaged are not one full-batch sum in fp32 (seen: ≤ 5e-7).
- the step on the shards: every parameter after FSDP's AdamW step (each rank updates its own shard with its
  own optimizer state) equals AdamW applied in one process to the same gradients, within 8 ulp (rtol 1e-6;
  bit-identical in our runs). Elementwise arithmetic does not depend on how a tensor is split; a shard
  updated with another shard's gradient or state would be off by about lr = 1e-3.
- the step against the single process's own step: each parameter's update (after − before), rel L2 ≤ 1e-4
  (seen: ≤ 2.1e-6). Adam's first step is lr·g/(|g| + eps), so the gradients' rounding differences grow on
  elements whose |g| is near eps. The key third of each qkv bias is left out: its exact gradient is zero
  (softmax is unchanged by a per-key constant), so both runs' gradients there are rounding noise
  (~1e-13), which that first step turns into different updates of up to ~lr·|g|/eps.
"""

from __future__ import annotations

from pathlib import Path

import torch

from test_grkan_ddp import _run  # skips this module too where triton or gloo is missing

WORKER = Path(__file__).with_name("_grkan_fsdp_worker.py")
KAN_COEFFS = ("weight_numerator", "weight_denominator")


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm() / want.norm()).item()


def _update_pairs(name: str, got: torch.Tensor, want: torch.Tensor, before: torch.Tensor):
    """(FSDP update, single-process update) of one parameter, the key bias left out (see the docstring)."""
    du, dw = got - before, want - before
    if name.endswith("attn.qkv.bias"):
        q, _, v = du.chunk(3)
        q_want, _, v_want = dw.chunk(3)
        return [(q, q_want), (v, v_want)]
    return [(du, dw)]


def test_two_fsdp2_ranks_give_the_single_process_gradients_and_step(tmp_path):
    from _grkan_ddp_worker import model_and_batch
    from _grkan_fsdp_worker import MODES, adamw, reference

    single = reference()
    before = {n: p.detach().clone() for n, p in model_and_batch()[0].named_parameters()}
    ranks = _run(tmp_path, 2, WORKER)
    kan = [n for n in single["grad"] if n.endswith(KAN_COEFFS)]
    assert len(kan) == 8  # 2 blocks × (act1, act2) × (numerator, denominator)

    for mode in MODES:
        r0, r1 = ranks[0][mode], ranks[1][mode]
        # Between steps every GR-KAN coefficient and its gradient is a DTensor sharded on dim 0 …
        for n in kan:
            assert r0["sharded"][n][0] and r1["sharded"][n][0], (mode, n)
            assert r0["grad_sharded"][n] and r1["grad_sharded"][n], (mode, n)
        num = next(n for n in kan if n.endswith("weight_numerator"))
        assert (r0["sharded"][num][1], r1["sharded"][num][1]) == ((1, 6), (0, 6))  # uneven: rank 1 holds none
        # … and inside forward GR-KAN gets whole plain parameters (FSDP all-gathered them).
        for r in (r0, r1):
            assert r["seen"]["module"] == [("Parameter", (1, 6), "Parameter", (8, 4))] * 4, mode
            ops = r["seen"]["op_forward"], r["seen"]["op_backward"]
            if mode == "op":  # the custom ops ran, forward and backward, on whole plain tensors
                assert ops == ([("Parameter", (1, 6), "Parameter", (8, 4))] * 4,) * 2, ops
            else:  # the eager path does not go through the custom op
                assert ops == ([], []), ops

        for name, want in single["grad"].items():
            assert torch.equal(r0["grad"][name], r1["grad"][name]), (mode, name)
            assert torch.equal(r0["param"][name], r1["param"][name]), (mode, name)
            assert want.abs().sum() > 0, name  # every parameter takes part
            err = _rel(r0["grad"][name], want)
            assert err <= 1e-5, (mode, "grad", name, err)

        # The sharded step is the one-process step on the same gradients …
        model = model_and_batch()[0]
        for n, p in model.named_parameters():
            p.grad = r0["grad"][n].clone()
        adamw(model.parameters()).step()
        for n, p in model.named_parameters():
            assert torch.allclose(r0["param"][n], p.detach(), rtol=1e-6, atol=0), (mode, "step", n)
        # … and close to the single process's own step on the whole batch.
        for name, want in single["param"].items():
            for got_u, want_u in _update_pairs(name, r0["param"][name], want, before[name]):
                err = _rel(got_u, want_u)
                assert err <= 1e-4, (mode, "update", name, err)
