"""The GR-KAN module: KAT's group-rational activation with a reference and a Triton backend."""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from mobiledeploy.errors import UserError

from .init import init_coefficients
from .op import eager_plan, grkan, has_triton, planned_grkan
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
        # (numerator, denominator, call signature, launch plan) of the last eager Triton call
        self._eager: tuple | None = None
        a, b = init_coefficients(init, num_groups)
        self.weight_numerator = nn.Parameter(a)
        self.weight_denominator = nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # This runs 24 times per KAT-T training step, and its host time is the step's: an eager call like
        # the previous one (same shape, dtypes, device, parameters, settings) reuses that call's launch
        # plan after a few comparisons; anything else takes the checked path below.
        a, b = self.weight_numerator, self.weight_denominator
        out_dtype = None
        if x.dtype is torch.float32 and self.autocast_output and torch.is_autocast_enabled(x.device.type):
            out_dtype = torch.get_autocast_dtype(x.device.type)
        if torch.compiler.is_compiling() or tracing_for_export():
            return self._checked_forward(x, a, b, out_dtype)
        signature = (x.shape, x.dtype, x.device, out_dtype, self.backend, self.deterministic)
        last = self._eager
        if last is not None and last[0] is a and last[1] is b and last[3].valid and last[2] == signature:
            return planned_grkan(x, a, b, last[3])
        y = self._checked_forward(x, a, b, out_dtype)
        plan = eager_plan(x, b, out_dtype, self.deterministic) if self._use_op(x) else None
        self._eager = (a, b, signature, plan) if plan is not None and plan.valid else None
        return y

    def __getstate__(self) -> dict:
        # The cached plan holds launchers (closures): not picklable, and rebuilt by the next call anyway.
        return {**self.__dict__, "_eager": None}

    def _checked_forward(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                         out_dtype: torch.dtype | None) -> torch.Tensor:
        check_shapes(x, a, b)
        if self._use_op(x):
            return grkan(x, a, b, self.deterministic, out_dtype)
        y = grkan_reference(x, a, b)
        return y if out_dtype is None else y.to(out_dtype)

    def _use_op(self, x: torch.Tensor) -> bool:
        """Whether forward takes the op (Triton kernels where they run) rather than the reference math."""
        if self.backend == "reference" or tracing_for_export():
            return False
        return self.backend == "triton" or (x.is_cuda and self._triton)

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, init={self.init_mode!r}, backend={self.backend!r}"
