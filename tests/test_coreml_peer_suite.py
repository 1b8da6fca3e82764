"""coremltools' own MIL op tests, run with our Core ML interpreter as the prediction backend (issue 18).

Each peer test builds a MIL program, converts it with coremltools and compares `MLModel.predict` with
its expected values; the plugin in tests/coremltools_peer routes predict to our interpreter. The run is
a subprocess (the plugin sets coremltools' test env vars and patches before coremltools' test modules
import), over the vision-relevant files of iOS14 (run for the iOS15–18 ML-program backends) and
iOS15–18, sampled per test function to fit the CI time budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ct = pytest.importorskip("coremltools")

HERE = Path(__file__).parent
TESTS = Path(ct.__file__).parent / "converters" / "mil" / "mil" / "ops" / "tests"
# Op families a mobile vision model uses (the list); image_resizing covers bilinear/crop/resample.
FAMILIES = ("activation", "elementwise_binary", "elementwise_unary", "conv", "pool", "normalization", "linear",
            "reduction", "image_resizing", "tensor_operation", "tensor_transformation")
OPSETS = ("iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
# Parametrizations kept per test function (spread over fp32/fp16 and the four opsets); all: 0.
SAMPLE = int(os.environ.get("MOBILEDEPLOY_PEER_SAMPLE", "4"))


def peer_files() -> list[str]:
    """The selected peer test files that this coremltools ships (ids are relative to TESTS: the run uses it as rootdir)."""
    return [str(TESTS / o / f"test_{f}.py") for o in OPSETS for f in FAMILIES if (TESTS / o / f"test_{f}.py").is_file()]


def run_peer(tmp_path: Path, args: list[str], timeout: int = 1500) -> tuple[subprocess.CompletedProcess, dict]:
    """Run pytest with the peer plugin on `args`; (the process, its JSON summary)."""
    report = tmp_path / "peer.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "coremltools_peer.plugin",
           "--peer-report", str(report), "-W", "ignore", "--rootdir", str(TESTS), "-c", os.devnull, *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert report.is_file(), f"the peer run wrote no report:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(report.read_text())


def totals(summary: dict) -> dict[str, int]:
    """Outcome counts over all files."""
    out: dict[str, int] = {}
    for counts in summary["files"].values():
        for k, v in counts.items():
            out[k] = out.get(k, 0) + v
    return out


def test_peer_suite_passes_on_the_vision_op_files(tmp_path):
    files = peer_files()
    assert len(files) >= 25, f"only {len(files)} peer files found under {TESTS}"
    proc, summary = run_peer(tmp_path, ["--peer-sample", str(SAMPLE), *files])
    table = "\n".join(f"{f}: {c}" for f, c in summary["files"].items())
    print(table)  # the per-file figures, in the CI log
    fails = "\n".join(f"{k}: {v}" for k, v in summary["failures"].items())
    assert proc.returncode == 0 and not summary["failures"], f"peer tests failed:\n{fails}\n{proc.stdout[-2000:]}"
    t = totals(summary)
    # Our xfails are strict (an unexpected pass fails the run); "xpassed" counts only the peer's own
    # non-strict xfail markers (Core ML bugs) that pass here.
    # Most of the run must be real comparisons, not refusals or skips.
    assert t.get("passed", 0) >= 500, t
    for f in files:
        short = f.split("ops/tests/")[-1]
        counts = summary["files"].get(short, {})
        assert counts.get("passed", 0) > 0 or short.startswith("iOS18"), f"{short}: nothing compared ({counts})"


def test_a_broken_op_fails_the_peer_suite(tmp_path):
    """relu replaced by relu(x) + 1: the peer's own comparison must catch it (so a green run means something)."""
    target = str(TESTS / "iOS14" / "test_activation.py")
    proc, summary = run_peer(tmp_path, ["--peer-mutate", "relu", "--peer-sample", "2", target, "-k", "TestReLU"])
    assert proc.returncode != 0
    failed = totals(summary).get("failed", 0)
    assert failed >= 2 and all("Not equal to tolerance" in m or "Mismatched" in m or "AssertionError" in m
                               for m in summary["failures"].values()), summary["failures"]
    # The same selection passes with the real relu.
    proc, summary = run_peer(tmp_path, ["--peer-sample", "2", target, "-k", "TestReLU"])
    assert proc.returncode == 0 and totals(summary).get("passed", 0) >= 2, summary
