"""Live cameras through OpenCV: V4L2 devices (``device:N``, ``/dev/videoN``), network streams
(``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``) and GStreamer pipelines (any source with ``!``).

The rig file's width, height and fps are requested (devices only: a stream or a pipeline decides its own
format), then read back; when the camera gives something else, a ``SourceWarning`` names the camera,
what was asked and what it gives, and the source reports what it gives. A frame is stamped on the rig's
clock the moment ``grab()`` returns, before it is decoded. A failed grab or decode raises ``SourceError``;
the caller may call ``read()`` again (the capture is kept) or close and reopen the source.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from capture.sources.frame_source import (
    SourceError,
    SourceFrame,
    SourceWarning,
    as_frame_image,
    clock_function,
    image_size,
)
from rigs.camera import Camera

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
CaptureFactory = Callable[[Any, int], Any]  # (index, path, URL or pipeline; cv2.CAP_* backend) -> capture


def is_opencv_source(source: str) -> bool:
    return (source.startswith("device:") or source.startswith("/dev/video") or "!" in source
            or source.lower().startswith(STREAM_SCHEMES))


def capture_target(source: str) -> tuple[int | str, int, str]:
    """(what to open, OpenCV backend, kind) for an OpenCV source string; ValueError when it is none."""
    v4l2 = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    if source.startswith("device:"):
        index = source.removeprefix("device:").strip()
        if not index.isdigit():
            raise ValueError(f"device source {source!r}: expected device:N with N a camera index, e.g. device:0")
        return int(index), v4l2, "device"
    if source.startswith("/dev/video"):
        return source, v4l2, "device"
    if "!" in source:
        return source, cv2.CAP_GSTREAMER, "pipeline"
    if source.lower().startswith(STREAM_SCHEMES):
        return source, cv2.CAP_FFMPEG, "stream"
    raise ValueError(f"{source!r} is not an OpenCV camera source (device:N, /dev/videoN, rtsp://..., "
                     f"or a GStreamer pipeline with '!')")


def _device_hint(target: int | str) -> str:
    node = Path(f"/dev/video{target}") if isinstance(target, int) else Path(target)
    if sys.platform.startswith("linux") and not node.exists():
        return f"{node} does not exist: is the camera plugged in? `v4l2-ctl --list-devices` lists the cameras"
    return f"{node} exists but does not open: is another program using it, or is it not a capture node?"


class OpenCVCameraSource:
    """A live camera read with ``cv2.VideoCapture``. ``capture_factory(target, backend)`` makes the capture
    (``cv2.VideoCapture`` by default; tests inject a fake). ``fourcc`` is requested from devices before the
    size (MJPG lets USB cameras reach 1080p30); None leaves the camera's default."""

    def __init__(self, camera: Camera, *, clock: str = "monotonic", capture_factory: CaptureFactory | None = None,
                 fourcc: str | None = "MJPG"):
        self.camera = camera
        self.name = camera.name
        self.source = camera.source
        self.target, self.backend, self.kind = capture_target(camera.source)
        self._clock = clock_function(clock)
        factory = capture_factory or cv2.VideoCapture
        where = f"camera {self.name!r} ({self.source})"
        try:
            self._cap = factory(self.target, self.backend)
        except (cv2.error, OSError) as e:
            raise SourceError(f"{where}: cannot open it ({e})") from None
        if not self._cap.isOpened():
            self._cap.release()
            hint = {"device": _device_hint(self.target),
                    "stream": "is the address right and the stream up (try it in `ffplay`)?",
                    "pipeline": "does the pipeline run in `gst-launch-1.0` and end in appsink, and was this "
                                "OpenCV built with GStreamer?"}[self.kind]
            raise SourceError(f"{where}: cannot open it; {hint}")
        if self.kind == "device":
            self._request(fourcc)
        self.width, self.height, self.fps = self._readback()
        self._check_readback()
        self._first = True
        self._closed = False
        self.frames = 0

    def _request(self, fourcc: str | None) -> None:
        cam, cap = self.camera, self._cap
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cam.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cam.height)
        if cam.fps:
            cap.set(cv2.CAP_PROP_FPS, cam.fps)

    def _readback(self) -> tuple[int, int, float]:
        cap = self._cap
        w, h = int(round(cap.get(cv2.CAP_PROP_FRAME_WIDTH))), int(round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if w <= 0 or h <= 0:  # the backend does not say: trust the rig until the first frame tells
            w, h = self.camera.width, self.camera.height
        if not fps > 0:
            fps = float(self.camera.fps or 0.0)
        return w, h, fps

    def _check_readback(self) -> None:
        cam = self.camera
        asked, gives = f"{cam.width}x{cam.height}", f"{self.width}x{self.height}"
        if cam.fps:
            asked, gives = f"{asked} at {cam.fps:g} fps", f"{gives} at {self.fps:g} fps"
        rate_differs = bool(cam.fps) and abs(self.fps - cam.fps) > 0.01 * cam.fps
        if (self.width, self.height) != (cam.width, cam.height) or rate_differs:
            warnings.warn(f"camera {self.name!r} ({self.source}): the rig asks for {asked}, the camera gives "
                          f"{gives}; frames are delivered as the camera gives them", SourceWarning, stacklevel=3)

    def read(self) -> SourceFrame:
        where = f"camera {self.name!r} ({self.source})"
        if self._closed:
            raise SourceError(f"{where}: the source is closed")
        try:
            if not self._cap.grab():
                raise SourceError(f"{where}: no frame (unplugged, or the stream stopped)")
            t_ns = self._clock()
            ok, image = self._cap.retrieve()
        except cv2.error as e:
            raise SourceError(f"{where}: capture failed ({e})") from None
        if not ok or image is None:
            raise SourceError(f"{where}: a frame did not decode")
        try:
            image = as_frame_image(image)
        except ValueError as e:
            raise SourceError(f"{where}: {e}") from None
        if self._first:
            self._first = False
            if image_size(image) != (self.width, self.height):
                warnings.warn(f"{where}: frames are {image.shape[1]}x{image.shape[0]}, the camera reported "
                              f"{self.width}x{self.height}", SourceWarning, stacklevel=2)
                self.width, self.height = image_size(image)
        self.frames += 1
        return SourceFrame(image, t_ns)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
