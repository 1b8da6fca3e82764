"""`mobiledeploy verify`: run an artifact on its runtime and compare it with the PyTorch model in its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mobiledeploy.errors import UserError, VerificationError


class NotVerifiedError(UserError):
    """Verification was asked for and could not run on this host."""

    exit_code = 4


@click.command("verify")
@click.argument("artifact", type=click.Path(exists=False))
@click.option("--random", "n_random", default=3, show_default=True, help="Seeded random inputs to use.")
@click.option("--no-photos", is_flag=True, help="Skip the scikit-image photos.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(artifact: str, n_random: int, no_photos: bool, as_json: bool) -> None:
    """Check ARTIFACT against PyTorch fp32; exit 0 only when it meets its precision's bar."""
    from mobiledeploy.pipeline import verify

    m, report, reason = verify(Path(artifact), n_random=n_random, photos=not no_photos)
    result = {"artifact": str(artifact), "target": m["target"], "model": m["model"]["spec"],
              "precision": m["precision"], "verified": bool(report is not None and report.passed),
              "parity": report.as_dict() if report is not None else None, "not_verified_reason": reason}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        if report is None:
            click.echo(f"{artifact}: not verified: {reason}")
        else:
            verdict = "verified" if report.passed else "FAILED"
            click.echo(f"{artifact}: {verdict} against {report.reference}: {report.summary()}")
    if report is None:
        # Verification was asked for and could not happen: never an exit status that reads as success.
        raise NotVerifiedError(f"{Path(artifact).name} was not verified: {reason}")
    if not report.passed:
        raise VerificationError(f"{Path(artifact).name} fails the {m['precision']} parity check: {report.summary()}")
