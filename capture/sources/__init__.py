"""Camera sources: where a camera node's frames come from, chosen by the camera's ``source`` in the rig file.

=====================================================  ==========================  ===========================
source                                                 class                       module
=====================================================  ==========================  ===========================
``device:N``, ``/dev/videoN``, ``rtsp://...``,         ``OpenCVCameraSource``      ``opencv_device``
GStreamer pipelines (contain ``!``)
``file:path.mp4`` (any video OpenCV reads)             ``VideoFileSource``         ``video_file``
a folder of ``.jpg``/``.png`` images                   ``ImageFolderSource``       ``image_folder``
``sim``                                                ``SimulatedCameraSource``   ``simulated``
=====================================================  ==========================  ===========================

    source = open_source(rig["cam0"], clock=rig.clock, rig=rig)
    while True:
        frame = source.read()          # SourceFrame(image, t_ns, truth); EndOfStream / SourceError
        ...
    source.close()

Every source has ``name``, ``width``, ``height`` (what it delivers, which may differ from the rig file:
that is warned about with a ``SourceWarning``) and ``fps``. Timestamps are on the rig's clock
(``frame_source``); file and folder timestamps come from a sidecar CSV when there is one
(``timestamps_sidecar``) and are played back from the first ``read()`` (``playback``).
"""

from __future__ import annotations

from pathlib import Path

from capture.sources.frame_source import (
    EndOfStream,
    FrameSource,
    SourceError,
    SourceFrame,
    SourceWarning,
    clock_function,
)
from capture.sources.image_folder import ImageFolderSource
from capture.sources.opencv_device import OpenCVCameraSource, is_opencv_source
from capture.sources.simulated import SimulatedCameraSource
from capture.sources.video_file import VideoFileSource
from rigs.camera import Camera, Rig

__all__ = [
    "EndOfStream",
    "FrameSource",
    "ImageFolderSource",
    "OpenCVCameraSource",
    "SimulatedCameraSource",
    "SourceError",
    "SourceFrame",
    "SourceWarning",
    "VideoFileSource",
    "open_source",
    "source_kind",
]

SOURCE_FORMS = ("device:N, /dev/videoN, rtsp://... (or rtsps/rtmp/http/https), a GStreamer pipeline "
                "(containing '!'), file:path.mp4, a folder of images, sim")


def source_kind(source: str) -> str:
    """Which kind of source a camera's source string names: ``opencv``, ``file``, ``folder`` or ``sim``;
    ValueError for anything else (a folder must exist to be recognised)."""
    s = source.strip()
    if s == "sim":
        return "sim"
    if s.startswith("file:"):
        return "folder" if Path(s.removeprefix("file:")).expanduser().is_dir() else "file"
    if is_opencv_source(s):
        return "opencv"
    if s and Path(s).expanduser().is_dir():
        return "folder"
    raise ValueError(s)


def open_source(camera: Camera, *, clock: str = "monotonic", pace: bool = True, rig: Rig | None = None,
                seed: int = 0, people: int = 2, loop: bool = False,
                timestamps: str | Path | None = None) -> FrameSource:
    """The frame source of a rig camera, chosen by ``camera.source``.

    ``clock``: the rig's clock (``monotonic``, ``ptp``, ``ntp``) for timestamps. ``pace``: files, folders and
    simulated cameras deliver at their rate (False: as fast as possible, same timestamps). ``rig``: supplies
    the frame rate when the camera has none. ``seed``, ``people``: the simulated performers. ``loop``: files
    and folders start again at their end instead of raising ``EndOfStream``. ``timestamps``: a sidecar CSV for
    a file or folder (default: found beside it). Raises ``SourceError`` when the source cannot be opened,
    ``ValueError`` when ``camera.source`` is not a source form.
    """
    clock_function(clock)  # unknown clock -> ValueError before anything opens
    source = camera.source.strip()
    try:
        kind = source_kind(source)
    except ValueError:
        hint = ""
        if not source:
            hint = " (the rig file gives it no source)"
        elif Path(source).expanduser().is_file():
            hint = f" (a video file is named file:{source})"
        elif "/" in source or "\\" in source:
            hint = " (not an existing folder)"
        raise ValueError(f"camera {camera.name!r}: unknown source {source!r}{hint}; accepted forms: "
                         f"{SOURCE_FORMS}") from None
    if kind == "sim":
        fps = camera.fps or (rig.fps if rig is not None else None)
        return SimulatedCameraSource(camera, clock=clock, pace=pace, seed=seed, people=people, fps=fps)
    if kind == "opencv":
        return OpenCVCameraSource(camera, clock=clock)
    path = Path(source.removeprefix("file:")).expanduser()
    if rig is not None and not camera.fps and rig.fps:
        camera = camera.replace(fps=rig.fps)
    cls = ImageFolderSource if kind == "folder" else VideoFileSource
    return cls(camera, path, clock=clock, pace=pace, loop=loop, timestamps=timestamps)
