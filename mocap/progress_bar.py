"""Progress for long commands: a rich bar per step, fed by the ``progress(done, total)`` callbacks that
library functions take (the libraries themselves never print)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(console: Console, description: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing one bar while the block runs (plain lines when piped)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=None)
        last = [-1]

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if not console.is_terminal and total and done * 10 // total > last[0]:
                last[0] = done * 10 // total
                console.print(f"{description}: {done}/{total}")

        yield update
