"""`mobiledeploy models`: the registered models with their size, cost and accepted checkpoints."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--family", default=None, help="Only this family (ghostnet, ghostnetv2, mobilenetv2, kat).")
def command(as_json: bool, family: str | None) -> None:
    """List registered models: params, MACs at the default input size, checkpoint layouts."""
    from mobiledeploy.models import create_model, get_cfg, list_models
    from mobiledeploy.models.checkpoint import LAYOUTS
    from mobiledeploy.models.profile import count_macs, count_params

    names = list_models(family)
    if not names:
        from mobiledeploy.errors import UserError

        families = sorted({get_cfg(n).family for n in list_models()})
        raise UserError(f"no models in family {family!r}", f"families: {', '.join(families)}")
    rows = []
    for name in names:
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
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="mobiledeploy models")
    for col, just in (("name", "left"), ("family", "left"), ("params", "right"), ("MACs", "right"),
                      ("input", "right"), ("weights", "left")):
        t.add_column(col, justify=just, no_wrap=col != "weights")  # type: ignore[arg-type]
    for r in rows:
        c, h, w = r["input_size"]
        t.add_row(r["name"], r["family"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f} M", f"{c}×{h}×{w}",
                  ", ".join(r["weights_formats"]))
    console = Console()
    if not console.is_terminal:  # a log or a pipe: don't squeeze the table into 80 columns
        console = Console(width=160)
    console.print(t)
    console.print("checkpoint layouts: " + "; ".join(f"{k} = {v}" for k, v in LAYOUTS.items()), style="dim")
