"""bench's table: per-artifact memory (not the process peak, identical on every row) and counts in words."""

from __future__ import annotations

import pytest
from rich.console import Console

from mobiledeploy.devicebench import report


def _result(label: str, load: float | None, run: float | None, peak: float = 912.4) -> dict:
    return {"label": label, "runtime": {"name": "onnxruntime", "version": "1"},
            "latency_ms": {"median": 1.0, "mean": 1.0, "p90": 1.1, "p99": 1.2, "min": 0.9, "std": 0.1, "cv": 0.1},
            "memory_mb": {"rss_load_delta": load, "rss_run_delta_max": run, "process_peak_rss": peak},
            "ratio_to_first": 1.0, "ratio_stat": "median"}


def _render(run: dict) -> str:
    c = Console(record=True, width=260)
    c.print(report.table(run))
    return c.export_text()


def test_memory_columns_show_what_each_artifact_adds():
    run = {"device": {}, "protocol": {"threads": 1, "runs": 50},
           "results": [_result("big.onnx", 48.25, 3.5), _result("small.tflite", 2.0, 0.0)]}
    text = _render(run)
    assert "load Δ MB" in text and "run Δ MB" in text and "peak RSS" not in text
    big = next(ln for ln in text.splitlines() if "big.onnx" in ln)
    small = next(ln for ln in text.splitlines() if "small.tflite" in ln)
    assert "+48.2" in big and "+3.5" in big and "+2.0" in small and "+0.0" in small
    assert "912" not in text  # the process peak (the same on every row) stays in the JSON only


def test_memory_unknown_is_a_dash_not_zero():
    run = {"device": {}, "protocol": {"threads": 1, "runs": 5}, "results": [_result("a.tflite", None, None)]}
    row = next(ln for ln in _render(run).splitlines() if "a.tflite" in ln)
    assert "+0.0" not in row and row.count("—") >= 2


@pytest.mark.parametrize("runs,words", [(1, "1 run"), (2, "2 runs"), (50, "50 runs")])
def test_title_counts_runs_in_words(runs, words):
    text = _render({"device": {}, "protocol": {"threads": 1, "runs": runs}, "results": [_result("a", 1.0, 0.0)]})
    assert f"· {words}" in text and " 1 runs" not in text


def test_measure_records_per_artifact_memory(artifacts):
    """A real run: every artifact gets its own load and run deltas beside the raw process peak."""
    from mobiledeploy.devicebench.protocol import Protocol, measure

    proto = Protocol(warmup=3, runs=3, threads=1)
    run = measure([str(artifacts["onnx"]), str(artifacts["tflite"])], "auto", proto)
    for r in run["results"]:
        mem = r["memory_mb"]
        assert mem["process_peak_rss"] > 0
        assert isinstance(mem["rss_load_delta"], float) and isinstance(mem["rss_run_delta_max"], float)
        assert mem["rss_run_delta_max"] >= 0.0
