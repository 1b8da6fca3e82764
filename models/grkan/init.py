"""Initial GR-KAN coefficients, and the least-squares fit that produced the gelu ones.

All coefficients are for y = P(x)/Q(x) with Q = 1 + Σ_j |b_j| |x|^(j+1), the denominator of the
published kernels. KAT's published gelu table was fitted for 1 + |Σ_j b_j x^(j+1)| and is off by up
to 1.5 under this denominator, so gelu is refitted here (`fit_rational(gelu, -3, 3)`).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from mobiledeploy.errors import UserError

# (numerator a0..a5, denominator b0..b3), one denominator row replicated over the groups.
INITS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "identity": ((0.0, 1.0, 0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)),
    # KAT's swish table; under this denominator it is within 2e-6 of x·sigmoid(x) on [-3, 3].
    "swish": ((3.0549e-7, 0.50000079, 0.24999783, 0.05326628, 0.00580303, 0.00027520),
              (-4.1116e-6, 0.10652899, -1.2690e-6, 0.00055023)),
    # fit_rational(gelu_exact, -3, 3): max |error| 3.1e-3 on [-3, 3]; it leaves GELU outside
    # that range (0.39 at ±6), as every rational of this form does: its two tails share one slope.
    "gelu": ((-3.05939369e-03, 4.99541603e-01, 4.17238873e-01, 1.43747064e-01, 3.09201054e-02, 3.70702798e-03),
             (-9.16692795e-06, 2.86880138e-01, -1.70061740e-07, 7.48402626e-03)),
}
GELU_FIT_RANGE = (-3.0, 3.0)


def init_coefficients(mode: str, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator (1, 6) and denominator (groups, 4) fp32 tensors for an init mode."""
    if mode not in INITS:
        raise UserError(f"unknown GR-KAN init {mode!r}", f"use one of {', '.join(INITS)}")
    a, b = INITS[mode]
    return torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32).repeat(groups, 1)


def rational(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """P(x)/Q(x) for one coefficient set (a: 6, b: 4), in x's dtype; used by the fit."""
    p = sum(a[i] * x**i for i in range(6))
    q = 1 + sum(b[j].abs() * x.abs() ** (j + 1) for j in range(4))
    return p / q


def gelu_exact(x: torch.Tensor) -> torch.Tensor:
    """GELU with the exact erf, in x's dtype."""
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))


def fit_rational(fn: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float, n: int = 1201,
                 start: str = "swish", scale: float = 1.702, iters: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares fit of P/Q to fn on a uniform grid of [lo, hi] (Levenberg–Marquardt, fp64).

    The start is an init table with x rescaled by `scale` (swish(1.702x)/1.702 ≈ gelu).
    """
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    target = fn(x)
    a0, b0 = (torch.tensor(v, dtype=torch.float64) for v in INITS[start])
    a0 = a0 * scale ** torch.arange(6) / scale
    b0 = b0.abs() * scale ** torch.arange(1, 5)
    theta = torch.cat([a0, b0])

    powers = torch.stack([x**i for i in range(6)], 1)  # (n, 6)
    apowers = powers[:, 1:5].abs()  # |x|^(j+1)

    def resid(t: torch.Tensor) -> torch.Tensor:
        return rational(x, t[:6], t[6:]) - target

    def jacobian(t: torch.Tensor) -> torch.Tensor:
        p = powers @ t[:6]
        q = 1 + apowers @ t[6:].abs()
        return torch.cat([powers / q[:, None], (-p / q**2)[:, None] * apowers * torch.sign(t[6:])], 1)

    lam = 1e-3
    r = resid(theta)
    cost = float(r @ r)
    for _ in range(iters):
        jac = jacobian(theta)
        jtj = jac.T @ jac
        g = jac.T @ r
        step = torch.linalg.solve(jtj + lam * torch.diag(jtj.diagonal() + 1e-12), -g)
        r_new = resid(theta + step)
        new_cost = float(r_new @ r_new)
        if new_cost < cost:
            theta, r, lam = theta + step, r_new, max(lam / 3, 1e-12)
            if cost - new_cost < 1e-15 * cost:
                cost = new_cost
                break
            cost = new_cost
        else:
            lam *= 4
            if lam > 1e12:
                break
    return theta[:6].clone(), theta[6:].clone()
