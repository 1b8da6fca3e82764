"""What an app needs to feed an ONNX model, stored in its `metadata_props` (read back by onnxruntime).

onnxruntime exposes these as `session.get_modelmeta().custom_metadata_map` on every platform
(and the ORT mobile format keeps them), so an app can read labels and normalisation from the
model it ships instead of hard-coding them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mobiledeploy.errors import UserError, require



def image_classifier_props(*, source_model: str, input_name: str, layout: str, height: int, width: int,
                           mean: Sequence[float], std: Sequence[float], value_range: Sequence[float] = (0.0, 1.0),
                           normalization_in_graph: bool = False, labels: list[str] | None = None,
                           precision: str = "fp32", extra: dict[str, Any] | None = None) -> dict[str, str]:
    """metadata_props for an image classifier; values are strings (lists and numbers as JSON)."""
    if layout not in ("nchw", "nhwc"):
        raise UserError(f"unknown layout {layout!r}", "choose nchw or nhwc")
    props = {
        "producer": "mobiledeploy",
        "source_model": source_model,
        "task": "image_classification",
        "input_name": input_name,
        "layout": layout,
        "input_shape": json.dumps([1, height, width, 3] if layout == "nhwc" else [1, 3, height, width]),
        "color_order": "RGB",
        # input = (image_in_value_range - mean) / std, per channel in RGB order
        "value_range": json.dumps([float(v) for v in value_range]),
        "mean": json.dumps([float(m) for m in mean]),
        "std": json.dumps([float(s) for s in std]),
        "normalization_in_graph": json.dumps(bool(normalization_in_graph)),
        "precision": precision,
    }
    if labels:
        props["labels"] = "\n".join(labels)
        props["num_classes"] = str(len(labels))
    for k, v in (extra or {}).items():
        props[k] = v if isinstance(v, str) else json.dumps(v)
    return props


def write_onnx_metadata(path: Path, props: dict[str, str]) -> None:
    """Set metadata_props of an .onnx in place (replacing keys of the same name), atomically."""
    onnx = require("onnx", "onnx")
    p = Path(path)
    model = onnx.load(str(p), load_external_data=False)  # external weights stay where they are
    keep = [e for e in model.metadata_props if e.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    tmp = p.with_name(p.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(p)


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """The custom metadata of an .onnx or .ort model, as onnxruntime reports it to an app."""
    ort = require("onnxruntime", "onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)
