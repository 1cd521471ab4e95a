"""Rotations shared by every stage: rotation vectors (Rodrigues), Euler angles, rotations between directions.

Rotation vectors go through scipy's quaternion conversion rather than ``cv2.Rodrigues``, whose
matrix -> vector direction loses about 1e-6 near a half turn; these round-trip to 1e-15 everywhere.
Everything is batched over leading dimensions unless it says otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def rotvec_to_matrix(rvec) -> np.ndarray:
    """Rotation vector [3] -> rotation matrix [3, 3] (same as cv2.Rodrigues)."""
    return Rotation.from_rotvec(np.asarray(rvec, float).reshape(3)).as_matrix()


def matrix_to_rotvec(R) -> np.ndarray:
    """Rotation matrix [3, 3] -> rotation vector [3] with angle in [0, pi] (same as cv2.Rodrigues)."""
    return Rotation.from_matrix(np.asarray(R, float)).as_rotvec()


def euler_zyx_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Angles [..., 3] = (rx, ry, rz) in radians -> R = Rz(rz) @ Ry(ry) @ Rx(rx), [..., 3, 3].

    x is applied first: the simulated body composes a twist about x with a bend about y, then a turn about z.
    """
    angles = np.asarray(angles, dtype=np.float64)
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    out = np.empty(angles.shape[:-1] + (3, 3))
    out[..., 0, 0] = cz * cy
    out[..., 0, 1] = cz * sy * sx - sz * cx
    out[..., 0, 2] = cz * sy * cx + sz * sx
    out[..., 1, 0] = sz * cy
    out[..., 1, 1] = sz * sy * sx + cz * cx
    out[..., 1, 2] = sz * sy * cx - cz * sx
    out[..., 2, 0] = -sy
    out[..., 2, 1] = cy * sx
    out[..., 2, 2] = cy * cx
    return out


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation [..., 3, 3] taking direction u [..., 3] onto direction v [..., 3].

    Used to correct for different rest poses when one skeleton drives another.
    """
    u = np.asarray(u, float) / np.linalg.norm(u, axis=-1, keepdims=True)
    v = np.asarray(v, float) / np.linalg.norm(v, axis=-1, keepdims=True)
    axis = np.cross(u, v)
    s = np.linalg.norm(axis, axis=-1)
    c = np.sum(u * v, axis=-1)
    # antiparallel: any axis perpendicular to u
    perp = np.cross(u, np.where(np.abs(u[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where((s < 1e-9)[..., None] & (c < 0)[..., None], perp, axis)
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    k = np.divide(axis, norm, out=np.zeros_like(axis), where=norm > 1e-12)
    angle = np.arctan2(s, c)
    K = np.zeros(k.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    sa, ca = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + sa * K + (1 - ca) * (K @ K)
