"""A video file as a camera (``file:path``): decoded with OpenCV, timed by its timestamps sidecar or its
frame rate, paced at the recorded rate or as fast as it decodes, optionally looping.

Any codec the OpenCV wheel reads works (H.264, HEVC, VP9, MJPEG, mp4v, FFV1). The first frame is decoded
when the source opens, so a missing, corrupt or undecodable file fails there with a ``SourceError`` that
names it. A decode failure later in the file ends the stream (OpenCV cannot tell it from the end), with a
warning when the container promised more frames.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from capture.sources.frame_source import SourceError, SourceWarning, as_frame_image
from capture.sources.playback import RecordedSource
from rigs.camera import Camera


class VideoFileSource(RecordedSource):
    """Frames of one video file, stamped on the rig's clock from the first ``read()``."""

    def __init__(self, camera: Camera, path: str | Path, *, clock: str = "monotonic", pace: bool = True,
                 loop: bool = False, timestamps: str | Path | None = None):
        path = Path(path).expanduser()
        self.path = path
        self.what = f"video file {path}"
        if not path.is_file():
            why = "is a folder (name a folder of images without 'file:')" if path.is_dir() else "does not exist"
            raise SourceError(f"camera {camera.name!r}: video file {path} {why}")
        super().__init__(camera, path, clock=clock, pace=pace, loop=loop, timestamps=timestamps)
        self._cap = self._open()
        self.declared_frames = int(max(0, self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        first = self._decode_next()
        if first is None:
            self._cap.release()
            raise SourceError(f"camera {camera.name!r}: video file {path} opens but no frame decodes "
                              f"(corrupt, empty, or a codec OpenCV cannot read); re-encode it or check it "
                              f"with `ffprobe {path}`")
        self._start(first, self._cap.get(cv2.CAP_PROP_FPS))

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.name!r}: cannot open video file {self.path} (corrupt, truncated, "
                              f"or not a video OpenCV reads); check it with `ffprobe {self.path}`")
        return cap

    def _decode_next(self) -> np.ndarray | None:
        try:
            ok, image = self._cap.read()
        except cv2.error as e:
            raise SourceError(f"camera {self.name!r}: video file {self.path}: decode error at frame "
                              f"{self._index} ({e})") from None
        if not ok or image is None:
            promised = self.declared_frames
            if promised and self.passes == 0 and self._index < promised - 1:
                warnings.warn(f"camera {self.name!r}: video file {self.path} ended after {self._index} frames; "
                              f"its header says {promised} (damaged near the end?)", SourceWarning, stacklevel=3)
            return None
        try:
            return as_frame_image(image)
        except ValueError as e:
            raise SourceError(f"camera {self.name!r}: video file {self.path}: {e}") from None

    def _rewind(self) -> None:
        self._cap.release()
        self._cap = self._open()

    def _release(self) -> None:
        self._cap.release()
