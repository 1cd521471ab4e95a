"""Pose graph: robust rotation / translation averaging, relative poses from shared board views, chaining
along the best links, and clear errors for cameras that cannot be placed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.errors import CalibrationError
from calibration.pose_graph import average_rotations, average_translations, camera_graph, relative_pose


def _angle_deg(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(A @ B.T).magnitude()))


def test_average_rotations_ignores_a_flipped_estimate():
    rng = np.random.default_rng(0)
    truth = Rotation.from_rotvec([0.3, -1.2, 0.5])
    noisy = Rotation.from_rotvec(rng.normal(0, np.radians(0.3), (12, 3))) * truth
    flipped = Rotation.from_rotvec([np.pi, 0, 0]) * truth  # IPPE's mirror solution, or worse
    far = Rotation.from_rotvec([0, 0.6, 0]) * truth
    R = np.concatenate([noisy.as_matrix(), flipped.as_matrix()[None], far.as_matrix()[None]])
    mean, inliers = average_rotations(R)
    assert inliers[:12].all() and not inliers[12:].any()
    assert _angle_deg(mean, truth.as_matrix()) < 0.3
    plain = Rotation.from_matrix(R).mean().as_matrix()  # a non-robust mean is pulled away
    assert _angle_deg(plain, truth.as_matrix()) > 5 * _angle_deg(mean, truth.as_matrix())


def test_average_rotations_of_identical_estimates_is_exact():
    R = np.repeat(Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix()[None], 5, axis=0)
    mean, inliers = average_rotations(R)
    assert inliers.all() and np.allclose(mean, R[0], atol=1e-12)


def test_average_translations_ignores_outliers():
    rng = np.random.default_rng(1)
    t = np.array([1.0, -0.5, 2.0]) + rng.normal(0, 0.005, (20, 3))
    t[[3, 11]] += [[0.5, 0, 0], [0, -2.0, 1.0]]
    mean, inliers = average_translations(t)
    assert inliers.sum() == 18 and not inliers[[3, 11]].any()
    assert np.linalg.norm(mean - [1.0, -0.5, 2.0]) < 0.004


def _rig_poses(C: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera poses of C cameras on a ring looking inwards, camera 0 at the origin frame."""
    R = Rotation.from_rotvec(rng.normal(0, 0.8, (C, 3))).as_matrix()
    t = rng.normal(0, 2.0, (C, 3))
    R0, t0 = R[0], t[0]  # express everything in camera 0's frame: x_0 = R0 x + t0
    return R @ R0.T, t - np.einsum("cij,jk,k->ci", R, R0.T, t0)


def _views(R: np.ndarray, t: np.ndarray, seen: list[tuple[int, int]], rng, noise_deg=0.1, noise_m=0.002):
    """Board views (camera, frame, R_cb, t_cb) of random board poses for the given (camera, frame) pairs."""
    frames = max(f for _, f in seen) + 1
    bR = Rotation.from_rotvec(rng.normal(0, 1, (frames, 3))).as_matrix()
    bt = rng.normal(0, 1, (frames, 3))
    cam = np.array([c for c, _ in seen])
    frame = np.array([f for _, f in seen])
    Rcb = R[cam] @ bR[frame]
    tcb = np.einsum("nij,nj->ni", R[cam], bt[frame]) + t[cam]
    Rcb = Rotation.from_rotvec(rng.normal(0, np.radians(noise_deg), (len(seen), 3))).as_matrix() @ Rcb
    tcb = tcb + rng.normal(0, noise_m, tcb.shape)
    return cam, frame, Rcb, tcb


def test_relative_pose_from_shared_views():
    rng = np.random.default_rng(2)
    R, t = _rig_poses(2, rng)
    seen = [(c, f) for f in range(15) for c in (0, 1)]
    cam, frame, Rcb, tcb = _views(R, t, seen, rng)
    Rcb[1] = Rotation.from_rotvec([np.pi, 0, 0]).as_matrix() @ Rcb[1]  # one flipped board pose in camera 1
    R_ab, t_ab, n = relative_pose(Rcb[cam == 0], tcb[cam == 0], Rcb[cam == 1], tcb[cam == 1])
    R_true = R[0] @ R[1].T
    assert _angle_deg(R_ab, R_true) < 0.1
    assert np.linalg.norm(t_ab - (t[0] - R_true @ t[1])) < 0.005
    assert n == 14


def test_camera_graph_places_cameras_in_the_first_cameras_frame():
    rng = np.random.default_rng(3)
    C = 6
    R, t = _rig_poses(C, rng)
    # neighbours on a ring share views; no frame shows all cameras; 4-5 share only 3 views
    seen = [(c, f) for c in range(C) for f in range(60) if f % C in (c, (c + 1) % C)]
    seen = [(c, f) for c, f in seen if not ({c, (c + 1) % C} == {4, 5} and f > 30 and f % C == 4)]
    cam, frame, Rcb, tcb = _views(R, t, seen, rng)
    graph = camera_graph([f"c{i}" for i in range(C)], cam, frame, Rcb, tcb)
    assert np.allclose(graph.R[0], np.eye(3)) and np.allclose(graph.t[0], 0)
    for c in range(C):
        assert _angle_deg(graph.R[c], R[c]) < 0.3
        centre, true_centre = -graph.R[c].T @ graph.t[c], -R[c].T @ t[c]
        assert np.linalg.norm(centre - true_centre) < 0.03
    assert graph.connections[("c0", "c1")] == 10 and ("c0", "c3") not in graph.connections
    assert len(graph.tree) == C - 1 and {child for _, child in graph.tree} == {f"c{i}" for i in range(1, C)}
    assert ("c4", "c5") not in graph.tree  # the weakest link is not used when a better path exists
    assert not graph.warnings


def test_camera_graph_warns_about_a_weakly_connected_camera():
    rng = np.random.default_rng(4)
    R, t = _rig_poses(3, rng)
    seen = [(c, f) for f in range(12) for c in (0, 1)] + [(2, 0), (1, 100), (2, 100), (1, 101), (2, 101)]
    cam, frame, Rcb, tcb = _views(R, t, seen, rng)
    graph = camera_graph(["a", "b", "c"], cam, frame, Rcb, tcb)
    assert len(graph.warnings) == 1 and "camera c shares only 3 consistent board views with b" in graph.warnings[0]
    assert _angle_deg(graph.R[2], R[2]) < 0.5


def test_disconnected_camera_raises_with_its_name():
    rng = np.random.default_rng(5)
    R, t = _rig_poses(4, rng)
    seen = [(c, f) for f in range(10) for c in (0, 1, 2)] + [(3, 50), (3, 51)]
    cam, frame, Rcb, tcb = _views(R, t, seen, rng)
    names = ["left", "right", "top", "door"]
    with pytest.raises(CalibrationError, match=r"camera door saw the board in 2 usable views but never at the same "
                                               r"time.*seen by door and one of left, right, top at the same time"):
        camera_graph(names, cam, frame, Rcb, tcb)
    keep = cam != 3
    with pytest.raises(CalibrationError, match="camera door has no usable board view"):
        camera_graph(names, cam[keep], frame[keep], Rcb[keep], tcb[keep])


def test_cut_off_group_raises_naming_both_groups():
    rng = np.random.default_rng(6)
    R, t = _rig_poses(4, rng)
    seen = [(c, f) for f in range(10) for c in (0, 1)] + [(c, f) for f in range(20, 30) for c in (2, 3)]
    cam, frame, Rcb, tcb = _views(R, t, seen, rng)
    with pytest.raises(CalibrationError, match=r"cameras c2, c3 share board views only among themselves, never "
                                               r"with c0, c1"):
        camera_graph(["c0", "c1", "c2", "c3"], cam, frame, Rcb, tcb)
