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

    `autocast_output`: under autocast, an fp32 input gives an output in the autocast dtype (bf16), the
    dtype the Linear that follows in KAT's MLP would cast it to: the kernel writes it directly (computed
    in fp32, rounded once, as the cast would) and takes its gradient in that dtype, which saves the cast
    launches and half the output traffic. False keeps the input's dtype.
    """

    def __init__(self, num_groups: int = 8, init: str = "identity", backend: str | None = None,
                 deterministic: bool = True, autocast_output: bool = True) -> None:
        super().__init__()
        backend = backend or os.environ.get(BACKEND_ENV) or "auto"
        if backend not in BACKENDS:
            raise UserError(f"unknown GR-KAN backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
        self.num_groups = num_groups
        self.init_mode = init
        self.backend = backend
        self.deterministic = deterministic
        self.autocast_output = autocast_output
        self._triton = has_triton()
        self._checked: tuple | None = None  # (channels, numerator, denominator) last validated
        a, b = init_coefficients(init, num_groups)
        self.weight_numerator = nn.Parameter(a)
        self.weight_denominator = nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.weight_numerator, self.weight_denominator
        # Validate once per channel count and parameter objects, not on every call (host time per step).
        if self._checked is None or self._checked[0] != x.shape[-1] or self._checked[1] is not a \
                or self._checked[2] is not b or torch.compiler.is_compiling():
            check_shapes(x, a, b)
            if not torch.compiler.is_compiling():
                self._checked = (x.shape[-1], a, b)
        out_dtype = self._out_dtype(x)
        if self._use_op(x):
            return grkan(x, a, b, self.deterministic, out_dtype)
        y = grkan_reference(x, a, b)
        return y if out_dtype is None else y.to(out_dtype)

    def _out_dtype(self, x: torch.Tensor) -> torch.dtype | None:
        """The autocast dtype for an fp32 input under autocast (see autocast_output), else None: x's dtype."""
        if not self.autocast_output or x.dtype != torch.float32:
            return None
        dev = x.device.type
        if not torch.is_autocast_enabled(dev):
            return None
        return torch.get_autocast_dtype(dev)

    def _use_op(self, x: torch.Tensor) -> bool:
        if self.backend == "reference" or tracing_for_export():
            return False
        if self.backend == "triton":
            return True
        return x.is_cuda and self._triton

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, init={self.init_mode!r}, backend={self.backend!r}"
