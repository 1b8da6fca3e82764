"""Reference models registered under timm's names, and their checkpoint loaders."""

from ._registry import ModelCfg, create_model, get_cfg, list_models, register_model

__all__ = ["ModelCfg", "create_model", "get_cfg", "list_models", "register_model"]
