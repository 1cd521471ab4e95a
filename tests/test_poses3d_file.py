import numpy as np
import pytest

from rigs.poses3d_file import Poses3D, Poses3DFileError, read_poses3d, write_poses3d


def _sample(T=5, P=2, J=3):
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(T, P, J, 4)).astype(np.float32)
    poses[2, 1] = np.nan
    poses[2, 1, :, 3] = 0
    ids = np.tile(np.array([0, 7], np.int32), (T, 1))
    ids[2, 1] = -1
    return Poses3D(poses, ids, np.arange(T, dtype=np.int64) * 33_333_333, 30.0, "coco17",
                   ("a", "b", "c"), {"reprojection_px": np.ones((T, P, J), np.float32)})


def test_round_trip_keeps_every_key(tmp_path):
    data = _sample()
    back = read_poses3d(write_poses3d(tmp_path / "poses3d.npz", data))
    np.testing.assert_array_equal(back.poses, data.poses)
    np.testing.assert_array_equal(back.track_ids, data.track_ids)
    np.testing.assert_array_equal(back.t_ns, data.t_ns)
    assert (back.fps, back.skeleton, back.joint_names) == (30.0, "coco17", ("a", "b", "c"))
    np.testing.assert_array_equal(back.extras["reprojection_px"], data.extras["reprojection_px"])
    frames, poses = back.track(7)
    assert frames.tolist() == [0, 1, 3, 4] and poses.shape == (4, 3, 4)


def test_bad_shapes_and_missing_keys_are_named(tmp_path):
    with pytest.raises(Poses3DFileError, match="track_ids"):
        Poses3D(np.zeros((2, 1, 3, 4)), np.zeros((3, 1)), np.zeros(2), 30, "coco17", ("a", "b", "c"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, poses=np.zeros((1, 1, 1, 4)))
    with pytest.raises(Poses3DFileError, match=r"bad\.npz: missing track_ids"):
        read_poses3d(bad)
    with pytest.raises(FileNotFoundError, match="mocap reconstruct"):
        read_poses3d(tmp_path / "nope.npz")
