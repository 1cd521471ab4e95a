"""Where calibration images come from: a folder of images, a video file, or a recorded session.

Each source is an iterator of ``(frame, source, image)``: ``frame`` is the time key that board views of
different cameras are matched on, ``source`` says where the image came from (for messages) and
``image`` is BGR uint8. Images are read one at a time as the iterator is consumed, so a long video never
sits in memory; ``len()`` of a source is the number of frames it will give (for a video, what the
container reports), known before the first is read.

Frame keys:

* image folder: the image's index in the folder sorted by the numbers in the file names
  (``img2.png`` before ``img10.png``);
* video: the video frame index (0-based), every ``step``-th frame;
* session: the sync set index from ``sync.csv`` (``capture.sync``), so that one key is one instant in
  every camera even when cameras dropped or restarted frames; frames in no set are skipped and ``step``
  keeps the sets whose index is a multiple of it, the same sets in every camera. A session without
  ``sync.csv`` falls back to the camera's frame seq, which names one instant across cameras only for
  hardware-triggered rigs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from calibration.errors import CalibrationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

Frame = tuple[int, str, np.ndarray]


class FrameSource:
    """An iterator of ``(frame, source, image)`` that knows how many frames it gives (``len``)."""

    def __init__(self, count: int, frames: Iterator[Frame]):
        self._count = int(count)
        self._frames = frames

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> Frame:
        return next(self._frames)

    def __len__(self) -> int:
        return self._count


def _natural_key(name: str) -> tuple:
    """Sort key that orders the numbers in a name by value: ``a2`` before ``a10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", name) if p)


def image_folder_frames(folder: str | os.PathLike) -> FrameSource:
    """The folder's images (jpg, png, bmp, tif) in the order of the numbers in their names; frame = index."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: {'is not a folder' if folder.exists() else 'does not exist'}; "
                               f"give a folder of board images (.jpg, .png, .bmp, .tif)")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        others = sorted(p.name for p in folder.iterdir())
        held = f"it holds {len(others)} other entries such as {', '.join(others[:3])}" if others else "it is empty"
        raise CalibrationError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}); {held}. Capture the board "
                               f"into this folder, or pass a video")

    def read() -> Iterator[Frame]:
        for i, path in enumerate(files):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise CalibrationError(f"{path}: cannot be read as an image (damaged or not an image); "
                                       f"remove it from {folder}")
            yield i, path.name, image

    return FrameSource(len(files), read())


def video_frames(path: str | os.PathLike, step: int = 1) -> FrameSource:
    """Every ``step``-th frame of a video file; frame = the video frame index. Skipped frames are not decoded."""
    path = Path(path)
    step = _check_step(step)
    if not path.is_file():
        raise CalibrationError(f"{path}: {'is not a file' if path.exists() else 'does not exist'}; give a video "
                               f"file of the board")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise CalibrationError(f"{path}: does not open as a video (OpenCV cannot read its container or codec); "
                               f"convert it, e.g. to MJPEG or H.264 in .mp4/.avi, or extract images")
    count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))

    def read() -> Iterator[Frame]:
        try:
            k = 0
            while True:
                if k % step:
                    if not cap.grab():
                        return
                else:
                    ok, image = cap.read()
                    if not ok or image is None:
                        return
                    yield k, f"{path.name}#{k}", image
                k += 1
        finally:
            cap.release()

    return FrameSource(-(-count // step), read())


def session_frames(session_dir: str | os.PathLike, camera: str, step: int = 1) -> FrameSource:
    """One camera's frames of a recorded session; frame = the sync set index (the seq without
    ``sync.csv``), and ``step`` keeps every ``step``-th set in every camera alike."""
    from capture.session_reader import SessionError, SessionVideo, decode_frame

    step = _check_step(step)
    try:
        video = SessionVideo(session_dir)
        index = video.index(camera)
    except SessionError as exc:
        raise CalibrationError(str(exc)) from None
    keys = _sync_keys(video, camera, index.seq, index.t_ns)
    keep = (keys >= 0) & (keys % step == 0)
    wanted = dict(zip(zip(index.seq.tolist(), index.t_ns.tolist(), strict=True), keys.tolist(), strict=True))
    name = video.folder.name

    def read() -> Iterator[Frame]:
        try:
            for seq, t_ns, data in video.iter_frames(camera):
                key = wanted.get((seq, t_ns), -1)
                if key >= 0 and key % step == 0:
                    yield key, f"{name}:{camera}#{seq}", decode_frame(data)
        finally:
            video.close()

    return FrameSource(int(keep.sum()), read())


def _sync_keys(video, camera: str, seq: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Each indexed frame's key: its sync set index, -1 when in no set; the seq when there is no sync.csv
    (or it does not list the camera)."""
    try:
        sets, set_t, seqs, cameras = video.sync()
    except Exception:  # noqa: BLE001 - no (readable) sync.csv: the seqs are the keys
        return seq.copy()
    if camera not in cameras:
        return seq.copy()
    rows_of: dict[int, list[int]] = {}
    for row, s in enumerate(seqs[:, cameras.index(camera)].tolist()):
        if s >= 0:
            rows_of.setdefault(s, []).append(row)
    keys = np.full(len(seq), -1, np.int64)
    for i, (s, t) in enumerate(zip(seq.tolist(), t_ns.tolist(), strict=True)):
        rows = rows_of.get(s)
        if rows:  # a restarted camera repeats seqs: the set nearest in time
            keys[i] = sets[min(rows, key=lambda r: abs(int(set_t[r]) - t))]
    return keys


def _check_step(step: int) -> int:
    if int(step) != step or step < 1:
        raise CalibrationError(f"step must be a whole number >= 1 (every step-th frame), got {step!r}")
    return int(step)
