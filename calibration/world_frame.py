"""Where the world is: re-expressing a calibrated rig so the floor is z = 0 and Z points up.

Calibration solves for cameras in an arbitrary frame (the first camera's). Labs want the floor as the
XY plane, Z up, and an origin they can point at. Every choice here is a similarity
``x_new = scale * R @ x_old + t`` applied to cameras and points alike:

* ``board_world``: a board lying face up on the floor. Origin at the board's origin, X along its
  columns, Z along the printed face's normal (up), Y = Z x X. The board frame's z points into the
  back, so Z = -z_board and Y = -y_board.
* ``floor_world``: a plane fitted robustly to points on or just above the floor (the people's feet).
  Z is the plane's normal on the side of the cameras, the origin is the points' median projected onto
  the floor, and X is the first camera's viewing direction projected onto the floor, so repeated
  calibrations of one rig come out facing the same way.
* ``first_camera_world``: the first camera's frame, as calibration returns it (the identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.errors import CalibrationError
from rigs.board import Board
from rigs.camera import Rig

_RANSAC_ITERATIONS = 256
_RANSAC_SEED = 0


@dataclass(frozen=True)
class WorldTransform:
    """A similarity ``x_new = scale * R @ x_old + t`` and what it is (for reports)."""

    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale: float = 1.0
    origin: str = "the first camera"

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points [..., 3] in the new frame."""
        return self.scale * np.asarray(points, float) @ self.R.T + self.t

    def apply_rig(self, rig: Rig) -> Rig:
        """The rig with every camera in the new frame (``up`` set to z)."""
        return rig.transformed(self.R, self.t, self.scale).replace(up="z")

    def then(self, other: WorldTransform) -> WorldTransform:
        """This transform followed by ``other``."""
        return WorldTransform(other.R @ self.R, other.scale * other.R @ self.t + other.t,
                              self.scale * other.scale, other.origin)


def first_camera_world(rig: Rig) -> WorldTransform:
    """The frame of the rig's first camera (x right, y down, z forward), as a transform from the rig's."""
    cam = rig[0]
    return WorldTransform(cam.R.copy(), cam.t.copy(), 1.0, f"camera {cam.name}")


def board_world(board: Board, R_board: np.ndarray, t_board: np.ndarray) -> WorldTransform:
    """The frame of a board lying face up on the floor (``x_world = R_board @ x_board + t_board``)."""
    R_board = np.asarray(R_board, float)
    R = np.stack([R_board[:, 0], -R_board[:, 1], -R_board[:, 2]])
    return WorldTransform(R, -R @ np.asarray(t_board, float), 1.0, f"the {board.kind} board on the floor")


def fit_plane(points: np.ndarray, threshold: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Robust plane ``n @ x = d`` through points [N, 3]: RANSAC on triples, then least squares on the
    inliers (within ``threshold`` m). Returns (unit normal, d, inlier mask); seeded, so deterministic."""
    P = np.asarray(points, float)
    P = P[np.isfinite(P).all(axis=1)]
    if len(P) < 3:
        raise CalibrationError(f"floor: {len(P)} foot positions; need at least 3 spread over the floor")
    rng = np.random.default_rng(_RANSAC_SEED)
    tri = rng.integers(0, len(P), size=(_RANSAC_ITERATIONS, 3))
    n = np.cross(P[tri[:, 1]] - P[tri[:, 0]], P[tri[:, 2]] - P[tri[:, 0]])
    norm = np.linalg.norm(n, axis=1)
    good = norm > 1e-9
    n = n[good] / norm[good, None]
    d = np.einsum("kj,kj->k", n, P[tri[good, 0]])
    counts = (np.abs(P @ n.T - d) < threshold).sum(axis=0)
    best = int(np.argmax(counts)) if len(counts) else None
    inliers = np.abs(P @ n[best] - d[best]) < threshold if best is not None else np.ones(len(P), bool)
    Q = P[inliers]
    centre = Q.mean(axis=0)
    _, s, Vt = np.linalg.svd(Q - centre, full_matrices=False)
    if s[1] < 0.1 * s[0] or len(Q) < 3:
        raise CalibrationError("floor: the foot positions lie along a line, so the floor's tilt about that line "
                               "is unknown; have someone walk around the capture area, not along one path")
    normal = Vt[2]
    full = np.zeros(len(points), bool)
    full[np.flatnonzero(np.isfinite(np.asarray(points, float)).all(axis=1))[inliers]] = True
    return normal, float(normal @ centre), full


def floor_world(feet: np.ndarray, rig: Rig, offset: float | np.ndarray = 0.0,
                threshold: float = 0.05) -> WorldTransform:
    """The floor frame from foot points [N, 3] that sit ``offset`` m above the floor (an ankle joint
    about 0.07, a sole 0): Z up towards the cameras, X the first camera's view direction on the floor."""
    feet = np.asarray(feet, float).reshape(-1, 3)
    offset = np.broadcast_to(np.asarray(offset, float), feet.shape[:1])
    ok = np.isfinite(feet).all(axis=1)
    feet, offset = feet[ok], offset[ok]
    normal, d, inliers = fit_plane(feet, threshold)
    side = (rig.centers - np.median(feet[inliers], axis=0)) @ normal
    if np.median(side) < 0:
        normal, d = -normal, -d
    if (side * np.sign(np.median(side)) < 0).all():
        raise CalibrationError("floor: every camera is below the fitted floor; the foot positions do not come "
                               "from a floor under the cameras")
    if np.ptp(offset) > 0:  # points at different heights (ankles and soles): lower each onto the floor, refit
        normal, d, inliers = fit_plane(feet - offset[:, None] * normal, threshold)
        if np.median((rig.centers - np.median(feet[inliers], axis=0)) @ normal) < 0:
            normal, d = -normal, -d
        height = d
    else:
        height = d - offset[0]  # the floor: the feet's plane lowered by how high they sit
    z = normal
    view = rig[0].viewing_direction
    x = view - (view @ z) * z
    if np.linalg.norm(x) < 1e-6:  # first camera looks straight down: use its image x axis instead
        x = rig[0].R[0] - (rig[0].R[0] @ z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    origin = np.median(feet[inliers], axis=0)
    origin = origin - (origin @ z - height) * z
    return WorldTransform(R, -R @ origin, 1.0, f"the floor under the feet ({int(inliers.sum())} of {len(feet)} "
                                               f"foot positions within {threshold * 100:g} cm of it)")
