"""ExecuTorch without torch: `.pte` files through ExecuTorch's C++ runtime (XNNPACK, optimized kernels) via ctypes.

ExecuTorch's Python runtime links libtorch (its pybindings take torch tensors), far too heavy for a board
or an emulated one. The executorch wheel also ships the runtime itself as torch-free shared libraries
(executorch/lib: libexecutorch.so, the XNNPACK backend, the optimized and quantized kernels);
scripts/executorch_shim.cpp puts a small C ABI over them (libmdet_executorch.so) and this runner calls it
with numpy arrays. scripts/arm-board.sh builds both into the emulated board's rootfs. numpy and the
standard library only: this file travels to the board with the agent.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from mobiledeploy.errors import UserError

from .runtime import Call, Runner, TensorSpec, recorded_output_names, register_runner

LIB_ENV = "MOBILEDEPLOY_EXECUTORCH_SHIM"
# Where scripts/arm-board.sh puts the shim (beside the runtime libraries it links with $ORIGIN).
DEFAULT_PATHS = ("/opt/executorch-runtime/lib/libmdet_executorch.so",)
# ExecuTorch ScalarType codes ↔ numpy dtypes.
_SCALAR = {0: np.uint8, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64, 5: np.float16, 6: np.float32,
           7: np.float64, 11: np.bool_}
_CODE = {np.dtype(v): k for k, v in _SCALAR.items()}
_MAX_DIMS = 16


def shim_path() -> str | None:
    """The shim library: $MOBILEDEPLOY_EXECUTORCH_SHIM, else the board's default place; None when absent."""
    env = os.environ.get(LIB_ENV)
    if env:
        return env if os.path.exists(env) else None
    return next((p for p in DEFAULT_PATHS if os.path.exists(p)), None)


@register_runner
class ExecuTorchNativeRunner(Runner):
    """ExecuTorch's C++ runtime through libmdet_executorch.so (no torch): XNNPACK delegate + optimized kernels."""

    name = "executorch-native"
    suffixes = (".pte",)
    extra = "executorch"
    board_pip = ("numpy, plus ExecuTorch's runtime libraries and scripts/executorch_shim.cpp built against them "
                 "(scripts/arm-board.sh shows how), or: pip install numpy torch executorch")

    @classmethod
    def available(cls) -> bool:
        return shim_path() is not None

    def __init__(self, artifact: str, threads: int) -> None:
        super().__init__(artifact, threads)
        path = shim_path()
        if path is None:
            raise UserError(f"ExecuTorch's native runtime shim is not on this machine (${LIB_ENV} or "
                            f"{DEFAULT_PATHS[0]})", self.board_pip)
        lib = ctypes.CDLL(path)
        lib.mdet_open.restype = ctypes.c_void_p
        lib.mdet_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.mdet_close.argtypes = [ctypes.c_void_p]
        lib.mdet_count.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.mdet_meta.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                  ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
        lib.mdet_backends.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.mdet_run.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int64),
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_int]
        lib.mdet_output.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                    ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                    ctypes.POINTER(ctypes.c_int64)]
        self.lib, self.shim = lib, path
        err = ctypes.create_string_buffer(512)
        handle = lib.mdet_open(str(artifact).encode(), int(threads), err, len(err))
        if not handle:
            raise UserError(f"ExecuTorch could not load {artifact}: {err.value.decode(errors='replace')}", None)
        self.handle = ctypes.c_void_p(handle)
        self.data = Path(artifact).read_bytes()
        # A .pte stores no output names: those the export recorded (as ExecuTorchRunner names them).
        self._out_names = recorded_output_names(artifact, self.lib.mdet_count(self.handle, 1))

    def __del__(self) -> None:
        handle = getattr(self, "handle", None)
        if handle:
            self.lib.mdet_close(handle)
            self.handle = None

    def _specs(self, is_output: int) -> list[TensorSpec]:
        n = self.lib.mdet_count(self.handle, is_output)
        specs = []
        for i in range(n):
            code, dims = ctypes.c_int(), (ctypes.c_int64 * _MAX_DIMS)()
            nd = self.lib.mdet_meta(self.handle, is_output, i, ctypes.byref(code), dims, _MAX_DIMS)
            if nd < 0:
                raise UserError(f"{self.artifact}: {'output' if is_output else 'input'} {i} is not a tensor", None)
            name = self._out_names[i] if is_output else f"input_{i}" if n > 1 else "input"
            specs.append(TensorSpec(name, [int(d) for d in dims[:nd]],
                                    np.dtype(_SCALAR.get(code.value, np.float32)).name))
        return specs

    def input_specs(self) -> list[TensorSpec]:
        return self._specs(0)

    def output_specs(self) -> list[TensorSpec]:
        return self._specs(1)

    def prepare(self, inputs: dict[str, np.ndarray]) -> Call:
        specs = self.input_specs()
        arrays = [np.ascontiguousarray(inputs[s.name], dtype=s.dtype) for s in specs]
        n = len(arrays)
        ptrs = (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays])
        codes = (ctypes.c_int * n)(*[_CODE[a.dtype] for a in arrays])
        ndims = (ctypes.c_int * n)(*[a.ndim for a in arrays])
        flat = [int(d) for a in arrays for d in a.shape]
        dims = (ctypes.c_int64 * max(1, len(flat)))(*flat)
        lib, handle, n_out = self.lib, self.handle, self.lib.mdet_count(self.handle, 1)
        err = ctypes.create_string_buffer(512)

        def call(keep: Any = arrays) -> list[np.ndarray]:  # `keep`: the buffers the pointers point into
            if lib.mdet_run(handle, n, ptrs, codes, dims, ndims, err, len(err)) != 0:
                raise RuntimeError(f"ExecuTorch: {err.value.decode(errors='replace')}")
            outs = []
            for i in range(n_out):
                code, shape = ctypes.c_int(), (ctypes.c_int64 * _MAX_DIMS)()
                data, nbytes = ctypes.c_void_p(), ctypes.c_int64()
                nd = lib.mdet_output(handle, i, ctypes.byref(code), shape, _MAX_DIMS, ctypes.byref(data),
                                     ctypes.byref(nbytes))
                if nd < 0:
                    raise RuntimeError(f"ExecuTorch: output {i} is not a tensor")
                raw = ctypes.string_at(data.value, nbytes.value) if nbytes.value else b""
                outs.append(np.frombuffer(raw, dtype=_SCALAR[code.value]).reshape([int(d) for d in shape[:nd]]))
            return outs

        return call

    def info(self) -> dict[str, Any]:
        d = super().info()
        buf = ctypes.create_string_buffer(256)
        self.lib.mdet_backends(self.handle, buf, len(buf))
        used = [b for b in buf.value.decode().split(",") if b]
        counts = plan_counts(self.data)
        delegate = "+".join(sorted(set(used))).replace("XnnpackBackend", "XNNPACK") or None
        d.update(package="executorch C++ runtime (no torch)", version=_runtime_version(self.shim), delegate=delegate,
                 shim=self.shim,
                 partitions=counts.get("partitions"), kernel_calls=counts.get("kernel_calls"))
        return d


def _runtime_version(shim: str) -> str | None:
    """The executorch release the runtime libraries came from (scripts/arm-board.sh writes VERSION beside them)."""
    try:
        return Path(shim).with_name("VERSION").read_text().strip() or None
    except OSError:
        return None


# --- the program's execution plan, read straight from the flatbuffer (schema/program.fbs) ---------------


class _Table:
    """A flatbuffer table: fields by their index in the schema."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt, self.vt_len = vt, struct.unpack_from("<H", buf, vt)[0]

    def _off(self, field: int) -> int:
        slot = 4 + 2 * field
        return struct.unpack_from("<H", self.buf, self.vt + slot)[0] if slot < self.vt_len else 0

    def u8(self, field: int) -> int:
        o = self._off(field)
        return self.buf[self.pos + o] if o else 0

    def _ref(self, field: int) -> int | None:
        o = self._off(field)
        if not o:
            return None
        at = self.pos + o
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, field: int) -> _Table | None:
        at = self._ref(field)
        return None if at is None else _Table(self.buf, at)

    def tables(self, field: int) -> list[_Table]:
        at = self._ref(field)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        return [_Table(self.buf, at + 4 + 4 * i + struct.unpack_from("<I", self.buf, at + 4 + 4 * i)[0])
                for i in range(n)]

    def string(self, field: int) -> str | None:
        at = self._ref(field)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode()


_KERNEL_CALL, _DELEGATE_CALL = 1, 2  # union InstructionArguments {KernelCall, DelegateCall, ...}


def plan_counts(data: bytes) -> dict[str, Any]:
    """Delegate calls (pieces), kernel calls and delegate names of the forward plan; {} for a foreign file."""
    if len(data) < 8 or data[4:6] != b"ET":  # file_identifier "ET12" (the version digits may move)
        return {}
    try:
        program = _Table(data, struct.unpack_from("<I", data, 0)[0])
        plans = program.tables(1)  # Program.execution_plan
        plan = next((p for p in plans if p.string(0) == "forward"), plans[0] if plans else None)
        if plan is None:
            return {}
        kinds = [ins.u8(0) for chain in plan.tables(5) for ins in chain.tables(2)]  # chains → instructions
        delegates = sorted({d.string(0) or "" for d in plan.tables(7)})  # BackendDelegate.id
    except (struct.error, IndexError, UnicodeDecodeError):
        return {}
    return {"partitions": kinds.count(_DELEGATE_CALL), "kernel_calls": kinds.count(_KERNEL_CALL),
            "delegate": "+".join(delegates).replace("XnnpackBackend", "XNNPACK") or None}
