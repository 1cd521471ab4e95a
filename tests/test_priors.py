import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.stats import multivariate_normal

from fitting.priors import (
    TWIST_JOINTS,
    GMMPrior,
    PriorFileError,
    bend_limit_penalty,
    pose_l2,
    shape_prior,
    soft_hinge,
    twist_angles,
    twist_axes,
    twist_limit_penalty,
)
from rigs.skeletons import get_skeleton

J = {n: i for i, n in enumerate(get_skeleton("smpl24").joints)}


def _rot(axis, deg):
    axis = np.asarray(axis, float)
    return Rotation.from_rotvec(np.radians(deg) * axis / np.linalg.norm(axis)).as_matrix()


def test_twist_of_a_pure_twist_is_its_angle_and_a_pure_swing_has_none():
    u = np.array([1.0, 0.0, 0.0])
    for deg in (-170.0, -60.0, 0.0, 25.0, 89.0, 179.0):
        assert np.degrees(twist_angles(_rot(u, deg), u)) == pytest.approx(deg, abs=1e-9)
    for axis in ([0, 1, 0], [0, 0, 1], [0, 1, 1]):
        assert np.degrees(twist_angles(_rot(axis, 70.0), u)) == pytest.approx(0.0, abs=1e-9)


def test_twist_is_recovered_from_swing_after_twist():
    rng = np.random.default_rng(0)
    u = np.array([0.0, -1.0, 0.0])
    for _ in range(20):
        twist = rng.uniform(-150, 150)
        swing_axis = np.cross(u, rng.standard_normal(3))  # perpendicular to u
        R = _rot(swing_axis, rng.uniform(-120, 120)) @ _rot(u, twist)
        assert np.degrees(twist_angles(R, u)) == pytest.approx(twist, abs=1e-6)


def test_twist_angles_agree_in_numpy_and_torch():
    R = Rotation.from_rotvec(np.random.default_rng(1).normal(0, 1, (10, 3))).as_matrix()
    u = np.array([0.6, 0.0, 0.8])
    np.testing.assert_allclose(twist_angles(torch.as_tensor(R), torch.as_tensor(u)).numpy(), twist_angles(R, u))


def test_twist_axes_follow_the_rest_bones():
    rest = np.zeros((24, 3))
    rest[J["left_elbow"]], rest[J["left_wrist"]] = (0.5, 1.4, 0), (0.75, 1.4, 0)
    rest[J["right_elbow"]], rest[J["right_wrist"]] = (-0.5, 1.4, 0), (-0.75, 1.4, 0)
    rest[J["left_knee"]], rest[J["left_ankle"]] = (0.1, 0.5, 0), (0.1, 0.1, 0)
    rest[J["right_knee"]], rest[J["right_ankle"]] = (-0.1, 0.5, 0), (-0.1, 0.1, 0)
    np.testing.assert_allclose(twist_axes(rest), [[1, 0, 0], [-1, 0, 0], [0, -1, 0], [0, -1, 0]])
    assert [j for j, _ in TWIST_JOINTS] == ["left_elbow", "right_elbow", "left_knee", "right_knee"]


def test_bend_limits_penalise_hyperextension_not_flexion():
    # flexion: left elbow -y, right elbow +y, knees +x (SMPL frames)
    limbs = (("left_elbow", 1, -1), ("right_elbow", 1, 1), ("left_knee", 0, 1), ("right_knee", 0, 1))
    flexed_pose = torch.zeros(1, 24, 3)
    for joint, comp, flex in limbs:
        flexed_pose[0, J[joint], comp] = np.radians(90 * flex)
    assert float(bend_limit_penalty(flexed_pose)) < 1e-8

    def penalty(joint, component, deg):
        pose = flexed_pose.clone()
        pose[0, J[joint], component] = np.radians(deg)
        return float(bend_limit_penalty(pose))

    for joint, comp, flex in limbs:
        straight, hyper = penalty(joint, comp, 0), penalty(joint, comp, -40 * flex)
        assert 1e-4 < straight < 0.05 * hyper, (joint, straight, hyper)
        assert hyper > 0.3  # about (40 - 5 deg)^2 in rad^2
    # other components are free
    assert penalty("left_elbow", 2, 60.0) == penalty("left_elbow", 2, 0.0)


def test_twist_limit_penalty_grows_only_beyond_the_limits():
    def penalty(deg):
        return float(twist_limit_penalty(torch.tensor([[np.radians(deg), 0.0, 0.0, 0.0]])))

    base = penalty(0.0)
    assert base < 1e-5 and penalty(60.0) < 1e-3
    assert penalty(-120.0) == pytest.approx(penalty(120.0))
    assert penalty(120.0) > 0.25  # ~ (30 deg)^2
    knee = float(twist_limit_penalty(torch.tensor([[0.0, 0.0, np.radians(60.0), 0.0]])))
    assert knee > 0.25


def test_soft_hinge_is_exponential_inside_and_quadratic_beyond():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    v = soft_hinge(x, 0.1).numpy()
    assert v[0] < 1e-9 and v[1] == pytest.approx((0.1 * np.log(2)) ** 2, rel=1e-5)
    assert v[2] == pytest.approx(1.0, rel=1e-3) and v[3] == pytest.approx(4.0, rel=1e-3)


def test_shape_and_pose_l2():
    assert float(shape_prior(torch.tensor([[1.0, -2.0, 0.5]]))) == pytest.approx(5.25)
    body = torch.zeros(2, 23, 3)
    body[1, 4, 2] = 0.5
    np.testing.assert_allclose(pose_l2(body).numpy(), [0.0, 0.25])


def _synthetic_gmm(K=3, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 0.2, (K, 69))
    L = rng.normal(0, 0.05, (K, 69, 69))
    covars = L @ L.transpose(0, 2, 1) + 0.01 * np.eye(69)
    weights = rng.uniform(0.5, 1.5, K)
    return means, covars, weights / weights.sum()


def test_gmm_loads_from_npz_and_pkl_alike(tmp_path):
    means, covars, weights = _synthetic_gmm()
    np.savez(tmp_path / "gmm.npz", means=means, covars=covars, weights=weights)
    with open(tmp_path / "gmm_08.pkl", "wb") as fh:  # SMPLify's layout: a plain dict of arrays
        pickle.dump({"means": means, "covars": covars, "weights": weights}, fh, protocol=2)
    a, b = GMMPrior.load(tmp_path / "gmm.npz"), GMMPrior.load(tmp_path / "gmm_08.pkl")
    assert a.num_components == b.num_components == 3
    np.testing.assert_array_equal(a.covars, b.covars)
    x = np.random.default_rng(2).normal(0, 0.3, (5, 69))
    np.testing.assert_allclose(a.nll(x), b.nll(x))


def test_gmm_nll_is_the_best_components_negative_log_density():
    means, covars, weights = _synthetic_gmm()
    prior = GMMPrior(means, covars, weights)
    x = np.random.default_rng(3).normal(0, 0.3, (4, 69))
    expected = np.min([-np.log(weights[k]) - multivariate_normal(means[k], covars[k]).logpdf(x)
                       for k in range(3)], axis=0)
    np.testing.assert_allclose(prior.nll(x), expected, rtol=1e-9)
    t = prior.tensors("cpu", torch.float32)
    np.testing.assert_allclose(t.nll(torch.as_tensor(x, dtype=torch.float32)).numpy(), expected, rtol=1e-4)


def test_gmm_prefers_a_plausible_pose(tmp_path):
    means, covars, weights = _synthetic_gmm(K=2, seed=4)
    np.savez(tmp_path / "gmm.npz", means=means, covars=covars, weights=weights)
    prior = GMMPrior.load(tmp_path / "gmm.npz")
    rng = np.random.default_rng(5)
    plausible = means[0] + rng.multivariate_normal(np.zeros(69), covars[0])
    implausible = means[0] + 3.0 * np.sign(rng.standard_normal(69))  # far out on every component
    nll = prior.nll(np.stack([plausible, implausible]))
    assert nll[0] + 100 < nll[1]


def test_gmm_file_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(PriorFileError, match="no such file"):
        GMMPrior.load(tmp_path / "missing.pkl")
    np.savez(tmp_path / "bad.npz", means=np.zeros((2, 69)), weights=np.ones(2))
    with pytest.raises(PriorFileError, match="missing covars"):
        GMMPrior.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", means=np.zeros((2, 60)), covars=np.zeros((2, 60, 60)), weights=np.ones(2))
    with pytest.raises(PriorFileError, match=r"\[K, 69\]"):
        GMMPrior.load(tmp_path / "shape.npz")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(PriorFileError, match="cannot read"):
        GMMPrior.load(tmp_path / "junk.pkl")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(PriorFileError, match="unknown file type"):
        GMMPrior.load(tmp_path / "x.txt")
