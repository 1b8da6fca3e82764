"""Core ML target: a torch.export program → an app-ready `.mlpackage` ML program (coremltools).

App-ready means: an RGB `ImageType` input (an app hands over a CVPixelBuffer) with the model's
normalisation folded in, a classifier (`ClassifierConfig`: Vision returns VNClassificationObservations)
that also exposes the raw `logits`, and metadata. `tensor_input=True` gives the plain tensor variant.

Normalisation: Core ML's image preprocessing is `scale · pixel + bias[c]` with ONE scale for all
channels. With equal stds it holds everything (scale = 1/(255·std), bias = −mean/std). With
per-channel stds (ImageNet's) the image input does `pixel/255 − mean[c]` and one extra per-channel
`mul` by 1/std[c] follows, so the model sees exactly (pixel/255 − mean)/std.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobiledeploy.errors import UserError, require
from mobiledeploy.fsio import move_into_place

from .labels import read_labels
from .mlpackage import tidy_package
from .targets import ExportRequest, Target, TargetResult, register_target

DEFAULT_MIN_TARGET = "iOS16"
IMAGE_INPUT, TENSOR_INPUT = "image", "input"
LABEL_OUTPUT, LOGITS_OUTPUT = "classLabel", "logits"
PROBS_OUTPUT = LABEL_OUTPUT + "_probs"  # coremltools names the probability dictionary after the label


@register_target
class CoreMLTarget(Target):
    """`.mlpackage` ML program: image input with normalisation folded in, classifier, int8 weight compression."""

    name, suffix, extra = "coreml", ".mlpackage", "coreml"
    requires = ("coremltools",)
    # exact_nearest_upsample and alias_cleanup are generic passes (exporters/rewrites); prepare_program is a
    # safety net. --layout does not apply: the app hands Core ML an image (CVPixelBuffer).

    def convert(self, req: ExportRequest) -> TargetResult:
        """Convert to an ML program and save it at `req.out_path`."""
        return convert(req)

    def finish(self, req: ExportRequest, result: TargetResult) -> TargetResult:
        """int8: weight compression, checked against the float package through the reference interpreter."""
        from .app import compress_coreml_in_place

        if req.int8:
            compress_coreml_in_place(req, result)
        return result


def convert(request: ExportRequest) -> TargetResult:
    """Convert the request's program to an ML program and save it at `request.out_path`."""
    ct = require("coremltools", "coreml")
    opts = request.options.coreml
    if request.precision not in ("fp32", "fp16"):
        raise UserError(f"Core ML export supports fp32 and fp16, not {request.precision!r}", "use --precision fp32|fp16")
    min_target = _min_target(ct, opts.min_target or DEFAULT_MIN_TARGET)
    if len(request.example_inputs) != 1:
        raise UserError("Core ML export takes models with one input", "export a model that takes one image tensor")
    shape = tuple(request.example_inputs[0].shape)
    tensor_input = opts.tensor_input
    if not tensor_input and (len(shape) != 4 or shape[0] != 1 or shape[1] != 3):
        raise UserError(f"an image input needs shape (1, 3, H, W), the model takes {shape}", "pass --tensor-input")

    program, fixes = prepare_program(request.program)
    outs = [n for n in program.graph.nodes if n.op == "output"][0].args[0]
    out_shapes = [tuple(o.meta["val"].shape) for o in outs]
    labels = None if tensor_input else _labels(request, out_shapes)

    mean = np.asarray(request.mean, dtype=np.float64)
    std = np.asarray(request.std, dtype=np.float64)
    if tensor_input:
        inputs = [ct.TensorType(name=TENSOR_INPUT, shape=shape, dtype=np.float32)]
        channel_mul = None
    elif np.all(std == std[0]):
        inputs = [ct.ImageType(name=IMAGE_INPUT, shape=shape, scale=float(1 / (255 * std[0])),
                               bias=(-mean / std[0]).tolist(), color_layout=ct.colorlayout.RGB)]
        channel_mul = None
    else:
        inputs = [ct.ImageType(name=IMAGE_INPUT, shape=shape, scale=1 / 255, bias=(-mean).tolist(),
                               color_layout=ct.colorlayout.RGB)]
        channel_mul = (1 / std).astype(np.float32)

    with quiet():
        # Stage 1 in fp32: the torch frontend, then our MIL edits; fp16 is applied to the edited program.
        prog = ct.convert(program, convert_to="milinternal", inputs=inputs, minimum_deployment_target=min_target,
                          compute_precision=ct.precision.FLOAT32)
        func = prog.functions["main"]
        n = _restore_tanh_gelu(func, tanh_gelu_names(program))
        if n:
            fixes.append(f"coreml_gelu_tanh_mode({n})")
        if channel_mul is not None:
            _insert_channel_scale(func, IMAGE_INPUT, channel_mul)
        _name_outputs(func, labels is not None, request.output_names)
        func.output_types = None  # coremltools' classifier path cannot take the frontend's output list
        precision = ct.precision.FLOAT16 if request.precision == "fp16" else ct.precision.FLOAT32
        classifier = None
        if labels is not None:
            classifier = ct.ClassifierConfig(labels, predicted_feature_name=LABEL_OUTPUT,
                                             predicted_probabilities_output="probabilities")
        ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=min_target,
                        compute_precision=precision, classifier_config=classifier, pass_pipeline=_stage2_passes(ct))
    _check_no_fractional_upsample(ml)
    _set_metadata(ml, request, shape, labels, fixes)

    out = Path(request.out_path)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial.mlpackage")
    try:
        ml.save(str(tmp))
        tidy_package(tmp)
        move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    return TargetResult(
        artifact=out,
        converter="coremltools",
        converter_version=ct.__version__,
        inputs=[_input_desc(tensor_input, shape, request)],
        outputs=_output_desc(ml),
        extra={
            "min_target": str(opts.min_target or DEFAULT_MIN_TARGET),
            "compute_precision": request.precision,
            "classifier": labels is not None,
            "num_labels": len(labels) if labels else 0,
            # Every output mirrors one of the model's (in order), except the classifier's label and probabilities.
            "reference_output": LOGITS_OUTPUT if labels is not None else [o["name"] for o in _output_desc(ml)],
            "coreml_rewrites": fixes,
        },
    )


# ---- the torch.export program -------------------------------------------------------------------

def tanh_gelu_names(program: torch.export.ExportedProgram) -> set[str]:
    """FX names of GELUs with approximate="tanh": coremltools 9 reads only positional args of torch.export
    nodes, drops this keyword and converts them as the exact GELU (rel. error ~1e-4); we fix them in MIL."""
    return {n.name for n in program.graph.nodes if n.op == "call_function"
            and n.target == torch.ops.aten.gelu.default and n.kwargs.get("approximate", "none") == "tanh"}


def prepare_program(program: torch.export.ExportedProgram) -> tuple[torch.export.ExportedProgram, list[str]]:
    """An ATen-dialect program coremltools converts exactly: no `alias` nodes, no fractional nearest upsample."""
    from .rewrites import RewriteContext, apply_rewrites

    if program.dialect != "ATEN":  # coremltools takes the ATen dialect (torch.export gives TRAINING)
        program = program.run_decompositions({})
    else:  # the passes edit the graph in place; leave the caller's program as it was
        program = copy.deepcopy(program)
    # The generic passes again, on the ATen graph: the decomposition can bring `aten.alias` back (coremltools 9:
    # "Unsupported fx node alias"), and a request that skipped them must not give Core ML a fractional
    # upsample_nearest_neighbor, whose sampling MIL leaves open.
    program, applied = apply_rewrites(program, ("alias_cleanup", "exact_nearest_upsample"),
                                      RewriteContext(target="coreml"))
    return program, [f"{r['name']}({r['changed']})" for r in applied]


# ---- the MIL program ----------------------------------------------------------------------------

def _insert_channel_scale(func, input_name: str, scale: np.ndarray) -> None:
    """After the image preprocessing (scale, bias), multiply channel c by scale[c]."""
    from coremltools.converters.mil import Builder as mb

    var = func.inputs[input_name]
    while True:  # walk the preprocessing chain coremltools inserted: input → *__scaled__ → *__biased__
        nxt = [op for op in var.child_ops if op.outputs[0].name.startswith(input_name + "__")]
        if len(nxt) != 1:
            break
        var = nxt[0].outputs[0]
    consumers = list(var.child_ops)
    with func, _scope():
        new = mb.mul(x=var, y=scale.reshape(1, -1, 1, 1), before_op=consumers[0], name=input_name + "__std_scaled__")
    func.replace_uses_of_var_after_op(anchor_op=new.op, old_var=var, new_var=new)


def _restore_tanh_gelu(func, names: set[str]) -> int:
    """Give the GELUs that PyTorch computes with the tanh approximation that mode back."""
    from coremltools.converters.mil import Builder as mb

    count = 0
    for op in list(func.operations):
        if op.op_type == "gelu" and op.name in names and op.mode.val != "TANH_APPROXIMATION":
            with func, _scope():
                new = mb.gelu(x=op.x, mode="TANH_APPROXIMATION", before_op=op, name=op.name + "_tanh")
            func.replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=new)
            func.remove_ops([op])
            count += 1
    return count


def _stage2_passes(ct):
    """Stage 2 needs only the tail of the default pipeline (fp16 casts and clean-up): the rest ran in stage 1."""
    pipe = ct.PassPipeline()
    names = list(pipe.passes)
    pipe.passes = names[names.index("common::dedup_op_and_var_names"):]
    return pipe


def _scope():
    """Scope info every op of a torch.export-born MIL program must carry (coremltools validates it)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.scope import ScopeInfo, ScopeSource

    return mb.scope(ScopeInfo(source=ScopeSource.EXIR_STACK_TRACE, data=["mobiledeploy"]),
                    ScopeInfo(source=ScopeSource.EXIR_DEBUG_HANDLE, data=[None]))


def _name_outputs(func, classifier: bool, names: list[str] | None) -> None:
    """Outputs named for apps: logits (+ softmax probabilities for the classifier), else the model's
    output names (dict keys, output_<i>), or `output` for one tensor."""
    from coremltools.converters.mil import Builder as mb

    outs = list(func.outputs)
    if classifier:
        logits = outs[0]
        logits.name = LOGITS_OUTPUT
        with func, _scope():
            probs = mb.softmax(x=logits, axis=-1, name="probabilities")
        func.set_outputs([probs, logits])
    else:
        names = names or (["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))])
        for v, name in zip(outs, names):
            v.name = name


def _check_no_fractional_upsample(ml) -> None:
    """The converted program must not hold an upsample whose sampling MIL leaves open."""
    from .mlinterp.values import decode_value

    spec = ml.get_spec()
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    for op in block.operations:
        if op.type != "upsample_nearest_neighbor":
            continue
        for key in ("scale_factor_height", "scale_factor_width"):
            if key in op.inputs:
                ref = op.inputs[key].arguments[0]
                val = ref.value if ref.WhichOneof("binding") == "value" else consts[ref.name].attributes["val"]
                f = float(np.asarray(decode_value(val, Path("."), {}, key)).reshape(()))
                if f != int(f):
                    raise UserError(f"Core ML conversion left a fractional nearest upsample ({key}={f:.7g})",
                                    "export with the exact_nearest_upsample rewrite")


# ---- labels, metadata, descriptions -------------------------------------------------------------

def _labels(request: ExportRequest, out_shapes: list[tuple[int, ...]]) -> list[str] | None:
    """The classifier labels, or None when the model is no (1, N) classifier."""
    explicit = request.options.labels
    if len(out_shapes) != 1 or len(out_shapes[0]) != 2 or out_shapes[0][0] != 1:
        if explicit:
            raise UserError(f"--labels given, but the model's output {out_shapes} is not (1, classes)",
                            "drop --labels")
        return None
    n = out_shapes[0][1]
    if request.labels:  # resolved once by the pipeline: --labels, else ImageNet's for 1000 classes
        labels = list(request.labels)
    elif n == 1000:
        labels = read_labels()
    else:
        return None
    if len(labels) != n:
        raise UserError(f"{len(labels)} labels for a model with {n} classes", "pass a labels file with one label per class")
    if len(set(labels)) != len(labels):  # whatever their source: --labels, the model's own, a library caller
        dup = sorted({x for x in labels if labels.count(x) > 1})[:3]
        raise UserError(f"class labels repeat ({', '.join(dup)})", "Core ML class labels must be unique")
    return labels


def _weights_digest(request: ExportRequest) -> tuple[str, str]:
    """(key, sha256): of the weights file when the request names one, else of the state dict."""
    path = request.weights
    if path:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return "weights_sha256", h.hexdigest()
    h = hashlib.sha256()
    for k, v in sorted(request.module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return "state_dict_sha256", h.hexdigest()


def _set_metadata(ml, request: ExportRequest, shape, labels, fixes: list[str]) -> None:
    import mobiledeploy

    h, w = shape[-2:] if len(shape) >= 2 else (shape[-1], 1)
    kind = "image classifier" if labels else "model"
    ml.author = "mobiledeploy"
    ml.license = "unspecified: see the license of the model weights"
    ml.short_description = f"{request.model_name} {kind}, {h}x{w}, {request.precision}, exported by mobiledeploy"
    ml.version = mobiledeploy.__version__
    key, digest = _weights_digest(request)
    meta = {
        "source_model": request.model_name,
        key: digest,
        "input_size": f"{h}x{w}",
        "mobiledeploy_version": mobiledeploy.__version__,
        "precision": request.precision,
        "normalization_mean": ",".join(f"{m:g}" for m in request.mean),
        "normalization_std": ",".join(f"{s:g}" for s in request.std),
    }
    if request.weights:
        meta["weights_file"] = Path(request.weights).name
    if fixes:
        meta["coreml_rewrites"] = ",".join(fixes)
    ml.user_defined_metadata.update(meta)
    if IMAGE_INPUT in [i.name for i in ml.get_spec().description.input]:
        ml.input_description[IMAGE_INPUT] = f"RGB image, {w}x{h}"
    elif TENSOR_INPUT in [i.name for i in ml.get_spec().description.input]:
        ml.input_description[TENSOR_INPUT] = "normalised NCHW float tensor: (pixel/255 - mean) / std"
    if labels:
        ml.output_description[LABEL_OUTPUT] = "most likely class"
        ml.output_description[PROBS_OUTPUT] = "softmax probability of each class"
        ml.output_description[LOGITS_OUTPUT] = "raw class scores (before softmax)"


def _input_desc(tensor_input: bool, shape, request: ExportRequest) -> dict[str, Any]:
    norm = {"mean": list(request.mean), "std": list(request.std)}
    if tensor_input:
        return {"name": TENSOR_INPUT, "shape": list(shape), "dtype": "float32", "layout": "NCHW",
                "kind": "tensor", "normalization": norm, "value_range": "normalised: (pixel/255 - mean) / std"}
    return {"name": IMAGE_INPUT, "shape": list(shape), "dtype": "uint8", "layout": "NCHW", "kind": "image",
            "color": "RGB", "value_range": [0, 255], "normalization": norm | {"folded": True}}


def _output_desc(ml) -> list[dict[str, Any]]:
    out = []
    for o in ml.get_spec().description.output:
        kind = o.type.WhichOneof("Type")
        if kind == "multiArrayType":
            dt = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32"}.get(o.type.multiArrayType.dataType)
            out.append({"name": o.name, "shape": list(o.type.multiArrayType.shape), "dtype": dt})
        elif kind == "dictionaryType":
            # What the app receives: Core ML's dictionary feature (label → probability, values double),
            # i.e. `[String: Double]` in Swift (Xcode's generated class and MLFeatureValue.dictionaryValue).
            key = "Int64" if o.type.dictionaryType.WhichOneof("KeyType") == "int64KeyType" else "String"
            out.append({"name": o.name, "kind": "probabilities", "dtype": "dictionary",
                        "key_dtype": key.lower(), "value_dtype": "float64", "swift_type": f"[{key}: Double]",
                        "note": "softmax of logits, keyed by class label (not an array: order it by label "
                                "yourself, or use the logits output)"})
        else:
            out.append({"name": o.name, "kind": "label", "dtype": "str"})
    return out


def _min_target(ct, name: str):
    target = getattr(ct.target, str(name), None)
    if target is None or not str(name).startswith(("iOS", "macOS", "watchOS", "tvOS")):
        raise UserError(f"unknown Core ML deployment target {name!r}", "use e.g. iOS16, iOS17, macOS13")
    if target < ct.target.iOS15:
        raise UserError(f"ML programs need iOS15 / macOS12 or later, not {name}", "use --min-target iOS16")
    return target


@contextlib.contextmanager
def quiet():
    """coremltools prints progress bars and a torch-version warning on stderr; keep the CLI's output clean."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        yield
