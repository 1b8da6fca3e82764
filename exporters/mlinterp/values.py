"""Decode MIL protobuf types and values (immediate or in the weight blob) into numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import MLInterpError, UnsupportedOpError

# MIL DataType enum (coremltools/proto MIL_pb2.DataType) → numpy; STRING values stay Python str.
DTYPES: dict[int, Any] = {
    1: np.bool_, 2: str, 10: np.float16, 11: np.float32, 12: np.float64,
    21: np.int8, 22: np.int16, 23: np.int32, 24: np.int64,
    31: np.uint8, 32: np.uint16, 33: np.uint32, 34: np.uint64,
}
# MIL's names for the same types, used by `cast(dtype=...)` and in messages.
NAMES = {np.dtype(np.bool_): "bool", np.dtype(np.float16): "fp16", np.dtype(np.float32): "fp32",
         np.dtype(np.float64): "fp64", np.dtype(np.int8): "int8", np.dtype(np.int16): "int16",
         np.dtype(np.int32): "int32", np.dtype(np.int64): "int64", np.dtype(np.uint8): "uint8",
         np.dtype(np.uint16): "uint16", np.dtype(np.uint32): "uint32"}
BY_NAME = {v: k for k, v in NAMES.items()} | {"i32": np.dtype(np.int32), "i64": np.dtype(np.int64)}


def _sub_byte(name: str, bits: int, signed: bool) -> np.dtype:
    # One element per byte in memory; the dtype's metadata keeps the MIL type, so the width survives
    # into the ops (np.dtype equality ignores metadata: a uint4 array is also a uint8 array).
    return np.dtype(np.int8 if signed else np.uint8, metadata={"mil": name, "bits": bits})


# Sub-byte types of iOS18 compression (palettization indices, int4 quantization, uint1 sparsity masks).
SUB_BYTE: dict[int, np.dtype] = {
    25: _sub_byte("int4", 4, True), 35: _sub_byte("uint4", 4, False), 36: _sub_byte("uint2", 2, False),
    37: _sub_byte("uint1", 1, False), 38: _sub_byte("uint6", 6, False), 39: _sub_byte("uint3", 3, False),
}


def dtype_name(dt: Any) -> str:
    """MIL's name of a numpy dtype ('fp16', 'int32', 'uint4', …)."""
    if dt is str:
        return "str"
    meta = np.dtype(dt).metadata or {}
    return meta.get("mil") or NAMES.get(np.dtype(dt), str(dt))


def bit_width(dt: Any) -> int:
    """Bits per element as stored: 4 for uint4, 8 for int8/uint8, 16 for fp16, …."""
    meta = np.dtype(dt).metadata or {}
    return int(meta.get("bits", np.dtype(dt).itemsize * 8))


def unpack_bits(packed: np.ndarray, bits: int, count: int, signed: bool = False) -> np.ndarray:
    """`count` `bits`-wide integers packed LSB first into bytes (MIL's packing), one per int16 element."""
    flat = np.unpackbits(np.asarray(packed).view(np.uint8).reshape(-1), bitorder="little")
    if flat.size < count * bits:
        raise MLInterpError(f"{flat.size // 8} bytes hold fewer than {count} {bits}-bit values")
    fields = flat[: count * bits].reshape(count, bits).astype(np.int16)
    vals = fields @ (np.int16(1) << np.arange(bits, dtype=np.int16))
    if signed:  # two's complement in `bits` bits
        vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
    return vals.astype(np.int16)


def tensor_dtype(code: int, where: str) -> Any:
    """The numpy dtype of a MIL DataType code, or a refusal for the types we do not run (fp8, bf16, …)."""
    if code in SUB_BYTE:
        return SUB_BYTE[code]
    if code not in DTYPES:
        raise UnsupportedOpError(f"{where}: MIL data type {code} is not supported by the interpreter")
    return DTYPES[code]


def declared_type(value_type, where: str) -> tuple[str, Any, tuple[int, ...] | None]:
    """(kind, dtype, shape) of a MIL ValueType: kind is tensor | list | tuple | dict."""
    kind = value_type.WhichOneof("type")
    if kind == "tensorType":
        t = value_type.tensorType
        dims = []
        for d in t.dimensions:
            if d.WhichOneof("dimension") != "constant":
                raise UnsupportedOpError(f"{where}: symbolic dimension; the interpreter runs static shapes only")
            dims.append(int(d.constant.size))
        return "tensor", tensor_dtype(t.dataType, where), tuple(dims)
    if kind == "dictionaryType":
        return "dict", None, None
    if kind in ("listType", "tupleType"):
        return kind[:-4], None, None
    raise UnsupportedOpError(f"{where}: value type {kind!r} is not supported")


def decode_value(value, root: Path, blobs: dict, where: str) -> Any:
    """A MIL Value: ndarray for tensors (0-d for scalars), str for string scalars, list for lists."""
    kind, dtype, shape = declared_type(value.type, where)
    which = value.WhichOneof("value")
    if which == "blobFileValue":
        from .package import BlobFile

        name = value.blobFileValue.fileName.replace("@model_path/", "")
        path = (root / name).resolve()
        if path not in blobs:
            if not path.is_file():
                raise MLInterpError(f"{where}: weight file {name} is missing")
            blobs[path] = BlobFile(path)
        return blobs[path].read(int(value.blobFileValue.offset), dtype, shape)
    imm = value.immediateValue
    which = imm.WhichOneof("value")
    if which == "list":
        return [decode_value(v, root, blobs, where) for v in imm.list.values]
    if which == "tuple":
        return tuple(decode_value(v, root, blobs, where) for v in imm.tuple.values)
    if which != "tensor":
        raise UnsupportedOpError(f"{where}: immediate value of kind {which!r} is not supported")
    return _tensor(imm.tensor, dtype, shape, where)


def _tensor(tv, dtype: Any, shape: tuple[int, ...], where: str) -> Any:
    field = tv.WhichOneof("value")
    if dtype is str:
        vals = list(tv.strings.values)
        return vals[0] if shape == () else np.array(vals, dtype=object).reshape(shape)
    if field == "bytes" and bit_width(dtype) < 8:  # sub-byte values: packed LSB first, like the blob file
        count = int(np.prod(shape, dtype=np.int64))
        raw = np.frombuffer(tv.bytes.values, dtype=np.uint8)
        if raw.size != -(-count * bit_width(dtype) // 8):
            raise MLInterpError(f"{where}: {raw.size} bytes for {count} {dtype_name(dtype)} values")
        arr = unpack_bits(raw, bit_width(dtype), count, np.dtype(dtype).kind == "i").astype(dtype)
    elif field == "bytes":  # fp16 / 8-bit / uint32 data are stored as raw bytes
        arr = np.frombuffer(tv.bytes.values, dtype=dtype)
    elif field is None:
        arr = np.zeros(0, dtype=dtype)
    else:
        arr = np.array(list(getattr(tv, field).values))
        if field == "floats" and np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64)):
            raise MLInterpError(f"{where}: float data for a {dtype_name(dtype)} tensor")
        arr = arr.astype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if arr.size != count:
        raise MLInterpError(f"{where}: {arr.size} values for shape {shape}")
    return arr.reshape(shape).copy()
