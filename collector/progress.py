"""Progress bars for long CLI work (`vigil process` of large files, `rules backtest` over the
lake, `dlq replay`, `journal fsck`): count, rate and ETA on stderr with rich, shown only on a
terminal unless asked (`--progress`), so pipes and scripts get exactly the output they parse.
Each command ends with its summary line either way."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """`--progress` / `--no-progress`, the same on every long-running command."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress bar with rate and ETA on stderr (default: when "
                             "stderr is a terminal)")


def progress_wanted(enabled: bool | None, stream: TextIO | None = None) -> bool:
    """Whether `progress(..., enabled=enabled)` draws: asked for, or stderr is a terminal. For
    commands whose total costs a pass of its own (counting rows) only when it is shown."""
    return (stream or sys.stderr).isatty() if enabled is None else enabled


@contextmanager
def progress(description: str, total: float | None, *, unit: str = "items",
             enabled: bool | None = None, stream: TextIO | None = None
             ) -> Iterator[Callable[[float], None]]:
    """Yields `advance(n)`; with `total` None it shows a count and a rate, no bar or ETA.
    `enabled` None means: when `stream` (default stderr) is a terminal."""
    stream = stream or sys.stderr
    if not progress_wanted(enabled, stream):
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None and task.completed and task.elapsed:
                speed = task.completed / task.elapsed  # one big step: no sampled speed yet
            return Text("-" if speed is None else f"{speed:,.0f} {unit}/s")

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          Rate(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=stream, force_terminal=True),
                  refresh_per_second=4) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.update(task, advance=n)
