"""Read an .mlpackage: Manifest.json → the model protobuf, and the MIL weight blob file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import MLInterpError
from .values import bit_width, dtype_name, unpack_bits

# MILBlob storage format (coremltools mlmodel/src/MILBlob/Blob/StorageFormat.hpp): a 64-byte header
# (uint32 count, uint32 version=2, reserved) then, per blob, 64-byte metadata (uint32 sentinel 0xDEADBEEF,
# uint32 dtype, uint64 size in bytes, uint64 data offset, reserved) and the data, 64-byte aligned.
# Sub-byte blobs hold ceil(n·bits/8) bytes, packed LSB first (the codes 8-13 are those coremltools 9
# writes for int4/uint1/uint2/uint4/uint3/uint6, read back from its own files).
_SENTINEL = 0xDEADBEEF
_BLOB_TYPES = {1: "fp16", 2: "fp32", 3: "uint8", 4: "int8", 8: "int4", 9: "uint1", 10: "uint2", 11: "uint4",
               12: "uint3", 13: "uint6"}
_META = np.dtype([("sentinel", "<u4"), ("dtype", "<u4"), ("size", "<u8"), ("offset", "<u8"), ("reserved", "<u8", 5)])


class BlobFile:
    """A memory-mapped weight.bin; `read(offset, dtype, shape)` returns one blob as an array."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        version = int(self.data[4:8].view("<u4")[0]) if self.data.size >= 64 else -1
        if version != 2:
            raise MLInterpError(f"{path}: not a MIL blob storage file (version {version}, expected 2)")

    def read(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """The blob whose metadata sits at `offset`, checked against the type the program declares."""
        if offset + 64 > self.data.size:
            raise MLInterpError(f"{self.path}: blob offset {offset} is past the end of the file")
        meta = self.data[offset : offset + 64].view(_META)[0]
        if int(meta["sentinel"]) != _SENTINEL:
            raise MLInterpError(f"{self.path}: no blob metadata at offset {offset} (bad sentinel)")
        code, want = int(meta["dtype"]), dtype_name(dtype)
        if code in _BLOB_TYPES and _BLOB_TYPES[code] != want:
            raise MLInterpError(f"{self.path}@{offset}: blob holds {_BLOB_TYPES[code]}, program declares {want}")
        count = int(np.prod(shape, dtype=np.int64))
        bits = bit_width(dtype)
        size, start = int(meta["size"]), int(meta["offset"])
        if size != -(-count * bits // 8) or start + size > self.data.size:
            raise MLInterpError(f"{self.path}@{offset}: blob of {size} bytes does not fit shape {shape} {want}")
        raw = self.data[start : start + size]
        if bits < 8:
            return unpack_bits(raw, bits, count, np.dtype(dtype).kind == "i").astype(dtype).reshape(shape)
        return np.array(raw.view(dtype).reshape(shape))


def read_mlpackage(path: str | Path):
    """(Model protobuf, weights directory) of an .mlpackage (or a bare .mlmodel)."""
    from mobiledeploy.errors import UserError, require

    require("coremltools", "coreml")
    from coremltools.proto import Model_pb2

    path = Path(path)
    if path.is_file():  # a bare .mlmodel: weights, if any, sit beside it in weights/
        model_file, root = path, path.parent
    else:
        manifest = path / "Manifest.json"
        if not manifest.is_file():
            raise UserError(f"{path} is not an .mlpackage (no Manifest.json)", "pass the .mlpackage folder")
        info = json.loads(manifest.read_text())
        entry = info["itemInfoEntries"][info["rootModelIdentifier"]]
        model_file = path / "Data" / entry["path"]
        root = model_file.parent
    spec = Model_pb2.Model()
    spec.ParseFromString(model_file.read_bytes())
    return spec, root
