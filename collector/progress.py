"""Progress bars for long CLI work (`vigil process` of large files, `dlq replay`): count, rate
and ETA on stderr with rich, shown only on a terminal unless asked (`--progress`), so pipes and
scripts get exactly the output they parse."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


@contextmanager
def progress(description: str, total: float | None, *, unit: str = "items",
             enabled: bool | None = None, stream: TextIO | None = None
             ) -> Iterator[Callable[[float], None]]:
    """Yields `advance(n)`; with `total` None it shows a count and a rate, no bar or ETA.
    `enabled` None means: when `stream` (default stderr) is a terminal."""
    stream = stream or sys.stderr
    if enabled is None:
        enabled = stream.isatty()
    if not enabled:
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
            return Text("-" if speed is None else f"{speed:,.0f} {unit}/s")

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          Rate(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=stream, force_terminal=True),
                  refresh_per_second=4) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.update(task, advance=n)
