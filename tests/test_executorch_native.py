"""The torch-free ExecuTorch runner (devicebench/executorch_native.py + scripts/executorch_shim.cpp) on this host.

The emulated board runs `.pte` files through this runner (test_arm_board.py); here the same shim is
built for x86 against the .venv's executorch libraries and held against ExecuTorch's own Python runtime
on the same program and inputs: both drive the same C++ runtime, so the outputs must be bit-identical.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench_support import REPO
from mobiledeploy.cli import main

pytest.importorskip("executorch")


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> str:
    if shutil.which("g++") is None:
        pytest.skip("no g++ on this host to build the ExecuTorch shim")
    out = tmp_path_factory.mktemp("shim") / "libmdet_executorch.so"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "arm-board.sh"), "host-shim", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(out)


@pytest.fixture(scope="module")
def pte(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pte")
    assert main(["export", "mobilenetv2_035", "-t", "executorch", "--input-size", "32", "--out", str(out)]) == 0
    return next(out.glob("*.pte"))


def test_native_runner_matches_executorch_python_bit_for_bit(shim, pte, monkeypatch):
    from mobiledeploy.devicebench.executorch_native import LIB_ENV, ExecuTorchNativeRunner
    from mobiledeploy.devicebench.executorch_runner import ExecuTorchRunner, plan_counts

    monkeypatch.setenv(LIB_ENV, shim)
    assert ExecuTorchNativeRunner.available()
    native, python = ExecuTorchNativeRunner(str(pte), 1), ExecuTorchRunner(str(pte), 1)
    assert [(s.name, s.shape, s.dtype) for s in native.input_specs()] == \
        [(s.name, s.shape, s.dtype) for s in python.input_specs()]
    assert [(s.name, s.shape, s.dtype) for s in native.output_specs()] == \
        [(s.name, s.shape, s.dtype) for s in python.output_specs()]
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
        a, b = native.run({"input": x})["output"], python.run({"input": x})["output"]
        assert a.dtype == np.float32 and a.shape == b.shape == (1, 1000)
        assert np.array_equal(a, b)
    # A different input gives a different output: the shim really feeds the array it is given.
    assert not np.array_equal(native.run({"input": np.zeros((1, 3, 32, 32), np.float32)})["output"], a)
    info = native.info()
    want = plan_counts(pte.read_bytes())  # ExecuTorch's own deserializer
    assert {k: info[k] for k in ("partitions", "kernel_calls", "delegate")} == want
    assert info["delegate"] == "XNNPACK" and info["partitions"] >= 1


def test_plan_counts_read_a_partly_delegated_program_as_executorch_does(tmp_path):
    """A program with portable kernel calls beside XNNPACK pieces (sin is not delegated)."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from mobiledeploy.devicebench import executorch_native
    from mobiledeploy.devicebench.executorch_runner import plan_counts

    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.nn.functional.conv2d(x, torch.ones(4, 3, 1, 1))
            return torch.nn.functional.conv2d(torch.sin(y), torch.ones(2, 4, 1, 1))

    prog = to_edge_transform_and_lower(torch.export.export(M(), (torch.randn(1, 3, 8, 8),)),
                                       partitioner=[XnnpackPartitioner()]).to_executorch()
    data = prog.buffer
    want = plan_counts(data)
    assert want["kernel_calls"] >= 1 and want["partitions"] >= 1  # sin runs as a portable kernel
    assert executorch_native.plan_counts(data) == want
    assert executorch_native.plan_counts(b"not a program") == {}


def test_a_foreign_file_is_refused_with_the_reason(shim, tmp_path, monkeypatch):
    from mobiledeploy.devicebench.executorch_native import LIB_ENV, ExecuTorchNativeRunner
    from mobiledeploy.errors import UserError

    monkeypatch.setenv(LIB_ENV, shim)
    bad = tmp_path / "x.pte"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(UserError, match="ExecuTorch could not load .*cannot load the program"):
        ExecuTorchNativeRunner(str(bad), 1)


def test_agent_picks_the_native_runner_only_without_executorch_python(shim, pte, monkeypatch):
    import importlib.util

    from mobiledeploy.devicebench import agent
    from mobiledeploy.devicebench.executorch_native import LIB_ENV

    monkeypatch.setenv(LIB_ENV, shim)
    assert agent.board_runtime([str(pte)], "auto") == "auto"  # executorch's Python runtime is here
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    assert agent.board_runtime([str(pte)], "auto") == "executorch-native"
    assert agent.board_runtime([str(pte)], "executorch") == "executorch"  # an explicit choice stands
    assert agent.board_runtime(["m.tflite"], "auto") == "auto"
    monkeypatch.setenv(LIB_ENV, str(Path(shim).with_name("absent.so")))
    assert agent.board_runtime([str(pte)], "auto") == "auto"  # no shim: the usual runner and its install hint
