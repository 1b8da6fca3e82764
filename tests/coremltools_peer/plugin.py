"""pytest plugin: coremltools' shipped MIL op tests, predicted by our interpreter instead of Core ML.

Load it with `-p coremltools_peer.plugin` (tests/ on PYTHONPATH) on files under
coremltools/converters/mil/mil/ops/tests. It
- selects the ML-program backends in fp16 and fp32 (the env vars coremltools' testing_reqs reads at import),
- routes `MLModel.predict` to `mobiledeploy.exporters.mlinterp.CoreMLModel` on the converted .mlpackage,
- lifts the two macOS guards inside `coremltools.converters.mil.testing_utils` only, so that the tests'
  own comparison (`compare_backend`) runs here; the ops tests' reference to compare_backend is wrapped
  only to tell a mismatch within fp16 precision apart (it still fails unless listed),
- optionally samples N parametrizations per test function (`--peer-sample N`, deterministic),
- marks expectations.XFAIL as strict xfails, counts refusals by design (REFUSALS) and checked fp16
  tolerance cases (expectations.FP16_TOLERANCE) as such, with their reasons, never as passes, and writes
  a JSON summary per file (`--peer-report PATH`); `--peer-mutate OP` installs a broken op (self-test).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# coremltools.converters.mil.testing_reqs reads these when the test modules import it, after this plugin loads.
os.environ["PYMIL_TEST_TARGETS"] = "mlprogram"
os.environ["INCLUDE_MIL_FP32_UNIT_TESTS"] = "1"

# Refusals by design, each with the reason the summary reports: (exception class name, message part, reason).
REFUSALS = (
    ("UnsupportedOpError", "symbolic dimension", "symbolic shape: the interpreter runs static shapes only (by design)"),
    ("UnsupportedOpError", "neuralnetwork model",
     "neuralnetwork (not ML program) model: the interpreter runs ML programs only (by design)"),
    ("ProgramTypeError", "before iOS17 x and the parameters share one type",
     "ill-typed under its opset: iOS15/16 put x and the op's parameters in one type (iOS17 split them), and the "
     "interpreter enforces the program's opset (by design)"),
    ("AmbiguousOpError", "", "ambiguous op (e.g. fractional nearest upsampling): the MIL spec leaves the result "
                             "open, so the interpreter refuses it (by design)"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """--peer-report PATH (JSON summary) and --peer-mutate OP (a deliberately broken op, for the self-test)."""
    parser.addoption("--peer-report", default=None, help="write a JSON summary of the peer run here")
    parser.addoption("--peer-mutate", default=None, help="replace this op by a wrong one (self-test)")
    parser.addoption("--peer-sample", type=int, default=0,
                     help="keep at most N parametrizations per test function (0: all), spread over the backends")


class _MacOSGuards:
    """`coremltools.models.utils` as testing_utils sees it, with a macOS version new enough to predict."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @staticmethod
    def _macos_version() -> tuple[int, int]:
        return (15, 0)


_LAST: dict[str, Any] = {}  # the latest prediction, for the fp16-ulp check of a failed comparison


class WithinFp16Ulp(AssertionError):
    """A failed peer comparison where every output is within one fp16 ulp (at the output's largest expected
    magnitude) of the test's expected values: the precision fp16 inputs or weights carry, no more."""


def _predict(self, data, state=None):
    """MLModel.predict through the reference interpreter on the model's saved .mlpackage."""
    from mobiledeploy.exporters.mlinterp import CoreMLModel

    if state is not None:
        raise NotImplementedError("stateful models are not run by the interpreter")
    if self.package_path is None:
        from mobiledeploy.exporters.mlinterp import UnsupportedOpError

        raise UnsupportedOpError("a neuralnetwork model: the interpreter runs ML programs (.mlpackage) only")
    _LAST.clear()
    _LAST.update(CoreMLModel(self.package_path).predict(data))
    return dict(_LAST)


def _checked_compare(compare):
    """compare_backend, unchanged, except that a mismatch within fp16 precision (_within_fp16_ulp) is raised
    as WithinFp16Ulp (still an AssertionError: it fails unless the test is a listed tolerance case)."""

    def wrapper(mlmodel, input_key_values, expected_outputs, *args, **kwargs):
        try:
            return compare(mlmodel, input_key_values, expected_outputs, *args, **kwargs)
        except AssertionError as e:
            if expected_outputs and _LAST and all(_within_fp16_ulp(_LAST.get(k), v) for k, v in expected_outputs.items()):
                raise WithinFp16Ulp(f"within one fp16 ulp of the largest expected magnitude: {e}") from None
            raise

    return wrapper


def _within_fp16_ulp(got: Any, want: Any) -> bool:
    import numpy as np

    if got is None or np.shape(got) != np.shape(want):
        return False
    w = np.asarray(want, np.float64)
    if w.size == 0 or not np.all(np.isfinite(w)):
        return False
    # fp16 operands carry a relative error of 2^-11 into every term of a sum, so the result's error scales
    # with the terms, not with the (possibly small) element; bound it by one ulp at the largest magnitude.
    ulp = float(np.spacing(np.float16(np.abs(w).max())))
    return bool(np.all(np.abs(np.asarray(got, np.float64) - w) <= ulp))


def pytest_configure(config: pytest.Config) -> None:
    """Install the predict backend, lift the guards, and apply a mutation if asked."""
    import coremltools as ct
    from coremltools.converters.mil import testing_utils

    from coremltools.converters.mil.mil.ops.tests import testing_utils as op_testing_utils

    ct.models.MLModel.predict = _predict
    op_testing_utils.compare_backend = _checked_compare(op_testing_utils.compare_backend)
    testing_utils._IS_MACOS = True
    testing_utils.coremltoolsutils = _MacOSGuards(testing_utils.coremltoolsutils)
    op = config.getoption("--peer-mutate")
    if op:
        from .mutants import install

        install(op)
    config.pluginmanager.register(_Recorder(config.getoption("--peer-report")), "coremltools-peer-recorder")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Sample (if asked), then mark the known tolerance cases as strict xfails with their reason."""
    from .expectations import XFAIL

    from .expectations import DESELECT

    n = config.getoption("--peer-sample")
    keep = set(sample(items, n)) if n else {i.nodeid for i in items}
    for k in sorted(keep):
        func = short_id(k).split("[")[0]
        if func in DESELECT:
            DESELECTED[short_id(k)] = DESELECT[func]
    keep = {k for k in keep if short_id(k) not in DESELECTED}
    config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in keep])
    items[:] = [i for i in items if i.nodeid in keep]
    for item in items:
        reason = XFAIL.get(short_id(item.nodeid))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the heap built by the imports: ct.convert calls gc.collect() on every conversion, and walking
    torch's and coremltools' millions of objects each time cost ~0.9 s of the ~1 s per test."""
    import gc

    gc.freeze()


def sample(items: list[pytest.Item], n: int) -> list[str]:
    """Node ids of at most n items per test function: one per backend config (opset × precision) in turn,
    each config's cases in a fixed pseudo-random order (a hash of the id), so every run picks the same."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        func = item.nodeid.split("[")[0]
        backend = re.search(r"backend=BackendConfig\(([^)]*)\)", item.nodeid)
        groups[func][backend.group(1) if backend else ""].append(item.nodeid)
    keep = []
    for func, configs in groups.items():
        queues = [sorted(ids, key=lambda i: _digest(short_id(i))) for _, ids in _spread(func, configs)]
        picked = []
        while len(picked) < n and any(queues):
            for q in queues:
                if q and len(picked) < n:
                    picked.append(q.pop(0))
        keep += picked
    return keep


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


def _spread(func: str, configs: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """Backend configs in the order a small sample should take them: fp32 and fp16 alternating (fp32
    first: its tolerance is tight), each precision's opsets rotated by a hash of the function."""
    by_prec: dict[str, list[str]] = defaultdict(list)
    for key in sorted(configs):
        by_prec["fp16" if "'fp16'" in key else "fp32"].append(key)
    rot = int(_digest(short_id(func))[:8], 16)
    lanes = [by_prec["fp32"], by_prec["fp16"]]
    lanes = [lane[rot % len(lane):] + lane[:rot % len(lane)] if lane else lane for lane in lanes]
    order = [k for pair in zip(*lanes) for k in pair] + lanes[0][len(lanes[1]):] + lanes[1][len(lanes[0]):]
    return [(k, configs[k]) for k in order]


def short_id(nodeid: str) -> str:
    """'iOS17/test_conv.py::TestConv::test_x[...]' from a node id under .../ops/tests/."""
    return re.sub(r"^.*ops/tests/", "", nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A refusal by design (REFUSALS) is an expected refusal (xfail with the reason), not a failure."""
    outcome = yield
    rep = outcome.get_result()
    if call.when == "call" and rep.failed and call.excinfo is not None:
        from .expectations import FP16_TOLERANCE

        reason = refusal_reason(call.excinfo.value)
        func = short_id(item.nodeid).split("[")[0]
        if call.excinfo.errisinstance(WithinFp16Ulp) and func in FP16_TOLERANCE and "'fp32'" in item.nodeid:
            reason = TOLERANCE
        if reason:
            rep.outcome = "skipped"
            rep.wasxfail = reason


def refusal_reason(exc: BaseException) -> str | None:
    """The REFUSALS reason that `exc` (an interpreter error) matches, if any."""
    from mobiledeploy.exporters.mlinterp import MLInterpError

    if not isinstance(exc, MLInterpError):
        return None
    for cls, part, reason in REFUSALS:
        if type(exc).__name__ == cls and part in str(exc):
            return reason
    return None


TOLERANCE = ("tolerance: fp16 inputs or weights compared at the fp32 config's tolerance; every output is within "
             "one fp16 ulp (at the largest expected magnitude) of the expected value (checked)")
DESELECTED: dict[str, str] = {}  # test id → reason, for the summary
_REFUSAL_KIND = dict(zip((r[2] for r in REFUSALS),
                         ("refused_symbolic", "refused_neuralnetwork", "refused_opset_types", "refused_ambiguous")))
_REFUSAL_KIND[TOLERANCE] = "tolerance_fp16"


class _Recorder:
    """Counts outcomes per file (and why things failed) and writes them as JSON at the end."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.files: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.failures: dict[str, str] = {}
        self.skips: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        sid = short_id(report.nodeid)
        f = self.files[sid.split("::")[0]]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if hasattr(report, "wasxfail"):
                kind = _REFUSAL_KIND.get(report.wasxfail) or _xfail_kind(report)
            else:
                kind = report.outcome
            f[kind] += 1
            if report.failed:
                self.failures[sid] = _first_line(report)
            elif report.skipped and not hasattr(report, "wasxfail"):
                self.skips[sid] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.path:
            return
        data = {"files": {k: dict(v) for k, v in sorted(self.files.items())}, "failures": self.failures,
                "skips": self.skips, "deselected": DESELECTED}
        Path(self.path).write_text(json.dumps(data, indent=1))


def _xfail_kind(report: pytest.TestReport) -> str:
    """xpassed (a peer's own non-strict xfail that passes here), xfailed_listed (ours, expectations.XFAIL)
    or xfailed_peer (the peer test calls pytest.xfail itself for a Core ML bug, before comparing)."""
    from .expectations import XFAIL

    if report.passed:
        return "xpassed"
    return "xfailed_listed" if report.wasxfail in set(XFAIL.values()) else "xfailed_peer"


def _first_line(report: pytest.TestReport) -> str:
    """The exception line of a failure (type and message), for the summary."""
    crash = getattr(report.longrepr, "reprcrash", None)
    return (crash.message if crash else str(report.longrepr)).splitlines()[0][:300]
