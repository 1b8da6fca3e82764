"""manifest.read: a manifest the user must fix (broken, foreign, incomplete) is one line that says how."""

from __future__ import annotations

import json

import pytest

from mobiledeploy import manifest
from mobiledeploy.errors import UserError


@pytest.mark.parametrize("text, message", [
    ("{bad", "is not valid JSON"),
    (json.dumps({"schema": "something/else"}), "is not a mobiledeploy manifest"),
    (json.dumps({"schema": manifest.SCHEMA}), "lacks field(s): model"),
])
def test_unusable_manifest_says_what_is_wrong_and_to_re_export(tmp_path, text, message):
    path = tmp_path / "m.onnx.json"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        manifest.read(path)
    assert message in e.value.message and "\n" not in str(e.value)
    assert "re-export the artifact with --force" in e.value.hint


def test_missing_manifest_says_to_export_first(tmp_path):
    with pytest.raises(UserError, match="no manifest at") as e:
        manifest.read(tmp_path / "x.onnx.json")
    assert "mobiledeploy export" in e.value.hint
