"""The `mobiledeploy` console script: version, models listing, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = [str(Path(sys.executable).with_name("mobiledeploy"))]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(EXE + list(args), capture_output=True, text=True, timeout=600)


def test_version():
    from mobiledeploy import __version__

    r = run("--version")
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.fixture(scope="module")
def listing():
    r = run("models", "--json")
    assert r.returncode == 0, r.stderr
    return {row["name"]: row for row in json.loads(r.stdout)}


def test_models_json_lists_cnns_with_figures(listing):
    cnns = {n for n in listing if listing[n]["family"] in ("ghostnet", "ghostnetv2", "mobilenetv2")}
    assert len(cnns) == 11
    for name, params, macs in (("ghostnetv2_100", 6_156_908, 167.0), ("ghostnet_100", 5_182_508, 141.2),
                               ("mobilenetv2_100", 3_504_872, 300.8)):
        assert listing[name]["params"] == params
        assert round(listing[name]["macs"] / 1e6, 1) == macs
        assert listing[name]["input_size"] == [3, 224, 224]
    assert "torchvision" in listing["mobilenetv2_100"]["weights_formats"]
    assert "huawei" in listing["ghostnetv2_100"]["weights_formats"]


def test_models_table():
    r = run("models", "--family", "ghostnetv2")
    assert r.returncode == 0
    assert "ghostnetv2_100" in r.stdout and "6,156,908" in r.stdout and "167.0 M" in r.stdout


def test_user_errors_are_one_line_without_traceback():
    r = run("models", "--family", "nosuch")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: no models in family")
