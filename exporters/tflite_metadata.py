"""Image-classifier metadata inside a .tflite, in the TFLite metadata schema that MediaPipe Tasks,
the TFLite Support library and Android Studio's model binding read.

The official Python writers cannot be used here: mediapipe 1.2's needs a compiled helper its wheel
lacks, and tflite-support / mediapipe 0.10 pin numpy<2. The schema is small, so this module encodes
the few tables an image classifier needs with the `flatbuffers` runtime directly (field slots
follow `metadata_schema.fbs`, schema 1.5.0) and packs them the way the official populator does:

- the metadata flatbuffer (identifier "M001") becomes a model buffer named "TFLITE_METADATA";
- associated files (labels.txt) are appended to the model file as an uncompressed zip, which the
  clients memory-map, so the .tflite stays a valid flatbuffer and a valid zip at once.

Tests read the result back with the official generated bindings and run MediaPipe's
ImageClassifier on it.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mobiledeploy.errors import UserError, require

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
TFLITE_IDENTIFIER = b"TFL3"
# Every field written here exists since schema 1.0.0 (no tokenizers, tensor groups, custom metadata).
MIN_PARSER_VERSION = "1.0.0"

# Enum values from metadata_schema.fbs.
_COLOR_RGB = 1
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2  # ContentProperties union
_UNIT_NORMALIZATION = 1  # ProcessUnitOptions union
_FILE_TENSOR_AXIS_LABELS = 2


@dataclass
class ImageClassifierMetadata:
    """What an app needs to run an image classifier without reading our docs."""

    name: str
    height: int
    width: int
    mean: Sequence[float]  # in 0-255 pixel units: input = (pixel - mean) / std
    std: Sequence[float]
    labels: list[str] | None = None
    description: str = "Image classifier exported by mobiledeploy."
    version: str = ""
    author: str = "mobiledeploy"
    license: str = ""
    input_name: str = "image"
    output_name: str = "score"
    labels_file: str = "labels.txt"
    extra_files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.mean) not in (1, 3) or len(self.std) != len(self.mean):
            raise UserError("normalisation needs 1 or 3 mean values and as many std values")
        if any(s == 0 for s in self.std):
            raise UserError("normalisation std must not be 0")


def build_metadata(meta: ImageClassifierMetadata) -> bytes:
    """The metadata flatbuffer (ModelMetadata, identifier M001) for one image input and one score output."""
    flatbuffers = require("flatbuffers", "tflite")
    b = flatbuffers.Builder(1024)

    def string(s: str | None) -> int | None:
        return b.CreateString(s) if s else None

    def table(nfields: int, fields: list[tuple[int, str, object]]) -> int:
        # fields: (slot, kind, value); offsets and strings must be built before StartObject.
        b.StartObject(nfields)
        for slot, kind, value in fields:
            if value is None:
                continue
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "byte":
                b.PrependInt8Slot(slot, value, 0)
            elif kind == "ubyte":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "uint":
                b.PrependUint32Slot(slot, value, 0)
            else:
                raise AssertionError(kind)
        return b.EndObject()

    def offsets(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for off in reversed(items):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values: Sequence[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(list(values)):
            b.PrependFloat32(float(v))
        return b.EndVector()

    # Input tensor: RGB image of the model's size, normalised by (pixel - mean) / std.
    size = table(2, [(0, "uint", meta.width), (1, "uint", meta.height)])  # ImageSize
    image_props = table(2, [(0, "byte", _COLOR_RGB), (1, "offset", size)])  # ImageProperties
    in_content = table(3, [(0, "ubyte", _CONTENT_IMAGE), (1, "offset", image_props)])  # Content
    norm = table(2, [(0, "offset", floats(meta.mean)), (1, "offset", floats(meta.std))])  # NormalizationOptions
    unit = table(2, [(0, "ubyte", _UNIT_NORMALIZATION), (1, "offset", norm)])  # ProcessUnit
    lo = [(0.0 - m) / s for m, s in zip(meta.mean, meta.std)]
    hi = [(255.0 - m) / s for m, s in zip(meta.mean, meta.std)]
    stats = table(2, [(0, "offset", floats(hi)), (1, "offset", floats(lo))])  # Stats: max, min
    in_name, in_desc = string(meta.input_name), string("Input image to be classified.")
    in_tensor = table(7, [(0, "offset", in_name), (1, "offset", in_desc), (3, "offset", in_content),
                          (4, "offset", offsets([unit])), (5, "offset", stats)])

    # Output tensor: one score per class, labels attached along the class axis.
    out_files = None
    if meta.labels:
        f_name, f_desc = string(meta.labels_file), string("Labels for the classes of the output scores.")
        label_file = table(5, [(0, "offset", f_name), (1, "offset", f_desc), (2, "byte", _FILE_TENSOR_AXIS_LABELS)])
        out_files = offsets([label_file])
    feature = table(0, [])  # FeatureProperties
    out_content = table(3, [(0, "ubyte", _CONTENT_FEATURE), (1, "offset", feature)])
    out_name, out_desc = string(meta.output_name), string("Scores of the classes (logits).")
    out_tensor = table(7, [(0, "offset", out_name), (1, "offset", out_desc), (3, "offset", out_content),
                           (6, "offset", out_files)])

    subgraph = table(10, [(2, "offset", offsets([in_tensor])), (3, "offset", offsets([out_tensor]))])
    root = table(8, [(0, "offset", string(meta.name)), (1, "offset", string(meta.description)),
                     (2, "offset", string(meta.version)), (3, "offset", offsets([subgraph])),
                     (4, "offset", string(meta.author)), (5, "offset", string(meta.license)),
                     (7, "offset", string(MIN_PARSER_VERSION))])
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def embed_metadata(model_buf: bytes, meta: ImageClassifierMetadata) -> bytes:
    """The model with the metadata buffer set (replacing any) and labels zipped after it."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    flatbuffers = require("flatbuffers", "tflite")
    if model_buf[4:8] != TFLITE_IDENTIFIER:
        raise UserError("not a TFLite flatbuffer (identifier TFL3 missing)")
    flat = _strip_zip(model_buf)
    model = schema.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    _check_single_io(model)
    _inline_buffers(model, flat)
    buffer = schema.BufferT()
    buffer.data = bytearray(build_metadata(meta))
    model.buffers = model.buffers or []
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME]
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    b = flatbuffers.Builder(len(flat) + 4096)
    b.Finish(model.Pack(b), file_identifier=TFLITE_IDENTIFIER)
    out = io.BytesIO(bytes(b.Output()))
    files = dict(meta.extra_files)
    if meta.labels:
        files[meta.labels_file] = ("\n".join(meta.labels) + "\n").encode()
    if files:
        out.seek(0, os.SEEK_END)
        # Stored, not deflated: the clients point into the mapped model file instead of unpacking.
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
            for fname, data in files.items():
                zf.writestr(fname, data)
    return out.getvalue()


def write_metadata(tflite: Path, meta: ImageClassifierMetadata, out: Path | None = None) -> Path:
    """Embed metadata into `tflite` (in place unless `out`), writing through a temporary file."""
    src = Path(tflite)
    dst = Path(out) if out is not None else src
    data = embed_metadata(src.read_bytes(), meta)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)
    return dst


def metadata_buffer(model_buf: bytes) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a model, or None."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    model = schema.Model.GetRootAs(model_buf, 0)
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        if _name(m.Name()) == METADATA_NAME:
            return model.Buffers(m.Buffer()).DataAsNumpy().tobytes()
    return None


def associated_files(model_buf: bytes) -> dict[str, bytes]:
    """The files zipped into a model (labels.txt, …); empty when none."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_buf)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        return {}


def _strip_zip(buf: bytes) -> bytes:
    """The flatbuffer part of a model that may already carry zipped files (re-embedding replaces them)."""
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile:
        return buf
    return buf[:min(i.header_offset for i in infos)] if infos else buf


def _inline_buffers(model, buf: bytes) -> None:
    """Move tensor data stored after the flatbuffer (offset/size buffers, as ai-edge-quantizer writes them)
    into the flatbuffer, so repacking keeps it."""
    for b in model.buffers or []:
        off, size = int(getattr(b, "offset", 0) or 0), int(getattr(b, "size", 0) or 0)
        if off > 1:  # 0 and 1 both mean "no external data" in the schema
            if off + size > len(buf):
                raise UserError("the .tflite is truncated: a tensor's data lies past the end of the file")
            if len(buf) > 2**31 - 1:
                raise UserError("metadata can only be added to .tflite models under 2 GB")
            b.data = np.frombuffer(buf, dtype=np.uint8, count=size, offset=off).copy()
            b.offset, b.size = 0, 0


def _check_single_io(model) -> None:
    if len(model.subgraphs or []) < 1:
        raise UserError("the .tflite has no subgraph")
    sg = model.subgraphs[0]
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise UserError(f"image-classifier metadata needs one input and one output; the model has "
                        f"{len(sg.inputs)} and {len(sg.outputs)}")


def _name(n) -> str:
    return n.decode() if isinstance(n, (bytes, bytearray)) else (n or "")
