"""Bundle adjustment: exact Jacobian, projection identical to rigs.projection, recovery of perturbed cameras,
points, board poses and focal lengths, robustness to outliers, fixed cameras, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.bundle_adjust import (
    BoardObservations,
    PointObservations,
    _Problem,
    bundle_adjust,
    rotation_and_jacobian,
)
from calibration.errors import CalibrationError
from rigs.board import Board
from rigs.camera import Rig
from rigs.formats import load_rig

BOARD = Board.parse("charuco:5x7:0.08:0.06:DICT_5X5_100")


def _rig(distorted: bool = True, fisheye: int | None = None) -> Rig:
    """studio-8 with lens distortion on odd cameras and optionally one fisheye camera."""
    cams = []
    for i, cam in enumerate(load_rig("studio-8")):
        if i == fisheye:
            cam = cam.replace(model="fisheye", dist=np.array([0.05, -0.01, 0.002, -0.001]))
        elif distorted and i % 2:
            cam = cam.with_intrinsics(cam.K, np.array([-0.12, 0.06, 0.0008, -0.0011, -0.01]))
        cams.append(cam)
    return Rig(tuple(cams), name="test")


def _points(rng, n: int) -> np.ndarray:
    return rng.uniform([-1.2, -1.2, 0.3], [1.2, 1.2, 1.9], (n, 3))


def _point_obs(rig: Rig, X: np.ndarray, rng=None, noise: float = 0.0) -> PointObservations:
    """Every point in every camera where it lands inside the image."""
    cam, pt, px = [], [], []
    for c, camera in enumerate(rig):
        p = camera.project(X)
        inside = np.isfinite(p).all(1) & camera.in_image(np.nan_to_num(p, nan=-1e9))
        cam.append(np.full(inside.sum(), c))
        pt.append(np.flatnonzero(inside))
        px.append(p[inside])
    px = np.concatenate(px)
    if noise:
        px = px + rng.normal(0, noise, px.shape)
    return PointObservations(np.concatenate(cam), np.concatenate(pt), px)


def _board_poses(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Board -> world poses facing random horizontal directions, within 1.5 m of the centre."""
    az = rng.uniform(0, 2 * np.pi, n)
    R = Rotation.from_euler("zyx", np.column_stack([az, rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n)]))
    face = Rotation.from_euler("x", -np.pi / 2) * Rotation.from_euler("z", np.pi / 2)  # board y down, face +x
    centre = np.column_stack([rng.uniform(-1.5, 1.5, (n, 2)), rng.uniform(0.8, 1.6, n)])
    Rm = (R * face).as_matrix()
    w, h = BOARD.size
    return Rm, centre - Rm @ np.array([w / 2, h / 2, 0])


def _board_obs(rig: Rig, R: np.ndarray, t: np.ndarray, rng=None, noise: float = 0.0) -> BoardObservations:
    """Every board corner in every camera that sees the board's face, inside the image."""
    P = BOARD.corner_points()
    X = np.einsum("kij,mj->kmi", R, P) + t[:, None]
    cam, pose, corner, px = [], [], [], []
    for c, camera in enumerate(rig):
        faces = np.einsum("ki,ki->k", camera.center - t, -R[:, :, 2]) > 0
        p = camera.project(X)
        inside = np.isfinite(p).all(-1) & camera.in_image(np.nan_to_num(p, nan=-1e9)) & faces[:, None]
        k, m = np.nonzero(inside)
        cam.append(np.full(k.size, c))
        pose.append(k)
        corner.append(m)
        px.append(p[k, m])
    px = np.concatenate(px)
    if noise:
        px = px + rng.normal(0, noise, px.shape)
    return BoardObservations(np.concatenate(cam), np.concatenate(pose), np.concatenate(corner), px)


def _perturbed(rig: Rig, rng, deg: float, metres: float, keep=(0,)) -> Rig:
    cams = []
    for i, cam in enumerate(rig):
        if i not in keep:
            dR = Rotation.from_rotvec(rng.normal(0, 1, 3) * np.radians(deg) / np.sqrt(3)).as_matrix()
            cam = cam.with_extrinsics(dR @ cam.R, cam.t + rng.normal(0, metres, 3))
        cams.append(cam)
    return rig.replace(cameras=tuple(cams))


def _pose_errors(a: Rig, b: Rig) -> tuple[float, float]:
    """Largest rotation (rad) and centre (m) difference between the rigs' cameras."""
    rot = max(Rotation.from_matrix(ca.R @ cb.R.T).magnitude() for ca, cb in zip(a, b, strict=True))
    pos = max(np.linalg.norm(ca.center - cb.center) for ca, cb in zip(a, b, strict=True))
    return float(rot), float(pos)


def test_rotation_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    w = np.vstack([rng.normal(0, 1, (4, 3)), [[1e-9, 0, 0], [0.0, 0, 0], [0.003, -0.002, 0.001]]])
    v = rng.normal(0, 1, 3)
    R, J = rotation_and_jacobian(w)
    assert np.allclose(R, Rotation.from_rotvec(w).as_matrix(), atol=1e-15)
    for i in range(len(w)):
        num = np.zeros((3, 3))
        for j in range(3):
            e = np.zeros(3)
            e[j] = 1e-6
            num[:, j] = (rotation_and_jacobian(w[i] + e)[0][0] @ v - rotation_and_jacobian(w[i] - e)[0][0] @ v) / 2e-6
        Rv = R[i] @ v
        skew = np.array([[0, -Rv[2], Rv[1]], [Rv[2], 0, -Rv[0]], [-Rv[1], Rv[0], 0]])
        assert np.allclose(-skew @ J[i], num, atol=1e-8)


@pytest.mark.parametrize("refine", [False, True])
def test_jacobian_matches_finite_differences(refine):
    rng = np.random.default_rng(1)
    rig = _rig(fisheye=3)
    X = _points(rng, 12)
    bR, bt = _board_poses(rng, 4)
    pobs, bobs = _point_obs(rig, X), _board_obs(rig, bR, bt)
    problem = _Problem(rig, [0], refine, X, pobs, BOARD.corner_points(), bR, bt, bobs)
    x = problem.x0 + rng.normal(0, 1e-3, problem.x0.shape)
    J = problem.evaluate(x, jacobian=True).toarray()
    num = np.empty_like(J)
    for j in range(x.size):
        h = 1e-6 * max(1.0, abs(x[j]))
        e = np.zeros_like(x)
        e[j] = h
        num[:, j] = (problem.evaluate(x + e, jacobian=False) - problem.evaluate(x - e, jacobian=False)) / (2 * h)
    assert J.shape == (2 * (pobs.camera.size + bobs.camera.size), x.size)
    assert np.abs(J - num).max() < 1e-5 * max(1.0, np.abs(num).max())
    assert np.count_nonzero(J[:, :6]) > 0 and not (J == 0).all(axis=0).any()  # every parameter is seen


def test_residuals_are_rigs_projection():
    rng = np.random.default_rng(2)
    rig = _rig(fisheye=5)
    X = _points(rng, 40)
    obs = _point_obs(rig, X, rng, noise=1.0)
    problem = _Problem(rig, [0], False, X, obs, None, None, None, None)
    res = problem.evaluate(problem.x0, jacobian=False).reshape(-1, 2)
    expect = np.concatenate([rig[c].project(X[obs.point[obs.camera == c]]) for c in range(len(rig))])
    assert np.abs(res - (expect - obs.pixels)).max() < 1e-8


def test_recovers_perturbed_cameras_and_points_without_noise():
    rng = np.random.default_rng(3)
    rig = _rig()
    X = _points(rng, 150)
    obs = _point_obs(rig, X)
    start = _perturbed(rig, rng, deg=1.0, metres=0.05, keep=(0, 1))  # two fixed cameras fix the scale
    out = bundle_adjust(start, points=X + rng.normal(0, 0.02, X.shape), point_obs=obs, fixed_cameras=(0, 1),
                        loss="linear", max_nfev=50)
    rot, pos = _pose_errors(out.rig, rig)
    assert rot < 1e-6 and pos < 1e-6
    assert np.abs(out.points - X).max() < 1e-6
    assert np.abs(out.point_residuals).max() < 1e-6
    assert out.cost[1] < 1e-9 < out.cost[0] and out.nfev > 1 and out.board_R is None


def test_recovers_perturbed_cameras_and_board_poses_without_noise():
    rng = np.random.default_rng(4)
    rig = _rig(fisheye=6)
    bR, bt = _board_poses(rng, 40)
    obs = _board_obs(rig, bR, bt)
    start = _perturbed(rig, rng, deg=1.0, metres=0.05)
    dR = Rotation.from_rotvec(rng.normal(0, 0.01, (40, 3))).as_matrix()
    out = bundle_adjust(start, board_points=BOARD.corner_points(), board_R=dR @ bR,
                        board_t=bt + rng.normal(0, 0.02, bt.shape), board_obs=obs, loss="linear", max_nfev=50)
    rot, pos = _pose_errors(out.rig, rig)
    assert rot < 1e-6 and pos < 1e-6
    assert np.abs(out.board_t - bt).max() < 1e-6 and np.abs(out.board_R - bR).max() < 1e-6
    assert all(v < 1e-6 for v in out.camera_rms.values())


def test_robust_loss_ignores_outliers():
    rng = np.random.default_rng(5)
    rig = _rig()
    bR, bt = _board_poses(rng, 40)
    clean = _board_obs(rig, bR, bt, rng, noise=0.5)
    bad = rng.random(clean.camera.size) < 0.04
    px = clean.pixels.copy()
    px[bad] += rng.uniform(20, 80, (bad.sum(), 2)) * rng.choice([-1, 1], (bad.sum(), 2))
    obs = BoardObservations(clean.camera, clean.pose, clean.corner, px)
    start = _perturbed(rig, rng, deg=0.5, metres=0.03)
    kw = dict(board_points=BOARD.corner_points(), board_R=bR, board_t=bt, board_obs=obs, max_nfev=60)
    robust = bundle_adjust(start, loss="soft_l1", f_scale=1.0, **kw)
    plain = bundle_adjust(start, loss="linear", **kw)
    rot_r, pos_r = _pose_errors(robust.rig, rig)
    rot_p, pos_p = _pose_errors(plain.rig, rig)
    assert np.degrees(rot_r) < 0.02 and pos_r < 0.002
    assert pos_p > 3 * pos_r
    norm = np.linalg.norm(robust.board_residuals, axis=1)
    assert (norm[bad] > 10).all() and np.median(norm[~bad]) < 1.0  # the outliers stay outliers
    assert all(0.5 < v < 1.0 for v in robust.camera_rms.values())  # RMS over inliers: about 0.5 * sqrt(2)


def test_rough_start_reaches_the_robust_optimum():
    """From 2 degrees off, the wide first solve hands over to the requested loss: same optimum as from the truth."""
    rng = np.random.default_rng(9)
    rig = _rig()
    X = _points(rng, 400)
    obs = _point_obs(rig, X, rng, noise=1.0)
    rough = _perturbed(rig, rng, deg=2.0, metres=0.1, keep=(0, 1))
    kw = dict(point_obs=obs, fixed_cameras=(0, 1), loss="soft_l1", f_scale=2.0)
    near = bundle_adjust(rig, points=X, **kw)
    far = bundle_adjust(rough, points=X + rng.normal(0, 0.05, X.shape), **kw)
    rot, pos = _pose_errors(far.rig, near.rig)
    assert rot < 1e-6 and pos < 1e-5 and far.nfev < 40
    assert far.cost[1] == pytest.approx(near.cost[1], rel=1e-6) and far.cost[0] > 10 * far.cost[1]


def test_fixed_cameras_stay_fixed():
    rng = np.random.default_rng(6)
    rig = _rig()
    X = _points(rng, 80)
    obs = _point_obs(rig, X, rng, noise=0.5)
    start = _perturbed(rig, rng, deg=0.5, metres=0.03, keep=())
    out = bundle_adjust(start, points=X, point_obs=obs, fixed_cameras=(2, 5), max_nfev=20)
    for i, (a, b) in enumerate(zip(out.rig, start, strict=True)):
        if i in (2, 5):
            assert np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t)
        else:
            assert not np.array_equal(a.t, b.t)
        assert np.array_equal(a.K, b.K) and np.array_equal(a.dist, b.dist)


def test_refine_intrinsics_recovers_perturbed_focal():
    rng = np.random.default_rng(7)
    rig = _rig(fisheye=4)
    bR, bt = _board_poses(rng, 40)
    obs = _board_obs(rig, bR, bt)
    K = rig[3].K.copy()
    K[0, 0] *= 1.03
    K[1, 1] *= 0.98
    start = rig.with_camera(rig[3].with_intrinsics(K))
    out = bundle_adjust(start, board_points=BOARD.corner_points(), board_R=bR, board_t=bt, board_obs=obs,
                        refine_intrinsics=True, loss="linear", max_nfev=60)
    assert np.allclose(out.rig[3].K, rig[3].K, rtol=1e-6, atol=1e-4)
    assert np.allclose(out.rig[3].dist, rig[3].dist, atol=1e-6)
    assert np.array_equal(out.rig[4].K, rig[4].K) and out.rig[4].model == "fisheye"  # fisheye: poses only
    rot, pos = _pose_errors(out.rig, rig)
    assert rot < 1e-6 and pos < 1e-6


def test_deterministic_and_reports_progress():
    rng = np.random.default_rng(8)
    rig = _rig()
    bR, bt = _board_poses(rng, 20)
    obs = _board_obs(rig, bR, bt, rng, noise=0.5)
    start = _perturbed(rig, rng, deg=0.5, metres=0.03)
    X = _points(rng, 30)
    pobs = _point_obs(rig, X, rng, noise=0.5)
    calls = []
    runs = [bundle_adjust(start, points=X, point_obs=pobs, board_points=BOARD.corner_points(), board_R=bR,
                          board_t=bt, board_obs=obs, max_nfev=15, progress=lambda d, n: calls.append((d, n)))
            for _ in range(2)]
    a, b = runs
    assert a.cost == b.cost and a.nfev == b.nfev
    assert np.array_equal(a.board_residuals, b.board_residuals) and np.array_equal(a.points, b.points)
    assert all(np.array_equal(ca.R, cb.R) and np.array_equal(ca.t, cb.t) for ca, cb in zip(a.rig, b.rig, strict=True))
    assert calls and calls[-1][0] == calls[-1][1] >= 15 and all(0 <= d <= n for d, n in calls)


def test_bad_input_raises_calibration_error():
    rig = _rig()
    with pytest.raises(CalibrationError, match="no observations"):
        bundle_adjust(rig)
    obs = PointObservations(np.array([0, 9]), np.array([0, 0]), np.zeros((2, 2)))
    with pytest.raises(CalibrationError, match="do not exist"):
        bundle_adjust(rig, points=np.zeros((1, 3)), point_obs=obs)
    obs = PointObservations(np.array([0]), np.array([0]), np.zeros((1, 2)))
    with pytest.raises(CalibrationError, match="loss"):
        bundle_adjust(rig, points=np.zeros((1, 3)), point_obs=obs, loss="l2")
    with pytest.raises(CalibrationError, match="without points"):
        bundle_adjust(rig, point_obs=obs)
