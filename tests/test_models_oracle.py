"""Every registered CNN computes what timm computes, given the same weights."""

from __future__ import annotations

import pytest
import torch

from conftest import randomize_bn
from mobiledeploy.models import create_model, list_models
from mobiledeploy.models.profile import count_macs, count_params

timm = pytest.importorskip("timm", reason="timm is the oracle; install mobiledeploy[timm]")

CNNS = [n for n in list_models() if n.split("_")[0] in ("ghostnet", "ghostnetv2", "mobilenetv2")]


def test_registry_has_every_cnn_name():
    assert CNNS == sorted([
        "ghostnet_050", "ghostnet_100", "ghostnet_130", "ghostnetv2_100", "ghostnetv2_130", "ghostnetv2_160",
        "mobilenetv2_035", "mobilenetv2_050", "mobilenetv2_075", "mobilenetv2_100", "mobilenetv2_140"])


@pytest.mark.parametrize("name", CNNS)
def test_matches_timm(name):
    ref = randomize_bn(timm.create_model(name), seed=1).eval()
    ours = create_model(name).eval()
    ours.load_state_dict(ref.state_dict())  # same keys: timm files load as they are
    for size in (224, 200):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            diff = (ours(x) - ref(x)).abs().max().item()
        assert diff <= 1e-6, f"{name} at {size}: max abs diff {diff}"


@pytest.mark.parametrize("name,params,macs", [
    ("ghostnetv2_100", 6_156_908, 167.0e6),
    ("ghostnet_100", 5_182_508, 141.2e6),
    ("mobilenetv2_100", 3_504_872, 300.8e6),
])
def test_params_and_macs(name, params, macs):
    m = create_model(name)
    assert count_params(m) == params
    assert count_params(m) == count_params(timm.create_model(name))
    assert round(count_macs(m, (3, 224, 224)) / 1e6, 1) == round(macs / 1e6, 1)


def test_dfc_attention_is_its_own_module():
    from mobiledeploy.models.ghostnet import DFCAttention

    m = create_model("ghostnetv2_100")
    dfcs = [mod for mod in m.modules() if isinstance(mod, DFCAttention)]
    assert len(dfcs) == 14  # every bottleneck after the first two
    # official forward: pool 2/2 with floor, so a 7×7 map pools to 3×3 and the gate is upsampled back
    x = torch.randn(1, dfcs[-1][0].in_channels, 7, 7)
    gate = dfcs[-1].eval().gate(x, (7, 7))
    assert gate.shape[-2:] == (7, 7)
    pooled = torch.sigmoid(dfcs[-1](torch.nn.functional.avg_pool2d(x, 2, 2)))
    rows = torch.tensor([0, 0, 0, 1, 1, 2, 2])  # PyTorch's floor rule for 3 → 7
    assert torch.equal(gate, pooled[:, :, rows][:, :, :, rows])


def test_default_cfg_carried():
    m = create_model("mobilenetv2_100")
    assert m.default_cfg.input_size == (3, 224, 224)
    assert m.default_cfg.mean == (0.485, 0.456, 0.406)
    assert m.default_cfg.interpolation == "bicubic"


@pytest.mark.parametrize("name", ["ghostnet_050", "ghostnetv2_100", "mobilenetv2_035", "mobilenetv2_140"])
def test_default_init_keeps_activations_in_fp16_range(name):
    """Without weights, logits neither vanish (depthwise fan-out init) nor blow up: fp16 exports stay meaningful."""
    torch.manual_seed(0)
    with torch.no_grad():
        y = create_model(name).eval()(torch.randn(2, 3, 96, 96))
    assert 1e-3 < y.abs().max().item() < 1e3, y.abs().max().item()
