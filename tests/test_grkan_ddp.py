"""KAT with the GR-KAN op under DistributedDataParallel: 2 ranks (gloo, CPU, Triton interpreter) give the
gradients of one process on the same global batch.

Each rank is a fresh process (importing torch dominates its time: ~2 s idle, longer on a loaded machine);
nothing here depends on speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

WORKER = Path(__file__).with_name("_grkan_ddp_worker.py")


def _run(tmp_path: Path, world: int, worker: Path = WORKER) -> list[dict]:
    """Start `world` processes of `worker` (each its own rank, all at once) and return what each one saved."""
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env.pop("MOBILEDEPLOY_GRKAN_BACKEND", None)
    init = tmp_path / f"init-{worker.stem}-{world}"
    outs = [tmp_path / f"out-{worker.stem}-{world}-{r}.pt" for r in range(world)]
    procs = [subprocess.Popen([sys.executable, str(worker), str(r), str(world), str(init), str(outs[r])], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return [torch.load(o) for o in outs]


def test_two_ranks_give_the_single_process_gradients(tmp_path):
    # The single process runs here: the Triton interpreter if this process imported the kernels under it,
    # else the op's reference formulas; both are within 1e-6 of float64, far inside the bar below.
    from _grkan_ddp_worker import single_process_gradients

    single = single_process_gradients()
    rank0, rank1 = _run(tmp_path, 2)
    kan = [n for n in single if "weight_numerator" in n or "weight_denominator" in n]
    assert len(kan) == 8  # 2 blocks × (act1, act2) × (numerator, denominator)
    for name, want in single.items():
        assert torch.equal(rank0[name], rank1[name]), name  # DDP leaves every rank the same averaged gradient
        assert want.abs().sum() > 0, name  # every parameter takes part (a zero gradient would compare equal)
        err = ((rank0[name] - want).norm() / want.norm()).item()
        assert err <= 1e-5, (name, err)
