"""TRC files: round trips, units, Pose2Sim's marker names, and its Y-up axes against a triangulation of the
real recording's OpenPose JSON with the Qualisys calibration."""

from pathlib import Path

import numpy as np
import pytest

from rigs.formats import load_rig
from rigs.keypoint_files import read_keypoints_dir
from rigs.skeletons import get_skeleton
from rigs.trc_file import (
    TrcFileError,
    marker_joint_name,
    read_trc,
    trc_to_poses3d,
    trc_to_world,
    world_to_trc,
    write_trc,
)
from rigs.triangulate import triangulate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSE2SIM = SHARED / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session"
TRIAL = POSE2SIM / "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
TRC = TRIAL / "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc"
CALISCOPE_TRC = SHARED / ("mprib+caliscope/tests/sessions/4_cam_recording/recordings/recording_1/"
                          "SIMPLE_HOLISTIC/xyz_SIMPLE_HOLISTIC.trc")
needs_pose2sim = pytest.mark.skipif(not TRC.exists(), reason="../shared/data is absent: the Pose2Sim demo is needed")


def test_round_trip_with_missing_markers_and_units(tmp_path):
    rng = np.random.default_rng(0)
    markers = rng.normal(size=(7, 3, 3))
    markers[2, 1] = np.nan
    markers[6, 2] = np.nan  # a missing last marker: trailing empty cells
    names = ("RHip", "LKnee", "Neck")
    data = read_trc(write_trc(tmp_path / "a.trc", markers, names, 60.0))
    np.testing.assert_array_equal(data.markers, markers)
    assert data.names == names and data.fps == 60.0
    np.testing.assert_array_equal(data.frame_numbers, np.arange(1, 8))
    np.testing.assert_allclose(data.times, np.arange(7) / 60.0)
    mm = read_trc(write_trc(tmp_path / "mm.trc", markers, names, 30.0, units="mm",
                            frame_numbers=np.arange(10, 17), times=np.arange(7) * 0.5))
    np.testing.assert_allclose(mm.markers, markers, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(mm.frame_numbers, np.arange(10, 17))
    assert "\tmm\t" in (tmp_path / "mm.trc").read_text().splitlines()[2]


def test_bad_files_and_bad_data(tmp_path):
    with pytest.raises(TrcFileError, match="cannot be read"):
        read_trc(tmp_path / "none.trc")
    (tmp_path / "x.trc").write_text("hello\n" * 6)
    with pytest.raises(TrcFileError, match="not a TRC file"):
        read_trc(tmp_path / "x.trc")
    path = write_trc(tmp_path / "u.trc", np.zeros((2, 1, 3)), ["A"], 10)
    path.write_text(path.read_text().replace("\tm\t", "\tinches\t"))
    with pytest.raises(TrcFileError, match="units 'inches'"):
        read_trc(path)
    with pytest.raises(TrcFileError, match="2 names for 1 markers"):
        write_trc(tmp_path / "b.trc", np.zeros((2, 1, 3)), ["A", "B"], 10)
    with pytest.raises(TrcFileError, match=r"\[T, M, 3\]"):
        write_trc(tmp_path / "b.trc", np.zeros((2, 3)), ["A"], 10)


def test_marker_names_become_joint_names():
    assert [marker_joint_name(n) for n in ("RHip", "LBigToe", "RSmallToe", "Neck", "Head", "Nose", "LWrist",
                                           "left_ankle", "Hip")] == [
        "right_hip", "left_big_toe", "right_small_toe", "neck", "head_top", "nose", "left_wrist", "left_ankle",
        "mid_hip"]


def test_axes_mapping_is_a_rotation_and_its_inverse():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(world_to_trc(p), [[2.0, 3.0, 1.0]])  # TRC (X, Y, Z) = world (Y, Z, X)
    np.testing.assert_array_equal(trc_to_world(world_to_trc(p)), p)
    assert np.linalg.det(trc_to_world(np.eye(3))) == pytest.approx(1.0)  # no mirroring
    up = trc_to_world(np.array([0.0, 1.0, 0.0]))  # TRC's up (Y) is the world's up (Z)
    np.testing.assert_array_equal(up, [0, 0, 1])


@needs_pose2sim
def test_reads_pose2sims_reference_trc():
    data = read_trc(TRC)
    assert data.markers.shape == (100, 21, 3) and data.fps == 60.0
    assert data.names[:3] == ("RHip", "RKnee", "RAnkle")
    np.testing.assert_array_equal(data.frame_numbers, np.arange(1, 101))
    assert np.isfinite(data.markers).all()
    poses = trc_to_poses3d(data)
    assert poses.skeleton == "body25b" and poses.poses.shape == (100, 1, 21, 4)
    assert set(poses.joint_names) <= set(get_skeleton("body25b").joints)
    # Z is up after the conversion: the head is above the ankles by about a body height
    z = poses.poses[..., 2]
    assert 1.3 < float(np.median(z[..., poses.joint_names.index("head_top")]
                                 - z[..., poses.joint_names.index("right_ankle")])) < 2.0
    lstm = read_trc(TRIAL / "pose-3d/S00_P00_T01_BalancingTrial_0-100_filt_butterworth_LSTM.trc")
    assert lstm.markers.shape == (100, 64, 3)


@pytest.mark.skipif(not CALISCOPE_TRC.exists(), reason="../shared/data is absent: caliscope's recording is needed")
def test_reads_caliscopes_trc_with_missing_markers():
    data = read_trc(CALISCOPE_TRC)
    assert data.markers.shape == (267, 81, 3) and data.fps == 30.0  # frames 0..266 (its header says 266)
    assert data.names[:2] == ("chin_tip", "left_ankle") and data.frame_numbers[0] == 0
    assert np.isnan(data.markers).any() and np.isfinite(data.markers).mean() > 0.5
    assert trc_to_poses3d(data).skeleton == "markers"


@needs_pose2sim
def test_trc_axes_match_a_triangulation_of_the_openpose_json():
    """TRC (X, Y, Z) = world (Y, Z, X): the converted reference lies within a few cm of a plain DLT of the
    BODY_25B JSON with Calib_qualisys.toml. The person in each view is the detection nearest the projected
    reference (cam01 and cam02 also see the experimenter). Measured: median 0.7 cm, mean 2.4 cm."""
    rig = load_rig(POSE2SIM / "S00_Calibration/Calib_qualisys.toml")
    kp = read_keypoints_dir(TRIAL / "pose", rig.names, "openpose", "body25b")
    truth = trc_to_poses3d(read_trc(TRC))
    joints = [get_skeleton("body25b").index(n) for n in truth.joint_names]
    world = truth.poses[:, 0, :, :3].astype(np.float64)  # [T, M, 3]
    projected = rig.project(world)  # [C, T, M, 2]
    views = []
    for c, cam in enumerate(rig.names):
        k = kp[cam].keypoints[:, :, joints]  # [T, P, M, 3]
        gap = np.linalg.norm(k[..., :2] - projected[c][:, None], axis=-1)
        gap = np.where(np.isfinite(gap), gap, 1e9).mean(-1)  # [T, P]
        views.append(k[np.arange(len(k)), gap.argmin(1)])
    points = triangulate(rig, np.stack(views).astype(np.float64))
    err = np.linalg.norm(points[..., :3] - world, axis=-1)
    assert np.nanmedian(err) < 0.02
    assert np.nanmedian(err, 0).max() < 0.08  # every marker
    as_is = np.linalg.norm(points[..., :3] - read_trc(TRC).markers, axis=-1)
    assert np.nanmedian(as_is) > 1.0  # without the mapping the reference is metres off
