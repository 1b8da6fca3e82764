"""Triton kernels for GR-KAN: forward, backward (dx + per-program coefficient partials), reduction.

Two generations: v1 (below) and v2 (see "# v2" further down); `forward`/`backward` pick one from their
`version` argument, else `VERSION`, else $MOBILEDEPLOY_GRKAN_KERNEL, else DEFAULT_VERSION.

v1:
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
def _load_a(A):
    """The six numerator coefficients, in fp32."""
    return (tl.load(A + 0).to(tl.float32), tl.load(A + 1).to(tl.float32), tl.load(A + 2).to(tl.float32),
            tl.load(A + 3).to(tl.float32), tl.load(A + 4).to(tl.float32), tl.load(A + 5).to(tl.float32))


@triton.jit
def _load_b_group(B, g):
    """|b0|..|b3| of group g, in fp32."""
    return (tl.abs(tl.load(B + g * 4 + 0).to(tl.float32)), tl.abs(tl.load(B + g * 4 + 1).to(tl.float32)),
            tl.abs(tl.load(B + g * 4 + 2).to(tl.float32)), tl.abs(tl.load(B + g * 4 + 3).to(tl.float32)))


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
    a0, a1, a2, a3, a4, a5 = _load_a(A)
    b0, b1, b2, b3 = _load_b_group(B, g)
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
    a0, a1, a2, a3, a4, a5 = _load_a(A)
    b0, b1, b2, b3 = _load_b_group(B, g)
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
_FORCED_ENV = {"fwd": "MOBILEDEPLOY_GRKAN_FWD_CONFIG", "bwd": "MOBILEDEPLOY_GRKAN_BWD_CONFIG",
               "fwd2": "MOBILEDEPLOY_GRKAN_FWD2_CONFIG", "bwd2": "MOBILEDEPLOY_GRKAN_BWD2_CONFIG"}


def _tuning_enabled(x: torch.Tensor) -> bool:
    if INTERPRETED or not x.is_cuda or os.environ.get("MOBILEDEPLOY_GRKAN_TUNE", "1") == "0":
        return False
    return not torch.cuda.is_current_stream_capturing()


def _pick(kind: str, x: torch.Tensor, C: int, dg: int, M: int, run, cands=None):
    """Time the candidates once per (kind, device, C, group size, dtype, M bucket); cache the fastest."""
    forced = os.environ.get(_FORCED_ENV[kind])
    if forced:  # v1 "block_m,num_warps[,iters]", v2 "tile,num_warps,per_sm": for sweeps and tests
        return (Config2 if kind.endswith("2") else Config)(*(int(v) for v in forced.split(",")))
    # The cache is looked up before anything else is built: this runs on every call.
    key = (kind, x.device, C, dg, x.dtype, M.bit_length())
    cfg = _TUNED.get(key)
    if cfg is not None:
        return cfg
    if cands is None:
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


def _forward_v1(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """v1 forward: one tile per program, tiles inside one group."""
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


def _backward_v1(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 deterministic: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """v1 backward: per-program scalar partials, ITERS tiles per program along rows."""
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


# ---------------------------------------------------------------------------------------------
# v2: persistent row-block loop over (BLOCK_R × BLOCK_C) tiles whose columns may span groups.
#
# A tile's columns are a power-of-two slice of the row (all of it when C allows), so rows are read
# in long contiguous runs whatever the group size (v1's tiles were clipped to one group: 96-byte
# runs at group size 24). The denominator coefficients are gathered per column once per program.
# The backward keeps 10 fp32 accumulator tiles over INNER row blocks, folds their rows in fp64 into
# per-column fp32 running sums with Neumaier compensation (so a program may loop over any number of
# row blocks: the grid is a few programs per SM), then folds the columns to per-group sums in fp64
# (a tile touches at most NGT groups): n_programs × NGT × 16
# fp64 partials, folded in fixed order in fp64 by G small programs and a one-program da fold, so
# results stay deterministic.

KERNEL_ENV = "MOBILEDEPLOY_GRKAN_KERNEL"
# Measured on an H200 (BENCHMARKS.md, run 2): v2's row-spanning tiles win the forward (80-96 % of copy
# bandwidth vs v1's 62-94 %), while v1's backward was faster (v2's fp32 chain cap cost it programs; the cap
# is gone since the compensated sums, not yet measured on a GPU: the backward default stays v1 until then).
DEFAULT_VERSION = {"forward": "v2", "backward": "v1"}
VERSIONS = ("v1", "v2")
VERSION: str | None = None  # process-wide override (benchmarks); None: $MOBILEDEPLOY_GRKAN_KERNEL, else DEFAULT


def kernel_version(version: str | None = None, direction: str = "forward") -> str:
    """The kernel generation to run: the argument, else VERSION, else $MOBILEDEPLOY_GRKAN_KERNEL, else the default."""
    v = version or VERSION or os.environ.get(KERNEL_ENV) or DEFAULT_VERSION[direction]
    if v not in VERSIONS:
        from mobiledeploy.errors import UserError

        raise UserError(f"unknown GR-KAN kernel version {v!r}", f"set ${KERNEL_ENV} to one of {', '.join(VERSIONS)}")
    return v


@triton.jit
def _cols2(ct, C: tl.constexpr, DG: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr):
    """Columns of column tile ct, their group (-1 past C) and the in-range mask."""
    cols = ct * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < C
    gcol = cols // DG
    if not EVEN_C:
        gcol = tl.where(cmask, gcol, -1)
    return cols, gcol, cmask


@triton.jit
def _tile2(rb, rr, cols, cmask, M, C: tl.constexpr, BLOCK_R: tl.constexpr, EVEN_C: tl.constexpr,
           INT64: tl.constexpr):
    """Offsets and mask of row block rb (rr = arange(BLOCK_R)) over the given columns."""
    rows = rb * BLOCK_R + rr
    if INT64:
        rows = rows.to(tl.int64)
    offs = rows[:, None] * C + cols[None, :]
    mask = rows[:, None] < M
    if not EVEN_C:
        mask = mask & cmask[None, :]
    return offs, mask


@triton.jit
def _load_b(B, gcol, k: tl.constexpr):
    # Clamped index: columns past C (gcol -1) read group 0's value and are masked later.
    return tl.abs(tl.load(B + tl.maximum(gcol, 0) * 4 + k).to(tl.float32))


@triton.jit
def _load_b_cols(B, gcol):
    """|b0|..|b3| per column (a row vector each), for tiles that cross group boundaries."""
    return (_load_b(B, gcol, 0)[None, :], _load_b(B, gcol, 1)[None, :], _load_b(B, gcol, 2)[None, :],
            _load_b(B, gcol, 3)[None, :])


@triton.jit
def _fwd2_kernel(X, Y, A, B, M, ITERS, C: tl.constexpr, DG: tl.constexpr, BLOCK_R: tl.constexpr,
                 BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr):
    pid_r = tl.program_id(0)
    nr = tl.num_programs(0)
    cols, gcol, cmask = _cols2(tl.program_id(1), C, DG, BLOCK_C, EVEN_C)
    a0, a1, a2, a3, a4, a5 = _load_a(A)
    b0, b1, b2, b3 = _load_b_cols(B, gcol)
    rr = tl.arange(0, BLOCK_R)
    offs, mask = _tile2(pid_r, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
    xn = tl.load(X + offs, mask=mask, other=0.0)
    for it in range(ITERS):
        x = xn.to(tl.float32)
        o, m = offs, mask
        # Issue the next row block's load before this one's math: loads stay in flight meanwhile.
        offs, mask = _tile2(pid_r + (it + 1) * nr, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
        xn = tl.load(X + offs, mask=mask, other=0.0)
        p = _horner_p(x, a0, a1, a2, a3, a4, a5)
        ax = tl.abs(x)
        q = (((b3 * ax + b2) * ax + b1) * ax + b0) * ax + 1.0
        tl.store(Y + o, (p / q).to(Y.dtype.element_ty), mask=m)


@triton.jit
def _gsum(r, sel):
    return tl.sum(tl.where(sel, r, 0.0))  # r fp64: the sum stays fp64


@triton.jit
def _kadd(s, c, blk, COMPENSATE: tl.constexpr):
    """Add the fp64 column sums of tile blk to the fp32 running sums s with Neumaier compensation c."""
    r = tl.sum(blk.to(tl.float64), axis=0)  # rows fold in fp64: a block's x⁵-weighted terms cancel
    v = r.to(tl.float32)
    if COMPENSATE:
        t = s + v
        c += tl.where(tl.abs(s) >= tl.abs(v), (s - t) + v, (v - t) + s) + (r - v.to(tl.float64)).to(tl.float32)
        return t, c
    return s + v, c


@triton.jit
def _bwd2_kernel(X, DY, DX, A, B, PART, DA, DB, M, OUTER, C: tl.constexpr, DG: tl.constexpr, G: tl.constexpr,
                 NGT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr,
                 INT64: tl.constexpr, ATOMIC: tl.constexpr, INNER: tl.constexpr, COMPENSATE: tl.constexpr):
    pid_r = tl.program_id(0)
    nr = tl.num_programs(0)
    ct = tl.program_id(1)
    cols, gcol, cmask = _cols2(ct, C, DG, BLOCK_C, EVEN_C)
    a0, a1, a2, a3, a4, a5 = _load_a(A)
    b0, b1, b2, b3 = _load_b_cols(B, gcol)
    # Two levels: INNER row blocks accumulate element-wise in plain fp32 (a chain of INNER adds), then
    # their column sums join per-column running sums (k*) with Neumaier compensation (e*), so the chain
    # across the whole persistent loop costs ~ε, not ~ε·√chain: the grid no longer has to grow with M.
    k0 = tl.zeros((BLOCK_C,), tl.float32)
    k1 = tl.zeros((BLOCK_C,), tl.float32)
    k2 = tl.zeros((BLOCK_C,), tl.float32)
    k3 = tl.zeros((BLOCK_C,), tl.float32)
    k4 = tl.zeros((BLOCK_C,), tl.float32)
    k5 = tl.zeros((BLOCK_C,), tl.float32)
    k6 = tl.zeros((BLOCK_C,), tl.float32)
    k7 = tl.zeros((BLOCK_C,), tl.float32)
    k8 = tl.zeros((BLOCK_C,), tl.float32)
    k9 = tl.zeros((BLOCK_C,), tl.float32)
    e0 = tl.zeros((BLOCK_C,), tl.float32)
    e1 = tl.zeros((BLOCK_C,), tl.float32)
    e2 = tl.zeros((BLOCK_C,), tl.float32)
    e3 = tl.zeros((BLOCK_C,), tl.float32)
    e4 = tl.zeros((BLOCK_C,), tl.float32)
    e5 = tl.zeros((BLOCK_C,), tl.float32)
    e6 = tl.zeros((BLOCK_C,), tl.float32)
    e7 = tl.zeros((BLOCK_C,), tl.float32)
    e8 = tl.zeros((BLOCK_C,), tl.float32)
    e9 = tl.zeros((BLOCK_C,), tl.float32)
    rr = tl.arange(0, BLOCK_R)
    offs, mask = _tile2(pid_r, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
    xn = tl.load(X + offs, mask=mask, other=0.0)
    dyn = tl.load(DY + offs, mask=mask, other=0.0)  # 0 outside: adds nothing below
    for ob in range(OUTER):
        s0 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s1 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s2 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s3 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s4 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s5 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s6 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s7 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s8 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        s9 = tl.zeros((BLOCK_R, BLOCK_C), tl.float32)
        for ib in range(INNER):
            it = ob * INNER + ib
            x = xn.to(tl.float32)
            dy = dyn.to(tl.float32)
            o, m = offs, mask
            offs, mask = _tile2(pid_r + (it + 1) * nr, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
            xn = tl.load(X + offs, mask=mask, other=0.0)
            dyn = tl.load(DY + offs, mask=mask, other=0.0)
            ax = tl.abs(x)
            p = _horner_p(x, a0, a1, a2, a3, a4, a5)
            dp = (((5.0 * a5 * x + 4.0 * a4) * x + 3.0 * a3) * x + 2.0 * a2) * x + a1
            q = (((b3 * ax + b2) * ax + b1) * ax + b0) * ax + 1.0
            dq_abs = ((4.0 * b3 * ax + 3.0 * b2) * ax + 2.0 * b1) * ax + b0  # dQ/d|x|
            sgn = tl.where(x > 0, 1.0, 0.0) - tl.where(x < 0, 1.0, 0.0)  # d|x|/dx, 0 at 0 as autograd
            rq = 1.0 / q
            t = dy * rq  # dL/dP
            u = -t * p * rq  # dL/dQ = -dy P / Q²
            tl.store(DX + o, (t * dp + u * dq_abs * sgn).to(DX.dtype.element_ty), mask=m)
            x2 = x * x
            x4 = x2 * x2
            s0 += t
            s1 += t * x
            s2 += t * x2
            s3 += t * (x2 * x)
            s4 += t * x4
            s5 += t * (x4 * x)
            s6 += u * ax
            s7 += u * x2
            s8 += u * (x2 * ax)
            s9 += u * x4
        k0, e0 = _kadd(k0, e0, s0, COMPENSATE)
        k1, e1 = _kadd(k1, e1, s1, COMPENSATE)
        k2, e2 = _kadd(k2, e2, s2, COMPENSATE)
        k3, e3 = _kadd(k3, e3, s3, COMPENSATE)
        k4, e4 = _kadd(k4, e4, s4, COMPENSATE)
        k5, e5 = _kadd(k5, e5, s5, COMPENSATE)
        k6, e6 = _kadd(k6, e6, s6, COMPENSATE)
        k7, e7 = _kadd(k7, e7, s7, COMPENSATE)
        k8, e8 = _kadd(k8, e8, s8, COMPENSATE)
        k9, e9 = _kadd(k9, e9, s9, COMPENSATE)
    # Sum and compensation meet in fp64; the per-group column folds stay fp64 (x⁵-weighted terms cancel).
    r0 = k0.to(tl.float64) + e0.to(tl.float64)
    r1 = k1.to(tl.float64) + e1.to(tl.float64)
    r2 = k2.to(tl.float64) + e2.to(tl.float64)
    r3 = k3.to(tl.float64) + e3.to(tl.float64)
    r4 = k4.to(tl.float64) + e4.to(tl.float64)
    r5 = k5.to(tl.float64) + e5.to(tl.float64)
    r6 = k6.to(tl.float64) + e6.to(tl.float64)
    r7 = k7.to(tl.float64) + e7.to(tl.float64)
    r8 = k8.to(tl.float64) + e8.to(tl.float64)
    r9 = k9.to(tl.float64) + e9.to(tl.float64)
    g_first = (ct * BLOCK_C) // DG
    for j in tl.static_range(NGT):
        g = g_first + j
        sel = gcol == g
        v0 = _gsum(r0, sel)
        v1 = _gsum(r1, sel)
        v2 = _gsum(r2, sel)
        v3 = _gsum(r3, sel)
        v4 = _gsum(r4, sel)
        v5 = _gsum(r5, sel)
        v6 = _gsum(r6, sel)
        v7 = _gsum(r7, sel)
        v8 = _gsum(r8, sel)
        v9 = _gsum(r9, sel)
        if ATOMIC:
            ok = g < G
            gb = tl.minimum(g, G - 1) * 4
            tl.atomic_add(DA + 0, v0.to(tl.float32), mask=ok)
            tl.atomic_add(DA + 1, v1.to(tl.float32), mask=ok)
            tl.atomic_add(DA + 2, v2.to(tl.float32), mask=ok)
            tl.atomic_add(DA + 3, v3.to(tl.float32), mask=ok)
            tl.atomic_add(DA + 4, v4.to(tl.float32), mask=ok)
            tl.atomic_add(DA + 5, v5.to(tl.float32), mask=ok)
            tl.atomic_add(DB + gb + 0, v6.to(tl.float32) * _sign(tl.load(B + gb + 0).to(tl.float32)), mask=ok)
            tl.atomic_add(DB + gb + 1, v7.to(tl.float32) * _sign(tl.load(B + gb + 1).to(tl.float32)), mask=ok)
            tl.atomic_add(DB + gb + 2, v8.to(tl.float32) * _sign(tl.load(B + gb + 2).to(tl.float32)), mask=ok)
            tl.atomic_add(DB + gb + 3, v9.to(tl.float32) * _sign(tl.load(B + gb + 3).to(tl.float32)), mask=ok)
        else:
            # PART: fp64 [n_row_programs, n_col_tiles, NGT, 16]; entry j belongs to group g_first + j.
            base = PART + ((pid_r * tl.num_programs(1) + ct) * NGT + j) * 16
            tl.store(base + 0, v0)
            tl.store(base + 1, v1)
            tl.store(base + 2, v2)
            tl.store(base + 3, v3)
            tl.store(base + 4, v4)
            tl.store(base + 5, v5)
            tl.store(base + 6, v6)
            tl.store(base + 7, v7)
            tl.store(base + 8, v8)
            tl.store(base + 9, v9)


@triton.jit
def _reduce2_kernel(PART, B, DB, GSUM, P, N_CT: tl.constexpr, NGT: tl.constexpr, BLOCK_C: tl.constexpr,
                    DG: tl.constexpr, BLOCK_P: tl.constexpr):
    """Program g: fixed-order fp64 fold of group g's entries of PART [P, N_CT, NGT, 16] (entry (ct, j)
    belongs to group ct·BLOCK_C // DG + j); db[g] = sign(b) · sums, GSUM[g] = the sums (for da)."""
    g = tl.program_id(0)
    k = tl.arange(0, 16)
    s = tl.zeros((16,), tl.float64)
    for ct in range(N_CT):
        j = g - (ct * BLOCK_C) // DG
        if (j >= 0) & (j < NGT):
            for p0 in range(0, P, BLOCK_P):
                p = p0 + tl.arange(0, BLOCK_P)
                m = (p[:, None] < P) & (k[None, :] < 10)
                v = tl.load(PART + ((p[:, None] * N_CT + ct) * NGT + j) * 16 + k[None, :], mask=m, other=0.0)
                s += tl.sum(v, axis=0)
    tl.store(GSUM + g * 16 + k, s)
    mb = (k >= 6) & (k < 10)
    bv = tl.load(B + g * 4 + (k - 6), mask=mb, other=0.0).to(tl.float64)
    sg = tl.where(bv > 0, 1.0, 0.0) - tl.where(bv < 0, 1.0, 0.0)
    tl.store(DB + g * 4 + (k - 6), (s * sg).to(tl.float32), mask=mb)


@triton.jit
def _fold_da_kernel(GSUM, DA, G: tl.constexpr, GP2: tl.constexpr):
    """da = Σ over groups of GSUM[g, :6], in fp64, in a fixed order."""
    gg = tl.arange(0, GP2)
    k = tl.arange(0, 16)
    v = tl.load(GSUM + gg[:, None] * 16 + k[None, :], mask=(gg[:, None] < G) & (k[None, :] < 6), other=0.0)
    tl.store(DA + k, tl.sum(v, axis=0).to(tl.float32), mask=k < 6)


@dataclass(frozen=True)
class Config2:
    """A v2 launch configuration: elements per tile, warps, resident programs per SM (0: one tile each)."""

    tile: int
    num_warps: int
    per_sm: int


@functools.lru_cache(maxsize=None)
def _col_tiles(C: int, G: int, max_bc: int = 1024) -> tuple[int, int, int, bool, int]:
    """(group size, tile width, column tiles, tile width divides C, groups a tile can touch)."""
    dg = C // G
    p = C & -C  # largest power of two dividing C
    if p >= 32:
        bc = min(p, 1024)  # no masked lanes: 64 for C=192, 256 for 768, 512 for 1536, 1024 for 3072
    elif C <= 1024:
        bc = triton.next_power_of_2(C)  # whole rows, tail lanes masked
    else:
        bc = 512
    bc = min(bc, max_bc)
    return dg, bc, triton.cdiv(C, bc), C % bc == 0, min(triton.cdiv(bc, dg) + 1, G)


@functools.lru_cache(maxsize=None)
def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 2  # interpreter: a few programs, each looping over several row blocks
    return torch.cuda.get_device_properties(device).multi_processor_count


def _candidates2(kind: str, elem: int) -> list[Config2]:
    if INTERPRETED:
        return [Config2(2048, 4, 1)]
    if kind == "fwd2":
        if elem == 4:
            return [Config2(4096, 4, 0), Config2(8192, 8, 0), Config2(4096, 4, 8)]
        return [Config2(8192, 4, 0), Config2(16384, 8, 0), Config2(8192, 4, 8)]
    # A few programs per SM, each looping over many row blocks (the compensated sums make long chains
    # exact enough). 10 accumulator tiles at 8 fp32 per thread: ~128 registers, 4 programs of 4 warps per SM.
    return [Config2(1024, 4, 4), Config2(2048, 8, 2), Config2(1024, 4, 2)]


# Backward accumulation: INNER row blocks add element-wise in plain fp32 (a chain of INNER adds; 12 was
# measured fine, 32 reached 9e-7 of the 1e-6 budget), then per-column Neumaier sums carry the rest of the
# loop, so the grid is a few programs per SM whatever M is. The interpreter uses a short inner chain so
# that the tests exercise many compensated steps.
INNER = 1 if INTERPRETED else 8
COMPENSATE = True  # False only to show in tests what the compensation buys
# Backward column tiles at most this wide: the per-column sums and compensations (20 vectors of BLOCK_C)
# cost BLOCK_C / threads registers each, so wide rows are split into several column tiles instead.
BWD_MAX_BC = 256
BWD2_PROGRAMS_ENV = "MOBILEDEPLOY_GRKAN_BWD2_PROGRAMS"  # force the backward's row-program count (tests)


def _launch2(cfg: Config2, M: int, bc: int, n_ct: int, device: torch.device) -> tuple[int, int, int]:
    """(rows per tile, row programs, row blocks per program)."""
    block_r = max(1, cfg.tile // bc)
    n_rb = triton.cdiv(M, block_r)
    progs = n_rb if cfg.per_sm == 0 else max(1, min(n_rb, triton.cdiv(cfg.per_sm * _sm_count(device), n_ct)))
    return block_r, progs, triton.cdiv(n_rb, progs)


def _needs_int64(block_r: int, progs: int, iters: int, C: int) -> bool:
    # The loop's prefetch forms (masked) offsets up to one program stride past the last row block.
    return (progs * (iters + 1) + 1) * block_r * C >= 2**31


def _forward_v2(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    C = x.shape[-1]
    M = x.numel() // C if C else 0
    dg, bc, n_ct, even, _ = _col_tiles(C, b.shape[0])
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return y

    def run(cfg: Config2) -> None:
        block_r, progs, iters = _launch2(cfg, M, bc, n_ct, x.device)
        int64 = _needs_int64(block_r, progs, iters, C)
        _fwd2_kernel[(progs, n_ct)](x, y, a, b, M, iters, C=C, DG=dg, BLOCK_R=block_r, BLOCK_C=bc, EVEN_C=even,
                                    INT64=int64, num_warps=cfg.num_warps)

    run(_pick("fwd2", x, C, dg, M, run, _candidates2("fwd2", x.element_size())))
    return y


def _backward_v2(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 deterministic: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    C = x.shape[-1]
    G = b.shape[0]
    M = x.numel() // C if C else 0
    dg, bc, n_ct, even, ngt = _col_tiles(C, G, BWD_MAX_BC)
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return dx, torch.zeros_like(a), torch.zeros_like(b)
    da = torch.empty(a.shape, dtype=torch.float32, device=x.device)
    db = torch.empty(b.shape, dtype=torch.float32, device=x.device)

    def run(cfg: Config2, atomic: bool = False) -> None:
        block_r, progs, iters = _launch2(cfg, M, bc, n_ct, x.device)
        forced = os.environ.get(BWD2_PROGRAMS_ENV)
        if forced:
            progs = max(1, min(int(forced), triton.cdiv(M, block_r)))
            iters = triton.cdiv(triton.cdiv(M, block_r), progs)
        outer = triton.cdiv(iters, INNER)
        int64 = _needs_int64(block_r, progs, outer * INNER, C)
        n_entries = progs * n_ct * ngt
        part = da if atomic else torch.empty((n_entries * NPART,), dtype=torch.float64, device=x.device)
        _bwd2_kernel[(progs, n_ct)](x, dy, dx, a, b, part, da, db, M, outer, C=C, DG=dg, G=G, NGT=ngt,
                                    BLOCK_R=block_r, BLOCK_C=bc, EVEN_C=even, INT64=int64, ATOMIC=atomic,
                                    INNER=INNER, COMPENSATE=COMPENSATE, num_warps=cfg.num_warps)
        if not atomic:
            gsum = torch.empty((G, 16), dtype=torch.float64, device=x.device)
            _reduce2_kernel[(G,)](part, b, db, gsum, progs, N_CT=n_ct, NGT=ngt, BLOCK_C=bc, DG=dg, BLOCK_P=512,
                                  num_warps=8)
            _fold_da_kernel[(1,)](gsum, da, G=G, GP2=triton.next_power_of_2(G), num_warps=1)

    cfg = _pick("bwd2", x, C, dg, M, run, _candidates2("bwd2", x.element_size()))
    if deterministic:
        run(cfg)
    else:
        da.zero_()
        db.zero_()
        run(cfg, atomic=True)
    return dx, da.to(a.dtype), db.to(b.dtype)


def forward(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, version: str | None = None) -> torch.Tensor:
    """y = P(x)/Q(x) over the last dim of x (any leading dims), in x's dtype; `version` picks v1/v2."""
    x, a, b = x.contiguous(), a.contiguous(), b.contiguous()  # every kernel indexes flat, row-major memory
    if kernel_version(version) == "v2":
        return _forward_v2(x, a, b)
    return _forward_v1(x, a, b)


def backward(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, deterministic: bool = True,
             version: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, da, db): dx in x's dtype, da/db in the coefficients' dtypes, sums in fp32 (fp64 fold)."""
    x, a, b = x.contiguous(), a.contiguous(), b.contiguous()  # every kernel indexes flat, row-major memory
    dy = dy.to(x.dtype).contiguous()
    if kernel_version(version, "backward") == "v2":
        return _backward_v2(dy, x, a, b, deterministic)
    return _backward_v1(dy, x, a, b, deterministic)
