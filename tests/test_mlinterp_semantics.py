"""MIL semantics the interpreter must get right, on programs built with coremltools' MIL builder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from mobiledeploy.exporters.mlinterp import (  # noqa: E402
    AmbiguousOpError, CoreMLModel, MLProgram, ProgramTypeError, UnsupportedOpError, predict)


def _save(prog, path, **kw):
    ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                    compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY, **kw)
    ml.save(str(path))
    return path


def _program(shape, body):
    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS16)
    def prog(x):
        return body(x)

    return prog


def test_fractional_upsample_is_refused_as_ambiguous(tmp_path):
    path = _save(_program((1, 2, 3, 3), lambda x: mb.upsample_nearest_neighbor(
        x=x, scale_factor_height=7 / 3, scale_factor_width=7 / 3)), tmp_path / "up.mlpackage")
    with pytest.raises(AmbiguousOpError, match="upsample_nearest_neighbor.*fractional"):
        predict(path, {"x": np.ones((1, 2, 3, 3), np.float32)})


def test_unknown_op_is_refused_at_load_naming_it(tmp_path):
    # scatter_along_axis is an op the interpreter does not implement (cumsum, used here before, now is)
    idx = np.zeros((1, 2), np.int32)
    path = _save(_program((1, 4), lambda x: mb.scatter_along_axis(data=x, indices=idx, updates=np.ones((1, 2), np.float32),
                                                                 axis=1)), tmp_path / "scatter.mlpackage")
    with pytest.raises(UnsupportedOpError, match="'scatter_along_axis'"):
        MLProgram(path)


def test_fp16_values_are_rounded_as_declared(tmp_path):
    def body(x):
        h = mb.cast(x=x, dtype="fp16")
        y = mb.add(x=mb.mul(x=h, y=np.float16(3.0)), y=np.float16(1e-3))
        return mb.cast(x=y, dtype="fp32")

    path = _save(_program((64,), body), tmp_path / "fp16.mlpackage")
    x = np.random.default_rng(0).normal(size=64).astype(np.float32) * 10
    got = predict(path, {"x": x})
    out = next(iter(got.values()))
    h = x.astype(np.float16)
    want = ((h.astype(np.float32) * 3).astype(np.float16).astype(np.float32) + np.float32(np.float16(1e-3)))
    np.testing.assert_array_equal(out, want.astype(np.float16).astype(np.float32))
    assert not np.array_equal(out, (x * 3 + 1e-3).astype(np.float32))  # the fp16 rounding is visible


@pytest.mark.parametrize("pad_type", ["same", "same_lower"])
def test_conv_same_padding(tmp_path, pad_type):
    w = np.random.default_rng(1).normal(size=(3, 2, 4, 3)).astype(np.float32)
    path = _save(_program((1, 2, 7, 8), lambda x: mb.conv(x=x, weight=w, strides=[2, 3], pad_type=pad_type)),
                 tmp_path / "conv.mlpackage")
    x = torch.randn(1, 2, 7, 8)
    # TF-style SAME: out = ceil(in / stride); total pad split low/high (same) or high/low (same_lower).
    pads = []
    for d, k, s in ((7, 4, 2), (8, 3, 3)):
        total = max((-(-d // s) - 1) * s + k - d, 0)
        lo, hi = total // 2, total - total // 2
        pads.append((lo, hi) if pad_type == "same" else (hi, lo))
    ref = F.conv2d(F.pad(x, [*pads[1], *pads[0]]), torch.from_numpy(w), stride=(2, 3))
    got = next(iter(predict(path, {"x": x.numpy()}).values()))
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-6, atol=1e-6)


def test_slicing_and_interleaved_concat(tmp_path):
    def body(x):
        a = mb.slice_by_index(x=x, begin=[0, 1, 0, 4], end=[1, 3, 5, 0], stride=[1, 1, 2, -1],
                              end_mask=[False, False, False, True], squeeze_mask=[True, False, False, False])
        b = mb.slice_by_size(x=x, begin=[0, 0, 1, 2], size=[1, 2, -1, 3])
        b = mb.reshape(x=b, shape=[2, 4, 3])
        c = mb.concat(values=[mb.slice_by_size(x=a, begin=[0, 0, 0], size=[2, 3, 3]),
                              mb.slice_by_size(x=b, begin=[0, 0, 0], size=[2, 3, 3])], axis=1, interleave=True)
        return c

    path = _save(_program((1, 4, 5, 6), body), tmp_path / "slice.mlpackage")
    x = np.arange(120, dtype=np.float32).reshape(1, 4, 5, 6)
    a = x[0, 1:3, 0:5:2, 4::-1]
    b = x[:, 0:2, 1:, 2:5].reshape(2, 4, 3)
    a3, b3 = a[:, :3, :3], b[:, :3, :3]
    want = np.stack([a3, b3], 2).reshape(2, 6, 3)
    np.testing.assert_array_equal(next(iter(predict(path, {"x": x}).values())), want)


def test_declared_shape_mismatch_is_an_error(tmp_path):
    path = _save(_program((1, 2, 4, 4), lambda x: mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2],
                                                               pad_type="valid")), tmp_path / "pool.mlpackage")
    from coremltools.proto import Model_pb2

    model = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(model.read_bytes())
    fn = spec.mlProgram.functions["main"]
    for op in fn.block_specializations[fn.opset].operations:
        if op.type == "avg_pool":
            op.outputs[0].type.tensorType.dimensions[3].constant.size = 3
    model.write_bytes(spec.SerializeToString())
    with pytest.raises(ProgramTypeError, match="declares"):
        predict(path, {"x": np.ones((1, 2, 4, 4), np.float32)})


def test_image_input_and_classifier_outputs(tmp_path):
    w = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)

    # Through the torch frontend, which is how our exports add the ImageType preprocessing ops.
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.softmax(x.mean((2, 3)) @ torch.from_numpy(w).T, -1)

    ep = torch.export.export(M(), (torch.zeros(1, 3, 2, 2),)).run_decompositions({})
    labels = ["a", "b", "c", "d"]
    model = ct.convert(ep, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32,
                       inputs=[ct.ImageType(name="image", shape=(1, 3, 2, 2), scale=1 / 127.5, bias=[-1, -0.5, 0])],
                       classifier_config=ct.ClassifierConfig(labels))
    model.save(str(tmp_path / "cls.mlpackage"))
    m = CoreMLModel(tmp_path / "cls.mlpackage")
    assert m.class_labels == labels
    pix = np.random.default_rng(3).integers(0, 256, (2, 2, 3)).astype(np.uint8)  # H×W×RGB, as a photo
    out = m.predict({"image": pix})
    x = torch.from_numpy(pix.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 + torch.tensor([-1, -0.5, 0]).view(1, 3, 1, 1)
    ref = M()(x).numpy()
    probs = [k for k in out if k != "classLabel"][0]
    np.testing.assert_allclose(out[probs], ref, rtol=1e-6, atol=1e-7)
    assert out["classLabel"][0] == labels[int(ref.argmax())]
    with pytest.raises(Exception, match=r"\[0, 255\]"):
        m.predict({"image": pix.astype(np.float32) * 2})
