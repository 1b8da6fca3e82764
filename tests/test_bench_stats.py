"""devicebench statistics and the measurement protocol's order and timing rules."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mobiledeploy.devicebench import stats
from mobiledeploy.devicebench.device import millideg_to_c, parse_cpu_list
from mobiledeploy.devicebench.protocol import Measured, Protocol, _rounds, add_ratios, make_inputs
from mobiledeploy.devicebench.runners import TensorSpec, normalize_op
from mobiledeploy.errors import UserError


def test_summarize_matches_definitions():
    x = np.arange(1, 101, dtype=float)
    s = stats.summarize(x)
    assert s["count"] == 100
    assert s["mean"] == pytest.approx(50.5)
    assert s["median"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)  # linear interpolation between order statistics
    assert s["p99"] == pytest.approx(99.01)
    assert (s["min"], s["max"]) == (1.0, 100.0)
    assert s["std"] == pytest.approx(np.sqrt(np.sum((x - 50.5) ** 2) / 99))  # sample std
    assert s["cv"] == pytest.approx(s["std"] / 50.5)
    assert s["raw"] == list(x)


def test_trimmed_mean_drops_the_tails():
    samples = [1.0] * 9 + [100.0]  # one scheduler hiccup in ten
    assert stats.summarize(samples)["mean"] == pytest.approx(10.9)
    assert stats.trimmed_mean(samples, 0.1) == pytest.approx(1.0)
    assert stats.trimmed_mean(list(range(1, 101)), 0.1) == pytest.approx(50.5)


def test_merge_summaries_equals_pooled_population_stats():
    rng = np.random.default_rng(1)
    full = rng.gamma(4.0, 0.5, size=90)
    parts = [{"count": len(c), "mean": c.mean(), "std": c.std(), "min": c.min(), "max": c.max()}
             for c in np.split(full, [20, 55])]
    m = stats.merge_summaries(parts)
    assert m["count"] == 90
    assert m["mean"] == pytest.approx(full.mean())
    assert m["std"] == pytest.approx(full.std())
    assert (m["min"], m["max"]) == (full.min(), full.max())
    assert "median" not in m  # cannot be pooled from summaries, so it is not invented


def test_summarize_rejects_empty():
    with pytest.raises(ValueError):
        stats.summarize([])


def test_cpu_lists_and_temperatures():
    assert parse_cpu_list("0-3,6") == [0, 1, 2, 3, 6]
    assert parse_cpu_list("4") == [4]
    for bad in ("", "a", "3-1", "1,,x"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)
    assert millideg_to_c(41500) == 41.5
    assert millideg_to_c(415) == 41.5
    assert millideg_to_c(41) == 41


def _measured(label: str, call) -> Measured:
    return Measured(label, label, None, call, {}, [], None, 0.0, 0.0, None)  # type: ignore[arg-type]


def test_rounds_interleave_a_b_a_b():
    order: list[str] = []
    items = [_measured(n, (lambda n=n: order.append(n))) for n in "ABC"]
    _rounds(items, 2, 0.0, 60.0, 0.0, record=False)
    _rounds(items, 3, 0.0, 60.0, 0.0, record=True)
    assert order == list("ABC" * 5)
    assert [m.warmup_count for m in items] == [2, 2, 2]
    assert [len(m.samples_ms) for m in items] == [3, 3, 3]


def test_min_seconds_extends_the_runs_and_cooldown_is_not_timed():
    items = [_measured("A", lambda: time.sleep(0.01))]
    t0 = time.perf_counter()
    _rounds(items, 1, 0.25, 60.0, 0.0, record=True)
    assert time.perf_counter() - t0 >= 0.25
    assert len(items[0].samples_ms) >= 10
    assert all(s >= 9.0 for s in items[0].samples_ms)  # each sample covers the 10 ms call

    cool = [_measured("B", lambda: None)]
    t0 = time.perf_counter()
    _rounds(cool, 4, 0.0, 60.0, 0.05, record=True)
    assert time.perf_counter() - t0 >= 0.2  # four cool-downs happened…
    assert max(cool[0].samples_ms) < 20.0  # …outside the timed calls


def test_ratios_use_medians_or_means_consistently():
    rs = [{"latency_ms": {"median": 2.0, "mean": 3.0}}, {"latency_ms": {"median": 3.0, "mean": 9.0}}]
    add_ratios(rs)
    assert [r["ratio_to_first"] for r in rs] == [1.0, 1.5]
    assert rs[0]["ratio_stat"] == "median"
    rs = [{"latency_ms": {"median": 2.0, "mean": 3.0}}, {"latency_ms": {"median": None, "mean": 6.0}}]
    add_ratios(rs)
    assert [r["ratio_to_first"] for r in rs] == [1.0, 2.0]
    assert rs[1]["ratio_stat"] == "mean"


def test_protocol_validation_and_inputs():
    for bad in (Protocol(runs=0), Protocol(threads=0), Protocol(cooldown=-1)):
        with pytest.raises(UserError):
            bad.validate()
    a = make_inputs([TensorSpec("x", [1, 3, 4, 4], "float32"), TensorSpec("ids", [2, 5], "int64")], seed=3)
    b = make_inputs([TensorSpec("x", [1, 3, 4, 4], "float32"), TensorSpec("ids", [2, 5], "int64")], seed=3)
    assert a["x"].dtype == np.float32 and a["ids"].dtype == np.int64
    np.testing.assert_array_equal(a["x"], b["x"])


def test_op_names_normalise_across_runtimes():
    assert {normalize_op(n) for n in ("Conv", "CONV_2D", "aten::conv2d", "aten::_slow_conv2d_forward")} == {"conv"}
    assert normalize_op("FULLY_CONNECTED") == normalize_op("Gemm") == normalize_op("aten::addmm")
    assert normalize_op("DEPTHWISE_CONV_2D") == "depthwise conv"
    assert normalize_op("SomeNewOp") == "somenewop"


def test_manifest_fills_only_dynamic_dims(tmp_path):
    import json

    from mobiledeploy.devicebench.protocol import manifest_specs

    m = tmp_path / "m.onnx.json"
    m.write_text(json.dumps({"inputs": [{"name": "pixels", "shape": ["batch", 3, 200, 224], "dtype": "float32"}]}))
    runtime = [TensorSpec("input", [-1, 3, -1, 999], "float32")]
    (spec,) = manifest_specs(str(m), runtime)
    # batch: symbolic in both → 1; H: dynamic in the artifact → the manifest's 200; W: static → the artifact's.
    assert (spec.name, spec.shape, spec.dtype) == ("input", [1, 3, 200, 999], "float32")
    assert manifest_specs(None, runtime)[0].shape == [1, 3, 1, 999]
    m.write_text("{not json")
    with pytest.raises(UserError):
        manifest_specs(str(m), runtime)
