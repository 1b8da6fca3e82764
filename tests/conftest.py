"""Shared fixtures: deterministic seeds and randomised BatchNorm statistics."""

from __future__ import annotations

import pytest
import torch

from bench_support import artifacts  # noqa: F401  (session fixture of the bench tests, shared through conftest)


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm random affine parameters and running statistics (so BN is not a no-op)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The small classifier trained on scikit-learn's digits, shipped in tests/data (never retrained here)."""
    import _appmodel

    return _appmodel.digits(tmp_path_factory.mktemp("digits"))
