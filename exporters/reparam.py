"""Re-parameterise a model for inference before it is traced (RepVGG/MobileOne-style branches, conv+BN pairs).

Models trained with parallel branches (MobileOne, RepViT, FastViT, RepGhost, GhostNetV3, LeViT, …)
fold them into single convolutions for deployment. timm marks such modules with one of three methods:
`fuse()` returns the module that replaces it, `reparameterize()` and `switch_to_deploy()` change it
in place. Tracing the training form ships every branch: `mobileone_s0` becomes 191 convolutions
instead of 43. We fold a copy, so the original module stays the parity reference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from mobiledeploy.errors import UserError

# Checked in this order on every submodule (timm's precedence).
METHODS = ("fuse", "reparameterize", "switch_to_deploy")
STAGE = "PyTorch module"


@dataclass
class Reparameterized:
    """The module to trace and what was folded (empty when the model has nothing to fold)."""

    module: torch.nn.Module
    folded: dict[str, int] = field(default_factory=dict)  # method → modules it was called on

    def record(self) -> dict[str, Any] | None:
        """The manifest's rewrites entry, or None when nothing was folded."""
        if not self.folded:
            return None
        how = ", ".join(f"{m}()×{n}" for m, n in self.folded.items())
        return {"name": "reparameterize", "changed": sum(self.folded.values()), "stage": STAGE,
                "what": f"training-time branches folded for inference ({how}); verified against the unfolded model"}


def supports(module: torch.nn.Module) -> bool:
    """True when some submodule has a re-parameterisation method."""
    return any(_method(m) for m in _descendants(module))


def reparameterize(module: torch.nn.Module) -> Reparameterized:
    """An eval-mode copy with every re-parameterisable submodule folded (the module itself when none is)."""
    if not supports(module):
        return Reparameterized(module)
    folded: dict[str, int] = {}
    work = copy.deepcopy(module).eval()
    with torch.no_grad():
        _fold_children(work, folded)
    return Reparameterized(work.eval(), folded)


def _fold_children(parent: torch.nn.Module, folded: dict[str, int], prefix: str = "") -> None:
    for name, child in list(parent.named_children()):
        method = _method(child)
        try:
            if method == "fuse":
                fused = child.fuse()
                if isinstance(fused, torch.nn.Module):  # some fuse() fold in place and return None
                    setattr(parent, name, fused)
                    child = fused
            elif method is not None:
                getattr(child, method)()
        except Exception as e:  # a method of that name with another meaning, or a broken fold: the user's to see
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"cannot re-parameterise {prefix}{name} ({type(child).__name__}.{method}(): {why})",
                            "pass --no-reparam to export the model as built") from e
        if method is not None:
            folded[method] = folded.get(method, 0) + 1
        _fold_children(child, folded, f"{prefix}{name}.")


def _method(m: torch.nn.Module) -> str | None:
    return next((name for name in METHODS if callable(getattr(m, name, None))), None)


def _descendants(module: torch.nn.Module):
    mods = module.modules()
    next(mods)  # the model itself: timm folds only its submodules
    return mods
