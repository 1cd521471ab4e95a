"""A folder of images as a camera: ``.jpg``/``.jpeg``/``.png`` files in frame order (the last run of digits
in each file name, as for keypoint files), paced at the camera's rate or timed by a ``<folder>.csv``
sidecar, optionally looping. Files without a frame number in their name are an error (rename them).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from capture.sources.frame_source import SourceError, as_frame_image
from capture.sources.playback import RecordedSource
from rigs.camera import Camera
from rigs.keypoint_files import KeypointFileError, frame_number

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_files(folder: Path) -> list[Path]:
    """The images of a folder in frame order (ties broken by name)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: (frame_number(p.name), p.name))


class ImageFolderSource(RecordedSource):
    """Frames read from the image files of a folder, stamped on the rig's clock from the first ``read()``."""

    def __init__(self, camera: Camera, folder: str | Path, *, clock: str = "monotonic", pace: bool = True,
                 loop: bool = False, timestamps: str | Path | None = None):
        folder = Path(folder).expanduser()
        self.folder = folder
        self.what = f"image folder {folder}"
        if not folder.is_dir():
            raise SourceError(f"camera {camera.name!r}: image folder {folder} does not exist")
        super().__init__(camera, folder, clock=clock, pace=pace, loop=loop, timestamps=timestamps)
        try:
            self.files = image_files(folder)
        except KeypointFileError as e:
            raise SourceError(f"camera {camera.name!r}: image folder {folder}: {e}") from None
        except OSError as e:
            raise SourceError(f"camera {camera.name!r}: image folder {folder}: cannot list it ({e})") from None
        if not self.files:
            raise SourceError(f"camera {camera.name!r}: image folder {folder} has no "
                              f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
        self._start(self._decode_next(), camera.fps)

    def _decode_next(self) -> np.ndarray | None:
        k = self._decoded + 1
        if k >= len(self.files):
            return None
        path = self.files[k]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise SourceError(f"camera {self.name!r}: image {path} cannot be read (corrupt or not an image)")
        try:
            image = as_frame_image(image)
        except ValueError as e:
            raise SourceError(f"camera {self.name!r}: image {path}: {e}") from None
        self._decoded = k
        return image

    _decoded = -1  # index in self.files of the last image decoded in this pass

    def _rewind(self) -> None:
        self._decoded = -1
