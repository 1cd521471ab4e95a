"""How far a calibrated rig is from a reference rig, in the frames where the comparison is fair.

A calibration fixes the world only as far as its input does. Three comparisons, each removing exactly
the freedom the calibration had:

* ``relative_pose_errors``: every camera relative to the first one (no world frame involved).
* ``floor_frame_errors``: after the turn about Z and the shift along the floor that best align the camera
  centres: what a floor frame leaves free (the floor fixes Z up and z = 0, not the heading or origin).
* ``similarity_errors``: after the best similarity (Umeyama): for rigs whose scale and frame are
  both arbitrary, e.g. another lab's calibration of the same cameras.

Errors are per camera: rotation in degrees, position in metres.
"""

from __future__ import annotations

import numpy as np

from rigs.camera import Rig
from rigs.rotations import matrix_to_rotvec


def rotation_deg(R: np.ndarray) -> np.ndarray:
    """Angle (deg) of rotation matrices [..., 3, 3]."""
    return np.degrees(np.linalg.norm(matrix_to_rotvec(np.asarray(R, float)), axis=-1))


def relative_pose_errors(est: Rig, ref: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Per camera: rotation (deg) and position (m) errors of its pose relative to the first camera."""
    Re, Rr = np.stack([c.R for c in est]), np.stack([c.R for c in ref])
    rot = rotation_deg((Re @ Re[0].T) @ (Rr @ Rr[0].T).transpose(0, 2, 1))
    pos = np.linalg.norm((est.centers - est.centers[0]) @ Re[0].T - (ref.centers - ref.centers[0]) @ Rr[0].T, axis=1)
    return rot, pos


def _apply(est: Rig, ref: Rig, R: np.ndarray, t: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors of est after x -> s R x + t."""
    pos = np.linalg.norm(s * est.centers @ R.T + t - ref.centers, axis=1)
    Re, Rr = np.stack([c.R for c in est]), np.stack([c.R for c in ref])
    rot = rotation_deg(Re @ R.T @ Rr.transpose(0, 2, 1))
    return rot, pos


def floor_alignment(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The turn about Z and the XY shift (R [3,3], t [3]) that best map points src onto dst [N, 3]."""
    A, B = src[:, :2], dst[:, :2]
    ma, mb = A.mean(0), B.mean(0)
    U, _, Vt = np.linalg.svd((A - ma).T @ (B - mb))
    R2 = Vt.T @ np.diag([1.0, np.sign(np.linalg.det(Vt.T @ U.T))]) @ U.T
    R = np.eye(3)
    R[:2, :2] = R2
    t = np.zeros(3)
    t[:2] = mb - R2 @ ma
    return R, t


def floor_frame_errors(est: Rig, ref: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Per camera errors after the turn about Z and the XY shift that best align the camera centres."""
    R, t = floor_alignment(est.centers, ref.centers)
    return _apply(est, ref, R, t, 1.0)


def similarity_alignment(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The similarity (R, t, s) that best maps points src onto dst [N, 3] (Umeyama, no reflection)."""
    ms, md = src.mean(0), dst.mean(0)
    U, S, Vt = np.linalg.svd((dst - md).T @ (src - ms))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / ((src - ms) ** 2).sum())
    return R, md - s * R @ ms, s


def similarity_errors(est: Rig, ref: Rig) -> tuple[np.ndarray, np.ndarray, float]:
    """Per camera errors after the best similarity of the camera centres, and its scale (ref per est unit)."""
    R, t, s = similarity_alignment(est.centers, ref.centers)
    rot, pos = _apply(est, ref, R, t, s)
    return rot, pos, s
