"""What ships inside an artifact: only what its runtime reads (Core ML package files, ONNX metadata keys),
with normal permissions, and outputs described as the app receives them."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, dict]:
    """One small real export to ONNX and Core ML through the CLI: {target: manifest + its path}."""
    out = tmp_path_factory.mktemp("contents")
    r = subprocess.run([sys.executable, "-m", "mobiledeploy", "export", "mobilenetv2_035", "--input-size", "32",
                        "-t", "onnx,coreml", "--out", str(out), "--json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    shown = json.loads(r.stdout)
    found = {}
    for s in shown:
        art = Path(s["artifact_path"])
        found[s["target"]] = json.loads(Path(str(art) + ".json").read_text()) | {"_path": art}
    return found


def _check_package(pkg: Path) -> None:
    listed = {e["path"] for e in json.loads((pkg / "Manifest.json").read_text())["itemInfoEntries"].values()}
    files = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file())
    # Every file is the manifest or lies in (or is) an item the manifest lists; no debug side files.
    for f in files:
        assert f == "Manifest.json" or any(f == f"Data/{i}" or f.startswith(f"Data/{i}/") for i in listed), f
    assert not any("executorch" in f or "debug" in f for f in files), files
    assert "Data/com.apple.CoreML/model.mlmodel" in files
    for p in [pkg, *pkg.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        # Readable by everyone (an app build, a CI user, a web server): 0644 files, 0755 folders.
        assert mode == (0o755 if p.is_dir() else 0o644), (str(p.relative_to(pkg)), oct(mode))


def test_mlpackage_holds_only_what_its_manifest_lists_with_normal_permissions(exported):
    _check_package(exported["coreml"]["_path"])


def test_int8_compressed_mlpackage_is_tidy_too(exported, tmp_path):
    """--precision int8 saves the package again (coremltools weight compression): same rules."""
    pytest.importorskip("coremltools")
    from mobiledeploy.exporters import quantize as Q

    out = tmp_path / "int8.mlpackage"
    Q.compress_coreml(exported["coreml"]["_path"], out, "linear8")
    _check_package(out)


def test_mlpackage_still_loads_and_was_verified(exported):
    ct = pytest.importorskip("coremltools")
    m = exported["coreml"]
    assert m["verified"] is True
    spec = ct.utils.load_spec(str(m["_path"]))
    assert {o.name for o in spec.description.output} >= {"classLabel", "classLabel_probs", "logits"}


def test_probabilities_output_is_described_as_swift_receives_it(exported):
    """Core ML hands a classifier's probabilities to Swift as a dictionary keyed by label, not an array."""
    ct = pytest.importorskip("coremltools")
    m = exported["coreml"]
    (probs,) = [o for o in m["outputs"] if o.get("kind") == "probabilities"]
    assert probs["name"] == "classLabel_probs"
    assert probs["swift_type"] == "[String: Double]" and probs["dtype"] == "dictionary"
    assert probs["key_dtype"] == "string" and probs["value_dtype"] == "float64"
    assert "array" not in probs.get("note", "").replace("not an array", "")
    spec = ct.utils.load_spec(str(m["_path"]))
    (o,) = [o for o in spec.description.output if o.name == "classLabel_probs"]
    assert o.type.WhichOneof("Type") == "dictionaryType" and o.type.dictionaryType.WhichOneof("KeyType") == "stringKeyType"


def test_onnx_metadata_holds_only_ours(exported):
    onnx = pytest.importorskip("onnx")
    keys = [e.key for e in onnx.load(str(exported["onnx"]["_path"])).metadata_props]
    assert "producer" in keys and "labels" in keys  # ours are there …
    assert not [k for k in keys if k.startswith("onnxsim")], keys  # … and onnxsim's ~20 report keys are not
