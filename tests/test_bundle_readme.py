"""Bundle README facts: the snippets carry the artifact's real input contract."""

from __future__ import annotations

import json

import pytest

from mobiledeploy.errors import UserError
from mobiledeploy.exporters.bundle import AppFacts, readme, write_bundle
from mobiledeploy.manifest import Manifest, TensorEntry


def _manifest(layout="NCHW", value_range=(0.0, 1.0), in_graph=False, target="onnx"):
    shape = [1, 3, 40, 48] if layout == "NCHW" else [1, 40, 48, 3]
    return Manifest.from_json({"target": target, "model": {"name": "ghostnet_050"}, "precision": "fp32",
            "inputs": [{"name": "pixels", "shape": shape, "dtype": "float32", "layout": layout,
                        "value_range": list(value_range),
                        "normalization": {"mean": [0.5, 0.25, 0.125], "std": [0.5, 0.5, 0.25], "in_graph": in_graph}}],
            "outputs": [{"name": "logits", "shape": [1, 7]}], "labels": list("abcdefg"),
            "parity": None, "not_verified_reason": "skipped (--no-verify)", "sha256": "0" * 64})


def _outputs(*entries: dict) -> list[TensorEntry]:
    return [TensorEntry.from_json(e) for e in entries]


def test_normalised_nchw_input_becomes_pixel_units():
    f = AppFacts.from_manifest(_manifest(), "m.onnx")
    assert (f.layout, f.height, f.width, f.num_classes) == ("nchw", 40, 48, 7)
    # (pixel/255 - m) / s == (pixel - 255 m) / (255 s)
    assert f.mean == pytest.approx([127.5, 63.75, 31.875]) and f.std == pytest.approx([127.5, 127.5, 63.75])
    text = readme(f, _manifest(), True)
    assert "floatArrayOf(127.5f, 63.75f, 31.875f)" in text and "longArrayOf(1L, 3L, 40L, 48L)" in text
    assert "c * 40 * 48 + i" in text  # planar writes for NCHW
    assert '"pixels" to tensor' in text and "Not verified: skipped" in text


def test_in_graph_nhwc_input_takes_raw_pixels():
    m = _manifest("NHWC", (0, 255), True, target="tflite")
    f = AppFacts.from_manifest(m, "m.tflite")
    assert f.mean == [0.0] * 3 and f.std == [1.0] * 3 and f.layout == "nhwc"
    text = readme(f, m, True)
    assert "ImageClassifier" in text and "Interpreter(" in text and "4 * 5760" in text
    assert "createScaledBitmap(bitmap, 48, 40, true)" in text


def test_bundle_is_written_whole(tmp_path):
    art = tmp_path / "m.onnx"
    art.write_bytes(b"onnx")
    out = write_bundle(tmp_path / "b", art, _manifest(), list("abcdefg"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "labels.txt", "m.onnx", "m.onnx.json"]
    assert json.loads((out / "m.onnx.json").read_text())["bundle"]["labels"] == "labels.txt"
    with pytest.raises(UserError, match="4-d"):
        bad = _manifest()
        bad.inputs[0].shape = [1, 7]
        write_bundle(tmp_path / "c", art, bad, None)
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".*partial"))


def test_core_ml_classifier_readme_names_the_scores_and_the_classifier_outputs():
    # A Core ML classifier lists classLabel (a string) and its probabilities before the logits: the README
    # must not call classLabel "7 scores".
    m = _manifest(target="coreml")
    m.inputs[0].kind, m.inputs[0].dtype = "image", "uint8"
    m.outputs = _outputs({"name": "classLabel", "kind": "label", "dtype": "str"},
                         {"name": "classLabel_probs", "kind": "probabilities", "dtype": "float32"},
                         {"name": "logits", "shape": [1, 7], "dtype": "float32"})
    f = AppFacts.from_manifest(m, "g.mlpackage")
    assert f.output_name == "logits"
    text = readme(f, m, has_labels=True)
    assert "| output | `logits`: 7 scores" in text
    assert "`classLabel`: the most likely class name" in text and "`classLabel_probs`" in text


# Kotlin's own types and functions that need no import.
_KOTLIN_BUILTINS = {"Array", "FloatArray", "IntArray", "LongArray", "Float", "Int", "Long", "String", "Unit"}


def _code_blocks(text: str, lang: str) -> list[str]:
    import re

    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _check_kotlin_compiles_as_pasted(code: str) -> None:
    """What kotlinc would refuse first (it is not installed here): a type without its import, or free names."""
    import re

    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.lstrip().startswith("//")]
    imported = {ln.split()[1].rsplit(".", 1)[1] for ln in lines if ln.startswith("import ")}
    body = "\n".join(ln for ln in lines if not ln.startswith("import "))
    # Strip string templates' text: a class name inside a string literal is not a reference.
    code_only = re.sub(r"//.*", "", re.sub(r'"[^"\n]*"', '""', body))  # comments are not references either
    used = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)\b", code_only))
    # Nested names (ImageClassifier.ImageClassifierOptions, Interpreter.Options) come with their outer class.
    nested = set(re.findall(r"\b[A-Z][A-Za-z0-9]+\.([A-Z][A-Za-z0-9]+)\b", body))
    missing = used - imported - _KOTLIN_BUILTINS - nested
    assert not missing, f"used without an import: {sorted(missing)}\n{code}"
    # Everything after the imports is one function whose parameters are the names the snippet assumes.
    assert body.startswith("fun classify(context: Context, bitmap: Bitmap) {") and body.rstrip().endswith("}"), body
    assert body.count("{") == body.count("}")


@pytest.mark.parametrize("target,layout,in_graph,vr", [("tflite", "NHWC", True, (0, 255)), ("onnx", "NCHW", False, (0, 1)),
                                                        ("ort", "NHWC", True, (0, 255))])
def test_kotlin_snippets_import_what_they_use(target, layout, in_graph, vr):
    m = _manifest(layout, vr, in_graph, target=target)
    text = readme(AppFacts.from_manifest(m, f"m.{target}"), m, True)
    blocks = _code_blocks(text, "kotlin")
    assert len(blocks) == (2 if target == "tflite" else 1)
    for code in blocks:
        assert "import android.graphics.Bitmap" in code and "import android.util.Log" in code
        _check_kotlin_compiles_as_pasted(code)


def _coreml_manifest(size=224, crop_pct=0.875):
    m = _manifest(target="coreml")
    m.model.crop_pct = crop_pct
    m.inputs[0].kind, m.inputs[0].dtype, m.inputs[0].shape = "image", "uint8", [1, 3, size, size]
    m.outputs = _outputs({"name": "classLabel", "kind": "label", "dtype": "str"},
                         {"name": "classLabel_probs", "kind": "probabilities", "dtype": "dictionary"},
                         {"name": "logits", "shape": [1, 7], "dtype": "float32"})
    return m


def test_vision_snippet_crops_as_the_model_was_evaluated():
    """crop_pct 0.875 at 224: timm resizes to 256 and centre-crops 224; Vision's .centerCrop alone would feed
    the whole centre square, so the snippet keeps the centre 87.5 % of each side first."""
    m = _coreml_manifest()
    (code,) = _code_blocks(readme(AppFacts.from_manifest(m, "g.mlpackage"), m, True), "swift")
    assert ".centerCrop" in code and "resize to 256, centre crop 224" in code
    assert "request.regionOfInterest = CGRect(x: 0.0625, y: 0.0625, width: 0.875, height: 0.875)" in code
    assert code.index("regionOfInterest") < code.index("perform(")  # set before the request runs
    # A model evaluated on the whole centre (crop_pct 1.0) gets no region of interest.
    m = _coreml_manifest(crop_pct=1.0)
    (code,) = _code_blocks(readme(AppFacts.from_manifest(m, "g.mlpackage"), m, True), "swift")
    assert "regionOfInterest" not in code and "crop_pct 1.0" in code


def test_classifier_probabilities_are_described_as_swift_receives_them():
    m = _coreml_manifest()
    text = readme(AppFacts.from_manifest(m, "g.mlpackage"), m, True)
    assert "`classLabel_probs`: every class's probability, a `[String: Double]` dictionary" in text
