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


def has_triton() -> bool:
    """Whether the triton package is importable."""
    return _HAS_TRITON


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _use_triton(x: torch.Tensor) -> bool:
    return _HAS_TRITON and (x.is_cuda or (x.device.type == "cpu" and _interpreting()))


def _kernels():
    from . import kernels

    return kernels


@torch.library.custom_op("mobiledeploy::grkan_fwd", mutates_args=())
def grkan_fwd(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
              deterministic: bool) -> torch.Tensor:
    """y = P(x)/Q(x) over the last dim; `deterministic` selects the backward's reduction."""
    return _forward_impl(x, numerator, denominator)


def _forward_impl(x, numerator, denominator):
    if _use_triton(x):
        return _kernels().forward(x, numerator, denominator)
    return grkan_reference(x, numerator, denominator).contiguous()


def _backward_impl(grad, x, numerator, denominator, deterministic):
    if _use_triton(x):
        return _kernels().backward(grad, x, numerator, denominator, deterministic)
    # Explicit formulas: autograd does not record inside a custom op's backend implementation.
    dx, dn, dd = grkan_reference_backward(grad, x, numerator, denominator)
    return dx.contiguous(), dn, dd


@grkan_fwd.register_fake
def _(x, numerator, denominator, deterministic):
    return x.new_empty(x.shape)


@torch.library.custom_op("mobiledeploy::grkan_bwd", mutates_args=())
def grkan_bwd(grad: torch.Tensor, x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
              deterministic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, d numerator, d denominator) for the upstream gradient `grad`."""
    return _backward_impl(grad, x, numerator, denominator, deterministic)


@grkan_bwd.register_fake
def _(grad, x, numerator, denominator, deterministic):
    return x.new_empty(x.shape), numerator.new_empty(numerator.shape), denominator.new_empty(denominator.shape)


def _setup_context(ctx, inputs, output) -> None:
    x, numerator, denominator, deterministic = inputs
    ctx.save_for_backward(x, numerator, denominator)
    ctx.deterministic = deterministic


def _backward(ctx, grad):
    x, numerator, denominator = ctx.saved_tensors
    dx, dn, dd = grkan_bwd(grad, x, numerator, denominator, ctx.deterministic)
    return dx, dn, dd, None


grkan_fwd.register_autograd(_backward, setup_context=_setup_context)


class _GRKANFunction(torch.autograd.Function):
    """The eager path: the same kernels as the custom ops without the dispatcher's Python round trips
    (custom-op dispatch, its torch.compile-disable wrapper, the registered-autograd shim), which cost
    more host time per call than the kernels' device time at KAT-T sizes."""

    @staticmethod
    def forward(ctx, x, numerator, denominator, deterministic):
        ctx.save_for_backward(x, numerator, denominator)
        ctx.deterministic = deterministic
        return _forward_impl(x, numerator, denominator)

    @staticmethod
    def backward(ctx, grad):
        x, numerator, denominator = ctx.saved_tensors
        dx, dn, dd = _backward_impl(grad, x, numerator, denominator, ctx.deterministic)
        return dx, dn, dd, None


def grkan(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
          deterministic: bool = True) -> torch.Tensor:
    """Differentiable GR-KAN (Triton where available): the custom op while torch.compile traces
    (one opaque node), a plain autograd.Function in eager mode (less host overhead)."""
    if torch.compiler.is_compiling():
        return grkan_fwd(x, numerator, denominator, deterministic)
    return _GRKANFunction.apply(x, numerator, denominator, deterministic)
