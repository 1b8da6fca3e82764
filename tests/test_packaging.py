"""Packaging guard: every folder that is a package is listed in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"mobiledeploy": "mobiledeploy", "models": "mobiledeploy.models",
           "exporters": "mobiledeploy.exporters", "devicebench": "mobiledeploy.devicebench"}


def test_every_package_folder_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    for folder, name in FOLDERS.items():
        assert cfg["package-dir"][name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            pkg = ".".join((name, *rel))
            assert pkg in listed, f"{init.parent} is a package but {pkg} is not in pyproject's packages"


def test_optional_extras_present():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("onnx", "coreml", "tflite", "gpu", "timm", "test", "all"):
        assert extra in extras


def test_core_import_is_light():
    """Importing the package and the model registry must not pull converters or runtimes."""
    import subprocess
    import sys

    code = ("import sys, mobiledeploy.cli, mobiledeploy.models as m; m.list_models(); "
            "heavy = [x for x in ('coremltools','litert_torch','onnxruntime','timm','triton','ai_edge_litert') "
            "if x in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dist_version_is_the_one_helper_for_installed_versions():
    import numpy

    from mobiledeploy.versions import dist_version

    assert dist_version("numpy") == numpy.__version__
    assert dist_version("litert_torch") == dist_version("litert-torch") != "not installed"  # _ and - alike
    assert dist_version("no-such-distribution-xyz") == "not installed"
    assert dist_version("no-such-distribution-xyz", missing=None) is None
