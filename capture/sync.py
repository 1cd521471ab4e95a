"""Frame sync: group frames from every camera of a rig into FrameSets, and the session's ``sync.csv``.

Two syncers share one emission API, ``push(frame, now_ns)``, ``poll(now_ns)`` and ``flush()``, each returning
the FrameSets that became final, in time order, with consecutive indices from 0:

- ``TimestampSync`` matches capture timestamps: a frame joins the open set whose time is within
  ``tolerance_ns``, else opens a new set.
- ``IndexSync`` matches frame seqs, for hardware-triggered rigs.

An open set is emitted when it is complete, when every missing camera has already sent a later frame
(cameras deliver their own frames in order, so a dropped frame does not hold the set), or when its deadline
passes: ``deadline_ns`` after its first frame arrived (``now_ns``, the caller's clock). Counting from arrival
rather than capture time means a receiver catching up on a backlog does not split sets, and a camera whose
clock runs ahead cannot hold sets open. A dead camera therefore delays sets by at most ``deadline_ns``.

Frames are never lost silently. A frame whose set was already emitted without its camera (or that is older
than the last emitted set) is LATE: counted per camera in ``stats.late`` and handed to
``on_discard(frame, "late")``. A second frame from one camera for one set is a DUPLICATE: while the set is
open the one closer in time to the set's other members is kept; once the set went out (the frame matched the
last emitted set, which has its camera) the newcomer is dropped. The dropped frame is counted in
``stats.duplicates`` and handed to ``on_discard(frame, "duplicate")``. So every pushed frame ends in exactly
one emitted set or in one discard. The callback is the caller's to use (a recorder still writes every frame
to video; sync.csv only indexes the sets).

Clocks: camera timestamps must share one clock (the rig's). Cameras whose clocks differ are handled only by
the measured per-camera ``offsets_ns`` (from the rig file), subtracted from that camera's timestamps; set
times, skews and matching use the corrected times, while ``FrameRef.t_ns`` keeps what the camera sent.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from capture.sync_stats import SyncStats

Discard = Callable[["FrameRef", str], None]


@dataclass(frozen=True)
class FrameRef:
    """One received frame: camera name, sequence number, capture time (ns) and the caller's payload."""

    camera: str
    seq: int
    t_ns: int
    payload: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FrameSet:
    """Frames of one instant: every camera of the rig mapped to its FrameRef or None when missing.

    ``t_ns`` is the median of the members' (offset-corrected) times, ``skew_ns`` their max - min.
    """

    index: int
    t_ns: int
    frames: Mapping[str, FrameRef | None]
    skew_ns: int = 0

    @property
    def complete(self) -> bool:
        return all(f is not None for f in self.frames.values())

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(c for c, f in self.frames.items() if f is None)

    @property
    def seqs(self) -> tuple[int | None, ...]:
        """Each camera's seq in rig order, None where missing."""
        return tuple(None if f is None else f.seq for f in self.frames.values())


def _median(values: Sequence[int]) -> int:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2


class _Open:
    """A set being assembled: members camera -> (frame, corrected time), its slot key and arrival time."""

    __slots__ = ("key", "members", "opened_ns", "t_ns")

    def __init__(self, key: int, opened_ns: int) -> None:
        self.key = key
        self.opened_ns = opened_ns
        self.members: dict[str, tuple[FrameRef, int]] = {}
        self.t_ns = 0

    def times(self, skip: str | None = None) -> list[int]:
        return [t for c, (_, t) in self.members.items() if c != skip]


class _Syncer:
    """Open-set bookkeeping and emission shared by both syncers; subclasses place each frame."""

    def __init__(self, cameras: Sequence[str], deadline_ns: int, offsets_ns: Mapping[str, int],
                 on_discard: Discard | None) -> None:
        cams = tuple(cameras)
        if not cams or not all(isinstance(c, str) and c for c in cams):
            raise ValueError(f"sync: expected a non-empty list of camera names, got {cameras!r}")
        if len(set(cams)) != len(cams):
            raise ValueError(f"sync: camera names must be unique, got {cams}")
        unknown = sorted(set(offsets_ns) - set(cams))
        if unknown:
            raise ValueError(f"sync: offsets given for cameras not in the rig: {', '.join(unknown)}")
        if deadline_ns < 0:
            raise ValueError(f"sync: deadline_ns must be >= 0, got {deadline_ns}")
        self.cameras = cams
        self.deadline_ns = int(deadline_ns)
        self.offsets_ns = {c: int(offsets_ns.get(c, 0)) for c in cams}
        self.stats = SyncStats(cams)
        self._on_discard = on_discard
        self._open: list[_Open] = []
        self._latest: dict[str, int] = {}  # per camera, the newest slot position it has sent
        self._last: _Open | None = None  # the last emitted set
        self._next_index = 0

    # --- public API ----------------------------------------------------------------------------
    def push(self, frame: FrameRef, now_ns: int) -> list[FrameSet]:
        """Add one received frame; return the sets that became final (deadlines are checked first)."""
        if frame.camera not in self.offsets_ns:
            raise ValueError(f"sync: frame from camera {frame.camera!r}, which is not one of {', '.join(self.cameras)}")
        out = self.poll(now_ns)
        self.stats.count_received(frame.camera, frame.seq, frame.t_ns)
        self._place(frame, frame.t_ns - self.offsets_ns[frame.camera], now_ns)
        out += self._emit(now_ns)
        return out

    def poll(self, now_ns: int) -> list[FrameSet]:
        """Return the sets that became final by ``now_ns`` (deadline passed)."""
        return self._emit(now_ns)

    def flush(self) -> list[FrameSet]:
        """End of stream: emit every open set, partial or not."""
        return self._emit(None)

    @property
    def pending(self) -> int:
        """Sets open, waiting for frames."""
        return len(self._open)

    # --- for subclasses ------------------------------------------------------------------------
    def _place(self, frame: FrameRef, t: int, now_ns: int) -> None:
        raise NotImplementedError

    def _passed(self, camera: str, s: _Open) -> bool:
        """True when ``camera`` has sent a frame after set ``s`` (so its frame for ``s`` will not come)."""
        raise NotImplementedError

    def _discard(self, frame: FrameRef, reason: str) -> None:
        (self.stats.count_late if reason == "late" else self.stats.count_duplicate)(frame.camera)
        if self._on_discard is not None:
            self._on_discard(frame, reason)

    def _reject(self, frame: FrameRef, in_last: bool) -> None:
        """A frame for an emitted set: a duplicate when it matched the last set, which has its camera; else late."""
        dup = in_last and self._last is not None and frame.camera in self._last.members
        self._discard(frame, "duplicate" if dup else "late")

    def _join(self, s: _Open, frame: FrameRef, t: int) -> None:
        """Put a frame in an open set; a second frame of its camera keeps the one closer to the others."""
        old = s.members.get(frame.camera)
        if old is not None:
            others = s.times(skip=frame.camera)
            ref = _median(others) if others else old[1]
            if abs(t - ref) < abs(old[1] - ref):
                s.members[frame.camera] = (frame, t)
                frame = old[0]
            self._discard(frame, "duplicate")
        else:
            s.members[frame.camera] = (frame, t)
        s.t_ns = _median(s.times())

    def _open_set(self, key: int, frame: FrameRef, t: int, now_ns: int) -> None:
        s = _Open(key, now_ns)
        self._join(s, frame, t)
        self._open.append(s)

    def _final(self, s: _Open, now_ns: int | None) -> bool:
        if now_ns is None or len(s.members) == len(self.cameras) or now_ns - s.opened_ns >= self.deadline_ns:
            return True
        return all(self._passed(c, s) for c in self.cameras if c not in s.members)

    def _emit(self, now_ns: int | None) -> list[FrameSet]:
        self._open.sort(key=lambda s: (s.key, s.t_ns))
        n = 0
        while n < len(self._open) and self._final(self._open[n], now_ns):
            n += 1
        done, self._open = self._open[:n], self._open[n:]
        out = []
        for s in done:
            times = s.times()
            frames = {c: (s.members[c][0] if c in s.members else None) for c in self.cameras}
            out.append(FrameSet(self._next_index, s.t_ns, MappingProxyType(frames), max(times) - min(times)))
            self._next_index += 1
            self._last = s
        self.stats.add_sets(out)
        return out


class TimestampSync(_Syncer):
    """Groups frames by capture time: within ``tolerance_ns`` (default half a frame period) of an open set."""

    def __init__(self, cameras: Sequence[str], fps: float, tolerance_ns: int | None = None,
                 deadline_ns: int | None = None, offsets_ns: Mapping[str, int] | None = None,
                 on_discard: Discard | None = None) -> None:
        if not (fps and np.isfinite(fps) and fps > 0):
            raise ValueError(f"TimestampSync: fps must be a positive rate, got {fps!r}")
        period = 1e9 / fps
        super().__init__(cameras, round(2 * period) if deadline_ns is None else deadline_ns, offsets_ns or {},
                         on_discard)
        self.fps = float(fps)
        self.tolerance_ns = round(period / 2) if tolerance_ns is None else int(tolerance_ns)
        if self.tolerance_ns <= 0:
            raise ValueError(f"TimestampSync: tolerance_ns must be positive, got {tolerance_ns}")

    @classmethod
    def for_rig(cls, rig, **kwargs) -> TimestampSync:
        """A syncer for a ``rigs.camera.Rig``'s cameras at its frame rate, with the rig's clock offsets."""
        if rig.fps is None:
            raise ValueError(f"rig {rig.name!r}: no camera declares an fps; pass fps= to TimestampSync")
        offsets = {c.name: c.clock_offset_ns for c in rig if c.clock_offset_ns}
        kwargs.setdefault("offsets_ns", offsets or None)
        return cls(rig.names, rig.fps, **kwargs)

    def _place(self, frame: FrameRef, t: int, now_ns: int) -> None:
        self._latest[frame.camera] = max(t, self._latest.get(frame.camera, t))
        best, best_d = None, None
        for s in self._open:
            d = abs(t - s.t_ns)
            if d <= self.tolerance_ns and (best_d is None or d < best_d):
                best, best_d = s, d
        if self._last is not None:
            d_last = abs(t - self._last.t_ns)
            if t <= self._last.t_ns or (d_last <= self.tolerance_ns and (best_d is None or d_last < best_d)):
                self._reject(frame, d_last <= self.tolerance_ns)
                return
        if best is not None:
            self._join(best, frame, t)
        else:
            self._open_set(0, frame, t, now_ns)

    def _passed(self, camera: str, s: _Open) -> bool:
        latest = self._latest.get(camera)
        return latest is not None and latest > s.t_ns + self.tolerance_ns


class IndexSync(_Syncer):
    """Groups frames by seq for hardware-triggered rigs: slot = seq - that camera's seq offset.

    Seq offsets not given are learned from each camera's first frame: with ``fps`` its timestamp places it
    relative to the first frame received (so cameras may start at different triggers); without ``fps`` every
    camera's first frame is taken to be from the same trigger as the first frame received. ``deadline_ns``
    defaults to 2 frame periods, or 100 ms without ``fps``.
    """

    def __init__(self, cameras: Sequence[str], fps: float | None = None, seq_offsets: Mapping[str, int] | None = None,
                 deadline_ns: int | None = None, offsets_ns: Mapping[str, int] | None = None,
                 on_discard: Discard | None = None) -> None:
        if fps is not None and not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"IndexSync: fps must be a positive rate, got {fps!r}")
        if deadline_ns is None:
            deadline_ns = round(2e9 / fps) if fps else 100_000_000
        super().__init__(cameras, deadline_ns, offsets_ns or {}, on_discard)
        unknown = sorted(set(seq_offsets or {}) - set(self.cameras))
        if unknown:
            raise ValueError(f"IndexSync: seq offsets given for cameras not in the rig: {', '.join(unknown)}")
        self.fps = fps
        self.seq_offsets: dict[str, int] = {c: int(v) for c, v in (seq_offsets or {}).items()}
        self._ref: tuple[int, int] | None = None  # (slot, corrected time) of the first frame received

    def _slot(self, frame: FrameRef, t: int) -> int:
        off = self.seq_offsets.get(frame.camera)
        if off is None:
            if self._ref is None:
                slot = 0
            elif self.fps:
                slot = self._ref[0] + round((t - self._ref[1]) * self.fps / 1e9)
            else:
                slot = self._ref[0]
            off = self.seq_offsets[frame.camera] = frame.seq - slot
        slot = frame.seq - off
        if self._ref is None:
            self._ref = (slot, t)
        return slot

    def _place(self, frame: FrameRef, t: int, now_ns: int) -> None:
        slot = self._slot(frame, t)
        self._latest[frame.camera] = max(slot, self._latest.get(frame.camera, slot))
        if self._last is not None and slot <= self._last.key:
            self._reject(frame, slot == self._last.key)
            return
        for s in self._open:
            if s.key == slot:
                self._join(s, frame, t)
                return
        self._open_set(slot, frame, t, now_ns)

    def _passed(self, camera: str, s: _Open) -> bool:
        latest = self._latest.get(camera)
        return latest is not None and latest > s.key


# --- sync.csv ------------------------------------------------------------------------------------
class SyncCsvWriter:
    """Appends FrameSets to a session's ``sync.csv`` (header ``set,t_ns,<cameras>``), flushing each batch."""

    def __init__(self, path: str | os.PathLike, cameras: Sequence[str]) -> None:
        self.cameras = tuple(cameras)
        self._file = open(path, "w", newline="")  # noqa: SIM115 - closed by close()/__exit__
        self._csv = csv.writer(self._file)
        self._csv.writerow(["set", "t_ns", *self.cameras])
        self._file.flush()

    def write(self, sets: Iterable[FrameSet]) -> None:
        for fs in sets:
            missing = [c for c in self.cameras if c not in fs.frames]
            if missing:
                raise ValueError(f"sync.csv: set {fs.index} has no entry for camera(s) {', '.join(missing)}")
            self._csv.writerow([fs.index, fs.t_ns, *("" if fs.frames[c] is None else fs.frames[c].seq
                                                     for c in self.cameras)])
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SyncCsvWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_sync_csv(path: str | os.PathLike, sets: Iterable[FrameSet], cameras: Sequence[str]) -> None:
    """Write ``sync.csv``: one row per FrameSet, set index, t_ns, then each camera's seq (empty if missing)."""
    with SyncCsvWriter(path, cameras) as writer:
        writer.write(sets)


def read_sync_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read ``sync.csv`` -> (set index int64 [N], t_ns int64 [N], seqs int64 [N, C] with -1 missing, cameras)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:2] != ["set", "t_ns"] or len(rows[0]) < 3:
        raise ValueError(f"{path}: not a sync.csv: expected a header 'set,t_ns,<camera>,...', "
                         f"got {','.join(rows[0]) if rows else 'an empty file'}")
    cameras = tuple(rows[0][2:])
    body = [r for r in rows[1:] if r]
    n, width = len(body), 2 + len(cameras)
    table = np.full((n, width), -1, np.int64)
    for i, row in enumerate(body):
        if len(row) != width:
            raise ValueError(f"{path}: row {i + 2}: expected {width} fields, got {len(row)}")
        try:
            table[i] = [int(v) if v != "" else -1 for v in row]
        except ValueError:
            raise ValueError(f"{path}: row {i + 2}: expected whole numbers, got {','.join(row)}") from None
        if row[0] == "" or row[1] == "":
            raise ValueError(f"{path}: row {i + 2}: the set index and t_ns are required")
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2:].copy(), cameras
