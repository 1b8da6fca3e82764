"""Compressed weights: the constexpr_* ops (iOS16 constexpr_ops.py, iOS18 compression.py).

They decompress constants (int8/int4 linear quantization, n-bit palettization, sparsity) and run
once, when the program is loaded. iOS16 and iOS18 share the names constexpr_lut_to_dense and
constexpr_sparse_to_dense with different inputs; the inputs given (`shape` exists only in iOS16)
pick the definition. Dequantization computes in fp32 and rounds to the output type once.
"""

from __future__ import annotations

import numpy as np

from ..errors import ProgramTypeError
from ..registry import register_op
from ..values import bit_width, dtype_name, unpack_bits
from ._util import FLOATS, axis_of, ints

_LUT_T = ("int8", "uint8", "fp16", "fp32")
_INDICES_T = ("uint1", "uint2", "uint3", "uint4", "uint6", "uint8")
_SHIFT_SRC_T = ("int4", "uint4", "int8", "uint8", "fp16", "fp32")


def _need(x: np.ndarray, what: str, allowed: tuple[str, ...]) -> str:
    name = dtype_name(np.asarray(x).dtype)
    if name not in allowed:
        raise ProgramTypeError(f"{what} must be one of {', '.join(allowed)}, got {name}")
    return name


def _scale_type(scale: np.ndarray) -> np.dtype:
    dt = np.asarray(scale).dtype
    if dt not in FLOATS:
        raise ProgramTypeError(f"scale must be fp16 or fp32, got {dtype_name(dt)}")
    return dt


def _count(shape: np.ndarray) -> tuple[list[int], int]:
    dims = ints(shape)
    return dims, int(np.prod(dims, dtype=np.int64))


@register_op()
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    """scale · (quantized_data − zero_point); scale and zero_point are scalars or vectors along `axis`."""
    _need(quantized_data, "quantized_data", ("uint8", "int8"))
    _need(zero_point, "zero_point", ("uint8", "int8", "fp32"))
    out_t = _scale_type(scale)
    q = np.asarray(quantized_data)
    ax = axis_of(axis, q.ndim)
    bshape = [1] * q.ndim
    bshape[ax] = -1

    def along_axis(p: np.ndarray, what: str) -> np.ndarray:
        p = np.asarray(p, np.float32)
        if p.ndim > 1 or (p.ndim == 1 and p.shape[0] != q.shape[ax]):
            raise ProgramTypeError(f"{what} of shape {p.shape} for data {q.shape} along axis {ax}")
        return p.reshape(bshape) if p.ndim == 1 else p

    out = (q.astype(np.float32) - along_axis(zero_point, "zero_point")) * along_axis(scale, "scale")
    return out.astype(out_t)


@register_op()
def constexpr_cast(source_val, output_dtype):
    """fp16 constant widened to fp32 (the only cast the op defines)."""
    if np.asarray(source_val).dtype != np.float16 or output_dtype != "fp32":
        raise ProgramTypeError(f"constexpr_cast is defined from fp16 to fp32 only, got "
                               f"{dtype_name(np.asarray(source_val).dtype)} → {output_dtype}")
    return np.asarray(source_val).astype(np.float32)


@register_op()
def constexpr_lut_to_dense(indices, lut, shape=None, vector_axis=None):
    """Palettized weights: each index picks a lookup-table entry (iOS16: packed indices + `shape`;
    iOS18: n-bit indices tensor, per-block tables, optional vectors along `vector_axis`)."""
    _need(lut, "lut", _LUT_T)
    if shape is not None:
        if vector_axis is not None:
            raise ProgramTypeError("iOS16 constexpr_lut_to_dense (with shape) has no vector_axis")
        return _lut_ios16(np.asarray(indices), np.asarray(lut), shape)
    return _lut_ios18(np.asarray(indices), np.asarray(lut), vector_axis)


def _lut_ios16(indices: np.ndarray, lut: np.ndarray, shape) -> np.ndarray:
    _need(indices, "indices", ("uint8",))
    if indices.ndim != 1 or lut.ndim != 1:
        raise ProgramTypeError(f"indices {indices.shape} and lut {lut.shape} must be vectors")
    if lut.size not in (2, 4, 16, 64, 256):
        raise ProgramTypeError(f"lut has {lut.size} entries; iOS16 allows 2, 4, 16, 64 or 256")
    nbits = int(lut.size).bit_length() - 1
    dims, count = _count(shape)
    if indices.size != -(-nbits * count // 8):
        raise ProgramTypeError(f"{indices.size} index bytes for {count} {nbits}-bit indices "
                               f"(needs ceil({nbits}·{count}/8))")
    return lut[unpack_bits(indices, nbits, count)].reshape(dims)


def _lut_ios18(indices: np.ndarray, lut: np.ndarray, vector_axis) -> np.ndarray:
    _need(indices, "indices", _INDICES_T)
    r = indices.ndim
    if r < 1 or lut.ndim != r + 2:
        raise ProgramTypeError(f"lut of rank {lut.ndim} for indices of rank {r} (needs rank + 2)")
    if any(d % g for d, g in zip(indices.shape, lut.shape[:r])):
        raise ProgramTypeError(f"indices {indices.shape} do not split into the lut's blocks {lut.shape[:r]}")
    bits, palettes, vec = bit_width(indices.dtype), lut.shape[-2], lut.shape[-1]
    if palettes != 1 << bits:
        raise ProgramTypeError(f"lut has {palettes} entries for {dtype_name(indices.dtype)} indices")
    if vec > 1 and vector_axis is None:
        raise ProgramTypeError(f"vectors of {vec} entries need vector_axis")
    # Block k along dim i uses table k: the table of element (…, j, …) is j // block_size on each dim.
    grids = tuple((np.arange(d) // (d // g)).reshape([-1 if i == k else 1 for i in range(r)])
                  for k, (d, g) in enumerate(zip(indices.shape, lut.shape[:r])))
    vals = lut[grids + (indices.astype(np.intp),)]  # indices.shape + (vec,)
    if vec == 1:
        return vals[..., 0]
    ax = axis_of(vector_axis, r)
    shape = list(indices.shape)
    shape[ax] *= vec
    return np.ascontiguousarray(np.moveaxis(vals, -1, ax + 1)).reshape(shape)  # a vector fills vec slots of ax


@register_op()
def constexpr_sparse_to_dense(nonzero_data, mask, shape=None):
    """Sparse weights: zeros where the bit mask is 0, the next value of nonzero_data where it is 1
    (iOS16: packed uint8 mask + `shape`; iOS18: uint1 mask of the output's shape)."""
    data = np.asarray(nonzero_data)
    if data.ndim != 1:
        raise ProgramTypeError(f"nonzero_data must be a vector, got shape {data.shape}")
    if shape is not None:
        _need(data, "nonzero_data", _LUT_T)
        _need(mask, "mask", ("uint8",))
        dims, count = _count(shape)
        if np.ndim(mask) != 1 or np.size(mask) != -(-count // 8):
            raise ProgramTypeError(f"mask of {np.size(mask)} bytes for {count} elements")
        bits = np.unpackbits(np.asarray(mask), bitorder="little")
        if bits[count:].any():
            raise ProgramTypeError("mask padding bits must be 0")
        return _scatter(data, bits[:count].reshape(dims))
    _need(data, "nonzero_data", ("int4", "uint4", *_LUT_T))
    _need(mask, "mask", ("uint1",))
    return _scatter(data, np.asarray(mask))


def _scatter(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    on = mask != 0
    if int(on.sum()) != data.size:
        raise ProgramTypeError(f"mask has {int(on.sum())} set bits for {data.size} nonzero values")
    out = np.zeros(mask.shape, dtype=data.dtype)
    out[on] = data
    return out


@register_op()
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    """scale · (data − offset), one scale (and offset) per block; block size = data.shape / scale.shape."""
    src = _need(data, "data", _SHIFT_SRC_T)
    out_t = _scale_type(scale)
    return _shift_scale(np.asarray(data), src, np.asarray(scale), offset).astype(out_t)


def _shift_scale(data: np.ndarray, src: str, scale: np.ndarray, offset) -> np.ndarray:
    if data.ndim < 1 or scale.ndim != data.ndim or any(d % s for d, s in zip(data.shape, scale.shape)):
        raise ProgramTypeError(f"scale {scale.shape} does not split data {data.shape} into blocks")
    if offset is not None:
        off_t = dtype_name(np.asarray(offset).dtype)
        if np.shape(offset) != scale.shape or off_t not in ("fp16", "fp32", src):
            raise ProgramTypeError(f"offset {off_t}{list(np.shape(offset))} for data {src} and scale {scale.shape}")
    # (s0, b0, s1, b1, …): each block's scale broadcasts over its b_i elements without copies.
    split = [v for s, d in zip(scale.shape, data.shape) for v in (s, d // s)]
    per_block = [v for s in scale.shape for v in (s, 1)]
    x = data.astype(np.float32).reshape(split)
    if offset is not None:
        x = x - np.asarray(offset, np.float32).reshape(per_block)
    return (x * scale.astype(np.float32).reshape(per_block)).reshape(data.shape)


@register_op()
def constexpr_lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """Palettization of sparse weights: (mask, looked-up nonzero values), for constexpr_sparse_to_dense."""
    _need(indices_mask, "indices_mask", ("uint1",))
    _need(lut, "lut", _LUT_T)
    mask = np.asarray(indices_mask)
    dense = _lut_ios18(_scatter(np.asarray(indices_nonzero_data), mask), np.asarray(lut), vector_axis)
    vec = np.shape(lut)[-1]
    if vec > 1:  # each index became a vector along vector_axis: so does its mask bit
        mask = np.repeat(mask, vec, axis=axis_of(vector_axis, mask.ndim))
    return mask, dense[mask != 0]


@register_op()
def constexpr_sparse_blockwise_shift_scale(data_mask, nonzero_data, scale, offset=None):
    """Quantization of sparse weights: (mask, scale · (value − offset) for each nonzero value)."""
    _need(data_mask, "data_mask", ("uint1",))
    src = _need(nonzero_data, "nonzero_data", _SHIFT_SRC_T)
    out_t = _scale_type(scale)
    mask = np.asarray(data_mask)
    dense = _shift_scale(_scatter(np.asarray(nonzero_data), mask), src, np.asarray(scale), offset)
    return mask, dense[mask != 0].astype(out_t)

