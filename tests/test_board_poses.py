"""Board poses by PnP: accurate on pinhole and fisheye views, robust to one bad corner, and rejecting views
that cannot give a pose (too few corners, one line, wrong corners) with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.board_detection import BoardView
from calibration.board_poses import board_poses
from calibration.errors import CalibrationError
from rigs.camera import Rig, look_at_rotation
from rigs.formats import load_rig
from rigs.sim.board import SimulatedBoard, SimulatedBoardPose, board_truth

SIM = SimulatedBoard()
BOARD = SIM.spec


def _rig() -> Rig:
    cams = list(load_rig("studio-4"))
    cams[1] = cams[1].with_intrinsics(cams[1].K, np.array([-0.15, 0.08, 0.001, -0.0015, -0.02]))
    cams[2] = cams[2].replace(model="fisheye", dist=np.array([0.04, -0.01, 0.003, -0.001]))
    return Rig(tuple(cams), name="test")


def _facing(camera, distance: float, rng) -> SimulatedBoardPose:
    """A board about ``distance`` m in front of the camera, facing it, tilted and rolled a little."""
    centre = camera.center + distance * camera.viewing_direction + rng.normal(0, 0.2, 3)
    normal = camera.center - centre
    normal = Rotation.from_rotvec(rng.normal(0, 0.3, 3)).apply(normal / np.linalg.norm(normal))
    R = look_at_rotation(centre, centre - normal).T
    w, h = SIM.size
    return SimulatedBoardPose(SIM, R, centre - R @ np.array([w / 2, h / 2, 0]))


def _view(camera, pose, frame: int, rng, noise: float = 0.3) -> BoardView:
    ids, px = board_truth(camera, pose)
    return BoardView(camera.name, frame, ids, px + rng.normal(0, noise, px.shape), camera.size, f"sim#{frame}")


def _truth_in_camera(camera, pose) -> tuple[np.ndarray, np.ndarray]:
    return camera.R @ pose.R, camera.R @ pose.t + camera.t


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_poses_match_the_truth_for_pinhole_distorted_and_fisheye_cameras(noise):
    rng = np.random.default_rng(0)
    rig = _rig()
    views, truth = [], []
    for f in range(12):
        cam = rig[f % len(rig)]
        pose = _facing(cam, rng.uniform(1.5, 3.5), rng)
        views.append(_view(cam, pose, f, rng, noise))
        truth.append(_truth_in_camera(cam, pose))
    out = board_poses(rig, views, BOARD)
    assert out.ok.all() and out.reasons == ("",) * 12
    # exact without noise (the lens is modelled exactly); with 0.3 px a 120-px-wide board gives 0.2-2 degrees
    deg, metres, rms = (1e-5, 1e-6, (0, 1e-5)) if noise == 0 else (3.0, 0.03, (0.2, 0.7))
    for i, (R, t) in enumerate(truth):
        assert np.degrees(Rotation.from_matrix(out.R[i] @ R.T).magnitude()) < deg
        assert np.linalg.norm(out.t[i] - t) < metres
        assert rms[0] <= out.rms[i] < rms[1]  # with noise: about 0.3 px times sqrt(2)


def test_one_bad_corner_does_not_cost_the_view():
    rng = np.random.default_rng(1)
    rig = _rig()
    cam = rig[0]
    pose = _facing(cam, 2.5, rng)
    view = _view(cam, pose, 0, rng)
    corners = view.corners.copy()
    corners[5] += [40.0, -25.0]
    out = board_poses(cam, [BoardView(cam.name, 0, view.ids, corners, cam.size)], BOARD)
    R, t = _truth_in_camera(cam, pose)
    assert out.ok[0] and out.rms[0] < 0.7
    assert np.degrees(Rotation.from_matrix(out.R[0] @ R.T).magnitude()) < 1.0


def test_views_without_a_pose_are_rejected_with_a_reason():
    rng = np.random.default_rng(2)
    rig = _rig()
    cam = rig[3]
    good = _view(cam, _facing(cam, 2.0, rng), 0, rng)
    row = good.ids % 4 == 0  # the first column of inner corners: a line
    scrambled = good.corners[rng.permutation(good.ids.size)]  # right corners, wrong ids
    progress = []
    out = board_poses(rig, [good, BoardView(cam.name, 1, good.ids[:5], good.corners[:5], cam.size),
                            BoardView(cam.name, 2, good.ids[row], good.corners[row], cam.size),
                            BoardView(cam.name, 3, good.ids, scrambled, cam.size)], BOARD,
                      progress=lambda d, n: progress.append((d, n)))
    assert out.ok.tolist() == [True, False, False, False]
    assert out.reasons[1] == "fewer than 6 corners"
    assert out.reasons[2] == "corners lie on one line of the board"
    assert out.reasons[3] == "reprojection error above 3 px" or out.reasons[3].startswith("the board")
    assert np.isnan(out.R[1]).all() and np.isnan(out.rms[2])
    assert progress[-1] == (4, 4)


def test_unknown_camera_and_wrong_board_raise():
    rng = np.random.default_rng(3)
    rig = _rig()
    view = _view(rig[0], _facing(rig[0], 2.0, rng), 0, rng)
    with pytest.raises(CalibrationError, match="camera 'nowhere'"):
        board_poses(rig, [BoardView("nowhere", 0, view.ids, view.corners, (1920, 1080))], BOARD)
    small = type(BOARD).parse("charuco:3x3:0.08:0.06:DICT_5X5_100")
    with pytest.raises(CalibrationError, match="corner ids up to"):
        board_poses(rig, [view], small)
