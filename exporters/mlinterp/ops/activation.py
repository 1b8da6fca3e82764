"""Activations (iOS15 activation.py; iOS17 versions only widen the alpha/beta types)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ._util import axis_of, back, f32, floating, scalar, tt


def _act(fn, x):
    dt = floating(x)
    return back(fn(tt(x)), dt)


@register_op()
def relu(x):
    """max(x, 0)."""
    return _act(torch.relu, x)


@register_op()
def relu6(x):
    """min(max(x, 0), 6)."""
    return _act(lambda t: torch.clamp(t, 0.0, 6.0), x)


@register_op()
def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return _act(torch.sigmoid, x)


@register_op()
def sigmoid_hard(x, alpha, beta):
    """min(max(alpha * x + beta, 0), 1)."""
    a, b = float(scalar(f32(alpha))), float(scalar(f32(beta)))
    return _act(lambda t: torch.clamp(t * a + b, 0.0, 1.0), x)


@register_op()
def silu(x):
    """x * sigmoid(x)."""
    return _act(F.silu, x)


@register_op()
def gelu(x, mode="EXACT"):
    """EXACT: 0.5x(1 + erf(x/√2)); TANH_APPROXIMATION; SIGMOID_APPROXIMATION: x·sigmoid(1.702x)."""
    if mode == "EXACT":
        return _act(F.gelu, x)
    if mode == "TANH_APPROXIMATION":
        return _act(lambda t: F.gelu(t, approximate="tanh"), x)
    if mode == "SIGMOID_APPROXIMATION":
        return _act(lambda t: t * torch.sigmoid(1.702 * t), x)
    raise UnsupportedOpError(f"gelu mode {mode!r} is not defined by MIL")


@register_op()
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`."""
    ax = axis_of(axis, np.ndim(x))
    return _act(lambda t: torch.softmax(t, ax), x)


@register_op()
def softplus(x):
    """log(1 + exp(x))."""
    return _act(F.softplus, x)


@register_op()
def softsign(x):
    """x / (1 + |x|)."""
    return _act(F.softsign, x)


@register_op()
def leaky_relu(x, alpha=0.01):
    """x if x ≥ 0 else alpha·x."""
    a = float(scalar(f32(alpha)))
    return _act(lambda t: torch.where(t >= 0, t, t * a), x)


@register_op()
def elu(x, alpha=1.0):
    """x if x > 0 else alpha·(exp(x) − 1)."""
    a = float(scalar(f32(alpha)))
    return _act(lambda t: torch.where(t > 0, t, a * torch.expm1(t)), x)


@register_op()
def linear_activation(x, alpha, beta=0.0):
    """alpha·x + beta."""
    a, b = float(scalar(f32(alpha))), float(scalar(f32(beta)))
    return _act(lambda t: t * a + b, x)


@register_op()
def scaled_tanh(x, alpha=1.0, beta=1.0):
    """alpha·tanh(beta·x)."""
    a, b = float(scalar(f32(alpha))), float(scalar(f32(beta)))
    return _act(lambda t: a * torch.tanh(b * t), x)


@register_op()
def clamped_relu(x, alpha=0.0, beta=6.0):
    """min(beta, x if x ≥ 0 else alpha·x)."""
    a, b = float(scalar(f32(alpha))), float(scalar(f32(beta)))
    return _act(lambda t: torch.clamp(torch.where(t >= 0, t, a * t), max=b), x)


@register_op()
def thresholded_relu(x, alpha=1.0):
    """x if x ≥ alpha else 0 (MIL's definition: the threshold itself passes)."""
    a = float(scalar(f32(alpha)))
    return _act(lambda t: torch.where(t >= a, t, torch.zeros_like(t)), x)


@register_op()
def softplus_parametric(x, alpha, beta):
    """alpha[c]·log(1 + exp(beta[c]·x)), alpha and beta per channel (axis 1)."""
    if np.ndim(x) < 3 or np.size(alpha) != np.shape(x)[1] or np.size(beta) != np.shape(x)[1]:
        raise ProgramTypeError(f"softplus_parametric alpha/beta of size {np.size(alpha)}/{np.size(beta)} "
                               f"for x of shape {np.shape(x)}")
    shape = [1, -1] + [1] * (np.ndim(x) - 2)
    a, b = tt(alpha).reshape(shape), tt(beta).reshape(shape)
    return _act(lambda t: a * F.softplus(b * t), x)


@register_op()
def prelu(x, alpha):
    """x if x ≥ 0 else alpha[c]·x, alpha per channel (axis −3)."""
    if np.ndim(x) < 3 or np.size(alpha) != np.shape(x)[-3]:
        raise ProgramTypeError(f"prelu alpha of size {np.size(alpha)} for x of shape {np.shape(x)}")
    a = tt(alpha).reshape(-1, 1, 1)
    return _act(lambda t: torch.where(t >= 0, t, t * a), x)
