"""`mocap body-model standin|convert` through the CLI (in process and as a subprocess)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from fitting.body_model import SMPL_PARENTS, arrays_from_file
from mocap.cli import main

V = 30


def _small_model_pickle(path: Path) -> Path:
    rng = np.random.default_rng(0)
    parents = SMPL_PARENTS.copy()
    parents[0] = 4294967295
    J_regressor = np.zeros((24, V))
    J_regressor[np.arange(24), np.arange(24)] = 1.0
    data = {
        "v_template": rng.normal(size=(V, 3)), "shapedirs": rng.normal(size=(V, 3, 10)),
        "posedirs": np.zeros((V, 3, 207)), "J_regressor": J_regressor,
        "weights": rng.dirichlet(np.ones(24), size=V), "kintree_table": np.stack([parents, np.arange(24)]),
        "f": rng.integers(0, V, size=(50, 3)), "bs_style": "lbs",
    }
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def test_standin_command(tmp_path, capsys):
    out = tmp_path / "models"
    assert main(["body-model", "standin", "--out", str(out), "--gender", "male"]) == 0
    text = capsys.readouterr().out
    path = out / "SMPL_MALE.npz"
    assert path.exists() and not (out / "SMPL_NEUTRAL.npz").exists()
    model = arrays_from_file(path)
    assert str(path) in text and f"{model.num_vertices} vertices" in text
    assert "not SMPL" in text and "https://smpl.is.tue.mpg.de" in text


def test_convert_command(tmp_path, capsys):
    pkl = _small_model_pickle(tmp_path / "basicmodel_f_lbs_10_207_0_v1.1.0.pkl")
    out = tmp_path / "SMPL_FEMALE.npz"
    assert main(["body-model", "convert", str(pkl), str(out)]) == 0
    assert f"{V} vertices" in capsys.readouterr().out
    model = arrays_from_file(out)
    assert model.num_vertices == V and not model.is_standin


def test_convert_errors_are_one_line(tmp_path, capsys):
    assert main(["body-model", "convert", str(tmp_path / "missing.pkl"), str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mocap: error:") and "missing.pkl" in err
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2))
    assert main(["body-model", "convert", str(bad), str(tmp_path / "y.npz")]) == 2
    assert "shapedirs" in capsys.readouterr().err


def test_subprocess_entry_point(tmp_path):
    pkl = _small_model_pickle(tmp_path / "SMPL_NEUTRAL.pkl")
    out = tmp_path / "converted.npz"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "mocap", "body-model", "convert", str(pkl), str(out)],
                         cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.exists() and "wrote" in run.stdout
