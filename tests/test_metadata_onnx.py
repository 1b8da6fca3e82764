"""ONNX metadata_props: what onnxruntime hands an app, kept through the ORT mobile format."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import _appmodel
from mobiledeploy.errors import UserError
from mobiledeploy.exporters import quantize as Q
from mobiledeploy.exporters.onnx_metadata import image_classifier_props, read_onnx_metadata, write_onnx_metadata
from mobiledeploy.exporters.ort import config_path, onnx_to_ort

pytestmark = pytest.mark.timeout(900)


def test_props_round_trip_through_onnxruntime_and_ort(digits, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copyfile(digits.onnx, model)
    props = image_classifier_props(source_model="mobilenetv2_035", input_name="input", layout="nhwc", height=32,
                                   width=32, mean=(0, 0, 0), std=(1, 1, 1), value_range=(0, 255),
                                   normalization_in_graph=True, labels=digits.trained.labels)
    write_onnx_metadata(model, props)
    write_onnx_metadata(model, {"layout": "nhwc", "note": "second write replaces, keeps the rest"})
    meta = read_onnx_metadata(model)
    assert meta["labels"].split("\n") == digits.trained.labels and meta["num_classes"] == "10"
    assert json.loads(meta["input_shape"]) == [1, 32, 32, 3] and meta["note"].startswith("second")
    assert json.loads(meta["mean"]) == [0.0, 0.0, 0.0] and meta["producer"] == "mobiledeploy"
    # metadata changes nothing the graph computes
    np.testing.assert_array_equal(Q.run_batch(model, digits.x_test[:8]), Q.run_batch(digits.onnx, digits.x_test[:8]))

    info = onnx_to_ort(model, tmp_path / "m.ort")
    assert read_onnx_metadata(tmp_path / "m.ort") == meta
    assert config_path(tmp_path / "m.ort").read_text().count("Conv") >= 1
    assert info["operator_config_lines"] and not list(tmp_path.glob("*.tmp"))
    y = Q.run_batch(tmp_path / "m.ort", digits.x_test[:32])
    assert _appmodel.rel_l2(y, digits.torch_test[:32]) <= 1e-5


def test_props_refuse_unknown_layout():
    with pytest.raises(UserError, match="layout"):
        image_classifier_props(source_model="m", input_name="x", layout="hwc", height=1, width=1, mean=(0,), std=(1,))
