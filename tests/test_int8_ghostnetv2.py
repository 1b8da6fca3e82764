"""int8 TFLite of GhostNetV2-style gates: our flatbuffer passes leave a graph the quantizer can calibrate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.timeout(900)


class Gates(torch.nn.Module):
    """Two DFC-style gates: one upsampled 2× (folded into a broadcast MUL), one 3→7 (slices + concat)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.a = torch.nn.Conv2d(8, 8, 1)
        self.down = torch.nn.Conv2d(8, 8, 3, 2, 1)
        self.b = torch.nn.Conv2d(8, 8, 1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))  # 14×14
        y = y * F.interpolate(torch.sigmoid(self.a(F.avg_pool2d(y, 2, 2))), size=y.shape[-2:], mode="nearest")
        z = torch.relu(self.down(y))  # 7×7
        z = z * F.interpolate(torch.sigmoid(self.b(F.avg_pool2d(z, 2, 2))), size=z.shape[-2:], mode="nearest")
        return self.head(z.mean((2, 3)))


def _tflite(tmp_path: Path) -> Path:
    """The model through our torch.export rewrites, litert-torch and the .tflite target's flatbuffer passes."""
    import litert_torch

    from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites
    from mobiledeploy.exporters.tflite import FB_PASSES
    from mobiledeploy.exporters.tflite_flatbuffer import run_fb_passes

    torch.manual_seed(0)
    x = torch.randn(1, 3, 28, 28)
    prog, _ = apply_rewrites(torch.export.export(Gates().eval(), (x,), strict=False), GENERIC,
                             RewriteContext((x,), "tflite"))
    edge = litert_torch.convert(prog.module(), (x,))
    data = edge.model_content() if callable(getattr(edge, "model_content", None)) else edge.model_content
    data, applied = run_fb_passes(bytes(data), FB_PASSES)
    ran = {a["name"] for a in applied}
    assert {"nearest_gate_broadcast_mul", "nearest_to_depth_to_space"} <= ran, applied  # both resize passes ran
    path = tmp_path / "gates.tflite"
    path.write_bytes(data)
    return path


def test_flatbuffer_passes_leave_no_dead_or_duplicate_tensors(tmp_path):
    """Every tensor is produced, consumed or graph I/O, and every name is unique (the quantizer keys by name)."""
    from mobiledeploy.exporters.tflite_flatbuffer import load

    model = load(_tflite(tmp_path).read_bytes())
    (graph,) = model.subgraphs
    used = {int(t) for op in graph.operators for t in (*op.inputs, *op.outputs) if int(t) >= 0}
    used |= {int(t) for t in (*graph.inputs, *graph.outputs)}
    dead = [graph.tensors[i].name for i in range(len(graph.tensors)) if i not in used]
    assert dead == []
    names = [t.name for t in graph.tensors]
    assert len(names) == len(set(names))


def test_every_tensor_is_readable_by_a_calibrating_interpreter(tmp_path):
    """What ai-edge-quantizer's calibration does: run with all tensors preserved, then read each one."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils as tu

    it = tu.create_tfl_interpreter(str(_tflite(tmp_path)), use_xnnpack=True, num_threads=1, preserve_all_tensors=True)
    runner = it.get_signature_runner()
    (name, spec), = runner.get_input_details().items()
    runner(**{name: np.random.default_rng(0).standard_normal(spec["shape"]).astype(np.float32)})
    tu.get_tensor_name_to_content_map(it)  # raised "Tensor data is null" before the dead tensors were dropped


def test_gates_quantize_to_int8_and_agree_with_fp32(tmp_path):
    from mobiledeploy.exporters import quantize as Q

    fp32 = _tflite(tmp_path)
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((1, 28, 28, 3) if _nhwc(fp32) else (1, 3, 28, 28)).astype(np.float32)
               for _ in range(16)]
    out = tmp_path / "gates_int8.tflite"
    info = Q.quantize_tflite(fp32, out, samples)
    assert info["calibration_samples"] == 16
    # XNNPACK has no int8 AVERAGE_POOL_2D: the DFC pools become depthwise convs, so int8 stays one partition.
    assert [p["name"] for p in info["flatbuffer_passes"]] == ["avg_pool_as_depthwise"]
    assert info["xnnpack"]["partitions"] == 1 and info["xnnpack"]["undelegated_ops"] == [], info["xnnpack"]
    x = np.concatenate(samples)
    r = Q.compare(Q.run_batch(fp32, x), Q.run_batch(out, x))
    assert r["rel_l2"] <= 0.1, r


def _nhwc(path: Path) -> bool:
    from ai_edge_litert.interpreter import Interpreter

    return int(Interpreter(model_path=str(path)).get_input_details()[0]["shape"][-1]) == 3


@pytest.mark.slow
def test_ghostnetv2_int8_tflite_through_the_cli(tmp_path, capsys):
    """The issue's command at 112 px (2× gates and the odd 3→7 gate): exits 0, verified, with int8 figures."""
    from mobiledeploy.cli import main

    out = tmp_path / "out"
    rc = main(["export", "ghostnetv2", "--target", "tflite", "--precision", "int8", "--input-size", "112",
               "--out", str(out), "--json"])
    err = capsys.readouterr().err
    assert rc == 0, err[-2000:]
    (manifest,) = out.glob("*.tflite.json")
    m = json.loads(manifest.read_text())
    assert m["precision"] == "int8" and m["verified"] is True
    q = m["target_info"]["quantization"]
    assert q["size"]["reduction"] >= 2.0
    assert q["xnnpack"]["partitions"] == 1, q["xnnpack"]  # the int8 model's own figures (fp32's do not carry over)
    assert m["parity"]["top1_agreement"] >= 0.5 and m["parity"]["rel_l2"] <= m["parity"]["tolerance"]["rel_l2"]
