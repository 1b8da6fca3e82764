"""What an `.mlpackage` folder may hold when we ship it: only what Core ML reads, with normal permissions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def tidy_package(pkg: Path) -> None:
    """Keep only Manifest.json and the items it lists, files 0644 and folders 0755.

    coremltools' save leaves `executorch_debug_handle_mapping.json` (80-240 KB, listed nowhere) beside
    them and writes model.mlmodel and weights/ as 0600/0700 (its temporary files' modes)."""
    pkg = Path(pkg)
    manifest = pkg / "Manifest.json"
    items = json.loads(manifest.read_text()).get("itemInfoEntries", {}).values()
    keep = {(pkg / "Data" / e["path"]).resolve() for e in items if e.get("path")}

    def wanted(p: Path) -> bool:
        r = p.resolve()
        return r == manifest.resolve() or any(r == k or k in r.parents or r in k.parents for k in keep)

    for p in sorted(pkg.rglob("*"), key=lambda q: len(q.parts), reverse=True):  # children before parents
        if not wanted(p):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        else:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(pkg, 0o755)
