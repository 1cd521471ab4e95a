import numpy as np
import pytest

from rigs.camera import Rig, look_at
from rigs.keypoint_files import read_keypoints_npz, read_openpose_folder
from rigs.poses3d_file import read_poses3d
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.sim.recording import write_simulated_keypoints


@pytest.fixture(scope="module")
def scene():
    rig = Rig(
        (
            look_at("camA", (-4.0, -4.0, 2.5), (0, 0, 1), 640, 360, 80.0),
            look_at("camB", (4.0, 4.0, 2.5), (0, 0, 1), 640, 360, 80.0),
        ),
        name="two-cams",
        simulated=True,
    )
    perf = simulate_performers(2, 2.0, 30, seed=9)
    det = simulate_detections(rig, perf, "body25", SimulatedDetectorParams(seed=9, false_detection_rate=0.2))
    return rig, perf, det


def _same_detections(read, written):
    """What was read back equals what was written, up to trailing empty slots."""
    P = read.shape[1]
    assert np.isnan(written[:, P:, :, 0]).all()
    np.testing.assert_array_equal(read, written[:, :P])


def test_openpose_folders_per_camera_read_back_with_the_truth_beside_them(tmp_path, scene):
    rig, perf, det = scene
    write_simulated_keypoints(tmp_path, rig, perf, det, fmt="openpose")
    for c, cam in enumerate(rig.names):
        files = sorted((tmp_path / cam).glob("*.json"))
        assert len(files) == 60 and files[0].name == f"{cam}_000000_keypoints.json"
        seq = read_openpose_folder(tmp_path / cam)
        assert seq.skeleton == "body25"
        np.testing.assert_array_equal(seq.frame_indices, np.arange(60))
        _same_detections(seq.keypoints, det.keypoints2d[c])
        assert "SIMULATED" in (tmp_path / cam / "SIMULATED.txt").read_text()
    text = (tmp_path / "SIMULATED.txt").read_text()
    assert "SIMULATED" in text and "seed 9" in text and "pixel_noise_px=2.0" in text
    truth = read_poses3d(tmp_path / "truth" / "poses3d.npz")
    assert truth.skeleton == "body25" and truth.fps == 30
    np.testing.assert_array_equal(truth.poses, keypoints3d(perf, "body25"))
    np.testing.assert_array_equal(truth.track_ids, np.tile([0, 1], (60, 1)))
    np.testing.assert_array_equal(truth.t_ns, perf.t_ns)
    assert "simulated" in str(truth.extras["simulated"]).lower()
    smpl = read_poses3d(tmp_path / "truth" / "smpl24.npz")
    assert smpl.skeleton == "smpl24" and smpl.poses.shape == (60, 2, 24, 4)
    np.testing.assert_allclose(smpl.poses[..., :3], perf.joints, atol=1e-5)
    with np.load(tmp_path / "truth" / "detections.npz") as npz:
        np.testing.assert_array_equal(npz["truth_person"], det.truth_person)
        assert list(npz["camera_names"]) == ["camA", "camB"]


def test_npz_format_writes_keypoints2d_per_camera(tmp_path, scene):
    rig, perf, det = scene
    write_simulated_keypoints(tmp_path, rig, perf, det, fmt="npz")
    for c, cam in enumerate(rig.names):
        seq = read_keypoints_npz(tmp_path / "keypoints2d" / f"{cam}.npz")
        np.testing.assert_array_equal(seq.keypoints, det.keypoints2d[c])
        np.testing.assert_array_equal(seq.t_ns, perf.t_ns)
    assert (tmp_path / "keypoints2d" / "SIMULATED.txt").exists()
    assert not (tmp_path / "camA").exists()


def test_bad_format_or_mismatched_skeleton_is_refused(tmp_path, scene):
    rig, perf, det = scene
    with pytest.raises(ValueError, match="unknown keypoint format"):
        write_simulated_keypoints(tmp_path, rig, perf, det, fmt="csv")
    with pytest.raises(ValueError, match="body25"):
        write_simulated_keypoints(tmp_path, rig, perf, det, skeleton="coco17")
