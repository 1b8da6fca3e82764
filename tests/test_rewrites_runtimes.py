"""Rewrites through the real converters and runtimes: exact resizes on onnxruntime and LiteRT, one XNNPACK partition."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites
from mobiledeploy.devicebench.runners import run_artifact
from mobiledeploy.exporters.targets import ExportRequest, get_target
from mobiledeploy.exporters.tflite import delegate_report
from mobiledeploy.exporters.tflite_flatbuffer import load, op_name


class Upsample(torch.nn.Module):
    """Only data movement and an exact multiply: any correct runtime matches PyTorch bit for bit."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        return F.interpolate(x, size=self.size, mode="nearest") * 3.0


def _convert(target, model, x, tmp_path, rewrites=True, precision="fp32", name="m"):
    """The pipeline's rewrites and converter for one target; returns (result, output, rewrites applied)."""
    ep = torch.export.export(model, (x,), strict=False)
    tg = get_target(target)
    applied = []
    if rewrites:
        ep, applied = apply_rewrites(ep, (*GENERIC, *tg.rewrites), RewriteContext((x,), target=target))
    out = tmp_path / f"{name}{tg.suffix}"
    res = tg.convert(ExportRequest("test", ep, model, (x,), out, precision=precision))
    y = run_artifact(out, {res.inputs[0]["name"]: x.numpy()})
    res.extra["rewrites"] = {a["name"]: a["changed"] for a in applied}
    return res, next(iter(y.values()))


# How each resize reaches ONNX: "kept" (ONNX's Resize rule already picks PyTorch's rows), "matmul" (a map
# of ≤ 16 pixels: one MatMul with a 0/1 selection matrix) or "sliced" (integer Resize + Slice + Concat).
# (14, 14) → (16, 16) is a size pair where ONNX's rule and PyTorch's pick different rows.
CASES = {((3, 3), (7, 7)): "matmul", ((5, 6), (11, 13)): "kept", ((4, 4), (8, 8)): "kept",
         ((14, 14), (16, 16)): "sliced", ((3, 14), (7, 16)): "sliced", ((2, 3), (5, 7)): "matmul"}


@pytest.mark.parametrize("src,dst", list(CASES), ids=lambda s: "x".join(map(str, s)))
def test_onnx_resizes_are_bit_exact(src, dst, tmp_path):
    import onnx

    x = torch.randn(1, 4, *src)
    model = Upsample(dst).eval()
    res, y = _convert("onnx", model, x, tmp_path)
    assert np.array_equal(y, model(x).numpy())
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    how = "matmul" if "MatMul" in ops else "sliced" if "Slice" in ops else "kept"
    assert how == CASES[(src, dst)], ops
    assert ("exact_nearest_upsample" in res.extra["rewrites"]) == (how != "kept")


def test_onnx_resize_rule_is_onnxruntimes(tmp_path):
    # onnx_resize_indices is what decides that a Resize may stay: it must be onnxruntime's own arithmetic.
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from mobiledeploy.exporters.rewrites.nearest import onnx_resize_indices

    checked = 0
    for n_in in (2, 3, 5, 6, 7, 12, 14, 20, 21, 25, 26):
        for n_out in range(n_in, 4 * n_in + 3):
            sizes = numpy_helper.from_array(np.array([1, 1, 1, n_out], np.int64), "sizes")
            node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", nearest_mode="floor",
                                    coordinate_transformation_mode="asymmetric")
            graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, n_in])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, n_out])], [sizes])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            got = sess.run(None, {"x": np.arange(n_in, dtype=np.float32).reshape(1, 1, 1, n_in)})[0]
            assert got.ravel().astype(int).tolist() == onnx_resize_indices(n_in, n_out), (n_in, n_out)
            checked += 1
    assert checked > 300 and onnx is not None


def test_onnx_average_pool_becomes_an_exact_depthwise_conv(tmp_path):
    # GhostNetV2's DFC pool (2x2/2) on odd and even maps, next to pools the rewrite must leave alone.
    class Pools(torch.nn.Module):
        def forward(self, x):
            return (F.avg_pool2d(x, 2, 2) * 3.0, F.avg_pool2d(x, 3, 3) * 3.0, F.avg_pool2d(x, 2, 1) * 3.0,
                    F.avg_pool2d(x, 2, 2, padding=1) * 3.0, F.avg_pool2d(x, 2, 2, ceil_mode=True) * 5.0)

    import onnx

    for size in ((9, 9), (8, 12), (7, 10)):
        x = torch.randn(1, 5, *size)
        model = Pools().eval()
        ep = torch.export.export(model, (x,), strict=False)
        ep, applied = apply_rewrites(ep, (*GENERIC, *get_target("onnx").rewrites), RewriteContext((x,), target="onnx"))
        assert {a["name"]: a["changed"] for a in applied}.get("avgpool_as_depthwise_conv") == 1
        out = tmp_path / f"pools_{size[0]}x{size[1]}.onnx"
        res = get_target("onnx").convert(ExportRequest("test", ep, model, (x,), out))
        got = run_artifact(out, {res.inputs[0]["name"]: x.numpy()})
        want = [w.numpy() for w in model(x)]
        for w, g in zip(want, [got[o["name"]] for o in res.outputs]):
            assert g.shape == w.shape
            # 1/4 is a power of two: every product is exact, only the order of the additions may differ.
            assert np.abs(g - w).max() <= 4 * np.finfo(np.float32).eps * np.abs(w).max(), size
        ops = [n.op_type for n in onnx.load(str(out)).graph.node]
        assert ops.count("AveragePool") == 4 and "Conv" in ops, ops  # 3x3/3, 2x2/1, padded, ceil: pools


def test_tflite_resizes_are_bit_exact_and_fully_delegated(tmp_path):
    # One conversion, three DFC-like cases: 3→7 (odd) and a 2x resize, both scaled by a constant (bit-exact),
    # and a DFC gate: conv features times their pooled map resized 2x (GhostNetV2's even blocks).
    class Three(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 8, 1)

        def forward(self, a, b, x):
            h = self.conv(x)
            gate = F.interpolate(F.avg_pool2d(h, 2, 2), size=h.shape[-2:])
            return F.interpolate(a, size=(7, 7)) * 3.0, F.interpolate(b, size=(8, 8)) * 3.0, h * gate

    torch.manual_seed(0)
    model = Three().eval()
    args = (torch.randn(1, 4, 3, 3), torch.randn(1, 4, 4, 4), torch.randn(1, 4, 8, 8))
    ep = torch.export.export(model, args, strict=False)
    ep, _ = apply_rewrites(ep, GENERIC, RewriteContext(args))
    out = tmp_path / "three.tflite"
    res = get_target("tflite").convert(ExportRequest("test", ep, model, args, out))
    got = run_artifact(out, {i["name"]: a.numpy() for i, a in zip(res.inputs, args)})
    want = [w.detach().numpy() for w in model(*args)]
    outs = [got[o["name"]] for o in res.outputs]
    for w in want[:2]:  # only data movement and an exact multiply: bit for bit
        assert any(g.shape == w.shape and np.array_equal(g, w) for g in outs)
    gated = next(g for g in outs if g.shape == want[2].shape)
    assert np.linalg.norm(gated - want[2]) / np.linalg.norm(want[2]) < 1e-6  # a conv: fp32 rounding only
    model_fb = load(out.read_bytes())
    ops = [op_name(model_fb, op) for op in model_fb.subgraphs[0].operators]
    assert "RESIZE_NEAREST_NEIGHBOR" not in ops and "DEPTH_TO_SPACE" in ops and "RESHAPE" in ops
    rep = delegate_report(out)
    assert rep["partitions"] == 1 and rep["delegated_nodes"] == rep["total_nodes"], rep
    done = {p["name"]: p["changed"] for p in res.extra["flatbuffer_passes"]}
    assert done == {"nearest_gate_broadcast_mul": 1, "nearest_to_depth_to_space": 2}


def test_naive_tflite_resize_is_wrong_where_ours_is_exact(tmp_path):
    # The peer bug we fix (FINDINGS): litert-torch's half-pixel RESIZE_NEAREST_NEIGHBOR picks rows
    # [0,0,1,1,1,2,2] for 3→7 where PyTorch picks [0,0,0,1,1,2,2].
    x = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    model = Upsample((7, 7)).eval()
    _, naive = _convert("tflite", model, x, tmp_path, rewrites=False, name="naive")
    ref = model(x).numpy()
    assert not np.array_equal(naive, ref)
    assert (naive[0, 0, :, 0] / 3).tolist() == [0, 0, 3, 3, 3, 6, 6]
    assert (ref[0, 0, :, 0] / 3).tolist() == [0, 0, 0, 3, 3, 6, 6]


def test_fp16_weights_pass(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.Flatten(),
                                torch.nn.Linear(16 * 8 * 8, 10)).eval()
    x = torch.randn(1, 3, 8, 8)
    res32, y32 = _convert("tflite", model, x, tmp_path, name="m32")
    res16, y16 = _convert("tflite", model, x, tmp_path, precision="fp16", name="m16")
    ref = model(x).detach().numpy()
    assert np.linalg.norm(y32 - ref) / np.linalg.norm(ref) < 1e-6
    rel16 = np.linalg.norm(y16 - ref) / np.linalg.norm(ref)
    assert 0 < rel16 < 1e-2  # fp16 weights do change the numbers, a little
    fb = load((tmp_path / "m16.tflite").read_bytes())
    ops = [op_name(fb, op) for op in fb.subgraphs[0].operators]
    assert ops.count("DEQUANTIZE") == 6  # weight and bias of each conv and of the linear layer
    assert (tmp_path / "m16.tflite").stat().st_size < 0.6 * (tmp_path / "m32.tflite").stat().st_size
    assert res16.extra["partitions"] == 1 and res16.extra["delegated_nodes"] == res16.extra["total_nodes"]
