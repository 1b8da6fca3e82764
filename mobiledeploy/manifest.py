"""The manifest written next to every artifact (`<artifact>.json`): what it is, how it was made, how exact it is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import UserError
from .fsio import write_json

SCHEMA = "mobiledeploy.manifest/1"
REQUIRED = ("schema", "model", "target", "artifact", "sha256", "precision", "inputs", "outputs", "labels",
            "rewrites", "parity", "versions", "verified")


def manifest_path(artifact: Path) -> Path:
    """Where the manifest of an artifact lives: the artifact's name plus '.json'."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder (.mlpackage) as its sorted relative paths and contents."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_bytes(path: Path) -> int:
    """Size of a file, or the total of a folder's files."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(**fields: Any) -> dict[str, Any]:
    """A manifest dict in schema order; every required field must be given (None where it does not apply)."""
    missing = [k for k in REQUIRED if k not in fields and k != "schema"]
    if missing:
        raise ValueError(f"manifest fields missing: {', '.join(missing)}")
    out = {"schema": SCHEMA}
    out.update({k: fields[k] for k in REQUIRED if k != "schema"})
    out.update({k: v for k, v in fields.items() if k not in out})
    return out


def write(path: Path, manifest: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary name in the same folder, then a rename."""
    write_json(path, manifest)


def read(path: Path) -> dict[str, Any]:
    """Read and check a manifest; a missing or foreign file is the user's error."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no manifest at {path}", "export the artifact with `mobiledeploy export` first")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path.name} is not valid JSON: {e}",
                        "re-export the artifact with --force to write its manifest again") from None
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise UserError(f"{path.name} is not a mobiledeploy manifest (schema {m.get('schema') if isinstance(m, dict) else None!r})",
                        f"expected schema {SCHEMA}; re-export the artifact with --force")
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        raise UserError(f"{path.name} lacks field(s): {', '.join(missing)}", "re-export the artifact with --force")
    return m


def record_device(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Add or replace (same `device` URL and runtime name) one on-device check under `devices`; write atomically."""
    m = read(path)
    key = (record.get("device"), (record.get("runtime") or {}).get("name"))
    kept = [d for d in m.get("devices") or [] if (d.get("device"), (d.get("runtime") or {}).get("name")) != key]
    m["devices"] = kept + [record]
    write(path, m)
    return m
