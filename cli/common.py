"""What several commands share: the progress printer and the option groups for model inputs."""

from __future__ import annotations

import time
from collections.abc import Callable

import click


def progress_printer() -> Callable[[str], None]:
    """A progress printer that stamps each line with the seconds since the command started (on
    stderr, above a progress bar shown there: splitter/progress.py)."""
    from splitter.progress import echo

    start = time.perf_counter()
    return lambda message: echo(f"[{time.perf_counter() - start:6.1f}s] {message}")


def stream_input_options(default_random: int) -> Callable[[Callable], Callable]:
    """--images / --inputs / --random / --seed and --labels / --top, shared by the commands that stream."""
    options = [
        click.option("--images", multiple=True, metavar="DIR|FILE",
                     help="JPEG/PNG files or directories of them, resized and center-cropped to the model "
                          "input (docs/images.md); repeat or list several."),
        click.option("--inputs", type=click.Path(exists=True, dir_okay=False),
                     help="A .npy file of inputs (N first, original model layout)."),
        click.option("--random", "random_count", type=click.IntRange(min=1),
                     help=f"Seeded random inputs to send (the default: {default_random})."),
        click.option("--seed", default=0, show_default=True),
        click.option("--labels", type=click.Path(exists=True, dir_okay=False),
                     help="Class names, one per line: results are printed with them."),
        click.option("--top", default=5, show_default=True, type=click.IntRange(min=1),
                     help="With --images or --labels: the best K classes of each result, with scores."),
    ]

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def quantization_options(func: Callable) -> Callable:
    """The options that declare how a float model input is quantized."""
    options = [
        click.option("--input-dtype", help="Integer datatype of the raw input, e.g. UINT8."),
        click.option("--input-scale", help="Real value of one input step, e.g. 1/255."),
        click.option("--mean", help="Per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406."),
        click.option("--std", help="One standard deviation divided by after the mean, e.g. 0.226."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
