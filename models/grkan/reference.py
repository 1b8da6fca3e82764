"""The GR-KAN rational in plain PyTorch: the CPU path, the autograd oracle, and what torch.export traces.

y = P(x) / Q(x) with P = a0 + a1 x + … + a5 x⁵ (one numerator shared by all groups) and
Q = 1 + |b0||x| + |b1||x|² + |b2||x|³ + |b3||x|⁴ (one row of b per contiguous channel group),
the formula of KAT's and FlashKAT's kernels, with which the published checkpoints were trained.
"""

from __future__ import annotations

import torch

from mobiledeploy.errors import UserError


def check_shapes(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> int:
    """Validate the operands and return the number of groups."""
    if numerator.numel() != 6:
        raise UserError(f"GR-KAN numerator must hold 6 coefficients, got shape {tuple(numerator.shape)}")
    if denominator.dim() != 2 or denominator.shape[1] != 4:
        raise UserError(f"GR-KAN denominator must have shape (groups, 4), got {tuple(denominator.shape)}")
    groups = denominator.shape[0]
    if x.dim() == 0 or x.shape[-1] % groups != 0:
        raise UserError(f"GR-KAN input has {x.shape[-1] if x.dim() else 0} channels (last dim), "
                        f"not a multiple of its {groups} groups",
                        "use a channel count divisible by the number of groups")
    return groups


def grkan_reference(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """y = P(x)/Q(x) over the last dim, computed in fp32 (fp64 for fp64 input), returned in x's dtype.

    Only elementwise ops, one reshape and one division, so that exporters can lower it. Both
    polynomials are in Horner form: no power of x is formed on its own, so intermediates stay
    about as large as P and Q themselves (in fp16, P overflows only past |x| ≈ 60 at swish init).
    """
    groups = check_shapes(x, numerator, denominator)
    dtype = x.dtype
    cdt = torch.float64 if dtype == torch.float64 else torch.float32
    xg = _as(x, cdt).unflatten(-1, (groups, x.shape[-1] // groups))  # (..., G, C/G)
    a = _as(numerator, cdt).reshape(6)
    b = _as(denominator, cdt).abs().unsqueeze(-1)  # (G, 4, 1): broadcasts over the group's channels
    p = a[5] * xg + a[4]
    p = p * xg + a[3]
    p = p * xg + a[2]
    p = p * xg + a[1]
    p = p * xg + a[0]
    ax = xg.abs()
    q = b[:, 3] * ax + b[:, 2]
    q = q * ax + b[:, 1]
    q = q * ax + b[:, 0]
    q = q * ax + 1.0
    return _as((p / q).flatten(-2), dtype)


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # No cast node at all when the dtype already matches: exported graphs stay minimal.
    return t if t.dtype == dtype else t.to(dtype)


def grkan_reference_backward(grad: torch.Tensor, x: torch.Tensor, numerator: torch.Tensor,
                             denominator: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, d numerator, d denominator) by the explicit formulas, without autograd (usable inside ops).

    Same math as the Triton backward: dL/dP = g/Q, dL/dQ = -g P/Q², d|x|/dx = sign(x), d|b|/db = sign(b).
    """
    groups = check_shapes(x, numerator, denominator)
    cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    xg = _as(x, cdt).unflatten(-1, (groups, x.shape[-1] // groups))
    g = _as(grad, cdt).reshape(xg.shape)
    a = _as(numerator, cdt).reshape(6)
    braw = _as(denominator, cdt)
    b = braw.abs().unsqueeze(-1)
    ax = xg.abs()
    p = ((((a[5] * xg + a[4]) * xg + a[3]) * xg + a[2]) * xg + a[1]) * xg + a[0]
    dp = (((5 * a[5] * xg + 4 * a[4]) * xg + 3 * a[3]) * xg + 2 * a[2]) * xg + a[1]
    q = (((b[:, 3] * ax + b[:, 2]) * ax + b[:, 1]) * ax + b[:, 0]) * ax + 1.0
    dq = ((4 * b[:, 3] * ax + 3 * b[:, 2]) * ax + 2 * b[:, 1]) * ax + b[:, 0]
    t = g / q
    u = -t * p / q
    dx = t * dp + u * dq * torch.sign(xg)
    lead = tuple(range(xg.dim() - 2))  # every dim but (group, channel-in-group)
    powers = [torch.ones_like(xg), xg]
    for _ in range(4):
        powers.append(powers[-1] * xg)
    da = torch.stack([(t * pw).sum(lead).sum(-1).sum(-1) for pw in powers])
    db = torch.stack([(u * pw.abs()).sum(lead).sum(-1) for pw in powers[1:5]], 1) * torch.sign(braw)
    return (_as(dx.flatten(-2), x.dtype), _as(da.reshape(numerator.shape), numerator.dtype),
            _as(db, denominator.dtype))
