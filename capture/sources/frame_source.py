"""What every frame source delivers and how it fails: ``SourceFrame``, ``SourceError``, ``EndOfStream``,
the ``FrameSource`` protocol, the rig clocks, and the pacing timeline shared by the paced sources.

A source's ``read()`` blocks until its next frame is due (paced sources) or available (live cameras) and
returns it with a capture timestamp on the rig's clock: ``time.monotonic_ns()`` for a ``monotonic`` rig,
``time.time_ns()`` for ``ptp``/``ntp`` rigs (hosts kept in sync by PTP or NTP). Pacing itself is always
measured against ``time.monotonic_ns()``, so a wall-clock step never stalls or rushes a source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

_CLOCKS: dict[str, Callable[[], int]] = {"monotonic": time.monotonic_ns, "ptp": time.time_ns, "ntp": time.time_ns}


@dataclass(frozen=True)
class SourceFrame:
    """One captured frame: ``image`` uint8 BGR (H, W, 3) or gray (H, W); ``t_ns`` its capture time on the
    rig's clock; ``truth`` (simulated cameras only) a small msgpack-able dict."""

    image: np.ndarray
    t_ns: int
    truth: dict | None = None


class SourceError(RuntimeError):
    """The camera stopped delivering or cannot be opened (unplugged, unreadable file, decode errors); the
    message names the camera or file and what to do."""


class EndOfStream(Exception):  # noqa: N818 -- the name the camera node codes against
    """A file or folder source has delivered its last frame (and was not asked to loop)."""


class SourceWarning(UserWarning):
    """A source works, but not as the rig file describes it (size or rate differs)."""


@runtime_checkable
class FrameSource(Protocol):
    name: str
    width: int
    height: int
    fps: float

    def read(self) -> SourceFrame: ...

    def close(self) -> None: ...


def clock_function(clock: str) -> Callable[[], int]:
    """The rig clock's ``*_ns`` function for a rig clock name (``monotonic``, ``ptp``, ``ntp``)."""
    try:
        return _CLOCKS[clock]
    except KeyError:
        raise ValueError(f"unknown rig clock {clock!r}; expected one of {', '.join(_CLOCKS)}") from None


def as_frame_image(image: np.ndarray) -> np.ndarray:
    """An image as a source delivers it: uint8, BGR (H, W, 3) or gray (H, W). 16-bit images keep their
    high byte, BGRA drops alpha, (H, W, 1) becomes (H, W)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {image.dtype} (expected 8- or 16-bit images)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"unsupported image shape {image.shape} (expected (H, W, 3) or (H, W))")
    return image


def image_size(image: np.ndarray) -> tuple[int, int]:
    """(width, height) of an image array."""
    return int(image.shape[1]), int(image.shape[0])


class Timeline:
    """When paced frames are due. Started by the first ``due`` call (not when the source opens, so a node
    that opens its source early does not start behind): frame offset ``o`` is due at monotonic
    ``start + o`` and stamped ``clock_start + o`` on the rig clock, both read at the same moment."""

    def __init__(self, clock: str = "monotonic", pace: bool = True):
        self._clock = clock_function(clock)
        self.pace = pace
        self.start_mono: int | None = None
        self.start_clock: int | None = None

    def start(self) -> None:
        self.start_mono, self.start_clock = time.monotonic_ns(), self._clock()

    def lag(self, offset_ns: int) -> int:
        """How late (ns, negative when early) a frame at ``offset_ns`` would be now; 0 before the start."""
        return 0 if self.start_mono is None else time.monotonic_ns() - (self.start_mono + offset_ns)

    def elapsed(self) -> int:
        return 0 if self.start_mono is None else time.monotonic_ns() - self.start_mono

    def due(self, offset_ns: int) -> int:
        """Waits (when pacing) until the frame at ``offset_ns`` is due; returns its rig-clock timestamp."""
        if self.start_mono is None:
            self.start()
        if self.pace:
            deadline = self.start_mono + offset_ns
            while (left := deadline - time.monotonic_ns()) > 0:
                time.sleep(left / 1e9)
        return self.start_clock + int(offset_ns)
