"""Tests for fitting/export_smpl.py: the AMASS-style npz in Z-up (as fitted) and Y-up axes, resampled."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fitting.export_bvh import up_rotation
from fitting.export_smpl import smpl_export_arrays, units_note, write_smpl_export
from rigs.sim.body import rest_points
from rigs.smpl_file import SmplTrack, read_smpl_track
from tests.smpl_reference import model_joints

A = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # SMPL canonical -> sim body world
AMASS_KEYS = ("poses", "trans", "betas", "gender", "mocap_framerate", "surface_model_type")


def sim_rest_joints(height: float = 1.7) -> np.ndarray:
    """The simulated body's rest joints in SMPL's canonical frame, pelvis off the origin as in real SMPL."""
    return (A.T @ rest_points(height)[:24].T).T + np.array([0.003, -0.35, 0.02])


def random_track(T: int = 30, seed: int = 1, fps: float = 30.0) -> SmplTrack:
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.5, (T, 72))
    poses[:, :3] = (Rotation.from_rotvec(rng.normal(0, 0.3, (T, 3))) * Rotation.from_matrix(A)).as_rotvec()
    return SmplTrack(poses=poses, trans=rng.normal(0, 1, (T, 3)), betas=rng.normal(0, 1, 10), gender="male",
                     fps=fps, body_model="mocap stand-in body model v1 (simulated, not SMPL)",
                     body_model_standin=True, track_id=2, first_frame=9,
                     t_ns=5 * 10**9 + np.round(np.arange(T) * 1e9 / fps).astype(np.int64), valid=np.ones(T, bool))


def test_z_up_is_the_track_as_fitted_with_the_amass_keys(tmp_path):
    track = random_track()
    path = write_smpl_export(tmp_path / "export" / "track_2.npz", track, sim_rest_joints())
    with np.load(path, allow_pickle=False) as z:
        assert set(AMASS_KEYS) <= set(z.files)
        assert np.array_equal(z["poses"], track.poses) and np.array_equal(z["trans"], track.trans)
        assert str(z["surface_model_type"]) == "smpl" and str(z["gender"]) == "male"
        assert float(z["mocap_framerate"]) == 30.0 and str(z["up"]) == "z" and str(z["units"]) == "m"
        assert int(z["first_frame"]) == 9 and np.array_equal(z["t_ns"], track.t_ns)
        assert bool(z["body_model_standin"]) and "stand-in" in str(z["body_model"])
    back = read_smpl_track(path)  # our reader takes it too
    assert np.array_equal(back.poses, track.poses) and back.first_frame == 9


def test_y_up_turns_every_joint_by_u_about_the_origin():
    rest, track = sim_rest_joints(), random_track()
    out = smpl_export_arrays(track, rest, up="y")
    U = up_rotation("y")
    want = (U @ model_joints(rest, track.poses, track.trans)[..., None])[..., 0]
    got = model_joints(rest, out["poses"], out["trans"])
    assert np.abs(got - want).max() < 1e-12
    assert np.array_equal(out["poses"][:, 3:], track.poses[:, 3:])  # body pose is relative: unchanged
    assert np.array_equal(out["betas"], track.betas)
    # a body standing upright in the world (orientation A, rest pose) stands along +Y in the Y-up file
    poses = np.zeros((track.num_frames, 72))
    poses[:, :3] = Rotation.from_matrix(A).as_rotvec()
    still = smpl_export_arrays(SmplTrack(**{**track.__dict__, "poses": poses}), rest, up="y")
    p = model_joints(rest, still["poses"], still["trans"])
    w = A @ (rest[15] - rest[0])  # pelvis -> head in the world
    assert np.allclose(p[:, 15] - p[:, 0], [w[0], w[2], -w[1]])
    assert (p[:, 15, 1] - p[:, 0, 1]).min() > 0.4


def test_y_up_translation_accounts_for_the_rest_pelvis():
    """Rotating trans alone is wrong whenever the rest pelvis is off the origin (it is, in SMPL)."""
    rest, track = sim_rest_joints(), random_track(T=3)
    out = smpl_export_arrays(track, rest, up="y")
    naive = (up_rotation("y") @ track.trans.T).T
    assert np.abs(out["trans"] - naive).max() > 0.1
    assert np.allclose(out["trans"] + rest[0], (up_rotation("y") @ (track.trans + rest[0]).T).T)


def test_resampling_and_units_note(tmp_path):
    track = random_track(T=31)
    out = smpl_export_arrays(track, sim_rest_joints(), fps=15.0)
    assert out["poses"].shape == (16, 72) and float(out["mocap_framerate"]) == 15.0
    # every second frame of the 30 fps track, to rounding (rotations compared as matrices)
    assert np.allclose(Rotation.from_rotvec(out["poses"].reshape(-1, 3)).as_matrix(),
                       Rotation.from_rotvec(track.poses[::2].reshape(-1, 3)).as_matrix(), atol=1e-7)
    assert np.allclose(out["trans"], track.trans[::2], atol=1e-7)
    assert np.array_equal(out["t_ns"] - out["t_ns"][0], np.round(np.arange(16) * 1e9 / 15).astype(np.int64))
    assert units_note("m") is None
    note = units_note("cm")
    assert "metres" in note and "cm" in note
    with pytest.raises(ValueError, match="up axis"):
        smpl_export_arrays(track, sim_rest_joints(), up="x")
    with pytest.raises(ValueError, match="rest_joints"):
        smpl_export_arrays(track, np.zeros((23, 3)))
