"""Execute the main function of an ML program, op by op, checking every value against its declared type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import MLInterpError, ProgramTypeError, UnsupportedOpError
from .package import read_mlpackage
from .registry import VARIADIC, get_op, ios_of_opset, running_ios
from .values import declared_type, decode_value, dtype_name

# FeatureTypes ImageFeatureType.ColorSpace and ArrayFeatureType.ArrayDataType codes.
_GRAY, _RGB, _BGR = 10, 20, 30
_ARRAY_DTYPES = {65552: np.float16, 65568: np.float32, 65600: np.float64, 131104: np.int32}


@dataclass
class _Step:
    op_type: str
    where: str  # "conv 'conv2d_3'", for messages
    args: dict[str, Any]  # input name → var name | ("const", value) | list of those (variadic)
    outputs: list[tuple[str, tuple]]  # (name, (kind, dtype, shape))
    consts: frozenset = frozenset()  # inputs bound to constants (some iOS17 type rules depend on it)


class MLProgram:
    """An ML program loaded from an .mlpackage, ready to run on the CPU."""

    def __init__(self, path: str | Path) -> None:
        spec, root = read_mlpackage(path)
        if spec.WhichOneof("Type") != "mlProgram":
            raise UnsupportedOpError(
                f"{path}: a {spec.WhichOneof('Type')} model; the interpreter runs ML programs (mlprogram) only"
            )
        self.path, self.spec = Path(path), spec
        fn = spec.mlProgram.functions["main"]
        self.opset = fn.opset
        self.ios = ios_of_opset(fn.opset)
        self.inputs = {v.name: declared_type(v.type, f"input {v.name!r}") for v in fn.inputs}
        block = fn.block_specializations[fn.opset]
        self.output_names = list(block.outputs)
        self.consts: dict[str, Any] = {}
        self.steps: list[_Step] = []
        blobs: dict = {}
        for op in block.operations:
            name = op.attributes["name"].immediateValue.tensor.strings.values[0] if "name" in op.attributes else "?"
            where = f"{op.type} {name!r}"
            if op.blocks:
                raise UnsupportedOpError(f"{where}: ops with nested blocks (control flow) are not supported")
            if op.type == "const":
                out = op.outputs[0]
                self.consts[out.name] = decode_value(op.attributes["val"], root, blobs, where)
                continue
            if op.type.startswith("constexpr_"):
                with running_ios(self.ios):
                    self._fold_constexpr(op, where, root, blobs)
                continue
            get_op(op.type, where)  # refuse unknown ops at load time, before anything (arguments included) is checked
            args: dict[str, Any] = {}
            for key, arg in op.inputs.items():
                binds = [b.name if b.WhichOneof("binding") == "name"
                         else ("const", decode_value(b.value, root, blobs, f"{where}.{key}")) for b in arg.arguments]
                if key in VARIADIC:
                    args[key] = binds
                elif len(binds) != 1:
                    raise ProgramTypeError(f"{where}: input {key!r} has {len(binds)} arguments")
                else:
                    args[key] = binds[0]
            outs = [(o.name, declared_type(o.type, f"{where} output {o.name!r}")) for o in op.outputs]
            consts = frozenset(k for k, v in args.items() if isinstance(v, tuple) or (isinstance(v, str) and v in self.consts))
            self.steps.append(_Step(op.type, where, args, outs, consts))

    def _fold_constexpr(self, op, where: str, root: Path, blobs: dict) -> None:
        """Decompress a compile-time op (compressed weights) once, at load time, into a constant.

        iOS16 constexpr ops carry their parameters as attributes; iOS17/18 ones as inputs bound to
        consts (or to the result of another constexpr op, e.g. a quantized lookup table).
        """
        args: dict[str, Any] = {k: decode_value(v, root, blobs, f"{where}.{k}")
                                for k, v in op.attributes.items() if k != "name"}
        for key, arg in op.inputs.items():
            if len(arg.arguments) != 1:
                raise ProgramTypeError(f"{where}: input {key!r} has {len(arg.arguments)} arguments")
            b = arg.arguments[0]
            if b.WhichOneof("binding") != "name":
                args[key] = decode_value(b.value, root, blobs, f"{where}.{key}")
            elif b.name in self.consts:
                args[key] = self.consts[b.name]
            else:
                raise ProgramTypeError(f"{where}: input {key!r} is bound to {b.name!r}, which is not a constant")
        outs = [(o.name, declared_type(o.type, f"{where} output {o.name!r}")) for o in op.outputs]
        self.consts.update(_call(_Step(op.type, where, {}, outs), args))

    def run(self, feeds: Mapping[str, np.ndarray], keep: bool = False) -> dict[str, Any]:
        """Block outputs for the function inputs `feeds` (exact declared dtypes and shapes required)."""
        env: dict[str, Any] = dict(self.consts)
        for name, (_, dtype, shape) in self.inputs.items():
            if name not in feeds:
                raise MLInterpError(f"missing input {name!r} (inputs: {', '.join(self.inputs)})")
            env[name] = _check(np.asarray(feeds[name]), ("tensor", dtype, shape), f"input {name!r}")
        with running_ios(self.ios):
            for step in self.steps:
                env.update(_call(step, {k: _resolve(v, env) for k, v in step.args.items()}))
        return dict(env) if keep else {n: env[n] for n in self.output_names}


def _call(step: _Step, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one op on resolved inputs; its results by output name, each checked against its declared type."""
    fn = get_op(step.op_type, step.where)
    if getattr(fn, "const_inputs", False):  # the op's typing depends on which inputs are constants
        kwargs = dict(kwargs, const_inputs=step.consts)
    try:
        res = fn(**kwargs)
    except MLInterpError as e:
        raise type(e)(f"{step.where}: {e.message}", e.hint) from None
    except TypeError as e:  # an input the op definition does not have
        raise UnsupportedOpError(f"{step.where}: {e}") from None
    res = res if isinstance(res, tuple) else (res,)
    if len(res) != len(step.outputs):
        raise ProgramTypeError(f"{step.where}: {len(res)} results for {len(step.outputs)} declared outputs")
    return {name: _check(val, decl, f"{step.where} output {name!r}") for val, (name, decl) in zip(res, step.outputs)}


def _resolve(arg: Any, env: dict[str, Any]) -> Any:
    if isinstance(arg, list):
        return [_resolve(a, env) for a in arg]
    if isinstance(arg, tuple):
        return arg[1]
    if arg not in env:
        raise ProgramTypeError(f"value {arg!r} is used before it is defined")
    return env[arg]


def _check(val: Any, decl: tuple, where: str) -> Any:
    """`val` if it has the declared kind, dtype and shape; the dtype is never coerced."""
    kind, dtype, shape = decl
    if kind == "dict":
        if not isinstance(val, dict):
            raise ProgramTypeError(f"{where}: expected a dictionary")
        return val
    if kind != "tensor":
        return val
    if dtype is str:
        if not isinstance(val, str):
            raise ProgramTypeError(f"{where}: expected a string")
        return val
    arr = np.asarray(val)
    if arr.dtype != np.dtype(dtype) or dtype_name(arr.dtype) != dtype_name(dtype):  # names: uint4 ≠ uint8
        raise ProgramTypeError(f"{where}: computes {dtype_name(arr.dtype)} but the program declares {dtype_name(dtype)}")
    if arr.shape != tuple(shape):
        raise ProgramTypeError(f"{where}: computes shape {arr.shape} but the program declares {tuple(shape)}")
    return arr
