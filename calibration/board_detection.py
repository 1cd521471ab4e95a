"""Finding a calibration board's corners in an image, and saying why it was not found.

A board's corners come back as ``(ids, corners)``: ids int32 [V] ascending (row ``i`` of
``Board.corner_points()``) and pixels float64 [V, 2] in the image's own coordinates (pixel (0, 0) is the
centre of the top-left pixel). An inverted board (white on black) is found by inverting the grey image first.

**ChArUco**: OpenCV's ``CharucoDetector``. The markers give the ids, so any part of the board works; each
corner is interpolated from its neighbouring markers and refined by OpenCV's ``cornerSubPix`` on the
chessboard corner. Measured against the simulator's truth (``rigs.sim.board.board_truth``): median 0.05-0.12
px on sharp 720p and 1080p renders of a facing board; over held poses (0.6-2 m, tilted up to 45 degrees)
median 0.08 px and 95th percentile 0.18 px at 1080p, 0.11 / 0.44 px at 720p where squares shrink to 13 px.
Refining the markers' corners too (``cornerRefinementMethod``) changes nothing measurable; a second
``cornerSubPix`` pass trims that 720p tail but not the median, and did not lower the calibration RMS on
caliscope's real videos, so neither is done. About 17 ms a 1080p image (2 cores).

**Checkerboard**: all or nothing. ``findChessboardCornersSB`` (normalised, exhaustive, and allowed to
find a *larger* board so that a print bigger than the spec is refused rather than matched in part) runs
on a copy scaled to at most ``_DETECT_SIDE`` px, with the classic ``findChessboardCorners`` as a
fallback; the corners are then refined at full resolution by ``cornerSubPix`` with a window of 0.35 of
the smallest corner spacing (sub-pixel on renders: median under 0.05 px). On Pose2Sim's 1088x1920 images
this finds the board in 26 of 28 images (classic detector alone: 24; SB at full resolution: slower, and
returns false grids) and ``calibrateCamera`` on the corners fits to 0.17-0.20 px (classic: 0.21-0.92 px).
About 65 ms an image when the board is found, 100-400 ms when it is not (2 cores).

A grid is kept only if it looks like a checkerboard: square centres alternate dark and light, rows and
columns bend smoothly (a second difference under half a spacing), and the pattern stops at the outer
squares (a larger print seen in part would go on). Its order is made canonical,
because OpenCV may return it rotated by 180 degrees (OpenCV issue 22083) or mirrored:

* *handedness*: corner ids run along x (within a row) then y (down the rows) with x cross y pointing
  into the image, as a printed face seen from the front does; a mirrored order is flipped;
* *colour*: corner 0 is the inner corner whose outer diagonal square is black (as ``board_print``
  prints it: the top-left square black). This decides the 180-degree turn when COLS + ROWS is odd
  (e.g. 9x6, 4x7);
* when COLS + ROWS is even the board looks the same turned by 180 degrees (and by 90 when COLS == ROWS):
  corner 0 is then the candidate nearest the image's top-left corner. That is a fine labelling for
  intrinsics; for extrinsics, where every camera must agree, use a board with one odd and one even count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.errors import CalibrationError
from rigs.board import Board

_DETECT_SIDE = 960  # px: checkerboards are searched on a copy whose longer side is at most this
_EXPLAIN_IMAGES = 3  # explain_no_board looks at this many of the images it is given, evenly spread
_SUBPIX = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-3)
_SB_FLAGS = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_LARGER
_CLASSIC_FLAGS = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
# marker families tried when the spec's dictionary finds nothing (the _1000 list holds the shorter ones)
_FAMILIES = ("DICT_4X4_1000", "DICT_5X5_1000", "DICT_6X6_1000", "DICT_7X7_1000", "DICT_ARUCO_ORIGINAL",
             "DICT_APRILTAG_36h11")


@dataclass(frozen=True, eq=False)
class BoardView:
    """One image's detection of the board: corner ids (ascending, unique) and their sub-pixel positions."""

    camera: str
    frame: int  # the common time key: video frame index / image index / session sync index
    ids: np.ndarray  # int32 [V]
    corners: np.ndarray  # float64 [V, 2] pixels
    image_size: tuple[int, int]  # (width, height)
    source: str = ""  # file name or "video.mp4#123"

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids).astype(np.int32).reshape(-1)
        corners = np.asarray(self.corners, dtype=np.float64).reshape(-1, 2)
        if len(ids) != len(corners):
            raise ValueError(f"BoardView {self.camera}#{self.frame}: {len(ids)} ids but {len(corners)} corners")
        order = np.argsort(ids, kind="stable")
        ids, corners = ids[order], corners[order]
        if np.any(np.diff(ids) == 0):
            raise ValueError(f"BoardView {self.camera}#{self.frame}: corner ids repeat")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "corners", corners)
        object.__setattr__(self, "frame", int(self.frame))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))


# --- detection ----------------------------------------------------------------------------------

def detect_board(image: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray]:
    """The board's corners in one image (BGR or grey): ids int32 [V] ascending and pixels float64 [V, 2];
    both empty when the board is not found."""
    gray = _gray(image)
    if board.inverted:
        gray = 255 - gray
    if board.kind == "charuco":
        return _charuco(gray, board)
    return _checkerboard(gray, board)


def detect_views(frames: Iterable[tuple[int, str, np.ndarray]], board: Board, camera: str, *,
                 min_corners: int = 6, progress: Callable[[int, int], None] | None = None) -> list[BoardView]:
    """The board in each frame ``(frame, source, image)`` with at least ``min_corners`` corners (a
    checkerboard needs all); ChArUco views whose corners lie on one line are left out (no pose from them).
    ``progress(done, total)`` gets total 0 when the frames do not say how many they are."""
    total = len(frames) if isinstance(frames, Sized) else 0
    views = []
    for done, (frame, source, image) in enumerate(frames, start=1):
        ids, corners = detect_board(image, board)
        if len(ids) >= max(min_corners, 1) and not (
                board.kind == "charuco" and board.cv_board().checkCharucoCornersCollinear(ids.reshape(-1, 1))):
            h, w = image.shape[:2]
            views.append(BoardView(camera, int(frame), ids, corners, (w, h), str(source)))
        if progress is not None:
            progress(done, total)
    return views


def _gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey from grey, BGR or BGRA, 8 or 16 bit."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise CalibrationError(f"expected an 8- or 16-bit grey, BGR or BGRA image, got {img.dtype} {img.shape}")
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[..., 0]
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int32), np.zeros((0, 2))


@functools.lru_cache(maxsize=16)
def _charuco_detector(board: Board, legacy: bool = False) -> cv2.aruco.CharucoDetector:
    cv_board = board.cv_board()
    if legacy:  # the layout of boards made before OpenCV 4.6 (differs when ROWS is even)
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
        cv_board = cv2.aruco.CharucoBoard((board.cols, board.rows), board.square, board.marker, dictionary)
        cv_board.setLegacyPattern(True)
    return cv2.aruco.CharucoDetector(cv_board)


def _charuco(gray: np.ndarray, board: Board, legacy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    corners, ids, _, _ = _charuco_detector(board, legacy).detectBoard(gray)
    if ids is None or len(ids) == 0:
        return _empty()
    ids = np.asarray(ids).reshape(-1).astype(np.int32)
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
    ids, first = np.unique(ids, return_index=True)
    return ids, corners[first]


def _scaled(gray: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    s = min(1.0, side / max(gray.shape))
    if s == 1.0:
        return gray, 1.0
    return cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), s


def _find_grid(small: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    """Corners [R, C, 2] (pattern = (C, R)) in ``small``'s pixels, or None (also when a larger board is seen)."""
    cols, rows = pattern
    ok, corners, meta = cv2.findChessboardCornersSBWithMeta(small, pattern, _SB_FLAGS)
    if ok and len(corners) == cols * rows:
        return np.asarray(corners, np.float64).reshape(rows, cols, 2)
    if ok:  # the print is larger than the spec: no part of it is the board
        return None
    ok, corners = cv2.findChessboardCorners(small, pattern, flags=_CLASSIC_FLAGS)
    return np.asarray(corners, np.float64).reshape(rows, cols, 2) if ok else None


def _checkerboard(gray: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray]:
    small, s = _scaled(gray, _DETECT_SIDE)
    grid = _find_grid(small, board.pattern_size)
    if grid is None:
        return _empty()
    grid = (grid + 0.5) / s - 0.5
    win = int(np.clip(0.35 * _spacing(grid), 2, 25))
    refined = cv2.cornerSubPix(gray, grid.reshape(-1, 1, 2).astype(np.float32), (win, win), (-1, -1), _SUBPIX)
    grid = refined.reshape(grid.shape).astype(np.float64)
    grid = _canonical(grid, small, s)
    if grid is None:
        return _empty()
    return np.arange(board.num_corners, dtype=np.int32), grid.reshape(-1, 2)


def _spacing(grid: np.ndarray) -> float:
    """The smallest distance between neighbouring corners of a grid [R, C, 2]."""
    along = np.linalg.norm(np.diff(grid, axis=1), axis=-1)
    down = np.linalg.norm(np.diff(grid, axis=0), axis=-1)
    return float(min(along.min(), down.min()))


def _smooth(grid: np.ndarray) -> bool:
    """Rows and columns bend smoothly: every second difference is under half the local spacing."""
    for g in (grid, grid.transpose(1, 0, 2)):
        if g.shape[1] >= 3:
            bend = np.linalg.norm(g[:, 2:] - 2 * g[:, 1:-1] + g[:, :-2], axis=-1)
            span = np.linalg.norm(g[:, 2:] - g[:, :-2], axis=-1) / 2
            if np.any(bend > 0.5 * span):
                return False
    return True


def _extended(grid: np.ndarray, n: int = 2) -> np.ndarray:
    """The corner grid [R, C, 2] continued by ``n`` corners on every side (linear extrapolation)."""
    for axis in (0, 1):
        g = np.moveaxis(grid, axis, 0)
        k = np.arange(n, 0, -1).reshape(-1, *[1] * (g.ndim - 1))
        before = g[0] - k * (g[1] - g[0])
        after = g[-1] + k[::-1] * (g[-1] - g[-2])
        grid = np.moveaxis(np.concatenate([before, g, after]), 0, axis)
    return grid


def _square_values(grid: np.ndarray, small: np.ndarray, s: float) -> np.ndarray:
    """Mean grey [R-1, C-1] near the centre of each square between the corners of ``grid`` [R, C, 2]; NaN off
    the image."""
    centres = 0.25 * (grid[:-1, :-1] + grid[1:, :-1] + grid[:-1, 1:] + grid[1:, 1:])
    k = max(1, int(0.3 * _spacing(grid) * s))
    blurred = cv2.blur(small, (k, k)).astype(np.float32)
    at = ((centres + 0.5) * s - 0.5).astype(np.float32)
    return cv2.remap(blurred, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=float("nan"))  # off the image: unknown


def _dark_even(values: np.ndarray, offset: int = 0) -> float:
    """How much darker the squares with even (i + j + offset) are than their neighbours: > 0 when the corner
    order is canonical; NaN when the squares do not alternate (not a checkerboard)."""
    even = (np.add.outer(np.arange(values.shape[0]), np.arange(values.shape[1])) + offset) % 2 == 0
    sign = np.where(even, 1.0, -1.0)
    steps = np.concatenate([((values[:, 1:] - values[:, :-1]) * sign[:, :-1]).ravel(),
                            ((values[1:] - values[:-1]) * sign[:-1]).ravel()])
    steps = steps[np.isfinite(steps)]
    if len(steps) < 2:
        return float("nan")
    agree = max(np.mean(steps > 0), np.mean(steps < 0))
    if agree < 0.9 or np.median(np.abs(steps)) < 5:
        return float("nan")
    return float(np.median(steps))


def _continues(values: np.ndarray, contrast: float) -> bool:
    """Whether the checker pattern goes on past the board's outer squares: ``values`` [R+3, C+3] are the
    squares of the grid extended by two corners a side, so its outermost ring lies off the board, where a
    printed board has its plain margin."""
    rows, cols = values.shape
    outside = [(values[:1, 1:-1], 1), (values[-1:, 1:-1], rows % 2),  # (row of squares, parity of its first)
               (values[1:-1, :1].T, 1), (values[1:-1, -1:].T, cols % 2)]
    for strip, offset in outside:
        c = _dark_even(strip, offset)
        if np.isfinite(c) and c * contrast > 0 and abs(c) > 0.5 * abs(contrast):
            return True
    return False


def _canonical(grid: np.ndarray, small: np.ndarray, s: float) -> np.ndarray | None:
    """The grid [R, C, 2] in canonical order (module docstring), or None when it is no checkerboard."""
    if not _smooth(grid):
        return None
    x = (grid[:, -1] - grid[:, 0]).mean(0)
    y = (grid[-1] - grid[0]).mean(0)
    if x[0] * y[1] - x[1] * y[0] < 0:
        grid = grid[::-1]
    values = _square_values(_extended(grid), small, s)  # [R+3, C+3]: off the board, the board, off
    contrast = _dark_even(values[2:-2, 2:-2])
    if not np.isfinite(contrast) or _continues(values, contrast):
        return None
    values = values[2:-2, 2:-2]
    turns = (0, 2, 1, 3) if grid.shape[0] == grid.shape[1] else (0, 2)  # quarter turns that keep the shape
    candidates = [(np.rot90(grid, k), np.rot90(values, k)) for k in turns]
    dark = [g for g, v in candidates if _dark_even(v) > 0] or [g for g, _ in candidates]
    return np.ascontiguousarray(min(dark, key=lambda g: g[0, 0].sum()))


# --- why nothing was found ----------------------------------------------------------------------

def explain_no_board(images: Sequence[np.ndarray], board: Board) -> str:
    """Why the board was not found in these images, from what a few of them show: the other polarity,
    another marker dictionary, another board size, a checkerboard instead of a ChArUco (or the reverse),
    or nothing board-like at all; one sentence naming the fix. Takes a few seconds at most."""
    picks = np.unique(np.linspace(0, len(images) - 1, min(_EXPLAIN_IMAGES, len(images))).round().astype(int))
    grays = [_gray(images[i]) for i in picks] if len(images) else []
    if not grays:
        return "no images were given: capture the board first"
    flipped = Board(board.kind, board.cols, board.rows, board.square, board.marker, board.dictionary,
                    not board.inverted)
    if board.kind == "charuco" and any(len(detect_board(g, flipped)[0]) for g in grays):  # checkerboards: both
        return ("the board is found when the image is inverted: add :inverted to the spec (a white-on-black print)"
                if not board.inverted else
                "the board is found without inverting the image: drop :inverted from the spec (a black-on-white print)")
    small = [_scaled(g, _DETECT_SIDE)[0] for g in grays]
    views = [v for g in small for v in (g, 255 - g)]  # both polarities
    dictionary = board.dictionary if board.kind == "charuco" else _FAMILIES[0]
    seen = [_markers(v, dictionary) for v in views]
    best = max(range(len(views)), key=lambda k: (len(seen[k][0]), seen[k][1]))  # most markers, then candidates
    ids = np.unique(np.concatenate([ids for ids, _ in seen]))
    if board.kind == "charuco" and len(ids):
        return _wrong_size(views[best], seen[best][0], ids, board)
    pair = views[best - best % 2: best - best % 2 + 2]  # the image with most marker-like quads, both polarities
    other = _other_markers(pair, board.dictionary) if board.kind == "charuco" or not len(ids) else (dictionary, ids)
    if other is not None:
        name, oids = other
        found = f"{len(oids)} markers of {_family(name)} (ids {oids.min()}..{oids.max()}) were found"
        if board.kind == "charuco":
            return (f"no ArUco markers of {board.dictionary} found; {found}: the spec's dictionary does not match "
                    f"the print; use {_smallest_dictionary(name, oids.max())}")
        return (f"{found} and no {board.cols}x{board.rows} checkerboard: the print looks like a ChArUco board; use "
                f"charuco:COLSxROWS:SQUARE:MARKER:{_smallest_dictionary(name, oids.max())}")
    grid = _largest_grid(small)
    if grid is None:
        return (f"nothing board-like found in {len(grays)} images: check focus and lighting, that the whole board "
                f"is in view, and that it fills at least a fifth of the image")
    found = f"a {grid[0]}x{grid[1]} checkerboard (inner corners) was found"
    if board.kind == "charuco":
        return (f"{found} but no ArUco markers: the print is a checkerboard; use checkerboard:{grid[0]}x{grid[1]}:"
                f"SQUARE with the measured square size")
    if sorted(grid) == sorted(board.pattern_size):
        return (f"{found}, as the spec says, but it failed the checks (blur, glare, a bent print, or a printed "
                f"pattern larger than the spec?): capture sharp, evenly lit views of the whole board")
    if all(g <= p for g, p in zip(sorted(grid), sorted(board.pattern_size), strict=True)):
        return (f"{found}, the spec says {board.cols}x{board.rows}: keep the whole board inside the image; if the "
                f"print has {grid[0]}x{grid[1]} inner corners, use checkerboard:{grid[0]}x{grid[1]}:{board.square:g}")
    return (f"{found}, the spec says {board.cols}x{board.rows}: a checkerboard's size counts inner corners; use "
            f"checkerboard:{grid[0]}x{grid[1]}:{board.square:g}")


def _markers(gray: np.ndarray, dictionary: str) -> tuple[np.ndarray, int]:
    """Ids of the markers of ``dictionary`` found in the image, and how many marker-like quads it has."""
    _, ids, rejected = _marker_detector(dictionary).detectMarkers(gray)
    ids = np.zeros(0, int) if ids is None else np.unique(np.asarray(ids).reshape(-1))
    return ids, len(ids) + len(rejected)


@functools.lru_cache(maxsize=16)
def _marker_detector(dictionary: str) -> cv2.aruco.ArucoDetector:
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)))


def _family(dictionary: str) -> str:
    """DICT_4X4_1000 -> DICT_4X4 (dictionaries of a family share their first markers); others as they are."""
    return dictionary.rsplit("_", 1)[0] if dictionary[-1].isdigit() and "X" in dictionary else dictionary


def _smallest_dictionary(dictionary: str, max_id: int) -> str:
    """The smallest predefined dictionary of the family that holds id ``max_id``."""
    if _family(dictionary) == dictionary:
        return dictionary
    return next(f"{_family(dictionary)}_{n}" for n in (50, 100, 250, 1000) if max_id < n)


def _other_markers(grays: list[np.ndarray], skip: str) -> tuple[str, np.ndarray] | None:
    """The marker family (other than ``skip``'s) with most markers in the images, and the ids seen."""
    best = None
    for name in _FAMILIES:
        if skip and _family(name) == _family(skip):
            continue
        ids = np.unique(np.concatenate([_markers(g, name)[0] for g in grays]))
        if len(ids) >= 2 and (best is None or len(ids) > len(best[1])):
            best = (name, ids)
    return best


def _wrong_size(gray: np.ndarray, best_ids: np.ndarray, ids: np.ndarray, board: Board) -> str:
    """Markers of the spec's dictionary were found but no ChArUco corners: which size or layout fits."""
    spec = f"{board.cols}x{board.rows}"
    seen = f"markers found (ids {ids.min()}..{ids.max()})"
    if len(best_ids) and len(_charuco(gray, board, legacy=True)[0]):
        return (f"{seen}; the board is found with OpenCV's legacy ChArUco layout (boards made before OpenCV 4.6, "
                f"with an even number of rows): reprint it with `mocap calibrate board`")
    size = _charuco_size(gray, best_ids, board) if len(best_ids) else None
    larger = (f"; ids up to {ids.max()} mean the print has more than the {board.num_markers} markers of {spec}"
              if ids.max() >= board.num_markers else "")
    if size is not None:
        (cols, rows), n = size
        return (f"{seen} but no ChArUco corners with {spec}: the print looks like {cols}x{rows} ({n} corners found "
                f"with that size){larger}; use charuco:{cols}x{rows}:{board.square:g}:{board.marker:g}:"
                f"{board.dictionary}")
    return (f"{seen} but no ChArUco corners: check COLSxROWS (it counts squares; the spec says {spec}){larger}, "
            f"and that the board is sharp enough to read two neighbouring markers")


def _charuco_size(gray: np.ndarray, ids: np.ndarray, board: Board) -> tuple[tuple[int, int], int] | None:
    """The board size (cols, rows) that finds the most ChArUco corners, among sizes whose marker count holds
    the ids seen (up to a dozen markers more)."""
    have = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary)).bytesList.shape[0]
    best = None
    for cols in range(3, 13):
        for rows in range(3, 13):
            markers = cols * rows // 2
            if (cols, rows) == (board.cols, board.rows) or not ids.max() < markers <= min(have, ids.max() + 12):
                continue
            trial = Board("charuco", cols, rows, board.square, board.marker, board.dictionary)
            n = len(_charuco(gray, trial)[0])
            if n >= 4 and (best is None or n > best[1]):
                best = ((cols, rows), n)
    return best


def _largest_grid(grays: list[np.ndarray]) -> tuple[int, int] | None:
    """The largest checkerboard (inner corners per row, rows) that OpenCV finds in any of the images and
    that alternates dark and light; the inverted images are searched only when the images as they are
    show none."""
    best = None
    for images in (grays, [255 - g for g in grays]):
        for g in images:
            ok, corners, meta = cv2.findChessboardCornersSBWithMeta(g, (3, 3), cv2.CALIB_CB_NORMALIZE_IMAGE
                                                                   | cv2.CALIB_CB_LARGER)
            if not ok or meta is None or len(corners) != meta.size or (best and meta.size <= best[0] * best[1]):
                continue
            grid = np.asarray(corners, np.float64).reshape(*meta.shape, 2)
            if _smooth(grid) and np.isfinite(_dark_even(_square_values(grid, g, 1.0))):  # not a pattern in clutter
                best = (int(meta.shape[1]), int(meta.shape[0]))
        if best is not None:
            return best
    return None
