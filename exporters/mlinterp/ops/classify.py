"""classify (iOS15 classify.py): the classifier's label and probability dictionary."""

from __future__ import annotations

import numpy as np

from ..errors import ProgramTypeError
from ..registry import register_op


@register_op()
def classify(probabilities, classes):
    """(label of the largest value, {label: value}); values are used as they are (no softmax here)."""
    p = np.asarray(probabilities)
    if p.dtype != np.float32:
        raise ProgramTypeError(f"classify probabilities must be fp32, got {p.dtype}")
    labels = [c.item() if isinstance(c, np.ndarray) else c for c in classes]
    if p.size != len(labels):
        raise ProgramTypeError(f"classify: {p.size} probabilities for {len(labels)} classes")
    flat = p.reshape(-1)
    return labels[int(np.argmax(flat))], dict(zip(labels, flat.astype(np.float64).tolist()))
