"""`mocap fit SESSION`: every track fitted and written, bad tracks listed with reasons, bad input refused."""

import numpy as np
import pytest

from mocap.cli import main
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from rigs.smpl_file import read_smpl_track

SK = get_skeleton("body25")


@pytest.fixture(autouse=True)
def standin_here(tmp_path_factory, monkeypatch):
    """The stand-in is built into a test folder; no SMPL files configured."""
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path_factory.getbasetemp() / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)


def _session(folder, T: int = 45):
    """Two people tracked (ids 0 and 1, person 1 from frame 5), a 3-frame ghost (2), a NaN-only track (3)."""
    perf = simulate_performers(2, T / 30, 30.0, seed=2)
    kp = keypoints3d(perf, SK).astype(np.float32)
    poses = np.full((T, 4, SK.num_joints, 4), np.nan, np.float32)
    poses[..., 3] = 0
    ids = np.full((T, 4), -1, np.int32)
    poses[:, 0], ids[:, 0] = kp[:, 0], 0
    poses[5:, 1], ids[5:, 1] = kp[5:, 1], 1
    poses[10:13, 2], ids[10:13, 2] = kp[10:13, 0] + np.float32([2, 0, 0, 0]), 2
    ids[20:30, 3] = 3
    folder.mkdir(parents=True, exist_ok=True)
    write_poses3d(folder / "poses3d.npz", Poses3D(poses, ids, np.arange(T, dtype=np.int64) * 33_333_333, 30.0,
                                                   SK.name, SK.joints))
    return folder, kp


def test_fit_writes_every_fittable_track_and_lists_the_others(tmp_path, capsys):
    folder, kp = _session(tmp_path / "s")
    assert main(["fit", str(folder)]) == 1  # tracks 2 and 3 were left out
    out = capsys.readouterr().out
    assert "stand-in" in out.lower()
    assert "not fitted" in out and "3 frames" in out and "no 3D keypoints" in out
    files = sorted(p.name for p in (folder / "smpl").iterdir())
    assert files == ["track_0.npz", "track_1.npz"]
    t1 = read_smpl_track(folder / "smpl" / "track_1.npz")
    assert t1.first_frame == 5 and t1.poses.shape == (40, 72) and t1.trans.shape == (40, 3)
    assert t1.body_model_standin and t1.fps == 30.0 and t1.track_id == 1
    report = folder / "report" / "fit"
    for name in ("summary.txt", "joint_errors.json", "errors.png", "frame_track_0.png", "frame_track_1.png"):
        assert (report / name).stat().st_size > 0, name
    summary = (report / "summary.txt").read_text()
    assert "STAND-IN" in summary and "track 2: NOT FITTED" in summary
    # the fit follows the input: pelvis-ish translation near the input's mid-hip
    t0 = read_smpl_track(folder / "smpl" / "track_0.npz")
    mid_hip = kp[:, 0, SK.index("mid_hip"), :3]
    assert np.median(np.linalg.norm(t0.trans[:, :2] - mid_hip[:, :2], axis=1)) < 0.1


def test_fit_refuses_a_folder_without_poses_and_existing_outputs(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope")]) == 2
    assert "no such session folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["fit", str(tmp_path / "empty")]) == 2
    assert "mocap reconstruct" in capsys.readouterr().err
    folder, _ = _session(tmp_path / "s", T=12)
    (folder / "smpl").mkdir()
    (folder / "smpl" / "track_0.npz").write_bytes(b"x")
    assert main(["fit", str(folder)]) == 2
    assert "--force" in capsys.readouterr().err


def test_fit_a_session_with_no_tracks_says_so(tmp_path, capsys):
    T = 5
    poses = np.full((T, 0, SK.num_joints, 4), np.nan, np.float32)
    (tmp_path / "s").mkdir()
    write_poses3d(tmp_path / "s" / "poses3d.npz", Poses3D(poses, np.zeros((T, 0), np.int32),
                                                           np.arange(T, dtype=np.int64), 30.0, SK.name, SK.joints))
    assert main(["fit", str(tmp_path / "s")]) == 2
    assert "no tracks" in capsys.readouterr().err


def test_fit_with_missing_body_model_folder_names_it(tmp_path, capsys):
    folder, _ = _session(tmp_path / "s", T=12)
    assert main(["fit", str(folder), "--body-model", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "models") in err
