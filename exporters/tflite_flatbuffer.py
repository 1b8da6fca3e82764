"""Passes on a .tflite flatbuffer (object API of ai_edge_litert.schema_py_generated), registered by name.

A pass is `fn(model: ModelT, options) -> int` (ops changed). They run after litert-torch, where
the graph is already NHWC and we can choose ops that stay inside the XNNPACK delegate.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

FbPass = Callable[[Any, dict], int]
_PASSES: dict[str, tuple[FbPass, str]] = {}


def register_fb_pass(name: str) -> Callable[[FbPass], FbPass]:
    """Register a flatbuffer pass; its docstring's first line is what the manifest records."""

    def deco(fn: FbPass) -> FbPass:
        _PASSES[name] = (fn, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def schema() -> Any:
    """The generated TFLite schema module."""
    from mobiledeploy.errors import require

    return require("ai_edge_litert.schema_py_generated", "tflite")


def load(data: bytes) -> Any:
    """Unpack flatbuffer bytes into a mutable ModelT."""
    s = schema()
    return s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))


def dump(model: Any) -> bytes:
    """Pack a ModelT back into flatbuffer bytes."""
    import flatbuffers

    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_fb_passes(data: bytes, names: list[str], options: dict | None = None) -> tuple[bytes, list[dict[str, Any]]]:
    """Apply the named passes to a flatbuffer; returns the new bytes and a record per pass that changed it."""
    model, applied = load(data), []
    for name in names:
        fn, doc = _PASSES[name]
        n = fn(model, options or {})
        if n:
            applied.append({"name": name, "changed": n, "what": doc, "stage": "tflite flatbuffer"})
    if applied:
        drop_dead_tensors(model)
    return (dump(model) if applied else data), applied


def drop_dead_tensors(model: Any) -> int:
    """Remove tensors no op, graph I/O or signature refers to (the outputs of ops a pass folded away).

    They must go: nothing produces them, so LiteRT never allocates them, and a calibrating interpreter
    that reads every tensor (ai-edge-quantizer's) fails with "Tensor data is null".
    """
    dropped = 0
    for gi, graph in enumerate(model.subgraphs):
        used: set[int] = set()
        for op in graph.operators:
            for field in (op.inputs, op.outputs, op.intermediates):
                used.update(int(t) for t in (field if field is not None else []) if int(t) >= 0)
        for field in (graph.inputs, graph.outputs):
            used.update(int(t) for t in (field if field is not None else []))
        sig_maps = [m for sd in (model.signatureDefs or []) if sd.subgraphIndex == gi
                    for m in (sd.inputs or []) + (sd.outputs or [])]
        used.update(int(m.tensorIndex) for m in sig_maps)
        if len(used) == len(graph.tensors):
            continue
        new_index = {old: new for new, old in enumerate(sorted(used))}

        def remap(ids: Any) -> Any:
            return None if ids is None else np.array([new_index[int(t)] if int(t) >= 0 else int(t) for t in ids],
                                                     dtype=np.int32)

        for op in graph.operators:
            op.inputs, op.outputs, op.intermediates = remap(op.inputs), remap(op.outputs), remap(op.intermediates)
        graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
        for m in sig_maps:
            m.tensorIndex = new_index[int(m.tensorIndex)]
        dropped += len(graph.tensors) - len(used)
        graph.tensors = [graph.tensors[i] for i in sorted(used)]
    if dropped:
        _drop_unreferenced_buffers(model)
    return dropped


# --- helpers ---------------------------------------------------------------------------------


def op_name(model: Any, op: Any) -> str:
    """The builtin name of an operator (e.g. 'CONV_2D')."""
    code = model.operatorCodes[op.opcodeIndex]
    num = max(code.builtinCode, code.deprecatedBuiltinCode)
    return _builtin_names().get(num, str(num))


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    s = schema()
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


def opcode_index(model: Any, name: str) -> int:
    """Index of a builtin op's OperatorCode, appended when the model has none yet."""
    s = schema()
    num = getattr(s.BuiltinOperator, name)
    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == num:
            return i
    code = s.OperatorCodeT()
    code.builtinCode = num
    code.deprecatedBuiltinCode = min(num, 127)  # the int8 field saturates at PLACEHOLDER_FOR_GREATER_OP_CODES
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def add_tensor(model: Any, graph: Any, name: str, shape: list[int], ttype: int, data: bytes | None = None) -> int:
    """Append a tensor (constant when data is given) and return its index."""
    s = schema()
    buf = s.BufferT()
    if data is not None:
        buf.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buf)
    t = s.TensorT()
    t.name = _unique_name(graph, name.encode() if isinstance(name, str) else name)
    t.shape = np.array(shape, dtype=np.int32)
    t.type = ttype
    t.buffer = len(model.buffers) - 1
    graph.tensors.append(t)
    return len(graph.tensors) - 1


def _unique_name(graph: Any, name: bytes) -> bytes:
    """name, or name#k when the graph has it already: ai-edge-quantizer keys its statistics by tensor name."""
    taken = {t.name for t in graph.tensors}
    if name not in taken:
        return name
    k = 1
    while name + b"#%d" % k in taken:
        k += 1
    return name + b"#%d" % k


def const_data(model: Any, tensor: Any) -> np.ndarray | None:
    """A constant tensor's bytes, or None for activations (and for buffers stored outside the flatbuffer)."""
    buf = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    return np.asarray(buf.data, dtype=np.uint8)


# --- passes ----------------------------------------------------------------------------------


@register_fb_pass("nearest_to_depth_to_space")
def nearest_to_depth_to_space(model: Any, options: dict) -> int:
    """Integer-factor RESIZE_NEAREST_NEIGHBOR → CONCATENATION + DEPTH_TO_SPACE, which XNNPACK runs (exact)."""
    s = schema()
    n = 0
    for graph in model.subgraphs:
        new_ops = []
        for op in graph.operators:
            q = _integer_nearest_factor(model, graph, op)
            if q is None:
                new_ops.append(op)
                continue
            x, y = int(op.inputs[0]), int(op.outputs[0])
            xt = graph.tensors[x]
            nb, h, w, c = (int(d) for d in xt.shape)
            src, chans = x, c
            # q*q copies along channels, at most 4 inputs per concat (XNNPACK's concatenate arity).
            for level, k in enumerate(_concat_plan(q * q)):
                t = add_tensor(model, graph, f"{_name(xt)}/nearest{q}x_copies{level}", [nb, h, w, chans * k], xt.type)
                cat = s.OperatorT()
                cat.opcodeIndex = opcode_index(model, "CONCATENATION")
                cat.inputs = np.array([src] * k, dtype=np.int32)
                cat.outputs = np.array([t], dtype=np.int32)
                cat.builtinOptionsType = s.BuiltinOptions.ConcatenationOptions
                cat.builtinOptions = s.ConcatenationOptionsT()
                cat.builtinOptions.axis = 3
                new_ops.append(cat)
                src, chans = t, chans * k
            d2s = s.OperatorT()
            d2s.opcodeIndex = opcode_index(model, "DEPTH_TO_SPACE")
            d2s.inputs = np.array([src], dtype=np.int32)
            d2s.outputs = np.array([y], dtype=np.int32)
            d2s.builtinOptionsType = s.BuiltinOptions.DepthToSpaceOptions
            d2s.builtinOptions = s.DepthToSpaceOptionsT()
            d2s.builtinOptions.blockSize = q
            new_ops.append(d2s)
            n += 1
        graph.operators = new_ops
    return n


@register_fb_pass("nearest_gate_broadcast_mul")
def nearest_gate_broadcast_mul(model: Any, options: dict) -> int:
    """x · resize_q(g) → reshape(x, N,h,q,w,q,C) · reshape(g, N,h,1,w,1,C): no upsampled gate is materialised."""
    s = schema()
    n = 0
    for graph in model.subgraphs:
        users: dict[int, list[Any]] = {}
        for op in graph.operators:
            for t in op.inputs:
                users.setdefault(int(t), []).append(op)
        outputs = {int(t) for t in (graph.outputs if graph.outputs is not None else [])}
        replace: dict[int, list[Any]] = {}  # id(MUL) → the ops that take its place
        gone: set[int] = set()  # id of each resize folded into a MUL
        for op in graph.operators:
            q = _integer_nearest_factor(model, graph, op)
            if q is None:
                continue
            up = int(op.outputs[0])
            mul = users.get(up, [None])[0] if len(users.get(up, [])) == 1 else None
            if mul is None or up in outputs or op_name(model, mul) != "MUL" or id(mul) in replace:
                continue
            opts = mul.builtinOptions
            other = [int(t) for t in mul.inputs if int(t) != up]
            if (opts is not None and getattr(opts, "fusedActivationFunction", 0)) or len(other) != 1:
                continue
            x, gate, y = other[0], int(op.inputs[0]), int(mul.outputs[0])
            if list(graph.tensors[x].shape) != list(graph.tensors[up].shape):
                continue
            nb, hh, ww, c = (int(d) for d in graph.tensors[x].shape)
            h, w = hh // q, ww // q
            g6 = _reshape(model, graph, gate, [nb, h, 1, w, 1, c], f"nearest_gate{n}/gate")
            x6 = _reshape(model, graph, x, [nb, h, q, w, q, c], f"nearest_gate{n}/x")
            prod = add_tensor(model, graph, f"nearest_gate{n}/product", [nb, h, q, w, q, c], graph.tensors[y].type)
            m6 = s.OperatorT()
            m6.opcodeIndex, m6.builtinOptionsType, m6.builtinOptions = mul.opcodeIndex, mul.builtinOptionsType, opts
            m6.inputs = np.array([x6[1], g6[1]], dtype=np.int32)
            m6.outputs = np.array([prod], dtype=np.int32)
            back = _reshape(model, graph, prod, [nb, hh, ww, c], f"nearest_gate{n}/out", out=y)
            replace[id(mul)] = [g6[0], x6[0], m6, back[0]]
            gone.add(id(op))
            n += 1
        graph.operators = [r for op in graph.operators if id(op) not in gone
                           for r in replace.get(id(op), [op])]
    return n


# XNNPACK's delegate takes CONCATENATION with 2 to 5 inputs; a wider one stays on the CPU and cuts the
# graph into several partitions (an odd nearest resize written as slices + concat has 7-9 pieces).
CONCAT_MAX_INPUTS = 4


@register_fb_pass("split_wide_concatenations")
def split_wide_concatenations(model: Any, options: dict) -> int:
    """CONCATENATION of more than 4 inputs → a tree of concatenations of at most 4 (XNNPACK's limit; exact)."""
    s = schema()
    n = 0
    for graph in model.subgraphs:
        new_ops = []
        for op in graph.operators:
            opts = op.builtinOptions
            if (op_name(model, op) != "CONCATENATION" or len(op.inputs) <= CONCAT_MAX_INPUTS
                    or getattr(opts, "fusedActivationFunction", 0)):
                new_ops.append(op)
                continue
            out = graph.tensors[int(op.outputs[0])]
            axis = int(opts.axis) % len(out.shape)
            srcs = [int(t) for t in op.inputs]
            while len(srcs) > CONCAT_MAX_INPUTS:
                groups = [srcs[i:i + CONCAT_MAX_INPUTS] for i in range(0, len(srcs), CONCAT_MAX_INPUTS)]
                srcs = []
                for g in groups:
                    if len(g) == 1:
                        srcs.append(g[0])
                        continue
                    shape = [int(d) for d in graph.tensors[g[0]].shape]
                    shape[axis] = sum(int(graph.tensors[t].shape[axis]) for t in g)
                    t = add_tensor(model, graph, f"{_name(out)}/concat_part", shape, out.type)
                    graph.tensors[t].quantization = out.quantization
                    new_ops.append(_concat(model, g, t, axis))
                    srcs.append(t)
            new_ops.append(_concat(model, srcs, int(op.outputs[0]), axis))
            n += 1
        graph.operators = new_ops
    return n


@register_fb_pass("strided_slice_as_depthwise")
def strided_slice_as_depthwise(model: Any, options: dict) -> int:
    """Stepped STRIDED_SLICE → SLICE + 1×1 depthwise conv (weight 1, stride = step), which XNNPACK runs (exact)."""
    n = 0
    for graph in model.subgraphs:
        new_ops = []
        for op in graph.operators:
            plan = _stepped_slice(model, graph, op)
            if plan is None:
                new_ops.append(op)
                continue
            begin, size, steps = plan
            x, y = int(op.inputs[0]), int(op.outputs[0])
            xt, out = graph.tensors[x], [int(d) for d in graph.tensors[y].shape]
            src, tag = x, f"{_name(xt)}/stepped"
            if begin != [0, 0, 0, 0] or size != [int(d) for d in xt.shape]:
                src = add_tensor(model, graph, tag + "/window", size, xt.type)
                new_ops.append(_slice(model, graph, x, src, begin, size))
            if steps[3] == 1:  # steps on axes 1, 2: they are the conv's H and W, axis 3 its channels
                new_ops.append(_pick_conv(model, graph, src, y, size[3], steps[1], steps[2]))
            else:  # steps on axes 2, 3 (an NCHW map): fold axes 0-1 into the batch, one channel
                op_a, flat = _reshape(model, graph, src, [size[0] * size[1], size[2], size[3], 1], tag + "/nhw1")
                picked = add_tensor(model, graph, tag + "/picked", [size[0] * size[1], out[2], out[3], 1], xt.type)
                op_b, _ = _reshape(model, graph, picked, out, tag + "/back", out=y)
                new_ops += [op_a, _pick_conv(model, graph, flat, picked, 1, steps[2], steps[3]), op_b]
            n += 1
        graph.operators = new_ops
    return n


@register_fb_pass("avg_pool_as_depthwise")
def avg_pool_as_depthwise(model: Any, options: dict) -> int:
    """VALID AVERAGE_POOL_2D → depthwise conv with weights 1/(kh·kw): XNNPACK has no int8 average pool, it has this."""
    s = schema()
    n = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            opts = op.builtinOptions
            if op_name(model, op) != "AVERAGE_POOL_2D" or opts is None or opts.padding != s.Padding.VALID:
                continue
            xt = graph.tensors[int(op.inputs[0])]
            if xt.type != s.TensorType.FLOAT32 or xt.shape is None or len(xt.shape) != 4:
                continue
            kh, kw, c = int(opts.filterHeight), int(opts.filterWidth), int(xt.shape[3])
            tag = _name(graph.tensors[int(op.outputs[0])])
            w = add_tensor(model, graph, tag + "/avg_w", [1, kh, kw, c], s.TensorType.FLOAT32,
                           np.full((kh, kw, c), 1.0 / (kh * kw), np.float32).tobytes())
            b = add_tensor(model, graph, tag + "/avg_b", [c], s.TensorType.FLOAT32, np.zeros(c, np.float32).tobytes())
            op.opcodeIndex = opcode_index(model, "DEPTHWISE_CONV_2D")
            op.inputs = np.array([int(op.inputs[0]), w, b], dtype=np.int32)
            op.builtinOptionsType = s.BuiltinOptions.DepthwiseConv2DOptions
            op.builtinOptions = s.DepthwiseConv2DOptionsT(
                padding=s.Padding.VALID, strideW=opts.strideW, strideH=opts.strideH, depthMultiplier=1,
                fusedActivationFunction=opts.fusedActivationFunction)
            n += 1
    return n


def _pick_conv(model: Any, graph: Any, src: int, out: int, channels: int, sh: int, sw: int) -> Any:
    """A 1×1 depthwise conv with weight 1 and bias 0: every sh-th row and sw-th column of src, unchanged."""
    s = schema()
    # x·1 + 0 is x exactly (and int8 quantizes the weight 1 exactly: scale 1/127, value 127).
    tag = _name(graph.tensors[out])
    w = add_tensor(model, graph, tag + "/pick_w", [1, 1, 1, channels], s.TensorType.FLOAT32,
                   np.ones(channels, np.float32).tobytes())
    b = add_tensor(model, graph, tag + "/pick_b", [channels], s.TensorType.FLOAT32,
                   np.zeros(channels, np.float32).tobytes())
    dw = s.OperatorT()
    dw.opcodeIndex = opcode_index(model, "DEPTHWISE_CONV_2D")
    dw.inputs = np.array([src, w, b], dtype=np.int32)
    dw.outputs = np.array([out], dtype=np.int32)
    dw.builtinOptionsType = s.BuiltinOptions.DepthwiseConv2DOptions
    dw.builtinOptions = s.DepthwiseConv2DOptionsT(padding=s.Padding.VALID, strideW=sw, strideH=sh, depthMultiplier=1)
    return dw


def _stepped_slice(model: Any, graph: Any, op: Any) -> tuple[list[int], list[int], list[int]] | None:
    """(begin, window size, steps) of a 4-D fp32 STRIDED_SLICE with steps > 1 on axes 1-2 or 2-3 only."""
    if op_name(model, op) != "STRIDED_SLICE" or len(op.inputs) < 4:
        return None
    opts = op.builtinOptions
    if opts is not None and (opts.ellipsisMask or opts.newAxisMask or opts.shrinkAxisMask):
        return None
    xt, yt = graph.tensors[int(op.inputs[0])], graph.tensors[int(op.outputs[0])]
    consts = [const_data(model, graph.tensors[int(t)]) for t in op.inputs[1:4]]
    if (xt.type != schema().TensorType.FLOAT32 or any(c is None for c in consts) or xt.shape is None
            or yt.shape is None or len(xt.shape) != 4 or len(yt.shape) != 4 or min(yt.shape) <= 0):
        return None
    begin, _, steps = (np.frombuffer(c.tobytes(), np.int32).tolist() for c in consts)
    if len(steps) != 4 or min(steps) < 1 or max(steps) == 1 or steps[0] != 1 or (steps[1] > 1 and steps[3] > 1):
        return None
    mask = opts.beginMask if opts is not None else 0
    shape, out = [int(d) for d in xt.shape], [int(d) for d in yt.shape]
    begin = [0 if mask >> i & 1 else (b + shape[i] if b < 0 else b) for i, b in enumerate(begin)]
    size = [(out[i] - 1) * steps[i] + 1 for i in range(4)]  # the window whose every step-th row is the output
    if any(b < 0 or b + k > d for b, k, d in zip(begin, size, shape)):
        return None
    return begin, size, steps


def _slice(model: Any, graph: Any, src: int, out: int, begin: list[int], size: list[int]) -> Any:
    s = schema()
    b = add_tensor(model, graph, f"{_name(graph.tensors[out])}/begin", [4], s.TensorType.INT32,
                   np.array(begin, np.int32).tobytes())
    z = add_tensor(model, graph, f"{_name(graph.tensors[out])}/size", [4], s.TensorType.INT32,
                   np.array(size, np.int32).tobytes())
    op = s.OperatorT()
    op.opcodeIndex = opcode_index(model, "SLICE")
    op.inputs = np.array([src, b, z], dtype=np.int32)
    op.outputs = np.array([out], dtype=np.int32)
    op.builtinOptionsType = s.BuiltinOptions.SliceOptions
    op.builtinOptions = s.SliceOptionsT()
    return op


def _concat(model: Any, inputs: list[int], output: int, axis: int) -> Any:
    s = schema()
    cat = s.OperatorT()
    cat.opcodeIndex = opcode_index(model, "CONCATENATION")
    cat.inputs = np.array(inputs, dtype=np.int32)
    cat.outputs = np.array([output], dtype=np.int32)
    cat.builtinOptionsType = s.BuiltinOptions.ConcatenationOptions
    cat.builtinOptions = s.ConcatenationOptionsT()
    cat.builtinOptions.axis = axis
    return cat


def _reshape(model: Any, graph: Any, src: int, shape: list[int], name: str, out: int | None = None) -> tuple[Any, int]:
    """A RESHAPE op of tensor src to a static shape (a new output tensor unless `out` is given)."""
    s = schema()
    shp = add_tensor(model, graph, name + "/shape", [len(shape)], s.TensorType.INT32, np.array(shape, np.int32).tobytes())
    if out is None:
        out = add_tensor(model, graph, name, shape, graph.tensors[src].type)
    op = s.OperatorT()
    op.opcodeIndex = opcode_index(model, "RESHAPE")
    op.inputs = np.array([src, shp], dtype=np.int32)
    op.outputs = np.array([out], dtype=np.int32)
    op.builtinOptionsType = s.BuiltinOptions.ReshapeOptions
    op.builtinOptions = s.ReshapeOptionsT()
    op.builtinOptions.newShape = np.array(shape, dtype=np.int32)
    return op, out


def _concat_plan(copies: int) -> list[int]:
    """Fan-ins whose product is `copies`, each ≤ 4 where possible (4 → [4], 9 → [3, 3], 16 → [4, 4])."""
    plan, left = [], copies
    while left > 1:
        k = next((f for f in (4, 3, 2) if left % f == 0), left)
        plan.append(k)
        left //= k
    return plan


def _integer_nearest_factor(model: Any, graph: Any, op: Any) -> int | None:
    """q when op is an NHWC nearest resize by the same integer q on both axes whose sampling is floor-exact."""
    f = _integer_nearest_factors(model, graph, op)
    return f[0] if f is not None and f[0] == f[1] and f[0] > 1 else None


def _integer_nearest_factors(model: Any, graph: Any, op: Any) -> tuple[int, int] | None:
    """(q_h, q_w) when op is an NHWC nearest resize by an integer factor on each axis (floor-exact sampling)."""
    if op_name(model, op) != "RESIZE_NEAREST_NEIGHBOR":
        return None
    opts = op.builtinOptions
    if opts is not None and getattr(opts, "alignCorners", False):
        return None  # align_corners samples round((in-1)/(out-1)·dst): not a plain repeat
    xs, ys = graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape
    if xs is None or ys is None or len(xs) != 4 or len(ys) != 4 or min(xs) <= 0:
        return None
    if ys[1] % xs[1] or ys[2] % xs[2] or xs[3] != ys[3] or xs[0] != ys[0]:
        return None
    # With an integer factor, floor((dst + 0.5)/q) == floor(dst/q): half-pixel centers agree too.
    return int(ys[1] // xs[1]), int(ys[2] // xs[2])


@register_fb_pass("nearest_axis_repeat")
def nearest_axis_repeat(model: Any, options: dict) -> int:
    """Integer nearest resize with unequal H/W factors → CONCATENATION copies + RESHAPE per axis (exact)."""
    n = 0
    for graph in model.subgraphs:
        new_ops = []
        for op in graph.operators:
            f = _integer_nearest_factors(model, graph, op)
            if f is None or f[0] == f[1]:
                new_ops.append(op)
                continue
            (qh, qw), x, y = f, int(op.inputs[0]), int(op.outputs[0])
            xt = graph.tensors[x]
            nb, h, w, c = (int(d) for d in xt.shape)
            cur, tag = x, f"{_name(xt)}/nearest{qh}x{qw}"
            if qw > 1:  # q copies along channels read as q neighbouring columns
                wide = add_tensor(model, graph, tag + "/cols", [nb, h, w, qw * c], xt.type)
                new_ops.append(_concat(model, [cur] * qw, wide, 3))
                last = qh == 1
                op_r, cur = _reshape(model, graph, wide, [nb, h, w * qw, c], tag + "/w", out=y if last else None)
                new_ops.append(op_r)
                w *= qw
            if qh > 1:  # each row's W·C values repeated q times, then read as q rows
                op_a, flat = _reshape(model, graph, cur, [nb, h, 1, w * c], tag + "/rows_in")
                tall = add_tensor(model, graph, tag + "/rows", [nb, h, qh, w * c], xt.type)
                op_b, _ = _reshape(model, graph, tall, [nb, h * qh, w, c], tag + "/h", out=y)
                new_ops += [op_a, _concat(model, [flat] * qh, tall, 2), op_b]
            n += 1
        graph.operators = new_ops
    return n


def _name(t: Any) -> str:
    n = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    return n.split(";")[0][-60:]


_WEIGHT_OPS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "TRANSPOSE_CONV": (1, 3)}


@register_fb_pass("fp16_weights")
def fp16_weights(model: Any, options: dict) -> int:
    """Conv/FC weights and biases stored as fp16 with a DEQUANTIZE to fp32 (TFLite's float16 scheme)."""
    s = schema()
    n = 0
    for graph in model.subgraphs:
        done: dict[int, None] = {}
        deq_ops = []
        for op in graph.operators:
            for pos in _WEIGHT_OPS.get(op_name(model, op), ()):
                if pos >= len(op.inputs) or op.inputs[pos] < 0 or int(op.inputs[pos]) in done:
                    continue
                ti = int(op.inputs[pos])
                t = graph.tensors[ti]
                data = const_data(model, t)
                if t.type != s.TensorType.FLOAT32 or data is None:
                    continue
                w16 = np.frombuffer(data.tobytes(), dtype=np.float32).astype(np.float16)
                half = add_tensor(model, graph, _name(t) + "/fp16", list(t.shape), s.TensorType.FLOAT16, w16.tobytes())
                # The fp32 tensor becomes the DEQUANTIZE's output; XNNPACK folds it into the packed weights.
                model.buffers.append(s.BufferT())
                t.buffer = len(model.buffers) - 1
                deq = s.OperatorT()
                deq.opcodeIndex = opcode_index(model, "DEQUANTIZE")
                deq.inputs = np.array([half], dtype=np.int32)
                deq.outputs = np.array([ti], dtype=np.int32)
                deq_ops.append(deq)
                done[ti] = None
                n += 1
        graph.operators = deq_ops + list(graph.operators)
    if n:
        _drop_unreferenced_buffers(model)
    return n


def _drop_unreferenced_buffers(model: Any) -> None:
    used = {int(t.buffer) for g in model.subgraphs for t in g.tensors}
    used |= {int(m.buffer) for m in (model.metadata or [])}
    for i, buf in enumerate(model.buffers):
        if i and i not in used and buf.data is not None:
            buf.data = None  # left in place: buffer indices are referenced by position
