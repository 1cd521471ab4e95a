"""The evaluation report and `mocap eval`: tables, plot, npz and TRC truth, real Pose2Sim files."""

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from mocap.eval_command import add_eval_parser, load_truth
from reconstruction.eval_report import summary_markdown, write_eval_report
from reconstruction.metrics import evaluate
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.skeletons import get_skeleton
from rigs.trc_file import read_trc, trc_to_poses3d, world_to_trc, write_trc

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSE3D = SHARED / ("perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session/S00_P00_SingleParticipant/"
                   "S00_P00_T01_BalancingTrial/pose-3d")


def truth_sequence(frames: int = 20, people: int = 2) -> Poses3D:
    rng = np.random.default_rng(0)
    sk = get_skeleton("body25")
    xyz = rng.normal(size=(frames, people, sk.num_joints, 3)) * 0.3 + [0, 0, 1]
    xyz[:, :, :, 0] += 2.0 * np.arange(people)[None, :, None]
    poses = np.concatenate([xyz, np.ones(xyz.shape[:-1] + (1,))], -1).astype(np.float32)
    ids = np.tile(np.arange(people, dtype=np.int32), (frames, 1))
    return Poses3D(poses, ids, 10**9 + np.arange(frames) * 33_333_333, 30.0, sk.name, sk.joints)


def shifted(truth: Poses3D, dx: float) -> Poses3D:
    poses = truth.poses.copy()
    poses[..., 0] += dx
    return Poses3D(poses, truth.track_ids, truth.t_ns, truth.fps, truth.skeleton, truth.joint_names)


def run(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="mocap")
    add_eval_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    assert args.func(args, Console(file=out, width=160)) == 0
    return out.getvalue()


def test_report_files(tmp_path):
    truth = truth_sequence()
    result = evaluate(shifted(truth, 0.04), truth)
    paths = write_eval_report(result, tmp_path / "eval")
    assert [p.name for p in paths] == ["summary.md", "summary.json", "eval.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[2].stat().st_size > 10_000
    data = json.loads(paths[1].read_text())
    assert data["summary"]["mpjpe_mm"] == pytest.approx(40.0, abs=1e-3)
    assert data["summary"]["pck@25mm"] == 0 and data["summary"]["pck@50mm"] == 1
    assert len(data["mpjpe_per_joint_mm"]) == 25 and data["frames_matched_by"] == "t_ns"
    md = paths[0].read_text()
    assert "| MPJPE | 40.0 | mm |" in md and "| left_knee | 40.0 |" in md and "## PCP per limb" in md
    assert md == summary_markdown(result)


def test_eval_command_with_npz_truth(tmp_path):
    truth = truth_sequence()
    session = tmp_path / "session"
    write_poses3d(session / "poses3d.npz", shifted(truth, 0.03))
    write_poses3d(session / "truth" / "poses3d.npz", truth)
    text = run(["eval", str(session), "--truth", str(session / "truth" / "poses3d.npz")])
    assert "mpjpe_mm" in text and "30.0 mm" in text and "paired by t_ns" in text
    assert (session / "report" / "eval" / "eval.png").exists()
    run(["eval", str(session), "--truth", str(session / "truth" / "poses3d.npz"), "--out", str(tmp_path / "r"),
         "--joints", "left_knee,right_knee", "--frames", "index"])
    data = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert data["joint_names"] == ["left_knee", "right_knee"]


def test_eval_command_with_trc_truth(tmp_path):
    truth = truth_sequence(people=1)
    session = tmp_path / "session"
    write_poses3d(session / "poses3d.npz", shifted(truth, 0.05))
    trc = write_trc(tmp_path / "truth.trc", world_to_trc(truth.poses[:, 0, :, :3]), truth.joint_names, 30.0)
    loaded = load_truth(trc)
    np.testing.assert_allclose(loaded.poses[..., :3], truth.poses[..., :3], atol=1e-6)
    assert loaded.skeleton == "body25"
    text = run(["eval", str(session), "--truth", str(trc)])
    assert "50.0 mm" in text and "paired by index" in text
    text = run(["eval", str(session), "--truth", str(trc), "--trc-axes", "as-is", "--max-distance", "100"])
    assert "50.0 mm" not in text  # compared in the wrong axes


def test_eval_command_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no poses3d.npz; reconstruct the session first"):
        run(["eval", str(tmp_path), "--truth", str(tmp_path / "t.npz")])
    write_poses3d(tmp_path / "poses3d.npz", truth_sequence())
    with pytest.raises(FileNotFoundError, match="no such truth file"):
        run(["eval", str(tmp_path), "--truth", str(tmp_path / "t.npz")])


@pytest.mark.skipif(not POSE3D.is_dir(), reason="../shared/data is absent: the Pose2Sim demo is needed")
def test_pose2sims_filtered_trc_against_its_raw_trc(tmp_path):
    """Pose2Sim's Butterworth-filtered output scored against its raw triangulation: a few mm apart."""
    raw = POSE3D / "S00_P00_T01_BalancingTrial_0-100.trc"
    filt = trc_to_poses3d(read_trc(POSE3D / "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"))
    write_poses3d(tmp_path / "poses3d.npz", filt)
    run(["eval", str(tmp_path), "--truth", str(raw)])
    s = json.loads((tmp_path / "report" / "eval" / "summary.json").read_text())["summary"]
    assert s["frames"] == 100 and 0 < s["mpjpe_mm"] < 15 and s["pck@50mm"] > 0.95 and s["pcp"] > 0.95
    assert s["identity_switches"] == 0 and s["ap@50mm"] > 0.95
