"""Models a mobile user would pick from timm, through the CLI to ONNX, TFLite and Core ML, each verified.

Eight families (hard-swish + SE, depthwise-separable NAS, LCNet, RegNet, ConvNeXt with LayerNorm, MnasNet,
GhostNetV2 from timm's own code, and a re-parameterisable GhostNetV3), plus a
feature-pyramid backbone with five outputs (timm's `features_only`, saved as a `.pt2`). Random weights
with measured BatchNorm statistics (what an export without --weights gets), 64 px for speed.

Not here: efficientnet_b0 and mobileone_s0. With random weights PyTorch's own fp32 output is up to 9e-5
(efficientnet_b0, on a photo) and 2.6e-5 (mobileone_s0) away from float64, so no fp32 artifact can be held
to 1e-5 of it; their artifacts measured 2-4e-5. See the closing note of this wave: the fp32 bar should be
judged against float64 where PyTorch fp32 itself is that far off.
"""

from __future__ import annotations

import json

import pytest
import torch

from mobiledeploy.cli import main

timm = pytest.importorskip("timm")
pytest.importorskip("coremltools")
pytest.importorskip("litert_torch")

MODELS = ["mobilenetv3_small_100", "fbnetc_100", "lcnet_050", "regnetx_002", "convnext_atto", "mnasnet_small",
          "ghostnetv2_100", "ghostnetv3_100"]


def _export(spec: str, out, capsys, *extra: str) -> list[dict]:
    rc = main(["export", spec, "-t", "onnx,tflite,coreml", "--input-size", "64", "--out", str(out), "--json", *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_timm_model_on_every_target(name, tmp_path, capsys):
    manifests = _export(f"timm:{name}", tmp_path, capsys)
    assert [m["target"] for m in manifests] == ["onnx", "tflite", "coreml"]
    for m in manifests:
        assert m["verified"] and m["parity"]["rel_l2"] <= 1e-5, (m["target"], m["parity"]["rel_l2"])
        assert m["parity"]["input_sensitivity"] > 1e-2  # the check compares outputs that depend on the input
    tfl = manifests[1]["target_info"]
    # One XNNPACK partition wherever every op is one XNNPACK runs.
    assert tfl["partitions"] == 1 or tfl["undelegated_ops"], tfl
    if name == "ghostnetv3_100":  # re-parameterised before tracing, verified against the unfolded model
        assert any(r["name"] == "reparameterize" for r in manifests[0]["rewrites"])


@pytest.mark.slow
def test_feature_pyramid_backbone_with_five_outputs(tmp_path, capsys):
    from conftest import randomize_bn

    torch.manual_seed(0)
    model = randomize_bn(timm.create_model("mobilenetv3_small_100", pretrained=False, features_only=True)).eval()
    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / "fpn.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    manifests = _export(str(path), tmp_path / "o", capsys)
    names = [f"output_{i}" for i in range(5)]
    for m in manifests:
        assert [o["name"] for o in m["outputs"]] == names, m["target"]
        assert m["verified"] and list(m["parity"]["outputs"]) == names
        assert all(f["rel_l2"] <= 1e-5 for f in m["parity"]["outputs"].values()), m["parity"]["outputs"]
