"""Small building blocks shared by the CNN families."""

from __future__ import annotations

import math

import torch.nn as nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round channels to a multiple of divisor, never dropping more than 10 % (the MobileNet rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def init_weights(model: nn.Module) -> None:
    """Default initialisation: He-normal convs, unit BN, small uniform linear layers."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # He-normal over fan-out per group (timm's "goog" init): torch's kaiming counts all output
            # channels for a depthwise conv, which shrinks MobileNetV2's activations to ~1e-9.
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBnAct(nn.Sequential):
    """Conv2d → BatchNorm2d → optional activation, keyed conv/bn1 as in timm's ConvBnAct."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1,
                 act_layer: type[nn.Module] | None = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = act_layer(inplace=True) if act_layer is not None else nn.Identity()


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by an activation, with plain BN keys (timm's BatchNormAct2d layout)."""

    def __init__(self, num_features: int, act_layer: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__(num_features)
        self.act = act_layer(inplace=True)

    def forward(self, x):  # type: ignore[override]
        return self.act(super().forward(x))
