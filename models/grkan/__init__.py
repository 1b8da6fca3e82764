"""GR-KAN, the group-rational activation of KAT: module, PyTorch reference, Triton kernels, custom op."""

from .init import INITS, fit_rational, init_coefficients
from .layer import GRKAN
from .op import grkan, grkan_bwd, grkan_fwd
from .reference import grkan_reference

__all__ = ["GRKAN", "INITS", "fit_rational", "grkan", "grkan_bwd", "grkan_fwd", "grkan_reference",
           "init_coefficients"]
