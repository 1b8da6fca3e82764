"""MIL op implementations; importing this package registers them all."""

from . import activation, classify, constexpr, conv, elementwise, image, linear, normalization, pool, reduction, tensor  # noqa: F401
