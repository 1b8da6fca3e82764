"""Class-name files (--labels): what editors write is read as the user meant it, or refused in one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mobiledeploy.errors import UserError
from mobiledeploy.exporters.labels import IMAGENET_LABELS, read_labels


def test_byte_order_mark_and_crlf_are_not_part_of_the_names(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_bytes("\ufeffcat\r\ndog\r\n\r\nbird\r\n".encode("utf-8"))  # Windows Notepad
    assert read_labels(p) == ["cat", "dog", "bird"]


def test_non_utf8_file_is_one_line_with_the_fix(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8") as e:
        read_labels(p)
    assert "UTF-8" in e.value.hint


def test_empty_file_says_what_to_put_in_it(tmp_path):
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(UserError, match="is empty") as e:
        read_labels(tmp_path / "e.txt")
    assert e.value.hint


def test_default_is_imagenet():
    labels = read_labels()
    assert len(labels) == 1000 and labels == read_labels(IMAGENET_LABELS) and len(set(labels)) == 1000


def test_core_ml_refuses_repeated_labels_from_any_source():
    """--labels reaches Core ML as a list (not a path): repeats must still be caught before conversion."""
    pytest.importorskip("coremltools")
    from mobiledeploy.exporters.coreml import _labels

    from mobiledeploy.exporters.options import TargetOptions

    req = SimpleNamespace(options=TargetOptions(), labels=["a", "b", "a"])
    with pytest.raises(UserError, match=r"class labels repeat \(a\)"):
        _labels(req, [(1, 3)])
    assert _labels(SimpleNamespace(options=TargetOptions(), labels=["a", "b", "c"]), [(1, 3)]) == ["a", "b", "c"]


def test_imagenet_models_are_exported_with_unique_labels(tmp_path, capsys):
    """timm's ImageNet table names two classes "crane"; a Core ML classifier's class→probability dictionary
    would merge them, so every export carries the shipped, unique names."""
    import json

    from mobiledeploy.cli import main

    rc = main(["export", "mobilenetv2_035", "-t", "onnx", "--input-size", "32", "--no-verify", "--out",
               str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    labels = json.loads((tmp_path / "mobilenetv2_035_32.onnx.json").read_text())["labels"]
    assert labels == read_labels() and len(set(labels)) == 1000
    assert labels[134] == "crane (n02012849)" and labels[517] == "crane (n03126707)"
