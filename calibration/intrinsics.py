"""Lens calibration of one camera from board views: focal lengths, principal point and distortion.

Each view gives corners of a planar board (z = 0, ``board.corner_points()``) seen at an unknown pose; the
camera's K and distortion are what make one pose per view reproject every corner onto its detection
(Zhang's method, solved by OpenCV: ``cv2.calibrateCamera`` for the pinhole model with distortion
(k1, k2, p1, p2, k3), ``cv2.fisheye.calibrate`` for the equidistant model with k1..k4). OpenCV starts the
pinhole model from a distortion-free guess, which a wide lens defeats; when that fit is poor it is run
again from a fit with k1 alone. The fisheye model starts from the equidistant focal length that makes
the boards flattest, and a view it fails on (``cv2.error``) is dropped and the fit retried.

The views are cleaned first: too few corners, or corners on one line (no plane), are unusable;
near-duplicates (a still board in consecutive video frames) add nothing; past ``max_views`` a
well-spread subset is kept (``calibration.view_selection``). Calibration then repeats, dropping the views
whose RMS reprojection error exceeds ``max(3 x median, 1 px)`` (a misdetection, motion blur, a bent
board) until none does (unless the median itself is past ``MISFIT_PX``: then the model, not a view, is
wrong). For the pinhole model k3 is kept only when it lowers the squared error by more
than ``K3_SIGNIFICANCE`` noise variances; otherwise it is fixed at 0 (it only bends the edges).

Uncertainty: with J the Jacobian of all corner residuals with respect to the free intrinsics and every
view's pose, the parameter covariance is ``(J^T J)^-1 sigma^2``, sigma^2 the residual variance per
coordinate (sum of squares over the degrees of freedom); ``std`` holds the intrinsic diagonal's roots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from calibration.coverage import coverage_advice
from calibration.errors import CalibrationError
from calibration.view_selection import (
    cell_occupancy,
    dense_corners,
    near_duplicates,
    rough_normals,
    select_spread,
    spread_ratio,
    tilt_degrees,
)
from rigs.board import Board
from rigs.camera import Camera

if TYPE_CHECKING:
    from calibration.board_detection import BoardView

MODELS = ("pinhole", "fisheye")
MIN_CORNERS = 6
MIN_VIEWS = 4
MIN_SPREAD = 0.05  # board-plane spread ratio below which a view's corners lie on a line
FACE_ON_DEG = 5.0  # every view tilted less than this: the focal length is not observable
OUTLIER_FACTOR = 3.0
OUTLIER_FLOOR_PX = 1.0
MISFIT_PX = 5.0  # median view error above this: the model does not fit at all, no view is singled out
MAX_ROUNDS = 8
K3_SIGNIFICANCE = 10.0
DUPLICATE_FRACTION = 0.002  # of the image diagonal: corners moving less than this repeat a view
STD_NAMES = {"pinhole": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3"),
             "fisheye": ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")}
_CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)

Progress = Callable[[int, int], None] | None


@dataclass(frozen=True, eq=False)
class IntrinsicsResult:
    """A lens calibration: the camera (R = I, t = 0), its RMS error in px over the used views and per used
    view, the views dropped with the reason (it starts with a category: ``too few corners``, ``collinear``,
    ``duplicate``, ``not selected``, ``outlier``, ``ill-conditioned``), 1-sigma parameter uncertainty (0
    for a parameter held fixed), advice on what to capture to improve it, the used views' board normals
    (camera frame, from the fitted poses) and each dropped view's error under the final lens."""

    camera: Camera
    rms: float
    used: tuple[BoardView, ...]
    view_rms: np.ndarray
    dropped: tuple[tuple[BoardView, str], ...]
    std: dict[str, float]
    advice: tuple[str, ...]
    normals: np.ndarray | None = None  # [len(used), 3] board normals in the camera frame
    dropped_rms: np.ndarray | None = None  # [len(dropped)] px under the final lens (pose by PnP), NaN if unknown


@dataclass(frozen=True, eq=False)
class _Fit:
    K: np.ndarray
    dist: np.ndarray
    rvecs: np.ndarray  # [V, 3]
    tvecs: np.ndarray  # [V, 3]
    view_rms: np.ndarray  # [V]
    ssr: float  # sum of squared residuals, px^2
    count: int  # corners
    std: dict[str, float]

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.ssr / max(self.count, 1)))


class _IllConditioned(Exception):
    """cv2.fisheye.calibrate failed; ``index`` is the view it blamed (or the weakest one)."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def calibrate_intrinsics(views: Sequence[BoardView], board: Board, image_size: tuple[int, int], *,
                         name: str = "cam", model: str = "pinhole", max_views: int = 40,
                         progress: Progress = None) -> IntrinsicsResult:
    """Calibrate one camera's lens from its board views (see the module docstring); raises CalibrationError
    when the views cannot determine it, saying what was seen and what to capture."""
    if model not in MODELS:
        raise CalibrationError(f"camera {name!r}: lens model {model!r} is not one of {', '.join(MODELS)}")
    width, height = (int(v) for v in image_size)
    image_size = (width, height)
    views = list(views)
    _check_views(views, board, image_size, name)
    usable, dropped = _usable_views(views, board)
    if len(usable) < MIN_VIEWS:
        raise _too_few(views, usable, board, name)

    normals, focal = rough_normals(usable, board, image_size, model)
    tilts = tilt_degrees(normals)
    if tilts.max() < FACE_ON_DEG:
        raise CalibrationError(
            f"camera {name!r}: all {len(usable)} board views are nearly parallel to the image plane (max tilt "
            f"{tilts.max():.1f} deg), so the focal length cannot be told from the distance: capture views with "
            f"the board tilted 20-45 deg towards and away from the camera and turned left and right")

    corners = dense_corners(usable, board.num_corners)
    tolerance = max(1.0, DUPLICATE_FRACTION * float(np.hypot(width, height)))
    repeats = near_duplicates(corners, tolerance)
    for i in np.flatnonzero(repeats >= 0):
        dropped.append((usable[i], f"duplicate: the board where it was in {_label(usable[repeats[i]])} "
                                   f"(corners moved < {tolerance:.1f} px)"))
    keep = np.flatnonzero(repeats < 0)
    if len(keep) > max_views:
        pick = select_spread(cell_occupancy(corners[keep], image_size), normals[keep], max(max_views, MIN_VIEWS))
        chosen = np.sort(keep[pick])
        for i in np.setdiff1d(keep, chosen):
            dropped.append((usable[i], f"not selected: {len(chosen)} well-spread views of {len(keep)} kept"))
        keep = chosen
    used = [usable[i] for i in keep]

    fit, used, dropped = _fit_robust(model, used, dropped, board, image_size, focal, progress)
    normals_used = _normals_from_rvecs(fit.rvecs)
    camera = Camera(name, width, height, fit.K, fit.dist, model=model)
    points = np.concatenate([v.corners for v in used])
    advice = coverage_advice(points, image_size, normals_used, len(used)) + _fit_advice(fit, image_size, model)
    dropped_rms = view_errors(camera, [v for v, _ in dropped], board)
    return IntrinsicsResult(camera, fit.rms, tuple(used), fit.view_rms, tuple(dropped), fit.std, advice,
                            normals_used, dropped_rms)


def view_errors(camera: Camera, views: Sequence[BoardView], board: Board) -> np.ndarray:
    """RMS reprojection error [N] in px of board views under a calibrated lens, each pose found by PnP on
    the undistorted corners; NaN for a view with fewer than 4 corners, corners on a line, or no pose."""
    out = np.full(len(views), np.nan)
    if not views:
        return out
    pts = board.corner_points()
    rays = camera.undistort(np.concatenate([np.asarray(v.corners, float).reshape(-1, 2) for v in views]))
    ends = np.cumsum([len(v.ids) for v in views])
    for i, (v, r) in enumerate(zip(views, np.split(rays, ends[:-1]), strict=True)):
        obj = pts[np.asarray(v.ids, np.int64)]
        if len(obj) < 4 or spread_ratio(obj[:, :2]) < MIN_SPREAD or not np.isfinite(r).all():
            continue
        try:
            ok, rvec, tvec = cv2.solvePnP(obj, r, np.eye(3), None, flags=cv2.SOLVEPNP_ITERATIVE)
        except cv2.error:
            continue
        if ok:
            R = Rotation.from_rotvec(np.ravel(rvec)).as_matrix()
            px = camera.project(obj @ R.T + np.ravel(tvec))
            out[i] = np.sqrt(np.nanmean(((px - v.corners) ** 2).sum(1)))
    return out


# --- input checks --------------------------------------------------------------------------------

def _label(view: BoardView) -> str:
    return view.source or f"frame {view.frame}"


def _check_views(views: list, board: Board, image_size: tuple[int, int], name: str) -> None:
    sizes = sorted({tuple(int(s) for s in v.image_size) for v in views})
    if any(s != image_size for s in sizes):
        seen = ", ".join(f"{w}x{h}" for w, h in sizes)
        raise CalibrationError(f"camera {name!r}: board views come from images of {seen}, but the calibration "
                               f"is for {image_size[0]}x{image_size[1]}: calibrate one camera at one resolution")
    for v in views:
        ids = np.asarray(v.ids)
        if ids.size and (ids.min() < 0 or ids.max() >= board.num_corners):
            raise CalibrationError(f"camera {name!r}: {_label(v)} has corner id {int(ids.max())} but the board "
                                   f"({board.describe()}) has {board.num_corners} corners: check the board spec")


def _usable_views(views: list, board: Board) -> tuple[list, list]:
    """Views with enough corners spread over the board plane, and the others with the reason."""
    pts = board.corner_points()[:, :2]
    usable, dropped = [], []
    for v in views:
        n = len(v.ids)
        if n < MIN_CORNERS:
            dropped.append((v, f"too few corners: {n} (need {MIN_CORNERS})"))
        elif spread_ratio(pts[np.asarray(v.ids, np.int64)]) < MIN_SPREAD:
            dropped.append((v, f"collinear: its {n} corners lie along one line of the board"))
        else:
            usable.append(v)
    return usable, dropped


def _too_few(views: list, usable: list, board: Board, name: str) -> CalibrationError:
    counts = sorted((len(v.ids) for v in views), reverse=True)
    shown = ", ".join(map(str, counts[:12])) + (", ..." if len(counts) > 12 else "")
    seen = f"{len(views)} board views (corners per view: {shown})" if views else "no board views"
    return CalibrationError(
        f"camera {name!r}: found {seen}, of which {len(usable)} have at least {MIN_CORNERS} corners not on one "
        f"line; a lens calibration needs at least {MIN_VIEWS} such views: capture 15-40 images with the whole "
        f"board ({board.describe()}) in view, at different places in the image and tilted 20-45 deg")


# --- fitting -------------------------------------------------------------------------------------

def _fit_robust(model: str, used: list, dropped: list, board: Board, image_size: tuple[int, int], focal: float,
                progress: Progress) -> tuple[_Fit, list, list]:
    """Calibrate, drop views far worse than the median, recalibrate, until no view stands out."""
    total = MAX_ROUNDS + 1
    rounds = 0
    while True:
        try:
            fit = _fit(model, used, board, image_size, focal)
        except _IllConditioned as e:
            dropped.append((used[e.index], f"ill-conditioned: the fisheye calibration failed with this view ({e})"))
            used = used[:e.index] + used[e.index + 1:]
            if len(used) < MIN_VIEWS:
                raise CalibrationError(
                    f"the fisheye calibration failed on the views left ({len(used)} after dropping ill-conditioned "
                    f"ones): capture 15-40 views with the whole board sharp and in view, tilted 20-45 deg") from None
            continue
        rounds += 1
        if progress is not None:
            progress(rounds, total)
        median = float(np.median(fit.view_rms))
        limit = max(OUTLIER_FACTOR * median, OUTLIER_FLOOR_PX)
        bad = np.flatnonzero(fit.view_rms > limit)
        if rounds >= MAX_ROUNDS or not bad.size or len(used) - bad.size < MIN_VIEWS or median > MISFIT_PX:
            break
        for i in bad:
            dropped.append((used[i], f"outlier: view rms {fit.view_rms[i]:.2f} px vs median {median:.2f} px: "
                                     f"motion blur or a misdetection"))
        drop = set(bad.tolist())
        used = [v for i, v in enumerate(used) if i not in drop]
    if model == "pinhole":
        fixed = _fit(model, used, board, image_size, focal, fix_k3=True)
        dof = max(2 * fit.count - 9 - 6 * len(used), 1)
        if (fixed.ssr - fit.ssr) / max(fit.ssr / dof, 1e-300) < K3_SIGNIFICANCE:
            fit = fixed
    if progress is not None:
        progress(total, total)
    return fit, used, dropped


def _fit(model: str, views: list, board: Board, image_size: tuple[int, int], focal: float,
         fix_k3: bool = False) -> _Fit:
    obj = [board.corner_points()[np.asarray(v.ids, np.int64)] for v in views]
    img = [np.asarray(v.corners, np.float64) for v in views]
    if model == "fisheye":
        K, dist, rvecs, tvecs = _calibrate_fisheye(obj, img, image_size, focal)
    else:
        K, dist, rvecs, tvecs = _calibrate_pinhole(obj, img, image_size, fix_k3)
    return _evaluate(model, obj, img, K, dist, rvecs, tvecs, fix_k3)


def _calibrate_pinhole(obj: list, img: list, image_size: tuple[int, int], fix_k3: bool):
    """cv2.calibrateCamera from OpenCV's distortion-free start; when that fits badly (a wide lens), again
    from a fit with k1 alone, keeping the better."""
    o = [p.astype(np.float32).reshape(-1, 1, 3) for p in obj]
    i = [p.astype(np.float32).reshape(-1, 1, 2) for p in img]
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    best = _try_calibrate(o, i, image_size, None, None, flags)
    if best[0] > OUTLIER_FLOOR_PX:
        first = _try_calibrate(o, i, image_size, None, None,
                               cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST)
        if np.isfinite(first[0]):
            best = min(best, _try_calibrate(o, i, image_size, first[1], first[2],
                                            flags | cv2.CALIB_USE_INTRINSIC_GUESS), key=lambda b: b[0])
    rms, K, dist, rvecs, tvecs = best
    if not np.isfinite(rms):
        raise CalibrationError(f"OpenCV's calibration failed on these {len(obj)} views: capture 15-40 views with "
                               f"the whole board sharp and in view, tilted 20-45 deg")
    return K, np.ravel(dist)[:5], np.reshape(rvecs, (-1, 3)), np.reshape(tvecs, (-1, 3))


def _try_calibrate(o: list, i: list, image_size: tuple[int, int], K, dist, flags: int) -> tuple:
    """(rms, K, dist, rvecs, tvecs) of cv2.calibrateCamera, rms infinite when it fails or diverges."""
    w, h = image_size
    try:
        rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(o, i, image_size, None if K is None else K.copy(),
                                                         None if dist is None else dist.copy(), flags=flags,
                                                         criteria=_CRITERIA)
    except cv2.error:
        return np.inf, None, None, None, None
    sane = np.isfinite(K).all() and np.isfinite(dist).all() and 0.05 * max(w, h) < K[0, 0] < 20 * max(w, h)
    return (float(rms) if sane else np.inf), K, dist, rvecs, tvecs


def _calibrate_fisheye(obj: list, img: list, image_size: tuple[int, int], focal: float):
    o = [p.reshape(1, -1, 3) for p in obj]
    i = [p.reshape(1, -1, 2) for p in img]
    w, h = image_size
    K0 = np.array([[focal, 0.0, (w - 1) / 2], [0.0, focal, (h - 1) / 2], [0.0, 0.0, 1.0]])
    flags = _fisheye_flag("CALIB_RECOMPUTE_EXTRINSIC") | _fisheye_flag("CALIB_FIX_SKEW") \
        | _fisheye_flag("CALIB_USE_INTRINSIC_GUESS")
    try:
        _, K, dist, rvecs, tvecs = cv2.fisheye.calibrate(o, i, image_size, K0.copy(), np.zeros(4), flags=flags,
                                                         criteria=_CRITERIA)
    except cv2.error as e:
        raise _blame(o, i, image_size, K0, flags, e) from None
    if not (np.isfinite(K).all() and np.isfinite(dist).all()):
        raise _IllConditioned(int(np.argmin([spread_ratio(p) for p in img])), "non-finite result")
    return K, np.ravel(dist), np.reshape(rvecs, (-1, 3)), np.reshape(tvecs, (-1, 3))


def _fisheye_flag(name: str) -> int:
    """A cv2.fisheye flag: OpenCV 4 keeps its own values in cv2.fisheye, OpenCV 5 shares cv2's."""
    return int(getattr(cv2.fisheye, name, None) or getattr(cv2, name))


def _blame(o: list, i: list, image_size: tuple[int, int], K0: np.ndarray, flags: int,
           error: cv2.error) -> _IllConditioned:
    """The view cv2.fisheye.calibrate fails on: the one its condition check names, else the least spread."""
    try:
        cv2.fisheye.calibrate(o, i, image_size, K0.copy(), np.zeros(4), flags=flags | _fisheye_flag("CALIB_CHECK_COND"),
                              criteria=_CRITERIA)
    except cv2.error as e:
        found = re.search(r"input array (\d+)", str(e))
        if found and int(found.group(1)) < len(o):
            return _IllConditioned(int(found.group(1)), "ill-conditioned view")
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else "cv2.error"
    return _IllConditioned(int(np.argmin([spread_ratio(p.reshape(-1, 2)) for p in i])), reason)


def _project(model: str, obj: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, K: np.ndarray, dist: np.ndarray):
    """Pixels [V, 2] of board points [V, 3] and the Jacobians [2V, P] of u, v (interleaved) with respect to
    the intrinsics (fx, fy, cx, cy, distortion...) and [2V, 6] to the pose (rvec, tvec)."""
    if model == "fisheye":
        px, J = cv2.fisheye.projectPoints(obj.reshape(1, -1, 3), rvec, tvec, K, dist)
        return px.reshape(-1, 2), J[:, :8], J[:, 8:14]
    px, J = cv2.projectPoints(obj, rvec, tvec, K, dist)
    return px.reshape(-1, 2), J[:, 6:15], J[:, :6]


def _evaluate(model: str, obj: list, img: list, K: np.ndarray, dist: np.ndarray, rvecs: np.ndarray,
              tvecs: np.ndarray, fix_k3: bool) -> _Fit:
    """Residuals, per-view RMS and the parameter uncertainty of a calibration. The normal matrix J^T J has a
    block per view for its pose; those are eliminated (Schur complement), leaving the intrinsics' block."""
    names = STD_NAMES[model]
    free = np.array([not (fix_k3 and n == "k3") for n in names])
    view_rms, ssr, count = [], 0.0, 0
    schur = np.zeros((free.sum(), free.sum()))
    for v, (o, p) in enumerate(zip(obj, img, strict=True)):
        px, J_in, J_pose = _project(model, o, rvecs[v], tvecs[v], K, dist)
        r = px - p
        sq = (r ** 2).sum(1)
        view_rms.append(np.sqrt(sq.mean()))
        ssr += float(sq.sum())
        count += len(r)
        A = J_in[:, free]
        B = A.T @ J_pose
        schur += A.T @ A - B @ np.linalg.pinv(J_pose.T @ J_pose) @ B.T
    dof = max(2 * count - free.sum() - 6 * len(obj), 1)
    var = np.zeros(len(names))
    var[free] = np.diag(np.linalg.pinv(schur)) * (ssr / dof)
    std = {n: float(np.sqrt(max(s, 0.0))) for n, s in zip(names, var, strict=True)}
    return _Fit(K, dist, rvecs, tvecs, np.asarray(view_rms), ssr, count, std)


def _normals_from_rvecs(rvecs: np.ndarray) -> np.ndarray:
    """Board normals [V, 3] in the camera frame (n_z >= 0) from board->camera rotation vectors [V, 3]."""
    n = Rotation.from_rotvec(np.asarray(rvecs, float).reshape(-1, 3)).as_matrix()[:, :, 2]
    return n * np.where(n[:, 2:3] < 0, -1.0, 1.0)


def _fit_advice(fit: _Fit, image_size: tuple[int, int], model: str) -> tuple[str, ...]:
    """Advice from the fit itself: an uncertain focal length or centre, a high error."""
    out = []
    fx = fit.K[0, 0]
    if fit.std["fx"] > 0.01 * fx or fit.std["fy"] > 0.01 * fit.K[1, 1]:
        out.append(f"the focal length is uncertain by +-{100 * fit.std['fx'] / fx:.1f} % (1 sigma): add views tilted "
                   f"20-45 deg at several distances")
    if max(fit.std["cx"], fit.std["cy"]) > 0.01 * max(image_size):
        out.append(f"the image centre is uncertain by +-{max(fit.std['cx'], fit.std['cy']):.0f} px (1 sigma): add "
                   f"views tilted both ways about both image axes, near the image edges")
    if fit.rms > OUTLIER_FLOOR_PX:
        out.append(f"the RMS reprojection error {fit.rms:.2f} px is high: check focus and motion blur, that the "
                   f"board is flat, and the board spec (counts and square size)"
                   + ("; a wide-angle lens may need the fisheye model" if model == "pinhole" else ""))
    return tuple(out)
