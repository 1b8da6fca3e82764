"""The rational and its gradient as @triton.jit helpers, shared by both kernel generations, and how
their launchers bind a kernel's fixed arguments.

All arithmetic is fp32 whatever the load/store dtype. Every helper is inlined into the kernel that
calls it, so splitting the math out changes no instruction and no rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import triton
import triton.language as tl

# Slots per program in a partial-sums buffer: 10 used (6 numerator, 4 denominator sums); 16 keeps
# each program's row 64-byte aligned.
PARTIAL_SLOTS = 16


def bound_launch(kernel, grid: tuple[int, ...], num_warps: int, *fixed: object) -> Callable[..., None]:
    """launch(*tensors) = kernel[grid](*tensors, *fixed, num_warps=num_warps): every argument after the
    tensors is fixed once, passed by position so that a launch builds no keyword dictionary."""
    launch = kernel[grid]

    def run(*tensors: object) -> None:
        launch(*tensors, *fixed, num_warps=num_warps)

    return run


@triton.jit
def numerator(x, a0, a1, a2, a3, a4, a5):
    """P(x) in Horner form."""
    return ((((a5 * x + a4) * x + a3) * x + a2) * x + a1) * x + a0


@triton.jit
def load_numerator(A):
    """The six numerator coefficients, in fp32."""
    return (tl.load(A + 0).to(tl.float32), tl.load(A + 1).to(tl.float32), tl.load(A + 2).to(tl.float32),
            tl.load(A + 3).to(tl.float32), tl.load(A + 4).to(tl.float32), tl.load(A + 5).to(tl.float32))


@triton.jit
def load_group_denominator(B, g):
    """|b0|..|b3| of group g, in fp32 (scalars)."""
    return (tl.abs(tl.load(B + g * 4 + 0).to(tl.float32)), tl.abs(tl.load(B + g * 4 + 1).to(tl.float32)),
            tl.abs(tl.load(B + g * 4 + 2).to(tl.float32)), tl.abs(tl.load(B + g * 4 + 3).to(tl.float32)))


@triton.jit
def sign(v):
    """sign(v), 0 at 0: d|v|/dv as autograd of abs has it."""
    return tl.where(v > 0, 1.0, 0.0) - tl.where(v < 0, 1.0, 0.0)


@triton.jit
def gradient_terms(x, dy, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3):
    """(dx, t, u, |x|) for one tile: t = dL/dP = dy/Q and u = dL/dQ = -dy·P/Q² feed the coefficient sums."""
    ax = tl.abs(x)
    p = numerator(x, a0, a1, a2, a3, a4, a5)
    dp = (((5.0 * a5 * x + 4.0 * a4) * x + 3.0 * a3) * x + 2.0 * a2) * x + a1
    q = (((b3 * ax + b2) * ax + b1) * ax + b0) * ax + 1.0
    dq_abs = ((4.0 * b3 * ax + 3.0 * b2) * ax + 2.0 * b1) * ax + b0  # dQ/d|x|
    rq = 1.0 / q
    t = dy * rq
    u = -t * p * rq
    return t * dp + u * dq_abs * sign(x), t, u, ax


@triton.jit
def add_coefficient_terms(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, t, u, x, ax):
    """Add one tile's terms to the ten accumulators: t·xⁱ (i = 0..5, numerator) and u·|x|^(j+1) (denominator)."""
    x2 = x * x
    x4 = x2 * x2
    # x²·|x| equals |x³| bit for bit (rounding is symmetric in sign), without forming x³ twice.
    return (s0 + t, s1 + t * x, s2 + t * x2, s3 + t * (x2 * x), s4 + t * x4, s5 + t * (x4 * x),
            s6 + u * ax, s7 + u * x2, s8 + u * (x2 * ax), s9 + u * x4)


@triton.jit
def rational(x, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3):
    """y = P(x)/Q(x) with IEEE division, as PyTorch divides."""
    ax = tl.abs(x)
    q = (((b3 * ax + b2) * ax + b1) * ax + b0) * ax + 1.0
    return numerator(x, a0, a1, a2, a3, a4, a5) / q
