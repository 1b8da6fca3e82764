"""Linear resizing: upsample_bilinear, resize_bilinear (iOS15/16) and resize (iOS17).

One axis at a time: every output position i has a source coordinate g(i) in [0, n_in − 1] given by the
sampling mode (resize_bilinear's notes), and takes x[floor g]·(1 − frac g) + x[floor g + 1]·frac g.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import AmbiguousOpError, ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ._util import back, floating, ints, scalar, tt

MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")


def grid(mode: str, n_in: int, n_out: int) -> np.ndarray:
    """Source coordinates (float64) of the n_out output positions, clamped to [0, n_in − 1]."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            g = np.array([0.0 if mode == "STRICT_ALIGN_CORNERS" else (n_in - 1) / 2])
        else:
            g = i * ((n_in - 1) / (n_out - 1))
    elif mode == "DEFAULT":  # (n_in − n_in/n_out)/(n_out − 1) simplifies to n_in/n_out
        g = i * (n_in / n_out)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        g = (i + 0.5) * (n_in / n_out) - 0.5
    else:
        raise UnsupportedOpError(f"sampling_mode {mode!r} is not defined by MIL ({', '.join(MODES)})")
    return np.clip(g, 0, n_in - 1)


def lerp_axis(t: torch.Tensor, axis: int, g: np.ndarray) -> torch.Tensor:
    """Linear interpolation of `t` along `axis` at source coordinates `g` (within [0, n − 1])."""
    n = t.shape[axis]
    lo = np.floor(g).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = torch.from_numpy((g - lo).astype(np.float32))
    shape = [1] * t.dim()
    shape[axis] = len(g)
    w = w.reshape(shape)
    a = t.index_select(axis, torch.from_numpy(lo))
    b = t.index_select(axis, torch.from_numpy(hi))
    return a * (1 - w) + b * w


def nearest_axis(t: torch.Tensor, axis: int, g: np.ndarray, mode: str) -> torch.Tensor:
    """Nearest sample along `axis`; a coordinate exactly halfway between two rows has no rule in MIL."""
    frac = g - np.floor(g)
    if np.any(np.isclose(frac, 0.5, rtol=0, atol=1e-9)):
        raise AmbiguousOpError(f"nearest resize with sampling_mode {mode}: a source coordinate lies halfway "
                               "between two rows, and the MIL spec does not say which one wins")
    return t.index_select(axis, torch.from_numpy(np.rint(g).astype(np.int64)))


def _resize2d(x, h_out: int, w_out: int, mode: str):
    dt = floating(x)
    if np.ndim(x) < 3:
        raise ProgramTypeError(f"bilinear resizing needs rank ≥ 3, got shape {np.shape(x)}")
    if h_out <= 0 or w_out <= 0:
        raise ProgramTypeError(f"bilinear resizing to an empty size {h_out}×{w_out}")
    h, w = np.shape(x)[-2:]
    t = lerp_axis(tt(x), -1, grid(mode, w, w_out))
    return back(lerp_axis(t, -2, grid(mode, h, h_out)), dt)


@register_op()
def upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    """Scale H and W by the factors (output floor(H·s)); the grid uses the recomputed scale n_in/n_out.

    align_corners → STRICT_ALIGN_CORNERS; else half_pixel_centers (iOS16, default: not align_corners)
    → UNALIGN_CORNERS, and neither → DEFAULT (TensorFlow's legacy grid).
    """
    h, w = np.shape(x)[-2:]
    h_out = int(np.floor(h * float(scalar(scale_factor_height))))
    w_out = int(np.floor(w * float(scalar(scale_factor_width))))
    align = bool(scalar(align_corners))
    half = (not align) if half_pixel_centers is None else bool(scalar(half_pixel_centers))
    if align and half:
        raise ProgramTypeError("upsample_bilinear: align_corners and half_pixel_centers cannot both be true")
    mode = "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "DEFAULT"
    return _resize2d(x, h_out, w_out, mode)


@register_op()
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    """Resize H and W to the target size on the grid of `sampling_mode`."""
    return _resize2d(x, int(scalar(target_size_height)), int(scalar(target_size_width)), str(sampling_mode))


@register_op()
def resize(x, shape, resized_dims, interpolation_mode="LINEAR", sampling_mode="DEFAULT"):
    """iOS17: resize the last `resized_dims` dims of x to the last entries of `shape` (0 keeps x's size)."""
    a = np.asarray(x)
    s, n, r = ints(shape), int(scalar(resized_dims)), a.ndim
    if not n <= len(s) <= r:
        raise ProgramTypeError(f"resize: resized_dims {n}, shape {s}, x of rank {r}")
    if interpolation_mode not in ("LINEAR", "NEAREST_NEIGHBOR"):
        raise UnsupportedOpError(f"resize interpolation_mode {interpolation_mode!r}")
    sizes = [v if v != 0 else a.shape[r - n + j] for j, v in enumerate(s[len(s) - n:])]
    if a.dtype.kind != "f":
        if interpolation_mode == "LINEAR":
            raise AmbiguousOpError("linear resize of an integer tensor: the MIL spec does not say how results round")
        t = torch.from_numpy(a.astype(np.int64))
    else:
        t = tt(a)
    for j, n_out in enumerate(sizes):
        axis = r - n + j
        g = grid(str(sampling_mode), a.shape[axis], n_out)
        t = lerp_axis(t, axis, g) if interpolation_mode == "LINEAR" else nearest_axis(t, axis, g, sampling_mode)
    return back(t, a.dtype)
