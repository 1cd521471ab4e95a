"""The mocap command's verbs, called in-process (the demo has its own end-to-end test in tests/e2e)."""

from pathlib import Path

import numpy as np
import pytest

from mocap.cli import main
from rigs.formats import load_rig
from rigs.keypoint_files import read_openpose_folder
from rigs.poses3d_file import read_poses3d

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_rig_show_prints_every_camera_and_writes_the_plot(tmp_path, capsys):
    assert main(["rig", "show", "studio-4", "--plot", str(tmp_path / "layout.png")]) == 0
    out = capsys.readouterr().out
    for name in ("cam0", "cam1", "cam2", "cam3"):
        assert name in out
    assert "simulated" in out and "1280x720" in out
    assert "+3.000 +3.000 +2.500" in out  # cam0 position
    assert (tmp_path / "layout.png").read_bytes()[:4] == b"\x89PNG"


def test_rig_show_real_qualisys_file(capsys):
    qca = DATA / "perfanalytics+pose2sim/Pose2Sim/Demo_SinglePerson/calibration/Calib.qca.txt"
    if not qca.exists():
        pytest.skip("../shared/data is absent: the real Qualisys calibration comes from there")
    assert main(["rig", "show", str(qca)]) == 0
    out = capsys.readouterr().out
    assert all(f"cam0{i}" in out for i in range(1, 5)) and "1088x1920" in out


@pytest.mark.parametrize("fmt", ["pose2sim", "opencv", "panoptic", "shelf", "caliscope", "mocap"])
def test_rig_convert_round_trips_through_every_writable_format(tmp_path, capsys, fmt):
    dst = tmp_path / ("rig_" + fmt)
    assert main(["rig", "convert", "studio-8", str(dst), "--to", fmt]) == 0
    back = load_rig(dst)  # format detected from the content
    ref = load_rig("studio-8")
    # caliscope has no name field: cameras come back as cam_<id>, in order
    assert back.names == (tuple(f"cam_{i}" for i in range(8)) if fmt == "caliscope" else ref.names)
    for a, b in zip(back, ref, strict=True):
        np.testing.assert_allclose(a.K, b.K, atol=1e-9)
        np.testing.assert_allclose(a.R, b.R, atol=1e-9)
        np.testing.assert_allclose(a.t, b.t, atol=1e-9)
        assert a.size == b.size


def test_bad_rig_gives_one_line_and_exit_2(tmp_path, capsys):
    assert main(["rig", "show", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.toml" in err and "presets" in err and "Traceback" not in err
    bad = tmp_path / "rig.toml"
    bad.write_text('[rig]\nname = "x"\nunits = "m"\n[[camera]]\nname = "c0"\nwidth = 640\nheight = 480\n'
                   "K = [[-5.0, 0, 320], [0, 500, 240], [0, 0, 1]]\ndist = [0, 0, 0, 0, 0]\n"
                   "R = [[1,0,0],[0,1,0],[0,0,1]]\nt = [0,0,0]\n")
    assert main(["rig", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mocap: error: ")
    assert "rig.toml" in err and "'c0'" in err and "K:" in err and "focal" in err


def test_sim_keypoints_writes_openpose_folders_and_truth(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["sim", "keypoints", "--rig", "studio-4", "--people", "2", "--seconds", "1",
                 "--out", str(out), "--skeleton", "coco17"]) == 0
    assert "SIMULATED" in capsys.readouterr().out
    for cam in ("cam0", "cam1", "cam2", "cam3"):
        seq = read_openpose_folder(out / cam)
        assert seq.skeleton == "coco17" and seq.keypoints.shape[0] == 30 and seq.keypoints.shape[2] == 17
        assert (out / cam / "SIMULATED.txt").exists()
    truth = read_poses3d(out / "truth" / "poses3d.npz")
    assert truth.poses.shape == (30, 2, 17, 4) and truth.skeleton == "coco17"
