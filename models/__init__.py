"""Reference models registered under timm's names, and their checkpoint loaders."""

from ._registry import ModelCfg, create_model, get_cfg, list_models, register_alias, register_model, resolve_name

__all__ = ["ModelCfg", "create_model", "get_cfg", "list_models", "register_alias", "register_model", "resolve_name"]
