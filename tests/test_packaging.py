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


# What a wheel is built from: the project's metadata and the four package folders (no tests, no .venv).
_SOURCES = ("pyproject.toml", "README.md", "mobiledeploy", "models", "exporters", "devicebench")


def _build_wheel(tmp: Path) -> tuple[Path, str]:
    """Build the wheel from a copy of the checkout with .venv's setuptools (offline); returns it and the log."""
    import shutil
    import subprocess
    import sys

    src = tmp / "src"
    for name in _SOURCES:
        s = ROOT / name
        if s.is_dir():
            shutil.copytree(s, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, src / name)
    dist = tmp / "dist"
    # setuptools' PEP 517 backend called directly: its warnings reach us (pip wheel would hide them).
    code = f"from setuptools import build_meta as b; print('WHEEL=' + b.build_wheel({str(dist)!r}))"
    r = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    name = next(ln.removeprefix("WHEEL=") for ln in r.stdout.splitlines() if ln.startswith("WHEEL="))
    return dist / name, log


def test_wheel_build_prints_no_setuptools_warning(tmp_path):
    wheel, log = _build_wheel(tmp_path)
    assert "absent from the `packages` configuration" not in log, log[-3000:]
    assert "_Warning" not in log and "SetuptoolsDeprecationWarning" not in log, log[-3000:]
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "mobiledeploy/data/imagenet_labels.txt" in names
    assert not any(n.startswith(("tests/", "models/", "exporters/")) for n in names)  # all under mobiledeploy/


def test_wheel_install_exports_with_imagenet_labels_from_outside_the_checkout(tmp_path):
    """A real (non-editable) install: the package data is found, a real export runs, 1000 labels in its manifest."""
    import json
    import os
    import subprocess
    import sys

    wheel, _ = _build_wheel(tmp_path / "build")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    # The installed copy comes first on sys.path; .venv supplies the dependencies. The run checks that
    # it really imported the installed copy, not the checkout (which .venv has as an editable install).
    code = ("import sys, mobiledeploy, mobiledeploy.exporters.labels as L; "
            f"site = {str(site)!r}; "
            "assert mobiledeploy.__file__.startswith(site) and L.__file__.startswith(site), (mobiledeploy.__file__, L.__file__); "
            "from mobiledeploy.cli import main; "
            "sys.exit(main(['export', 'mobilenetv2_035', '--input-size', '32', '--target', 'onnx', "
            "'--out', 'out', '--json']))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    artifact = work / json.loads(r.stdout)["artifact_path"]
    assert artifact.is_file() and artifact.suffix == ".onnx"
    manifest = json.loads(artifact.with_name(artifact.name + ".json").read_text())
    assert manifest["verified"] is True
    labels = manifest["labels"]
    assert len(labels) == 1000 and labels[0].startswith("tench") and len(set(labels)) == 1000, labels[:3]
