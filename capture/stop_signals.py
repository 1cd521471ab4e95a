"""Stopping a long-running command cleanly: SIGINT/SIGTERM set a stop event once (a second signal gets the
previous handler, so a stuck process can still be killed)."""

from __future__ import annotations

import signal
import threading


class StopOnSignals:
    """SIGINT/SIGTERM set ``stop`` (once: the previous handler is restored, so a second signal is not caught)."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.received: str | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._on_signal) or signal.SIG_DFL
        return self

    def _on_signal(self, signum, _frame) -> None:
        self.received = signal.Signals(signum).name
        self.stop.set()
        signal.signal(signum, self.previous[signum])

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
