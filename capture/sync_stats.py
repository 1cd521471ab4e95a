"""Frame-sync statistics: complete and partial sets, frames, late, dropped and duplicate frames per camera, skew.

A ``SyncStats`` is fed by a syncer (``capture.sync``): the emitted FrameSets (frames per camera, skew,
complete/partial), every received frame's seq (drops are seq gaps), and the frames it discarded (late,
duplicate). Memory stays constant however long the recording: skews go into a fixed histogram.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from capture.sync import FrameSet

SKEW_BIN_NS = 50_000  # skew percentiles are resolved to 0.05 ms ...
SKEW_BINS = 20_000  # ... up to 1 s; larger skews share the last bin (the maximum is kept exactly)


class SyncStats:
    """Running counts of one syncer's work; ``summary()`` for reports, ``str()`` for a status line."""

    def __init__(self, cameras: Sequence[str]) -> None:
        self.cameras = tuple(cameras)
        self._index = {c: i for i, c in enumerate(self.cameras)}
        n = len(self.cameras)
        self.complete = 0
        self.partial = 0
        self.frames = np.zeros(n, np.int64)  # frames delivered in emitted sets
        self.missing = np.zeros(n, np.int64)  # emitted sets without this camera
        self.received = np.zeros(n, np.int64)
        self.late = np.zeros(n, np.int64)
        self.dropped = np.zeros(n, np.int64)
        self.duplicates = np.zeros(n, np.int64)
        self.seq_resets = np.zeros(n, np.int64)
        self._last_seq: list[int | None] = [None] * n
        self._last_t: list[int] = [0] * n
        self._skew_hist = np.zeros(SKEW_BINS, np.int64)
        self._skew_max_ns = 0

    @property
    def sets(self) -> int:
        return self.complete + self.partial

    # --- feeding -------------------------------------------------------------------------------
    def add_sets(self, sets: Sequence[FrameSet]) -> None:
        """Count emitted sets: presence per camera, complete/partial, skew."""
        if not sets:
            return
        present = np.array([[fs.frames[c] is not None for c in self.cameras] for fs in sets], bool)
        complete = int(present.all(axis=1).sum())
        self.complete += complete
        self.partial += len(sets) - complete
        self.frames += present.sum(axis=0)
        self.missing += (~present).sum(axis=0)
        skew = np.fromiter((fs.skew_ns for fs in sets), np.int64, len(sets))
        bins = np.minimum(skew // SKEW_BIN_NS, SKEW_BINS - 1)
        self._skew_hist += np.bincount(bins, minlength=SKEW_BINS)
        self._skew_max_ns = max(self._skew_max_ns, int(skew.max()))

    def count_received(self, camera: str, seq: int, t_ns: int) -> None:
        """Note a received frame; a seq jump from 10 to 13 counts 2 dropped.

        A lower seq with an older time arrived out of order and fills a counted gap; a lower seq with a
        newer time is a camera restart (counted in ``seq_resets``), which restarts gap counting.
        """
        i = self._index[camera]
        self.received[i] += 1
        last = self._last_seq[i]
        if last is None or seq > last:
            if last is not None:
                self.dropped[i] += seq - last - 1
            self._last_seq[i], self._last_t[i] = seq, t_ns
        elif seq < last:
            if t_ns < self._last_t[i]:
                self.dropped[i] = max(0, self.dropped[i] - 1)
            else:
                self.seq_resets[i] += 1
                self._last_seq[i], self._last_t[i] = seq, t_ns

    def count_late(self, camera: str) -> None:
        self.late[self._index[camera]] += 1

    def count_duplicate(self, camera: str) -> None:
        self.duplicates[self._index[camera]] += 1

    # --- reading -------------------------------------------------------------------------------
    def skew_ms(self, quantiles: Iterable[float] = (0.5, 0.95)) -> dict[str, float]:
        """Skew percentiles (upper bin edge, 0.05 ms bins) and the exact maximum, in ms."""
        out: dict[str, float] = {}
        qs = list(quantiles)
        n = int(self._skew_hist.sum())
        if n:
            cum = np.cumsum(self._skew_hist)
            ranks = np.maximum(np.ceil(np.asarray(qs) * n), 1)
            edges = (np.searchsorted(cum, ranks) + 1) * SKEW_BIN_NS
            values = np.minimum(edges, self._skew_max_ns) / 1e6
        else:
            values = np.full(len(qs), np.nan)
        for q, v in zip(qs, values, strict=True):
            out[f"p{100 * q:g}"] = float(v)
        out["max"] = self._skew_max_ns / 1e6 if n else float("nan")
        return out

    def summary(self) -> dict:
        """Plain-Python counts (JSON-ready): totals, per-camera dicts and skew in ms."""
        per_cam = {name: {c: int(v) for c, v in zip(self.cameras, getattr(self, name), strict=True)}
                   for name in ("frames", "missing", "received", "late", "dropped", "duplicates", "seq_resets")}
        return {"sets": self.sets, "complete": self.complete, "partial": self.partial, **per_cam,
                "skew_ms": self.skew_ms()}

    def __str__(self) -> str:
        def worst(name: str) -> str:
            counts = getattr(self, name)
            total = int(counts.sum())
            if not total:
                return f"{name} 0"
            cams = " ".join(f"{c}:{int(v)}" for c, v in zip(self.cameras, counts, strict=True) if v)
            return f"{name} {total} ({cams})"

        skew = self.skew_ms()
        return (f"sets {self.sets} ({self.complete} complete, {self.partial} partial) | skew p50 "
                f"{skew['p50']:.1f} p95 {skew['p95']:.1f} max {skew['max']:.1f} ms | "
                + " | ".join(worst(n) for n in ("dropped", "late", "duplicates")))
