"""Segmentation-style models through Core ML and the reference interpreter: bilinear upsampling and
transposed convolutions, fp32, relative L2 error ≤ 1e-5 against PyTorch on random inputs.

Conversion goes straight through coremltools after the exporter's generic torch.export rewrites (what
`mobiledeploy export` applies for every target), so these tests do not depend on the CLI pipeline.
torchvision's segmentation models return {"out": …}; they are wrapped to return the tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

ct = pytest.importorskip("coremltools")

from conftest import randomize_bn  # noqa: E402

from mobiledeploy.exporters.mlinterp import CoreMLModel, MLProgram  # noqa: E402


class OutTensor(nn.Module):
    """A torchvision segmentation model that returns its "out" map instead of a dict."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class TinyUNet(nn.Module):
    """Two-level U-Net: stride-2 ConvTranspose2d up-sampling (k=2 and k=3 with output_padding), skips."""

    def __init__(self, c: int = 8, classes: int = 3) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                                 nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        self.enc1, self.enc2, self.mid = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1)
        self.dec2 = block(4 * c, 2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = block(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def _torchvision(name: str) -> nn.Module:
    import torchvision.models.segmentation as seg

    return OutTensor(getattr(seg, name)(weights=None, weights_backbone=None))


def _timm(name: str, size: int) -> nn.Module:
    import timm

    kw = {"img_size": size} if name.startswith("efficientformerv2") else {}
    return timm.create_model(name, pretrained=False, **kw)


def to_coreml(model: nn.Module, x: torch.Tensor, path: Path) -> Path:
    """torch.export → the exporter's generic rewrites → coremltools ML program (fp32), saved at `path`."""
    from mobiledeploy.exporters.rewrites import GENERIC, RewriteContext, apply_rewrites

    program = torch.export.export(model, (x,))
    program, _ = apply_rewrites(program, GENERIC, RewriteContext(example_inputs=(x,), target="coreml"))
    ml = ct.convert(program.run_decompositions({}), convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                    compute_precision=ct.precision.FLOAT32, inputs=[ct.TensorType(name="x", shape=tuple(x.shape))])
    ml.save(str(path))
    return path


def _verify(model: nn.Module, size: int, tmp_path: Path, must_have: set[str]) -> float:
    """Relative L2 error of the interpreter's output vs PyTorch's, after checking which ops it ran."""
    model = randomize_bn(model.eval())
    x = torch.randn(1, 3, size, size)
    path = to_coreml(model, x, tmp_path / "m.mlpackage")
    ops = {s.op_type for s in MLProgram(path).steps}
    assert must_have <= ops, f"the program lacks {must_have - ops}; it has {sorted(ops)}"
    got = next(iter(CoreMLModel(path).predict({"x": x.numpy()}).values()))
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == ref.shape and got.dtype == np.float32
    return float(np.linalg.norm(got.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("name,size", [("lraspp_mobilenet_v3_large", 96), ("deeplabv3_mobilenet_v3_large", 64)])
def test_torchvision_segmentation(tmp_path, name, size):
    err = _verify(_torchvision(name), size, tmp_path, {"upsample_bilinear", "conv"})
    assert err <= 1e-5, f"{name}: rel L2 {err:.3g}"


def test_unet_with_transposed_convolutions(tmp_path):
    err = _verify(TinyUNet(), 48, tmp_path, {"conv_transpose"})
    assert err <= 1e-5, f"rel L2 {err:.3g}"


@pytest.mark.parametrize("name,op", [("lowformer_b0", "conv_transpose"), ("efficientformerv2_s0", "upsample_bilinear")])
def test_timm_models_with_upsampling_layers(tmp_path, name, op):
    err = _verify(_timm(name, 64), 64, tmp_path, {op})
    assert err <= 1e-5, f"{name}: rel L2 {err:.3g}"


@pytest.mark.slow
def test_lraspp_full_size(tmp_path):
    err = _verify(_torchvision("lraspp_mobilenet_v3_large"), 224, tmp_path, {"upsample_bilinear"})
    assert err <= 1e-5, f"rel L2 {err:.3g}"
