"""The progress bar on stderr, transient: `run(work, quiet)` calls work(progress) with a progress callback."""

from __future__ import annotations

from typing import Callable, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
Tick = Callable[[str, int, int], None]


def run(work: Callable[[Tick], T], quiet: bool, console: Console) -> T:
    """work(tick) with a silent tick when quiet, else one that drives a transient bar on `console`."""
    if quiet:
        return work(lambda *_: None)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as prog:
        task = prog.add_task("starting", total=1)

        def tick(desc: str, done: int, total: int) -> None:
            prog.update(task, description=desc, completed=done, total=max(total, 1))

        return work(tick)
