"""`--bundle`: a folder an app developer drops into a project — artifact, labels, manifest and a README
whose snippets are filled with the model's real input name, shape, layout and normalisation.

    <name>_<target>_bundle/
      <artifact>            model.tflite | model.onnx | model.ort (+ .required_operators.config) | model.mlpackage/
      labels.txt            one class name per line, in output order
      <artifact>.json       the export manifest
      README.md             what the model expects, and code to call it (Swift, Kotlin)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mobiledeploy.errors import UserError
from mobiledeploy.fsio import move_into_place
from mobiledeploy.manifest import Manifest


@dataclass
class AppFacts:
    """What the snippets need to know about the artifact, taken from the manifest."""

    target: str  # tflite | onnx | ort | coreml
    artifact: str  # file name inside the bundle
    model: str
    input_name: str
    shape: list[int]
    layout: str  # nhwc | nchw
    output_name: str
    num_classes: int
    # In 0-255 pixel units: the app feeds (pixel - mean) / std; (0, 1) when the graph normalises itself.
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    normalization_in_graph: bool = True
    model_mean: list[float] = field(default_factory=list)  # the model's own normalisation, for the README
    model_std: list[float] = field(default_factory=list)
    image_input: bool = False  # Core ML ImageType: the app passes pixels, the model normalises
    precision: str = "fp32"
    dtype: str = "float32"
    crop_pct: float | None = None  # how the model was evaluated: resize to size/crop_pct, centre crop

    @property
    def height(self) -> int:
        return self.shape[1] if self.layout == "nhwc" else self.shape[2]

    @property
    def width(self) -> int:
        return self.shape[2] if self.layout == "nhwc" else self.shape[3]

    @classmethod
    def from_manifest(cls, m: Manifest, artifact_name: str) -> "AppFacts":
        """Facts from an export manifest (inputs[0] / outputs[0] as the DESIGN's manifest schema lists them)."""
        if not m.inputs or not m.outputs:
            raise UserError("the manifest lists no inputs/outputs", "re-export the model")
        inp, outs = m.inputs[0], m.outputs
        # The class scores: a Core ML classifier lists its label and probabilities outputs first.
        out = next((o for o in outs if o.shape), outs[0])
        shape = [int(s) for s in inp.shape or []]
        if len(shape) != 4:
            raise UserError(f"a bundle needs a 4-d image input, the manifest says {shape}")
        layout = (inp.layout or ("nhwc" if shape[-1] == 3 and shape[1] != 3 else "nchw")).lower()
        norm = inp.normalization
        labels = m.labels or []
        n_out = int(out.shape[-1]) if out.shape else len(labels)
        image_input = inp.kind == "image" or inp.extra.get("type") == "image"
        mean = [float(v) for v in (norm.mean if norm and norm.mean is not None else [0.0, 0.0, 0.0])]
        std = [float(v) for v in (norm.std if norm and norm.std is not None else [1.0, 1.0, 1.0])]
        in_graph = bool(norm and norm.in_graph) or image_input
        # value_range [0, 1]: the tensor is (pixel/255 - mean) / std = (pixel - 255·mean) / (255·std)
        vr = inp.value_range
        hi = float(vr[1]) if isinstance(vr, (list, tuple)) and len(vr) == 2 else 1.0  # else: normalised tensor
        scale = 255.0 / hi if hi else 255.0
        return cls(target=m.target, artifact=artifact_name, model=m.model.name or "model",
                   input_name=inp.name, shape=shape, layout=layout, output_name=out.name,
                   num_classes=len(labels) or n_out,
                   mean=[0.0] * 3 if in_graph else [v * scale for v in mean],
                   std=[1.0] * 3 if in_graph else [v * scale for v in std],
                   normalization_in_graph=in_graph, model_mean=mean, model_std=std, image_input=image_input,
                   precision=m.precision or "fp32", dtype=inp.dtype or "float32",
                   crop_pct=_crop_pct(m.model.crop_pct))


def _crop_pct(v: Any) -> float | None:
    """The model's evaluation crop as the manifest records it (None when it does not say)."""
    return float(v) if isinstance(v, (int, float)) and 0 < v <= 1 else None


def bundle_path(artifact: Path, target: str, suffix: str) -> Path:
    """<name>_<target>_bundle beside the artifact: one folder per target, so an ONNX and a TFLite bundle of
    the same model (one command with several targets, or two commands) never land in the same folder."""
    artifact = Path(artifact)
    return artifact.with_name(f"{artifact.name.removesuffix(suffix)}_{target}_bundle")


def write_bundle(out_dir: Path, artifact: Path, manifest: Manifest, labels: list[str] | None,
                 extra_files: tuple[Path, ...] = ()) -> Path:
    """Write the bundle folder atomically (a partial folder renamed at the end) and return its path."""
    out_dir, artifact = Path(out_dir), Path(artifact)
    if not artifact.exists():
        raise UserError(f"artifact not found: {artifact}")
    facts = AppFacts.from_manifest(manifest, artifact.name)
    tmp = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.mkdir(parents=True)
        _copy(artifact, tmp / artifact.name)
        for f in extra_files:
            if Path(f).exists():
                _copy(Path(f), tmp / Path(f).name)
        if labels:
            (tmp / "labels.txt").write_text("\n".join(labels) + "\n")
        man = dataclasses.replace(manifest, bundle={
            "artifact": artifact.name, "labels": "labels.txt" if labels else None,
            "files": sorted(p.name for p in tmp.iterdir()) + ["README.md"]})
        (tmp / f"{artifact.name}.json").write_text(json.dumps(man.to_json(), indent=2, default=str) + "\n")
        (tmp / "README.md").write_text(readme(facts, manifest, bool(labels)))
        move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


# --- README --------------------------------------------------------------------------------------

_SNIPPETS: dict[str, list[Callable[[AppFacts], tuple[str, str, str]]]] = {}


def snippet(*targets: str):
    """Register a snippet writer `fn(facts) -> (title, language, code)` for targets."""

    def deco(fn):
        for t in targets:
            _SNIPPETS.setdefault(t, []).append(fn)
        return fn

    return deco


def readme(f: AppFacts, manifest: Manifest, has_labels: bool) -> str:
    """The bundle README: the input contract, then the snippets for this target."""
    lines = [f"# {f.model} — {f.target} ({f.precision})", "",
             f"Exported by mobiledeploy. `{f.artifact}.json` is the full manifest (parity, versions).", ""]
    init = manifest.model.init
    if init:  # exported without --weights: say it where the app developer reads first
        lines += ["**Random weights.** This model was exported without a checkpoint: it computes exactly what the "
                  "PyTorch model computes, but its predictions mean nothing. Export it again with `--weights` "
                  f"before shipping it. ({init})", ""]
    lines += ["## Input and output", "",
              "| | |", "|---|---|",
              f"| input name | `{f.input_name}` |",
              f"| shape | `{f.shape}` ({f.layout.upper()}, RGB, batch 1) |",
              f"| dtype | {f.dtype} |"]
    if f.image_input:
        lines.append("| values | an RGB image (CVPixelBuffer / CGImage); the model scales and normalises it |")
    elif f.normalization_in_graph:
        lines.append(f"| values | RGB pixels as floats in [0, 255]; the model applies (x/255 − {_fl(f.model_mean)}) "
                     f"/ {_fl(f.model_std)} itself |")
    else:
        lines.append(f"| values | (pixel − mean) / std, pixels in [0, 255], mean = {_fl(f.mean)}, std = {_fl(f.std)} |")
    named = {o.kind: o.name for o in manifest.outputs if o.kind in ("label", "probabilities")}
    if named:  # a Core ML classifier: Vision reads these two
        lines.append(f"| classifier outputs | `{named.get('label')}`: the most likely class name; "
                     f"`{named.get('probabilities')}`: every class's probability, a `[String: Double]` dictionary "
                     "keyed by class name (what Vision reports) |")
    lines += [f"| output | `{f.output_name}`: {f.num_classes} scores (logits), index i ↔ line i of labels.txt |",
              ""]
    quant = manifest.extra.get("quantization") or manifest.target_info.get("quantization")
    if quant:
        size, agree = quant.get("size", {}), quant.get("vs_fp32", {})
        lines += ["## Quantization", "", f"{quant.get('method')}: weights {quant.get('weights')}, activations "
                  f"{quant.get('activations')}."]
        if size:
            lines.append(f"Size {size.get('fp32_bytes')} → {size.get('int8_bytes')} bytes ({size.get('reduction')}×).")
        if agree:
            lines.append(f"Top-1 agreement with the fp32 artifact: {agree.get('top1_agreement'):.3f} on "
                         f"{agree.get('n_samples')} images (relative L2 {agree.get('rel_l2'):.3g}).")
        lines.append("")
    parity = manifest.parity
    if parity:
        lines += ["## Parity with PyTorch", "",
                  f"Checked on {parity.n_samples} inputs ({', '.join(parity.inputs)}): relative L2 "
                  f"{parity.rel_l2:.3g}, cosine {parity.cosine:.6f}, top-1 agreement "
                  f"{parity.top1_agreement} — bar: {_bar_text(parity.tolerance)}: "
                  f"{'passed' if parity.passed else 'FAILED'}.", ""]
    elif manifest.not_verified_reason:
        lines += ["## Parity with PyTorch", "", f"Not verified: {manifest.not_verified_reason}.", ""]
    for fn in _SNIPPETS.get(f.target, []):
        title, lang, code = fn(f)
        lines += [f"## {title}", "", f"```{lang}", code.strip("\n"), "```", ""]
    if not has_labels:
        lines += ["No labels were given: outputs are class indices.", ""]
    return "\n".join(lines)


def _fl(v) -> str:
    return "[" + ", ".join(f"{x:.6g}" for x in v) + "]"


def _kt_floats(v) -> str:
    return "floatArrayOf(" + ", ".join(f"{x:.8g}f" for x in v) + ")"


def _sw_floats(v) -> str:
    return "[" + ", ".join(f"{x:.8g}" for x in v) + "]"


def _kt_fill(f: AppFacts, put: Callable[[str | None, str], str]) -> str:
    """Kotlin loop that writes a scaled Bitmap's pixels into a float buffer in the model's layout.

    `put(index, value)` is the buffer write; index is None for sequential writes.
    """
    hw = f"{f.height} * {f.width}"
    head = (f"val mean = {_kt_floats(f.mean)}  // in pixel units (0-255)\nval std = {_kt_floats(f.std)}\n"
            f"val scaled = Bitmap.createScaledBitmap(bitmap, {f.width}, {f.height}, true)\n"
            f"val pixels = IntArray({hw})\nscaled.getPixels(pixels, 0, {f.width}, 0, 0, {f.width}, {f.height})\n")
    if f.layout == "nhwc":
        return head + ("for (p in pixels) {  // NHWC: R, G, B interleaved\n"
                       "    val rgb = floatArrayOf((p shr 16 and 0xFF).toFloat(), (p shr 8 and 0xFF).toFloat(), "
                       "(p and 0xFF).toFloat())\n"
                       f"    for (c in 0 until 3) {put(None, '(rgb[c] - mean[c]) / std[c]')}\n}}\n")
    return head + (f"for (c in 0 until 3) for (i in 0 until {hw}) {{  // NCHW: one plane per channel\n"
                   "    val v = (pixels[i] shr (16 - 8 * c) and 0xFF).toFloat()\n"
                   f"    {put(f'c * {hw} + i', '(v - mean[c]) / std[c]')}\n}}\n")


_KT_ANDROID = ("import android.content.Context", "import android.graphics.Bitmap", "import android.util.Log")


def _kt_function(imports: tuple[str, ...], body: str) -> str:
    """A Kotlin file's worth: imports, then `fun classify(context, bitmap)` around the body, so the snippet
    compiles as pasted (no free `context`/`bitmap`, every Android type imported)."""
    inner = "\n".join(("    " + ln) if ln else ln for ln in body.strip("\n").splitlines())
    return "\n".join(sorted(set(_KT_ANDROID + imports))) + \
        "\n\nfun classify(context: Context, bitmap: Bitmap) {\n" + inner + "\n}\n"


def _sw_fill(f: AppFacts) -> str:
    """Swift loop from RGBA bytes of a W×H image to the model's float layout."""
    return (f"let mean: [Float] = {_sw_floats(f.mean)}, std: [Float] = {_sw_floats(f.std)}  // pixel units\n"
            f"// rgba: [UInt8] of a {f.width}×{f.height} RGBA8 rendering of the image (e.g. via CGContext)\n"
            f"var input = [Float](repeating: 0, count: {f.height * f.width * 3})\n"
            f"for i in 0..<({f.height} * {f.width}) {{\n    for c in 0..<3 {{\n"
            + ("        input[i * 3 + c]" if f.layout == "nhwc" else f"        input[c * {f.height * f.width} + i]")
            + " = (Float(rgba[i * 4 + c]) - mean[c]) / std[c]\n    }\n}\n")


# Swift lines after `scores` ([Float]): the best class with its label from labels.txt.
_SW_TOP1 = """let labels = try String(contentsOfFile: Bundle.main.path(forResource: "labels", ofType: "txt")!).split(separator: "\\n")
let best = scores.indices.max { scores[$0] < scores[$1] }!
print(labels[best], scores[best])
"""


@snippet("tflite")
def _mediapipe_kotlin(f: AppFacts) -> tuple[str, str, str]:
    note = ("" if f.layout == "nhwc" and f.normalization_in_graph else
            "// MediaPipe needs an NHWC input with one mean/std for all channels: export with --layout nhwc.\n")
    imports = ("import com.google.mediapipe.framework.image.BitmapImageBuilder",
               "import com.google.mediapipe.tasks.core.BaseOptions",
               "import com.google.mediapipe.tasks.vision.core.RunningMode",
               "import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier")
    return "Android: MediaPipe ImageClassifier (Kotlin)", "kotlin", f"""
// build.gradle: implementation("com.google.mediapipe:tasks-vision:<latest>")
// Put {f.artifact} in app/src/main/assets/. Labels and normalisation are read from its metadata.
{note}""" + _kt_function(imports, f"""
val options = ImageClassifier.ImageClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("{f.artifact}").build())
    .setRunningMode(RunningMode.IMAGE)
    .setMaxResults(5)
    .build()
val classifier = ImageClassifier.createFromOptions(context, options)
val result = classifier.classify(BitmapImageBuilder(bitmap).build())  // scaled to {f.width}×{f.height} for you
for (c in result.classificationResult().classifications()[0].categories()) {{
    Log.d("classify", "${{c.categoryName()}} ${{c.score()}}")
}}
""")


@snippet("tflite")
def _litert_kotlin(f: AppFacts) -> tuple[str, str, str]:
    imports = ("import org.tensorflow.lite.Interpreter", "import org.tensorflow.lite.support.common.FileUtil",
               "import java.nio.ByteBuffer", "import java.nio.ByteOrder")
    return "Android: plain LiteRT Interpreter (Kotlin)", "kotlin", f"""
// build.gradle: implementation("com.google.ai.edge.litert:litert:<latest>")
//               implementation("com.google.ai.edge.litert:litert-support:<latest>")
""" + _kt_function(imports, f"""
val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{f.artifact}"), Interpreter.Options().setNumThreads(4))
val labels = FileUtil.loadLabels(context, "labels.txt")
// input "{f.input_name}": float32 {f.shape} ({f.layout.upper()})
val input = ByteBuffer.allocateDirect(4 * {f.height * f.width * 3}).order(ByteOrder.nativeOrder())
{_kt_fill(f, lambda i, v: f"input.putFloat({v})" if i is None else f"input.putFloat(4 * ({i}), {v})")}input.rewind()
val output = Array(1) {{ FloatArray({f.num_classes}) }}  // "{f.output_name}"
interpreter.run(input, output)
val best = output[0].indices.maxByOrNull {{ output[0][it] }}!!
Log.d("classify", "${{labels[best]}} ${{output[0][best]}}")
""")


@snippet("onnx", "ort")
def _ort_kotlin(f: AppFacts) -> tuple[str, str, str]:
    dims = ", ".join(f"{d}L" for d in f.shape)
    imports = ("import ai.onnxruntime.OnnxTensor", "import ai.onnxruntime.OrtEnvironment", "import java.nio.FloatBuffer")
    return "Android: ONNX Runtime Mobile (Kotlin)", "kotlin", f"""
// build.gradle: implementation("com.microsoft.onnxruntime:onnxruntime-android:<latest>")
//   (a custom minimal build can use {f.artifact.rsplit('.', 1)[0]}.required_operators.config when present)
""" + _kt_function(imports, f"""
val env = OrtEnvironment.getEnvironment()
val session = env.createSession(context.assets.open("{f.artifact}").readBytes())
val labels = session.metadata.customMetadata["labels"]!!.split("\\n")  // also in labels.txt
val input = FloatBuffer.allocate({f.height * f.width * 3})
{_kt_fill(f, lambda i, v: f"input.put({v})" if i is None else f"input.put({i}, {v})")}input.rewind()
OnnxTensor.createTensor(env, input, longArrayOf({dims})).use {{ tensor ->
    session.run(mapOf("{f.input_name}" to tensor)).use {{ out ->
        val scores = (out[0].value as Array<FloatArray>)[0]  // "{f.output_name}", {f.num_classes} classes
        val best = scores.indices.maxByOrNull {{ scores[it] }}!!
        Log.d("classify", "${{labels[best]}} ${{scores[best]}}")
    }}
}}
""")


@snippet("onnx", "ort")
def _ort_swift(f: AppFacts) -> tuple[str, str, str]:
    stem, ext = f.artifact.rsplit(".", 1)
    dims = ", ".join(str(d) for d in f.shape)
    return "iOS: ONNX Runtime Mobile (Swift)", "swift", f"""
// Podfile: pod 'onnxruntime-objc'   (or the onnxruntime-swift-package-manager package)
import onnxruntime_objc

let env = try ORTEnv(loggingLevel: .warning)
let path = Bundle.main.path(forResource: "{stem}", ofType: "{ext}")!
let session = try ORTSession(env: env, modelPath: path, sessionOptions: try ORTSessionOptions())
{_sw_fill(f)}let data = NSMutableData(bytes: &input, length: input.count * MemoryLayout<Float>.size)
let tensor = try ORTValue(tensorData: data, elementType: .float, shape: [{dims}])
let outputs = try session.run(withInputs: ["{f.input_name}": tensor], outputNames: ["{f.output_name}"], runOptions: nil)
let raw = try outputs["{f.output_name}"]!.tensorData() as Data
let scores = raw.withUnsafeBytes {{ Array($0.bindMemory(to: Float.self)) }}  // {f.num_classes} classes
""" + _SW_TOP1


@snippet("coreml")
def _vision_swift(f: AppFacts) -> tuple[str, str, str]:
    cls = f.artifact.rsplit(".", 1)[0]
    if f.image_input:
        return "iOS/macOS: Vision + Core ML (Swift)", "swift", f"""
// Drag {f.artifact} into Xcode: it compiles it and generates the class `{cls}`.
// The model takes an RGB image ("{f.input_name}", {f.width}×{f.height}) and normalises it itself; Vision scales/crops.
import CoreML
import CoreGraphics
import Vision

let mlModel = try {cls}(configuration: MLModelConfiguration()).model
let request = VNCoreMLRequest(model: try VNCoreMLModel(for: mlModel)) {{ request, _ in
    guard let results = request.results as? [VNClassificationObservation] else {{ return }}
    for r in results.prefix(5) {{ print(r.identifier, r.confidence) }}
}}
request.imageCropAndScaleOption = .centerCrop
{_vision_crop(f)}try VNImageRequestHandler(cgImage: cgImage, options: [:]).perform([request])
"""
    dims = ", ".join(str(d) for d in f.shape)
    return "iOS/macOS: Core ML with an MLMultiArray (Swift)", "swift", f"""
// Drag {f.artifact} into Xcode: it compiles it and generates the class `{cls}`.
import CoreML

{_sw_fill(f)}let array = try MLMultiArray(shape: [{dims}], dataType: .float32)
for (i, v) in input.enumerated() {{ array[i] = NSNumber(value: v) }}
let model = try {cls}(configuration: MLModelConfiguration())
let out = try model.model.prediction(from: MLDictionaryFeatureProvider(dictionary: ["{f.input_name}": array]))
let scores = out.featureValue(for: "{f.output_name}")!.multiArrayValue!  // {f.num_classes} classes
"""


def _vision_crop(f: AppFacts) -> str:
    """Swift lines that make Vision crop the way the model was evaluated (timm's crop_pct).

    Vision's .centerCrop alone fills the input with the image's centre (crop_pct 1.0). A region of interest
    of the centre crop_pct of each side first, then .centerCrop, sees the pixels timm's evaluation sees:
    the image resized to size / crop_pct, centre-cropped to size (256 → 224 for crop_pct 0.875)."""
    if f.crop_pct is None:
        return "// The manifest does not say how this model was evaluated: Vision fills the input with the centre.\n"
    if f.crop_pct >= 1.0:
        return "// Evaluated without a margin (crop_pct 1.0): .centerCrop alone matches it.\n"
    import math

    m = (1 - f.crop_pct) / 2
    rh, rw = math.floor(f.height / f.crop_pct), math.floor(f.width / f.crop_pct)  # timm's rounding
    resize = str(rh) if rh == rw else f"{rh}×{rw}"
    crop = str(f.height) if f.height == f.width else f"{f.height}×{f.width}"
    return (f"// Crop as the model was evaluated (crop_pct {f.crop_pct:g}: resize to {resize}, centre crop {crop}):\n"
            f"// keep the centre {f.crop_pct:.1%} of each side, which .centerCrop then scales to the input.\n"
            f"request.regionOfInterest = CGRect(x: {m:.6g}, y: {m:.6g}, width: {f.crop_pct:.6g}, "
            f"height: {f.crop_pct:.6g})\n")


def _bar_text(tol: dict) -> str:
    """A parity tolerance in words: 'relative L2 ≤ 1e-05, top-1 agreement ≥ 1' (plus how it is aggregated)."""
    parts = []
    if "rel_l2" in tol:
        parts.append(f"relative L2 ≤ {tol['rel_l2']:.2g}" + (f" ({tol['statistic']})" if "statistic" in tol else ""))
    if "top1_agreement" in tol:
        parts.append(f"top-1 agreement ≥ {tol['top1_agreement']:.2g}")
    return ", ".join(parts) or "none recorded"


# --- ExecuTorch (.pte) ---------------------------------------------------------------------------

# The .pte must run on the ExecuTorch release that wrote it: the app links that version (see the manifest's
# versions.converter). The Swift API is marked experimental upstream; these follow ExecuTorch 1.x's docs.
_ET_SWIFT_NOTE = ("// Swift Package: https://github.com/pytorch/executorch, branch swiftpm-<version> of the\n"
                  "// ExecuTorch release that exported the .pte (versions.converter in the manifest); link the\n"
                  "// executorch and backend_xnnpack products. ExecuTorch marks its Swift API experimental:\n"
                  "// this follows its 1.x docs.\n")


@snippet("executorch")
def _executorch_kotlin(f: AppFacts) -> tuple[str, str, str]:
    dims = ", ".join(f"{d}L" for d in f.shape)
    imports = ("import java.io.File", "import org.pytorch.executorch.EValue", "import org.pytorch.executorch.Module",
               "import org.pytorch.executorch.Tensor")
    counter = "var k = 0\n" if f.layout == "nhwc" else ""
    return "Android: ExecuTorch Module (Kotlin)", "kotlin", f"""
// build.gradle: implementation("org.pytorch:executorch-android:<the ExecuTorch version that exported it>")
// Put {f.artifact} and labels.txt in app/src/main/assets/. Module.load takes a file path, so the .pte is copied
// out of the APK once.
""" + _kt_function(imports, f"""
val file = File(context.filesDir, "{f.artifact}")
if (!file.exists()) context.assets.open("{f.artifact}").use {{ src -> file.outputStream().use {{ src.copyTo(it) }} }}
val module = Module.load(file.absolutePath)  // load once and keep it: loading is the slow part
val labels = context.assets.open("labels.txt").bufferedReader().readLines()
// input "{f.input_name}": float32 {f.shape} ({f.layout.upper()})
val input = FloatArray({f.height * f.width * 3})
{counter}{_kt_fill(f, lambda i, v: f"input[k++] = {v}" if i is None else f"input[{i}] = {v}")}\
val tensor = Tensor.fromBlob(input, longArrayOf({dims}))
// output "{f.output_name}": {f.num_classes} scores
val scores = module.forward(EValue.from(tensor))[0].toTensor().dataAsFloatArray
val best = scores.indices.maxByOrNull {{ scores[it] }}!!
Log.d("classify", "${{labels[best]}} ${{scores[best]}}")
""")


@snippet("executorch")
def _executorch_swift(f: AppFacts) -> tuple[str, str, str]:
    stem, ext = f.artifact.rsplit(".", 1)
    dims = ", ".join(str(d) for d in f.shape)
    return "iOS/macOS: ExecuTorch Module (Swift)", "swift", _ET_SWIFT_NOTE + f"""import ExecuTorch

let module = Module(filePath: Bundle.main.path(forResource: "{stem}", ofType: "{ext}")!)
try module.load("forward")  // load once and keep the module: loading is the slow part
{_sw_fill(f)}// input "{f.input_name}": float32 {f.shape} ({f.layout.upper()})
let outputs = try module.forward(Tensor<Float>(input, shape: [{dims}]))
let logits: Tensor<Float> = outputs[0].tensor()!  // "{f.output_name}"
let scores = logits.scalars()  // {f.num_classes} classes
""" + _SW_TOP1


@snippet("executorch")
def _executorch_bundled(f: AppFacts) -> tuple[str, str, str]:
    stem = f.artifact.rsplit(".", 1)[0]
    return "Checking the program on a device: the bundled program (.bpte)", "sh", f"""
# When this folder holds {stem}.bpte (export --bundled-io): it is {f.artifact} plus the inputs mobiledeploy's
# parity check used and PyTorch's outputs on them. With mobiledeploy installed:
mobiledeploy verify {stem}.bpte   # runs the embedded program, judged with the {f.precision} parity bar
# On a device, ExecuTorch's C++ API (executorch::bundled_program::load_bundled_input, then
# verify_method_outputs) runs each case and compares element-wise with an rtol/atol you choose: pick one
# that suits {f.precision}; mobiledeploy judges by relative L2 and top-1 instead.
"""
