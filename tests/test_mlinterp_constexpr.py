"""Compressed weights in the Core ML interpreter: the constexpr_* ops against the MIL spec's own examples,
against coremltools' decompression of real compressed programs, and against PyTorch fp32."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

ct = pytest.importorskip("coremltools")
opt = pytest.importorskip("coremltools.optimize.coreml")

from _coreml_util import convert, rel_l2  # noqa: E402

from mobiledeploy.exporters.mlinterp import OPS, MLProgram, ProgramTypeError  # noqa: E402
from mobiledeploy.exporters.mlinterp.registry import get_op  # noqa: E402
from mobiledeploy.exporters.mlinterp.values import SUB_BYTE, unpack_bits  # noqa: E402

UINT1, UINT2, UINT4, INT4 = SUB_BYTE[37], SUB_BYTE[36], SUB_BYTE[35], SUB_BYTE[25]


def op(name: str):
    get_op(name, "test")  # loads the op modules
    return OPS[name]


# --- the spec's examples (coremltools mil/ops/defs/iOS16/constexpr_ops.py, iOS18/compression.py) -----


def test_packed_bits_are_read_lsb_first():
    # iOS16 lut_to_dense doc: n_bits = 2, shape (5,): byte 0 = i3 i2 i1 i0 (MSB → LSB), byte 1 = … i4.
    packed = np.array([0b01_10_11_00, 0b000000_11], np.uint8)
    assert unpack_bits(packed, 2, 5).tolist() == [0, 3, 2, 1, 3]
    from coremltools.optimize._utils import pack_elements_into_bits

    rng = np.random.default_rng(0)
    for bits in (1, 2, 3, 4, 6, 8):
        vals = rng.integers(0, 1 << bits, 37).astype(np.uint8)
        assert unpack_bits(pack_elements_into_bits(vals, bits), bits, 37).tolist() == vals.tolist()
    signed = rng.integers(-8, 8, 21).astype(np.int8)
    assert unpack_bits(pack_elements_into_bits(signed, 4), 4, 21, signed=True).tolist() == signed.tolist()


def test_lut_to_dense_ios16():
    lut = np.array([-1.5, 0.0, 2.0, 7.0], np.float32)
    out = op("constexpr_lut_to_dense")(indices=np.array([0b01_10_11_00, 0b000000_11], np.uint8), lut=lut,
                                       shape=np.array([5], np.uint32))
    np.testing.assert_array_equal(out, [-1.5, 7.0, 2.0, 0.0, 7.0])
    with pytest.raises(ProgramTypeError, match="index bytes"):  # M = ceil(n_bits · count / 8) = 2
        op("constexpr_lut_to_dense")(indices=np.zeros(3, np.uint8), lut=lut, shape=np.array([5], np.uint32))
    with pytest.raises(ProgramTypeError, match="2, 4, 16, 64 or 256"):
        op("constexpr_lut_to_dense")(indices=np.zeros(2, np.uint8), lut=np.zeros(8, np.float32),
                                     shape=np.array([5], np.uint32))


def test_lut_to_dense_ios18_per_group_case_1():
    indices = np.array([2, 3, 3, 0, 1, 0, 3, 0, 2, 1, 0, 3]).astype(UINT2).reshape(6, 2)
    lut = np.array([1.0, 5.0, 9.0, 13.0, 2.0, 10.0, 18.0, 26.0], np.float16).reshape(2, 1, 4, 1)
    out = op("constexpr_lut_to_dense")(indices=indices, lut=lut)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, [[9, 13], [13, 1], [5, 1], [26, 2], [18, 10], [2, 26]])
    with pytest.raises(ProgramTypeError, match="entries for uint4"):
        op("constexpr_lut_to_dense")(indices=indices.astype(UINT4), lut=lut)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_lut_to_dense_ios18_vectors_case_2(axis):
    indices = np.array([[[0, 0], [1, 0]], [[1, 1], [0, 0]]]).astype(UINT1)
    a, b = [10, 11, 12], [20, 21, 22]
    lut = np.array([a, b], np.int8).reshape(1, 1, 1, 2, 3)
    out = op("constexpr_lut_to_dense")(indices=indices, lut=lut, vector_axis=np.int32(axis))
    if axis == 1:  # Case 2.1: each index becomes 3 rows
        want = [[[a[0], a[0]], [a[1], a[1]], [a[2], a[2]], [b[0], a[0]], [b[1], a[1]], [b[2], a[2]]],
                [[b[0], b[0]], [b[1], b[1]], [b[2], b[2]], [a[0], a[0]], [a[1], a[1]], [a[2], a[2]]]]
    else:  # Case 2.2: each index becomes 3 consecutive values of the last axis
        want = [[a + a, b + a], [b + b, a + a]]
    np.testing.assert_array_equal(out, want)
    assert out.dtype == np.int8


def test_sparse_to_dense_both_versions():
    data = np.array([3.0, 4.0, 5.0], np.float32)
    # iOS16 doc: shape (5,), mask byte xxx01100 (LSB = i0) → i2, i3 set … plus i4 here.
    out16 = op("constexpr_sparse_to_dense")(nonzero_data=data, mask=np.array([0b000_11100], np.uint8),
                                            shape=np.array([5], np.uint32))
    np.testing.assert_array_equal(out16, [0, 0, 3, 4, 5])
    with pytest.raises(ProgramTypeError, match="padding"):
        op("constexpr_sparse_to_dense")(nonzero_data=data[:2], mask=np.array([0b100_01100], np.uint8),
                                        shape=np.array([5], np.uint32))
    mask = np.array([[0, 1, 1], [0, 0, 1]]).astype(UINT1)
    np.testing.assert_array_equal(op("constexpr_sparse_to_dense")(nonzero_data=data, mask=mask), [[0, 3, 4], [0, 0, 5]])
    with pytest.raises(ProgramTypeError, match="set bits"):
        op("constexpr_sparse_to_dense")(nonzero_data=data[:2], mask=mask)


def test_affine_dequantize_and_blockwise_shift_scale():
    q = np.array([[-128, 0, 127], [5, -5, 1]], np.int8)
    out = op("constexpr_affine_dequantize")(quantized_data=q, zero_point=np.array([0, 1], np.int8),
                                            scale=np.array([0.5, 2.0], np.float16), axis=np.int32(0))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, [[-64, 0, 63.5], [8, -12, 0]])
    # iOS18 doc (sparse_blockwise_shift_scale example, dense form): per-column scale and offset.
    data = np.array([[10, 11, 0, 0], [3, 4, 5, 0], [0, 0, 6, 7], [8, 9, 0, 0]], np.uint8)
    scale = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    offset = np.array([[1, 2, 3, 4]], np.uint8)
    dense = op("constexpr_blockwise_shift_scale")(data=data, scale=scale, offset=offset)
    np.testing.assert_allclose(dense, scale * (data.astype(np.float32) - offset), rtol=0, atol=0)
    mask = (data != 0).astype(UINT1)
    m, vals = op("constexpr_sparse_blockwise_shift_scale")(data_mask=mask, nonzero_data=data[data != 0],
                                                           scale=scale, offset=offset)
    np.testing.assert_allclose(vals, [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4], rtol=1e-6)
    # int4 blocks of 2 along the last axis: block k of row i uses scale[i, k]
    d4 = np.array([[-8, 7, 1, -1]]).astype(INT4)
    out4 = op("constexpr_blockwise_shift_scale")(data=d4, scale=np.array([[1.0, 0.5]], np.float32))
    np.testing.assert_array_equal(out4, [[-8, 7, 0.5, -0.5]])
    with pytest.raises(ProgramTypeError, match="blocks"):
        op("constexpr_blockwise_shift_scale")(data=d4, scale=np.ones((1, 3), np.float32))


# --- real compressed programs: our decompression vs coremltools', and vs PyTorch -------------------


class Small(nn.Module):
    """Conv, depthwise conv, BN, pooling and a classifier: the layers compression touches in our models."""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU6(),
                               nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(32, 64, 1),
                               nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 40))

    def forward(self, x):
        return self.f(x)


def _cfg(cls, **kw):
    return opt.OptimizationConfig(global_config=cls(weight_threshold=0, **kw))


def _lin(**kw):
    return lambda m: opt.linear_quantize_weights(m, config=_cfg(opt.OpLinearQuantizerConfig, **kw))


def _pal(**kw):
    return lambda m: opt.palettize_weights(m, config=_cfg(opt.OpPalettizerConfig, **kw))


def _prune(**kw):
    return lambda m: opt.prune_weights(m, config=_cfg(opt.OpMagnitudePrunerConfig, target_sparsity=0.5, **kw))


def _joint(first, second):
    return lambda m: second(first(m))


def _joint_pal(m):
    return opt.palettize_weights(m, config=_cfg(opt.OpPalettizerConfig, mode="kmeans", nbits=4),
                                 joint_compression=True)


def _joint_lin(m):
    return opt.linear_quantize_weights(m, config=_cfg(opt.OpLinearQuantizerConfig, mode="linear_symmetric",
                                                      granularity="per_tensor"), joint_compression=True)


# (id, min target, compression, constexpr ops it must produce, stated rel L2 bar vs PyTorch fp32).
# Each bar is ~2-4× what the setting measured on this model with coremltools 9.0 (rel L2: int8 linear
# 0.0023, uint8 per-tensor 0.0026, palettize6 0.012, palettize4 0.037, int4 per-block 0.036, uint4
# 0.051, 3-bit grouped 0.10, 4-bit 2-vectors 0.15, 50 % magnitude pruning 0.25: half the weights gone).
CASES = [
    ("linear8_per_channel", "iOS16", _lin(mode="linear_symmetric", dtype="int8", granularity="per_channel"),
     {"constexpr_affine_dequantize"}, 0.01),
    ("uint8_per_tensor_zero_point", "iOS16", _lin(mode="linear", dtype="uint8", granularity="per_tensor"),
     {"constexpr_affine_dequantize"}, 0.01),
    ("palettize4", "iOS16", _pal(mode="kmeans", nbits=4), {"constexpr_lut_to_dense"}, 0.1),
    ("palettize6", "iOS16", _pal(mode="kmeans", nbits=6), {"constexpr_lut_to_dense"}, 0.03),
    ("prune50", "iOS16", _prune(), {"constexpr_sparse_to_dense"}, 0.5),
    ("linear8_ios18", "iOS18", _lin(mode="linear_symmetric", dtype="int8", granularity="per_channel"),
     {"constexpr_blockwise_shift_scale"}, 0.01),
    ("int4_per_block", "iOS18", _lin(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=8),
     {"constexpr_blockwise_shift_scale"}, 0.1),
    ("uint4_offset", "iOS18", _lin(mode="linear", dtype="uint4", granularity="per_channel"),
     {"constexpr_blockwise_shift_scale"}, 0.12),
    ("palettize3_grouped", "iOS18", _pal(mode="kmeans", nbits=3, granularity="per_grouped_channel", group_size=8),
     {"constexpr_lut_to_dense"}, 0.25),
    ("palettize6_ios18", "iOS18", _pal(mode="kmeans", nbits=6), {"constexpr_lut_to_dense"}, 0.03),
    ("palettize4_vector", "iOS18", _pal(mode="kmeans", nbits=4, cluster_dim=2), {"constexpr_lut_to_dense"}, 0.35),
    ("prune_then_palettize", "iOS18", _joint(_prune(), _joint_pal),
     {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"}, 0.5),
    ("prune_then_quantize", "iOS18", _joint(_prune(), _joint_lin),
     {"constexpr_sparse_blockwise_shift_scale", "constexpr_sparse_to_dense"}, 0.5),
    ("palettize_then_quantize_lut", "iOS18", _joint(_pal(mode="kmeans", nbits=4), _joint_lin),
     {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"}, 0.1),
]
SIZE = 20


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Small().eval()
    with torch.no_grad():  # trained-looking BN statistics, so BN is not a no-op
        bn = m.f[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return m


@pytest.fixture(scope="module")
def fp_packages(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("constexpr")
    x = torch.randn(1, 3, SIZE, SIZE)
    return {t: Path(convert(model, x, d / f"fp_{t}.mlpackage", tensor_input=True, min_target=t).artifact)
            for t in ("iOS16", "iOS18")}


def _inputs(n: int = 3) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, SIZE, SIZE, generator=g).numpy() for _ in range(n)]


def _run(path: Path, xs: list[np.ndarray]) -> np.ndarray:
    prog = MLProgram(path)
    name = next(iter(prog.inputs))
    return np.concatenate([prog.run({name: x})[prog.output_names[0]] for x in xs])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_compressed_program_matches_coremltools_decompression(case, model, fp_packages, tmp_path):
    name, target, compress, want_ops, bar = case
    with contextlib.redirect_stderr(io.StringIO()):  # coremltools' progress bars
        packed = compress(ct.models.MLModel(str(fp_packages[target]), skip_model_load=True))
        packed.save(str(tmp_path / "c.mlpackage"))
        opt.decompress_weights(ct.models.MLModel(str(tmp_path / "c.mlpackage"), skip_model_load=True)).save(
            str(tmp_path / "d.mlpackage"))
    spec = ct.utils.load_spec(str(tmp_path / "c.mlpackage"))
    fn = spec.mlProgram.functions["main"]
    ops = {o.type for o in fn.block_specializations[fn.opset].operations}
    assert want_ops <= ops, ops
    dspec = ct.utils.load_spec(str(tmp_path / "d.mlpackage")).mlProgram.functions["main"]
    assert not any(o.type.startswith("constexpr_") for o in dspec.block_specializations[dspec.opset].operations)
    xs = _inputs()
    ours, theirs = _run(tmp_path / "c.mlpackage", xs), _run(tmp_path / "d.mlpackage", xs)
    # The same weights, decoded two ways (our constexpr ops / coremltools' numpy), then the same ops.
    assert rel_l2(ours, theirs) <= 1e-6, name
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(x)).numpy() for x in xs])
    err = rel_l2(ours, ref)
    assert err <= bar, (name, err)
    assert err > 1e-6, (name, err)  # compressed weights really were used: not the float ones


def test_corrupted_index_changes_the_result(fp_packages, tmp_path):
    """The interpreter reads the packed indices themselves: flipping bits in the blob changes the output."""
    with contextlib.redirect_stderr(io.StringIO()):
        _pal(mode="kmeans", nbits=4)(ct.models.MLModel(str(fp_packages["iOS18"]), skip_model_load=True)).save(
            str(tmp_path / "c.mlpackage"))
    xs = _inputs(1)
    before = _run(tmp_path / "c.mlpackage", xs)
    blob = tmp_path / "c.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    first = int.from_bytes(data[64 + 16:64 + 24], "little")  # data offset of the first blob (uint4 indices)
    assert int.from_bytes(data[64 + 4:64 + 8], "little") == 11  # MILBlob dtype code of uint4
    data[first] ^= 0xFF
    blob.write_bytes(bytes(data))
    assert not np.array_equal(_run(tmp_path / "c.mlpackage", xs), before)


@pytest.mark.slow
def test_cli_coreml_int8_export_verifies(tmp_path):
    """`mobiledeploy export mobilenetv2_035 -t coreml --precision int8` now passes its parity check."""
    from mobiledeploy.cli import main

    out = tmp_path / "out"
    rc = main(["export", "mobilenetv2_035", "--target", "coreml", "--precision", "int8", "--input-size", "96",
               "--out", str(out), "--json"])
    assert rc == 0
    m = json.loads((out / "mobilenetv2_035_96_int8.mlpackage.json").read_text())
    p, q = m["parity"], m["target_info"]["quantization"]
    assert m["verified"] is True and p["passed"] is True and m["precision"] == "int8"
    assert q["bar"] == "int8_weights" and p["tolerance"] == {"rel_l2": 0.2, "top1_agreement": 2 / 3}
    # Judged on the photos and photo crops; the random-noise inputs are run and reported, not judged.
    assert p["inputs"][:3] == ["photo:chelsea", "photo:astronaut", "photo:coffee"] and p["n_samples"] == 9
    assert all(s.startswith(("photo:", "crop:")) for s in p["inputs"])
    assert p["informational"]["n_samples"] == 3 and all(s.startswith("random:") for s in p["informational"]["inputs"])
    # int8 linear weights on this model measured rel L2 ≈ 0.053 (0.014 before random weights got measured
    # BatchNorm statistics, when the logits barely depended on the image): inside the bar, not fp32-exact.
    assert 1e-4 < p["rel_l2"] <= 0.1 and p["top1_agreement"] >= 2 / 3, p
    # Random weights: 1000 near-tied logits, so agreement with fp32 on 32 crops is a weak signal (0.75
    # measured); the trained digits model in test_quant_int8.py holds Core ML int8 accuracy.
    assert q["size"]["reduction"] >= 3.0 and q["vs_fp32"]["top1_agreement"] >= 0.6
    spec = ct.utils.load_spec(str(out / m["artifact"]))
    fn = spec.mlProgram.functions["main"]
    assert "constexpr_affine_dequantize" in {o.type for o in fn.block_specializations[fn.opset].operations}
