"""Body model loading and the fast forward pass: stand-in fallback, file errors, points() == smplx."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from fitting.body_model import (
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    STANDIN_SOURCE,
    BodyModel,
    BodyModelError,
    arrays_from_file,
    find_model_file,
    load_body_model,
    standin_dir,
)
from fitting.standin_model import write_standin
from rigs.skeletons import get_skeleton


@pytest.fixture(scope="module")
def standin_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standin")
    write_standin(folder, genders=("neutral",))
    return folder


@pytest.fixture()
def env(standin_folder, monkeypatch):
    """The prebuilt stand-in as the cache, no MOCAP_BODY_MODELS."""
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(standin_folder))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)
    return standin_folder


@pytest.fixture()
def model(env) -> BodyModel:
    return load_body_model(say=None)


def _random_inputs(n: int, seed: int, num_betas: int = 10):
    g = torch.Generator().manual_seed(seed)
    betas = 1.5 * torch.randn(n, num_betas, generator=g)
    pose = 0.6 * torch.randn(n, 24, 3, generator=g)
    transl = torch.randn(n, 3, generator=g)
    return betas, pose, transl


def test_constants_match_skeleton():
    smpl = get_skeleton("smpl24")
    assert SMPL_JOINT_NAMES == smpl.joints
    assert SMPL_PARENTS.dtype == np.int64 and SMPL_PARENTS.tolist() == list(smpl.parents)


def test_standin_fallback_says_once_per_call(env):
    said: list[str] = []
    m = load_body_model(say=said.append)
    assert len(said) == 1
    msg = said[0]
    for needle in ("SMPL_NEUTRAL.pkl", "https://smpl.is.tue.mpg.de", "MOCAP_BODY_MODELS", "stand-in", "licence"):
        assert needle in msg, needle
    assert m.arrays.is_standin and m.arrays.source == STANDIN_SOURCE
    # No global state: the caller decides; each falling-back call says it once, say=None is silent.
    load_body_model(say=said.append)
    assert len(said) == 2
    load_body_model(say=None)
    assert len(said) == 2


def test_empty_directory_falls_back(env, tmp_path, monkeypatch):
    monkeypatch.setenv("MOCAP_BODY_MODELS", str(tmp_path))
    said: list[str] = []
    m = load_body_model(say=said.append)
    assert m.arrays.is_standin and len(said) == 1 and str(tmp_path) in said[0]


def test_unwritable_standin_dir(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(blocker / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)
    with pytest.raises(BodyModelError, match="MOCAP_STANDIN_DIR"):
        load_body_model(say=None)


def test_standin_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("MOCAP_STANDIN_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert standin_dir() == tmp_path / ".cache" / "mocap" / "body-models" / "standin"
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path / "x"))
    assert standin_dir() == tmp_path / "x"


def test_arrays_shapes(model):
    a = model.arrays
    V = a.num_vertices
    assert a.v_template.shape == (V, 3) and a.shapedirs.shape == (V, 3, 10) and a.num_betas == 10
    assert a.posedirs.shape == (207, V * 3) and a.J_regressor.shape == (24, V) and a.weights.shape == (V, 24)
    assert a.faces.dtype == np.int64 and a.faces.shape[1] == 3
    assert len(a.landmark_names) == len(a.landmark_vertex_ids) > 20 and a.gender == "neutral"
    np.testing.assert_allclose(a.rest_joints(np.zeros(10)), a.J_regressor @ a.v_template, atol=1e-12)
    betas = np.random.default_rng(0).normal(size=(5, 4))
    assert a.rest_joints(betas).shape == (5, 24, 3)
    np.testing.assert_allclose(a.rest_joints(betas)[2],
                               a.J_regressor @ (a.v_template + a.shapedirs[:, :, :4] @ betas[2]), atol=1e-12)


def test_points_equal_smplx(model):
    n = 7
    betas, pose, transl = _random_inputs(n, 1)
    joints, landmarks = model.points(betas, pose, transl)
    assert joints.shape == (n, 24, 3) and landmarks.shape == (n, len(model.arrays.landmark_names), 3)
    out = model.smplx_model()(betas=betas, global_orient=pose[:, 0], body_pose=pose[:, 1:].reshape(n, 69),
                              transl=transl)  # smplx's own axis-angle path
    assert (joints - out.joints[:, :24]).abs().max().item() < 1e-5
    ids = torch.as_tensor(model.arrays.landmark_vertex_ids)
    assert (landmarks - out.vertices[:, ids]).abs().max().item() < 1e-5
    verts = model.vertices(betas, pose, transl)
    assert verts.shape == (n, model.arrays.num_vertices, 3)
    assert (verts - out.vertices).abs().max().item() < 1e-5


def test_points_rotation_matrices_and_shared_betas(model):
    from smplx.lbs import batch_rodrigues

    n = 5
    betas, pose, transl = _random_inputs(n, 2, num_betas=4)  # fewer betas than the model: padded with zeros
    rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(n, 24, 3, 3)
    j_aa, l_aa = model.points(betas[:1], pose, transl)  # one shape for every frame
    j_rm, l_rm = model.points(betas[:1], rot, transl)
    torch.testing.assert_close(j_aa, j_rm)
    torch.testing.assert_close(l_aa, l_rm)
    padded = torch.cat([betas[:1], torch.zeros(1, 6)], dim=1).expand(n, -1)
    out = model.smplx_model()(betas=padded, global_orient=pose[:, 0], body_pose=pose[:, 1:].reshape(n, 69),
                              transl=transl)
    assert (j_aa - out.joints[:, :24]).abs().max().item() < 1e-5
    with pytest.raises(BodyModelError, match="11 betas"):
        model.points(torch.zeros(1, 11), pose, transl)


def test_transl_moves_the_pelvis_from_the_rest_joint(model):
    betas, pose, transl = _random_inputs(4, 3)
    joints, _ = model.points(betas, pose, transl)
    rest = model.arrays.rest_joints(betas.numpy().astype(np.float64))
    np.testing.assert_allclose(joints[:, 0].numpy(), rest[:, 0] + transl.numpy(), atol=1e-5)


def test_points_are_differentiable(model):
    betas, pose, transl = _random_inputs(3, 4)
    betas.requires_grad_(True)
    pose.requires_grad_(True)
    joints, landmarks = model.points(betas, pose, transl)
    (joints.square().sum() + landmarks.square().sum()).backward()
    assert betas.grad.abs().sum() > 0 and pose.grad.abs().sum() > 0
    assert torch.isfinite(pose.grad).all()


def test_find_model_file_names(tmp_path):
    assert find_model_file(tmp_path, "neutral") is None
    (tmp_path / "basicModel_f_lbs_10_207_0_v1.0.0.pkl").touch()
    (tmp_path / "basicmodel_m_lbs_10_207_0_v1.0.0.pkl").touch()
    (tmp_path / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl").touch()
    sub = tmp_path / "smpl"
    sub.mkdir()
    (sub / "SMPL_NEUTRAL.pkl").touch()
    assert find_model_file(tmp_path, "female").name == "basicModel_f_lbs_10_207_0_v1.0.0.pkl"
    assert find_model_file(tmp_path, "male").name == "basicmodel_m_lbs_10_207_0_v1.1.0.pkl"  # newest version
    assert find_model_file(tmp_path, "neutral") == sub / "SMPL_NEUTRAL.pkl"
    (tmp_path / "SMPL_MALE.npz").touch()
    assert find_model_file(tmp_path, "male").name == "SMPL_MALE.npz"  # the converted file first


def test_missing_directory_errors(env, tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(BodyModelError, match="does not exist") as info:
        load_body_model(missing, say=None)
    assert str(missing) in str(info.value)
    monkeypatch.setenv("MOCAP_BODY_MODELS", str(missing))
    with pytest.raises(BodyModelError, match="MOCAP_BODY_MODELS"):
        load_body_model(say=None)
    with pytest.raises(BodyModelError, match="gender"):
        load_body_model(tmp_path, gender="robot", say=None)


def test_no_file_for_gender_lists_what_is_there(env, tmp_path):
    write_arrays = dict(np.load(env / "SMPL_NEUTRAL.npz"))
    np.savez(tmp_path / "SMPL_MALE.npz", **write_arrays)
    said: list[str] = []
    with pytest.raises(BodyModelError, match="female") as info:
        load_body_model(tmp_path, gender="female", say=said.append)
    assert "SMPL_MALE.npz" in str(info.value) and not said


def test_file_missing_keys(env, tmp_path):
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", v_template=np.zeros((10, 3)), f=np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(BodyModelError) as info:
        load_body_model(tmp_path, say=None)
    for key in ("shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"):
        assert key in str(info.value)
    assert "v_template," not in str(info.value).split("lacks")[1].split("(")[0]


def test_file_wrong_shapes(env, tmp_path):
    data = {k: v for k, v in np.load(env / "SMPL_NEUTRAL.npz").items() if k in (
        "v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")}
    data["weights"] = data["weights"][:, :23]
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **data)
    with pytest.raises(BodyModelError, match="weights is"):
        load_body_model(tmp_path, say=None)


def test_real_layout_npz_and_pkl_load_without_standin(env, tmp_path):
    """A model file without the stand-in markers (as converted from SMPL) loads from the directory,
    as .npz and as a plain .pkl, and smplx runs it (no landmarks: its mesh is not SMPL's 6890 vertices)."""
    keys = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    with np.load(env / "SMPL_NEUTRAL.npz") as npz:
        data = {k: npz[k] for k in keys}
    npz_dir, pkl_dir = tmp_path / "npz", tmp_path / "pkl"
    npz_dir.mkdir()
    pkl_dir.mkdir()
    np.savez(npz_dir / "SMPL_NEUTRAL.npz", **data)
    (pkl_dir / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl").write_bytes(pickle.dumps(data, protocol=2))
    for folder in (npz_dir, pkl_dir):
        said: list[str] = []
        m = load_body_model(folder, say=said.append)
        assert not said and not m.arrays.is_standin and m.arrays.landmark_names == ()
        assert m.arrays.source.startswith(str(folder))
        betas, pose, transl = _random_inputs(2, 5)
        joints, landmarks = m.points(betas, pose, transl)
        assert landmarks.shape == (2, 0, 3)
        out = m.smplx_model()(betas=betas, global_orient=pose[:, 0], body_pose=pose[:, 1:].reshape(2, 69),
                              transl=transl)
        assert (joints - out.joints[:, :24]).abs().max().item() < 1e-5


def test_arrays_from_file_reads_gender(env):
    a = arrays_from_file(env / "SMPL_NEUTRAL.npz")
    assert a.gender == "neutral" and a.is_standin


def test_stale_standin_cache_is_rebuilt(env, tmp_path, monkeypatch):
    from fitting.standin_model import GENERATOR

    with np.load(env / "SMPL_NEUTRAL.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    data["generator"] = np.array("an older stand-in builder")
    data["v_template"] = data["v_template"] * 2.0
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **data)
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path))
    m = load_body_model(say=None)
    with np.load(tmp_path / "SMPL_NEUTRAL.npz") as npz:
        assert str(npz["generator"]) == GENERATOR
    height = m.arrays.v_template[:, 1].max() - m.arrays.v_template[:, 1].min()
    assert height == pytest.approx(1.70, abs=0.02)


def test_find_model_file_in_the_unpacked_download(tmp_path):
    models = tmp_path / "SMPL_python_v.1.1.0" / "smpl" / "models"
    models.mkdir(parents=True)
    (models / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl").touch()
    assert find_model_file(tmp_path, "neutral") == models / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"
    assert find_model_file(tmp_path, "male") is None
