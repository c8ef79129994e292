"""`finnsplit`: one command composed of the model side (cli/model.py), the runtime (cli/runtime.py),
bench, calibrate, fleet and board. Heavy imports happen inside the commands, so `--help` stays fast."""

from __future__ import annotations

import sys

import click

from cli import bench, board, calibrate, fleet, model, runtime
from core.errors import ConfigError, FinnsplitError


@click.group()
@click.version_option(package_name="finnsplit")
def cli() -> None:
    """Split a quantized CNN across a chain of small FPGA boards, built with FINN."""


for _command in (*model.COMMANDS, *runtime.COMMANDS, bench.bench, calibrate.calibrate, fleet.fleet, board.board):
    cli.add_command(_command)


def main() -> None:
    """Entry point: run the CLI, printing finnsplit errors without a traceback."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:  # one line per problem of the file
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    except FinnsplitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
