"""Reading a recorded session's videos back: the frame index (``video/<camera>.csv`` joined with the segment
files), the stored frames in order, and any one frame by camera and seq.

    with SessionVideo("sessions/take1") as video:
        for cam in video.cameras:
            for seq, t_ns, data in video.iter_frames(cam):   # data: JPEG bytes as recorded, or an image
                ...
        image = video.frame("cam0", 42)                      # BGR (or gray) uint8, decoded

What comes back, by how the segment was written (``capture.segment_writer``):

- Matroska with codec mjpeg (PyAV, the default recorder backend): the JPEG **bytes** of each packet, exactly the
  bytes the camera sent: nothing is decoded or re-encoded, so a replay republishes the recorded JPEGs.
- Matroska with FFV1 (raw ``bgr8``/``gray8`` frames): decoded with PyAV to BGR [H, W, 3] or gray [H, W].
- AVI (the ``cv2`` backend: JPEGs decoded and re-encoded as MJPG), or any segment when PyAV is missing: decoded
  with ``cv2.VideoCapture`` to BGR images.

The CSV is the index: row k of segment s is the k-th frame of ``<camera>_<s>.*``. What a crash leaves is read as
far as it goes, with a ``SessionWarning`` per problem and never an exception: rows whose segment file is
missing are skipped (the camera's other segments still read), a partial last CSV line is skipped, a truncated
segment yields the frames it still holds, and a segment that does not open or demux (corrupt) is skipped.
``frame()`` on a frame that cannot be read raises ``SessionError`` naming the file. A folder with neither
``session.toml`` nor ``video/<camera>.csv`` is not a session: ``SessionError``.

A session killed before it closed has no ``session.toml``: its cameras then come from the CSVs, its rate from
the timestamps. For simulated sessions, ``truth(camera)`` rebuilds each frame's ``truth`` header field (what a
simulated camera sent) from ``truth/poses3d.npz``, ``report/capture_stats.json`` and ``sync.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from capture.segment_writer import CSV_HEADER, list_segments

try:  # PyAV: the recorded JPEG packets as bytes; without it every segment is decoded with OpenCV
    import av
except ImportError:  # pragma: no cover - exercised by monkeypatching av = None in the tests
    av = None

__all__ = ["FrameIndex", "SessionError", "SessionFrame", "SessionVideo", "SessionWarning", "decode_frame"]


class SessionError(ValueError):
    """A folder that is not a session, or a frame that cannot be read: says which file and what to do."""


class SessionWarning(UserWarning):
    """Something of a session that cannot be read (a missing or corrupt segment, a damaged CSV row); the rest is."""


class SessionFrame(NamedTuple):
    """One stored frame: seq and t_ns from the CSV; ``data`` JPEG bytes as recorded, or a decoded uint8 image."""

    seq: int
    t_ns: int
    data: bytes | np.ndarray


@dataclass(frozen=True)
class FrameIndex:
    """One camera's frames as the CSV lists them (rows whose segment file is missing left out), in file order.

    ``pts``: each frame's Matroska timestamp (ms from its segment's first frame), as the writer computed it."""

    camera: str
    seq: np.ndarray  # int64 [N]
    t_ns: np.ndarray  # int64 [N]
    segment: np.ndarray  # int64 [N]
    frame_in_segment: np.ndarray  # int64 [N]
    pts: np.ndarray  # int64 [N]
    segments: dict[int, Path]  # segment number -> file, for every segment the rows name that exists

    def __len__(self) -> int:
        return len(self.seq)

    @property
    def duration_ns(self) -> int:
        return int(self.t_ns.max() - self.t_ns.min()) if len(self) else 0


def decode_frame(data: bytes | np.ndarray) -> np.ndarray:
    """A stored frame as an image: JPEG bytes decoded to BGR, images returned as they are."""
    if isinstance(data, np.ndarray):
        return data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SessionError("a stored JPEG frame does not decode (damaged file?)")
    return image


def _writer_pts(t_ns: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Matroska pts of each row: ms since its segment's first frame, strictly increasing (as the writer did)."""
    pts = np.zeros(len(t_ns), np.int64)
    t0: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, (t, s) in enumerate(zip(t_ns.tolist(), segment.tolist(), strict=True)):
        base = t0.setdefault(s, t)
        p = max(round((t - base) / 1e6), last.get(s, -1) + 1)
        last[s] = pts[i] = p
    return pts


class SessionVideo:
    """A session folder's recorded video: cameras, per-camera frame index, frames in order, random access.

    Holds at most one open segment per camera for ``frame()``; ``close()`` (or ``with``) releases them."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            what = "is a file, not a session folder" if self.folder.exists() else "does not exist"
            raise SessionError(f"{self.folder} {what}; give the folder `mocap record --out` wrote")
        video = self.folder / "video"
        csvs = sorted(p.stem for p in video.glob("*.csv")) if video.is_dir() else []
        toml = self.folder / "session.toml"
        if not toml.exists() and not csvs:
            raise SessionError(f"{self.folder}: not a session folder (no session.toml and no video/<camera>.csv); "
                               f"give the folder `mocap record --out` wrote")
        self.info = None
        self.rig = None
        if toml.exists():
            from rigs.formats import load_rig
            from rigs.session_file import read_session_info

            try:
                self.info = read_session_info(self.folder)
                self.rig = load_rig(toml)
            except Exception as exc:  # noqa: BLE001 - a damaged record must not hide the video
                warnings.warn(f"{toml}: cannot be read ({exc}); cameras and rate are taken from video/*.csv",
                              SessionWarning, stacklevel=2)
        else:
            warnings.warn(f"{self.folder}: no session.toml (the recording did not finish?); cameras and rate "
                          f"are taken from video/*.csv", SessionWarning, stacklevel=2)
        names = list(self.rig.names) if self.rig is not None else []
        self.cameras: tuple[str, ...] = tuple(names + [c for c in csvs if c not in names])
        if not self.cameras:
            raise SessionError(f"{self.folder}: the session names no cameras")
        self._index: dict[str, FrameIndex] = {}
        self._open: dict[str, tuple[Path, object]] = {}
        self._truth: dict[str, dict[int, dict]] | None = None
        self.fps = self._rate()

    # --- the index -----------------------------------------------------------------------------
    def index(self, camera: str) -> FrameIndex:
        """The camera's frame index (read once); warns about rows it cannot use."""
        self._check_camera(camera)
        if camera not in self._index:
            self._index[camera] = self._read_index(camera)
        return self._index[camera]

    @property
    def num_frames(self) -> dict[str, int]:
        return {c: len(self.index(c)) for c in self.cameras}

    @property
    def t_range_ns(self) -> tuple[int, int] | None:
        """(first, last) t_ns over every camera's indexed frames; None when nothing was recorded."""
        spans = [(int(ix.t_ns.min()), int(ix.t_ns.max())) for ix in map(self.index, self.cameras) if len(ix)]
        return (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None

    def sync(self):
        """``sync.csv`` as ``capture.sync.read_sync_csv`` returns it; SessionError when absent."""
        from capture.sync import read_sync_csv

        path = self.folder / "sync.csv"
        if not path.exists():
            raise SessionError(f"{self.folder}: no sync.csv")
        return read_sync_csv(path)

    # --- frames --------------------------------------------------------------------------------
    def iter_frames(self, camera: str) -> Iterator[SessionFrame]:
        """Every readable frame of the camera in recorded order: JPEG bytes as stored, or decoded images."""
        ix = self.index(camera)
        order = np.lexsort((ix.frame_in_segment, ix.segment))
        bounds = np.flatnonzero(np.diff(ix.segment[order])) + 1
        for rows in np.split(order, bounds) if len(order) else []:
            seg = int(ix.segment[rows[0]])
            yield from self._read_segment(ix, ix.segments[seg], rows)

    def frame(self, camera: str, seq: int, t_ns: int | None = None) -> np.ndarray:
        """The decoded image of the camera's frame ``seq`` (``t_ns`` picks one when a restarted camera repeated
        seqs). SessionError when it is not indexed or its segment cannot be read there."""
        return decode_frame(self.frame_data(camera, seq, t_ns))

    def frame_data(self, camera: str, seq: int, t_ns: int | None = None) -> bytes | np.ndarray:
        """Like ``frame`` but as stored: JPEG bytes for mjpeg Matroska segments."""
        ix = self.index(camera)
        hits = np.flatnonzero(ix.seq == seq)
        if t_ns is not None:
            hits = hits[ix.t_ns[hits] == t_ns]
        if len(hits) == 0:
            raise SessionError(f"{self.folder}: camera {camera!r} has no readable frame with seq {seq}"
                               + ("" if t_ns is None else f" and t_ns {t_ns}"))
        if len(hits) > 1:
            raise SessionError(f"{self.folder}: camera {camera!r}: seq {seq} occurs {len(hits)} times (the camera "
                               f"restarted); pass t_ns to pick one")
        i = int(hits[0])
        path = ix.segments[int(ix.segment[i])]
        k, pts = int(ix.frame_in_segment[i]), int(ix.pts[i])
        try:
            if av is not None and path.suffix == ".mkv":
                data = self._av_at(camera, path, pts, k)
            else:
                data = self._cv2_at(path, k)
        except SessionError:
            raise
        except Exception as exc:  # noqa: BLE001 - av/cv2 errors on a damaged file
            raise SessionError(f"{path}: cannot read frame {k} (seq {seq}): {exc}; the file is damaged") from None
        if data is None:
            raise SessionError(f"{path}: frame {k} (seq {seq}) is indexed in video/{camera}.csv but not in the "
                               f"file (truncated by a crash?)")
        return data

    def truth(self, camera: str) -> dict[int, dict]:
        """seq -> the ``truth`` header field a simulated camera sent with that frame, rebuilt from ``truth/``,
        ``report/capture_stats.json`` and ``sync.csv``; empty for sessions without truth."""
        if self._truth is None:
            self._truth = self._read_truth()
        return self._truth.get(camera, {})

    def close(self) -> None:
        for _, container in self._open.values():
            container.close()
        self._open.clear()

    def __enter__(self) -> SessionVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------
    def _check_camera(self, camera: str) -> None:
        if camera not in self.cameras:
            raise SessionError(f"{self.folder}: no camera {camera!r}; the session has {', '.join(self.cameras)}")

    def _rate(self) -> float | None:
        if self.info is not None and self.info.fps > 0:
            return self.info.fps
        if self.rig is not None and self.rig.fps:
            return float(self.rig.fps)
        for cam in self.cameras:  # estimated from the timestamps
            dt = np.diff(self.index(cam).t_ns)
            dt = dt[dt > 0]
            if len(dt):
                return float(1e9 / np.median(dt))
        return None

    def _read_index(self, camera: str) -> FrameIndex:
        path = self.folder / "video" / f"{camera}.csv"
        rows: list[tuple[int, int, int, int]] = []
        if not path.exists():
            warnings.warn(f"{path}: missing; camera {camera!r} has no recorded frames", SessionWarning, stacklevel=3)
        else:
            with open(path, newline="", encoding="utf-8", errors="replace") as f:
                lines = list(csv.reader(f))
            if not lines or tuple(h.strip() for h in lines[0]) != CSV_HEADER:
                raise SessionError(f"{path}: not a frame index (expected the header {','.join(CSV_HEADER)}, got "
                                   f"{','.join(lines[0]) if lines else 'an empty file'})")
            bad = []
            for n, line in enumerate(lines[1:], start=2):
                try:
                    row = tuple(int(v) for v in line)
                except ValueError:
                    row = ()
                if len(row) != 4 or min(row[2:]) < 0:
                    bad.append(n)
                    continue
                rows.append(row)
            if bad:
                tail = " (a partial last line: the recording was cut off?)" if bad == [len(lines)] else ""
                warnings.warn(f"{path}: skipped {len(bad)} malformed row(s) (line {', '.join(map(str, bad[:5]))}"
                              f"{', ...' if len(bad) > 5 else ''}){tail}", SessionWarning, stacklevel=3)
        table = np.array(rows, np.int64).reshape(-1, 4)
        files = {}
        for p in list_segments(self.folder, camera):
            files.setdefault(int(p.stem.rsplit("_", 1)[1]), p)
        listed = sorted(set(table[:, 2].tolist()))
        missing = [s for s in listed if s not in files]
        if missing:
            lost = int(np.isin(table[:, 2], missing).sum())
            warnings.warn(f"{self.folder}: camera {camera!r}: segment(s) {', '.join(f'{s:04d}' for s in missing)} "
                          f"listed in video/{camera}.csv are missing from video/{camera}/; their {lost} frame(s) "
                          f"are skipped", SessionWarning, stacklevel=3)
        pts = _writer_pts(table[:, 1], table[:, 2])
        keep = ~np.isin(table[:, 2], missing)
        table, pts = table[keep], pts[keep]
        return FrameIndex(camera, table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(), table[:, 3].copy(),
                          pts, {s: files[s] for s in listed if s in files})

    def _read_segment(self, ix: FrameIndex, path: Path, rows: np.ndarray) -> Iterator[SessionFrame]:
        reader = self._av_segment if av is not None and path.suffix == ".mkv" else self._cv2_segment
        want = ix.frame_in_segment[rows].tolist()
        by_k = dict(zip(want, rows.tolist(), strict=True))
        got = 0
        try:
            for k, data in reader(path):
                i = by_k.get(k)
                if i is not None:
                    got += 1
                    yield SessionFrame(int(ix.seq[i]), int(ix.t_ns[i]), data)
                if k >= want[-1]:
                    break
        except _Unreadable as exc:
            warnings.warn(f"{path}: {exc}; its {len(rows) - got} remaining indexed frame(s) are skipped",
                          SessionWarning, stacklevel=3)
            return
        if got < len(rows):
            warnings.warn(f"{path}: holds {got} of the {len(rows)} frames video/{ix.camera}.csv lists for it "
                          f"(truncated by a crash?); the rest are skipped", SessionWarning, stacklevel=3)

    @staticmethod
    def _av_segment(path: Path) -> Iterator[tuple[int, bytes | np.ndarray]]:
        try:
            container = av.open(str(path))
            stream = container.streams.video[0]
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise _Unreadable(f"does not open as a video ({exc}); the segment is corrupt") from None
        try:
            if stream.codec_context.name == "mjpeg":
                packets = (bytes(p) for p in _until_unreadable(container.demux(stream), "reading") if p.size)
                yield from enumerate(packets)
            else:
                fmt = "gray" if stream.codec_context.pix_fmt and "gray" in stream.codec_context.pix_fmt else "bgr24"
                frames = _until_unreadable(container.decode(stream), "decoding")
                yield from enumerate(f.to_ndarray(format=fmt) for f in frames)
        finally:
            container.close()

    @staticmethod
    def _cv2_segment(path: Path) -> Iterator[tuple[int, np.ndarray]]:
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise _Unreadable("does not open as a video; the segment is corrupt")
            k = 0
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    return
                yield k, image
                k += 1
        finally:
            cap.release()

    def _container(self, camera: str, path: Path):
        held = self._open.get(camera)
        if held is not None and held[0] == path:
            return held[1]
        if held is not None:
            held[1].close()
            del self._open[camera]
        try:
            container = av.open(str(path))
            container.streams.video[0]  # noqa: B018 - IndexError when there is no video stream
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise SessionError(f"{path}: does not open as a video ({exc}); the segment is corrupt") from None
        self._open[camera] = (path, container)
        return container

    def _av_at(self, camera: str, path: Path, pts: int, k: int) -> bytes | np.ndarray | None:
        """The frame with Matroska pts ``pts``: seek to the keyframe at or before it, then read forward. Without
        a usable index (a truncated file), read from the start to the k-th frame."""
        container = self._container(camera, path)
        stream = container.streams.video[0]
        mjpeg = stream.codec_context.name == "mjpeg"
        try:
            container.seek(pts, stream=stream, backward=True, any_frame=False)
            if mjpeg:
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        if packet.pts == pts:
                            return bytes(packet)
                        if packet.pts > pts:
                            break
            else:
                fmt = "gray" if stream.codec_context.pix_fmt and "gray" in stream.codec_context.pix_fmt else "bgr24"
                for frame in container.decode(stream):
                    if frame.pts == pts:
                        return frame.to_ndarray(format=fmt)
                    if frame.pts is not None and frame.pts > pts:
                        break
        except av.error.FFmpegError:
            pass
        try:  # sequential fallback
            for i, data in self._av_segment(path):
                if i == k:
                    return data
        except _Unreadable as exc:
            raise SessionError(f"{path}: {exc}") from None
        return None

    @staticmethod
    def _cv2_at(path: Path, k: int) -> np.ndarray | None:
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise SessionError(f"{path}: does not open as a video; the segment is corrupt")
            cap.set(cv2.CAP_PROP_POS_FRAMES, k)
            ok, image = cap.read()
            return image if ok else None
        finally:
            cap.release()

    def _read_truth(self) -> dict[str, dict[int, dict]]:
        npz, stats = self.folder / "truth" / "poses3d.npz", self.folder / "report" / "capture_stats.json"
        if not (npz.exists() and stats.exists() and (self.folder / "sync.csv").exists()):
            return {}
        try:
            params = json.loads(stats.read_text()).get("truth") or {}
            seed, people, seconds, fps = (params[k] for k in ("seed", "people", "seconds", "fps"))
            with np.load(npz) as z:
                set_index, frame, sim_frame = (np.asarray(z[k], np.int64) for k in ("set_index", "frame", "sim_frame"))
            sets, _, seqs, cams = self.sync()
        except Exception as exc:  # noqa: BLE001 - truth is optional: replay goes on without it
            warnings.warn(f"{self.folder}: cannot rebuild the frames' truth ({exc}); frames go out without it",
                          SessionWarning, stacklevel=3)
            return {}
        if seed is None:
            return {}
        by_set = {int(s): (int(f), int(sf)) for s, f, sf in zip(set_index, frame, sim_frame, strict=True) if sf >= 0}
        out: dict[str, dict[int, dict]] = {c: {} for c in cams}
        for row, s in enumerate(sets.tolist()):
            hit = by_set.get(s)
            if hit is None:
                continue
            truth = {"frame": hit[0], "sim_frame": hit[1], "t_sim_ns": round(hit[0] * 1e9 / float(fps)),
                     "people": int(people), "seed": int(seed), "seconds": float(seconds), "fps": float(fps)}
            for c, cam in enumerate(cams):
                if seqs[row, c] >= 0:
                    out[cam][int(seqs[row, c])] = truth
        return out


class _Unreadable(Exception):
    """A segment that does not open or stops reading (internal: turned into a SessionWarning or SessionError)."""


def _until_unreadable(items, doing: str):
    """Items of a PyAV iterator; an FFmpeg error mid-stream becomes _Unreadable saying how far it got."""
    import av

    k = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            raise _Unreadable(f"stops {doing} after {k} frame(s) ({exc})") from None
        k += 1
        yield item
