"""Real motion through fit and export: CMU 01_01 (../shared/data) as BODY_25 3D keypoints by forward kinematics,
`mocap fit` then `mocap export`; the fit follows the keypoints and the BVH reproduces the fitted body."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fitting.body_model import load_body_model
from mocap.cli import main
from rigs.bvh import forward_kinematics, read_bvh
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from rigs.smpl_file import read_smpl_track

CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "facebookresearch+fairmotion" / "tests" / "data" / \
    "01_01.bvh"
SK = get_skeleton("body25")


@pytest.mark.skipif(not CMU.exists(), reason="../shared/data is absent: the CMU 01_01 clip comes from there")
def test_cmu_clip_fitted_and_exported_through_the_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)
    perf = simulate_performers(1, 5.0, 30.0, seed=0, bvh=CMU, heights=np.array([1.75]))
    kp = keypoints3d(perf, SK).astype(np.float32)  # [T, 1, J, 4]
    T = kp.shape[0]
    session = tmp_path / "cmu"
    session.mkdir()
    write_poses3d(session / "poses3d.npz", Poses3D(kp, np.zeros((T, 1), np.int32), perf.t_ns, 30.0, SK.name,
                                                    SK.joints))
    assert main(["fit", str(session)]) == 0
    track = read_smpl_track(session / "smpl" / "track_0.npz")
    model = load_body_model(None, "neutral", say=None)
    from fitting.smplify import FitResult, fitted_keypoints

    fitted = fitted_keypoints(model, FitResult(track.betas, track.poses, track.trans, np.zeros((T, 0)),
                                               np.zeros(0, int), np.zeros((T, 4)), track.valid), SK.name)
    err_mm = np.linalg.norm(fitted - kp[:, 0, :, :3], axis=-1) * 1000
    print(f"CMU 01_01, 5 s: keypoint MPJPE {err_mm.mean():.1f} mm, median {np.median(err_mm):.1f} mm")
    assert err_mm.mean() < 20 and np.median(err_mm) < 15
    assert (session / "report" / "fit" / "frame_track_0.png").stat().st_size > 10_000

    assert main(["export", str(session), "--bvh", "--up", "z"]) == 0
    motion = read_bvh(session / "export" / "track_0.bvh")
    assert motion.num_frames == T and abs(motion.frame_time - 1 / 30) < 1e-6
    by_name = {j.name: i for i, j in enumerate(motion.joints)}
    bvh_joints = forward_kinematics(motion)[:, [by_name[n] for n in get_skeleton("smpl24").joints]]
    with torch.no_grad():
        joints, _ = model.points(torch.as_tensor(track.betas[None], dtype=torch.float64),
                                 torch.as_tensor(track.poses.reshape(-1, 24, 3), dtype=torch.float64),
                                 torch.as_tensor(track.trans, dtype=torch.float64))
    assert np.abs(bvh_joints - joints.numpy()).max() < 1e-3  # within 1 mm on every frame
