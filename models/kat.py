"""KAT, the Kolmogorov-Arnold Transformer (Yang & Wang, 2024): a ViT whose MLP is GR-KAN → fc1 → GR-KAN → fc2.

State-dict keys follow timm's VisionTransformer and KAT's published checkpoints
(`blocks.{i}.mlp.act1.weight_numerator` …); FlashKAT's `numerator_v`/`denominator_v` load too.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobiledeploy.errors import UserError

from ._registry import ModelCfg, register_alias, register_model
from .checkpoint import register_key_mapper
from .grkan import GRKAN
from .grkan.layer import tracing_for_export as _exporting


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv, flattened to tokens (timm's PatchEmbed keys)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.grid = img_size // patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] != self.img_size or x.shape[-1] != self.img_size:
            n = self.img_size
            raise UserError(f"KAT was built for {n}×{n} inputs, got {x.shape[-2]}×{x.shape[-1]}",
                            f"export it at --input-size {n}, or build the model with img_size=… in Python")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention; fused SDPA for training, explicit softmax math when exporting."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if _exporting():
            # Plain matmul/softmax: every exporter (ONNX, TFLite, Core ML) lowers these exactly.
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = attn @ v
        else:
            x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class KANMlp(nn.Module):
    """KAT's MLP: GR-KAN (identity init) → fc1 → GR-KAN (swish init) → fc2."""

    def __init__(self, dim: int, hidden: int, num_groups: int = 8, act_init: str = "swish",
                 backend: str | None = None, drop: float = 0.0) -> None:
        super().__init__()
        self.act1 = GRKAN(num_groups, "identity", backend)
        self.fc1 = nn.Linear(dim, hidden)
        self.act2 = GRKAN(num_groups, act_init, backend)
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act2(self.fc1(self.act1(x))))))


class GeluMlp(nn.Module):
    """ViT's MLP (fc1 → GELU → fc2): the same transformer with it is ViT, the baseline KAT is judged by."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, **_) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's residual branch in training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, mlp: str, num_groups: int,
                 backend: str | None, drop: float, drop_path: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = KANMlp(dim, hidden, num_groups, backend=backend, drop=drop) if mlp == "kan" \
            else GeluMlp(dim, hidden, drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class KAT(nn.Module):
    """Vision transformer with a class token and learned position embeddings; `mlp='kan'` makes it KAT.

    `backend` picks the GR-KAN implementation ("auto", "reference", "triton"; see GRKAN).
    """

    def __init__(self, embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0,
                 img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 mlp: str = "kan", num_groups: int = 8, backend: str | None = None, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if mlp not in ("kan", "gelu"):
            raise UserError(f"unknown MLP kind {mlp!r}", "use 'kan' or 'gelu'")
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.grid ** 2 + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, mlp, num_groups, backend, drop_rate, dpr[i]) for i in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ViT init: truncated normal (std .02) for linears and embeddings, zero biases.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the final norm, class token first."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.forward_features(x)[:, 0]))


_KAT = dict(family="kat", interpolation="bicubic", crop_pct=0.9, weights_formats=("kat",))


@register_model(ModelCfg(**_KAT))
def kat_tiny_patch16_224(num_classes: int = 1000, **kwargs) -> KAT:
    """KAT-Tiny: embed 192, 12 blocks, 3 heads (5,718,328 parameters)."""
    return KAT(192, 12, 3, num_classes=num_classes, **kwargs)


@register_model(ModelCfg(**_KAT))
def kat_small_patch16_224(num_classes: int = 1000, **kwargs) -> KAT:
    """KAT-Small: embed 384, 12 blocks, 6 heads."""
    return KAT(384, 12, 6, num_classes=num_classes, **kwargs)


@register_model(ModelCfg(**_KAT))
def kat_base_patch16_224(num_classes: int = 1000, **kwargs) -> KAT:
    """KAT-Base: embed 768, 12 blocks, 12 heads."""
    return KAT(768, 12, 12, num_classes=num_classes, **kwargs)


_FLASHKAT = re.compile(r"\.(numerator|denominator)_v$")


@register_key_mapper("kat")
def map_kat_keys(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """FlashKAT names → KAT names, a flat (6,) or per-group numerator → (1, 6), pos_embed to the model's grid."""
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        k = _FLASHKAT.sub(lambda m: f".weight_{m.group(1)}", k)
        if k.endswith("weight_numerator") and k in own and v.shape != own[k].shape:
            v = _shared_numerator(k, v)
        out[k] = v
    pe = out.get("pos_embed")
    if pe is not None and "pos_embed" in own and pe.shape != own["pos_embed"].shape:
        out["pos_embed"] = _resample_pos_embed(pe, own["pos_embed"].shape[1])
    return out


def _shared_numerator(key: str, v: torch.Tensor) -> torch.Tensor:
    """Older KAT files store the numerator flat or repeated per group; they must all be equal."""
    rows = v.reshape(-1, 6) if v.numel() % 6 == 0 else None
    if rows is None or not torch.equal(rows, rows[:1].expand_as(rows)):
        raise UserError(f"{key}: numerator of shape {tuple(v.shape)} is not one shared (1, 6) row",
                        "this checkpoint's GR-KAN layout is not supported")
    return rows[:1].clone()


def _resample_pos_embed(pe: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Bicubic resize of the patch position grid (the class token's embedding is kept), as timm does."""
    old = int(math.isqrt(pe.shape[1] - 1))
    new = int(math.isqrt(n_tokens - 1))
    if old * old + 1 != pe.shape[1] or new * new + 1 != n_tokens:
        raise UserError(f"pos_embed of {pe.shape[1]} tokens cannot be resized to {n_tokens}")
    grid = pe[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False, antialias=True)
    return torch.cat([pe[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(pe.dtype)], dim=1)


# The family name stands for its 1.0 width (`mobiledeploy export ghostnetv2 --target coreml`).
register_alias("kat", "kat_tiny_patch16_224")
