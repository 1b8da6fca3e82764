"""MIL op implementations; importing this package registers them all."""

from . import (  # noqa: F401
    activation, bilinear, classify, constexpr, conv, elementwise, image, linear, normalization, pool, reduction,
    rearrange, sampling, sequence, sorting, tensor,
)
