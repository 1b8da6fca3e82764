"""Proof that interpreter-based verification checks something: mutated programs must fail it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

ct = pytest.importorskip("coremltools")
from coremltools.proto import Model_pb2  # noqa: E402

from _coreml_util import convert, image_parity, random_pixels  # noqa: E402
from test_coreml_export import TinyClassifier  # noqa: E402

from mobiledeploy.exporters.mlinterp import MLInterpError  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 16  # DFC gate: 8×8 map, pooled to 4×4, upsampled ×2 (an integer upsample in the program)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    torch.manual_seed(0)
    m = TinyClassifier(10).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    d = tmp_path_factory.mktemp("mut")
    return m, {p: convert(m, x, d / f"{p}.mlpackage", precision=p, labels=None) for p in ("fp32", "fp16")}


def outcome(path, m, res, precision) -> str:
    """The verification a user gets (logits vs PyTorch on random pixels): "pass", "numbers" or the error."""
    try:
        rel, same, _ = image_parity(path, m, res, [random_pixels(SIZE, s) for s in range(3)], MEAN, STD)
    except MLInterpError as e:
        return type(e).__name__
    return "pass" if rel <= (1e-5 if precision == "fp32" else 1e-2) and same else "numbers"


def _copy(src, dst):
    shutil.copytree(src, dst)
    f = dst / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(f.read_bytes())
    fn = spec.mlProgram.functions["main"]
    return spec, fn.block_specializations[fn.opset].operations, f


def _const(ops, name):
    return next(op for op in ops if op.type == "const" and op.outputs[0].name == name)


def _arg(op, key):
    return op.inputs[key].arguments[0].name


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_unmutated_artifact_verifies(artifacts, precision):
    m, res = artifacts
    assert outcome(res[precision].artifact, m, res[precision], precision) == "pass"


def test_perturbed_weight_fails(artifacts, tmp_path):
    m, res = artifacts
    spec, ops, f = _copy(res["fp32"].artifact, tmp_path / "w.mlpackage")
    conv = [op for op in ops if op.type == "conv"][1]
    blob = _const(ops, _arg(conv, "weight")).attributes["val"].blobFileValue
    wfile = tmp_path / "w.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(wfile.read_bytes())
    start = int(np.frombuffer(bytes(data[blob.offset + 16 : blob.offset + 24]), "<u8")[0])
    w = np.frombuffer(bytes(data[start : start + 4]), np.float32)[0]
    data[start : start + 4] = np.float32(w + 0.25).tobytes()  # one weight of one conv
    wfile.write_bytes(bytes(data))
    assert outcome(tmp_path / "w.mlpackage", m, res["fp32"], "fp32") == "numbers"


def test_changed_conv_padding_fails(artifacts, tmp_path):
    m, res = artifacts
    spec, ops, f = _copy(res["fp32"].artifact, tmp_path / "p.mlpackage")
    conv = next(op for op in ops if op.type == "conv" and list(_const(ops, _arg(op, "pad")).attributes["val"]
                                                                .immediateValue.tensor.ints.values) == [1, 1, 1, 1])
    vals = _const(ops, _arg(conv, "pad")).attributes["val"].immediateValue.tensor.ints.values
    vals[:] = [2, 0, 2, 0]  # same output shape, shifted window
    f.write_bytes(spec.SerializeToString())
    assert outcome(tmp_path / "p.mlpackage", m, res["fp32"], "fp32") == "numbers"


@pytest.mark.parametrize("new_scale,why", [(3.0, "ProgramTypeError"), (2.5, "AmbiguousOpError")])
def test_changed_upsample_scale_fails(artifacts, tmp_path, new_scale, why):
    m, res = artifacts
    spec, ops, f = _copy(res["fp32"].artifact, tmp_path / "u.mlpackage")
    up = next(op for op in ops if op.type == "upsample_nearest_neighbor")
    tv = _const(ops, _arg(up, "scale_factor_height")).attributes["val"].immediateValue.tensor
    field = tv.WhichOneof("value")
    if field == "ints" and new_scale != int(new_scale):
        pytest.fail("the scale is an int32 const: a fractional value cannot be written into it")
    getattr(tv, field).values[:] = [type(getattr(tv, field).values[0])(new_scale)]
    f.write_bytes(spec.SerializeToString())
    assert outcome(tmp_path / "u.mlpackage", m, res["fp32"], "fp32") == why


def test_dropped_cast_fails(artifacts, tmp_path):
    m, res = artifacts
    spec, ops, f = _copy(res["fp16"].artifact, tmp_path / "c.mlpackage")
    cast = next(op for op in ops if op.type == "cast")
    src, dst = _arg(cast, "x"), cast.outputs[0].name
    for op in ops:
        for arg in op.inputs.values():
            for b in arg.arguments:
                if b.name == dst:
                    b.name = src
    ops.remove(cast)
    f.write_bytes(spec.SerializeToString())
    assert outcome(tmp_path / "c.mlpackage", m, res["fp16"], "fp16") == "ProgramTypeError"
