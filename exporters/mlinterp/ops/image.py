"""Nearest-neighbour resizing (iOS15 image_resizing.py): integer factors only, fractional ones refused."""

from __future__ import annotations

import numpy as np

from ..errors import AmbiguousOpError, ProgramTypeError
from ..registry import register_op
from ._util import floating, scalar


def _integer_factor(factor: float, what: str, size: int) -> int:
    """An integer-valued scale factor; a fractional one has no sampling rule in the MIL spec."""
    f = float(factor)
    if f != int(f) or f < 1:
        raise AmbiguousOpError(
            f"{what} = {f:.7g} (size {size} → {int(np.floor(size * f))}): the MIL spec does not say which source "
            "rows a fractional nearest-neighbour upsample samples, so no result is reported; export with the "
            "exact_nearest_upsample rewrite"
        )
    return int(f)


def _repeat(x, fh: int, fw: int):
    """out[..., i, j] = x[..., i // fh, j // fw]."""
    return np.repeat(np.repeat(np.asarray(x), fh, axis=-2), fw, axis=-1)


@register_op()
def upsample_nearest_neighbor(x, scale_factor_height=1, scale_factor_width=1):
    """Nearest upsample of the last two dims by integer factors."""
    floating(x)
    if np.ndim(x) < 3:
        raise ProgramTypeError(f"upsample_nearest_neighbor needs rank ≥ 3, got {np.ndim(x)}")
    h, w = np.shape(x)[-2:]
    fh = _integer_factor(scalar(scale_factor_height), "scale_factor_height", h)
    fw = _integer_factor(scalar(scale_factor_width), "scale_factor_width", w)
    return _repeat(x, fh, fw)


@register_op()
def resize_nearest_neighbor(x, target_size_height, target_size_width):
    """Nearest resize to a target size; only integer multiples of the input are unambiguous."""
    floating(x)
    h, w = np.shape(x)[-2:]
    th, tw = int(scalar(target_size_height)), int(scalar(target_size_width))
    return _repeat(x, _integer_factor(th / h, "target/height", h), _integer_factor(tw / w, "target/width", w))
