"""`mobiledeploy models`: the registered models with their size, cost and accepted checkpoints."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--family", default=None, help="Only this family (ghostnet, ghostnetv2, mobilenetv2, kat).")
def command(as_json: bool, family: str | None) -> None:
    """List registered models: params, MACs at the default input size, checkpoint layouts."""
    # From the precomputed table (held equal to the registry by a test): listing must not import torch.
    from . import _catalog

    rows = _catalog.model_rows(family)
    if not rows:
        from mobiledeploy.errors import UserError

        families = sorted({r["family"] for r in _catalog.model_rows()})
        raise UserError(f"no models in family {family!r}", f"families: {', '.join(families)}")
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
    layouts = _catalog.load()["layouts"]
    console.print("checkpoint layouts: " + "; ".join(f"{k} = {v}" for k, v in layouts.items()), style="dim")
