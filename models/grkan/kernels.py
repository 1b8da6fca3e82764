"""Triton kernels for GR-KAN: forward, backward (dx + per-program coefficient partials), reduction.

Layout: x is viewed as (M rows, C channels), channels split into G contiguous groups of DG.
Each program owns a (BLOCK_M × BLOCK_C) tile that lies inside ONE group, so the group's four
denominator coefficients are scalars loaded once per program, and the backward's coefficient
sums need no per-element group lookup and no atomics: every program writes 10 fp32 partial sums,
and a single-program kernel folds them in a fixed order (in fp64), so results are deterministic.
All arithmetic is fp32; bf16/fp16 are only the load/store format.

Import this module only after TRITON_INTERPRET is set the way you want: triton.jit decides at
decoration time whether a kernel is compiled or interpreted.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
NPART = 16  # slots per program in the partial buffer (10 used; 16 keeps rows 64-byte aligned)


@triton.jit
def _horner_p(x, a0, a1, a2, a3, a4, a5):
    return ((((a5 * x + a4) * x + a3) * x + a2) * x + a1) * x + a0


@triton.jit
def _tile(pid_m, pid_c, M, C: tl.constexpr, DG: tl.constexpr, CPG: tl.constexpr, BLOCK_M: tl.constexpr,
          BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr):
    """Offsets and mask of one tile: rows pid_m*BLOCK_M.., columns of chunk pid_c (inside one group)."""
    g = pid_c // CPG
    cig = (pid_c % CPG) * BLOCK_C + tl.arange(0, BLOCK_C)  # column inside the group
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    if INT64:
        rows = rows.to(tl.int64)
    offs = rows[:, None] * C + (g * DG + cig)[None, :]
    mask = rows[:, None] < M
    if not EVEN_C:
        mask = mask & (cig[None, :] < DG)
    return offs, mask


@triton.jit
def _fwd_kernel(X, Y, A, B, M, C: tl.constexpr, DG: tl.constexpr, CPG: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_c = tl.program_id(1)
    g = pid_c // CPG
    a0 = tl.load(A + 0).to(tl.float32)
    a1 = tl.load(A + 1).to(tl.float32)
    a2 = tl.load(A + 2).to(tl.float32)
    a3 = tl.load(A + 3).to(tl.float32)
    a4 = tl.load(A + 4).to(tl.float32)
    a5 = tl.load(A + 5).to(tl.float32)
    b0 = tl.abs(tl.load(B + g * 4 + 0).to(tl.float32))
    b1 = tl.abs(tl.load(B + g * 4 + 1).to(tl.float32))
    b2 = tl.abs(tl.load(B + g * 4 + 2).to(tl.float32))
    b3 = tl.abs(tl.load(B + g * 4 + 3).to(tl.float32))
    offs, mask = _tile(pid_m, pid_c, M, C, DG, CPG, BLOCK_M, BLOCK_C, EVEN_C, INT64)
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    p = _horner_p(x, a0, a1, a2, a3, a4, a5)
    ax = tl.abs(x)
    q = (((b3 * ax + b2) * ax + b1) * ax + b0) * ax + 1.0
    y = p / q  # IEEE division, as PyTorch divides: the budget allows it even for bf16 I/O
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(X, DY, DX, A, B, PART, DA, DB, M, ITERS, C: tl.constexpr, DG: tl.constexpr, CPG: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr,
                ATOMIC: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_c = tl.program_id(1)
    g = pid_c // CPG
    a0 = tl.load(A + 0).to(tl.float32)
    a1 = tl.load(A + 1).to(tl.float32)
    a2 = tl.load(A + 2).to(tl.float32)
    a3 = tl.load(A + 3).to(tl.float32)
    a4 = tl.load(A + 4).to(tl.float32)
    a5 = tl.load(A + 5).to(tl.float32)
    b0 = tl.abs(tl.load(B + g * 4 + 0).to(tl.float32))
    b1 = tl.abs(tl.load(B + g * 4 + 1).to(tl.float32))
    b2 = tl.abs(tl.load(B + g * 4 + 2).to(tl.float32))
    b3 = tl.abs(tl.load(B + g * 4 + 3).to(tl.float32))
    # Per-slot accumulators: each slot sums ITERS terms sequentially, then one tree reduction
    # per program; short sequential runs keep the fp32 sums within ~1e-7 of exact.
    s0 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s1 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s2 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s3 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s4 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s5 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s6 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s7 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s8 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s9 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    for it in range(ITERS):
        offs, mask = _tile(pid_m * ITERS + it, pid_c, M, C, DG, CPG, BLOCK_M, BLOCK_C, EVEN_C, INT64)
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)  # 0 outside: adds nothing below
        ax = tl.abs(x)
        p = _horner_p(x, a0, a1, a2, a3, a4, a5)
        dp = (((5.0 * a5 * x + 4.0 * a4) * x + 3.0 * a3) * x + 2.0 * a2) * x + a1
        q = (((b3 * ax + b2) * ax + b1) * ax + b0) * ax + 1.0
        dq_abs = ((4.0 * b3 * ax + 3.0 * b2) * ax + 2.0 * b1) * ax + b0  # dQ/d|x|
        # d|x|/dx = sign(x), 0 at 0 (what autograd of abs gives).
        sgn = tl.where(x > 0, 1.0, 0.0) - tl.where(x < 0, 1.0, 0.0)
        rq = 1.0 / q
        t = dy * rq  # dL/dP
        u = -t * p * rq  # dL/dQ = -dy P / Q²
        dx = t * dp + u * dq_abs * sgn
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=mask)
        x2 = x * x
        x3 = x2 * x
        x4 = x2 * x2
        s0 += t
        s1 += t * x
        s2 += t * x2
        s3 += t * x3
        s4 += t * x4
        s5 += t * (x4 * x)
        s6 += u * ax
        s7 += u * x2
        s8 += u * tl.abs(x3)
        s9 += u * x4
    r0 = tl.sum(s0)
    r1 = tl.sum(s1)
    r2 = tl.sum(s2)
    r3 = tl.sum(s3)
    r4 = tl.sum(s4)
    r5 = tl.sum(s5)
    r6 = tl.sum(s6)
    r7 = tl.sum(s7)
    r8 = tl.sum(s8)
    r9 = tl.sum(s9)
    if ATOMIC:
        # DA fp32 [6], DB fp32 [G*4], zeroed by the caller; d|b|/db = sign(b) applied here.
        tl.atomic_add(DA + 0, r0)
        tl.atomic_add(DA + 1, r1)
        tl.atomic_add(DA + 2, r2)
        tl.atomic_add(DA + 3, r3)
        tl.atomic_add(DA + 4, r4)
        tl.atomic_add(DA + 5, r5)
        bb = B + g * 4
        tl.atomic_add(DB + g * 4 + 0, r6 * _sign(tl.load(bb + 0).to(tl.float32)))
        tl.atomic_add(DB + g * 4 + 1, r7 * _sign(tl.load(bb + 1).to(tl.float32)))
        tl.atomic_add(DB + g * 4 + 2, r8 * _sign(tl.load(bb + 2).to(tl.float32)))
        tl.atomic_add(DB + g * 4 + 3, r9 * _sign(tl.load(bb + 3).to(tl.float32)))
    else:
        # PART: fp32 [G*CPG, R, NPART]; a group's rows are contiguous for the reduction.
        base = PART + (pid_c * tl.num_programs(0) + pid_m) * 16
        tl.store(base + 0, r0)
        tl.store(base + 1, r1)
        tl.store(base + 2, r2)
        tl.store(base + 3, r3)
        tl.store(base + 4, r4)
        tl.store(base + 5, r5)
        tl.store(base + 6, r6)
        tl.store(base + 7, r7)
        tl.store(base + 8, r8)
        tl.store(base + 9, r9)


@triton.jit
def _sign(v):
    return tl.where(v > 0, 1.0, 0.0) - tl.where(v < 0, 1.0, 0.0)


@triton.jit
def _reduce_kernel(PART, B, DA, DB, N_PER_GROUP, G: tl.constexpr, BLOCK_R: tl.constexpr):
    """One program: per group, sum its partial rows (tree sums of BLOCK_R rows, chained in fp64),
    then da = Σ over groups in order, db = sign(b) · group sums. DA: fp32 [6], DB: fp32 [4G]."""
    cols = tl.arange(0, 16)
    rr = tl.arange(0, BLOCK_R)
    da = tl.zeros((16,), tl.float64)
    for g in range(G):
        s = tl.zeros((16,), tl.float64)
        base = PART + g * N_PER_GROUP * 16
        for r0 in range(0, N_PER_GROUP, BLOCK_R):
            rows = r0 + rr
            m = (rows[:, None] < N_PER_GROUP) & (cols[None, :] < 10)
            v = tl.load(base + rows[:, None] * 16 + cols[None, :], mask=m, other=0.0)
            s += tl.sum(v.to(tl.float64), axis=0)
        da += s
        jb = cols - 6
        mb = (cols >= 6) & (cols < 10)
        bv = tl.load(B + g * 4 + jb, mask=mb, other=0.0).to(tl.float64)
        sg = tl.where(bv > 0, 1.0, 0.0) - tl.where(bv < 0, 1.0, 0.0)
        tl.store(DB + g * 4 + jb, (s * sg).to(tl.float32), mask=mb)
    tl.store(DA + cols, da.to(tl.float32), mask=cols < 6)


# ---------------------------------------------------------------------------------------------
# Launch configuration


@dataclass(frozen=True)
class Config:
    """A launch configuration: rows per tile, tiles per backward program, warps."""

    block_m: int
    num_warps: int
    iters: int = 1


def block_c(dg: int) -> int:
    """Tile width inside a group: a power of two that divides the group when one ≥ 32 does."""
    p = dg & -dg
    if p >= 32:
        return min(p, 128)
    return min(triton.next_power_of_2(dg), 128)


def _candidates(kind: str, bc: int, elem: int) -> list[Config]:
    """A few tile shapes per kernel, the first being the default when tuning is off."""
    if INTERPRETED:
        # Fewer, larger programs: the interpreter pays per program, not per element.
        # iters=2 keeps the backward's accumulation loop exercised.
        return [Config(max(1, 4096 // bc), 4, 2)]
    if kind == "fwd":
        tiles = [(4096, 4), (8192, 8), (2048, 4)] if elem == 4 else [(8192, 4), (16384, 8), (4096, 4)]
        return [Config(max(1, t // bc), w) for t, w in tiles]
    # Backward: 10 accumulator tiles live in registers (8 elements per thread: 128 registers on
    # sm_90, no spills); fewer per thread buys occupancy instead.
    tiles = [(1024, 4, 8), (512, 4, 16), (2048, 8, 8)]
    return [Config(max(1, t // bc), w, it) for t, w, it in tiles]


_TUNED: dict[tuple, Config] = {}
_FORCED_ENV = {"fwd": "MOBILEDEPLOY_GRKAN_FWD_CONFIG", "bwd": "MOBILEDEPLOY_GRKAN_BWD_CONFIG"}


def _tuning_enabled(x: torch.Tensor) -> bool:
    if INTERPRETED or not x.is_cuda or os.environ.get("MOBILEDEPLOY_GRKAN_TUNE", "1") == "0":
        return False
    return not torch.cuda.is_current_stream_capturing()


def _pick(kind: str, x: torch.Tensor, C: int, dg: int, M: int, run) -> Config:
    """Time the candidates once per (kind, device, C, group size, dtype, M bucket); cache the fastest."""
    forced = os.environ.get(_FORCED_ENV[kind])
    if forced:  # "block_m,num_warps[,iters]": for sweeps in benchmarks
        return Config(*(int(v) for v in forced.split(",")))
    # The cache is looked up before anything else is built: this runs on every call.
    key = (kind, x.device, C, dg, x.dtype, M.bit_length())
    cfg = _TUNED.get(key)
    if cfg is not None:
        return cfg
    cands = _candidates(kind, block_c(dg), x.element_size())
    if not _tuning_enabled(x) or len(cands) == 1:
        return cands[0]
    from triton.testing import do_bench

    times = {c: do_bench(lambda c=c: run(c), warmup=5, rep=25) for c in cands}
    best = min(times, key=times.get)
    _TUNED[key] = best
    return best


def _geometry(x: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int, int, int, int, bool]:
    C = x.shape[-1]
    G = b.shape[0]
    return (C, x.numel() // C, G) + _group_tiles(C, G)


@functools.lru_cache(maxsize=None)
def _group_tiles(C: int, G: int) -> tuple[int, int, int, bool]:
    """(group size, tile width, tiles per group, tile width divides the group) for C channels in G groups."""
    dg = C // G
    bc = block_c(dg)
    return dg, bc, triton.cdiv(dg, bc), dg % bc == 0


def forward(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """y = P(x)/Q(x) over the last dim of x (any leading dims), in x's dtype."""
    x = x.contiguous()
    a = a.contiguous()
    b = b.contiguous()
    C, M, G, dg, bc, cpg, even = _geometry(x, b)
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return y
    int64 = x.numel() >= 2**31

    def run(cfg: Config) -> None:
        grid = (triton.cdiv(M, cfg.block_m), G * cpg)
        _fwd_kernel[grid](x, y, a, b, M, C=C, DG=dg, CPG=cpg, BLOCK_M=cfg.block_m, BLOCK_C=bc, EVEN_C=even,
                          INT64=int64, num_warps=cfg.num_warps)

    run(_pick("fwd", x, C, dg, M, run))
    return y


def backward(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
             deterministic: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, da, db): dx in x's dtype, da/db in the coefficients' dtypes, sums in fp32 (fp64 fold)."""
    x = x.contiguous()
    dy = dy.to(x.dtype).contiguous()
    a = a.contiguous()
    b = b.contiguous()
    C, M, G, dg, bc, cpg, even = _geometry(x, b)
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return dx, torch.zeros_like(a), torch.zeros_like(b)
    int64 = x.numel() >= 2**31
    # fp32 coefficient grads; for fp32 parameters these are returned as they are (no copy).
    da = torch.empty(a.shape, dtype=torch.float32, device=x.device)
    db = torch.empty(b.shape, dtype=torch.float32, device=x.device)

    def run(cfg: Config, atomic: bool = False) -> None:
        r = triton.cdiv(M, cfg.block_m * cfg.iters)
        grid = (r, G * cpg)
        part = da if atomic else torch.empty((G * cpg * r * NPART,), dtype=torch.float32, device=x.device)
        _bwd_kernel[grid](x, dy, dx, a, b, part, da, db, M, cfg.iters, C=C, DG=dg, CPG=cpg, BLOCK_M=cfg.block_m,
                          BLOCK_C=bc, EVEN_C=even, INT64=int64, ATOMIC=atomic, num_warps=cfg.num_warps)
        if not atomic:
            _reduce_kernel[(1,)](part, b, da, db, cpg * r, G=G, BLOCK_R=128, num_warps=4)

    cfg = _pick("bwd", x, C, dg, M, run)
    if deterministic:
        run(cfg)
    else:
        da.zero_()
        db.zero_()
        run(cfg, atomic=True)
    return dx, da.to(a.dtype), db.to(b.dtype)
