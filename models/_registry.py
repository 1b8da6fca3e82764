"""Model registry: factories registered by a decorator under timm's names (timm's style)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

from mobiledeploy.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCfg:
    """Metadata carried beside a model's code: input size, normalisation, checkpoint layouts."""

    family: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    num_classes: int = 1000
    weights_formats: tuple[str, ...] = ("timm",)  # keys of checkpoint.LAYOUTS
    extra: dict = field(default_factory=dict)


# Modules whose @register_model decorators fill the registry; a new family is one line here.
_FAMILIES = ("ghostnet", "mobilenetv2", "kat")

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_ALIASES: dict[str, str] = {}  # family name → its default member, so `export ghostnetv2` just works
_CFGS: dict[str, ModelCfg] = {}


def register_model(cfg: ModelCfg) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory under its function name with its default config."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        _CFGS[name] = cfg
        return fn

    return deco


def register_alias(alias: str, name: str) -> None:
    """Let a short name (a family, e.g. `ghostnetv2`) stand for a registered model."""
    _ALIASES[alias] = name


def resolve_name(name: str) -> str:
    """The registered name behind an alias (or the name itself)."""
    _ensure_loaded()
    return _ALIASES.get(name, name)


def list_models(family: str | None = None) -> list[str]:
    """Names of registered models, optionally of one family, sorted."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if family is None or _CFGS[n].family == family)


def get_cfg(name: str) -> ModelCfg:
    """The default config of a registered model."""
    name = resolve_name(name)
    if name not in _CFGS:
        raise unknown_model(name)
    return _CFGS[name]


def unknown_model(name: str) -> UserError:
    """An error for an unknown name that lists the closest registered names."""
    close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `mobiledeploy models` for the list"
    return UserError(f"unknown model {name!r}", hint)


def create_model(
    name: str, weights: str | None = None, num_classes: int = 1000, **kwargs
) -> nn.Module:
    """Build a registered model, optionally loading a checkpoint file (any supported layout)."""
    name = resolve_name(name)
    if name not in _MODELS:
        raise unknown_model(name)
    model = _MODELS[name](num_classes=num_classes, **kwargs)
    cfg = _CFGS[name]
    model.default_cfg = cfg  # type: ignore[attr-defined]
    model.model_name = name  # type: ignore[attr-defined]
    if weights is not None:
        from .checkpoint import load_checkpoint

        load_checkpoint(model, weights, family=cfg.family)
    return model


def _ensure_loaded() -> None:
    """Import the model family modules so their decorators fill the registry."""
    import importlib

    for family in _FAMILIES:
        importlib.import_module(f"{__package__}.{family}")
