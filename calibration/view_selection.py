"""Which board views to calibrate a lens from: usable ones, no near-duplicates, and a well-spread subset.

Geometry. Every board is planar (z = 0 in its frame), so a view is a homography H from board (x, y) in
metres to image points. With intrinsics K, ``K^-1 H ~ [r1 r2 t]``: the first two columns are the board's
x and y axes in the camera frame, and their cross product is the board normal n. The *tilt* of a view is
the angle between n and the optical axis, ``arccos |n_z|``: 0 for a board parallel to the image plane.
Face-on views carry no perspective, so the focal length cannot be told from the distance; a lens
calibration needs views tilted both ways about both image axes.

Before calibrating, K is rough: the principal point at the image centre and a focal length from
Zhang's orthogonality constraints on the homographies (``h1^T w h2 = 0``, ``h1^T w h1 = h2^T w h2`` with
``w = diag(1/f^2, 1/f^2, 1)``), a typical field of view where those are degenerate. Fisheye views are
first unwarped with an equidistant lens (``r = f theta``) whose f fits the board planes best.

Selection is greedy and deterministic: each step takes the view that adds the most to the image
coverage (corners in grid cells that few chosen views reach yet) and to the variety of board normals
(distance of ``(n_x, n_y)`` from the nearest chosen view's), both scaled to the best candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rigs.board import Board

if TYPE_CHECKING:
    from calibration.board_detection import BoardView

_TYPICAL_FOCAL = 0.8  # x max(width, height): a lens of about 65 deg across the long side
_FOCAL_RANGE = (0.15, 6.0)  # plausible focal lengths, x max(width, height)
_SELECTION_CELLS = 8  # grid cells per image side scored by the selection


def dense_corners(views: Sequence[BoardView], num_corners: int) -> np.ndarray:
    """Corners of every view as one array [N, M, 2] indexed by corner id, NaN where a view lacks it."""
    out = np.full((len(views), num_corners, 2), np.nan)
    for i, v in enumerate(views):
        out[i, np.asarray(v.ids, np.int64)] = v.corners
    return out


def spread_ratio(points: np.ndarray) -> np.ndarray:
    """How far point sets [..., V, 2] are from a line: smallest over largest singular value of the
    centred points (0 on a line, 1 for an isotropic spread)."""
    centred = points - points.mean(-2, keepdims=True)
    s = np.linalg.svd(centred, compute_uv=False)
    return s[..., -1] / np.maximum(s[..., 0], 1e-12)


def homographies(board_xy: Sequence[np.ndarray], image_xy: Sequence[np.ndarray]) -> np.ndarray:
    """Least-squares homographies [N, 3, 3] from board-plane points [V_i, 2] to image points [V_i, 2]
    (the identity where fewer than 4 points or a degenerate set give none)."""
    out = np.empty((len(board_xy), 3, 3))
    for i, (src, dst) in enumerate(zip(board_xy, image_xy, strict=True)):
        try:
            H, _ = cv2.findHomography(np.asarray(src, np.float64), np.asarray(dst, np.float64), 0)
        except cv2.error:
            H = None
        out[i] = np.eye(3) if H is None else H
    return out


def rough_focal(H: np.ndarray, image_size: tuple[int, int]) -> float:
    """A focal length in pixels from board homographies [N, 3, 3] (principal point at the centre, square
    pixels), or a typical one when the views are too face-on to tell."""
    w, h = image_size
    T = np.array([[1.0, 0.0, -(w - 1) / 2], [0.0, 1.0, -(h - 1) / 2], [0.0, 0.0, 1.0]])
    G = T @ H
    G = G / np.linalg.norm(G, axis=(1, 2), keepdims=True)
    g1, g2 = G[:, :, 0], G[:, :, 1]
    # a (g1x g2x + g1y g2y) + g1z g2z = 0 and a (|g1xy|^2 - |g2xy|^2) + g1z^2 - g2z^2 = 0, a = 1/f^2
    A = np.concatenate([(g1[:, :2] * g2[:, :2]).sum(1), (g1[:, :2] ** 2).sum(1) - (g2[:, :2] ** 2).sum(1)])
    b = -np.concatenate([g1[:, 2] * g2[:, 2], g1[:, 2] ** 2 - g2[:, 2] ** 2])
    a = float(A @ b / max(float(A @ A), 1e-300))
    lo, hi = (r * max(w, h) for r in _FOCAL_RANGE)
    if a > 0 and lo < a ** -0.5 < hi:
        return a ** -0.5
    return _TYPICAL_FOCAL * max(w, h)


def board_normals(H: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit board normals [N, 3] in the camera frame (sign chosen so n_z >= 0) from homographies [N, 3, 3]
    that map the board plane to pixels through K (or to normalised coordinates with K = I)."""
    M = np.linalg.solve(K, H)
    n = np.cross(M[:, :, 0], M[:, :, 1])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
    return n * np.where(n[:, 2:3] < 0, -1.0, 1.0)


def tilt_degrees(normals: np.ndarray) -> np.ndarray:
    """Angle [N] in degrees between board normals [N, 3] (camera frame) and the optical axis."""
    return np.degrees(np.arccos(np.clip(np.abs(normals[..., 2]), 0.0, 1.0)))


def fisheye_rays(pixels: np.ndarray, focal: float, image_size: tuple[int, int]) -> np.ndarray:
    """Pixels [..., 2] -> normalised pinhole coordinates through an ideal equidistant fisheye of ``focal`` px
    centred in the image (angles past 85 deg are clipped)."""
    w, h = image_size
    d = (pixels - np.array([(w - 1) / 2, (h - 1) / 2])) / focal
    theta = np.linalg.norm(d, axis=-1, keepdims=True)
    scale = np.tan(np.minimum(theta, np.radians(85))) / np.maximum(theta, 1e-12)
    return d * np.where(theta > 1e-12, scale, 1.0)


def rough_normals(views: Sequence[BoardView], board: Board, image_size: tuple[int, int],
                  model: str = "pinhole") -> tuple[np.ndarray, float]:
    """Board normals [N, 3] (camera frame) of every view before any calibration, and the rough focal length
    in pixels they assume (for a fisheye, the equidistant focal that makes the boards flattest)."""
    pts = board.corner_points()[:, :2]
    board_xy = [pts[np.asarray(v.ids, np.int64)] for v in views]
    if model != "fisheye":
        H = homographies(board_xy, [v.corners for v in views])
        f = rough_focal(H, image_size)
        w, h = image_size
        K = np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
        return board_normals(H, K), f
    sample = np.unique(np.linspace(0, len(views) - 1, min(len(views), 40)).round().astype(int))
    best = (np.inf, 0.0)
    for f in np.geomspace(0.2, 1.2, 15) * max(image_size):
        rays = [fisheye_rays(views[i].corners, f, image_size) for i in sample]
        H = homographies([board_xy[i] for i in sample], rays)
        err = sum(float(np.median(np.linalg.norm(_apply(Hi, b) - r, axis=1) / np.linalg.norm(r, axis=1).mean()))
                  for Hi, b, r in zip(H, [board_xy[i] for i in sample], rays, strict=True))
        best = min(best, (err, float(f)))
    f = best[1]
    H = homographies(board_xy, [fisheye_rays(v.corners, f, image_size) for v in views])
    return board_normals(H, np.eye(3)), f


def _apply(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = xy @ H[:, :2].T + H[:, 2]
    return p[:, :2] / p[:, 2:3]


def near_duplicates(corners: np.ndarray, tolerance_px: float, window: int = 50) -> np.ndarray:
    """For dense corners [N, M, 2] (NaN = unseen) in capture order, the index of an earlier kept view (one
    of the last ``window`` kept) that each view repeats (nearly the same corners, moved by less than
    ``tolerance_px`` on average: a still board in consecutive frames), or -1 for a view to keep."""
    seen = np.isfinite(corners[..., 0])
    filled = np.nan_to_num(corners)
    counts = seen.sum(1)
    of = np.full(len(corners), -1)
    kept = np.zeros(len(corners), np.int64)
    n_kept = 0
    for i in range(len(corners)):
        k = kept[max(n_kept - window, 0):n_kept]
        shared = seen[k] & seen[i]
        n_shared = shared.sum(1)
        shift = np.where(shared, np.linalg.norm(filled[k] - filled[i], axis=-1), 0.0).sum(1)
        # the same view: nearly all of both views' corners shared (so never none) and barely moved
        same = (n_shared >= np.maximum(0.9 * np.maximum(counts[k], counts[i]), 1)) & \
            (shift < tolerance_px * np.maximum(n_shared, 1))
        hit = np.flatnonzero(same)
        if hit.size:
            of[i] = k[hit[0]]
        else:
            kept[n_kept] = i
            n_kept += 1
    return of


def cell_occupancy(corners: np.ndarray, image_size: tuple[int, int], cells: int = _SELECTION_CELLS) -> np.ndarray:
    """Boolean [N, cells*cells]: which cells of a cells x cells image grid each view's corners [N, M, 2] reach."""
    w, h = image_size
    ok = np.isfinite(corners[..., 0])
    cx = np.clip((np.nan_to_num(corners[..., 0]) / w * cells).astype(int), 0, cells - 1)
    cy = np.clip((np.nan_to_num(corners[..., 1]) / h * cells).astype(int), 0, cells - 1)
    occ = np.zeros((len(corners), cells * cells), bool)
    rows = np.broadcast_to(np.arange(len(corners))[:, None], ok.shape)
    occ[rows[ok], (cy * cells + cx)[ok]] = True
    return occ


def select_spread(occupancy: np.ndarray, normals: np.ndarray, count: int) -> np.ndarray:
    """Indices (in choice order) of ``count`` views chosen greedily for image coverage (occupancy [N, C])
    and variety of board normal (normals [N, 3]); deterministic, ties go to the earlier view."""
    n = len(occupancy)
    if count >= n:
        return np.arange(n)
    occ = occupancy.astype(float)
    tilt_xy = normals[:, :2]
    hits = np.zeros(occ.shape[1])
    nearest = np.linalg.norm(tilt_xy, axis=1)  # before any choice: prefer tilted views
    free = np.ones(n, bool)
    chosen: list[int] = []
    for _ in range(count):
        gain = occ @ (1.0 / (1.0 + hits))
        score = gain / max(gain[free].max(), 1e-12) + nearest / max(nearest[free].max(), 1e-12)
        score[~free] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        free[best] = False
        hits += occ[best]
        nearest = np.minimum(nearest, np.linalg.norm(tilt_xy - tilt_xy[best], axis=1))
    return np.asarray(chosen)
