"""Reference interpreter for Core ML ML programs: runs an .mlpackage on the CPU with numpy/torch.

Semantics follow the MIL op definitions in coremltools (mil/ops/defs). fp16 values stay fp16: an op
whose type is fp16 computes in fp32 and rounds its result to fp16 once. Compressed weights (the
iOS16-18 constexpr_* ops: int8/int4 quantization, n-bit palettization, sparsity) are decompressed once,
at load time. Unknown ops, symbolic shapes and fractional nearest upsampling are refused with a
message naming the op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import AmbiguousOpError, MLInterpError, ProgramTypeError, UnsupportedOpError
from .model import CoreMLModel
from .program import MLProgram
from .registry import OPS, register_op

__all__ = [
    "AmbiguousOpError", "CoreMLModel", "MLInterpError", "MLProgram", "OPS", "ProgramTypeError",
    "UnsupportedOpError", "register_op", "predict",
]


def predict(path: str | Path, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Run the .mlpackage at `path` on `inputs` (by input name) and return its outputs by name."""
    return CoreMLModel(path).predict(inputs)
