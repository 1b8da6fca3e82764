"""What the CLI checks and lists before it imports torch: the registered models (with params and MACs)
and the target names, precomputed into mobiledeploy/data/catalog.json.

Importing torch and the model code costs 2-5 s idle and 15-30 s on a loaded machine; an argument error or
`mobiledeploy models` must not pay that. The table is held equal to the real registries by a test
(tests/test_cli_fast.py); after changing a model or adding a target, regenerate it:

    python -m mobiledeploy.commands._catalog
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from mobiledeploy.errors import UserError

TABLE = "catalog.json"


@functools.cache
def load() -> dict[str, Any]:
    """The precomputed table: {"models": [rows], "aliases": {alias: name}, "targets": [...], "layouts": {...}}."""
    return json.loads((resources.files("mobiledeploy.data") / TABLE).read_text(encoding="utf-8"))


def target_names() -> tuple[str, ...]:
    """Names `--target` accepts."""
    return tuple(load()["targets"])


def check_targets(names: list[str]) -> None:
    """Refuse an unknown target name in one line, listing the known ones."""
    known = target_names()
    for t in names:
        if t not in known:
            raise UserError(f"unknown target {t!r}", f"choose one of: {', '.join(known)}")


def is_registry_name(spec: str) -> bool:
    """Whether MODEL names a registry model (not `timm:<name>` and not a .pt2 or other file path)."""
    return not (spec.startswith("timm:") or spec.endswith(".pt2") or (os.sep in spec and Path(spec).suffix))


def check_model(spec: str) -> None:
    """Refuse an unknown registry name with the closest registered names (as the registry itself would)."""
    if not is_registry_name(spec):
        return
    table = load()
    names = [r["name"] for r in table["models"]]
    if spec in names or spec in table["aliases"]:
        return
    close = difflib.get_close_matches(spec, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `mobiledeploy models` for the list"
    raise UserError(f"unknown model {spec!r}", hint)


def model_rows(family: str | None = None) -> list[dict[str, Any]]:
    """Rows of `mobiledeploy models` (sorted by name), optionally of one family."""
    return [r for r in load()["models"] if family is None or r["family"] == family]


def build() -> dict[str, Any]:
    """The table from the real registries (imports torch and every model family: slow, on purpose here)."""
    from mobiledeploy.exporters.targets import TARGET_NAMES
    from mobiledeploy.models import _registry, create_model, get_cfg, list_models
    from mobiledeploy.models.checkpoint import LAYOUTS
    from mobiledeploy.models.profile import count_macs, count_params

    rows = []
    for name in list_models():
        cfg = get_cfg(name)
        model = create_model(name)
        rows.append({
            "name": name,
            "family": cfg.family,
            "params": count_params(model),
            "macs": count_macs(model, cfg.input_size),
            "input_size": list(cfg.input_size),
            "mean": list(cfg.mean),
            "std": list(cfg.std),
            "interpolation": cfg.interpolation,
            "weights_formats": list(cfg.weights_formats),
            "weights_formats_help": [LAYOUTS[f] for f in cfg.weights_formats],
        })
    return {"models": rows, "aliases": dict(sorted(_registry._ALIASES.items())), "targets": list(TARGET_NAMES),
            "layouts": dict(LAYOUTS)}


def main() -> None:
    """Regenerate mobiledeploy/data/catalog.json from the registries."""
    path = Path(__file__).resolve().parents[1] / "data" / TABLE
    path.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
