"""GhostNetV1 (Han et al., 2020) and GhostNetV2 with DFC attention (Tang et al., 2022).

State-dict keys follow the official Huawei releases and timm, so both load as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._layers import BatchNormAct2d, make_divisible
from ._registry import ModelCfg, register_alias, register_model

# Per stage: blocks of (dw kernel, expansion channels, out channels, SE ratio, stride).
_ARCH = (
    ((3, 16, 16, 0, 1),),
    ((3, 48, 24, 0, 2),),
    ((3, 72, 24, 0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0, 2),),
    ((3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1)),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)),
)


def _conv_bn(in_chs: int, out_chs: int, k: int | tuple[int, int], stride: int = 1, groups: int = 1) -> list[nn.Module]:
    pad = (k[0] // 2, k[1] // 2) if isinstance(k, tuple) else k // 2
    return [nn.Conv2d(in_chs, out_chs, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(out_chs)]


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a hard-sigmoid gate and channels rounded to 4 (GhostNet's SE)."""

    def __init__(self, chs: int, ratio: float = 0.25) -> None:
        super().__init__()
        rd = make_divisible(chs * ratio, 4)
        self.conv_reduce = nn.Conv2d(chs, rd, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(s)


class GhostModule(nn.Module):
    """Half the output channels from a 1×1 conv, the other half from a cheap depthwise conv of them."""

    def __init__(self, in_chs: int, out_chs: int, act: bool = True, ratio: int = 2, dw_size: int = 3) -> None:
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / ratio)
        new_chs = init_chs * (ratio - 1)
        act_layer = nn.ReLU(inplace=True) if act else nn.Identity()
        self.primary_conv = nn.Sequential(*_conv_bn(in_chs, init_chs, 1), act_layer)
        self.cheap_operation = nn.Sequential(
            *_conv_bn(init_chs, new_chs, dw_size, groups=init_chs),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out[:, : self.out_chs]


class DFCAttention(nn.Sequential):
    """Decoupled fully-connected attention: the gate map of GhostNetV2, before its upsampling.

    Keys are those of the official `short_conv`: 1×1 conv+BN, (1,5) depthwise+BN, (5,1) depthwise+BN.
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__(
            *_conv_bn(in_chs, out_chs, 1),
            *_conv_bn(out_chs, out_chs, (1, 5), groups=out_chs),
            *_conv_bn(out_chs, out_chs, (5, 1), groups=out_chs),
        )

    def gate(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Official forward: avg-pool 2/2 (floor), convs, sigmoid, nearest interpolation to `size`."""
        res = super().forward(F.avg_pool2d(x, kernel_size=2, stride=2))
        return F.interpolate(torch.sigmoid(res), size=size, mode="nearest")


class GhostModuleV2(GhostModule):
    """A Ghost module whose output is multiplied by the DFC attention gate."""

    def __init__(self, in_chs: int, out_chs: int, act: bool = True) -> None:
        super().__init__(in_chs, out_chs, act)
        self.short_conv = DFCAttention(in_chs, out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out * self.short_conv.gate(x, (out.shape[-2], out.shape[-1]))


class GhostBottleneck(nn.Module):
    """Ghost module → (strided depthwise) → (SE) → linear Ghost module, plus a shortcut."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, dw_kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, attn: bool = False) -> None:
        super().__init__()
        self.ghost1 = GhostModuleV2(in_chs, mid_chs) if attn else GhostModule(in_chs, mid_chs)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel, stride, (dw_kernel - 1) // 2, groups=mid_chs,
                                     bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        else:
            self.conv_dw = self.bn_dw = None
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio else None
        self.ghost2 = GhostModule(mid_chs, out_chs, act=False)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(*_conv_bn(in_chs, in_chs, dw_kernel, stride, groups=in_chs),
                                          *_conv_bn(in_chs, out_chs, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost1(x)
        if self.conv_dw is not None:
            y = self.bn_dw(self.conv_dw(y))
        if self.se is not None:
            y = self.se(y)
        return self.ghost2(y) + self.shortcut(x)


class ConvBnAct(nn.Module):
    """1×1 conv → BN → ReLU, keyed conv/bn1 like timm's ConvBnAct."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn1 = BatchNormAct2d(out_chs, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv(x))


class GhostNet(nn.Module):
    """GhostNet; `version='v2'` turns on DFC attention in every block after the second."""

    def __init__(self, width: float = 1.0, version: str = "v1", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(in_chans, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = nn.ReLU(inplace=True)
        prev, stages, idx = stem, [], 0
        for stage in _ARCH:
            blocks = []
            for k, exp, c, se, s in stage:
                out, mid = make_divisible(c * width, 4), make_divisible(exp * width, 4)
                # The official V2 keeps the first two blocks plain (layer_id <= 1).
                blocks.append(GhostBottleneck(prev, mid, out, k, s, se, attn=version == "v2" and idx > 1))
                prev, idx = out, idx + 1
            stages.append(nn.Sequential(*blocks))
        self.pool_dim = make_divisible(_ARCH[-1][-1][1] * width, 4)
        stages.append(nn.Sequential(ConvBnAct(prev, self.pool_dim)))
        self.blocks = nn.Sequential(*stages)
        self.num_features = self.pool_dim
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(self.pool_dim, 1280, 1, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(1280, num_classes) if num_classes > 0 else nn.Identity()
        # No re-initialisation: PyTorch defaults, as the official GhostNet and timm build it.

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and blocks, up to the last feature map."""
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.act2(self.conv_head(self.global_pool(self.forward_features(x)))))
        if self.drop_rate > 0.0 and self.training:
            x = F.dropout(x, self.drop_rate, training=True)
        return self.classifier(x)


def _cfg(family: str) -> ModelCfg:
    return ModelCfg(family=family, interpolation="bilinear", weights_formats=("huawei", "timm"))


@register_model(_cfg("ghostnet"))
def ghostnet_050(**kw) -> GhostNet:
    """GhostNetV1 ×0.5."""
    return GhostNet(0.5, "v1", **kw)


@register_model(_cfg("ghostnet"))
def ghostnet_100(**kw) -> GhostNet:
    """GhostNetV1 ×1.0."""
    return GhostNet(1.0, "v1", **kw)


@register_model(_cfg("ghostnet"))
def ghostnet_130(**kw) -> GhostNet:
    """GhostNetV1 ×1.3."""
    return GhostNet(1.3, "v1", **kw)


@register_model(_cfg("ghostnetv2"))
def ghostnetv2_100(**kw) -> GhostNet:
    """GhostNetV2 ×1.0 (DFC attention)."""
    return GhostNet(1.0, "v2", **kw)


@register_model(_cfg("ghostnetv2"))
def ghostnetv2_130(**kw) -> GhostNet:
    """GhostNetV2 ×1.3 (DFC attention)."""
    return GhostNet(1.3, "v2", **kw)


@register_model(_cfg("ghostnetv2"))
def ghostnetv2_160(**kw) -> GhostNet:
    """GhostNetV2 ×1.6 (DFC attention)."""
    return GhostNet(1.6, "v2", **kw)


# The family name stands for its 1.0 width (`mobiledeploy export ghostnetv2 --target coreml`).
register_alias("ghostnet", "ghostnet_100")
register_alias("ghostnetv2", "ghostnetv2_100")
