"""Replace one `## ` section of BENCHMARKS.md (or append it), leaving the other sections as they are."""

from __future__ import annotations

from pathlib import Path

from mobiledeploy.fsio import atomic_write


def write_section(md: Path, heading: str, text: str) -> None:
    """Put `text` (which starts with `heading`) in place of that section of `md`, atomically."""
    old = md.read_text() if md.exists() else "# Benchmarks\n"
    text = text.rstrip("\n") + "\n"
    start = old.find(heading + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(heading))
        new = old[:start] + text + ("" if nxt < 0 else "\n" + old[nxt + 1:])  # one blank line between sections
    atomic_write(md, new)
