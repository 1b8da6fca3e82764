"""The user's first command, exactly as the README gives it: `mobiledeploy export ghostnetv2 --target coreml`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("mobiledeploy"))


def test_export_ghostnetv2_to_coreml(tmp_path):
    r = subprocess.run([EXE, "export", "ghostnetv2", "--target", "coreml", "--json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout)
    m = m[0] if isinstance(m, list) else m
    art = tmp_path / "out" / "ghostnetv2_100.mlpackage"
    assert art.is_dir() and (tmp_path / "out" / "ghostnetv2_100.mlpackage.json").is_file()
    assert m["model"]["name"] == "ghostnetv2_100" and m["target"] == "coreml"
    # Off macOS the numbers come from the reference interpreter; "verified" means they were computed.
    assert m["verified"] is True
    assert m["parity"]["rel_l2"] <= 1e-5 and m["parity"]["top1_agreement"] == 1.0
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # no temporary left behind
