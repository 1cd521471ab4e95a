"""How well board views cover a camera's image and its board orientations, and what to capture next.

A lens model is only known where corners were seen: distortion is extrapolated beyond the outermost
corners, and the image corners are where it is strongest. The image is cut into a grid (3 x 3 names
regions for people: thirds, corners, centre; a finer 6 x 6 grid measures the covered fraction) and the
corners of the used views are counted per cell. Orientation comes as board normals in the camera frame:
the tilt is the angle from the optical axis, turning the board left/right moves the normal's x
component, tipping it towards/away moves its y component; the focal length needs both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from calibration.board_detection import BoardView

FINE_CELLS = 6
GOOD_FRACTION = 0.6  # of the fine grid's cells holding corners
GOOD_TILT_DEG = 20.0  # the largest tilt should reach at least this
GOOD_TURN = np.sin(np.radians(10.0))  # normal component showing a turn about an image axis
GOOD_VIEWS = 10
_THIRDS = ("top", "middle", "bottom"), ("left", "middle", "right")


def corner_grid(points: np.ndarray, image_size: tuple[int, int], cells: int | tuple[int, int] = 3) -> np.ndarray:
    """Counts [rows, cols] of image points [N, 2] per cell of a grid over the image; ``cells`` is the
    number of cells per side or (cols, rows)."""
    nx, ny = (cells, cells) if np.isscalar(cells) else cells
    w, h = image_size
    pts = np.asarray(points, float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    cx = np.clip((pts[:, 0] + 0.5) / w * nx, 0, nx - 1).astype(int)
    cy = np.clip((pts[:, 1] + 0.5) / h * ny, 0, ny - 1).astype(int)
    return np.bincount(cy * nx + cx, minlength=nx * ny).reshape(ny, nx)


def coverage_grid(views: Sequence[BoardView], image_size: tuple[int, int],
                  cells: int | tuple[int, int] = 3) -> np.ndarray:
    """Corner counts [rows, cols] over all views per cell of a ``cells`` grid over the image."""
    pts = np.concatenate([np.asarray(v.corners, float).reshape(-1, 2) for v in views]) if views else np.zeros((0, 2))
    return corner_grid(pts, image_size, cells)


def region_name(row: int, col: int) -> str:
    """The name of a cell of the 3 x 3 grid, as people say it."""
    if row == 1 and col == 1:
        return "centre"
    if row != 1 and col != 1:
        return f"{_THIRDS[0][row]}-{_THIRDS[1][col]} corner"
    return f"{_THIRDS[0][row]} edge (middle)" if col == 1 else f"{_THIRDS[1][col]} edge (middle)"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def region_advice(grid3: np.ndarray) -> list[str]:
    """Messages for the regions of a 3 x 3 corner-count grid where no corner was ever seen: whole thirds
    first, then the single cells they do not include."""
    empty = np.asarray(grid3) == 0
    named = np.zeros_like(empty)
    thirds = []
    for name, sl in (("left third", np.s_[:, 0]), ("right third", np.s_[:, 2]),
                     ("top third", np.s_[0, :]), ("bottom third", np.s_[2, :])):
        if empty[sl].all():
            thirds.append(name)
            named[sl] = True
    msgs = [f"corners never seen in the {_and(thirds)} of the image: show the board there"] if thirds else []
    cells = [(r, c) for r in range(3) for c in range(3) if empty[r, c] and not named[r, c]]
    if cells:
        why = " (lens distortion is strongest towards the edges and corners)" if cells != [(1, 1)] else ""
        msgs.append(f"corners never seen in the {_and([region_name(r, c) for r, c in cells])} of the image: "
                    f"show the board there{why}")
    return msgs


def coverage_advice(points: np.ndarray, image_size: tuple[int, int], normals: np.ndarray,
                    num_views: int) -> tuple[str, ...]:
    """What to capture next, from the corners [N, 2] of the used views, their board normals [V, 3]
    (camera frame) and how many views were used: uncovered regions, too little tilt, too few views."""
    msgs = region_advice(corner_grid(points, image_size, 3))
    fine = corner_grid(points, image_size, FINE_CELLS)
    fraction = float((fine > 0).mean())
    if fraction < GOOD_FRACTION:
        msgs.append(f"corners cover only {fraction:.0%} of the image ({FINE_CELLS}x{FINE_CELLS} grid): move the "
                    f"board across the whole frame, edges and corners included")
    normals = np.asarray(normals, float).reshape(-1, 3)
    if len(normals):
        tilt = np.degrees(np.arccos(np.clip(np.abs(normals[:, 2]), 0, 1)))
        if tilt.max() < GOOD_TILT_DEG:
            msgs.append(f"all views nearly face-on (max tilt {tilt.max():.0f} deg): tilt the board 20-45 deg "
                        f"towards and away from the camera, so the focal length can be measured")
        else:
            if np.abs(normals[:, 0]).max() < GOOD_TURN:
                msgs.append("the board was never turned left or right (about the image's vertical axis): "
                            "add views turned 20-45 deg each way")
            if np.abs(normals[:, 1]).max() < GOOD_TURN:
                msgs.append("the board was never tipped towards or away from the camera (about the image's "
                            "horizontal axis): add views tipped 20-45 deg each way")
    if num_views < GOOD_VIEWS:
        msgs.append(f"only {num_views} views used: capture 15-40 views with the board at different places, "
                    f"distances and tilts")
    return tuple(msgs)
