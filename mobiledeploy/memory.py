"""Refuse exports whose activations cannot fit in this machine's memory, before anything big is allocated.

Without this, `--input-size 8000` ran for minutes and was then killed by the kernel's OOM killer with no
message, and `--input-size 100000` died in a traceback allocating the example input. The parity run
holds the PyTorch model's and the runtime's activations at once: GhostNetV2 at 4000² with parity on
peaked at 11.9 GB, 16.6× its largest tensor (0.72 GB), so we ask for PARITY_HEADROOM = 20× the
largest tensor before a verified export. Without parity the same export peaked at 2.6 GB, so the
example input only has to fit INPUT_HEADROOM times.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from .errors import UserError

PARITY_HEADROOM = 20
INPUT_HEADROOM = 2


def available_bytes() -> int | None:
    """Memory the OS says a new allocation can use (Linux MemAvailable, else physical RAM; None if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def check_fits(what: str, largest_bytes: int, shape: str, headroom: int, hint: str) -> None:
    """Raise a one-line UserError when `headroom` × the largest tensor exceeds the available memory."""
    available = available_bytes()
    if available is None or largest_bytes * headroom <= available:
        return
    raise UserError(f"exporting at input {shape} needs more memory than this machine has: its largest {what} "
                    f"is {_gb(largest_bytes)} and about {headroom}× that must fit ({_gb(available)} available)", hint)


def input_bytes(shape: Iterable[int], dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a dense tensor of this shape and dtype."""
    n = 1
    for d in shape:
        n *= int(d)
    return n * dtype.itemsize


def largest_activation(program: torch.export.ExportedProgram) -> int:
    """Bytes of the largest tensor any node of the exported program produces (from its fake values)."""
    best = 0
    for node in program.graph.nodes:
        vals = node.meta.get("val")
        for v in vals if isinstance(vals, (list, tuple)) else (vals,):
            if isinstance(v, torch.Tensor) and all(isinstance(d, int) for d in v.shape):
                best = max(best, input_bytes(v.shape, v.dtype))
    return best
