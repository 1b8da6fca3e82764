"""crop, crop_resize and resample (iOS15–17 image_resizing.py): cropping and sampling at coordinates."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import AmbiguousOpError, ProgramTypeError, UnsupportedOpError
from ..registry import register_op
from ._util import back, f32, floating, ints, scalar, tt
from .bilinear import grid, lerp_axis


@register_op()
def crop(x, crop_height, crop_width):
    """Drop crop_height[0] rows at the top and crop_height[1] at the bottom (likewise for width)."""
    floating(x)
    (top, bottom), (left, right) = ints(crop_height), ints(crop_width)
    h, w = np.shape(x)[-2:]
    if min(top, bottom, left, right) < 0 or top + bottom >= h or left + right >= w:
        raise ProgramTypeError(f"crop {crop_height}/{crop_width} of a {h}×{w} input")
    return np.ascontiguousarray(np.asarray(x)[..., top : h - bottom, left : w - right])


def _corners(box: np.ndarray, mode: str) -> tuple[float, float, float, float]:
    """(h_start, w_start, h_end, w_end) of a box in any of MIL's four conventions."""
    a, b, c, d = (float(v) for v in box)
    if mode == "CORNERS_HEIGHT_FIRST":
        return a, b, c, d
    if mode == "CORNERS_WIDTH_FIRST":
        return b, a, d, c
    if mode == "CENTER_SIZE_HEIGHT_FIRST":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if mode == "CENTER_SIZE_WIDTH_FIRST":
        return b - d / 2, a - c / 2, b + d / 2, a + c / 2
    raise UnsupportedOpError(f"box_coordinate_mode {mode!r}")


def _box_grid(start: float, end: float, n_out: int, mode: str) -> np.ndarray:
    """Source coordinates of n_out samples in [start, end] (box extent measured as in resize_bilinear)."""
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            return np.array([start if mode == "STRICT_ALIGN_CORNERS" else (start + end) / 2])
        return start + np.arange(n_out) * ((end - start) / (n_out - 1))
    raise AmbiguousOpError(f"crop_resize sampling_mode {mode!r}: the MIL spec defines this grid for a whole "
                           "axis, not for a box, so no result is reported (ALIGN_CORNERS grids are)")


def _sample_rows(t: torch.Tensor, axis: int, g: np.ndarray, pad: float) -> torch.Tensor:
    """Linear samples of `t` along `axis` at coordinates g; positions outside [0, n − 1] take `pad`."""
    n = t.shape[axis]
    inside = (g >= 0) & (g <= n - 1)
    out = lerp_axis(t, axis, np.clip(g, 0, n - 1))
    if not inside.all():
        shape = [1] * t.dim()
        shape[axis] = len(g)
        mask = torch.from_numpy(inside).reshape(shape)
        out = torch.where(mask, out, torch.full_like(out, pad))
    return out


@register_op()
def crop_resize(x, roi=None, boxes=None, box_indices=None, target_height=1, target_width=1,
                normalized_coordinates=False, spatial_scale=1.0, box_coordinate_mode="CORNERS_HEIGHT_FIRST",
                sampling_mode="DEFAULT", pad_value=0.0):
    """Bilinear crops of x (B, C, H, W) at boxes.

    iOS15/16: roi (N, 1, 4|5, 1, 1), output (N, B, C, th, tw) (with a leading batch index: (N, 1, …));
    iOS17: boxes (N, 4) and box_indices (N,), output (N, C, th, tw). Normalised coordinates scale by
    (H − 1, W − 1); then spatial_scale multiplies. Samples outside the image take pad_value.
    """
    dt = floating(x)
    a = np.asarray(x)
    if a.ndim != 4:
        raise ProgramTypeError(f"crop_resize needs x of rank 4, got {a.shape}")
    b_in, _, h, w = a.shape
    th, tw = int(scalar(target_height)), int(scalar(target_width))
    mode, coord_mode = str(sampling_mode), str(box_coordinate_mode)
    scale = float(scalar(spatial_scale))
    norm = bool(scalar(normalized_coordinates))
    pad = float(scalar(f32(pad_value)))
    if roi is not None:  # iOS15/16
        r = np.asarray(f32(roi), np.float64).reshape(np.shape(roi)[0], -1)
        if r.shape[1] == 5:
            jobs = [(int(row[0]), row[1:]) for row in r]
        elif r.shape[1] == 4:
            jobs = [(bi, row) for row in r for bi in range(b_in)]
        else:
            raise ProgramTypeError(f"crop_resize roi of shape {np.shape(roi)}")
        lead = (r.shape[0], 1 if r.shape[1] == 5 else b_in)
    elif boxes is not None:  # iOS17
        bx = np.asarray(f32(boxes), np.float64)
        idx = ints(box_indices) if box_indices is not None else list(range(bx.shape[0]))
        jobs = list(zip(idx, bx))
        lead = (bx.shape[0],)
    else:
        raise ProgramTypeError("crop_resize needs roi (iOS15/16) or boxes (iOS17)")
    t = tt(a)
    crops = []
    for bi, box in jobs:
        if not 0 <= bi < b_in:
            raise ProgramTypeError(f"crop_resize box index {bi} for a batch of {b_in}")
        h0, w0, h1, w1 = _corners(box, coord_mode)
        if norm:
            h0, h1, w0, w1 = h0 * (h - 1), h1 * (h - 1), w0 * (w - 1), w1 * (w - 1)
        h0, h1, w0, w1 = h0 * scale, h1 * scale, w0 * scale, w1 * scale
        c = _sample_rows(t[bi], -1, _box_grid(w0, w1, tw, mode), pad)
        crops.append(_sample_rows(c, -2, _box_grid(h0, h1, th, mode), pad))
    out = torch.stack(crops).reshape(*lead, a.shape[1], th, tw)
    return back(out, dt)


def _pixel_coords(c: np.ndarray, n: int, coordinates_mode: str, align: bool) -> np.ndarray:
    """Coordinates (one axis) → pixel positions, where pixel k's centre is at k."""
    if coordinates_mode == "unnormalized":
        return c
    if coordinates_mode == "normalized_minus_one_to_one":
        return (c + 1) / 2 * (n - 1) if align else ((c + 1) * n - 1) / 2
    if coordinates_mode == "normalized_zero_to_one":
        return c * (n - 1) if align else c * n - 0.5
    raise UnsupportedOpError(f"resample coordinates_mode {coordinates_mode!r}")


def _fold(i: np.ndarray, n: int, padding_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(index inside [0, n), valid) for integer positions i under MIL's padding modes."""
    if padding_mode == "constant":
        return np.clip(i, 0, n - 1), (i >= 0) & (i < n)
    if padding_mode == "border":
        return np.clip(i, 0, n - 1), np.ones(i.shape, bool)
    if padding_mode == "reflection":  # |1,2,3| → 2,3,2,1,2,3,2,1: the edge is not repeated
        if n == 1:
            return np.zeros_like(i), np.ones(i.shape, bool)
        m = np.mod(i, 2 * (n - 1))
        return np.where(m >= n, 2 * (n - 1) - m, m), np.ones(i.shape, bool)
    if padding_mode == "symmetric":  # |1,2,3| → 3,2,1,1,2,3,3,2,1: the edge is repeated
        m = np.mod(i, 2 * n)
        return np.where(m >= n, 2 * n - 1 - m, m), np.ones(i.shape, bool)
    raise UnsupportedOpError(f"resample padding_mode {padding_mode!r}")


@register_op()
def resample(x, coordinates, sampling_mode, padding_mode, padding_value, coordinates_mode, align_corners):
    """Sample x (B, C, H, W) at coordinates (B, H2, W2, 2) given as (w, h) pairs: bilinear or nearest
    (round half up), with constant/border/reflection/symmetric padding applied to pixel indices."""
    dt = floating(x)
    a = f32(x)
    if a.ndim != 4 or np.ndim(coordinates) != 4 or np.shape(coordinates)[-1] != 2 \
            or np.shape(coordinates)[0] != a.shape[0]:
        raise ProgramTypeError(f"resample of x {a.shape} at coordinates {np.shape(coordinates)}")
    _, _, h, w = a.shape
    align = bool(scalar(align_corners))
    co = np.asarray(f32(coordinates), np.float64)
    px = _pixel_coords(co[..., 0], w, str(coordinates_mode), align)
    py = _pixel_coords(co[..., 1], h, str(coordinates_mode), align)
    pad = np.float32(scalar(f32(padding_value)))
    if sampling_mode == "nearest":
        taps = [(np.floor(py + 0.5), np.floor(px + 0.5), np.ones_like(py))]
    elif sampling_mode == "bilinear":
        y0, x0 = np.floor(py), np.floor(px)
        fy, fx = py - y0, px - x0
        taps = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
    else:
        raise UnsupportedOpError(f"resample sampling_mode {sampling_mode!r}")
    out = np.zeros(a.shape[:2] + co.shape[1:3], np.float32)
    bidx = np.arange(a.shape[0])[:, None, None]
    for ty, tx, wt in taps:
        iy, vy = _fold(ty.astype(np.int64), h, str(padding_mode))
        ix, vx = _fold(tx.astype(np.int64), w, str(padding_mode))
        vals = a[bidx, :, iy, ix]  # (B, H2, W2, C)
        vals = np.where((vy & vx)[..., None], vals, pad)
        out += (np.moveaxis(vals, -1, 1) * np.asarray(wt, np.float32)[:, None]).astype(np.float32)
    return back(out, dt)


@register_op()
def affine(x, transform_matrix, output_height, output_width, sampling_mode, padding_mode, padding_value,
           coordinates_mode, align_corners):
    """Sample x at (a0·u + a1·v + a2, b0·u + b1·v + b2) for every output point (u, v) of the output grid in
    `coordinates_mode` (u, v from −1 to 1 across the output), then as resample does."""
    if coordinates_mode != "normalized_minus_one_to_one" or not bool(scalar(align_corners)):
        raise UnsupportedOpError(f"affine with coordinates_mode {coordinates_mode!r}, align_corners="
                                 f"{bool(scalar(align_corners))}: MIL defines only normalized_minus_one_to_one "
                                 "with align_corners")
    a = np.asarray(x)
    m = np.asarray(f32(transform_matrix), np.float64).reshape(-1, 6)
    if m.shape[0] not in (1, a.shape[0]):
        raise ProgramTypeError(f"affine transform_matrix {m.shape} for a batch of {a.shape[0]}")
    m = np.broadcast_to(m, (a.shape[0], 6))
    h, w = int(scalar(output_height)), int(scalar(output_width))
    v, u = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    xs = m[:, 0, None, None] * u + m[:, 1, None, None] * v + m[:, 2, None, None]
    ys = m[:, 3, None, None] * u + m[:, 4, None, None] * v + m[:, 5, None, None]
    coords = np.stack([xs, ys], -1).astype(np.float32)
    return resample(x, coords, sampling_mode, padding_mode, padding_value, coordinates_mode, align_corners)
