"""Recorded frames played back as a camera: the timing, looping and end of stream shared by video files
and image folders.

Frame k of a pass is stamped ``start + offset(k)`` on the rig's clock, where ``start`` is the moment of the
first ``read()`` and ``offset(k)`` comes from the timestamps sidecar (``t_ns[k] - t_ns[0]``) or else from the
frame rate (``k / fps``). Paced, ``read()`` returns frame k no earlier than ``offset(k)`` after the start
(measured on ``time.monotonic_ns()``); unpaced, it returns as fast as frames decode, with the same stamps.
Looping starts the next pass one frame period after the last frame of the previous one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from capture.sources.frame_source import (
    EndOfStream,
    SourceError,
    SourceFrame,
    SourceWarning,
    Timeline,
    image_size,
)
from capture.sources.timestamps_sidecar import find_sidecar, read_sidecar
from rigs.camera import Camera

DEFAULT_FPS = 30.0


class RecordedSource:
    """Base of the sources that play recorded frames. Subclasses set ``self.what`` (e.g. ``video file
    cam0.mp4``), implement ``_decode_next()`` (the next image of this pass, or None at its end),
    ``_rewind()`` and ``_release()``, and call ``_start(first_image, recorded_fps)`` when open."""

    what = "recording"

    def __init__(self, camera: Camera, media: Path, *, clock: str = "monotonic", pace: bool = True,
                 loop: bool = False, timestamps: str | Path | None = None):
        self.camera = camera
        self.name = camera.name
        self.media = Path(media)
        self.loop = loop
        self.timeline = Timeline(clock, pace)
        self.sidecar: Path | None = None
        self.stamps: np.ndarray | None = None
        if timestamps is not None:
            self.sidecar = Path(timestamps)
            if not self.sidecar.is_file():
                raise SourceError(f"camera {self.name!r}: timestamps sidecar {self.sidecar} does not exist")
        else:
            self.sidecar = find_sidecar(self.media)
        if self.sidecar is not None:
            self.stamps = read_sidecar(self.sidecar, self.media)
        self.width = self.height = 0
        self.fps = DEFAULT_FPS
        self.passes = 0  # completed passes (loops)
        self._index = 0  # next frame within this pass
        self._base_ns = 0  # offset of this pass's first frame
        self._pending: np.ndarray | None = None
        self._ended = self._closed = False
        self._warned_short_sidecar = False

    # --- set-up, for subclasses ----------------------------------------------------------------------
    def _start(self, first: np.ndarray, recorded_fps: float | None) -> None:
        """Keep the first image (decoded at open to prove the media readable), settle size and rate."""
        self._pending = first
        self.width, self.height = image_size(first)
        cam = self.camera
        if (self.width, self.height) != (cam.width, cam.height):
            warnings.warn(f"camera {self.name!r}: {self.what} is {self.width}x{self.height}, the rig says "
                          f"{cam.width}x{cam.height}; frames are delivered at {self.width}x{self.height}",
                          SourceWarning, stacklevel=4)
        if self.stamps is not None and self.stamps.size >= 2 and np.median(np.diff(self.stamps)) > 0:
            recorded_fps = 1e9 / float(np.median(np.diff(self.stamps)))
        elif not recorded_fps or not np.isfinite(recorded_fps) or recorded_fps <= 0:
            recorded_fps = cam.fps or DEFAULT_FPS
        self.fps = float(recorded_fps)
        if cam.fps and abs(self.fps - cam.fps) > 0.01 * cam.fps:
            warnings.warn(f"camera {self.name!r}: {self.what} was recorded at {self.fps:.3g} fps, the rig says "
                          f"{cam.fps:.3g} fps; it plays at the recorded rate", SourceWarning, stacklevel=4)

    # --- timing ------------------------------------------------------------------------------------
    @property
    def period_ns(self) -> float:
        return 1e9 / self.fps

    def offset_ns(self, k: int) -> int:
        """Recorded time of frame k of a pass since the pass's first frame."""
        s = self.stamps
        if s is None:
            return round(k * self.period_ns)
        if k < s.size:
            return int(s[k] - s[0])
        if not self._warned_short_sidecar:
            self._warned_short_sidecar = True
            warnings.warn(f"camera {self.name!r}: {self.what} has more frames than its timestamps sidecar "
                          f"{self.sidecar} has rows ({s.size}); later frames are timed at {self.fps:.3g} fps",
                          SourceWarning, stacklevel=3)
        return int(s[-1] - s[0]) + round((k - s.size + 1) * self.period_ns)

    # --- reading -----------------------------------------------------------------------------------
    def _next_image(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        return self._decode_next()

    def read(self) -> SourceFrame:
        if self._closed:
            raise SourceError(f"camera {self.name!r}: {self.what} is closed")
        if self._ended:
            raise EndOfStream(f"camera {self.name!r}: {self.what} ended")
        image = self._next_image()
        if image is None:
            if not self.loop or self._index == 0:
                self._ended = True
                raise EndOfStream(f"camera {self.name!r}: {self.what} ended after {self._index} frames")
            self._base_ns += self.offset_ns(self._index - 1) + round(self.period_ns)
            self.passes += 1
            self._index = 0
            self._rewind()
            image = self._next_image()
            if image is None:
                raise SourceError(f"camera {self.name!r}: {self.what} gave no frame when played again")
        t_ns = self.timeline.due(self._base_ns + self.offset_ns(self._index))
        self._index += 1
        return SourceFrame(image, t_ns)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pending = None
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- for subclasses ------------------------------------------------------------------------------
    def _decode_next(self) -> np.ndarray | None:
        raise NotImplementedError

    def _rewind(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        pass
