"""The board's pose in the camera for each detection, by perspective-n-point on a planar target.

A view's corners are undistorted to normalised coordinates (the lens, pinhole or fisheye, is removed with
the camera's own model), so the board and its image are related by a plane homography; IPPE (infinitesimal
plane-based pose estimation) solves that in closed form and picks the better of its two mirror solutions.
The pose is then refined by Levenberg-Marquardt on the pixel reprojection error through the full lens model
(OpenCV's ``solvePnPRefineLM``; fisheye views are refined in normalised coordinates). The result maps board
to camera: ``x_cam = R @ P_board + t``.

A view is rejected (``ok`` False, with a reason) when it has too few corners, when its corners lie near one
line of the board (the pose about that line is undetermined), when the board lands behind the camera, or
when the refined pose still misses the corners by more than ``max_rms`` pixels (a misdetection or wrong
intrinsics). A view over ``max_rms`` is first solved once more without its outlying corners, so one
misdetected corner does not cost the whole view (the bundle adjustment deals with that corner later).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from calibration.errors import CalibrationError
from rigs.board import Board
from rigs.camera import Camera, Rig
from rigs.rotations import rotvec_to_matrix

if TYPE_CHECKING:
    from calibration.board_detection import BoardView

MIN_SPREAD = 0.15  # the corners' second principal extent over their first, in board units: below, "on a line"
OUTLIER_FACTOR = 4.0  # a corner further than this many median errors (and max_rms) is left out of a retry


@dataclass(frozen=True, eq=False)
class BoardPoses:
    """Board -> camera pose of every view (``x_cam = R @ P + t``): NaN where none was solved; a view rejected
    for its reprojection error keeps its pose and ``rms``."""

    R: np.ndarray  # [V, 3, 3]
    t: np.ndarray  # [V, 3]
    rms: np.ndarray  # [V] px reprojection error of the refined pose over the corners it kept (NaN: not solved)
    ok: np.ndarray  # bool [V]
    reasons: tuple[str, ...]  # why a view was rejected, a short fixed phrase ("" when ok)


def board_poses(cameras: Rig | Camera, views: Sequence[BoardView], board: Board, *, min_corners: int = 6,
                max_rms: float = 3.0, progress: Callable[[int, int], None] | None = None) -> BoardPoses:
    """Board pose in the camera of every view (the camera named by the view when given a rig)."""
    V = len(views)
    R = np.full((V, 3, 3), np.nan)
    t = np.full((V, 3), np.nan)
    rms = np.full(V, np.nan)
    ok = np.zeros(V, bool)
    reasons = []
    corners = board.corner_points()
    for i, view in enumerate(views):
        cam = _camera(cameras, view.camera)
        ids = np.asarray(view.ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(corners)):
            raise CalibrationError(f"view {view.source or view.frame} of camera {view.camera!r} has corner ids up "
                                   f"to {ids.max()} but board {board} has {len(corners)} corners; check the board "
                                   f"spec (COLSxROWS) against the printed board")
        pose, reason = _solve(cam, corners[ids], np.asarray(view.corners, float), min_corners, max_rms)
        if pose is not None:
            R[i], t[i], rms[i] = pose
        ok[i] = reason == ""
        reasons.append(reason)
        if progress is not None:
            progress(i + 1, V)
    return BoardPoses(R, t, rms, ok, tuple(reasons))


def _camera(cameras: Rig | Camera, name: str) -> Camera:
    if isinstance(cameras, Camera):
        return cameras
    if name not in cameras.names:
        raise CalibrationError(f"a board view names camera {name!r}, which rig {cameras.name!r} does not have "
                               f"(it has {', '.join(cameras.names)}); rename the views or add the camera")
    return cameras[name]


def _spread(points: np.ndarray) -> float:
    """How far planar points [N, 2] are from one line: second over first singular value of their spread."""
    centred = points - points.mean(0)
    s = np.linalg.svd(centred, compute_uv=False)
    return float(s[1] / s[0]) if s[0] > 0 else 0.0


def _solve(cam: Camera, obj: np.ndarray, px: np.ndarray, min_corners: int, max_rms: float):
    """((R, t, rms), "") or (pose or None, reason). A view missing max_rms is solved once more without its
    outlying corners (a misdetected corner should not cost the whole view)."""
    least = max(min_corners, 4)
    if len(obj) < least:
        return None, f"fewer than {least} corners"
    if _spread(obj[:, :2]) < MIN_SPREAD:
        return None, "corners lie on one line of the board"
    norm = np.asarray(cam.undistort(px), float)
    if not np.isfinite(norm).all():
        return None, "corners could not be undistorted"
    pose = _pnp(cam, obj, px, norm)
    if pose is None:
        return None, "no pose fits the corners"
    err = _errors(cam, pose, obj, px)
    if np.sqrt(np.mean(err ** 2)) > max_rms:
        keep = err <= max(max_rms, OUTLIER_FACTOR * float(np.median(err)))
        if least <= keep.sum() < len(obj) and _spread(obj[keep, :2]) >= MIN_SPREAD:
            retry = _pnp(cam, obj[keep], px[keep], norm[keep])
            if retry is not None:
                pose, err = retry, _errors(cam, retry, obj[keep], px[keep])
    R, t = pose
    if (obj @ R[2] + t[2] <= 0).any():
        return None, "the board would be behind the camera"
    rms = float(np.sqrt(np.mean(err ** 2)))
    if not rms <= max_rms:
        return (R, t, rms), f"reprojection error above {max_rms:g} px"
    return (R, t, rms), ""


def _pnp(cam: Camera, obj: np.ndarray, px: np.ndarray, norm: np.ndarray):
    """(R, t) by IPPE on undistorted points, refined by LM through the lens; None when IPPE fails."""
    obj32, eye = obj.reshape(-1, 1, 3), np.eye(3)
    found, rvec, tvec = cv2.solvePnP(obj32, norm.reshape(-1, 1, 2), eye, None, flags=cv2.SOLVEPNP_IPPE)
    if not found:
        return None
    if cam.model == "fisheye":
        rvec, tvec = cv2.solvePnPRefineLM(obj32, norm.reshape(-1, 1, 2), eye, None, rvec, tvec)
    else:
        rvec, tvec = cv2.solvePnPRefineLM(obj32, px.reshape(-1, 1, 2), cam.K,
                                          cam.dist if cam.dist.size else None, rvec, tvec)
    return rotvec_to_matrix(rvec.ravel()), tvec.ravel()


def _errors(cam: Camera, pose, obj: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Per-corner reprojection error (px) of a board pose; inf where a corner falls behind the camera."""
    err = np.linalg.norm(cam.with_extrinsics(*pose).project(obj) - px, axis=1)
    return np.where(np.isfinite(err), err, np.inf)
