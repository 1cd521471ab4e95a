"""The body fit on simulated people of known stand-in shape and pose (fitting.simulated_bodies)."""

import numpy as np
import pytest
import torch

from fitting.priors import TWIST_LIMITS_DEG, GMMPrior
from fitting.simulated_bodies import simulate_bodies
from fitting.smplify import FitError, FitParams, fit_sequence, fitted_keypoints, geodesic_deg, global_rotations
from rigs.skeletons import get_skeleton

SECONDS, FPS, SEED = 4.0, 30, 11
SMPL_NAMES = get_skeleton("smpl24").joints


@pytest.fixture(scope="module")
def person(standin):
    """One simulated person (stand-in body, seeded betas), 4 s at 30 fps."""
    return simulate_bodies(standin, 1, SECONDS, FPS, SEED)


def _truth(person, skeleton):
    return person.keypoints(skeleton)[:, 0].astype(np.float32)


def _mpjpe_mm(standin, result, truth):
    pred = fitted_keypoints(standin, result)
    return float(np.linalg.norm(pred - truth[..., :3], axis=-1).mean() * 1000)


def _rotation_errors(person, result):
    """Per-joint geodesic error (deg) [T, 24] of the global joint rotations."""
    truth = global_rotations(person.rotations()[:, 0])
    return geodesic_deg(truth, result.global_rotations())


@pytest.fixture(scope="module")
def exact_fits(standin, person):
    return {sk: fit_sequence(standin, _truth(person, sk), sk, FitParams(fps=FPS)) for sk in ("body25", "coco17")}


@pytest.mark.parametrize("skeleton", ["body25", "coco17"])
def test_exact_keypoints_fit_within_10mm(standin, person, exact_fits, skeleton):
    result = exact_fits[skeleton]
    mpjpe = _mpjpe_mm(standin, result, _truth(person, skeleton))
    rot = _rotation_errors(person, result)
    per_joint = dict(zip(SMPL_NAMES, np.round(np.median(rot, 0), 1).tolist(), strict=True))
    print(f"\n{skeleton} exact: MPJPE {mpjpe:.2f} mm, fit {result.seconds:.1f} s, losses {result.losses}")
    print(f"{skeleton} median rotation error per joint (deg): {per_joint}")
    print(f"betas true {np.round(person.betas[0][:4], 2)} fitted {np.round(result.betas[:4], 2)}")
    assert mpjpe <= 10.0
    assert np.median(rot) < 15.0
    assert result.poses.shape == (120, 72) and result.trans.shape == (120, 3)
    assert result.joint_error_mm.shape == (120, get_skeleton(skeleton).num_joints)
    assert result.valid.all() and len(result.jumps) == 0


@pytest.mark.parametrize("skeleton", ["body25", "coco17"])
def test_noisy_keypoints_fit_within_20mm_and_twists_stay_in_limits(standin, person, skeleton):
    truth = _truth(person, skeleton)
    noisy = truth.copy()
    noisy[..., :3] += np.random.default_rng(1).normal(0, 0.015, noisy[..., :3].shape)
    result = fit_sequence(standin, noisy, skeleton, FitParams(fps=FPS))
    mpjpe = _mpjpe_mm(standin, result, truth)
    raw = float(np.linalg.norm(noisy[..., :3] - truth[..., :3], axis=-1).mean() * 1000)
    rot = _rotation_errors(person, result)
    print(f"\n{skeleton} 15 mm noise: input error {raw:.1f} mm -> MPJPE {mpjpe:.2f} mm, fit {result.seconds:.1f} s")
    print(f"{skeleton} median rotation error per joint (deg): "
          f"{dict(zip(SMPL_NAMES, np.round(np.median(rot, 0), 1).tolist(), strict=True))}")
    print(f"max |twist| (deg) {np.round(np.abs(result.twist_deg).max(0), 1)}")
    assert mpjpe <= 20.0
    assert np.median(rot) < 15.0
    assert (np.abs(result.twist_deg) <= TWIST_LIMITS_DEG + 2.0).all()


def test_twist_limits_hold_on_very_noisy_input(standin, person):
    truth = _truth(person, "body25")
    noisy = truth.copy()
    noisy[..., :3] += np.random.default_rng(2).normal(0, 0.05, noisy[..., :3].shape)
    result = fit_sequence(standin, noisy, "body25", FitParams(fps=FPS, w_rot=0.0, w_pose=0.0))
    print(f"\n50 mm noise, no rotation smoothing or pose L2: max |twist| {np.abs(result.twist_deg).max(0).round(1)}")
    assert (np.abs(result.twist_deg) <= TWIST_LIMITS_DEG + 2.0).all()


def test_a_corrupted_frame_is_reported_and_does_not_pull_the_fit(standin, person):
    truth = _truth(person, "body25")
    bad = truth.copy()
    bad[50, :, :3] += np.array([0.5, 0.0, 0.0], dtype=np.float32)
    result = fit_sequence(standin, bad, "body25", FitParams(fps=FPS))
    assert 50 in result.jumps.tolist() and len(result.jumps) <= 2
    assert not result.valid[50] and result.valid[49] and result.valid[51]  # dropped from the data term
    pred = fitted_keypoints(standin, result)
    assert np.linalg.norm(pred[50] - truth[50, :, :3], axis=-1).mean() < 0.03


def test_a_turning_fit_is_reported_as_a_jump(standin, person):
    truth = _truth(person, "coco17")
    flipped = truth.copy()
    # from frame 60 on the person is mirrored left/right about its own pelvis: the body must turn round
    names = get_skeleton("coco17")
    flipped[60:] = flipped[60:, names.flip_indices()]
    result = fit_sequence(standin, flipped, "coco17", FitParams(fps=FPS))
    assert 60 in result.jumps.tolist()


def test_missing_frames_are_interpolated(standin, person):
    truth = _truth(person, "body25")
    gappy = truth.copy()
    gappy[40:46] = np.array([np.nan, np.nan, np.nan, 0.0], dtype=np.float32)
    gappy[70, :5] = np.array([np.nan, np.nan, np.nan, 0.0], dtype=np.float32)  # a partly seen frame
    result = fit_sequence(standin, gappy, "body25", FitParams(fps=FPS))
    assert not result.valid[40:46].any() and result.valid[:40].all() and result.valid[46:].all()
    assert np.isnan(result.joint_error_mm[40:46]).all() and np.isnan(result.joint_error_mm[70, :5]).all()
    pred = fitted_keypoints(standin, result)
    gap_err = np.linalg.norm(pred[40:46] - truth[40:46, :, :3], axis=-1).mean() * 1000
    print(f"\nerror inside a 6-frame gap: {gap_err:.1f} mm")
    assert gap_err < 60.0
    assert np.isfinite(result.poses).all() and np.isfinite(result.trans).all()


def test_a_three_frame_track_fits(standin, person):
    truth = _truth(person, "coco17")[30:33]
    result = fit_sequence(standin, truth, "coco17", FitParams(fps=FPS))
    assert result.poses.shape == (3, 72)
    assert _mpjpe_mm(standin, result, truth) < 20.0
    one = fit_sequence(standin, truth[:1], "coco17", FitParams(fps=FPS))
    assert one.poses.shape == (1, 72) and np.isfinite(one.poses).all()


def test_bad_input_is_a_clear_error(standin, person):
    truth = _truth(person, "coco17")
    with pytest.raises(FitError, match=r"expected \[T, 25, 4\]"):
        fit_sequence(standin, truth, "body25")
    empty = np.full_like(truth[:5], np.nan)
    empty[..., 3] = 0
    with pytest.raises(FitError, match="no 3D keypoints"):
        fit_sequence(standin, empty, "coco17")


def test_progress_is_reported_per_stage(standin, person):
    calls = []
    fit_sequence(standin, _truth(person, "coco17")[:10], "coco17", FitParams(fps=FPS, iters_pose=20, iters_all=10),
                 progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert {c[0] for c in calls} == {"torso", "coarse", "pose", "all"}
    assert all(0 < done <= total for _, done, total in calls)


def test_a_gmm_pose_prior_joins_the_fit(standin, person):
    rng = np.random.default_rng(0)
    means = np.stack([np.zeros(69), rng.normal(0, 0.3, 69)])
    prior = GMMPrior(means, np.stack([np.eye(69) * 0.2] * 2), np.array([0.7, 0.3]))
    truth = _truth(person, "coco17")[:60]
    result = fit_sequence(standin, truth, "coco17", FitParams(fps=FPS, w_gmm=1e-4), pose_prior=prior)
    assert _mpjpe_mm(standin, result, truth) <= 10.0
    strong = fit_sequence(standin, truth, "coco17", FitParams(fps=FPS, w_gmm=10.0), pose_prior=prior)
    body = lambda r: r.poses[:, 3:]  # noqa: E731
    assert prior.nll(body(strong)).mean() < prior.nll(body(result)).mean()  # a strong prior pulls towards it


def test_geodesic_deg():
    from scipy.spatial.transform import Rotation

    R1 = Rotation.from_rotvec([[0, 0, 0.3], [1.0, 0, 0]]).as_matrix()
    R2 = Rotation.from_rotvec([[0, 0, 0.8], [1.0, 0, 0]]).as_matrix()
    np.testing.assert_allclose(geodesic_deg(R1, R2), [np.degrees(0.5), 0.0], atol=1e-9)
    flip = Rotation.from_rotvec([0, np.pi, 0]).as_matrix()
    assert geodesic_deg(np.eye(3), flip) == pytest.approx(180.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda is not available on this machine")
def test_the_fit_runs_on_cuda(standin, person):
    truth = _truth(person, "body25")
    result = fit_sequence(standin, truth, "body25", FitParams(fps=FPS, device="cuda"))
    assert _mpjpe_mm(standin, result, truth) <= 10.0
