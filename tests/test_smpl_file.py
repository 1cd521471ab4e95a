"""Tests for rigs/smpl_file.py: the smpl/track_<id>.npz record, its file, its errors, and resampling."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rigs.smpl_file import SmplFileError, SmplTrack, read_smpl_track, resample_smpl_track, write_smpl_track

KEYS = ("poses", "trans", "betas", "gender", "mocap_framerate", "surface_model_type", "body_model",
        "body_model_standin", "track_id", "first_frame", "t_ns", "valid")


def _track(T: int = 12, seed: int = 0, fps: float = 30.0, **kw) -> SmplTrack:
    rng = np.random.default_rng(seed)
    args = dict(poses=rng.normal(0, 0.5, (T, 72)), trans=rng.normal(0, 1, (T, 3)), betas=rng.normal(0, 1, 10),
                gender="female", fps=fps, body_model="/models/SMPL_FEMALE.pkl", body_model_standin=False,
                track_id=3, first_frame=17, t_ns=10**12 + np.round(np.arange(T) * 1e9 / fps).astype(np.int64),
                valid=np.arange(T) % 5 != 2)
    args.update(kw)
    return SmplTrack(**args)


def test_round_trip_keeps_every_field(tmp_path):
    track = _track()
    path = write_smpl_track(tmp_path / "smpl" / "track_3.npz", track)
    back = read_smpl_track(path)
    for name in ("poses", "trans", "betas", "t_ns", "valid"):
        assert np.array_equal(getattr(back, name), getattr(track, name)), name
    assert back.poses.dtype == np.float64 and back.t_ns.dtype == np.int64 and back.valid.dtype == bool
    assert (back.gender, back.fps, back.body_model, back.body_model_standin, back.track_id, back.first_frame) == (
        "female", 30.0, "/models/SMPL_FEMALE.pkl", False, 3, 17)


def test_file_has_the_amass_keys_and_no_pickles(tmp_path):
    path = write_smpl_track(tmp_path / "t.npz", _track(body_model_standin=True))
    with np.load(path, allow_pickle=False) as z:  # AMASS loaders do np.load(path) and index these keys
        assert set(KEYS) <= set(z.files)
        assert z["poses"].shape == (12, 72) and z["trans"].shape == (12, 3) and z["betas"].shape == (10,)
        assert str(z["gender"]) == "female" and float(z["mocap_framerate"]) == 30.0
        assert str(z["surface_model_type"]) == "smpl" and bool(z["body_model_standin"]) is True


@pytest.mark.parametrize("missing", ["betas", "t_ns", "body_model_standin"])
def test_missing_key_is_named_with_the_file(tmp_path, missing):
    track = _track()
    write_smpl_track(tmp_path / "full.npz", track)
    with np.load(tmp_path / "full.npz") as z:
        kept = {k: z[k] for k in z.files if k != missing}
    np.savez(tmp_path / "track_0.npz", **kept)
    with pytest.raises(SmplFileError) as err:
        read_smpl_track(tmp_path / "track_0.npz")
    assert missing in str(err.value) and "track_0.npz" in str(err.value)


def test_missing_and_damaged_files_say_so(tmp_path):
    with pytest.raises(SmplFileError, match="no such SMPL track file.*mocap fit"):
        read_smpl_track(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(SmplFileError, match="junk.npz"):
        read_smpl_track(tmp_path / "junk.npz")


def test_bad_values_in_a_file_name_the_file(tmp_path):
    track = _track()
    write_smpl_track(tmp_path / "full.npz", track)
    with np.load(tmp_path / "full.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "a.npz", **{**arrays, "poses": arrays["poses"][:, :69]})
    with pytest.raises(SmplFileError, match=r"a\.npz.*poses must be \[frames >= 1, 72\]"):
        read_smpl_track(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **{**arrays, "surface_model_type": np.str_("smplh")})
    with pytest.raises(SmplFileError, match="smplh"):
        read_smpl_track(tmp_path / "b.npz")


def test_record_checks_shapes_and_values():
    with pytest.raises(SmplFileError, match="trans"):
        _track(trans=np.zeros((11, 3)))
    with pytest.raises(SmplFileError, match="one entry per frame"):
        _track(valid=np.ones(5, bool))
    with pytest.raises(SmplFileError, match="gender"):
        _track(gender="other")
    with pytest.raises(SmplFileError, match="increase"):
        _track(t_ns=np.zeros(12, np.int64))
    with pytest.raises(SmplFileError, match="finite"):
        _track(poses=np.full((12, 72), np.nan))
    assert _track(gender="MALE").gender == "male"


def test_resampling_to_the_same_grid_keeps_the_rotations():
    track = _track(T=20)
    same = resample_smpl_track(track, 30.0)
    assert same.num_frames == 20 and np.array_equal(same.t_ns, track.t_ns)
    R0 = Rotation.from_rotvec(track.joint_rotvecs.reshape(-1, 3))
    R1 = Rotation.from_rotvec(same.joint_rotvecs.reshape(-1, 3))
    assert np.degrees((R0.inv() * R1).magnitude()).max() < 1e-6
    assert np.allclose(same.trans, track.trans, atol=1e-12)


def test_resampling_slerps_rotations_and_lerps_translation():
    T = 10
    angles = np.linspace(0, 1.8, T)  # a joint turning steadily about a fixed axis
    axis = np.array([0.3, -0.5, 0.81]) / np.linalg.norm([0.3, -0.5, 0.81])
    poses = np.zeros((T, 72))
    poses[:, 3 * 5:3 * 6] = angles[:, None] * axis
    poses[:, :3] = [0.0, 0.0, 2.5]
    trans = np.stack([np.linspace(0, 0.9, T), np.zeros(T), np.ones(T)], axis=1)
    track = _track(T=T, poses=poses, trans=trans, valid=np.arange(T) != 4)
    up = resample_smpl_track(track, 60.0)
    assert up.num_frames == 2 * T - 1 and up.fps == 60.0
    assert np.allclose(np.diff(up.t_ns), 1e9 / 60, atol=1)
    got = np.linalg.norm(up.poses[:, 15:18], axis=1)
    assert np.allclose(got, np.linspace(0, 1.8, 2 * T - 1), atol=1e-9)  # slerp: constant rate about the axis
    assert np.allclose(up.trans[:, 0], np.linspace(0, 0.9, 2 * T - 1), atol=1e-12)
    assert np.allclose(np.linalg.norm(up.poses[:, :3], axis=1), 2.5)
    # frames 7, 8, 9 lie next to the invalid frame 4: new frames 7 and 9 straddle it, frame 8 is it
    assert list(np.flatnonzero(~up.valid)) == [7, 8, 9]
    down = resample_smpl_track(track, 12.0)  # 9 frames at 30 fps = 0.3 s -> 0, 1/12, 2/12, 3/12 s
    assert down.num_frames == 4 and down.first_frame == track.first_frame and down.t_ns[0] == track.t_ns[0]


def test_times_must_be_positive_fps():
    with pytest.raises(SmplFileError, match="fps"):
        resample_smpl_track(_track(), 0.0)


def test_joint_rotvecs_is_a_writable_copy_of_the_poses():
    track = _track()
    rv = track.joint_rotvecs
    assert rv.shape == (12, 24, 3) and np.array_equal(rv.reshape(12, 72), track.poses)
    rv[:] = 0  # a copy: the record is untouched
    assert np.abs(track.poses).sum() > 0
