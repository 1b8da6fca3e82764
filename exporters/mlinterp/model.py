"""A Core ML model as an app sees it: image inputs and classifier outputs around the ML program."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import MLInterpError, ProgramTypeError
from .program import _ARRAY_DTYPES, _BGR, _GRAY, _RGB, MLProgram


class CoreMLModel:
    """Runs an .mlpackage like `MLModel.predict`: pixels in for image inputs, label + probabilities out."""

    def __init__(self, path: str | Path) -> None:
        self.program = MLProgram(path)
        desc = self.program.spec.description
        self.description = desc
        self.image_inputs = {i.name: i.type.imageType for i in desc.input if i.type.WhichOneof("Type") == "imageType"}
        self.class_labels = class_labels(self.program.spec, self.program.path)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs by name; a classifier's probability dictionary comes back as an array in label order."""
        feeds = {}
        for name, (_, dtype, shape) in self.program.inputs.items():
            if name not in inputs:
                raise MLInterpError(f"missing input {name!r} (inputs: {', '.join(self.program.inputs)})")
            if name in self.image_inputs:
                feeds[name] = image_to_tensor(inputs[name], self.image_inputs[name], shape)
            else:
                feeds[name] = np.asarray(inputs[name]).astype(dtype)  # as MLMultiArray conversion would
        raw = self.program.run(feeds)
        out: dict[str, Any] = {}
        for feat in self.description.output:
            val = raw[feat.name]
            kind = feat.type.WhichOneof("Type")
            if kind == "dictionaryType":
                out[feat.name] = np.array([[val[c] for c in self.class_labels]], dtype=np.float32)
            elif kind == "stringType" or kind == "int64Type":
                out[feat.name] = np.array([val])
            else:
                want = _ARRAY_DTYPES.get(feat.type.multiArrayType.dataType)
                if want is not None and np.asarray(val).dtype != want:
                    raise ProgramTypeError(
                        f"output {feat.name!r}: the program computes {np.asarray(val).dtype}, "
                        f"the model description promises {np.dtype(want).name}"
                    )
                out[feat.name] = val
        return out


def class_labels(spec, path: str | Path) -> list | None:
    """The labels of the program's classify op (None for a model that is no classifier)."""
    from .package import read_mlpackage
    from .values import decode_value

    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    for op in block.operations:
        if op.type == "classify":
            b = op.inputs["classes"].arguments[0]
            val = b.value if b.WhichOneof("binding") == "value" else consts[b.name].attributes["val"]
            root = read_mlpackage(path)[1]
            return [c.item() if isinstance(c, np.ndarray) else c for c in decode_value(val, root, {}, "classify.classes")]
    return None


def image_to_tensor(pixels: Any, image_type, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels (H×W×C uint8, or N×C×H×W values in [0, 255], RGB order) → the program's fp32 NCHW input."""
    a = np.asarray(pixels)
    c = 1 if image_type.colorSpace == _GRAY else 3
    h, w = int(image_type.height), int(image_type.width)
    if a.shape in ((h, w, c), (1, h, w, c)):
        a = a.reshape(h, w, c).transpose(2, 0, 1)[None]
    elif a.shape == (c, h, w):
        a = a[None]
    if a.shape != (1, c, h, w):
        raise MLInterpError(f"image input of shape {np.shape(pixels)}: expected {h}×{w}×{c} pixels or (1, {c}, {h}, {w})")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255:
        raise MLInterpError("image input values must lie in [0, 255] (8-bit pixels)")
    if image_type.colorSpace == _BGR:  # callers hand over RGB; a BGR model sees the channels swapped
        a = a[:, ::-1]
    elif image_type.colorSpace not in (_RGB, _GRAY, _BGR):
        raise MLInterpError(f"image colour space {image_type.colorSpace} is not supported")
    if tuple(shape) != a.shape:
        raise ProgramTypeError(f"image input {a.shape} does not match the program's input {tuple(shape)}")
    return np.ascontiguousarray(a)
