"""Guessing image sizes for formats that do not store them (Shelf/Campus JSON, EasyMocap without H_/W_).

A principal point sits near the image centre ((w - 1) / 2, (h - 1) / 2), so the guess is the known
resolution whose centre lies nearest the rig's principal points, or, when none fits, twice the principal
point (rounded to even numbers). Real files: Shelf is 1032x776, Campus 360x288, Panoptic HD 1920x1080;
all three come out right. A guess is a guess: callers warn and say how to give the size.
"""

from __future__ import annotations

import warnings

import numpy as np

# The sizes of the datasets published in these formats, and common video sizes.
KNOWN_SIZES: tuple[tuple[int, int], ...] = (
    (360, 288),     # Campus
    (640, 480),
    (1032, 776),    # Shelf
    (1280, 720),
    (1920, 1080),   # CMU Panoptic HD
    (720, 1280),    # portrait phones and turned cameras
    (1080, 1920),
    (2560, 1440),
    (3840, 2160),
)
_FIT = 0.1  # RMS distance of the principal points from the centre, as a fraction of the size


def guess(principal_points) -> list[tuple[int, int]]:
    """(width, height) per camera from principal points [N, 2]: one known size for the rig, else 2c + 1."""
    c = np.asarray(principal_points, float).reshape(-1, 2)
    best, best_err = None, np.inf
    for w, h in KNOWN_SIZES:
        rel = (c - [(w - 1) / 2, (h - 1) / 2]) / [w, h]
        err = float(np.sqrt(np.mean(rel ** 2)))
        if err < best_err:
            best, best_err = (w, h), err
    if best is not None and best_err < _FIT:
        return [best] * len(c)
    sizes = 2 * np.round((2 * c + 1) / 2).astype(int)
    return [(max(int(w), 2), max(int(h), 2)) for w, h in sizes]


def fill_missing(sizes, principal_points, given: tuple[int, int] | None, where: str, how_to_give: str
                 ) -> list[tuple[int, int]]:
    """Sizes per camera with the missing ones (None) taken from `given`, else guessed with one warning."""
    if all(s is not None for s in sizes):
        return list(sizes)
    if given is not None:
        return [s if s is not None else tuple(given) for s in sizes]
    guessed = guess(principal_points)
    filled = [s if s is not None else g for s, g in zip(sizes, guessed, strict=True)]
    shown = ", ".join(sorted({f"{w}x{h}" for w, h in filled}))
    warnings.warn(f"{where}; guessed {shown} from the principal points. {how_to_give}", stacklevel=3)
    return filled
