"""Shared helpers of the GR-KAN tests: relative error and trained-like coefficients."""

from __future__ import annotations

import torch


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative L2 error of a against b, in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def coefficients(groups: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Swish-init coefficients with per-group perturbations: trained-like, all b non-zero."""
    # Imported here: test_grkan_triton sets TRITON_INTERPRET before anything imports the kernels.
    from mobiledeploy.models.grkan import init_coefficients

    g = torch.Generator().manual_seed(seed)
    a, b = init_coefficients("swish", groups)
    return a * (1 + 0.2 * torch.randn(a.shape, generator=g)), b + 0.05 * torch.randn(b.shape, generator=g)
