"""GR-KAN kernels, "grouped" generation: every tile lies inside one channel group.

x is viewed as (M rows, C channels), the channels split into G contiguous groups of DG. Each program
owns a (BLOCK_M × BLOCK_C) tile inside ONE group, so the group's four denominator coefficients are
scalars loaded once per program, and the backward's coefficient sums need no per-element group
lookup and no atomics: every program writes 10 fp32 partial sums, and a one-program kernel folds
them in a fixed order in fp64, so results are deterministic. The default backward (see kernels.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .kernel_math import (PARTIAL_SLOTS, add_coefficient_terms, bound_launch, gradient_terms,
                          load_group_denominator, load_numerator, rational, sign)


@dataclass(frozen=True)
class GroupedConfig:
    """A launch configuration: rows per tile, warps, row tiles per backward program."""

    block_m: int
    num_warps: int
    iters: int = 1


def group_tile_width(dg: int) -> int:
    """Tile width inside a group: a power of two that divides the group when one ≥ 32 does."""
    p = dg & -dg
    if p >= 32:
        return min(p, 128)
    return min(triton.next_power_of_2(dg), 128)


@functools.lru_cache(maxsize=None)
def group_tiles(C: int, G: int) -> tuple[int, int, int, bool]:
    """(group size, tile width, tiles per group, tile width divides the group) for C channels in G groups."""
    dg = C // G
    bc = group_tile_width(dg)
    return dg, bc, (dg + bc - 1) // bc, dg % bc == 0


def candidates(direction: str, C: int, G: int, elem: int, interpreted: bool) -> list[GroupedConfig]:
    """A few tile shapes, the first being the default when tuning is off."""
    bc = group_tiles(C, G)[1]
    if interpreted:
        # Fewer, larger programs: the interpreter pays per program, not per element.
        # iters=2 keeps the backward's accumulation loop exercised.
        return [GroupedConfig(max(1, 4096 // bc), 4, 2)]
    if direction == "forward":
        tiles = [(4096, 4), (8192, 8), (2048, 4)] if elem == 4 else [(8192, 4), (16384, 8), (4096, 4)]
        return [GroupedConfig(max(1, t // bc), w) for t, w in tiles]
    # Backward: 10 accumulator tiles live in registers (8 elements per thread: 128 registers on
    # sm_90, no spills); fewer per thread buys occupancy instead.
    tiles = [(1024, 4, 8), (512, 4, 16), (2048, 8, 8)]
    return [GroupedConfig(max(1, t // bc), w, it) for t, w, it in tiles]


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


# ---------------------------------------------------------------------------------------------
# Forward


@triton.jit
def forward_kernel(X, Y, A, B, M, C: tl.constexpr, DG: tl.constexpr, CPG: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr):
    """Y = P(X)/Q(X) for one tile; Y may have another dtype than X (computed in fp32, rounded once)."""
    pid_m = tl.program_id(0)
    pid_c = tl.program_id(1)
    a0, a1, a2, a3, a4, a5 = load_numerator(A)
    b0, b1, b2, b3 = load_group_denominator(B, pid_c // CPG)
    offs, mask = _tile(pid_m, pid_c, M, C, DG, CPG, BLOCK_M, BLOCK_C, EVEN_C, INT64)
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    y = rational(x, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3)
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)


def forward_launcher(M: int, C: int, G: int, numel: int, cfg: GroupedConfig) -> Callable[..., None]:
    """launch(x, y, a, b) for this shape and configuration, everything but the tensors bound once."""
    dg, bc, cpg, even = group_tiles(C, G)
    grid = ((M + cfg.block_m - 1) // cfg.block_m, G * cpg)
    # Fixed arguments in signature order: M, C, DG, CPG, BLOCK_M, BLOCK_C, EVEN_C, INT64.
    return bound_launch(forward_kernel, grid, cfg.num_warps, M, C, dg, cpg, cfg.block_m, bc, even, numel >= 2**31)


# ---------------------------------------------------------------------------------------------
# Backward: dx per element, 10 coefficient sums per program, then one fold


@triton.jit
def backward_kernel(X, DY, DX, A, B, PART, DA, DB, M, ITERS, C: tl.constexpr, DG: tl.constexpr, CPG: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr,
                    ATOMIC: tl.constexpr):
    """dx for ITERS tiles down the rows; their coefficient sums go to PART (or, ATOMIC, straight to DA/DB)."""
    pid_m = tl.program_id(0)
    pid_c = tl.program_id(1)
    g = pid_c // CPG
    a0, a1, a2, a3, a4, a5 = load_numerator(A)
    b0, b1, b2, b3 = load_group_denominator(B, g)
    # Per-slot accumulators: each slot sums ITERS terms sequentially, then one tree reduction
    # per program; short sequential runs keep the fp32 sums within ~1e-7 of exact.
    s0 = tl.zeros((BLOCK_M, BLOCK_C), tl.float32)
    s1, s2, s3, s4, s5, s6, s7, s8, s9 = s0, s0, s0, s0, s0, s0, s0, s0, s0
    for it in range(ITERS):
        offs, mask = _tile(pid_m * ITERS + it, pid_c, M, C, DG, CPG, BLOCK_M, BLOCK_C, EVEN_C, INT64)
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)  # 0 outside: adds nothing below
        dx, t, u, ax = gradient_terms(x, dy, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3)
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=mask)
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = add_coefficient_terms(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9,
                                                                       t, u, x, ax)
    if ATOMIC:
        _add_sums_atomically(DA, DB, B, g, tl.sum(s0), tl.sum(s1), tl.sum(s2), tl.sum(s3), tl.sum(s4),
                             tl.sum(s5), tl.sum(s6), tl.sum(s7), tl.sum(s8), tl.sum(s9))
    else:
        # PART: fp32 [G*CPG, R, PARTIAL_SLOTS]; a group's rows are contiguous for the fold.
        base = PART + (pid_c * tl.num_programs(0) + pid_m) * 16
        tl.store(base + 0, tl.sum(s0))
        tl.store(base + 1, tl.sum(s1))
        tl.store(base + 2, tl.sum(s2))
        tl.store(base + 3, tl.sum(s3))
        tl.store(base + 4, tl.sum(s4))
        tl.store(base + 5, tl.sum(s5))
        tl.store(base + 6, tl.sum(s6))
        tl.store(base + 7, tl.sum(s7))
        tl.store(base + 8, tl.sum(s8))
        tl.store(base + 9, tl.sum(s9))


@triton.jit
def _add_sums_atomically(DA, DB, B, g, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9):
    """DA fp32 [6], DB fp32 [G*4] zeroed by the caller; d|b|/db = sign(b) applied here."""
    tl.atomic_add(DA + 0, r0)
    tl.atomic_add(DA + 1, r1)
    tl.atomic_add(DA + 2, r2)
    tl.atomic_add(DA + 3, r3)
    tl.atomic_add(DA + 4, r4)
    tl.atomic_add(DA + 5, r5)
    tl.atomic_add(DB + g * 4 + 0, r6 * sign(tl.load(B + g * 4 + 0).to(tl.float32)))
    tl.atomic_add(DB + g * 4 + 1, r7 * sign(tl.load(B + g * 4 + 1).to(tl.float32)))
    tl.atomic_add(DB + g * 4 + 2, r8 * sign(tl.load(B + g * 4 + 2).to(tl.float32)))
    tl.atomic_add(DB + g * 4 + 3, r9 * sign(tl.load(B + g * 4 + 3).to(tl.float32)))


@triton.jit
def fold_partials_kernel(PART, B, DA, DB, N_PER_GROUP, G: tl.constexpr, BLOCK_R: tl.constexpr):
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
        tl.store(DB + g * 4 + jb, (s * sign(bv)).to(tl.float32), mask=mb)
    tl.store(DA + cols, da.to(tl.float32), mask=cols < 6)


def backward_launcher(M: int, C: int, G: int, numel: int, cfg: GroupedConfig, device: torch.device,
                      deterministic: bool) -> Callable[..., None]:
    """launch(x, dy, dx, a, b, da, db) for this shape: the backward kernel, then one fold of its partials.

    The partials buffer is allocated here once and reused by every call: the fold reads it right after
    the backward wrote it, on the same stream. Atomic mode needs da and db zeroed by the caller.
    """
    dg, bc, cpg, even = group_tiles(C, G)
    r = (M + cfg.block_m * cfg.iters - 1) // (cfg.block_m * cfg.iters)
    # Fixed arguments in signature order: M, ITERS, C, DG, CPG, BLOCK_M, BLOCK_C, EVEN_C, INT64, ATOMIC.
    backward = bound_launch(backward_kernel, (r, G * cpg), cfg.num_warps, M, cfg.iters, C, dg, cpg, cfg.block_m, bc,
                            even, numel >= 2**31, not deterministic)
    if not deterministic:
        return lambda x, dy, dx, a, b, da, db: backward(x, dy, dx, a, b, da, da, db)
    part = torch.empty((G * cpg * r * PARTIAL_SLOTS,), dtype=torch.float32, device=device)
    fold = bound_launch(fold_partials_kernel, (1,), 4, cpg * r, G, 128)  # N_PER_GROUP, G, BLOCK_R

    def launch(x, dy, dx, a, b, da, db) -> None:
        backward(x, dy, dx, a, b, part, da, db)
        fold(part, b, da, db)

    return launch

