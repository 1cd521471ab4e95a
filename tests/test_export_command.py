"""`mocap export SESSION`: the files it writes from a session folder built here (poses3d.npz and smpl/track files),
what they hold, the sidecar, the per-format options, and the one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fitting.export_bvh import SMPL_JOINT_NAMES, SMPL_PARENTS, up_rotation
from rigs.bvh import forward_kinematics, read_bvh
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.sim.body import rest_points
from rigs.skeletons import get_skeleton
from rigs.smpl_file import SmplTrack, write_smpl_track
from rigs.trc_file import read_trc, trc_to_world
from tests.smpl_reference import model_joints

A = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # SMPL canonical -> sim body world
NAMES = get_skeleton("body25").joints
FPS = 30.0
T0_NS = 3 * 10**12


def _mocap(*argv) -> tuple[int, str, str]:
    from mocap import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def toy_smpl_model(folder: Path, gender: str = "neutral") -> Path:
    """A small model file in the SMPL layout (not the stand-in, not SMPL): 24 vertices at the simulated body's
    rest joints (J_regressor picks them), 3 more, random shape directions, no pose correctives."""
    rng = np.random.default_rng(5)
    rest = (A.T @ rest_points(1.7)[:24].T).T + [0.0, -0.35, 0.02]
    v = np.concatenate([rest, rest[[15, 10, 11]] + [[0, 0.2, 0], [0, -0.05, 0.08], [0, -0.05, 0.08]]])
    V = len(v)
    J_regressor = np.zeros((24, V))
    J_regressor[:, :24] = np.eye(24)
    weights = np.zeros((V, 24))
    weights[np.arange(24), np.arange(24)] = 1.0
    weights[[24, 25, 26], [15, 10, 11]] = 1.0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"SMPL_{gender.upper()}.npz"
    np.savez(path, v_template=v, shapedirs=rng.normal(0, 0.01, (V, 3, 10)), posedirs=np.zeros((V, 3, 207)),
             J_regressor=J_regressor, weights=weights, kintree_table=np.stack([SMPL_PARENTS, np.arange(24)]),
             f=np.array([[0, 1, 2], [24, 25, 26]], np.int64))
    return path


def smpl_track(track_id: int, first: int, T: int, body_model: str, standin: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.4, (T, 72))
    poses[:, :3] = (Rotation.from_rotvec(rng.normal(0, 0.2, (T, 3))) * Rotation.from_matrix(A)).as_rotvec()
    trans = np.cumsum(rng.normal(0, 0.02, (T, 3)), axis=0) + [1.0, 0.5, 0.0]
    return SmplTrack(poses=poses, trans=trans, betas=rng.normal(0, 1, 10), gender="neutral", fps=FPS,
                     body_model=body_model, body_model_standin=standin, track_id=track_id, first_frame=first,
                     t_ns=T0_NS + np.round((first + np.arange(T)) * 1e9 / FPS).astype(np.int64),
                     valid=np.ones(T, bool))


def poses3d(T: int = 20) -> Poses3D:
    """Track 0 in frames 2..17, track 4 in frames 0..19 (body25 layout)."""
    rng = np.random.default_rng(1)
    J = len(NAMES)
    poses = np.full((T, 2, J, 4), np.nan, np.float32)
    poses[..., 3] = 0
    ids = np.full((T, 2), -1, np.int32)
    for f in range(T):
        poses[f, 1, :, :3], poses[f, 1, :, 3], ids[f, 1] = rng.normal([0, 1, 1], 0.3, (J, 3)), 1.0, 4
        if 2 <= f <= 17:
            poses[f, 0, :, :3], poses[f, 0, :, 3], ids[f, 0] = rng.normal([1, 0, 1], 0.3, (J, 3)), 0.7, 0
    t_ns = T0_NS + np.round(np.arange(T) * 1e9 / FPS).astype(np.int64)
    return Poses3D(poses, ids, t_ns, FPS, "body25", NAMES)


@pytest.fixture
def session(tmp_path, monkeypatch) -> Path:
    """A session with poses3d.npz and smpl/track_0.npz fitted with a (toy) SMPL file."""
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path / "standin"))
    folder = tmp_path / "session"
    write_poses3d(folder / "poses3d.npz", poses3d())
    model = toy_smpl_model(tmp_path / "models")
    write_smpl_track(folder / "smpl" / "track_0.npz", smpl_track(0, 2, 16, str(model)))
    return folder


def test_no_flags_writes_every_format_the_session_can_make(session):
    from fitting.body_model import arrays_from_file
    from rigs.smpl_file import read_smpl_track

    code, out, err = _mocap("export", session)
    assert code == 0, out + err
    names = sorted(p.name for p in (session / "export").iterdir())
    assert names == ["track_0.bvh", "track_0.c3d", "track_0.json", "track_0.npz", "track_0.trc",
                     "track_4.c3d", "track_4.json", "track_4.trc"]
    assert "track_0.bvh" in out and "track_4.c3d" in out
    # the BVH: the fitted model's joints (rest joints of the fitted shape from the model file), Y up, metres
    track = read_smpl_track(session / "smpl" / "track_0.npz")
    rest = arrays_from_file(track.body_model, "neutral").rest_joints(track.betas)
    motion = read_bvh(session / "export" / "track_0.bvh")
    names = list(motion.joint_names)
    got = forward_kinematics(motion)[:, [names.index(n) for n in SMPL_JOINT_NAMES]]
    want = (up_rotation("y") @ model_joints(rest, track.poses, track.trans)[..., None])[..., 0]
    assert motion.num_frames == 16 and np.abs(got - want).max() < 1e-3
    # the sidecar says where each file starts and in which conventions
    side = json.loads((session / "export" / "track_0.json").read_text())
    assert set(side["files"]) == {"bvh", "smpl", "trc", "c3d"}
    bvh = side["files"]["bvh"]
    assert (bvh["first_frame"], bvh["units"], bvh["up"], bvh["fps"], bvh["frames"]) == (2, "m", "y", 30.0, 16)
    assert bvh["first_time_s"] == pytest.approx(2 / 30) and bvh["first_t_ns"] == int(track.t_ns[0])
    assert bvh["body_model"] == track.body_model and bvh["body_model_standin"] is False
    assert side["body_model_standin"] is False and "note" not in side
    assert (side["files"]["smpl"]["up"], side["files"]["trc"]["up"], side["files"]["c3d"]["up"]) == ("z", "y", "z")
    assert side["files"]["c3d"]["units"] == "mm" and side["files"]["trc"]["first_frame_number"] == 3
    # the TRC: the poses3d track in OpenSim's Y-up axes, from its first frame
    trc = read_trc(session / "export" / "track_0.trc")
    assert trc.names == NAMES and trc.num_frames == 16 and trc.frame_numbers[0] == 3
    p3 = poses3d()
    assert np.abs(trc_to_world(trc.markers) - p3.poses[2:18, 0, :, :3]).max() < 1e-6
    # the SMPL npz: AMASS keys, Z up as fitted
    with np.load(session / "export" / "track_0.npz") as z:
        assert np.array_equal(z["poses"], track.poses) and int(z["first_frame"]) == 2


def test_options_apply_to_the_formats_asked(session):
    code, out, err = _mocap("export", session, "--bvh", "--trc", "--units", "cm", "--up", "z", "--fps", "60")
    assert code == 0, out + err
    assert sorted(p.name for p in (session / "export").iterdir()) == [
        "track_0.bvh", "track_0.json", "track_0.trc", "track_4.json", "track_4.trc"]
    motion = read_bvh(session / "export" / "track_0.bvh")
    assert motion.frame_time == pytest.approx(1 / 60) and motion.num_frames == 31
    from fitting.body_model import arrays_from_file
    from rigs.smpl_file import read_smpl_track

    track = read_smpl_track(session / "smpl" / "track_0.npz")
    rest = arrays_from_file(track.body_model, "neutral").rest_joints(track.betas)
    assert np.abs(motion.motion[::2, :3] - 100 * (rest[0] + track.trans)).max() < 1e-4  # Z up: the world, in cm
    side = json.loads((session / "export" / "track_0.json").read_text())
    assert side["files"]["bvh"]["units"] == "cm" and side["files"]["bvh"]["up"] == "z"
    assert side["files"]["trc"]["fps"] == 60.0 and side["files"]["trc"]["frames"] == 31
    trc = read_trc(session / "export" / "track_0.trc")
    assert trc.fps == 60.0 and "cm" in (session / "export" / "track_0.trc").read_text().splitlines()[2]
    # a later run for another format keeps the sidecar's earlier entries
    assert _mocap("export", session, "--c3d")[0] == 0
    side = json.loads((session / "export" / "track_0.json").read_text())
    assert set(side["files"]) == {"bvh", "trc", "c3d"}


def test_smpl_with_cm_says_once_that_it_stays_in_metres(session):
    write_smpl_track(session / "smpl" / "track_1.npz",
                     smpl_track(1, 0, 5, str(Path(session.parent / "models" / "SMPL_NEUTRAL.npz")), seed=2))
    code, out, err = _mocap("export", session, "--smpl", "--units", "cm")
    assert code == 0, out + err
    assert out.count("stays in metres") == 1
    with np.load(session / "export" / "track_1.npz") as z:
        assert str(z["units"]) == "m"


def test_unreadable_track_is_reported_and_the_others_written(session):
    (session / "smpl" / "track_3.npz").write_bytes(b"garbage")
    code, out, err = _mocap("export", session, "--bvh")
    assert code == 1
    assert (session / "export" / "track_0.bvh").is_file() and not (session / "export" / "track_3.bvh").exists()
    assert "failed:" in out and "track_3.npz" in out and "1 export(s) failed" in out


def test_a_missing_smpl_model_is_a_failure_and_body_model_dir_fixes_it(session, tmp_path):
    elsewhere = toy_smpl_model(tmp_path / "moved")
    write_smpl_track(session / "smpl" / "track_0.npz", smpl_track(0, 2, 16, "/gone/SMPL_NEUTRAL.pkl"))
    code, out, _ = _mocap("export", session, "--bvh")
    assert code == 1 and "--body-model" in out and not (session / "export" / "track_0.bvh").exists()
    code, out, err = _mocap("export", session, "--bvh", "--body-model", elsewhere.parent)
    assert code == 0, out + err
    side = json.loads((session / "export" / "track_0.json").read_text())
    assert side["files"]["bvh"]["body_model"] == str(elsewhere)
    assert side["files"]["bvh"]["fitted_with"] == "/gone/SMPL_NEUTRAL.pkl"


@pytest.mark.parametrize(("argv", "message"), [
    (["--bvh"], "no smpl/ folder to export as BVH; run `mocap fit"),
    (["--trc", "--c3d"], "no poses3d.npz to export as TRC/C3D; run `mocap reconstruct"),
])
def test_missing_inputs_are_one_line_errors(tmp_path, argv, message):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "session.toml").write_text("")
    code, _, err = _mocap("export", folder, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_not_a_session(tmp_path):
    code, _, err = _mocap("export", tmp_path / "nope")
    assert code == 2 and "not a session folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = _mocap("export", tmp_path / "empty")
    assert code == 2 and "not a session folder" in err
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "session.toml").write_text("")
    code, _, err = _mocap("export", tmp_path / "bare")
    assert code == 2 and "nothing to export" in err and "mocap reconstruct" in err


def test_standin_tracks_say_so_everywhere(session):
    from fitting.body_model import STANDIN_SOURCE, load_body_model
    from rigs.smpl_file import read_smpl_track

    write_smpl_track(session / "smpl" / "track_0.npz", smpl_track(0, 2, 16, STANDIN_SOURCE, standin=True))
    code, out, err = _mocap("export", session, "--bvh", "--smpl")
    assert code == 0, out + err
    assert "STAND-IN" in out
    side = json.loads((session / "export" / "track_0.json").read_text())
    assert side["body_model_standin"] is True and "STAND-IN" in side["note"]
    assert side["files"]["bvh"]["body_model_standin"] is True
    with np.load(session / "export" / "track_0.npz") as z:
        assert bool(z["body_model_standin"])
    # the BVH is the stand-in's skeleton for these betas: its joints are the stand-in model's
    track = read_smpl_track(session / "smpl" / "track_0.npz")
    model = load_body_model(None, "neutral", say=None)
    import torch

    joints, _ = model.points(torch.as_tensor(track.betas[None]), torch.as_tensor(track.poses.reshape(-1, 24, 3)),
                             torch.as_tensor(track.trans))
    motion = read_bvh(session / "export" / "track_0.bvh")
    names = list(motion.joint_names)
    got = forward_kinematics(motion)[:, [names.index(n) for n in SMPL_JOINT_NAMES]]
    want = (up_rotation("y") @ joints.double().numpy()[..., None])[..., 0]
    assert np.abs(got - want).max() < 1e-3
