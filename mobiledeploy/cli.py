"""The `mobiledeploy` command line: a click group whose commands live in mobiledeploy.commands."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from . import __version__
from .commands._help import GROUP_EPILOG
from .errors import UserError

# Each command is one module in mobiledeploy/commands exposing `command`; adding one is one line.
COMMANDS = ("models", "export", "verify", "bench")


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs, so `--help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [c for c in COMMANDS if importlib.util.find_spec(f"mobiledeploy.commands.{c}")]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not importlib.util.find_spec(f"mobiledeploy.commands.{name}"):
            return None
        cmd = importlib.import_module(f"mobiledeploy.commands.{name}").command
        if not cmd.epilog:  # examples and exit codes, one place for every command (commands/_help.py)
            from .commands._help import EPILOGS

            cmd.epilog = EPILOGS.get(name)
        return cmd


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=GROUP_EPILOG)
@click.version_option(__version__, prog_name="mobiledeploy")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Export mobile vision models exactly, verify them, and measure their latency."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a non-zero exit."""

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if sys.platform != "darwin" and not debug:
        import logging

        # Off macOS coremltools logs "Failed to load _MLModelProxy" on import: expected, since it cannot
        # predict here (our interpreter does), so it is noise to the user.
        logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        cli.main(args=argv, prog_name="mobiledeploy", standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort as e:  # click turns Ctrl-C into Abort
        click.echo("interrupted" if isinstance(e.__context__, KeyboardInterrupt) else "aborted", err=True)
        return 130
    except click.UsageError as e:  # a missing or unknown option: one line like every other error
        where = f"mobiledeploy {e.ctx.info_name} --help" if e.ctx and e.ctx.parent else "mobiledeploy --help"
        click.echo(f"error: {e.format_message()} (see `{where}`)", err=True)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
