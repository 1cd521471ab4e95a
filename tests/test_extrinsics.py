"""Extrinsics from a moving board: the issue's simulated accuracy target on the 8-camera studio, caliscope's real
detections against caliscope's own calibration, intrinsics refinement, determinism and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.board_detection import BoardView
from calibration.errors import CalibrationError
from calibration.extrinsics import calibrate_extrinsics, refine_extrinsics
from rigs.board import load_board
from rigs.camera import Rig
from rigs.formats import load_rig
from rigs.sim.board import SimulatedBoard, board_truth
from rigs.sim.board_motion import board_scattered

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CALISCOPE = SHARED / "mprib+caliscope" / "tests" / "sessions" / "post_optimization"
SIM = SimulatedBoard()
BOARD = SIM.spec


def _views(rig: Rig, poses, rng, noise: float) -> list[BoardView]:
    """What each camera detects: the face seen within 70 degrees, 6 corners or more, Gaussian noise."""
    views = []
    for f, pose in enumerate(poses):
        for cam in rig:
            ids, px = board_truth(cam, pose)
            d = cam.center - pose.center
            if ids.size >= 6 and np.dot(d / np.linalg.norm(d), pose.face_normal) > np.cos(np.radians(70)):
                views.append(BoardView(cam.name, f, ids, px + rng.normal(0, noise, px.shape), cam.size))
    return views


def _errors(result: Rig, truth: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (deg) and centre (m) error of every camera with both rigs in their first camera's frame."""
    a, b = result.transformed(result[0].R, result[0].t), truth.transformed(truth[0].R, truth[0].t)
    rot = np.array([np.degrees(Rotation.from_matrix(ca.R @ cb.R.T).magnitude()) for ca, cb in zip(a, b, strict=True)])
    pos = np.array([np.linalg.norm(ca.center - cb.center) for ca, cb in zip(a, b, strict=True)])
    return rot, pos


def _unplaced(rig: Rig) -> Rig:
    """The rig's intrinsics with every camera at the origin: what a first calibration starts from."""
    return rig.replace(cameras=tuple(c.with_extrinsics(np.eye(3), np.zeros(3)) for c in rig))


@pytest.fixture(scope="module")
def studio():
    """studio-8 with two other lenses (cam3 fisheye, cam5 strongly distorted), the board carried through it
    for 90 frames, 0.4 px noise."""
    rng = np.random.default_rng(0)
    cams = list(load_rig("studio-8"))
    cams[3] = cams[3].replace(model="fisheye", dist=np.array([0.05, -0.01, 0.002, -0.001]))
    cams[5] = cams[5].with_intrinsics(cams[5].K, np.array([-0.2, 0.1, 0.001, 0.001, -0.02]))
    truth = load_rig("studio-8").replace(cameras=tuple(cams))
    views = _views(truth, board_scattered(SIM, 90, rng), rng, noise=0.4)
    return truth, views


def test_simulated_studio_within_the_issues_targets(studio):
    truth, views = studio
    per_frame = np.bincount([v.frame for v in views])
    assert per_frame.max() < len(truth)  # the board is never seen by all cameras at once
    progress = []
    result = calibrate_extrinsics(_unplaced(truth), views, BOARD, progress=lambda d, n: progress.append((d, n)))
    rot, pos = _errors(result.rig, truth)
    print(f"simulated studio-8: rotation error max {rot.max():.4f} deg, position error max {1000 * pos.max():.2f} mm")
    assert rot.max() < 0.1 and pos.max() < 0.005  # the issue: 0.1 deg and 5 mm
    assert np.allclose(result.rig[0].R, np.eye(3)) and np.allclose(result.rig[0].t, 0)
    assert all(0.4 < v < 0.7 for v in result.camera_rms.values())  # 0.4 px noise: about 0.57 px RMS
    assert len(result.frames) == result.bundle.board_R.shape[0] and (np.diff(result.frames) > 0).all()
    assert result.connections[("cam0", "cam1")] > 5
    assert [c.name for c in result.rig] == list(truth.names) and all(
        np.array_equal(a.K, b.K) for a, b in zip(result.rig, truth, strict=True))
    assert progress[-1][0] == progress[-1][1] and all(d <= n for d, n in progress)


def test_deterministic_and_refines_a_known_rig(studio):
    truth, views = studio
    half = [v for v in views if v.frame < 45]
    a = calibrate_extrinsics(_unplaced(truth), half, BOARD)
    b = calibrate_extrinsics(_unplaced(truth), half, BOARD)
    assert all(np.array_equal(ca.R, cb.R) and np.array_equal(ca.t, cb.t) for ca, cb in zip(a.rig, b.rig, strict=True))
    # refining from a slightly wrong rig lands where a fresh calibration does
    moved = a.rig.with_camera(a.rig[3].with_extrinsics(Rotation.from_rotvec([0.02, 0, 0.01]).as_matrix()
                                                       @ a.rig[3].R, a.rig[3].t + 0.05))
    again = refine_extrinsics(moved, half, BOARD)
    rot, pos = _errors(again.rig, a.rig)
    assert rot.max() < 1e-3 and pos.max() < 1e-4


def test_refine_intrinsics_recovers_a_wrong_focal(studio):
    truth, views = studio
    K = truth[2].K.copy()
    K[0, 0] *= 1.02
    K[1, 1] *= 1.02
    start = _unplaced(truth).with_camera(_unplaced(truth)[2].with_intrinsics(K))
    fixed = calibrate_extrinsics(start, views, BOARD)
    refined = calibrate_extrinsics(start, views, BOARD, refine_intrinsics=True)
    assert abs(refined.rig[2].K[0, 0] / truth[2].K[0, 0] - 1) < 0.002
    assert refined.camera_rms["cam2"] < 0.7 < fixed.camera_rms["cam2"]
    rot, pos = _errors(refined.rig, truth)
    # 9 more unknowns per camera: principal points trade against rotations, distortion against positions
    assert rot.max() < 0.5 and pos.max() < 0.03


def test_outlier_corners_are_dropped_and_reported(studio):
    truth, views = studio
    rng = np.random.default_rng(1)
    bad = []
    for i, v in enumerate(views):
        corners = v.corners.copy()
        if i % 7 == 0:
            corners[rng.integers(v.ids.size)] += rng.uniform(15, 40, 2)
        bad.append(BoardView(v.camera, v.frame, v.ids, corners, v.image_size))
    result = calibrate_extrinsics(_unplaced(truth), bad, BOARD)
    rot, pos = _errors(result.rig, truth)
    assert rot.max() < 0.1 and pos.max() < 0.005
    assert any(w.startswith("dropped") and "outliers" in w for w in result.warnings)


def test_unknown_and_unconnected_cameras_raise(studio):
    truth, views = studio
    stray = BoardView("cam9", 0, views[0].ids, views[0].corners, views[0].image_size)
    with pytest.raises(CalibrationError, match="cam9, which rig"):
        calibrate_extrinsics(truth, [*views, stray], BOARD)
    lonely = [v for v in views if v.camera != "cam5"]
    lonely += [BoardView("cam5", 1000 + i, v.ids, v.corners, v.image_size)
               for i, v in enumerate(v for v in views if v.camera == "cam5")]
    with pytest.raises(CalibrationError, match="camera cam5 saw the board .* but never at the same time as another "
                                               "camera.*seen by cam5 and one of cam0"):
        calibrate_extrinsics(truth, lonely, BOARD)
    with pytest.raises(CalibrationError, match="no board views"):
        calibrate_extrinsics(truth, [], BOARD)
    small = [BoardView(v.camera, v.frame, v.ids, v.corners / 2, (960, 540)) for v in views]
    with pytest.raises(CalibrationError, match="960x540 but the rig's intrinsics are for 1920x1080"):
        calibrate_extrinsics(truth, small, BOARD)


def _caliscope_views(rig: Rig) -> list[BoardView]:
    """caliscope's ChArUco corners (xy_CHARUCO.csv: sync_index, cam_id, object_id, keypoint_id, x, y, ...)."""
    rows = np.loadtxt(CALISCOPE / "calibration" / "extrinsic" / "CHARUCO" / "xy_CHARUCO.csv", delimiter=",",
                      skiprows=1)
    sync, cam, corner = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 3].astype(int)
    order = np.lexsort((cam, sync))
    views = []
    for key in np.unique(np.column_stack([sync, cam])[order], axis=0):
        sel = (sync == key[0]) & (cam == key[1])
        name = f"cam_{key[1]}"
        views.append(BoardView(name, int(key[0]), corner[sel], rows[sel, 4:6], rig[name].size, "xy_CHARUCO.csv"))
    return views


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent: the caliscope detections come from there")
def test_caliscope_detections_reproduce_caliscopes_calibration():
    reference = load_rig(CALISCOPE / "camera_array.toml")
    board = load_board(CALISCOPE / "charuco.toml")
    rows = np.loadtxt(CALISCOPE / "calibration" / "extrinsic" / "CHARUCO" / "xy_CHARUCO.csv", delimiter=",",
                      skiprows=1)
    assert np.allclose(board.corner_points()[rows[:, 3].astype(int), :2], rows[:, 6:8])  # same corner ids
    result = calibrate_extrinsics(_unplaced(reference), _caliscope_views(reference), board)
    rot, pos = _errors(result.rig, reference)
    print(f"caliscope post_optimization: rotation difference {np.round(rot, 3).tolist()} deg, position "
          f"difference {np.round(1000 * pos, 1).tolist()} mm, RMS {result.camera_rms}")
    assert rot.max() < 1.0 and pos.max() < 0.02
    assert all(v < 2.0 for v in result.camera_rms.values())
