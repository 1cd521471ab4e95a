"""Sparse bundle adjustment: camera poses, board poses, free 3D points and (optionally) intrinsics, all at once.

Geometry. Camera c maps a world point X to its frame by ``x_c = R_c X + t_c`` (``R_c = exp([w_c]x)``, the
rotation vector ``w_c`` and ``t_c`` are its six pose parameters), divides by depth ``(x, y) = (x_c/z_c,
y_c/z_c)``, applies its lens (OpenCV's pinhole model with k1 k2 p1 p2 k3 [k4 k5 k6], or cv2.fisheye's
equidistant model) and maps to pixels with K: exactly ``rigs.projection.project``. A world point is either a
free point (three parameters) or corner m of a rigid board at pose k: ``X = R_k P_m + t_k``, the board's pose
being six more parameters (board -> world) and its corners ``P_m`` known. Every observation contributes the
2-vector ``projected - observed`` in pixels; scipy's ``least_squares`` (trust-region reflective, columns
scaled by the Jacobian, a robust loss with ``f_scale`` in pixels) minimises their sum. From a rough start
(median residual above ``WIDE_START * f_scale``) it first solves with ``f_scale`` as wide as that median: a
robust loss far outside its quadratic zone crawls (each step is a reweighted least-squares step), while the
wide loss converges in a few steps and still discounts gross outliers; the requested loss then finishes.

The Jacobian is exact and analytic. By the chain rule, d pixel / d x_c is ``A D P`` (A: K's 2x2 part, D: the
lens model's 2x2 derivative, P: the perspective division's 2x3), d x_c / d t_c = I, d x_c / d X = R_c, and a
rotation vector's derivative is ``d (R(w) v) / d w = -[R(w) v]x J_l(w)`` with J_l the left Jacobian of SO(3).
Every observation's small dense blocks are computed at once in numpy and written into a CSR matrix whose
structure (which columns each residual row touches) is fixed before the first iteration.

Gauge. The cameras in ``fixed_cameras`` keep their poses and so fix the world frame; board corners fix the
scale, free points alone do not (fix two cameras, or rescale afterwards). With ``refine_intrinsics`` every
pinhole camera also refines fx, fy, cx, cy, k1, k2, p1, p2, k3 (skew and k4..k6 stay); fisheye cameras keep
their intrinsics. Inliers, for the per-camera RMS, are observations whose residual norm is below
``INLIER_FACTOR * f_scale`` pixels. The same input gives the same output bit for bit (no randomness; BLAS
runs on one thread during the solve, through threadpoolctl).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits  # scipy's solver makes thousands of tiny BLAS calls: one thread

from calibration.errors import CalibrationError
from rigs.camera import Rig
from rigs.projection import rational_terms
from rigs.rotations import matrix_to_rotvec

INLIER_FACTOR = 3.0  # an observation is an inlier when its residual norm < INLIER_FACTOR * f_scale (px)
FTOL = 1e-6  # stop when an iteration lowers the cost by less than this fraction (finer is noise)
WIDE_START = 2.0  # a start whose median residual exceeds this many f_scale is first solved with a wider f_scale
LSMR_TOL = 1e-8  # inner least-squares tolerance: looser steps stall a robust loss short of its optimum
INTRINSIC_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")
_Z_MIN = 1e-6  # m: depths below this are clamped (a point on or behind a camera plane)
_SMALL_ANGLE = 1e-2  # rad: below this the rotation coefficients use their Taylor series
_SMALL_RADIUS = 1e-4  # fisheye: below this radius the lens derivative uses its limit


@dataclass(frozen=True, eq=False)
class PointObservations:
    """Free 3D points seen by cameras: observation i is point ``point[i]`` seen by camera ``camera[i]``."""

    camera: np.ndarray  # int64 [N] index into rig cameras
    point: np.ndarray  # int64 [N] index into points
    pixels: np.ndarray  # float64 [N, 2]


@dataclass(frozen=True, eq=False)
class BoardObservations:
    """Corners of one rigid board seen at K poses: corner ``corner[i]`` of pose ``pose[i]`` in ``camera[i]``."""

    camera: np.ndarray  # int64 [N]
    pose: np.ndarray  # int64 [N] index into board poses
    corner: np.ndarray  # int64 [N] corner id (row of board.corner_points())
    pixels: np.ndarray  # float64 [N, 2]


@dataclass(frozen=True, eq=False)
class BundleResult:
    """The adjusted rig, points and board poses, the residuals (px, observation order) and how it went."""

    rig: Rig
    points: np.ndarray | None  # [P, 3]
    board_R: np.ndarray | None  # [K, 3, 3] board -> world
    board_t: np.ndarray | None  # [K, 3]
    point_residuals: np.ndarray | None  # [N, 2] px, projected - observed
    board_residuals: np.ndarray | None  # [N, 2] px
    camera_rms: dict[str, float]  # px, per camera, over inlier observations (NaN: none)
    cost: tuple[float, float]  # initial, final (0.5 * sum of the robust loss, px^2)
    nfev: int
    seconds: float


# --- rotations and their derivatives ---------------------------------------------------------------------

def _cross_times(v: np.ndarray, M: np.ndarray) -> np.ndarray:
    """[v]x @ M for v [N, 3] and M [N, 3, k]."""
    a, b, c = v[:, 0, None], v[:, 1, None], v[:, 2, None]
    m0, m1, m2 = M[:, 0], M[:, 1], M[:, 2]
    return np.stack([b * m2 - c * m1, c * m0 - a * m2, a * m1 - b * m0], axis=1)


def _skew(w: np.ndarray) -> np.ndarray:
    """[w]x, [N, 3, 3]."""
    K = np.zeros(w.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = w[..., 2], -w[..., 1], w[..., 0]
    return K


def rotation_and_jacobian(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation vectors [N, 3] -> rotation matrices R [N, 3, 3] and left Jacobians J_l [N, 3, 3], where
    ``d (R(w) v) / d w = -[R(w) v]x J_l(w)``."""
    w = np.asarray(w, float).reshape(-1, 3)
    th2 = np.einsum("ni,ni->n", w, w)
    th = np.sqrt(th2)
    small = th < _SMALL_ANGLE
    safe = np.where(small, 1.0, th)
    a = np.where(small, 1 - th2 / 6 + th2 * th2 / 120, np.sin(safe) / safe)  # sin t / t
    half = np.sin(safe / 2) / safe
    b = np.where(small, 0.5 - th2 / 24 + th2 * th2 / 720, 2 * half * half)  # (1 - cos t) / t^2
    c = np.where(small, 1 / 6 - th2 / 120 + th2 * th2 / 5040, (safe - np.sin(safe)) / (safe * safe * safe))
    K = _skew(w)
    K2 = K @ K
    eye = np.eye(3)
    R = eye + a[:, None, None] * K + b[:, None, None] * K2
    J = eye + b[:, None, None] * K + c[:, None, None] * K2
    return R, J


# --- lens models -----------------------------------------------------------------------------------------

def _distort_pinhole(x, y, d):
    """OpenCV's rational model with per-observation coefficients d [N, 8]: xd, yd, the 2x2 derivative
    (d00, d01, d10, d11) and the derivatives of (xd, yd) by (k1, k2, p1, p2, k3), each [N, 5]."""
    k1, k2, p1, p2, k3, k4, k5, k6 = d.T
    xd, yd, r2, num, den, a = rational_terms(x, y, d.T)
    dnum = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    dden = k4 + r2 * (2 * k5 + 3 * k6 * r2)
    da = (dnum * den - num * dden) / (den * den)  # d a / d r2
    cross = 2 * x * y * da + 2 * p1 * x + 2 * p2 * y
    d00 = a + 2 * x * x * da + 2 * p1 * y + 6 * p2 * x
    d11 = a + 2 * y * y * da + 6 * p1 * y + 2 * p2 * x
    r4 = r2 * r2
    dak = np.stack([r2, r4, r4 * r2], -1) / den[:, None]  # d a / d (k1, k2, k3)
    dx_dk = np.column_stack([x[:, None] * dak[:, :2], 2 * x * y, r2 + 2 * x * x, x * dak[:, 2]])
    dy_dk = np.column_stack([y[:, None] * dak[:, :2], r2 + 2 * y * y, 2 * x * y, y * dak[:, 2]])
    return xd, yd, (d00, cross, cross, d11), dx_dk, dy_dk


def _distort_fisheye(x, y, d):
    """cv2.fisheye's equidistant model with per-observation coefficients d [N, 4]: xd, yd and the 2x2
    derivative (d00, d01, d10, d11)."""
    k1, k2, k3, k4 = d.T
    r2 = x * x + y * y
    r = np.sqrt(r2)
    theta = np.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    tiny = r <= 1e-12
    safe_r = np.where(tiny, 1.0, r)
    scale = np.where(tiny, 1.0, theta_d / safe_r)
    dtheta_d = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + 9 * t2 * k4)))
    small = r < _SMALL_RADIUS
    g = np.where(small, 2 * (k1 - 1 / 3),
                 (dtheta_d * safe_r / (1 + r2) - theta_d) / (safe_r * safe_r * safe_r))  # (d scale / d r) / r
    xy = x * y * g
    return x * scale, y * scale, (scale + x * x * g, xy, xy, scale + y * y * g)


# --- the problem -----------------------------------------------------------------------------------------

def _rho(z: np.ndarray, loss: str) -> np.ndarray:
    """scipy's robust loss rho(z) for z = (f / f_scale)^2."""
    if loss == "linear":
        return z
    if loss == "soft_l1":
        return 2 * (np.sqrt(1 + z) - 1)
    if loss == "huber":
        return np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    if loss == "cauchy":
        return np.log1p(z)
    return np.arctan(z)


class _Problem:
    """The parameter layout, the fixed camera data and the residual / Jacobian of one adjustment."""

    def __init__(self, rig: Rig, fixed: Sequence[int], refine_intrinsics: bool, points, point_obs,
                 board_points, board_R, board_t, board_obs):
        C = len(rig)
        self.rig = rig
        self.fixed = np.zeros(C, bool)
        self.fixed[list(fixed)] = True
        self.fisheye = np.array([c.model == "fisheye" for c in rig])
        self.refine = np.array([refine_intrinsics and c.model == "pinhole" for c in rig])
        self.rotvec = np.stack([matrix_to_rotvec(c.R) for c in rig])
        self.trans = np.stack([c.t for c in rig])
        self.intr = np.zeros((C, 9))  # fx fy cx cy k1 k2 p1 p2 k3
        self.skew = np.array([c.K[0, 1] for c in rig])
        self.dist8 = np.zeros((C, 8))
        self.dist_fish = np.zeros((C, 4))
        for i, cam in enumerate(rig):
            self.intr[i, :4] = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
            if cam.model == "fisheye":
                self.dist_fish[i] = cam.dist
            else:
                self.dist8[i, :cam.dist.size] = cam.dist
        self.intr[:, 4:6] = self.dist8[:, :2]
        self.intr[:, 6:8] = self.dist8[:, 2:4]
        self.intr[:, 8] = self.dist8[:, 4]

        free = np.flatnonzero(~self.fixed)
        refined = np.flatnonzero(self.refine)
        self.cam_col = np.full(C, -1)
        self.cam_col[free] = 6 * np.arange(free.size)
        self.intr_col = np.full(C, -1)
        self.intr_col[refined] = 6 * free.size + 9 * np.arange(refined.size)
        self.board_col0 = 6 * free.size + 9 * refined.size
        self.corners = None if board_obs is None else np.asarray(board_points, float).reshape(-1, 3)
        self.n_poses = 0 if board_obs is None else len(board_R)
        self.point_col0 = self.board_col0 + 6 * self.n_poses
        self.n_points = 0 if point_obs is None else len(points)
        self.n_params = self.point_col0 + 3 * self.n_points

        x0 = [self.rotvec[free], self.trans[free]]
        x0 = [np.column_stack(x0).ravel(), self.intr[refined].ravel()]
        if board_obs is not None:
            x0.append(np.column_stack([matrix_to_rotvec(np.asarray(board_R, float)).reshape(-1, 3),
                                       np.asarray(board_t, float).reshape(-1, 3)]).ravel())
        if point_obs is not None:
            x0.append(np.asarray(points, float).reshape(-1))
        self.x0 = np.concatenate(x0)

        self.board_obs, self.point_obs = board_obs, point_obs
        cams, observed = [], []
        if board_obs is not None:
            cams.append(board_obs.camera)
            observed.append(board_obs.pixels)
        if point_obs is not None:
            cams.append(point_obs.camera)
            observed.append(point_obs.pixels)
        self.cam = np.concatenate(cams).astype(np.int64)
        self.observed = np.concatenate(observed).astype(float)
        self.n_board = 0 if board_obs is None else board_obs.camera.size
        self.any_fisheye = bool(self.fisheye[self.cam].any())
        self.fish_obs = self.fisheye[self.cam]
        self._structure()

    # --- parameter vector <-> arrays ---
    def unpack(self, x: np.ndarray):
        free = ~self.fixed
        n_free = int(free.sum())
        cam = x[:6 * n_free].reshape(-1, 6)
        rotvec, trans = self.rotvec.copy(), self.trans.copy()
        rotvec[free], trans[free] = cam[:, :3], cam[:, 3:]
        intr = self.intr.copy()
        intr[self.refine] = x[6 * n_free:self.board_col0].reshape(-1, 9)
        board = x[self.board_col0:self.point_col0].reshape(-1, 6)
        points = x[self.point_col0:].reshape(-1, 3)
        return rotvec, trans, intr, board, points

    def _structure(self) -> None:
        """The CSR structure of the Jacobian: which entries of the dense per-observation blocks are kept."""
        groups = []
        if self.board_obs is not None:
            pose = np.asarray(self.board_obs.pose, np.int64)
            groups.append((self.board_obs.camera, self.board_col0 + 6 * pose[:, None] + np.arange(6)))
        if self.point_obs is not None:
            point = np.asarray(self.point_obs.point, np.int64)
            groups.append((self.point_obs.camera, self.point_col0 + 3 * point[:, None] + np.arange(3)))
        keep, indices, counts = [], [], []
        offset = 0
        for cam, own in groups:
            cam = np.asarray(cam, np.int64)
            cols = np.concatenate([self.cam_col[cam][:, None] + np.arange(6),
                                   self.intr_col[cam][:, None] + np.arange(9), own], axis=1)
            valid = np.concatenate([np.repeat(self.cam_col[cam][:, None] >= 0, 6, 1),
                                    np.repeat(self.intr_col[cam][:, None] >= 0, 9, 1),
                                    np.ones(own.shape, bool)], axis=1)
            mask = np.broadcast_to(valid[:, None, :], (cam.size, 2, valid.shape[1])).ravel()
            flat = np.flatnonzero(mask)
            keep.append(flat + offset)
            indices.append(np.broadcast_to(cols[:, None, :], (cam.size, 2, cols.shape[1])).ravel()[flat])
            counts.append(np.repeat(valid.sum(1), 2))
            offset += mask.size
        self.keep = np.concatenate(keep)
        self.indices = np.concatenate(indices).astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int32)

    # --- residuals and Jacobian ---
    def evaluate(self, x: np.ndarray, jacobian: bool):
        rotvec, trans, intr, board, points = self.unpack(x)
        Rc, Jc = rotation_and_jacobian(rotvec)
        cam = self.cam
        Xw, RbP, Jb = [], None, None
        if self.board_obs is not None:
            Rb, Jb = rotation_and_jacobian(board[:, :3])
            pose, corner = self.board_obs.pose, self.board_obs.corner
            RbP = np.einsum("nij,nj->ni", Rb[pose], self.corners[corner])
            Xw.append(RbP + board[pose, 3:])
        if self.point_obs is not None:
            Xw.append(points[self.point_obs.point])
        Xw = np.concatenate(Xw)
        Rg = Rc[cam]
        RX = np.einsum("nij,nj->ni", Rg, Xw)
        Xc = RX + trans[cam]
        z = np.maximum(Xc[:, 2], _Z_MIN)
        x_n, y_n = Xc[:, 0] / z, Xc[:, 1] / z
        fx, fy, cx, cy = intr[cam, 0], intr[cam, 1], intr[cam, 2], intr[cam, 3]
        s = self.skew[cam]
        dist = self.dist8.copy()
        dist[:, :5] = intr[:, [4, 5, 6, 7, 8]]
        xd, yd, D, dx_dk, dy_dk = _distort_pinhole(x_n, y_n, dist[cam])
        if self.any_fisheye:
            f = self.fish_obs
            fxd, fyd, fD = _distort_fisheye(x_n[f], y_n[f], self.dist_fish[cam[f]])
            xd, yd = xd.copy(), yd.copy()
            xd[f], yd[f] = fxd, fyd
            D = tuple(np.where(f, 0.0, Di) for Di in D)
            for Di, fDi in zip(D, fD, strict=True):
                Di[f] = fDi
        u = fx * xd + s * yd + cx
        v = fy * yd + cy
        res = np.column_stack([u, v]) - self.observed
        if not jacobian:
            return res.ravel()

        # d pixel / d x_cam = A D P: A = [[fx, s], [0, fy]], P the perspective division
        N = cam.size
        a00, a01, a11 = fx * D[0] + s * D[2], fx * D[1] + s * D[3], fy * D[3]
        a10 = fy * D[2]
        G = np.empty((N, 2, 3))
        G[:, 0, 0], G[:, 0, 1] = a00 / z, a01 / z
        G[:, 1, 0], G[:, 1, 1] = a10 / z, a11 / z
        G[:, 0, 2] = -(a00 * x_n + a01 * y_n) / z
        G[:, 1, 2] = -(a10 * x_n + a11 * y_n) / z
        GR = G @ Rg  # d pixel / d X_world
        blocks = [G @ -_cross_times(RX, Jc[cam]), G]
        intr_block = np.zeros((N, 2, 9))
        intr_block[:, 0, 0], intr_block[:, 1, 1] = xd, yd
        intr_block[:, 0, 2], intr_block[:, 1, 3] = 1.0, 1.0
        intr_block[:, 0, 4:] = fx[:, None] * dx_dk + s[:, None] * dy_dk
        intr_block[:, 1, 4:] = fy[:, None] * dy_dk
        blocks.append(intr_block)
        data = []
        head = np.concatenate(blocks, axis=2)  # [N, 2, 15]: camera pose, intrinsics
        nb = self.n_board
        if self.board_obs is not None:
            GRb = GR[:nb]
            board_block = np.concatenate([GRb @ -_cross_times(RbP, Jb[self.board_obs.pose]), GRb], axis=2)
            data.append(np.concatenate([head[:nb], board_block], axis=2).ravel())
        if self.point_obs is not None:
            data.append(np.concatenate([head[nb:], GR[nb:]], axis=2).ravel())
        values = np.concatenate(data)[self.keep]
        return csr_matrix((values, self.indices, self.indptr), shape=(2 * N, self.n_params))


def _check(rig: Rig, points, point_obs, board_points, board_R, board_t, board_obs, fixed, loss, f_scale) -> None:
    C = len(rig)
    if point_obs is None and board_obs is None:
        raise CalibrationError("bundle adjustment got no observations: pass point_obs (free points) and/or "
                               "board_obs (board corners)")
    if loss not in LOSSES:
        raise CalibrationError(f"bundle adjustment: loss {loss!r} is not one of {', '.join(LOSSES)}")
    if not f_scale > 0:
        raise CalibrationError(f"bundle adjustment: f_scale must be a positive number of pixels, got {f_scale}")
    bad = [c for c in fixed if not 0 <= c < C]
    if bad:
        raise CalibrationError(f"bundle adjustment: fixed_cameras {bad} are not camera indices of a {C}-camera rig")
    for name, obs, size in (("point_obs", point_obs, None if points is None else len(points)),
                            ("board_obs", board_obs, None if board_R is None else len(board_R))):
        if obs is None:
            continue
        if size is None:
            raise CalibrationError(f"bundle adjustment: {name} given without "
                                   f"{'points' if name == 'point_obs' else 'board_points, board_R and board_t'}")
        n = obs.camera.size
        index = obs.point if name == "point_obs" else obs.pose
        if obs.pixels.shape != (n, 2) or index.shape != (n,) or not np.isfinite(obs.pixels).all():
            raise CalibrationError(f"bundle adjustment: {name} needs camera [N], index [N] and finite pixels "
                                   f"[N, 2]; got {obs.camera.shape}, {index.shape}, {obs.pixels.shape}")
        if n and (obs.camera.min() < 0 or obs.camera.max() >= C or index.min() < 0 or index.max() >= size):
            raise CalibrationError(f"bundle adjustment: {name} refers to cameras or "
                                   f"{'points' if name == 'point_obs' else 'board poses'} that do not exist")
    if board_obs is not None:
        M = np.asarray(board_points).reshape(-1, 3).shape[0]
        if board_obs.corner.size and (board_obs.corner.min() < 0 or board_obs.corner.max() >= M):
            raise CalibrationError(f"bundle adjustment: board_obs has corner ids outside the board's {M} corners")
        if np.asarray(board_t).reshape(-1, 3).shape[0] != len(board_R):
            raise CalibrationError("bundle adjustment: board_R and board_t have different numbers of poses")


def bundle_adjust(rig: Rig, *, points: np.ndarray | None = None, point_obs: PointObservations | None = None,
                  board_points: np.ndarray | None = None, board_R: np.ndarray | None = None,
                  board_t: np.ndarray | None = None, board_obs: BoardObservations | None = None,
                  fixed_cameras: Sequence[int] = (0,), refine_intrinsics: bool = False,
                  loss: str = "soft_l1", f_scale: float = 2.0, max_nfev: int = 100,
                  progress: Callable[[int, int], None] | None = None) -> BundleResult:
    """Refine camera poses (and board poses, free points, optionally intrinsics) to minimise the robust
    reprojection error of every observation; the cameras in ``fixed_cameras`` hold the world frame."""
    started = time.perf_counter()
    point_obs = _as_int(point_obs, ("camera", "point"))
    board_obs = _as_int(board_obs, ("camera", "pose", "corner"))
    fixed = sorted({int(c) for c in fixed_cameras})
    _check(rig, points, point_obs, board_points, board_R, board_t, board_obs, fixed, loss, f_scale)
    problem = _Problem(rig, fixed, refine_intrinsics, points, point_obs, board_points, board_R, board_t, board_obs)

    r0 = problem.evaluate(problem.x0, jacobian=False)
    cost0 = 0.5 * f_scale ** 2 * float(_rho((r0 / f_scale) ** 2, loss).sum())
    typical = float(np.median(np.linalg.norm(r0.reshape(-1, 2), axis=1))) if r0.size else 0.0
    scales = ([typical] if loss != "linear" and typical > WIDE_START * f_scale else []) + [f_scale]
    total = len(scales) * max_nfev
    x, cost1, nfev = problem.x0, cost0, 0
    for scale in scales if problem.n_params else []:
        x, cost1, n = _solve(problem, x, loss, scale, max_nfev, progress, nfev, total)
        nfev += n
    if progress is not None:
        progress(total, total)
    return _result(problem, x, cost0, cost1, nfev, f_scale, time.perf_counter() - started)


def _solve(problem: _Problem, x0: np.ndarray, loss: str, f_scale: float, max_nfev: int, progress, done: int,
           total: int) -> tuple[np.ndarray, float, int]:
    """One run of scipy's trust-region reflective solver: (x, final cost, residual evaluations)."""
    calls = [0]

    def fun(x):
        calls[0] += 1
        return problem.evaluate(x, jacobian=False)

    def jac(x):
        return problem.evaluate(x, jacobian=True)

    def callback(intermediate_result):
        progress(done + min(calls[0], max_nfev), total)

    with _one_blas_thread():
        sol = least_squares(fun, x0, jac=jac, method="trf", x_scale="jac", loss=loss, f_scale=f_scale,
                            max_nfev=max_nfev, ftol=FTOL, tr_solver="lsmr", tr_options={"atol": LSMR_TOL,
                                                                                       "btol": LSMR_TOL},
                            callback=callback if progress is not None else None)
    return sol.x, float(sol.cost), int(sol.nfev)


def _one_blas_thread():
    """BLAS limited to one thread while the solver runs: the vectors are too short for threads to pay, and on
    a busy machine each threaded call waits for a free core."""
    return threadpool_limits(1, user_api="blas")


def _as_int(obs, fields):
    """The observations with integer index arrays and float pixels (a copy only where needed)."""
    if obs is None:
        return None
    changes = {f: np.asarray(getattr(obs, f)).astype(np.int64, copy=False).reshape(-1) for f in fields}
    changes["pixels"] = np.asarray(obs.pixels, float).reshape(-1, 2)
    return type(obs)(**changes)


def _result(problem: _Problem, x, cost0, cost1, nfev, f_scale, seconds) -> BundleResult:
    rotvec, trans, intr, board, points = problem.unpack(x)
    R, _ = rotation_and_jacobian(rotvec)
    cams = []
    for i, cam in enumerate(problem.rig):
        if not problem.fixed[i]:
            cam = cam.with_extrinsics(R[i], trans[i])
        if problem.refine[i]:
            K = cam.K.copy()
            K[0, 0], K[1, 1], K[0, 2], K[1, 2] = intr[i, :4]
            dist = problem.dist8[i].copy()
            dist[:5] = intr[i, 4:]
            cam = cam.with_intrinsics(K, dist[:max(5, cam.dist.size)])
        cams.append(cam)
    rig = problem.rig.replace(cameras=tuple(cams))
    res = problem.evaluate(x, jacobian=False).reshape(-1, 2)
    norm = np.linalg.norm(res, axis=1)
    inlier = norm < INLIER_FACTOR * f_scale
    rms = {}
    for i, cam in enumerate(rig):
        sel = inlier & (problem.cam == i)
        rms[cam.name] = float(np.sqrt(np.mean(norm[sel] ** 2))) if sel.any() else float("nan")
    nb = problem.n_board
    board_R = board_t = None
    if problem.board_obs is not None:
        board_R, _ = rotation_and_jacobian(board[:, :3])
        board_t = board[:, 3:].copy()
    return BundleResult(
        rig=rig, points=points.copy() if problem.point_obs is not None else None, board_R=board_R,
        board_t=board_t, point_residuals=res[nb:] if problem.point_obs is not None else None,
        board_residuals=res[:nb] if problem.board_obs is not None else None, camera_rms=rms,
        cost=(cost0, cost1), nfev=nfev, seconds=seconds)
