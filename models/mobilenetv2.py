"""MobileNetV2 (Sandler et al., 2018), with timm's state-dict layout; torchvision files load too."""

from __future__ import annotations

import torch
import torch.nn as nn

from ._layers import BatchNormAct2d, init_weights, make_divisible
from ._registry import ModelCfg, register_alias, register_model
from .checkpoint import register_key_mapper

# (expansion, channels, repeats, stride) per stage; stage 0 is the depthwise-separable block.
_ARCH = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3×3 → BN+ReLU6 → pointwise → BN (the first MobileNetV2 block)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_dw = nn.Conv2d(in_chs, in_chs, 3, stride, 1, groups=in_chs, bias=False)
        self.bn1 = BatchNormAct2d(in_chs)
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return x + y if self.has_skip else y


class InvertedResidual(nn.Module):
    """Pointwise expand → depthwise 3×3 → pointwise-linear project, residual when shapes allow."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = make_divisible(in_chs * expand)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = BatchNormAct2d(mid)
        self.conv_pwl = nn.Conv2d(mid, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.has_skip else y


class MobileNetV2(nn.Module):
    """MobileNetV2 with a width multiplier; keys match timm's mobilenetv2_* models."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem = make_divisible(32 * width)
        self.conv_stem = nn.Conv2d(in_chans, stem, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(stem)
        prev, stages = stem, []
        for i, (t, c, n, s) in enumerate(_ARCH):
            out = make_divisible(c * width)
            blocks = []
            for j in range(n):
                stride = s if j == 0 else 1
                blocks.append(DepthwiseSeparable(prev, out, stride) if i == 0 else InvertedResidual(prev, out, stride, t))
                prev = out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = max(1280, make_divisible(1280 * width))
        self.conv_head = nn.Conv2d(prev, self.num_features, 1, bias=False)
        self.bn2 = BatchNormAct2d(self.num_features)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and blocks, up to the last feature map before the head."""
        return self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.forward_features(x)).flatten(1)
        if self.drop_rate > 0.0 and self.training:
            x = nn.functional.dropout(x, self.drop_rate, training=True)
        return self.classifier(x)


_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _tv_key_map() -> dict[str, str]:
    """torchvision `features.*` / `classifier.1` keys → ours (module prefixes; BN/conv suffixes follow)."""
    m = {"features.0.0": "conv_stem", "features.0.1": "bn1", "classifier.1": "classifier"}
    blocks = [(i, j) for i, (_, _, n, _) in enumerate(_ARCH) for j in range(n)]
    for b, (i, j) in enumerate(blocks, start=1):
        src, dst = f"features.{b}.conv", f"blocks.{i}.{j}"
        if i == 0:
            m |= {f"{src}.0.0": f"{dst}.conv_dw", f"{src}.0.1": f"{dst}.bn1", f"{src}.1": f"{dst}.conv_pw",
                  f"{src}.2": f"{dst}.bn2"}
        else:
            m |= {f"{src}.0.0": f"{dst}.conv_pw", f"{src}.0.1": f"{dst}.bn1", f"{src}.1.0": f"{dst}.conv_dw",
                  f"{src}.1.1": f"{dst}.bn2", f"{src}.2": f"{dst}.conv_pwl", f"{src}.3": f"{dst}.bn3"}
    last = len(blocks) + 1
    m |= {f"features.{last}.0": "conv_head", f"features.{last}.1": "bn2"}
    return m


@register_key_mapper("mobilenetv2")
def _map_torchvision(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Accept torchvision's MobileNetV2 layout; timm-layout files pass through unchanged."""
    if not any(k.startswith("features.") for k in sd):
        return sd
    table = _tv_key_map()
    out = {}
    for k, v in sd.items():
        mod, _, leaf = k.rpartition(".")
        out[f"{table.get(mod, mod)}.{leaf}"] = v
    return out


def _cfg() -> ModelCfg:
    return ModelCfg(family="mobilenetv2", interpolation="bicubic", weights_formats=("timm", "torchvision"))


@register_model(_cfg())
def mobilenetv2_035(**kw) -> MobileNetV2:
    """MobileNetV2 ×0.35."""
    return MobileNetV2(0.35, **kw)


@register_model(_cfg())
def mobilenetv2_050(**kw) -> MobileNetV2:
    """MobileNetV2 ×0.5."""
    return MobileNetV2(0.5, **kw)


@register_model(_cfg())
def mobilenetv2_075(**kw) -> MobileNetV2:
    """MobileNetV2 ×0.75."""
    return MobileNetV2(0.75, **kw)


@register_model(_cfg())
def mobilenetv2_100(**kw) -> MobileNetV2:
    """MobileNetV2 ×1.0."""
    return MobileNetV2(1.0, **kw)


@register_model(_cfg())
def mobilenetv2_140(**kw) -> MobileNetV2:
    """MobileNetV2 ×1.4."""
    return MobileNetV2(1.4, **kw)


# The family name stands for its 1.0 width (`mobiledeploy export ghostnetv2 --target coreml`).
register_alias("mobilenetv2", "mobilenetv2_100")
