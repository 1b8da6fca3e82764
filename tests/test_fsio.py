"""Crash-safe placement: finished files and folders replace what was there; failures leave nothing behind."""

from __future__ import annotations

import pytest

from mobiledeploy import fsio
from mobiledeploy.fsio import atomic_write, move_into_place


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    p = tmp_path / "m.json"
    atomic_write(p, "old")
    atomic_write(p, b"new")
    assert p.read_text() == "new" and [f.name for f in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(TypeError):
        atomic_write(p, 3)  # type: ignore[arg-type]
    assert p.read_text() == "new" and [f.name for f in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize("existing", ["none", "file", "folder"])
def test_move_folder_into_place(tmp_path, existing):
    final = tmp_path / "a.mlpackage"
    if existing == "file":
        final.write_text("stale")
    elif existing == "folder":
        (final / "old").mkdir(parents=True)
    tmp = tmp_path / ".a.partial"
    (tmp / "Data").mkdir(parents=True)
    move_into_place(tmp, final)
    assert [p.name for p in final.iterdir()] == ["Data"] and not tmp.exists()


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    # mkstemp's 0600 must not leak into manifests: an app build under another user has to read them.
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    fsio.write_json(tmp_path / "manifest.json", {"a": 1})
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
