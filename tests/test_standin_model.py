"""The stand-in body model: deterministic, watertight, SMPL layout, plausible shape, sensible betas."""

from __future__ import annotations

import numpy as np
import pytest

from fitting.body_model import SMPL_JOINT_NAMES, SMPL_PARENTS, arrays_from_file
from fitting.standin_model import (
    BETA_NAMES,
    HEIGHTS,
    LANDMARK_NAMES,
    build_standin,
    target_rest_joints,
    write_standin,
)
from rigs.sim import body as sim_body

A = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float64)  # world = A @ smpl
SPEC_LANDMARKS = {
    "nose", "left_eye", "right_eye", "left_eye_inner", "right_eye_inner", "left_eye_outer", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "head_top", "left_heel", "right_heel",
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_foot_index", "right_foot_index",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
}


@pytest.fixture(scope="module")
def neutral() -> dict:
    return build_standin("neutral")


@pytest.fixture(scope="module")
def others() -> dict:
    return {g: build_standin(g) for g in ("male", "female")}


def _edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _winding_numbers(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of a closed mesh at each point (1 inside, 0 outside)."""
    out = []
    for p in points:
        a, b, c = (verts[faces[:, k]] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        num = np.einsum("ij,ij->i", a, np.cross(b, c))
        den = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la \
            + np.einsum("ij,ij->i", c, a) * lb
        out.append(2.0 * np.arctan2(num, den).sum() / (4.0 * np.pi))
    return np.array(out)


def _sim_rest_smpl(height: float) -> np.ndarray:
    """The simulated body's rest points (POINT_NAMES order) in SMPL's frame, pelvis at the origin."""
    world = sim_body.rest_points(height)
    smpl = world @ A  # smpl = A^T world, row-wise
    return smpl - smpl[0]


def test_layout_and_keys(neutral):
    V = neutral["v_template"].shape[0]
    assert 3000 <= V <= 7000
    assert neutral["shapedirs"].shape == (V, 3, 10) and len(BETA_NAMES) == 10
    assert neutral["posedirs"].shape == (V, 3, 207) and not neutral["posedirs"].any()
    assert neutral["J_regressor"].shape == (24, V) and neutral["weights"].shape == (V, 24)
    kt = neutral["kintree_table"]
    assert kt.shape == (2, 24) and kt[1].tolist() == list(range(24)) and kt[0, 1:].tolist() == SMPL_PARENTS[1:].tolist()
    assert neutral["f"].dtype == np.int64 and neutral["f"].min() == 0 and neutral["f"].max() == V - 1
    assert bool(neutral["standin"]) and str(neutral["gender"]) == "neutral"
    assert "not SMPL" in str(neutral["generator"])


def test_deterministic_bit_for_bit(neutral, tmp_path):
    again = build_standin("neutral")
    assert again.keys() == neutral.keys()
    for key, value in neutral.items():
        assert np.asarray(value).dtype == np.asarray(again[key]).dtype, key
        assert np.array_equal(value, again[key]), key
        assert np.asarray(value).tobytes() == np.asarray(again[key]).tobytes(), key
    from fitting.standin_model import _write_npz

    _write_npz(tmp_path / "a.npz", neutral)
    _write_npz(tmp_path / "b.npz", again)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_watertight_manifold_surface(neutral):
    v, f = neutral["v_template"], neutral["f"]
    V = len(v)
    undirected = np.sort(_edges(f), axis=1)
    _, counts = np.unique(undirected[:, 0] * V + undirected[:, 1], return_counts=True)
    assert (counts == 2).all(), "every edge in exactly two faces"
    directed = _edges(f)
    _, dcounts = np.unique(directed[:, 0] * V + directed[:, 1], return_counts=True)
    assert (dcounts == 1).all(), "consistent orientation: each directed edge once"
    assert V - len(counts) + len(f) == 2, "Euler characteristic 2 (a sphere)"
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_comp, _ = connected_components(coo_matrix((np.ones(len(undirected)), undirected.T), shape=(V, V)))
    assert n_comp == 1
    assert 0.05 < _volume(v, f) < 0.09  # outward normals: positive volume; a 1.70 m adult is ~0.065 m^3
    area = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1) / 2
    assert area.min() > 0 and 1.4 < area.sum() < 2.3  # body surface area, m^2
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
    assert mesh.is_vertex_manifold() and not mesh.is_self_intersecting()


def test_canonical_frame_and_proportions(neutral):
    v = neutral["v_template"]
    ext = v.max(0) - v.min(0)
    assert ext[1] == pytest.approx(HEIGHTS["neutral"], abs=0.02)  # y up: height
    assert 1.6 < ext[0] < 1.85  # x: arm span of a T-pose
    assert 0.2 < ext[2] < 0.4  # z: depth
    J = neutral["J_regressor"] @ v
    names = list(SMPL_JOINT_NAMES)
    assert J[names.index("head"), 1] > J[0, 1] > J[names.index("left_ankle"), 1]  # y up
    assert J[names.index("left_wrist"), 0] > 0.5 > -0.5 > J[names.index("right_wrist"), 0]  # x = person's left
    nose = v[neutral["landmark_vertex_ids"][list(LANDMARK_NAMES).index("nose")]]
    assert nose[2] > J[names.index("head"), 2] + 0.05  # facing +z
    assert abs(v[:, 0].mean()) < 0.01  # left-right symmetric


def test_regressor_gives_rest_joints_inside_the_body(neutral):
    R = neutral["J_regressor"]
    assert (R >= 0).all()
    np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-9)
    J = R @ neutral["v_template"]
    np.testing.assert_allclose(J, target_rest_joints("neutral"), atol=1e-4)
    winding = _winding_numbers(J, neutral["v_template"], neutral["f"])
    assert (winding > 0.5).all(), dict(zip(SMPL_JOINT_NAMES, winding.round(2), strict=True))
    outside = np.array([[0.0, 1.5, 0.0], [0.0, 0.0, 0.5], [0.5, -0.5, 0.0]])
    assert (np.abs(_winding_numbers(outside, neutral["v_template"], neutral["f"])) < 0.5).all()


def test_agrees_with_the_simulated_body(neutral):
    sim = _sim_rest_smpl(HEIGHTS["neutral"])
    J = neutral["J_regressor"] @ neutral["v_template"]
    assert np.linalg.norm(J - J[0] - sim[:24], axis=1).max() < 0.01
    lm_sim = sim[sim_body.point_index(LANDMARK_NAMES)]
    lm = neutral["v_template"][neutral["landmark_vertex_ids"]] - J[0]
    assert np.linalg.norm(lm - lm_sim, axis=1).max() < 0.03


def test_landmarks(neutral):
    assert set(LANDMARK_NAMES) == SPEC_LANDMARKS
    assert [str(n) for n in neutral["landmark_names"]] == list(LANDMARK_NAMES)
    ids = neutral["landmark_vertex_ids"]
    assert ids.dtype == np.int64 and len(set(ids.tolist())) == len(ids)
    assert ids.min() >= 0 and ids.max() < len(neutral["v_template"])


def test_skinning_weights(neutral):
    w = neutral["weights"]
    assert (w >= 0).all() and ((w > 0).sum(1) <= 4).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-9)
    dominant = np.bincount(w.argmax(1), minlength=24)
    assert (dominant > 0).all(), dict(zip(SMPL_JOINT_NAMES, dominant, strict=True))  # every joint moves some skin
    v = neutral["v_template"]
    names = list(SMPL_JOINT_NAMES)
    hand = v[:, 0] > 0.75  # far along the left arm: the left hand and wrist only
    assert set(np.nonzero(w[hand].sum(0) > 0)[0]) <= {names.index(n) for n in ("left_wrist", "left_hand",
                                                                                 "left_elbow")}


def _height(v):
    return v[:, 1].max() - v[:, 1].min()


def test_beta_effects(neutral):
    v, S, R, f = neutral["v_template"], neutral["shapedirs"], neutral["J_regressor"], neutral["f"]
    names = list(SMPL_JOINT_NAMES)

    def shaped(k, value):
        return v + value * S[:, :, BETA_NAMES.index(k)]

    heights = [_height(shaped("height", b)) for b in (-2, -1, 0, 1, 2)]
    assert np.all(np.diff(heights) > 0.05)  # about 4 % of 1.70 m a unit
    J0 = R @ v

    def span_and_torso(verts):
        J = R @ verts
        return verts[:, 0].max() - verts[:, 0].min(), J[names.index("neck"), 1] - J[0, 1]

    span0, torso0 = span_and_torso(v)
    span1, torso1 = span_and_torso(shaped("limb_length", 1.0))
    assert span1 - span0 > 0.05 and abs(torso1 - torso0) < 0.005
    assert _height(shaped("leg_length", 1.0)) - _height(v) > 0.03
    vol0 = _volume(v, f)
    g = shaped("girth", 1.0)
    assert _volume(g, f) / vol0 > 1.15
    assert np.linalg.norm(R @ g - J0, axis=1).max() < 0.006  # joints barely move
    for name in ("waist", "limb_girth"):
        assert _volume(shaped(name, 1.0), f) > vol0 * 1.03
    sw = R @ shaped("shoulder_width", 1.0)
    ls, rs = names.index("left_shoulder"), names.index("right_shoulder")
    assert (sw[ls, 0] - sw[rs, 0]) - (J0[ls, 0] - J0[rs, 0]) > 0.03
    hw = R @ shaped("hip_width", 1.0)
    lh, rh = names.index("left_hip"), names.index("right_hip")
    assert (hw[lh, 0] - hw[rh, 0]) - (J0[lh, 0] - J0[rh, 0]) > 0.015
    tl = R @ shaped("torso_length", 1.0)
    assert tl[names.index("neck"), 1] - J0[names.index("neck"), 1] > 0.015
    assert np.abs(tl[names.index("left_ankle")] - J0[names.index("left_ankle")]).max() < 1e-3
    head = shaped("head_size", 1.0)
    assert head[:, 1].max() - v[:, 1].max() > 0.01
    # every shape stays a sane surface at +-2: positive volume, same height order
    for k in range(len(BETA_NAMES)):
        for b in (-2.0, 2.0):
            assert 0.03 < _volume(v + b * S[:, :, k], f) < 0.12


def test_genders(neutral, others):
    def widths(model):
        J = model["J_regressor"] @ model["v_template"]
        names = list(SMPL_JOINT_NAMES)
        h = _height(model["v_template"])
        shoulders = J[names.index("left_shoulder"), 0] - J[names.index("right_shoulder"), 0]
        hips = model["v_template"][np.abs(model["v_template"][:, 1] - J[0, 1]) < 0.1, 0]
        return h, shoulders / h, (hips.max() - hips.min()) / h

    hn, sn, pn = widths(neutral)
    hm, sm, pm = widths(others["male"])
    hf, sf, pf = widths(others["female"])
    assert hm == pytest.approx(1.78, abs=0.02) and hf == pytest.approx(1.64, abs=0.02)
    assert sm > sn + 0.01 and sf < sn
    assert pf > pn + 0.005
    for model in others.values():
        v, f = model["v_template"], model["f"]
        assert 3000 <= len(v) <= 7000 and _volume(v, f) > 0.04


def test_write_standin_loads(tmp_path):
    paths = write_standin(tmp_path, genders=("female",))
    assert [p.name for p in paths] == ["SMPL_FEMALE.npz"]
    with np.load(paths[0], allow_pickle=False) as npz:  # plain arrays, no pickles
        assert {"v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
                "landmark_names", "landmark_vertex_ids", "gender", "standin", "generator"} <= set(npz.files)
    model = arrays_from_file(paths[0])
    assert model.gender == "female" and model.is_standin
