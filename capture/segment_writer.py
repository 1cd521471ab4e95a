"""One camera's video in a recording: segments that each play on their own, and a per-frame index CSV.

Layout, under a session folder::

    video/<camera>/<camera>_0000.mkv    a segment: about ``segment_s`` seconds of frames (default 60 s)
    video/<camera>/<camera>_0001.mkv    ...
    video/<camera>.csv                  seq,t_ns,segment,frame_in_segment of every frame written

A segment is closed (its trailer written, then fsynced) as soon as the next frame lies ``segment_s`` (less half
a frame period) or more after the segment's first frame, when the frame format or size changes, when timestamps
go backwards (a restarted camera), on ``poll`` after ``idle_close_s`` without frames (a dead camera), and by
``close``. So a crash or ``kill -9`` loses at most the open segment, and every closed segment plays. The CSV
is appended and flushed per frame. Nothing written is ever reopened.

How frames are stored (``backend``):

- ``"av"`` (PyAV, the default when ``av`` imports): JPEG payloads are muxed **as received**, one packet per
  frame, into Matroska (codec mjpeg), with pts from ``t_ns`` (Matroska keeps milliseconds; the exact
  nanoseconds are in the CSV). No decode, no re-encode: the bytes in the file are the camera's bytes.
  Raw frames (``bgr8``, ``gray8``) are encoded losslessly with FFV1 (``raw_codec="ffv1"``; about 50 ms per
  noisy 720p frame on one core here, so 4 x 30 fps of raw 720p does not keep up on 2 cores), or as JPEG at
  ``quality`` (``raw_codec="mjpeg"``, about 3 ms per 720p frame, lossy).
- ``"cv2"`` (the fallback without PyAV): ``cv2.VideoWriter`` at a constant ``fps``. JPEG payloads are
  decoded and re-encoded as MJPG in AVI (about 5 + 4 ms per 1080p frame and a second generation of JPEG
  loss); raw frames go to FFV1 in Matroska (lossless) or MJPG in AVI. Timestamps live only in the CSV.

Segments of either backend read back with ``cv2.VideoCapture``. Write errors (disk full, permissions) come
out of ``write`` as ``OSError``; the caller (``capture.recorder``) then closes everything and stops.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from capture.protocol import FrameMessage

try:  # PyAV: JPEG passthrough into Matroska; without it, OpenCV re-encodes
    import av
except ImportError:  # pragma: no cover - exercised by monkeypatching av = None in the tests
    av = None

CSV_HEADER = ("seq", "t_ns", "segment", "frame_in_segment")
RAW_CODECS = ("ffv1", "mjpeg")
BACKENDS = ("auto", "av", "cv2")
_MS = Fraction(1, 1000)  # Matroska's time base


@dataclass(frozen=True)
class FrameLocation:
    """Where a written frame went: segment number and frame index within that segment."""

    segment: int
    frame_in_segment: int


def segment_path(folder: str | os.PathLike, camera: str, segment: int, ext: str) -> Path:
    """``<folder>/video/<camera>/<camera>_<NNNN>.<ext>``."""
    return Path(folder) / "video" / camera / f"{camera}_{segment:04d}.{ext}"


def list_segments(folder: str | os.PathLike, camera: str) -> list[Path]:
    """A camera's segment files in a session folder, in order."""
    pattern = f"{glob.escape(camera)}_[0-9][0-9][0-9][0-9].*"
    return sorted(p for p in (Path(folder) / "video" / camera).glob(pattern)
                  if p.suffix in (".mkv", ".avi"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _decode_jpeg(msg: FrameMessage) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"camera {msg.camera!r}: seq {msg.seq}: the JPEG payload does not decode")
    return image


def _raw_image(msg: FrameMessage) -> np.ndarray:
    shape = (msg.height, msg.width, 3) if msg.format == "bgr8" else (msg.height, msg.width)
    return np.frombuffer(msg.payload, np.uint8).reshape(shape)


class _AvSegment:
    """One Matroska file written with PyAV: JPEG packets muxed as they are, or raw frames encoded."""

    ext = "mkv"

    def __init__(self, path: Path, msg: FrameMessage, raw_codec: str, quality: int, fps: float | None):
        self.path = path
        self.quality = quality
        self.passthrough = msg.format == "jpeg" or raw_codec == "mjpeg"
        self._container = av.open(str(path), "w", format="matroska")
        try:
            codec = "mjpeg" if self.passthrough else "ffv1"
            self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001)
                                                      if fps else None)
            self._stream.width, self._stream.height = msg.width, msg.height
            # PyAV opens an encoder context for every stream; for passthrough it is metadata only.
            self._stream.pix_fmt = "yuvj420p" if self.passthrough else ("bgr0" if msg.format == "bgr8" else "gray")
            self._stream.time_base = _MS
            self._stream.codec_context.time_base = _MS
        except BaseException:
            self._container.close()
            raise
        self._last_pts = -1

    def write(self, msg: FrameMessage, rel_ns: int) -> None:
        pts = max(round(rel_ns / 1e6), self._last_pts + 1)
        self._last_pts = pts
        if self.passthrough:
            if msg.format == "jpeg":
                data = msg.payload
            else:
                ok, buf = cv2.imencode(".jpg", _raw_image(msg), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise ValueError(f"camera {msg.camera!r}: seq {msg.seq}: JPEG encoding failed")
                data = buf.tobytes()
            packet = av.Packet(data)
            packet.stream = self._stream
            packet.time_base = _MS
            packet.pts = packet.dts = pts
            packet.is_keyframe = True
            self._container.mux(packet)
        else:
            frame = av.VideoFrame.from_ndarray(_raw_image(msg), format="bgr24" if msg.format == "bgr8" else "gray")
            frame.pts = pts
            frame.time_base = _MS
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def close(self) -> None:
        try:
            if not self.passthrough:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()

    def abandon(self) -> None:
        """Close without raising (after an error): whatever can still be finished is."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the file is lost either way; the first error is what matters
            pass


class _Cv2Segment:
    """One file written with cv2.VideoWriter: MJPG in AVI (JPEG decoded and re-encoded) or FFV1 in Matroska."""

    def __init__(self, path: Path, msg: FrameMessage, raw_codec: str, quality: int, fps: float | None):
        self.path = path
        ffv1 = msg.format != "jpeg" and raw_codec == "ffv1"
        fourcc = cv2.VideoWriter_fourcc(*("FFV1" if ffv1 else "MJPG"))
        self._writer = cv2.VideoWriter(str(path), fourcc, float(fps or 30.0), (msg.width, msg.height),
                                       msg.format != "gray8")
        if not ffv1:
            self._writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        if not self._writer.isOpened():
            raise OSError(f"{path}: OpenCV could not open a video writer here")

    def write(self, msg: FrameMessage, rel_ns: int) -> None:
        image = _decode_jpeg(msg) if msg.format == "jpeg" else _raw_image(msg)
        if image.ndim == 2 and msg.format == "jpeg":
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()

    abandon = close


class SegmentWriter:
    """Writes one camera's frames into ``video/<camera>/`` segments of ``segment_s`` seconds and the CSV index.

    ``fps`` is a hint for players (and the frame rate of the cv2 backend). ``raw_codec``: how bgr8/gray8
    frames are stored (``ffv1`` lossless, ``mjpeg`` at ``quality``). ``backend``: ``auto`` (PyAV when
    installed), ``av`` or ``cv2``. Opening creates ``video/<camera>/`` and the CSV; any OSError propagates.
    """

    def __init__(self, folder: str | os.PathLike, camera: str, segment_s: float = 60.0, *, fps: float | None = None,
                 raw_codec: str = "ffv1", quality: int = 90, backend: str = "auto", idle_close_s: float = 2.0):
        if not segment_s > 0:
            raise ValueError(f"segment_s: expected a positive number of seconds, got {segment_s!r}")
        if raw_codec not in RAW_CODECS:
            raise ValueError(f"raw_codec: {raw_codec!r} is not one of {', '.join(RAW_CODECS)}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend == "av" and av is None:
            raise ValueError("backend 'av' needs PyAV (pip install av)")
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"quality: expected 1..100, got {quality!r}")
        self.folder = Path(folder)
        self.camera = camera
        # a segment ends half a frame early, so timestamp jitter does not move one frame across the boundary
        self.segment_ns = max(1, round(segment_s * 1e9 - (0.5e9 / fps if fps else 0)))
        self.fps = fps
        self.raw_codec = raw_codec
        self.quality = int(quality)
        self.backend = ("av" if av is not None else "cv2") if backend == "auto" else backend
        self.idle_close_ns = round(idle_close_s * 1e9)
        self.csv_path = self.folder / "video" / f"{camera}.csv"
        (self.folder / "video" / camera).mkdir(parents=True, exist_ok=True)
        self._csv_file = open(self.csv_path, "a", newline="")  # noqa: SIM115 - closed by close()
        self._csv = csv.writer(self._csv_file)
        if self._csv_file.tell() == 0:
            self._csv.writerow(CSV_HEADER)
            self._csv_file.flush()
        # counts, for reports
        self.frames = 0
        self.payload_bytes = 0
        self.dropped = 0  # seq gaps: 10 then 13 counts 2
        self.seq_resets = 0  # seq went down: the camera restarted
        self.first_t_ns: int | None = None
        self.last_t_ns: int | None = None
        self.closed_segments: list[Path] = []
        self.abandoned_segments: list[Path] = []  # open when an error stopped the writer: maybe unreadable
        self._next_segment = 0
        self._open: _AvSegment | _Cv2Segment | None = None
        self._open_index = -1
        self._open_frames = 0
        self._open_t0 = 0
        self._open_key: tuple | None = None
        self._last_seq: int | None = None
        self._last_write_now: int | None = None
        self._closed = False

    # --- public API ----------------------------------------------------------------------------
    @property
    def open_segment(self) -> Path | None:
        return None if self._open is None else self._open.path

    @property
    def segments(self) -> list[Path]:
        """Every segment file started, closed or open, in order."""
        return (self.closed_segments + self.abandoned_segments
                + ([self._open.path] if self._open is not None else []))

    def write(self, msg: FrameMessage, now_ns: int | None = None) -> FrameLocation:
        """Write one frame (starting a new segment when due); append its CSV row. OSError on write failures."""
        if self._closed:
            raise ValueError(f"camera {self.camera!r}: the segment writer is closed")
        if msg.camera != self.camera:
            raise ValueError(f"segment writer for camera {self.camera!r} got a frame of {msg.camera!r}")
        key = (msg.format, msg.width, msg.height)
        if self._open is not None and (key != self._open_key or msg.t_ns < self.last_t_ns
                                       or msg.t_ns - self._open_t0 >= self.segment_ns):
            self.close_segment()
        if self._open is None:
            self._start(msg, key)
        self._open.write(msg, msg.t_ns - self._open_t0)
        location = FrameLocation(self._open_index, self._open_frames)
        self._open_frames += 1
        self._csv.writerow((msg.seq, msg.t_ns, location.segment, location.frame_in_segment))
        self._csv_file.flush()
        self._count(msg)
        self._last_write_now = now_ns
        return location

    def poll(self, now_ns: int) -> bool:
        """Close the open segment when no frame came for ``idle_close_s`` (a stopped camera); True if closed."""
        if (self._open is not None and self._last_write_now is not None
                and now_ns - self._last_write_now >= self.idle_close_ns):
            self.close_segment()
            return True
        return False

    def close_segment(self) -> None:
        """Finish the open segment (trailer, fsync); the next frame starts a new one."""
        seg, self._open = self._open, None
        if seg is None:
            return
        try:
            seg.close()
        except BaseException:
            seg.abandon()
            if seg.path.exists():
                self.abandoned_segments.append(seg.path)
            raise
        self.closed_segments.append(seg.path)
        _fsync(seg.path)
        os.fsync(self._csv_file.fileno())

    def close(self) -> None:
        """Close the open segment and the CSV. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.close_segment()
        finally:
            self._csv_file.close()

    def abort(self) -> None:
        """After an error: close what can be closed, raising nothing."""
        self._closed = True
        seg, self._open = self._open, None
        if seg is not None:
            seg.abandon()
            if seg.path.exists():
                self.abandoned_segments.append(seg.path)
        try:
            self._csv_file.close()
        except OSError:
            pass

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.segments if p.exists())

    def summary(self) -> dict:
        """Plain-Python counts for reports."""
        return {"frames": self.frames, "segments": len(self.segments), "payload_bytes": self.payload_bytes,
                "bytes_on_disk": self.bytes_on_disk(), "dropped": self.dropped, "seq_resets": self.seq_resets,
                "first_t_ns": self.first_t_ns, "last_t_ns": self.last_t_ns, "backend": self.backend}

    # --- internals -----------------------------------------------------------------------------
    def _start(self, msg: FrameMessage, key: tuple) -> None:
        index = self._next_segment
        cls = _AvSegment if self.backend == "av" else _Cv2Segment
        ext = "mkv" if self.backend == "av" or (msg.format != "jpeg" and self.raw_codec == "ffv1") else "avi"
        path = segment_path(self.folder, self.camera, index, ext)
        if path.exists():
            raise FileExistsError(f"{path}: already exists; a recording never overwrites a segment")
        self._open = cls(path, msg, self.raw_codec, self.quality, self.fps)
        self._next_segment = index + 1
        self._open_index, self._open_frames, self._open_t0, self._open_key = index, 0, msg.t_ns, key

    def _count(self, msg: FrameMessage) -> None:
        self.frames += 1
        self.payload_bytes += len(msg.payload)
        if self.first_t_ns is None:
            self.first_t_ns = msg.t_ns
        self.last_t_ns = msg.t_ns
        last = self._last_seq
        if last is not None:
            if msg.seq > last + 1:
                self.dropped += msg.seq - last - 1
            elif msg.seq <= last:
                self.seq_resets += 1
        self._last_seq = msg.seq
