"""The benchmark scripts still run on this CPU-only machine (smoke runs; their numbers are not checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_grkan_quick_runs_the_reference_on_the_cpu(tmp_path):
    out = tmp_path / "grkan.json"
    _run("grkan.py", "--quick", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert {r["shape"] for r in rows} >= {"kat_t_act1", "kat_t_act2"}
    # The error columns are measured even without a GPU: float64 reference vs the path that ran.
    assert all(r["err_y"] <= 1e-6 and r["err_dx"] <= 1e-6 for r in rows)


def test_kat_train_smoke_run_says_gpu_numbers_need_a_gpu(tmp_path):
    out = tmp_path / "kat.json"
    proc = _run("kat_train.py", "--out", str(out))
    assert "GPU numbers need a GPU" in proc.stdout + proc.stderr
    assert json.loads(out.read_text())["device"] == "cpu"


def test_kat_profile_reports_wall_time_and_top_ops_per_model(tmp_path):
    out = tmp_path / "prof.json"
    proc = _run("kat_profile.py", "--out", str(out))
    assert "device numbers need a GPU" in proc.stdout
    models = json.loads(out.read_text())["models"]
    for kind in ("vit", "kat"):
        m = models[kind]
        assert m["wall_ms_per_step"] > 0 and m["device_ms_per_step"] is None  # no device column on the CPU
        assert any(r["op"] == "aten::mm" for r in m["top_host"])  # the linear layers were profiled


def test_grkan_host_overhead_times_the_wrappers_with_launches_stubbed(tmp_path):
    out = tmp_path / "ovh.json"
    proc = _run("grkan_host_overhead.py", "--rounds", "1", "--calls", "20", "--out", str(out))
    r = json.loads(out.read_text())
    # Every kernel of both generations was stubbed (else the interpreter would run them and the timing is wrong).
    assert {f"{g}_kernels.{k}_kernel" for g in ("grouped", "persistent") for k in ("forward", "backward", "fold_partials")
            } == set(r["protocol"]["stubbed"])
    assert set(r["us_per_call"]) == {f"{n} {d}" for n in ("grkan eager", "grkan op", "gelu") for d in ("fwd", "fwd+bwd")}
    assert all(v["median"] > 0 for v in r["us_per_call"].values())
    assert "need a GPU" in proc.stdout


def test_xnnpack_breakdown_groups_perf_samples_by_kernel(artifacts):
    if shutil.which("perf") is None:
        pytest.skip("perf is not installed: the breakdown script cannot run here")
    proc = _run("xnnpack_breakdown.py", str(artifacts["tflite"]), "--seconds", "1")
    table = proc.stdout
    assert "| kernel family | tiny µs |" in table and "total (wall, under perf)" in table
    assert "GEMM" in table or "depthwise conv" in table  # the tiny net's convs ran inside XNNPACK


def test_ort_nchwc_padding_keeps_the_numbers_and_removes_layout_conversions(tmp_path):
    # The experiment's pass on a ghost-module-like graph: two 12-channel halves concatenated, gated by
    # a sigmoid branch, then a 1x1 conv. Padded to 16 per half, the same outputs with fewer reorders.
    import onnx
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ort_nchwc_padding import pad_channels, rel_l2, reorders

    class Ghost(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.primary = torch.nn.Conv2d(16, 12, 1)
            self.cheap = torch.nn.Conv2d(12, 12, 3, padding=1, groups=12)
            self.gate = torch.nn.Conv2d(16, 24, 1)
            self.out = torch.nn.Conv2d(24, 32, 1)

        def forward(self, x):
            p = torch.relu(self.primary(x))
            y = torch.cat([p, torch.relu(self.cheap(p))], 1) * torch.sigmoid(self.gate(x))
            return self.out(y)

    plain, padded = tmp_path / "ghost.onnx", tmp_path / "ghost.padded.onnx"
    torch.onnx.export(Ghost().eval(), (torch.randn(1, 16, 20, 20),), str(plain), dynamo=True, optimize=True)
    onnx.save(pad_channels(onnx.load(str(plain)), 1.5), str(padded))
    assert rel_l2(plain, padded) < 1e-6
    assert reorders(padded) < reorders(plain)
