"""Ops that segmentation and detection models need, and the issue-18 fixes, on MIL programs vs torch/numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from mobiledeploy.exporters.mlinterp import (  # noqa: E402
    AmbiguousOpError, MLProgram, ProgramTypeError, UnsupportedOpError, predict)

RNG = np.random.default_rng(0)


def _run(tmp_path, shapes, body, feeds, ios=ct.target.iOS16, dtypes=None):
    """Build a MIL program of `body` for inputs `shapes`, save it unoptimised, run it; outputs in order."""
    from coremltools.converters.mil.mil import types

    specs = [mb.TensorSpec(shape=s, dtype=(dtypes or {}).get(i, types.fp32)) for i, s in enumerate(shapes)]

    if len(specs) == 1:  # mb.program reads the arity off the function, so no *args
        @mb.program(input_specs=specs, opset_version=ios)
        def prog(x0):
            return body(x0)
    else:
        @mb.program(input_specs=specs, opset_version=ios)
        def prog(x0, x1):
            return body(x0, x1)

    path = tmp_path / "p.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ios, compute_precision=ct.precision.FLOAT32,
               pass_pipeline=ct.PassPipeline.EMPTY).save(str(path))
    names = list(MLProgram(path).inputs)
    out = predict(path, dict(zip(names, feeds)))
    return list(out.values())


def _x(*shape):
    return RNG.normal(size=shape).astype(np.float32)


# --- the three bugs ------------------------------------------------------------------------------------

def test_thresholded_relu_keeps_the_threshold_itself(tmp_path):
    x = np.array([[[0.5, 1.0, 1.5, -2.0]]], np.float32)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.thresholded_relu(x=a, alpha=1.0), [x])
    np.testing.assert_array_equal(got, [[[0.0, 1.0, 1.5, 0.0]]])


@pytest.mark.parametrize("axis,want", [(-1, (6, 4)), (-2, (2, 12)), (-3, (1, 24)), (0, (1, 24)), (3, (24, 1))])
def test_flatten2d_negative_axis_counts_from_rank(tmp_path, axis, want):
    x = _x(2, 3, 4)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.flatten2d(x=a, axis=axis), [x])
    assert got.shape == want
    np.testing.assert_array_equal(got.reshape(-1), x.reshape(-1))


def test_flatten2d_rank1_axis_minus_one(tmp_path):
    x = _x(4)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.flatten2d(x=a, axis=-1), [x])
    assert got.shape == (1, 4)


@pytest.mark.parametrize("op", ["reduce_argmax", "reduce_argmin"])
def test_ios17_argmax_honours_output_dtype(tmp_path, op):
    x = _x(3, 5)
    # Core ML has no uint16 model outputs, so the converter casts the result; look at the op's own value.
    _run(tmp_path, [x.shape], lambda a: getattr(mb, op)(x=a, axis=1, output_dtype="uint16"), [x], ios=ct.target.iOS17)
    got = _op_output(tmp_path / "p.mlpackage", op, x)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, getattr(np, op[7:])(x, axis=1))


def _op_output(path, op_type, x, k: int = 0):
    """The k-th output value of the first `op_type` op of the program, on input x."""
    prog = MLProgram(path)
    env = prog.run({next(iter(prog.inputs)): x}, keep=True)
    step = next(s for s in prog.steps if s.op_type == op_type)
    return env[step.outputs[k][0]]


# --- iOS17 type rules --------------------------------------------------------------------------------------

def test_ios17_conv_takes_fp16_weights_with_fp32_input(tmp_path):
    w = _x(4, 3, 3, 3).astype(np.float16)
    x = _x(1, 3, 6, 6)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.conv(x=a, weight=w, bias=np.ones(4, np.float16)), [x],
                  ios=ct.target.iOS17)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w.astype(np.float32)), torch.ones(4))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_ios17_linear_and_matmul_mixed_dtypes(tmp_path):
    w = _x(5, 4).astype(np.float16)
    x = _x(2, 4)

    def body(a):
        return mb.linear(x=a, weight=w), mb.matmul(x=a, y=w.T.copy())

    lin, mm = _run(tmp_path, [x.shape], body, [x], ios=ct.target.iOS17)
    ref = x @ w.astype(np.float32).T
    np.testing.assert_allclose(lin, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mm, ref, rtol=1e-5, atol=1e-6)


def test_ios17_norms_take_fp16_parameters(tmp_path):
    x = _x(1, 3, 4, 4)
    g, b = (RNG.normal(size=3).astype(np.float16) for _ in range(2))
    m, v = RNG.normal(size=3).astype(np.float16), (RNG.random(3) + 0.5).astype(np.float16)

    def body(a):
        return mb.batch_norm(x=a, mean=m, variance=v, gamma=g, beta=b), mb.instance_norm(x=a, gamma=g, beta=b)

    bn, inn = _run(tmp_path, [x.shape], body, [x], ios=ct.target.iOS17)
    f = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    ref_bn = F.batch_norm(torch.from_numpy(x), f(m), f(v), f(g), f(b), eps=1e-5)
    ref_in = F.instance_norm(torch.from_numpy(x), weight=f(g), bias=f(b), eps=1e-5)
    np.testing.assert_allclose(bn, ref_bn.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inn, ref_in.numpy(), rtol=1e-5, atol=1e-5)


def test_mixed_dtypes_stay_an_error_before_ios17(tmp_path):
    from mobiledeploy.exporters.mlinterp.ops.conv import conv
    from mobiledeploy.exporters.mlinterp.registry import running_ios

    x, w = _x(1, 3, 4, 4), _x(2, 3, 1, 1).astype(np.float16)
    with running_ios(16), pytest.raises(ProgramTypeError, match="share one type"):
        conv(x=x, weight=w)
    with running_ios(17):
        assert conv(x=x, weight=w).dtype == np.float32


def test_ios17_reshape_matches_zeros_from_the_right(tmp_path):
    x = _x(2, 50)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.reshape(x=a, shape=[1, 0, -1, 0]), [x], ios=ct.target.iOS17)
    assert got.shape == (1, 1, 2, 50)
    from mobiledeploy.exporters.mlinterp.ops.tensor import reshape
    from mobiledeploy.exporters.mlinterp.registry import running_ios

    with running_ios(16), pytest.raises(ProgramTypeError, match="before iOS17"):
        reshape(x, np.array([1, 0, -1, 0]))


def test_unimplemented_op_is_reported_as_such_whatever_its_arguments(tmp_path, monkeypatch):
    """An unknown op is refused as such before its arguments are checked (the arity check used to win)."""
    from mobiledeploy.exporters.mlinterp import program as program_module
    from mobiledeploy.exporters.mlinterp.registry import OPS, _ensure_loaded

    x = _x(1, 2, 9)
    ref = _x(1, 2, 3, 3)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape), mb.TensorSpec(shape=ref.shape)],
                opset_version=ct.target.iOS16)
    def prog(a, b):
        # reshape_like's tuple inputs carry several arguments each
        return mb.reshape_like(ref_tensors=(b, b), begins=(0, 2), ends=(2, 4), end_masks=(False, True), x=a)

    path = tmp_path / "rl.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY).save(str(path))
    want = x.reshape(1, 2, 3, 3)
    np.testing.assert_array_equal(next(iter(predict(path, {"a": x, "b": ref}).values())), want)  # implemented now
    # As an unknown op with single-argument inputs only, it must still be reported as not implemented.
    _ensure_loaded()
    monkeypatch.delitem(OPS, "reshape_like")
    monkeypatch.setattr(program_module, "VARIADIC", {"values"})
    with pytest.raises(UnsupportedOpError, match="'reshape_like' is not implemented"):
        MLProgram(path)


# --- new ops ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride,pad,dil,groups,out_pad", [
    (2, 1, 1, 1, 1), (2, 0, 1, 2, 0), (3, 2, 2, 1, 2), (1, 1, 1, 1, 0)])
def test_conv_transpose_matches_torch(tmp_path, stride, pad, dil, groups, out_pad):
    w = _x(4, 6 // groups, 3, 3)
    bias = _x(6)
    x = _x(1, 4, 5, 7)
    ref = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), stride, pad,
                             out_pad, groups, dil).numpy()
    # output_padding extends the window past pad-after, as TensorFlow's output_shape does
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.conv_transpose(
        x=a, weight=w, bias=bias, pad_type="custom", pad=[pad] * 4, strides=[stride] * 2, dilations=[dil] * 2,
        groups=groups, output_shape=list(ref.shape)), [x])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pad_type", ["same", "valid"])
def test_conv_transpose_same_and_valid(tmp_path, pad_type):
    w, x = _x(2, 3, 4, 3), _x(1, 2, 4, 5)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.conv_transpose(x=a, weight=w, pad_type=pad_type,
                                                                 strides=[2, 2]), [x])
    full = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2).numpy()
    if pad_type == "valid":
        np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-5)
    else:  # out = in·stride; the excess (k − s) is dropped half before (rounded down), half after
        assert got.shape == (1, 3, 8, 10)
        np.testing.assert_allclose(got, full[..., 1:9, 0:10], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_bilinear_matches_torch(tmp_path, align, scale):
    x = _x(1, 3, 5, 4)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.upsample_bilinear(
        x=a, scale_factor_height=scale, scale_factor_width=scale, align_corners=align), [x])
    ref = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode="bilinear", align_corners=align)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,align", [("UNALIGN_CORNERS", False), ("STRICT_ALIGN_CORNERS", True)])
@pytest.mark.parametrize("size", [(9, 7), (3, 2), (17, 13)])
def test_resize_bilinear_matches_torch(tmp_path, mode, align, size):
    x = _x(2, 3, 6, 5)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.resize_bilinear(
        x=a, target_size_height=size[0], target_size_width=size[1], sampling_mode=mode), [x])
    ref = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=align)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_resize_bilinear_default_and_offset_grids(tmp_path):
    x = np.array([0.0, 1.0], np.float32).reshape(1, 1, 1, 2)

    def body(a):
        return (mb.resize_bilinear(x=a, target_size_height=1, target_size_width=5, sampling_mode="DEFAULT"),
                mb.resize_bilinear(x=a, target_size_height=1, target_size_width=5, sampling_mode="OFFSET_CORNERS"))

    default, offset = _run(tmp_path, [x.shape], body, [x])
    np.testing.assert_allclose(default.reshape(-1), [0, 0.4, 0.8, 1, 1], atol=1e-7)  # the spec's examples
    np.testing.assert_allclose(offset.reshape(-1), [0.1, 0.3, 0.5, 0.7, 0.9], atol=1e-7)


def test_ios17_resize_linear_and_nearest(tmp_path):
    x = _x(1, 2, 4, 6)

    def body(a):
        return (mb.resize(x=a, shape=[1, 8, 12], resized_dims=np.uint32(2), interpolation_mode="LINEAR",
                          sampling_mode="UNALIGN_CORNERS"),
                mb.resize(x=a, shape=[12, 0], resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR",
                          sampling_mode="ALIGN_CORNERS"))

    lin, near = _run(tmp_path, [x.shape], body, [x], ios=ct.target.iOS17)
    ref = F.interpolate(torch.from_numpy(x), size=(8, 12), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(lin, ref.numpy(), rtol=1e-5, atol=1e-6)
    rows = np.rint(np.arange(12) * 3 / 11).astype(int)  # align-corners grid 0, 3/11, …, 3, nearest row
    np.testing.assert_array_equal(near, x[:, :, rows, :])


def test_nearest_resize_halfway_is_refused(tmp_path):
    x = _x(1, 1, 2, 2)
    with pytest.raises(AmbiguousOpError, match="halfway"):
        _run(tmp_path, [x.shape], lambda a: mb.resize(x=a, shape=[4, 4], resized_dims=np.uint32(2),
                                                      interpolation_mode="NEAREST_NEIGHBOR"), [x],
             ios=ct.target.iOS17)


@pytest.mark.parametrize("ascending", [False, True])
def test_topk_and_argsort_match_torch(tmp_path, ascending):
    x = _x(3, 7, 5)

    def body(a):
        v, i = mb.topk(x=a, k=3, axis=1, ascending=ascending)
        return v, i, mb.argsort(x=a, axis=-1, ascending=ascending)

    v, i, s = _run(tmp_path, [x.shape], body, [x])
    tv, ti = torch.topk(torch.from_numpy(x), 3, dim=1, largest=not ascending)
    np.testing.assert_array_equal(v, tv.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    assert i.dtype == np.int32 and s.dtype == np.int32
    np.testing.assert_array_equal(s, torch.argsort(torch.from_numpy(x), -1, descending=not ascending).numpy())


def test_topk_ios17_uint16_indices_and_all_k(tmp_path):
    x = _x(2, 6)
    _run(tmp_path, [x.shape], lambda a: mb.topk(x=a, k=6, output_indices_dtype="uint16")[1], [x], ios=ct.target.iOS17)
    got = _op_output(tmp_path / "p.mlpackage", "topk", x, 1)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, np.argsort(-x, axis=-1, kind="stable"))
    from mobiledeploy.exporters.mlinterp.ops.sorting import topk

    v, i = topk(x, k=np.int32(-1), output_indices_dtype="uint16")  # k = −1: all (coremltools cannot type it)
    assert i.dtype == np.uint16
    np.testing.assert_array_equal(i, np.argsort(-x, axis=-1, kind="stable"))
    np.testing.assert_array_equal(v, -np.sort(-x, axis=-1))


def test_l2_norm_over_last_three_dims(tmp_path):
    x = _x(2, 3, 4, 5)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.l2_norm(x=a, epsilon=1e-6), [x])
    ref = x / np.sqrt((x.astype(np.float64) ** 2).sum((1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_pixel_unshuffle_space_to_depth_depth_to_space(tmp_path):
    x = _x(1, 3, 4, 6)

    def body(a):
        s2d = mb.space_to_depth(x=a, block_size=2)
        return mb.pixel_unshuffle(x=a, downscale_factor=np.uint32(2)), s2d, mb.depth_to_space(x=s2d, block_size=2)

    pu, s2d, back = _run(tmp_path, [x.shape], body, [x])
    np.testing.assert_array_equal(pu, F.pixel_unshuffle(torch.from_numpy(x), 2).numpy())
    np.testing.assert_array_equal(back, x)
    # TensorFlow's order: out channel (i·b + j)·C + c holds x[c, h·b + i, w·b + j]
    assert s2d[0, (1 * 2 + 0) * 3 + 2, 1, 2] == x[0, 2, 1 * 2 + 1, 2 * 2 + 0]


def test_einsum_the_mil_pattern(tmp_path):
    x, y = _x(2, 3, 4, 5), _x(2, 5, 1, 6)
    (got,) = _run(tmp_path, [x.shape, y.shape], lambda a, b: mb.einsum(values=(a, b), equation="nchw,nwhu->nchu"),
                  [x, y])
    np.testing.assert_allclose(got, np.einsum("nchw,nwhu->nchu", x, np.broadcast_to(y, (2, 5, 4, 6))), rtol=1e-5,
                               atol=1e-6)


def test_reverse_and_crop(tmp_path):
    x = _x(1, 2, 5, 6)

    def body(a):
        return mb.reverse(x=a, axes=[1, -1]), mb.crop(x=a, crop_height=[1, 2], crop_width=[0, 3])

    rev, cr = _run(tmp_path, [x.shape], body, [x])
    np.testing.assert_array_equal(rev, x[:, ::-1, :, ::-1])
    np.testing.assert_array_equal(cr, x[..., 1:3, 0:3])


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_resample_bilinear_matches_grid_sample(tmp_path, padding, align):
    x = _x(2, 3, 5, 7)
    grid = RNG.uniform(-1.3, 1.3, size=(2, 4, 6, 2)).astype(np.float32)
    mil_pad = {"zeros": "constant", "border": "border", "reflection": "reflection"}[padding]
    if padding == "reflection" and not align:
        pytest.skip("grid_sample's reflection without align_corners reflects about the pixel edges; MIL's does not")
    (got,) = _run(tmp_path, [x.shape, grid.shape], lambda a, g: mb.resample(
        x=a, coordinates=g, sampling_mode="bilinear", padding_mode=mil_pad, padding_value=0.0,
        coordinates_mode="normalized_minus_one_to_one", align_corners=align), [x, grid])
    ref = F.grid_sample(torch.from_numpy(x), torch.from_numpy(grid), "bilinear", padding, align_corners=align)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_crop_resize_align_corners_boxes(tmp_path):
    x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    boxes = np.array([[1, 1, 2, 2], [0, 0, 3, 3]], np.float32)

    def body(a):
        return mb.crop_resize(x=a, boxes=boxes, box_indices=np.array([1, 0], np.int32), target_height=3,
                              target_width=3, sampling_mode="ALIGN_CORNERS")

    (got,) = _run(tmp_path, [x.shape], body, [x], ios=ct.target.iOS17)
    g0, g1 = np.linspace(1, 2, 3), np.linspace(0, 3, 3)
    want0 = 16 + 4 * g0[:, None] + g0[None, :]  # box 0 on image 1: x[1, 0, r, c] = 16 + 4r + c (linear in r, c)
    want1 = 4 * g1[:, None] + g1[None, :]  # box 1 on image 0
    np.testing.assert_allclose(got[0, 0], want0, rtol=1e-6)
    np.testing.assert_allclose(got[1, 0], want1, rtol=1e-6)


def test_softplus_parametric(tmp_path):
    x = _x(1, 3, 4)
    al, be = np.array([1.0, 2.0, 0.5], np.float32), np.array([0.5, 1.0, 3.0], np.float32)
    (got,) = _run(tmp_path, [x.shape], lambda a: mb.softplus_parametric(x=a, alpha=al, beta=be), [x])
    ref = al[None, :, None] * np.log1p(np.exp(be[None, :, None] * x.astype(np.float64)))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
