"""TFLite image-classifier metadata, read by the official schema bindings and by MediaPipe's ImageClassifier."""

from __future__ import annotations


import numpy as np
import pytest
import torch

import _appmodel
from mobiledeploy.errors import UserError
from mobiledeploy.exporters import quantize as Q
from mobiledeploy.exporters.app_input import wrap_for_app
from mobiledeploy.exporters.tflite_metadata import (ImageClassifierMetadata, associated_files, metadata_buffer,
                                                    write_metadata)

pytestmark = pytest.mark.timeout(900)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def _official(buf: bytes):
    """The metadata as the official generated bindings (shipped in mediapipe) parse it."""
    schema = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated")
    raw = metadata_buffer(buf)
    assert raw is not None and raw[4:8] == b"M001"
    return schema, schema.ModelMetadataT.InitFromPackedBuf(bytearray(raw), 0)


def test_metadata_parses_with_official_schema(digits, tmp_path):
    labels = digits.trained.labels
    meta = ImageClassifierMetadata("digits", 32, 32, [0.0], [1.0], labels=labels, version="1")
    out = write_metadata(digits.tflite, meta, tmp_path / "m.tflite")
    buf = out.read_bytes()
    schema, md = _official(buf)
    assert md.name == b"digits" and md.minParserVersion == b"1.0.0"
    (sg,) = md.subgraphMetadata
    (inp,), (outp,) = sg.inputTensorMetadata, sg.outputTensorMetadata
    assert inp.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert inp.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    size = inp.content.contentProperties.defaultSize
    assert (size.width, size.height) == (32, 32)
    (unit,) = inp.processUnits
    assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    assert list(unit.options.mean) == [0.0] and list(unit.options.std) == [1.0]
    assert list(inp.stats.min) == [0.0] and list(inp.stats.max) == [255.0]
    (f,) = outp.associatedFiles
    assert f.name == b"labels.txt" and f.type == schema.AssociatedFileType.TENSOR_AXIS_LABELS
    assert associated_files(buf) == {"labels.txt": ("\n".join(labels) + "\n").encode()}
    # Metadata changes nothing the interpreter computes.
    x = digits.x_test[:8]
    np.testing.assert_array_equal(Q.run_batch(out, x), Q.run_batch(digits.tflite, x))


def test_rewriting_metadata_replaces_it(digits, tmp_path):
    out = write_metadata(digits.tflite, ImageClassifierMetadata("a", 32, 32, [0.0], [255.0], labels=list("abcdefghij")),
                         tmp_path / "m.tflite")
    write_metadata(out, ImageClassifierMetadata("b", 32, 32, [127.5], [127.5], labels=digits.trained.labels))
    buf = out.read_bytes()
    _, md = _official(buf)
    assert md.name == b"b"
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    assert [m.name for m in model.metadata].count(b"TFLITE_METADATA") == 1
    assert associated_files(buf)["labels.txt"].decode().split() == digits.trained.labels
    assert not list(tmp_path.glob("*.tmp"))


def test_metadata_refuses_bad_input(digits, tmp_path):
    with pytest.raises(UserError, match="std"):
        ImageClassifierMetadata("x", 8, 8, [0.0], [0.0])
    with pytest.raises(UserError, match="TFL3"):
        p = tmp_path / "x.tflite"
        p.write_bytes(b"\0" * 64)
        write_metadata(p, ImageClassifierMetadata("x", 8, 8, [0.0], [1.0]))


def _photo(name: str, size: int) -> np.ndarray:
    from skimage import data

    return (Q.resize_center(getattr(data, name)(), size, size) * 255).round().astype(np.uint8)


@pytest.mark.slow
def test_mediapipe_image_classifier_matches_pytorch_top5(tmp_path):
    """The real client: MediaPipe Tasks loads our NHWC fp32 .tflite with our metadata and classifies photos."""
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    from mobiledeploy.exporters.labels import read_labels as load_labels
    from mobiledeploy.models import create_model

    from conftest import randomize_bn

    size = 128
    torch.manual_seed(0)
    model = randomize_bn(create_model("mobilenetv2_035"), seed=1).eval()
    with torch.no_grad():  # spread the logits so top-5 is decided by the features, not by ties
        model.classifier.weight.normal_(0, 0.1)
    labels = load_labels()
    wrapper, spec, example = wrap_for_app(model, size, size, "nhwc")
    assert spec.shape == [1, size, size, 3]
    tfl = _appmodel.export(wrapper, example, "tflite", tmp_path / "mnv2.tflite", "mobilenetv2_035")
    mean, std = spec.pixel_mean_std()
    assert mean == [0.0] * 3 and std == [1.0] * 3  # MediaPipe feeds the pixels as they are
    write_metadata(tfl, ImageClassifierMetadata("mobilenetv2_035", size, size, mean[:1], std[:1], labels=labels))

    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(tfl)), max_results=5)
    with vision.ImageClassifier.create_from_options(opts) as clf:
        for name in PHOTOS:
            img = _photo(name, size)
            with torch.no_grad():
                logits = wrapper(torch.from_numpy(img[None].astype(np.float32)))[0].numpy()
            top5 = np.argsort(-logits)[:5]
            cats = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=img)).classifications[0].categories
            assert [c.index for c in cats] == top5.tolist(), name
            assert [c.category_name for c in cats] == [labels[i] for i in top5], name
            np.testing.assert_allclose([c.score for c in cats], logits[top5], rtol=1e-4, atol=1e-4)
