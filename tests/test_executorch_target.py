"""The ExecuTorch target end to end: lowering to one XNNPACK piece, parity through ExecuTorch's runtime, the runner.

Small GhostNetV2 blocks keep lowering to seconds (its cost grows with node count, ~2-3 min for a full
model on this machine); the full-size models are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("executorch", reason="the executorch extra is not installed")

from conftest import randomize_bn  # noqa: E402

from mobiledeploy.exporters import executorch as ET  # noqa: E402
from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites  # noqa: E402
from mobiledeploy.models.ghostnet import GhostBottleneck  # noqa: E402

# fp32 bar of the other targets.
REL_L2 = 1e-5


def mini_ghostnetv2() -> torch.nn.Module:
    """Stem + two GhostNetV2 bottlenecks (DFC gates, SE with hardsigmoid, a strided block)."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(),
                            GhostBottleneck(16, 48, 24, 3, 1, 0.25, attn=True),
                            GhostBottleneck(24, 72, 24, 3, 2, 0.0, attn=True))
    return randomize_bn(m).eval()


def ours(module: torch.nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    """The program the pipeline hands the target: generic passes, then the target's."""
    ep = torch.export.export(module, (x,))
    ep, _ = apply_rewrites(ep, (*GENERIC, *ET.REWRITES), RewriteContext((x,), "executorch"))
    return ep


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_export(module: torch.nn.Module, hw: tuple[int, int], tmp: Path, precision: str = "fp32") -> dict:
    """Convert, run the .pte on ExecuTorch's runtime for 3 inputs and return the info plus the worst rel L2."""
    x = torch.randn(1, 3, *hw)
    info = ET.convert(ours(module, x), (x,), precision, tmp / f"m_{hw[0]}x{hw[1]}_{precision}.pte")
    worst = 0.0
    for seed in range(3):
        xi = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ref = module(xi).numpy()
        worst = max(worst, rel_l2(ET.run(info["artifact"], [xi.numpy()])[0], ref))
    return {**info["extra"], "rel_l2": worst, "artifact": info["artifact"]}


# 14: 7x7 maps whose DFC gate is 3→7 (not an integer factor); 30: 7→15; 32x24: 2x on a rectangle.
@pytest.mark.parametrize("hw", [(14, 14), (30, 30), (32, 24)])
def test_ghostnetv2_blocks_one_piece_and_exact(hw, tmp_path):
    r = check_export(mini_ghostnetv2(), hw, tmp_path)
    assert r["partitions"] == 1, r
    assert r["undelegated_ops"] == {}, r
    assert r["delegated_nodes"] == r["total_nodes"] > 50
    assert r["rel_l2"] <= REL_L2, r


def test_naive_lowering_splits_the_same_blocks(tmp_path):
    """Without our passes the same graph does not lower to one piece (what the rewrites are for)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    m, x = mini_ghostnetv2(), torch.randn(1, 3, 14, 14)
    edge = to_edge_transform_and_lower(torch.export.export(m, (x,)), partitioner=[XnnpackPartitioner()])
    d = ET.delegation(edge.exported_program().graph_module)
    assert d["partitions"] > 1 and d["undelegated_ops"], d


def test_fp16_one_piece_close(tmp_path):
    r = check_export(mini_ghostnetv2(), (32, 24), tmp_path, "fp16")
    assert r["partitions"] == 1, r
    assert r["rel_l2"] <= 1e-2, r


def test_runner_runs_times_and_profiles(tmp_path):
    from mobiledeploy.devicebench.executorch_runner import ExecuTorchRunner

    m = mini_ghostnetv2()
    r = check_export(m, (32, 24), tmp_path)
    runner = ExecuTorchRunner(str(r["artifact"]), threads=1)
    specs = runner.input_specs()
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("input", [1, 3, 32, 24], "float32")]
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 24)).astype(np.float32)
    outs = runner.prepare({"input": x})()
    assert isinstance(outs, list) and len(outs) == 1
    with torch.no_grad():
        assert rel_l2(outs[0], m(torch.from_numpy(x)).numpy()) <= REL_L2
    info = runner.info()
    assert info["partitions"] == 1 and info["kernel_calls"] == 0 and info["delegate"] == "XNNPACK"
    prof = runner.op_profile({"input": x}, runs=3)
    assert prof["available"] and prof["runs"] == 3
    kinds = {row["kind"] for row in prof["table"]}
    assert {"conv", "depthwise conv", "elementwise"} <= kinds, kinds
    assert abs(sum(row["percent"] for row in prof["table"]) - 100.0) < 1e-6


def test_int8_digits_keeps_accuracy(digits, tmp_path):
    """pt2e XNNPACKQuantizer int8 of the trained digits model: held-out top-1 within 1 point of PyTorch fp32."""
    x = torch.from_numpy(digits.x_test[:1])
    ep = ours(digits.wrapper, x)
    info = ET.convert(ep, (x,), "int8", tmp_path / "digits_int8.pte", calibration=list(digits.x_train[:128]))
    extra = info["extra"]
    assert extra["partitions"] >= 1
    program, method = ET.load_method(info["artifact"])  # noqa: F841  (keeps the method valid)
    logits = np.concatenate([method.execute([torch.from_numpy(digits.x_test[i:i + 1])])[0].numpy()
                             for i in range(len(digits.x_test))])
    acc_fp32 = float((digits.torch_test.argmax(1) == digits.y_test).mean())
    acc_int8 = float((logits.argmax(1) == digits.y_test).mean())
    assert acc_fp32 > 0.9  # the trained model really classifies, so the comparison means something
    assert 100 * (acc_fp32 - acc_int8) <= 1.0, (acc_fp32, acc_int8)
    assert (tmp_path / "digits_int8.pte").stat().st_size < 0.5 * _fp32_size(digits, tmp_path)


def test_int8_with_a_calibration_folder_is_judged_on_its_held_out_images(digits, tmp_path, capsys):
    """As on the other targets: --calibration DIR calibrates on 4 of 5 images and judges on the fifth."""
    from skimage import io

    from mobiledeploy.cli import main

    calib = tmp_path / "calib"
    calib.mkdir()
    for i, img in enumerate(digits.x_train[:40]):
        io.imsave(str(calib / f"d{i:02d}.png"), img.round().astype(np.uint8), check_contrast=False)
    rc = main(["export", "mobilenetv2_035", "--weights", str(digits.trained.checkpoint), "--input-size",
               str(digits.trained.size), "-t", "executorch", "--precision", "int8", "--calibration", str(calib),
               "--out", str(tmp_path / "out"), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    m = json.loads(out.out)  # one target: the manifest itself
    quant = m["target_info"]["quantization"]
    assert quant["calibration_dir"] == str(calib.resolve()) and quant["calibration_samples"] == 32
    judged = m["parity"]["inputs"]
    assert judged and all(n.startswith("heldout:d") for n in judged), judged  # digits, not photos of cats
    assert m["verified"] is True


def _fp32_size(digits, tmp_path: Path) -> int:
    x = torch.from_numpy(digits.x_test[:1])
    info = ET.convert(ours(digits.wrapper, x), (x,), "fp32", tmp_path / "digits_fp32.pte")
    return Path(info["artifact"]).stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("name,hw", [("ghostnetv2_100", (224, 224)), ("ghostnetv2_100", (240, 240)),
                                     ("ghostnetv2_100", (256, 192)), ("ghostnet_100", (224, 224)),
                                     ("mobilenetv2_100", (224, 224)), ("kat_tiny_patch16_224", (224, 224))])
def test_full_models_one_piece_and_exact(name, hw, tmp_path):
    from mobiledeploy.models import create_model

    torch.manual_seed(0)
    m = randomize_bn(create_model(name), seed=1).eval()
    r = check_export(m, hw, tmp_path)
    assert r["partitions"] == 1 and r["undelegated_ops"] == {}, r
    assert r["rel_l2"] <= REL_L2, r


class _ConvGate(torch.nn.Module):
    """The gate pattern on conv outputs (NHWC inside the delegate) or on raw inputs (NCHW there)."""

    def __init__(self, conv: bool, mul: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 1) if conv else None
        self.mul = mul

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x, g = self.conv(x), self.conv(g)
        up = torch.nn.functional.interpolate(g, size=x.shape[-2:], mode="nearest")
        return x * up if self.mul else x + up


@pytest.mark.parametrize("conv", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("mul", [True, False], ids=["gate_mul", "repeat"])
@pytest.mark.parametrize("sizes", [((12, 9), (4, 3)), ((7, 7), (3, 3))], ids=["3x3_factor", "3to7"])
def test_xnnpack_visitors_in_both_layouts(conv, mul, sizes, tmp_path):
    """Our two ops serialize correctly whichever layout the delegate's channels-last pass gives them."""
    torch.manual_seed(0)
    m = _ConvGate(conv, mul).eval()
    x, g = torch.randn(1, 4, *sizes[0]), torch.randn(1, 4, *sizes[1])
    ep = torch.export.export(m, (x, g))
    ep, applied = apply_rewrites(ep, (*GENERIC, *ET.REWRITES), RewriteContext((x, g), "executorch"))
    assert any(a["name"] == "xnnpack_nearest_gate" for a in applied)
    info = ET.convert(ep, (x, g), "fp32", tmp_path / "m.pte")
    assert info["extra"]["partitions"] == 1 and info["extra"]["undelegated_ops"] == {}, info["extra"]
    out = ET.run(info["artifact"], [x.numpy(), g.numpy()])[0]
    with torch.no_grad():
        ref = m(x, g).numpy()
    assert np.array_equal(out, ref) if not conv else rel_l2(out, ref) <= REL_L2


def test_coreml_delegate_checked_through_the_interpreter(tmp_path):
    """The Core ML backend lowers on Linux (our ops are put back to ATen first) and runs only on Apple
    platforms; the Core ML program the .pte embeds runs on our interpreter, in fp32 for an fp32 .pte."""
    pytest.importorskip("coremltools")
    from mobiledeploy.devicebench.executorch_coreml import ExecuTorchCoreMLRunner, embedded_package
    from mobiledeploy.devicebench.executorch_runner import plan_counts
    from mobiledeploy.errors import UserError

    x = torch.randn(1, 3, 14, 14)
    model = mini_ghostnetv2()
    info = ET.convert(ours(model, x), (x,), "fp32", tmp_path / "m_coreml.pte", delegate="coreml")
    extra = info["extra"]
    assert extra["delegate"] == "CoreML" and extra["verified_here"] is False
    assert extra["host_runner"] == ExecuTorchCoreMLRunner.name and extra["partitions"] == 1, extra
    counts = plan_counts(Path(info["artifact"]).read_bytes())
    assert counts["partitions"] == 1 and "CoreMLBackend" in counts["delegate"]
    runner = ExecuTorchCoreMLRunner(str(info["artifact"]), 1)
    for seed in range(2):
        xi = torch.randn(1, 3, 14, 14, generator=torch.Generator().manual_seed(seed))
        got = runner.run({"input": xi.numpy()})["output"]
        with torch.no_grad():
            assert rel_l2(got, model(xi).numpy()) <= REL_L2  # fp32 compute (the backend's default is fp16)
    xnn = ET.convert(ours(model, x), (x,), "fp32", tmp_path / "m_xnnpack.pte")["artifact"]
    with pytest.raises(UserError, match="not one Core ML piece"):  # nothing else is passed off as Core ML
        embedded_package(Path(xnn).read_bytes(), tmp_path / "unpacked")


def test_cli_coreml_delegate_is_verified_on_the_interpreter(tmp_path, capsys):
    """Through the CLI: verified (not "not verified"), the table says on what, coremltools' progress bars are
    not on stderr, and `verify` re-checks it the same way."""
    pytest.importorskip("coremltools")
    from mobiledeploy.cli import main

    torch.manual_seed(0)
    torch.export.save(torch.export.export(mini_ghostnetv2(), (torch.randn(1, 3, 16, 16),)), str(tmp_path / "g.pt2"))
    rc = main(["export", str(tmp_path / "g.pt2"), "-t", "executorch", "--delegate", "coreml", "--out",
               str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "verified" in out and "not verified" not in out
    assert "checked on mobiledeploy Core ML reference interpreter" in out
    assert "Running MIL" not in err and "Traceback" not in err
    m = json.loads((tmp_path / "o" / "g.pte.json").read_text())
    assert m["verified"] and m["parity"]["rel_l2"] <= REL_L2 and "interpreter" in m["versions"]["runtime"]["name"]
    assert main(["verify", str(tmp_path / "o" / "g.pte")]) == 0
