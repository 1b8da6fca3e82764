"""The fp32 bar where PyTorch fp32 is itself far from the exact result: judged against float64 instead,
never looser than PyTorch's own error allows, and still failing a wrong artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobiledeploy.exporters import parity


class Cancels(torch.nn.Module):
    """x + 1000 - 1000 then a linear layer: fp32 loses ~4 digits of x in the cancellation, float64 none."""

    def __init__(self, offset: float = 1000.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(16, 10)
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc((x + self.offset) - self.offset)


def _check(model: torch.nn.Module, artifact_fn) -> parity.ParityReport:
    batch = parity.samples([[1, 16]], (0.0,), (1.0,), n_random=4, photos=False)
    run = lambda _path, feeds: {"out": artifact_fn(feeds["x"])}  # noqa: E731
    return parity.check(model, run, Path("model.fake"), ["x"], ["out"], batch)


def _float64(model: torch.nn.Module):
    import copy

    m64 = copy.deepcopy(model).double()
    return lambda x: m64(torch.from_numpy(x).double()).detach().numpy()


def test_pytorch_fp32_far_from_exact_is_judged_against_float64():
    model = Cancels().eval()
    report = _check(model, _float64(model))  # an artifact that computes exactly
    assert report.float64 is not None and report.passed, report.summary()
    assert report.float64["torch_fp32_rel_l2"] > 1e-5  # PyTorch fp32 itself misses the bar…
    assert report.float64["rel_l2_vs_fp32"] > 1e-5  # …so the exact artifact missed it against PyTorch fp32
    assert report.rel_l2 < 1e-12 and report.reference.startswith("PyTorch float64")
    assert "against float64" in report.summary()


def test_another_fp32_rounding_passes_against_float64():
    model = Cancels().eval()
    other = Cancels(offset=1500.0).eval()  # same function, a coarser fp32 rounding (1.4x the error)
    report = _check(model, lambda x: other(torch.from_numpy(x)).detach().numpy())
    assert report.passed and report.float64 is not None, report.summary()
    assert report.float64["rel_l2_vs_fp32"] > 1e-5  # what failed it before
    assert report.rel_l2 <= report.tolerance["rel_l2"] == parity.FLOAT64_FACTOR * report.float64["torch_fp32_rel_l2"]


def test_a_wrong_artifact_still_fails_against_float64():
    model = Cancels().eval()
    exact = _float64(model)
    rng = np.random.default_rng(0)
    wrong = lambda x: (lambda y: y + 1e-3 * np.abs(y).mean() * rng.standard_normal(y.shape))(exact(x))  # noqa: E731
    report = _check(model, wrong)
    assert not report.passed and report.float64 is not None, report.summary()


def test_well_conditioned_model_keeps_the_1e5_bar():
    model = Cancels(offset=0.0).eval()  # no cancellation: PyTorch fp32 is within 1e-7 of float64
    exact = _float64(model)
    off = lambda x: (lambda y: y * (1 + 3e-5))(exact(x))  # noqa: E731  # 3e-5 off: fails as before
    report = _check(model, off)
    assert not report.passed
    assert report.float64 is not None and report.float64["torch_fp32_rel_l2"] < 1e-6
    assert report.tolerance["rel_l2"] == 1e-5
    good = _check(model, lambda x: model(torch.from_numpy(x)).detach().numpy())
    assert good.passed and good.float64 is None  # within the bar of PyTorch fp32: judged against it alone


def test_a_model_that_cannot_run_in_float64_is_judged_against_fp32_alone():
    class Fixed(Cancels):
        def forward(self, x):
            return self.fc(((x + self.offset) - self.offset).float())  # a cast pinned to float32

    model = Fixed().eval()
    report = _check(model, _float64(Cancels().eval()))
    assert not report.passed and report.float64 is None


def test_the_manifest_keeps_the_float64_facts():
    from mobiledeploy.manifest import Parity

    model = Cancels().eval()
    report = _check(model, _float64(model))
    back = Parity.from_json(report.as_dict())
    assert back.float64 == report.float64 and back.float64["factor"] == parity.FLOAT64_FACTOR
    assert back.to_json()["float64"]["torch_fp32_rel_l2"] > 1e-5


def test_the_factor_applies_only_where_pytorch_itself_misses_the_bar():
    """PyTorch fp32 a few 1e-6 from float64: FLOAT64_FACTOR x that would exceed 1e-5, but the bar stays 1e-5."""
    model = Cancels(offset=200.0).eval()
    exact = _float64(model)
    report = _check(model, lambda x: (lambda y: y * (1 + 2e-5))(exact(x)))
    torch_err = report.float64["torch_fp32_rel_l2"]
    assert 1e-5 / parity.FLOAT64_FACTOR < torch_err < 1e-5  # the case the rule is for
    assert report.tolerance["rel_l2"] == 1e-5 and not report.passed
