"""The smallest working input size is found by shape arithmetic alone: the same answer on any machine,
however slow or loaded (it used to stop after 10 s of wall-clock time and then offer no size at all)."""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from mobiledeploy.pipeline import smallest_side


class _Counting(nn.Module):
    """Counts the probes the search makes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def _pool() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.AvgPool2d(4))  # needs a 4×4 map after the stride-2 conv


def test_finds_the_least_size_with_a_fixed_number_of_probes():
    m = _Counting(_pool())
    assert smallest_side(m, torch.zeros(1, 3, 5, 5)) == 7 and m.calls == 2  # 6 fails, 7 runs
    assert smallest_side(_pool(), torch.zeros(1, 3, 5, 5), limit=6) is None
    assert smallest_side(_pool(), torch.zeros(1, 3, 5, 5), probes=1) is None  # only 6 was tried
    assert smallest_side(_pool(), torch.zeros(1, 3, 5, 5), probes=2) == 7
    assert smallest_side(_pool(), torch.zeros(1, 3, 5, 40)) == 7  # the short side is the one raised


def test_same_answer_when_the_clock_runs_a_thousand_times_faster(monkeypatch):
    """A machine so slow that every probe takes minutes: the old 10-second budget returned None here."""
    from mobiledeploy.models import create_model

    real = time.perf_counter
    start = real()
    monkeypatch.setattr(time, "perf_counter", lambda: start + 1000 * (real() - start) + 60.0)
    monkeypatch.setattr(time, "monotonic", lambda: start + 1000 * (real() - start) + 60.0)
    model = create_model("ghostnetv2_100").eval()
    assert smallest_side(model, torch.zeros(1, 3, 16, 16)) == 33  # DFC's 2×2 pool of the 1/32-scale map
    assert smallest_side(model, torch.zeros(1, 3, 17, 40)) == 33


def test_probes_compute_no_numbers():
    """Fake tensors carry shapes only: parameters and outputs are never computed, so a probe is cheap."""
    seen = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(type(x).__name__)
            return _pool()(x)

    assert smallest_side(Spy(), torch.zeros(1, 3, 5, 5)) == 7
    assert seen and all(name == "FakeTensor" for name in seen), seen
