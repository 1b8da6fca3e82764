"""The coreml target: app-ready artifacts (image input, classifier, metadata), options and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

ct = pytest.importorskip("coremltools")

from _coreml_util import convert, normalise, op_types, random_pixels, rel_l2  # noqa: E402

from mobiledeploy.errors import UserError  # noqa: E402
from mobiledeploy.exporters.labels import IMAGENET_LABELS as LABELS_FILE  # noqa: E402
from mobiledeploy.exporters.labels import read_labels as load_labels  # noqa: E402
from mobiledeploy.exporters.mlinterp import CoreMLModel, predict  # noqa: E402
from mobiledeploy.devicebench.runners import run_artifact  # noqa: E402


class Gate(nn.Module):
    """A GhostNetV2 DFC gate: pool 2/2, depthwise convs, sigmoid, nearest back to the input size."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.dw = nn.Conv2d(c, c, (1, 5), padding=(0, 2), groups=c)

    def forward(self, x):
        y = self.conv(x)
        g = torch.sigmoid(self.dw(F.avg_pool2d(y, 2, 2)))
        return y * F.interpolate(g, size=y.shape[-2:], mode="nearest")


class TinyClassifier(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.gate = Gate(4)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.gate(F.relu(self.stem(x))).mean((2, 3)))


def _spec(path):
    return ct.models.MLModel(str(path), skip_model_load=True).get_spec()


@pytest.mark.parametrize("hw", [(7, 7), (13, 11), (8, 6)])
def test_odd_maps_convert_exactly_without_fractional_upsample(tmp_path, hw):
    m = Gate().eval()
    x = torch.randn(1, 4, *hw)
    res = convert(m, x, tmp_path / "gate.mlpackage", tensor_input=True)
    got = predict(res.artifact, {"input": x.numpy()})["output"]
    with torch.no_grad():
        ref = m(x).numpy()
    assert rel_l2(got, ref) <= 1e-6
    odd = hw[0] % 2 or hw[1] % 2
    assert any(f.startswith("exact_nearest_upsample(") for f in res.extra["coreml_rewrites"]) == bool(odd)


def test_app_artifact_image_classifier_metadata(tmp_path):
    m = TinyClassifier().eval()
    x = torch.randn(1, 3, 20, 18)
    res = convert(m, x, tmp_path / "cls.mlpackage", name="tiny", weights=None)
    spec = _spec(res.artifact)
    (inp,) = spec.description.input
    assert inp.name == "image" and inp.type.imageType.colorSpace == 20  # RGB
    assert (inp.type.imageType.height, inp.type.imageType.width) == (20, 18)
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.predictedProbabilitiesName == "classLabel_probs"
    assert {o.name for o in spec.description.output} == {"classLabel", "classLabel_probs", "logits"}
    meta = spec.description.metadata
    assert meta.author and meta.license and "tiny" in meta.shortDescription and meta.versionString
    ud = dict(meta.userDefined)
    assert ud["source_model"] == "tiny" and ud["input_size"] == "20x18" and len(ud["state_dict_sha256"]) == 64
    assert ud["mobiledeploy_version"] and ud["precision"] == "fp32"
    assert spec.specificationVersion == 7  # iOS16
    # ImageNet's per-channel std: scale/bias in the image input, then one per-channel mul.
    assert "mul" in op_types(res.artifact)
    model = CoreMLModel(res.artifact)
    assert model.class_labels == load_labels()
    pix = random_pixels(20, 1)[..., :18]
    out = run_artifact(res.artifact, {"image": pix})
    with torch.no_grad():
        ref = m(normalise(pix, res.inputs[0]["normalization"]["mean"], res.inputs[0]["normalization"]["std"])).numpy()
    assert rel_l2(out["logits"], ref) <= 1e-5
    np.testing.assert_allclose(out["classLabel_probs"], torch.softmax(torch.from_numpy(ref), -1).numpy(), atol=1e-7)
    assert out["classLabel"][0] == load_labels()[int(ref.argmax())]
    assert res.extra["reference_output"] == "logits"
    assert [p.name for p in tmp_path.iterdir()] == ["cls.mlpackage"]  # no partial artifact left behind


def test_equal_std_folds_into_image_scale(tmp_path):
    m = TinyClassifier(5).eval()
    from mobiledeploy.exporters.targets import ExportRequest, get_target

    x = torch.randn(1, 3, 16, 16)
    req = ExportRequest("tiny", torch.export.export(m, (x,)), m, (x,), tmp_path / "eq.mlpackage",
                        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), labels=list("abcde"))
    res = get_target("coreml").convert(req)
    assert not any(s.startswith("image__std") for s in _names(res.artifact))
    pix = random_pixels(16, 2)
    out = predict(res.artifact, {"image": pix})
    with torch.no_grad():
        ref = m(normalise(pix, req.mean, req.std)).numpy()
    assert rel_l2(out["logits"], ref) <= 1e-5 and out["classLabel"][0] == "abcde"[int(ref.argmax())]


def _names(path):
    from mobiledeploy.exporters.mlinterp import MLProgram

    return [o for s in MLProgram(path).steps for o, _ in s.outputs]


def test_labels_override_and_mismatch(tmp_path):
    m = TinyClassifier(3).eval()
    x = torch.randn(1, 3, 12, 12)
    good = tmp_path / "labels.txt"
    good.write_text("cat\ndog\nbird\n")
    res = convert(m, x, tmp_path / "a.mlpackage", labels=str(good))
    assert CoreMLModel(res.artifact).class_labels == ["cat", "dog", "bird"]
    bad = tmp_path / "bad.txt"
    bad.write_text("cat\ndog\n")
    with pytest.raises(UserError, match="2 labels for a model with 3 classes"):
        convert(m, x, tmp_path / "b.mlpackage", labels=str(bad))
    assert not (tmp_path / "b.mlpackage").exists()
    # No labels and not 1000 classes: a plain (non-classifier) image model.
    res = convert(m, x, tmp_path / "c.mlpackage")
    assert CoreMLModel(res.artifact).class_labels is None and res.extra["classifier"] is False


def test_tensor_input_fp16_and_min_target(tmp_path):
    m = TinyClassifier(10).eval()
    x = torch.randn(1, 3, 14, 14)
    res = convert(m, x, tmp_path / "t.mlpackage", precision="fp16", tensor_input=True, min_target="iOS17")
    spec = _spec(res.artifact)
    assert spec.specificationVersion == 8
    assert spec.description.input[0].type.WhichOneof("Type") == "multiArrayType"
    assert "cast" in op_types(res.artifact)
    got = predict(res.artifact, {"input": x.numpy()})["output"]
    with torch.no_grad():
        ref = m(x).numpy()
    assert 1e-6 < rel_l2(got, ref) <= 1e-2  # fp16 arithmetic: visibly not fp32, within the fp16 bar


@pytest.mark.parametrize("opts,msg", [
    ({"precision": "int8"}, "fp32 and fp16"),
    ({"min_target": "iOS99"}, "unknown Core ML deployment target"),
    ({"min_target": "iOS14"}, "iOS15"),
])
def test_bad_options_are_user_errors(tmp_path, opts, msg):
    m = TinyClassifier(3).eval()
    with pytest.raises(UserError, match=msg):
        convert(m, torch.randn(1, 3, 8, 8), tmp_path / "x.mlpackage", **opts)


def test_labels_file_is_timm_imagenet_and_unique():
    timm = pytest.importorskip("timm")
    del timm
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gen", Path(__file__).parents[1] / "scripts" / "gen_imagenet_labels.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    labels = load_labels(LABELS_FILE)
    assert labels == gen.imagenet_labels() and len(labels) == 1000 == len(set(labels))


def test_cli_tensor_input_and_min_target_reach_the_converter(tmp_path, capsys):
    # The README and the image-input error name --tensor-input and --min-target: the CLI must take them.
    import json

    from mobiledeploy.cli import main

    rc = main(["export", "mobilenetv2_035", "--target", "coreml", "--batch", "2", "--input-size", "64",
               "--tensor-input", "--min-target", "iOS17", "--out", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    m = json.loads(out)
    assert m["verified"] is True and m["inputs"][0]["kind"] == "tensor" and m["inputs"][0]["shape"] == [2, 3, 64, 64]
    assert "iOS17" in json.dumps(m)
    rc = main(["export", "mobilenetv2_035", "--target", "onnx", "--tensor-input", "--out", str(tmp_path / "o")])
    assert rc == 2 and "Core ML options" in capsys.readouterr().err
    # The reverse: --layout shapes tflite/onnx/ort inputs; a Core ML-only export must not accept it silently.
    rc = main(["export", "mobilenetv2_035", "--target", "coreml", "--layout", "nhwc", "--out", str(tmp_path / "c")])
    assert rc == 2 and "a Core ML model takes an image" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # refused before any work
