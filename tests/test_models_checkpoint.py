"""Checkpoints in every published layout load and give identical outputs; bad files fail in one line."""

from __future__ import annotations

import argparse

import pytest
import torch
from safetensors.torch import save_file

from conftest import randomize_bn
from mobiledeploy.errors import UserError
from mobiledeploy.models import create_model
from mobiledeploy.models.checkpoint import load_checkpoint

X = torch.randn(1, 3, 64, 64)


def _source(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(123)
    return randomize_bn(create_model(name, **kw), seed=7).eval()


def _out(m: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return m.eval()(X)


def _huawei_sd(m: torch.nn.Module) -> dict:
    """Official GhostNet files: a flat state dict with thop's total_ops/total_params per module."""
    sd = dict(m.state_dict())
    for name, _ in m.named_modules():
        pre = f"{name}." if name else ""
        sd[pre + "total_ops"] = torch.zeros(1, dtype=torch.float64)
        sd[pre + "total_params"] = torch.zeros(1, dtype=torch.float64)
    return sd


@pytest.mark.parametrize("suffix", [".pth", ".pth.tar"])
@pytest.mark.parametrize("name", ["ghostnet_050", "ghostnetv2_100"])
def test_official_huawei_files(tmp_path, name, suffix):
    src = _source(name)
    path = tmp_path / f"ckpt{suffix}"
    torch.save(_huawei_sd(src), path)
    assert torch.equal(_out(create_model(name, weights=str(path))), _out(src))


@pytest.mark.parametrize("fmt", ["pth", "bin", "safetensors"])
def test_timm_files(tmp_path, fmt):
    src = _source("mobilenetv2_050")
    path = tmp_path / f"model.{fmt}"
    sd = src.state_dict()
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    assert torch.equal(_out(create_model("mobilenetv2_050", weights=str(path))), _out(src))


@pytest.mark.parametrize("width,name", [(1.0, "mobilenetv2_100"), (0.5, "mobilenetv2_050")])
def test_torchvision_mobilenetv2(tmp_path, width, name):
    tv = pytest.importorskip("torchvision")
    ref = randomize_bn(tv.models.mobilenet_v2(width_mult=width), seed=3).eval()
    path = tmp_path / "tv.pth"
    torch.save(ref.state_dict(), path)
    ours = create_model(name, weights=str(path))
    with torch.no_grad():
        assert (ours.eval()(X) - ref(X)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("wrap", ["state_dict", "state_dict_ema", "model"])
@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "_orig_mod.module."])
def test_wrappers_and_prefixes(tmp_path, wrap, prefix):
    src = _source("ghostnet_050")
    sd = {prefix + k: v for k, v in src.state_dict().items()}
    path = tmp_path / "wrapped.pth.tar"
    torch.save({wrap: sd, "epoch": 3}, path)
    assert torch.equal(_out(create_model("ghostnet_050", weights=str(path))), _out(src))


def test_other_num_classes_reinitialises_classifier(tmp_path, caplog):
    src = _source("ghostnet_050")
    path = tmp_path / "in1k.pth"
    torch.save(src.state_dict(), path)
    m = create_model("ghostnet_050", num_classes=10)
    notes = load_checkpoint(m, path, family="ghostnet")
    assert notes and "re-initialised the classifier" in notes[0] and "1000 classes" in notes[0]
    assert m.classifier.out_features == 10
    with torch.no_grad():
        assert torch.equal(m.eval().forward_features(X), src.forward_features(X))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": _source("ghostnet_050").state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UserError, match="needs more than tensors"):
        create_model("ghostnet_050", weights=str(path))


def test_mismatch_names_keys_and_shapes(tmp_path):
    sd = _source("ghostnet_050").state_dict()
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    with pytest.raises(UserError, match=r"shape mismatch at 'conv_stem.weight'.*\(8, 3, 3, 3\) vs model \(16, 3, 3, 3\)"):
        create_model("ghostnet_100", weights=str(path))
    sd2 = dict(sd)
    sd2.pop("bn1.running_var")
    sd2["extra.weight"] = torch.zeros(1)
    torch.save(sd2, path)
    with pytest.raises(UserError) as e:
        create_model("ghostnet_050", weights=str(path))
    msg = str(e.value)
    assert "missing 1 key(s), first 'bn1.running_var'" in msg and "unexpected 1 key(s), first 'extra.weight'" in msg
    assert "\n" not in msg


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        create_model("ghostnet_050", weights=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match="corrupt or unreadable"):
        create_model("ghostnet_050", weights=str(bad))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        create_model("ghostnet_050", weights=str(empty))
    text = tmp_path / "notes.pth"  # a text file: torch's message spans several lines, ours is one
    text.write_text("garbage\n")
    with pytest.raises(UserError, match="corrupt or unreadable") as e:
        create_model("ghostnet_050", weights=str(text))
    assert "\n" not in str(e.value) and "Check the documentation" not in str(e.value)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"{not json")
    with pytest.raises(UserError, match="corrupt safetensors"):
        create_model("ghostnet_050", weights=str(bad_st))


def test_unknown_model_suggests_close_names():
    with pytest.raises(UserError, match="did you mean .*ghostnetv2_100"):
        create_model("ghostnetv2_10")
