"""Class-name files: one name per line, UTF-8; the ImageNet-1k names shipped with mobiledeploy."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from mobiledeploy.errors import UserError

# Package data, found through the import system: the same call works from a checkout, an editable
# install and a wheel in site-packages (a path built from this file's folder does not: exporters/
# installs as mobiledeploy/exporters, so `parents[1] / "mobiledeploy"` pointed nowhere in a wheel).
IMAGENET_LABELS: Traversable = resources.files("mobiledeploy.data") / "imagenet_labels.txt"


def read_labels(path: str | Path | Traversable | None = None) -> list[str]:
    """Class names from a text file, one per line (blank lines dropped); default: ImageNet-1k."""
    p = IMAGENET_LABELS if path is None or path == "" else path
    if isinstance(p, str):
        p = Path(p)
    if not p.is_file():
        raise UserError(f"labels file not found: {p}", "pass a text file with one class name per line")
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) must not become part of the first name.
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"labels file {p} is not UTF-8 text (byte {e.start})",
                        "save it as UTF-8 with one class name per line") from None
    labels = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not labels:
        raise UserError(f"labels file {p.name} is empty", "put one class name per line in it")
    return labels
