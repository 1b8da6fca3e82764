"""GR-KAN kernels, "persistent" generation: row-spanning tiles, a few programs per SM looping over rows.

A tile's columns are a power-of-two slice of the row (all of it when C allows), so rows are read in
long contiguous runs whatever the group size (grouped tiles are clipped to one group: 96-byte runs at
group size 24). The denominator coefficients are gathered per column once per program. The backward
keeps 10 fp32 accumulator tiles over INNER row blocks, folds their rows in fp64 into per-column fp32
running sums with Neumaier compensation (so a program may loop over any number of row blocks), then
folds the columns to per-group sums in fp64 (a tile touches at most NGT groups); one more program
folds those partials in a fixed order in fp64, so results are deterministic. The default forward.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .kernel_math import (PARTIAL_SLOTS, add_coefficient_terms, bound_launch, gradient_terms, load_numerator,
                          rational, sign)

# Backward accumulation: INNER row blocks add element-wise in plain fp32 (a chain of INNER adds; 12 was
# measured fine, 32 reached 9e-7 of the 1e-6 budget), then per-column Neumaier sums carry the rest of the
# loop. The interpreter uses a short inner chain so that the tests exercise many compensated steps.
INNER_COMPILED = 8
INNER_INTERPRETED = 1
COMPENSATE = True  # False only to show in tests what the compensation buys
# Backward column tiles at most this wide: the per-column sums and compensations (20 vectors of BLOCK_C)
# cost BLOCK_C / threads registers each, so wide rows are split into several column tiles instead.
BACKWARD_MAX_TILE_WIDTH = 256


@dataclass(frozen=True)
class PersistentConfig:
    """A launch configuration: elements per tile, warps, resident programs per SM (0: one tile each).

    `programs` forces the number of row programs, `inner` the backward's plain-fp32 chain (tests).
    """

    tile: int
    num_warps: int
    per_sm: int
    programs: int | None = None
    inner: int | None = None


@functools.lru_cache(maxsize=None)
def column_tiles(C: int, G: int, max_bc: int = 1024) -> tuple[int, int, int, bool, int]:
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
    return dg, bc, (C + bc - 1) // bc, C % bc == 0, min((bc + dg - 1) // dg + 1, G)


@functools.lru_cache(maxsize=None)
def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device; 2 for the interpreter (a few looping programs)."""
    if device.type != "cuda":
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def candidates(direction: str, C: int, G: int, elem: int, interpreted: bool) -> list[PersistentConfig]:
    """A few configurations, the first being the default when tuning is off."""
    if interpreted:
        return [PersistentConfig(2048, 4, 1)]
    if direction == "forward":
        if elem == 4:
            return [PersistentConfig(4096, 4, 0), PersistentConfig(8192, 8, 0), PersistentConfig(4096, 4, 8)]
        return [PersistentConfig(8192, 4, 0), PersistentConfig(16384, 8, 0), PersistentConfig(8192, 4, 8)]
    # A few programs per SM, each looping over many row blocks (the compensated sums make long chains
    # exact enough). 10 accumulator tiles at 8 fp32 per thread: ~128 registers, 4 programs of 4 warps per SM.
    return [PersistentConfig(1024, 4, 4), PersistentConfig(2048, 8, 2), PersistentConfig(1024, 4, 2)]


def row_programs(cfg: PersistentConfig, M: int, bc: int, n_ct: int, device: torch.device) -> tuple[int, int, int]:
    """(rows per tile, row programs, row blocks per program)."""
    block_r = max(1, cfg.tile // bc)
    n_rb = (M + block_r - 1) // block_r
    if cfg.programs:
        progs = max(1, min(cfg.programs, n_rb))
    elif cfg.per_sm == 0:
        progs = n_rb
    else:
        progs = max(1, min(n_rb, (cfg.per_sm * sm_count(device) + n_ct - 1) // n_ct))
    return block_r, progs, (n_rb + progs - 1) // progs


def _needs_int64(block_r: int, progs: int, iters: int, C: int) -> bool:
    # The loop's prefetch forms (masked) offsets up to one program stride past the last row block.
    return (progs * (iters + 1) + 1) * block_r * C >= 2**31


@triton.jit
def _columns(ct, C: tl.constexpr, DG: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr):
    """Columns of column tile ct, their group (-1 past C) and the in-range mask."""
    cols = ct * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < C
    gcol = cols // DG
    if not EVEN_C:
        gcol = tl.where(cmask, gcol, -1)
    return cols, gcol, cmask


@triton.jit
def _row_block(rb, rr, cols, cmask, M, C: tl.constexpr, BLOCK_R: tl.constexpr, EVEN_C: tl.constexpr,
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
def _load_column_denominators(B, gcol):
    """|b0|..|b3| per column (a row vector each), for tiles that cross group boundaries."""
    return (_load_b(B, gcol, 0)[None, :], _load_b(B, gcol, 1)[None, :], _load_b(B, gcol, 2)[None, :],
            _load_b(B, gcol, 3)[None, :])


# ---------------------------------------------------------------------------------------------
# Forward


@triton.jit
def forward_kernel(X, Y, A, B, M, ITERS, C: tl.constexpr, DG: tl.constexpr, BLOCK_R: tl.constexpr,
                   BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, INT64: tl.constexpr):
    """Y = P(X)/Q(X) over ITERS row blocks strided by the row-program count; Y may have another dtype than X."""
    pid_r = tl.program_id(0)
    nr = tl.num_programs(0)
    cols, gcol, cmask = _columns(tl.program_id(1), C, DG, BLOCK_C, EVEN_C)
    a0, a1, a2, a3, a4, a5 = load_numerator(A)
    b0, b1, b2, b3 = _load_column_denominators(B, gcol)
    rr = tl.arange(0, BLOCK_R)
    offs, mask = _row_block(pid_r, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
    xn = tl.load(X + offs, mask=mask, other=0.0)
    for it in range(ITERS):
        x = xn.to(tl.float32)
        o, m = offs, mask
        # Issue the next row block's load before this one's math: loads stay in flight meanwhile.
        offs, mask = _row_block(pid_r + (it + 1) * nr, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
        xn = tl.load(X + offs, mask=mask, other=0.0)
        y = rational(x, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3)
        tl.store(Y + o, y.to(Y.dtype.element_ty), mask=m)


def forward_launcher(M: int, C: int, G: int, cfg: PersistentConfig, device: torch.device) -> Callable[..., None]:
    """launch(x, y, a, b) for this shape and configuration, everything but the tensors bound once."""
    dg, bc, n_ct, even, _ = column_tiles(C, G)
    block_r, progs, iters = row_programs(cfg, M, bc, n_ct, device)
    # Fixed arguments in signature order: M, ITERS, C, DG, BLOCK_R, BLOCK_C, EVEN_C, INT64.
    return bound_launch(forward_kernel, (progs, n_ct), cfg.num_warps, M, iters, C, dg, block_r, bc, even,
                        _needs_int64(block_r, progs, iters, C))


# ---------------------------------------------------------------------------------------------
# Backward: dx per element, compensated per-column coefficient sums, per-group partials, one fold


@triton.jit
def _zeros10(shape: tl.constexpr):
    z = tl.zeros(shape, tl.float32)
    return z, z, z, z, z, z, z, z, z, z


@triton.jit
def _compensated_add(s, c, blk, COMPENSATE: tl.constexpr):
    """Add the fp64 column sums of tile blk to the fp32 running sums s with Neumaier compensation c."""
    r = tl.sum(blk.to(tl.float64), axis=0)  # rows fold in fp64: a block's x⁵-weighted terms cancel
    v = r.to(tl.float32)
    if COMPENSATE:
        t = s + v
        c += tl.where(tl.abs(s) >= tl.abs(v), (s - t) + v, (v - t) + s) + (r - v.to(tl.float64)).to(tl.float32)
        return t, c
    return s + v, c


@triton.jit
def _group_sum(r, sel):
    return tl.sum(tl.where(sel, r, 0.0))  # r fp64: the sum stays fp64


@triton.jit
def _emit_group_sums(PART, DA, DB, B, j, g, gcol, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, G: tl.constexpr,
                     NGT: tl.constexpr, ATOMIC: tl.constexpr):
    """Fold this tile's per-column sums over the columns of group g (the tile's j-th) and emit them:
    to PART fp64 [row programs, column tiles, NGT, 16], or (ATOMIC) added to DA/DB."""
    sel = gcol == g
    v0 = _group_sum(r0, sel)
    v1 = _group_sum(r1, sel)
    v2 = _group_sum(r2, sel)
    v3 = _group_sum(r3, sel)
    v4 = _group_sum(r4, sel)
    v5 = _group_sum(r5, sel)
    v6 = _group_sum(r6, sel)
    v7 = _group_sum(r7, sel)
    v8 = _group_sum(r8, sel)
    v9 = _group_sum(r9, sel)
    if ATOMIC:
        ok = g < G
        gb = tl.minimum(g, G - 1) * 4
        tl.atomic_add(DA + 0, v0.to(tl.float32), mask=ok)
        tl.atomic_add(DA + 1, v1.to(tl.float32), mask=ok)
        tl.atomic_add(DA + 2, v2.to(tl.float32), mask=ok)
        tl.atomic_add(DA + 3, v3.to(tl.float32), mask=ok)
        tl.atomic_add(DA + 4, v4.to(tl.float32), mask=ok)
        tl.atomic_add(DA + 5, v5.to(tl.float32), mask=ok)
        tl.atomic_add(DB + gb + 0, v6.to(tl.float32) * sign(tl.load(B + gb + 0).to(tl.float32)), mask=ok)
        tl.atomic_add(DB + gb + 1, v7.to(tl.float32) * sign(tl.load(B + gb + 1).to(tl.float32)), mask=ok)
        tl.atomic_add(DB + gb + 2, v8.to(tl.float32) * sign(tl.load(B + gb + 2).to(tl.float32)), mask=ok)
        tl.atomic_add(DB + gb + 3, v9.to(tl.float32) * sign(tl.load(B + gb + 3).to(tl.float32)), mask=ok)
    else:
        base = PART + ((tl.program_id(0) * tl.num_programs(1) + tl.program_id(1)) * NGT + j) * 16
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
def backward_kernel(X, DY, DX, A, B, PART, DA, DB, M, OUTER, C: tl.constexpr, DG: tl.constexpr, G: tl.constexpr,
                    NGT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr,
                    INT64: tl.constexpr, ATOMIC: tl.constexpr, INNER: tl.constexpr, COMPENSATE: tl.constexpr):
    """dx over OUTER×INNER row blocks of one column tile; the coefficient sums go out per group."""
    pid_r = tl.program_id(0)
    nr = tl.num_programs(0)
    ct = tl.program_id(1)
    cols, gcol, cmask = _columns(ct, C, DG, BLOCK_C, EVEN_C)
    a0, a1, a2, a3, a4, a5 = load_numerator(A)
    b0, b1, b2, b3 = _load_column_denominators(B, gcol)
    # Two levels: INNER row blocks accumulate element-wise in plain fp32 (a chain of INNER adds), then
    # their column sums join per-column running sums (k*) with Neumaier compensation (e*), so the chain
    # across the whole persistent loop costs ~ε, not ~ε·√chain: the grid need not grow with M.
    k0, k1, k2, k3, k4, k5, k6, k7, k8, k9 = _zeros10((BLOCK_C,))
    e0, e1, e2, e3, e4, e5, e6, e7, e8, e9 = _zeros10((BLOCK_C,))
    rr = tl.arange(0, BLOCK_R)
    offs, mask = _row_block(pid_r, rr, cols, cmask, M, C, BLOCK_R, EVEN_C, INT64)
    xn = tl.load(X + offs, mask=mask, other=0.0)
    dyn = tl.load(DY + offs, mask=mask, other=0.0)  # 0 outside: adds nothing below
    for ob in range(OUTER):
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _zeros10((BLOCK_R, BLOCK_C))
        for ib in range(INNER):
            x = xn.to(tl.float32)
            dy = dyn.to(tl.float32)
            o, m = offs, mask
            # Prefetch the next row block before this one's math.
            offs, mask = _row_block(pid_r + (ob * INNER + ib + 1) * nr, rr, cols, cmask, M, C, BLOCK_R, EVEN_C,
                                    INT64)
            xn = tl.load(X + offs, mask=mask, other=0.0)
            dyn = tl.load(DY + offs, mask=mask, other=0.0)
            dx, t, u, ax = gradient_terms(x, dy, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3)
            tl.store(DX + o, dx.to(DX.dtype.element_ty), mask=m)
            s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = add_coefficient_terms(s0, s1, s2, s3, s4, s5, s6, s7, s8,
                                                                           s9, t, u, x, ax)
        k0, e0 = _compensated_add(k0, e0, s0, COMPENSATE)
        k1, e1 = _compensated_add(k1, e1, s1, COMPENSATE)
        k2, e2 = _compensated_add(k2, e2, s2, COMPENSATE)
        k3, e3 = _compensated_add(k3, e3, s3, COMPENSATE)
        k4, e4 = _compensated_add(k4, e4, s4, COMPENSATE)
        k5, e5 = _compensated_add(k5, e5, s5, COMPENSATE)
        k6, e6 = _compensated_add(k6, e6, s6, COMPENSATE)
        k7, e7 = _compensated_add(k7, e7, s7, COMPENSATE)
        k8, e8 = _compensated_add(k8, e8, s8, COMPENSATE)
        k9, e9 = _compensated_add(k9, e9, s9, COMPENSATE)
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
        _emit_group_sums(PART, DA, DB, B, j, g_first + j, gcol, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, G, NGT,
                         ATOMIC)


@triton.jit
def fold_partials_kernel(PART, B, DA, DB, GSUM, P, N_CT: tl.constexpr, NGT: tl.constexpr, BLOCK_C: tl.constexpr,
                         DG: tl.constexpr, G: tl.constexpr, GP2: tl.constexpr, BLOCK_P: tl.constexpr):
    """One program: per group g, a fixed-order fp64 fold of its entries of PART [P, N_CT, NGT, 16] (entry
    (ct, j) belongs to group ct·BLOCK_C // DG + j) → db[g] = sign(b) · sums; then da = Σ over groups."""
    k = tl.arange(0, 16)
    for g in range(G):
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
        tl.store(DB + g * 4 + (k - 6), (s * sign(bv)).to(tl.float32), mask=mb)
    # The group sums went through memory so that da folds them as one fixed-order tree, as a separate
    # kernel did before; the barrier makes this program's stores visible to all of its threads.
    tl.debug_barrier()
    gg = tl.arange(0, GP2)
    v = tl.load(GSUM + gg[:, None] * 16 + k[None, :], mask=(gg[:, None] < G) & (k[None, :] < 6), other=0.0)
    tl.store(DA + k, tl.sum(v, axis=0).to(tl.float32), mask=k < 6)


def backward_launcher(M: int, C: int, G: int, cfg: PersistentConfig, device: torch.device, deterministic: bool,
                      inner: int, compensate: bool = True) -> Callable[..., None]:
    """launch(x, dy, dx, a, b, da, db): the backward kernel, then one fold of its partials.

    The partials and group-sum buffers are allocated here once and reused by every call (same stream).
    Atomic mode needs da and db zeroed by the caller.
    """
    dg, bc, n_ct, even, ngt = column_tiles(C, G, BACKWARD_MAX_TILE_WIDTH)
    block_r, progs, iters = row_programs(cfg, M, bc, n_ct, device)
    outer = (iters + inner - 1) // inner
    # Fixed arguments in signature order: M, OUTER, C, DG, G, NGT, BLOCK_R, BLOCK_C, EVEN_C, INT64, ATOMIC, INNER,
    # COMPENSATE.
    backward = bound_launch(backward_kernel, (progs, n_ct), cfg.num_warps, M, outer, C, dg, G, ngt, block_r, bc, even,
                            _needs_int64(block_r, progs, outer * inner, C), not deterministic, inner, compensate)
    if not deterministic:
        return lambda x, dy, dx, a, b, da, db: backward(x, dy, dx, a, b, da, da, db)
    part = torch.empty((progs * n_ct * ngt * PARTIAL_SLOTS,), dtype=torch.float64, device=device)
    gsum = torch.empty((G, 16), dtype=torch.float64, device=device)
    # Fixed arguments in signature order: P, N_CT, NGT, BLOCK_C, DG, G, GP2, BLOCK_P.
    fold = bound_launch(fold_partials_kernel, (1,), 8, progs, n_ct, ngt, bc, dg, G, triton.next_power_of_2(G), 512)

    def launch(x, dy, dx, a, b, da, db) -> None:
        backward(x, dy, dx, a, b, part, da, db)
        fold(part, b, da, db, gsum)

    return launch
