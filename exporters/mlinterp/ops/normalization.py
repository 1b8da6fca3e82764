"""layer_norm, batch_norm, instance_norm (iOS15 normalization.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ProgramTypeError
from ..registry import register_op
from ._util import axis_of, back, f32, floating, ints, scalar, split_type, tt


@register_op()
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    """(x − mean) / sqrt(var + eps) · gamma + beta over `axes` (biased variance); gamma has x.shape[axes]."""
    dt = split_type(x, gamma=gamma, beta=beta)
    floating(x)
    ax = tuple(range(np.ndim(x))) if axes is None else tuple(sorted(axis_of(a, np.ndim(x)) for a in ints(axes)))
    t = tt(x)
    mean = t.mean(ax, keepdim=True)
    var = ((t - mean) ** 2).mean(ax, keepdim=True)
    y = (t - mean) / torch.sqrt(var + float(scalar(epsilon)))
    norm_shape = [np.shape(x)[a] for a in ax]
    bshape = [np.shape(x)[i] if i in ax else 1 for i in range(np.ndim(x))]
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is not None and list(np.shape(p)) != norm_shape:
            raise ProgramTypeError(f"layer_norm {name} of shape {np.shape(p)} for normalised shape {norm_shape}")
    return back(_affine(y, gamma, beta, bshape), dt)


@register_op()
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    """Per channel (axis 1): (x − mean) / sqrt(variance + eps) · gamma + beta."""
    dt = split_type(x, mean=mean, variance=variance, gamma=gamma, beta=beta)
    shape = [1, -1] + [1] * (np.ndim(x) - 2)
    t = (tt(x) - tt(mean).reshape(shape)) / torch.sqrt(tt(variance).reshape(shape) + float(scalar(epsilon)))
    return back(_affine(t, gamma, beta, shape), dt)


@register_op()
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    """Normalise each (n, c) over the spatial dims, then per-channel gamma/beta."""
    dt = split_type(x, gamma=gamma, beta=beta)
    t = tt(x)
    ax = tuple(range(2, t.dim()))
    mean = t.mean(ax, keepdim=True)
    var = ((t - mean) ** 2).mean(ax, keepdim=True)
    y = (t - mean) / torch.sqrt(var + float(scalar(epsilon)))
    return back(_affine(y, gamma, beta, [1, -1] + [1] * (t.dim() - 2)), dt)


def _affine(t: torch.Tensor, gamma, beta, shape: list[int]) -> torch.Tensor:
    """Scale by gamma and shift by beta (either may be absent), broadcast through `shape`."""
    if gamma is not None:
        t = t * tt(gamma).reshape(shape)
    if beta is not None:
        t = t + tt(beta).reshape(shape)
    return t


@register_op()
def l2_norm(x, epsilon=1e-6):
    """x / sqrt(sum(x²) + eps) over the last three dims, each leading index a batch of its own."""
    dt = floating(x)
    if np.ndim(x) < 3:
        raise ProgramTypeError(f"l2_norm needs rank ≥ 3, got shape {np.shape(x)}")
    t = tt(x)
    ss = (t * t).sum((-3, -2, -1), keepdim=True)
    return back(t / torch.sqrt(ss + float(scalar(f32(epsilon)))), dt)


@register_op()
def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha/size · Σ x²)^beta, the sum over `size` neighbouring channels (axis 1; the window
    reaches size//2 channels back and (size−1)//2 forward, as PyTorch's LocalResponseNorm)."""
    dt = split_type(x, **{n: v for n, v in (('alpha', alpha), ('beta', beta), ('k', k)) if isinstance(v, np.ndarray)})
    floating(x)
    if np.ndim(x) < 3:
        raise ProgramTypeError(f"local_response_norm needs rank ≥ 3, got shape {np.shape(x)}")
    a, b, kk = (float(scalar(f32(v))) for v in (alpha, beta, k))
    return back(F.local_response_norm(tt(x), int(scalar(size)), a, b, kk), dt)
