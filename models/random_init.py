"""Random weights that make a model's outputs depend on its input, for exports without a checkpoint.

A freshly built CNN has BatchNorm at identity (mean 0, var 1, weight 1, bias 0). With random conv
weights its activations drift in scale layer by layer until the input's share of them is lost: a
random GhostNetV2's logits vary by 0.1 % of their size from one image to the next, and drawing random
BatchNorm statistics does not change that. Matching such a model proves little. So a model exported
without --weights gets what a trained one has: BatchNorm statistics measured on data (seeded random
images, BatchNorm layers alone in training mode), and random BatchNorm affine parameters. The manifest
records how.
"""

from __future__ import annotations

import torch

DESCRIPTION = ("random: torch.manual_seed({seed}); BatchNorm affine parameters drawn with seed {seed} "
               "(weight 1 + 0.1·N(0,1), bias 0.1·N(0,1)) and its running statistics measured on "
               "{images} seeded N(0,1) images of {size}")
N_IMAGES = 8


def randomize_batchnorm(model: torch.nn.Module, input_size: tuple[int, ...], seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm affine parameters, then running statistics measured on seeded random images (in place)."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    with torch.no_grad():
        for m in norms:
            if m.weight is not None:
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        saved = [(m, m.momentum, m.training) for m in norms]
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
            m.train()
        x = torch.randn(N_IMAGES, *input_size, generator=g)
        for chunk in x.split(4):
            model(chunk)
        for m, momentum, _ in saved:
            m.momentum = momentum
        model.eval()
    return model
