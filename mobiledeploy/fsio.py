"""Crash-safe file placement: nothing half-written ever sits under a final name."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write data to a temporary name in path's folder, then rename it over path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        # mkstemp creates 0600; give the file the mode open() would have (0666 less the umask), so a
        # manifest is as readable as the artifact next to it.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove(p: Path) -> None:
    """Remove a file, link or folder if it exists."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


def move_into_place(tmp: Path, final: Path) -> None:
    """Rename a finished file or folder onto its final name, replacing what was there."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)  # os.replace cannot replace a non-empty folder (.mlpackage, bundles)
    elif tmp.is_dir() and (final.exists() or final.is_symlink()):
        final.unlink()  # nor put a folder over a file
    os.replace(tmp, final)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write obj as JSON, atomically."""
    atomic_write(path, json.dumps(obj, indent=indent) + "\n")


def check_writable(path: str | Path, option: str) -> None:
    """Raise a one-line UserError unless a file can be created at `path` (checked by creating a scratch file
    beside it), so that a bad output path fails before minutes of work rather than after them."""
    from .errors import UserError

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {p} is a folder", f"give {option} a file path")
    folder = p.parent
    if not folder.is_dir():
        raise UserError(f"folder does not exist: {folder}", f"create it or pick another {option} path")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{p.name}.", suffix=".check"):
            pass
    except OSError as e:
        raise UserError(f"cannot write {option} {p}: {e.strerror or e}", f"pick another {option} path") from None
