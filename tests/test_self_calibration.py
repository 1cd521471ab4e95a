"""Self-calibration from people: simulated studios (with noise and outliers), refinement after a bump, the
floor, refusals, and the real Pose2Sim recording against its Qualisys calibration.

Accuracy is judged two ways. The calibration itself: every camera's pose relative to the first camera
(rotation, and position in the first camera's frame, in metres after the scale from the person's height),
which no choice of world frame affects. The world frame: the floor fixes Z up and z = 0, but not the
heading or the origin in the floor plane (``floor_world`` takes X from the first camera's view and the
origin under the feet), so the calibrated rig is compared with the truth after a rotation about Z and a
translation in the floor plane; that comparison also carries the floor's own error (its tilt, 0.1-0.3
deg from the feet of one person walking for 8 s, which moves a camera 4 m away by up to 2-3 cm). The
calibration must meet the issue's target, 0.5 deg and 2 cm; the world frame 0.5 deg and 3 cm.
"""

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.rig_comparison import floor_frame_errors, relative_pose_errors, rotation_deg, similarity_errors
from calibration.self_calibration import (
    floor_from_people,
    keep_world_frame,
    refine_from_people,
    self_calibrate,
)
from rigs.formats import load_rig
from rigs.keypoint_files import Keypoints2DSequence, read_keypoints_dir
from rigs.rotations import rotvec_to_matrix
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import simulate_performers

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSE2SIM = SHARED / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session"
HEIGHT = 1.75
OUTLIER_RATE = 0.10
FRAMES = 150  # frames used by the adjustment (of 240 simulated)


@cache
def _studio(rig_name: str, people: int, skeleton: str = "body25b", seed: int = 1):
    """(true rig, keypoints per camera): simulated people 1.75 m tall, 2 px noise, 10 % outliers."""
    rig = load_rig(rig_name)
    perf = simulate_performers(people, 8.0, 30, seed=seed, heights=[HEIGHT] * people)
    params = SimulatedDetectorParams(pixel_noise_px=2.0, gross_outlier_rate=OUTLIER_RATE, seed=seed)
    kp = simulate_detections(rig, perf, skeleton, params).keypoints2d
    frames = np.arange(perf.num_frames)
    return rig, {n: Keypoints2DSequence(kp[c], frames, skeleton) for c, n in enumerate(rig.names)}


def _angle_deg(R) -> float:
    return float(rotation_deg(R))


def _check_accuracy(result, truth, floor_pos=0.03):
    rot, pos = relative_pose_errors(result.rig, truth)
    assert rot.max() < 0.5, rot
    assert pos.max() < 0.02, pos
    rot, pos = floor_frame_errors(result.rig, truth)
    assert rot.max() < 0.5, rot
    assert pos.max() < floor_pos, pos
    assert np.allclose(result.rig.centers[:, 2], truth.centers[:, 2], atol=floor_pos)
    assert result.rig.up == "z"


def test_one_person_studio4_meets_the_accuracy_target():
    truth, kp = _studio("studio-4", 1)
    result = self_calibrate(truth, kp, person_height=HEIGHT, max_frames=FRAMES)
    _check_accuracy(result, truth)
    for a, b in zip(truth, result.rig, strict=True):  # intrinsics kept
        assert np.array_equal(a.K, b.K) and np.array_equal(a.dist, b.dist)
    assert len(result.pair_inliers) == 6 and min(result.pair_inliers.values()) > 1000
    assert all(r < 4.0 for r in result.camera_rms.values())
    assert result.height == pytest.approx(HEIGHT)
    assert result.points.shape[1] == 3 and len(result.points) > 1000
    assert not result.warnings


def test_two_people_studio4_meets_the_accuracy_target():
    """Two people in every view: each pair tells them apart by its epipolar geometry."""
    truth, kp = _studio("studio-4", 2)
    result = self_calibrate(truth, kp, person_height=HEIGHT, max_frames=FRAMES // 2)
    _check_accuracy(result, truth)


def test_studio8_with_cameras_that_never_share_a_view():
    """cam0 sees the people only in the first half of the recording and cam4 (opposite it) only in the
    second: the two never see anything together, yet both join the rig through the other cameras."""
    truth, kp = _studio("studio-8", 1, skeleton="body25")
    T = kp["cam0"].num_frames
    cut = dict(kp)
    for name, keep in (("cam0", np.arange(T) < T // 2), ("cam4", np.arange(T) >= T // 2)):
        arr = np.array(kp[name].keypoints)
        arr[~keep] = [np.nan, np.nan, 0.0]
        cut[name] = Keypoints2DSequence(arr, kp[name].frame_indices, "body25")
    progress = []
    result = self_calibrate(truth, cut, person_height=HEIGHT, max_frames=FRAMES,
                            progress=lambda done, total: progress.append((done, total)))
    assert ("cam0", "cam4") not in result.pair_inliers
    _check_accuracy(result, truth)
    assert progress[-1][0] == progress[-1][1] and len(progress) >= 28
    assert all(a <= b for (a, _), (b, _) in zip(progress, progress[1:], strict=False))


def test_scale_from_a_camera_distance():
    truth, kp = _studio("studio-4", 1)
    d = float(np.linalg.norm(truth["cam0"].center - truth["cam2"].center))
    result = self_calibrate(truth, kp, distance=("cam0", "cam2", d), max_frames=FRAMES, floor=False)
    assert np.linalg.norm(result.rig["cam0"].center - result.rig["cam2"].center) == pytest.approx(d)
    assert result.height == pytest.approx(HEIGHT, rel=0.01)  # the person measured in the calibrated rig
    rot, pos = relative_pose_errors(result.rig, truth)
    assert rot.max() < 0.5 and pos.max() < 0.02
    # floor=False: the world is the first camera's frame
    assert np.allclose(result.rig[0].R, np.eye(3)) and np.allclose(result.rig[0].t, 0)


def test_no_height_assumes_one_and_warns():
    truth, kp = _studio("studio-4", 1)
    result = self_calibrate(truth, kp, max_frames=60, floor=False)
    assert result.height == pytest.approx(1.70)
    assert any("assumes people 1.70 m" in w for w in result.warnings)
    with pytest.raises(CalibrationError, match="not both"):
        self_calibrate(truth, kp, person_height=1.7, distance=("cam0", "cam1", 5.0), max_frames=60)
    with pytest.raises(CalibrationError, match="no camera 'camX'"):
        self_calibrate(truth, kp, distance=("cam0", "camX", 5.0), max_frames=60)


def test_a_camera_without_shared_detections_is_named_with_what_to_record():
    truth, kp = _studio("studio-4", 1)
    blind = dict(kp)
    arr = np.array(kp["cam3"].keypoints)
    arr[:] = [np.nan, np.nan, 0.0]
    blind["cam3"] = Keypoints2DSequence(arr, kp["cam3"].frame_indices, "body25b")
    with pytest.raises(CalibrationError, match="cam3 shares confident detections with no other camera: have "
                                               "someone walk where cam3 and another camera both see them"):
        self_calibrate(truth, blind, person_height=HEIGHT, max_frames=60)


def test_refine_recovers_a_bumped_camera_and_keeps_the_world_frame():
    truth, kp = _studio("studio-4", 1)
    cam = truth["cam2"]
    R = rotvec_to_matrix(np.radians(3.0) * np.array([0.6, 0.8, 0.0])) @ cam.R  # turned 3 deg...
    bumped = truth.with_camera(cam.with_extrinsics(R, -R @ (cam.center + [0.03, -0.04, 0.0])))  # ...moved 5 cm
    result = refine_from_people(bumped, kp, max_frames=FRAMES)
    for e, g in zip(result.rig, truth, strict=True):
        assert _angle_deg(e.R @ g.R.T) < 0.1, e.name
        assert np.linalg.norm(e.center - g.center) < 0.01, e.name
    assert result.scale == pytest.approx(1.0, abs=0.002)
    assert any(w.startswith("cam2 moved by") for w in result.warnings)
    assert not any(w.startswith(("cam0 moved", "cam1 moved", "cam3 moved")) for w in result.warnings)


def test_keep_world_frame_ignores_the_camera_that_moved():
    truth = load_rig("studio-8")
    R = rotvec_to_matrix(np.array([0.1, -0.2, 0.3]))
    moved = truth.transformed(R, [0.5, 0.2, -0.1], 1.3)
    cam = moved["cam5"]
    moved = moved.with_camera(cam.with_extrinsics(cam.R, cam.t + [0.3, 0.0, 0.0]))
    T, fitted = keep_world_frame(moved, truth)
    assert fitted.tolist() == [True] * 5 + [False] + [True] * 2
    assert np.allclose(T.apply_rig(moved).centers[fitted], truth.centers[fitted], atol=1e-9)


def test_floor_from_people_finds_the_studio_floor():
    truth, kp = _studio("studio-4", 1)
    T = floor_from_people(truth, kp, max_frames=FRAMES)
    assert _angle_deg(T.R) < 180  # any heading; Z must stay up:
    assert np.degrees(np.arccos(np.clip(T.R[2, 2], -1, 1))) < 0.3
    assert abs(T.t[2]) < 0.015


def test_people_standing_in_place_do_not_fix_the_floor():
    truth, kp = _studio("studio-4", 1)
    still = {n: Keypoints2DSequence(np.repeat(s.keypoints[:1], 30, axis=0), np.arange(30), s.skeleton)
             for n, s in kp.items()}
    with pytest.raises(CalibrationError, match="floor"):
        floor_from_people(truth, still)


@pytest.mark.skipif(not POSE2SIM.is_dir(), reason="../shared/data is absent: the Pose2Sim demo session is needed")
def test_pose2sim_openpose_against_the_qualisys_calibration(capsys):
    """The real recording (100 frames, one person balancing, BODY_25B, an experimenter in the background of
    cam01/cam02) with the Qualisys intrinsics: relative poses against the Qualisys extrinsics after a
    similarity alignment. Measured: rotation 0.5-1.5 deg, position 1-8 cm, scale from 1.72 m within 2 %."""
    qualisys = load_rig(POSE2SIM / "S00_Calibration/Calib_qualisys.toml")
    kp = read_keypoints_dir(POSE2SIM / "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial/pose",
                            qualisys.names, "openpose", "body25b")
    result = self_calibrate(qualisys, kp, person_height=1.72, floor=False)  # a person balancing: no floor
    rot, pos, s = similarity_errors(result.rig, qualisys)
    with capsys.disabled():
        print("\nPose2Sim self-calibration vs Qualisys (similarity-aligned): "
              + ", ".join(f"{n} {r:.2f} deg {p * 100:.1f} cm" for n, r, p in zip(qualisys.names, rot, pos, strict=True))
              + f"; scale ratio {s:.3f}; RMS " + ", ".join(f"{v:.1f}" for v in result.camera_rms.values()) + " px")
    assert rot.max() < 3.0
    assert pos.max() < 0.15
    assert abs(s - 1) < 0.05
    assert len(result.pair_inliers) == 6
