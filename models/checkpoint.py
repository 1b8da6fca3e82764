"""Checkpoint loading: every published layout, no arbitrary unpickling, one clear error on mismatch."""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from mobiledeploy.errors import UserError

log = logging.getLogger(__name__)

# Layouts we recognise, as listed by `mobiledeploy models`.
LAYOUTS = {
    "timm": "timm .pth/.bin/.safetensors",
    "huawei": "official Huawei GhostNet .pth/.pth.tar (thop entries dropped)",
    "torchvision": "torchvision MobileNetV2 state dict",
    "kat": "KAT / FlashKAT checkpoints",
}
_WRAPPERS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")
_PREFIXES = ("module.", "_orig_mod.")
_THOP = re.compile(r"(^|\.)(total_ops|total_params)$")

# Per-family key remappers; a family registers one with @register_key_mapper.
_MAPPERS: dict[str, Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]] = {}


def register_key_mapper(family: str):
    """Register a function that maps a foreign layout's keys onto a family's keys."""

    def deco(fn):
        _MAPPERS[family] = fn
        return fn

    return deco


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a tensors-only state dict from a file, refusing anything that needs unpickling code."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"weights file not found: {p}", "check the path")
    if p.is_dir():
        raise UserError(f"weights path is a folder, not a file: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"weights file {p} is empty", "the download or copy may have failed: fetch it again")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p)))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"corrupt safetensors file {p.name}: {_first_line(e)}") from None
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses globals it does not know: the file holds code, not just tensors.
        full = str(e)
        if "Unsupported global" in full or "Unsupported class" in full:
            g = re.search(r"GLOBAL ([\w.]+)", full)
            what = f" ({g.group(1)})" if g else ""
            raise UserError(
                f"refusing {p.name}: it needs more than tensors to load{what}, and unpickling "
                "arbitrary objects could run code",
                "re-save it as a plain state dict or .safetensors",
            ) from None
        why = re.search(r"(invalid load key[^.\n]*|Unsupported operand[^.\n]*)", full)  # one line of torch's message
        detail = why.group(1) if why else "not a PyTorch checkpoint"
        raise UserError(f"corrupt or unreadable weights file {p.name}: {detail}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"corrupt or unreadable weights file {p.name}: {_first_line(e)}") from None
    return unwrap(obj, p.name)


def unwrap(obj: object, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap training wrappers (state_dict, state_dict_ema, model) and strip DDP/compile prefixes."""
    for _ in range(3):
        if isinstance(obj, dict) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPERS if k in obj and isinstance(obj[k], dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{name} holds no state dict (found {type(obj).__name__})")
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue  # epoch counters, args, etc. beside the tensors
        if _THOP.search(k):
            continue  # thop's profiling buffers polluting the official GhostNet files
        while k.startswith(_PREFIXES):
            k = k[len(next(p for p in _PREFIXES if k.startswith(p))):]
        sd[k] = v
    if not sd:
        raise UserError(f"{name} holds no tensors")
    return sd


def load_checkpoint(model: nn.Module, path: str | Path, family: str | None = None) -> list[str]:
    """Load a checkpoint into model; returns notes (e.g. classifier re-initialised)."""
    sd = read_state_dict(path)
    mapper = _MAPPERS.get(family or "")
    if mapper is not None:
        sd = mapper(sd, model)
    return apply_state_dict(model, sd, Path(path).name)


def apply_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], name: str) -> list[str]:
    """Copy sd into model strictly, except a classifier of another class count, which is re-initialised."""
    own = model.state_dict()
    notes: list[str] = []
    head = _classifier_keys(model)
    mismatched = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if mismatched and all(k in head for k in mismatched):
        n_ckpt = sd[next(k for k in mismatched if k.endswith("weight"))].shape[0] if any(
            k.endswith("weight") for k in mismatched) else "?"
        for k in head:
            sd.pop(k, None)
        msg = (f"{name}: classifier has {n_ckpt} classes, model has {getattr(model, 'num_classes', '?')}; "
               "loaded the backbone and re-initialised the classifier")
        log.warning(msg)
        notes.append(msg)
        mismatched = []
    missing = [k for k in own if k not in sd and not (notes and k in head)]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), first {missing[0]!r}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), first {unexpected[0]!r}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape mismatch at {k!r}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}")
        arch = getattr(model, "model_name", type(model).__name__)
        raise UserError(f"{name} does not fit {arch}: " + "; ".join(parts),
                        "check the model name/width matches the checkpoint")
    model.load_state_dict(sd, strict=not notes)
    return notes


def _classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the final classifier (named by default_cfg or 'classifier'/'head')."""
    for attr in ("classifier", "head"):
        mod = getattr(model, attr, None)
        if isinstance(mod, nn.Linear):
            return {f"{attr}.weight", f"{attr}.bias"}
    return set()


def _is_tensor_dict(d: dict) -> bool:
    return any(isinstance(v, torch.Tensor) for v in d.values())


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__
