"""benchmarks/kat_host_step.py runs on the CPU with every GR-KAN launch stubbed (smoke run; numbers unchecked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kat_host_step_times_both_models_with_launches_stubbed(tmp_path):
    out = tmp_path / "step.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kat_host_step.py"), "--rounds", "1", "--steps",
                           "1", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert len(r["protocol"]["stubbed"]) == 6  # forward, backward and fold kernels of both generations
    assert set(r["ms_per_step"]) == {"vit", "kat"} and all(v["median"] > 0 for v in r["ms_per_step"].values())
    assert r["kat_over_vit"]["median"] > 0 and "KAT/ViT" in proc.stdout
