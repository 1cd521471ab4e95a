from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fitting.body_model import SMPL_LANDMARK_VERTICES
from fitting.keypoint_maps import (
    HIP_WEIGHT,
    KeypointMapError,
    defined_names,
    keypoint_map,
    model_keypoints,
)
from rigs.sim import body as sim_body
from rigs.skeletons import Skeleton, all_joint_names, get_skeleton, skeleton_names

A = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # world = A @ smpl


def _real_smpl_like():
    """What keypoint_map sees of the real SMPL files: their landmark names only."""
    return SimpleNamespace(landmark_names=tuple(SMPL_LANDMARK_VERTICES), source="SMPL_NEUTRAL.pkl")


def test_every_joint_name_of_every_format_is_defined():
    assert set(all_joint_names()) <= set(defined_names())


@pytest.mark.parametrize("skeleton", skeleton_names())
def test_maps_are_affine_combinations_with_weights(standin, skeleton):
    for model in (standin.arrays, _real_smpl_like()):
        kmap = keypoint_map(skeleton, model)
        sk = get_skeleton(skeleton)
        assert kmap.combination.shape == (sk.num_joints, 24 + len(model.landmark_names))
        np.testing.assert_allclose(kmap.combination.sum(1), 1.0)
        assert ((kmap.weights >= 0) & (kmap.weights <= 1)).all()
        assert kmap.joint_names == sk.joints


def test_the_standin_has_every_surface_point_itself(standin):
    lm = standin.arrays.landmark_names
    for skeleton in skeleton_names():
        kmap = keypoint_map(skeleton, standin.arrays)
        for name, source in zip(kmap.joint_names, kmap.sources, strict=True):
            if name in lm or name in get_skeleton("smpl24").joints:
                assert source == name, (skeleton, name, source)


def test_smpl_joints_map_to_themselves_and_hips_weigh_less(standin):
    kmap = keypoint_map("smpl24", standin.arrays)
    np.testing.assert_array_equal(kmap.combination[:, :24], np.eye(24))
    assert not kmap.combination[:, 24:].any()
    hips = [kmap.joint_names.index(n) for n in ("left_hip", "right_hip")]
    assert (kmap.weights[hips] == HIP_WEIGHT).all() and HIP_WEIGHT < 1
    others = np.delete(kmap.weights, hips + [kmap.joint_names.index("neck")])
    assert (others == 1).all()
    b25 = keypoint_map("body25", standin.arrays)
    mid = b25.joint_names.index("mid_hip")
    assert b25.sources[mid] == "0.5 left_hip + 0.5 right_hip" and b25.weights[mid] == HIP_WEIGHT


def test_real_smpl_falls_back_where_it_lacks_a_landmark():
    kmap = keypoint_map("mediapipe33", _real_smpl_like())
    src = dict(zip(kmap.joint_names, zip(kmap.sources, kmap.weights, strict=True), strict=True))
    assert src["nose"] == ("nose", 1.0) and src["left_heel"] == ("left_heel", 1.0)
    assert src["mouth_left"][1] == 0.0
    assert src["left_eye_inner"] == ("left_eye", 0.3)
    assert src["right_foot_index"] == ("0.5 right_big_toe + 0.5 right_small_toe", 0.5)
    assert src["left_index"] == ("left_hand", 0.3) and src["left_pinky"][1] < 0.5


def test_a_model_without_landmarks_still_maps_with_face_points_unweighted():
    bare = SimpleNamespace(landmark_names=(), source="bare")
    kmap = keypoint_map("coco17", bare)
    face = [kmap.joint_names.index(n) for n in ("nose", "left_eye", "right_ear")]
    assert (kmap.weights[face] == 0).all() and (kmap.weights[5:] > 0).all()
    h36m = keypoint_map("h36m17", bare)
    assert h36m.sources[h36m.joint_names.index("neck_nose")] == "head"


def test_an_undefined_joint_name_is_a_clear_error():
    custom = Skeleton("custom", ("nose", "tail_tip"), (-1, 0), ())
    with pytest.raises(KeypointMapError, match="'tail_tip' has no definition"):
        keypoint_map(custom, _real_smpl_like())


def test_model_keypoints_is_the_combination(standin):
    kmap = keypoint_map("halpe26", standin.arrays)
    rng = np.random.default_rng(0)
    L = len(standin.arrays.landmark_names)
    joints, landmarks = rng.normal(size=(3, 24, 3)), rng.normal(size=(3, L, 3))
    out = model_keypoints(torch.as_tensor(joints), torch.as_tensor(landmarks), kmap).numpy()
    expected = np.einsum("jk,bkd->bjd", kmap.combination, np.concatenate([joints, landmarks], 1))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(model_keypoints(torch.as_tensor(joints), torch.as_tensor(landmarks),
                                               kmap.tensor("cpu", torch.float64)).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("skeleton", ["body25", "h36m17", "mediapipe33", "halpe26"])
def test_standin_rest_keypoints_sit_where_the_simulated_body_has_them(standin, skeleton):
    """Same name = same point: the mapped stand-in T-pose matches the simulated body's rest proportions,
    interior combinations (mid_hip, thorax, spine, neck_nose) included."""
    kmap = keypoint_map(skeleton, standin.arrays)
    with torch.no_grad():
        j, lm = standin.points(torch.zeros(1, 10), torch.zeros(1, 24, 3))
    ours = model_keypoints(j.double(), lm.double(), kmap)[0].numpy() @ A.T  # to the world axes
    names = get_skeleton(skeleton).joints
    rest = sim_body.rest_points(1.0)
    sim = rest[sim_body.point_index(names)]
    pelvis_ours = (j[0, 0].double().numpy() @ A.T)
    height = np.ptp(ours[:, 2]) / np.ptp(sim[:, 2])  # the stand-in's height in the sim's proportions
    err = np.linalg.norm((ours - pelvis_ours) - (sim - rest[0]) * height, axis=-1)
    print(skeleton, f"height {height:.3f} m", dict(zip(names, np.round(err * 1000).astype(int), strict=True)))
    assert np.median(err) < 0.02 and err.max() < 0.05
