"""`finnsplit calibrate REPORT_DIR...`: fit the cost model to FINN's post-synthesis reports (docs/calibration.md)."""

from __future__ import annotations

from pathlib import Path

import click

from splitter.boards import load_board
from splitter.cost.calibration import calibration_path, write_calibration
from splitter.cost.reports import collect, format_table, unfittable


@click.command()
@click.argument("report_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--board", help="Board the reports are of (name or board file); default: from the reports.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Calibration file to write (default: <board-file-stem>.calibration.json beside the board file).")
@click.option("--dry-run", is_flag=True, help="Fit and print the factors, write nothing.")
def calibrate(report_dirs: tuple[Path, ...], board: str | None, output: Path | None, dry_run: bool) -> None:
    """Fit per-impl correction factors from FINN's post-synthesis reports (docs/calibration.md)."""
    cal, pairs, notes = collect(list(report_dirs), board)
    click.echo(format_table(cal.factors))
    for note in [*notes, *unfittable(pairs, cal.factors)]:
        click.echo(f"note: {note}")
    what = "the cost model's predictions (manifest)" if cal.basis == "finnsplit" else "FINN's estimates"
    click.echo(f"board {cal.board}: {len(pairs)} nodes from {len(cal.sources)} report(s), relative to {what}")
    target = output or calibration_path(load_board(cal.board).path)
    click.echo(f"dry run: would write {target}" if dry_run else f"wrote {write_calibration(cal, target)}")
