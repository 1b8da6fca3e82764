"""The GR-KAN module: KAT's group-rational activation with a reference and a Triton backend."""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from mobiledeploy.errors import UserError

from .init import init_coefficients
from .op import grkan, has_triton
from .reference import check_shapes, grkan_reference

BACKENDS = ("auto", "reference", "triton")
BACKEND_ENV = "MOBILEDEPLOY_GRKAN_BACKEND"


def tracing_for_export() -> bool:
    """True while torch.export / torch.jit trace the model: they must see plain elementwise ops.

    Reads torch.compiler's flag rather than calling is_exporting(): Dynamo in torch 2.11 constant-folds
    is_exporting() to True under plain torch.compile too, which sent compiled models down the
    reference path (its abs/sgn math then landed inside Inductor instead of our op, and attention
    lost SDPA).
    """
    flag = getattr(torch.compiler, "_is_exporting_flag", None)
    exporting = torch.compiler.is_exporting() if flag is None else flag
    return exporting or torch.jit.is_tracing() or torch.jit.is_scripting()


class GRKAN(nn.Module):
    """y = P(x)/Q(x) over the last dim, 8 contiguous channel groups by default (KAT's KAT_Group).

    `backend`: "auto" (Triton custom op on CUDA, PyTorch reference elsewhere), "reference" or
    "triton" (custom op; on the CPU it needs TRITON_INTERPRET=1, else it runs the reference math).
    Default from $MOBILEDEPLOY_GRKAN_BACKEND, else "auto". torch.export always gets the reference.
    """

    def __init__(self, num_groups: int = 8, init: str = "identity", backend: str | None = None,
                 deterministic: bool = True) -> None:
        super().__init__()
        backend = backend or os.environ.get(BACKEND_ENV) or "auto"
        if backend not in BACKENDS:
            raise UserError(f"unknown GR-KAN backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
        self.num_groups = num_groups
        self.init_mode = init
        self.backend = backend
        self.deterministic = deterministic
        self._triton = has_triton()
        a, b = init_coefficients(init, num_groups)
        self.weight_numerator = nn.Parameter(a)
        self.weight_denominator = nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shapes(x, self.weight_numerator, self.weight_denominator)
        if self._use_op(x):
            return grkan(x, self.weight_numerator, self.weight_denominator, self.deterministic)
        return grkan_reference(x, self.weight_numerator, self.weight_denominator)

    def _use_op(self, x: torch.Tensor) -> bool:
        if self.backend == "reference" or tracing_for_export():
            return False
        if self.backend == "triton":
            return True
        return x.is_cuda and self._triton

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, init={self.init_mode!r}, backend={self.backend!r}"
