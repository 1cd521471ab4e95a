"""What every step of `mocap demo` shares: its options, its errors, and how a step shows its progress (a spinner
with the seconds so far, or a progress bar, then one line with the step's duration)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from mocap.progress_bar import progress_bar

T = TypeVar("T")


class DemoError(ValueError):
    """The demo cannot run or cannot go on; the message says what is wrong and what to do."""


class DemoStopped(Exception):
    """SIGINT/SIGTERM arrived while the live part ran: the nodes are stopped, what was recorded is kept."""


@dataclass(frozen=True)
class DemoOptions:
    """The demo's arguments, checked."""

    rig: str
    people: int
    seconds: float
    out: Path
    seed: int
    view: bool


def step(console: Console, label: str, fn: Callable[[], T]) -> T:
    """Run one step under a spinner showing the seconds it has taken so far, then print its duration."""
    t0 = time.perf_counter()
    with console.status(f"{label} ...") as status:
        done = threading.Event()

        def tick() -> None:
            while not done.wait(1.0):
                status.update(f"{label} ... {time.perf_counter() - t0:.0f} s")

        ticker = threading.Thread(target=tick, name="demo-step-timer", daemon=True)
        ticker.start()
        try:
            result = fn()
        finally:
            done.set()
            ticker.join()
    console.print(f"  [green]done[/] {label} ({time.perf_counter() - t0:.1f} s)")
    return result


def step_with_bar(console: Console, label: str, fn: Callable[[Callable[[int, int], None]], T]) -> T:
    """Run one step that reports progress(done, total) under a progress bar, then print how long it took."""
    t0 = time.perf_counter()
    with progress_bar(console, label) as progress:
        result = fn(progress)
    console.print(f"  [green]done[/] {label} ({time.perf_counter() - t0:.1f} s)")
    return result
