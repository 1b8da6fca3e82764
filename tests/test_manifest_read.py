"""manifest.read: a manifest the user must fix (broken, foreign, incomplete) is one line that says how."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobiledeploy import manifest
from mobiledeploy.errors import UserError


@pytest.mark.parametrize("text, message", [
    ("{bad", "is not valid JSON"),
    (json.dumps({"schema": "something/else"}), "is not a mobiledeploy manifest"),
    (json.dumps({"schema": manifest.SCHEMA}), "lacks field(s): model"),
])
def test_unusable_manifest_says_what_is_wrong_and_to_re_export(tmp_path, text, message):
    path = tmp_path / "m.onnx.json"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        manifest.read(path)
    assert message in e.value.message and "\n" not in str(e.value)
    assert "re-export the artifact with --force" in e.value.hint


def test_missing_manifest_says_to_export_first(tmp_path):
    with pytest.raises(UserError, match="no manifest at") as e:
        manifest.read(tmp_path / "x.onnx.json")
    assert "mobiledeploy export" in e.value.hint


DATA = Path(__file__).parent / "data"
V1 = DATA / "manifest_v1_ghostnet_050_64.onnx.json"  # a real schema-/1 export (labels, per_sample trimmed)


def test_a_schema_1_manifest_reads_as_the_typed_object(tmp_path):
    m = manifest.read(V1)
    assert isinstance(m, manifest.Manifest) and m.schema == "mobiledeploy.manifest/1"
    assert (m.target, m.artifact, m.precision, m.verified) == ("onnx", "ghostnet_050_64.onnx", "fp32", True)
    assert m.model.spec == "ghostnet_050" and m.model.input_size == [3, 64, 64] and m.model.weights is None
    assert m.model.init.startswith("random")
    (inp,) = m.inputs
    assert (inp.name, inp.shape, inp.layout) == ("input", [1, 3, 64, 64], "NCHW")
    assert inp.normalization.mean == [0.485, 0.456, 0.406] and inp.value_range == [0.0, 1.0]
    assert m.outputs[0].shape == [1, 1000] and m.labels[0].startswith("tench")
    assert m.parity.passed and m.parity.rel_l2 < 1e-5 and m.parity.n_samples == 6
    assert m.parity.float64 is None and m.parity.extra == {}  # judged against PyTorch fp32, not float64
    assert m.versions.runtime.name == "onnxruntime" and m.versions.converter.name.startswith("torch.onnx")
    assert m.target_info["opset"] == 20 and m.devices == []


def test_round_trip_keeps_every_field_and_only_the_schema_changes(tmp_path):
    raw = json.loads(V1.read_text())
    raw["inputs"][0]["quantization"] = {"scale": 0.5, "zero_point": 3}  # a target's own key on an entry
    raw["model"]["from_the_future"] = [1, 2]
    raw["something_new"] = {"a": 1}
    back = manifest.Manifest.from_json(raw).to_json()
    assert back == {**raw, "schema": manifest.SCHEMA} and list(back) == list(raw)
    assert manifest.SCHEMA == "mobiledeploy.manifest/2"
    # Written and read again: /2 now, the same object.
    path = tmp_path / "m.onnx.json"
    manifest.write(path, manifest.Manifest.from_json(raw))
    assert json.loads(path.read_text())["schema"] == manifest.SCHEMA
    again = manifest.read(path)
    assert again.to_json() == back and again.inputs[0].extra == {"quantization": {"scale": 0.5, "zero_point": 3}}


def test_schema_2_needs_the_fields_schema_1_could_leave_out(tmp_path):
    raw = {k: v for k, v in json.loads(V1.read_text()).items() if k not in ("size_bytes", "created")}
    old, new = tmp_path / "old.onnx.json", tmp_path / "new.onnx.json"
    old.write_text(json.dumps(raw))
    m = manifest.read(old)
    assert m.size_bytes is None and m.created is None
    new.write_text(json.dumps({**raw, "schema": manifest.SCHEMA}))
    with pytest.raises(UserError, match=r"lacks field\(s\): size_bytes, created"):
        manifest.read(new)


@pytest.mark.parametrize("schema", ["mobiledeploy.manifest/3", "mobiledeploy.manifest/0", None])
def test_a_foreign_schema_is_refused_in_one_line(tmp_path, schema):
    raw = json.loads(V1.read_text()) | {"schema": schema}
    path = tmp_path / "m.onnx.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(UserError) as e:
        manifest.read(path)
    assert "is not a mobiledeploy manifest" in e.value.message and "\n" not in str(e.value)
    assert manifest.SCHEMA in e.value.hint


def test_a_wrongly_shaped_field_is_the_users_error(tmp_path):
    path = tmp_path / "m.onnx.json"
    path.write_text(json.dumps(json.loads(V1.read_text()) | {"inputs": {"name": "input"}}))
    with pytest.raises(UserError, match="is malformed"):
        manifest.read(path)


def _record(device: str, runtime: str, rel_l2: float) -> manifest.DeviceRecord:
    return manifest.DeviceRecord(device=device, machine="aarch64", runtime={"name": runtime, "version": "1"},
                                 verified=True, rel_l2=rel_l2, n_samples=6, sha256="0" * 64)


def test_record_device_replaces_the_same_device_and_runtime(tmp_path):
    path = tmp_path / V1.name
    path.write_text(V1.read_text())  # a /1 file: recording converts it to /2
    manifest.record_device(path, _record("ssh://pi@board", "onnxruntime", 1e-6))
    manifest.record_device(path, _record("ssh://pi@board", "ai-edge-litert", 2e-6))
    m = manifest.record_device(path, _record("ssh://pi@board", "onnxruntime", 3e-6))
    assert [(d.device, d.runtime["name"], d.rel_l2) for d in m.devices] == [
        ("ssh://pi@board", "ai-edge-litert", 2e-6), ("ssh://pi@board", "onnxruntime", 3e-6)]
    raw = json.loads(path.read_text())
    assert raw["schema"] == manifest.SCHEMA and [d["rel_l2"] for d in raw["devices"]] == [2e-6, 3e-6]
    assert manifest.read(path).devices == m.devices
    manifest.record_device(path, _record("adb://PHONE", "onnxruntime", 4e-6))
    assert [d.device for d in manifest.read(path).devices] == ["ssh://pi@board", "ssh://pi@board", "adb://PHONE"]
