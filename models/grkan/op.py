"""GR-KAN as torch custom ops (`mobiledeploy::grkan_fwd`, `mobiledeploy::grkan_bwd`).

Registered through torch.library with fake implementations and a registered autograd formula, so
`torch.compile` keeps them as single opaque nodes (no graph break) and CUDA graphs can capture
them. On CUDA, and on the CPU under TRITON_INTERPRET=1, they run the Triton kernels; elsewhere
they fall back to the PyTorch reference math so the ops work on any device.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from .reference import grkan_reference, grkan_reference_backward

_HAS_TRITON = importlib.util.find_spec("triton") is not None
_kernels = None  # the kernels module, once imported (it must not be imported before TRITON_INTERPRET is set)


def has_triton() -> bool:
    """Whether the triton package is importable."""
    return _HAS_TRITON


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _use_triton(x: torch.Tensor) -> bool:
    """CUDA tensors run the kernels; CPU tensors only under Triton's interpreter (read from the imported
    kernels module once there is one, so a call reads no environment variable)."""
    if x.is_cuda:
        return _HAS_TRITON
    if not _HAS_TRITON or x.device.type != "cpu":
        return False
    return _kernels.INTERPRETED if _kernels is not None else _interpreting()


def _kernel_module():
    global _kernels
    if _kernels is None:
        from . import kernels

        _kernels = kernels
    return _kernels


@torch.library.custom_op("mobiledeploy::grkan_fwd", mutates_args=())
def grkan_fwd(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, deterministic: bool,
              out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """y = P(x)/Q(x) over the last dim, written in out_dtype (default x's); `deterministic` selects the
    backward's reduction."""
    return _forward_impl(x, numerator, denominator, out_dtype)


def _forward_impl(x, numerator, denominator, out_dtype):
    if _use_triton(x):
        return (_kernels or _kernel_module()).forward(x, numerator, denominator, None, out_dtype)
    y = grkan_reference(x, numerator, denominator).contiguous()
    return y if out_dtype is None or y.dtype == out_dtype else y.to(out_dtype)


def _backward_impl(grad, x, numerator, denominator, deterministic):
    if _use_triton(x):
        return (_kernels or _kernel_module()).backward(grad, x, numerator, denominator, deterministic)
    # Explicit formulas: autograd does not record inside a custom op's backend implementation.
    dx, dn, dd = grkan_reference_backward(grad, x, numerator, denominator)
    return dx.contiguous(), dn, dd


@grkan_fwd.register_fake
def _(x, numerator, denominator, deterministic, out_dtype=None):
    return x.new_empty(x.shape, dtype=out_dtype or x.dtype)


@torch.library.custom_op("mobiledeploy::grkan_bwd", mutates_args=())
def grkan_bwd(grad: torch.Tensor, x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
              deterministic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, d numerator, d denominator) for the upstream gradient `grad`; dx in x's dtype."""
    return _backward_impl(grad, x, numerator, denominator, deterministic)


@grkan_bwd.register_fake
def _(grad, x, numerator, denominator, deterministic):
    return x.new_empty(x.shape), numerator.new_empty(numerator.shape), denominator.new_empty(denominator.shape)


def _setup_context(ctx, inputs, output) -> None:
    x, numerator, denominator, deterministic, _ = inputs
    ctx.save_for_backward(x, numerator, denominator)
    ctx.deterministic = deterministic


def _backward(ctx, grad):
    x, numerator, denominator = ctx.saved_tensors
    dx, dn, dd = grkan_bwd(grad, x, numerator, denominator, ctx.deterministic)
    return dx, dn, dd, None, None


grkan_fwd.register_autograd(_backward, setup_context=_setup_context)


class _GRKANFunction(torch.autograd.Function):
    """The eager path where the kernels do not run (CPU without the interpreter): the reference formulas."""

    @staticmethod
    def forward(ctx, x, numerator, denominator, deterministic, out_dtype):
        ctx.save_for_backward(x, numerator, denominator)
        ctx.deterministic = deterministic
        return _forward_impl(x, numerator, denominator, out_dtype)

    @staticmethod
    def backward(ctx, grad):
        x, numerator, denominator = ctx.saved_tensors
        dx, dn, dd = _backward_impl(grad, x, numerator, denominator, ctx.deterministic)
        return dx, dn, dd, None, None


class _PlannedGRKAN(torch.autograd.Function):
    """The eager Triton path: a launch plan decided once per shape, so a call is little more than its
    allocations and launches. No custom-op dispatch either (its Python round trips cost more host time
    than the kernels' device time at KAT-T sizes); torch.compile gets the custom op instead."""

    @staticmethod
    def forward(ctx, x, numerator, denominator, plan):
        ctx.save_for_backward(x, numerator, denominator)
        ctx.plan = plan
        return plan.forward(x, numerator, denominator)

    @staticmethod
    def backward(ctx, grad):
        x, numerator, denominator = ctx.saved_tensors
        dx, dn, dd = ctx.plan.backward(grad, x, numerator, denominator)
        return dx, dn, dd, None


def planned_grkan(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, plan) -> torch.Tensor:
    """The eager Triton path with a launch plan from eager_plan() (GRKAN reuses one across calls)."""
    return _PlannedGRKAN.apply(x, numerator, denominator, plan)


def eager_plan(x: torch.Tensor, denominator: torch.Tensor, out_dtype: torch.dtype | None, deterministic: bool):
    """The kernels' CallPlan for eager calls on x, or None where the kernels do not run (reference math)."""
    if not _use_triton(x):
        return None
    return (_kernels or _kernel_module()).call_plan(x, denominator, out_dtype, deterministic)


def grkan(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, deterministic: bool = True,
          out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Differentiable GR-KAN (Triton where available), y written in out_dtype (default x's dtype): the custom
    op while torch.compile traces (one opaque node), a planned autograd.Function in eager mode."""
    if torch.compiler.is_compiling():
        return grkan_fwd(x, numerator, denominator, deterministic, out_dtype)
    if _use_triton(x):
        plan = (_kernels or _kernel_module()).call_plan(x, denominator, out_dtype, deterministic)
        return _PlannedGRKAN.apply(x, numerator, denominator, plan)
    return _GRKANFunction.apply(x, numerator, denominator, deterministic, out_dtype)
