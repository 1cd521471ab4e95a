"""Timestamps sidecars of recorded videos and image folders: per-frame capture times in a CSV file.

Two layouts are read: ``frame,t_ns`` (one row per frame of one video or folder) and the session layout
``seq,t_ns,segment`` (``sessions/<name>/video/<camera>.csv``: every frame the recorder wrote, over all of
that camera's segment files), from which the rows of one segment are picked. Any CSV with a header naming
a ``t_ns`` column is accepted; rows are taken in file order, the k-th row stamping the k-th frame.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from capture.sources.frame_source import SourceError

_DIGITS = re.compile(r"\d+")


def find_sidecar(media: Path) -> Path | None:
    """The sidecar of a video file or image folder, if one exists: ``cam0.csv`` or ``cam0.mp4.csv`` beside a
    video, ``<folder>.csv`` beside a folder, or the session layout's ``video/<camera>.csv`` for a segment
    ``video/<camera>/<segment>``."""
    candidates = [Path(str(media) + ".csv")]
    if media.suffix:
        candidates.insert(0, media.with_suffix(".csv"))
    for path in candidates:
        if path.is_file() and path != media:
            return path
    session = media.parent.parent / f"{media.parent.name}.csv"
    if media.is_file() and session.is_file() and "segment" in _header(session):
        return session
    return None


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError):
        return []


def _same_segment(value: str, media: Path) -> bool:
    """Whether a sidecar's segment field names this file: its name, its stem, or the same number."""
    value = value.strip()
    if value in (media.name, media.stem, str(media)):
        return True
    mine, theirs = _DIGITS.findall(media.stem), _DIGITS.findall(value)
    return bool(mine and theirs and value.isdigit() and int(theirs[-1]) == int(mine[-1]))


def read_sidecar(path: str | Path, media: Path) -> np.ndarray:
    """Capture times int64 [N] of the frames of ``media`` (a video file or image folder), in frame order,
    from the sidecar CSV ``path``; SourceError naming the sidecar when it cannot be used."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"timestamps sidecar {path}: cannot read it ({e})") from None
    if not rows:
        raise SourceError(f"timestamps sidecar {path}: empty; expected a header 'frame,t_ns' (or 'seq,t_ns,segment')")
    header = [h.strip() for h in rows[0]]
    if "t_ns" not in header:
        raise SourceError(f"timestamps sidecar {path}: no t_ns column in the header {rows[0]}; "
                          f"expected 'frame,t_ns' (or 'seq,t_ns,segment')")
    col = header.index("t_ns")
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if "segment" in header:
        seg = header.index("segment")
        segments = {r[seg].strip() for r in body if len(r) > seg}
        if len(segments) > 1:
            body = [r for r in body if len(r) > seg and _same_segment(r[seg], media)]
            if not body:
                raise SourceError(f"timestamps sidecar {path}: no rows for segment {media.name} "
                                  f"(segments there: {', '.join(sorted(segments)[:5])}...)")
    try:
        t = np.array([int(r[col]) for r in body], dtype=np.int64)
    except (ValueError, IndexError, OverflowError):
        raise SourceError(f"timestamps sidecar {path}: t_ns must be whole nanoseconds in every row") from None
    if t.size == 0:
        raise SourceError(f"timestamps sidecar {path}: has a header but no rows")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        raise SourceError(f"timestamps sidecar {path}: t_ns goes backwards after frame {int(back[0])}")
    return t
