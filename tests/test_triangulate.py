"""Tests for rigs/triangulate.py: DLT (numpy, torch), robust consensus, reprojection errors."""

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rigs.camera import Camera, Rig, look_at_rotation
from rigs.triangulate import (
    RobustResult,
    ransac_samples,
    reprojection_errors,
    triangulate,
    triangulate_dlt,
    triangulate_robust,
)


def random_rig(rng: np.random.Generator, n_cams: int, distortion: float = 0.05) -> Rig:
    """n_cams cameras 3-6 m from the origin, all looking at it, with random K and small distortion."""
    cams = []
    for i in range(n_cams):
        azimuth = 2 * np.pi * (i + rng.uniform(-0.3, 0.3)) / n_cams
        elevation = rng.uniform(-0.3, 0.8)
        r = rng.uniform(3, 6)
        eye = r * np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                            np.sin(elevation)])
        R = look_at_rotation(eye, rng.uniform(-0.2, 0.2, 3))
        w, h = 1920, 1080
        f = rng.uniform(800, 2000)
        fy = f * rng.uniform(0.98, 1.02)
        K = np.array([[f, 0, w / 2 + rng.uniform(-20, 20)], [0, fy, h / 2], [0, 0, 1]])
        dist = rng.uniform(-1, 1, 5) * distortion * np.array([1, 0.3, 0.02, 0.02, 0.1])
        cams.append(Camera(f"cam{i}", w, h, K, dist, R, -R @ eye))
    return Rig(tuple(cams))


def observe(rig: Rig, points: np.ndarray, noise_px: float = 0.0, rng=None) -> np.ndarray:
    """Detections [C, ..., 3] of world points [..., 3] in every camera, score 1."""
    pix = rig.project(points)
    if noise_px:
        pix = pix + rng.normal(0, noise_px, pix.shape)
    return np.concatenate([pix, np.ones(pix.shape[:-1] + (1,))], -1)


def ring_rig(n_cams: int = 6) -> Rig:
    rng = np.random.default_rng(7)
    return random_rig(rng, n_cams, distortion=0.02)


# --- parity with OpenCV ---------------------------------------------------------------------------

def test_dlt_solver_matches_cv2_triangulate_points_with_noise():
    rng = np.random.default_rng(0)
    rig = random_rig(rng, 2, distortion=0.0)
    X = rng.uniform(-1, 1, (200, 3))
    xy = np.stack([c.undistort(c.project(X)) for c in rig]) + rng.normal(0, 2e-3, (2, 200, 2))
    Rt = np.stack([np.hstack([c.R, c.t[:, None]]) for c in rig])
    ours = triangulate_dlt(xy, None, Rt, iterations=0, homogeneous=True)
    h = cv2.triangulatePoints(Rt[0], Rt[1], xy[0].T.copy(), xy[1].T.copy())
    theirs = (h[:3] / h[3]).T
    assert np.abs(ours - theirs).max() < 1e-6
    assert np.abs(ours - X).max() > 1e-3  # the noise is real, so agreement is not trivial


def test_triangulate_pixels_matches_cv2_on_two_views():
    rng = np.random.default_rng(1)
    rig = random_rig(rng, 2, distortion=0.0)
    X = rng.uniform(-1, 1, (100, 3))
    kp = observe(rig, X)
    ours = triangulate(rig, kp)
    h = cv2.triangulatePoints(rig[0].projection_matrix, rig[1].projection_matrix,
                              kp[0, :, :2].T.copy(), kp[1, :, :2].T.copy())
    assert np.abs(ours[:, :3] - (h[:3] / h[3]).T).max() < 1e-6
    assert np.all(ours[:, 3] == 1)


# --- exact recovery on random rigs ----------------------------------------------------------------

rig_cases = st.tuples(st.integers(0, 2**32 - 1), st.integers(3, 8), st.integers(1, 40))


@settings(max_examples=25, deadline=None)
@given(rig_cases)
def test_dlt_recovers_points_on_random_rigs(case):
    seed, n_cams, n_points = case
    rng = np.random.default_rng(seed)
    rig = random_rig(rng, n_cams)
    X = rng.uniform(-1, 1, (n_points, 3))
    out = triangulate(rig, observe(rig, X))
    assert out.shape == (n_points, 4)
    assert np.abs(out[:, :3] - X).max() < 1e-6


@settings(max_examples=15, deadline=None)
@given(rig_cases)
def test_dlt_recovers_points_on_random_rigs_in_torch(case):
    seed, n_cams, n_points = case
    rng = np.random.default_rng(seed)
    rig = random_rig(rng, n_cams)
    X = rng.uniform(-1, 1, (n_points, 3))
    out = triangulate(rig, torch.tensor(observe(rig, X)))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert (out[:, :3] - torch.tensor(X)).abs().max().item() < 1e-6


@settings(max_examples=15, deadline=None)
@given(rig_cases)
def test_robust_recovers_points_on_random_rigs(case):
    seed, n_cams, n_points = case
    rng = np.random.default_rng(seed)
    rig = random_rig(rng, n_cams)
    X = rng.uniform(-1, 1, (n_points, 3))
    res = triangulate_robust(rig, observe(rig, X))
    assert np.abs(res.points[:, :3] - X).max() < 1e-6
    assert res.inliers.all()
    assert np.nanmax(res.errors) < 1e-6


# --- outliers -------------------------------------------------------------------------------------

def corrupted(rng, n_points=300, noise_px=0.5):
    """6 cameras; in every point 2 random views moved 50-200 px. Returns rig, truth, kp, bad mask."""
    rig = ring_rig(6)
    X = rng.uniform(-1, 1, (n_points, 3))
    kp = observe(rig, X, noise_px, rng)
    bad = np.zeros((6, n_points), bool)
    for p in range(n_points):  # test-data setup, not the code under test
        bad[rng.choice(6, 2, replace=False), p] = True
    angle = rng.uniform(0, 2 * np.pi, bad.sum())
    radius = rng.uniform(50, 200, bad.sum())
    kp[bad, 0] += radius * np.cos(angle)
    kp[bad, 1] += radius * np.sin(angle)
    return rig, X, kp, bad


@pytest.mark.parametrize("sampled", [False, True])
def test_robust_rejects_exactly_the_corrupted_views(sampled):
    rng = np.random.default_rng(3)
    rig, X, kp, bad = corrupted(rng)
    options = dict(max_exhaustive=2, confidence=0.99999) if sampled else {}
    res = triangulate_robust(rig, kp, **options)
    assert isinstance(res, RobustResult)
    assert np.linalg.norm(res.points[:, :3] - X, axis=-1).max() < 0.01
    np.testing.assert_array_equal(res.inliers, ~bad)
    assert np.all(res.errors[bad] > 20) and np.all(res.errors[~bad] < 5)
    plain = triangulate(rig, kp)
    assert np.median(np.linalg.norm(plain[:, :3] - X, axis=-1)) > 0.05  # DLT alone is visibly wrong


def test_robust_result_does_not_depend_on_the_order_of_the_cameras():
    rng = np.random.default_rng(4)
    rig, X, kp, bad = corrupted(rng, 50)
    order = [3, 0, 5, 1, 4, 2]
    res = triangulate_robust(rig, kp)
    swapped = triangulate_robust(rig.subset([rig.names[i] for i in order]), kp[order])
    np.testing.assert_allclose(swapped.points, res.points, atol=1e-9)
    np.testing.assert_array_equal(swapped.inliers, res.inliers[order])


def test_robust_torch_path_matches_numpy():
    rng = np.random.default_rng(5)
    rig, X, kp, bad = corrupted(rng, 60)
    ref = triangulate_robust(rig, kp)
    out = triangulate_robust(rig, kp, device="cpu")
    assert isinstance(out.points, torch.Tensor)
    np.testing.assert_allclose(out.points.numpy(), ref.points, atol=1e-9)
    np.testing.assert_array_equal(out.inliers.numpy(), ref.inliers)
    np.testing.assert_allclose(out.errors.numpy(), ref.errors, atol=1e-9)


def test_two_views_that_disagree_give_no_point():
    rig = ring_rig(4)
    X = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    kp = observe(rig, X)
    kp[2:, :, 2] = 0  # only cameras 0 and 1 see the points
    kp[1, 0, :2] += 300  # and they disagree about the first one
    res = triangulate_robust(rig, kp)
    assert np.all(np.isnan(res.points[0, :3])) and res.points[0, 3] == 0
    assert not res.inliers[:, 0].any()
    assert np.abs(res.points[1, :3] - X[1]).max() < 1e-6
    assert triangulate_robust(rig, kp, min_views=3).inliers.sum() == 0


# --- missing views, shapes ------------------------------------------------------------------------

def test_missing_views_are_ignored_and_points_with_one_view_are_nan():
    rig = ring_rig(5)
    rng = np.random.default_rng(6)
    X = rng.uniform(-1, 1, (4, 3))
    kp = observe(rig, X)
    kp[..., 2] = [[0.9], [0.8], [0.7], [0.6], [0.5]]
    kp[0, 0, :2] = [5000.0, -300.0]  # garbage ...
    kp[0, 0, 2] = 0.0  # ... with score 0: missing
    kp[1, 0, :2] = np.nan  # NaN pixels: missing whatever the score
    kp[1:, 1, 2] = 0  # point 1 seen by camera 0 only
    kp[:, 2, :2] = np.nan  # point 2 seen by none
    for out in (triangulate(rig, kp), triangulate_robust(rig, kp).points):
        assert np.abs(out[[0, 3], :3] - X[[0, 3]]).max() < 1e-6
        assert np.isnan(out[[1, 2], :3]).all() and np.all(out[[1, 2], 3] == 0)
        assert out[0, 3] == pytest.approx((0.7 + 0.6 + 0.5) / 3)
        assert out[3, 3] == pytest.approx(0.7)
    errors = triangulate_robust(rig, kp).errors
    assert np.isnan(errors[0, 0]) and np.isnan(errors[1, 0]) and np.isnan(errors[:, 1:3]).all()


def test_min_score_drops_weak_detections():
    rig = ring_rig(4)
    X = np.array([[0.2, -0.1, 0.4]])
    kp = observe(rig, X)
    kp[0, 0, :2] += 40  # a bad detection ...
    kp[0, 0, 2] = 0.2  # ... with a low score
    assert np.abs(triangulate(rig, kp)[0, :3] - X[0]).max() > 1e-3
    assert np.abs(triangulate(rig, kp, min_score=0.3)[0, :3] - X[0]).max() < 1e-6


def test_extra_leading_dims_keep_their_shape():
    rig = ring_rig(4)
    rng = np.random.default_rng(8)
    X = rng.uniform(-1, 1, (5, 2, 17, 3))  # [T, P, J, 3]
    kp = observe(rig, X).astype(np.float32)  # DESIGN: 2D keypoints are float32 [..., J, 3]
    out = triangulate(rig, kp)
    assert out.shape == (5, 2, 17, 4) and out.dtype == np.float32
    assert np.abs(out[..., :3] - X).max() < 1e-3  # float32 pixels: ~1e-4 px rounding
    res = triangulate_robust(rig, kp)
    assert res.points.shape == (5, 2, 17, 4) and res.points.dtype == np.float32
    assert res.inliers.shape == res.errors.shape == (4, 5, 2, 17)
    np.testing.assert_allclose(res.points, out, atol=1e-4)
    ours = triangulate_dlt(rig.undistort(kp[..., :2].astype(float)), kp[..., 2],
                           np.stack([np.hstack([c.R, c.t[:, None]]) for c in rig]))
    assert ours.shape == (5, 2, 17, 3)


def test_wrong_number_of_cameras_is_an_error():
    rig = ring_rig(4)
    with pytest.raises(ValueError, match="keypoints2d"):
        triangulate(rig, np.zeros((3, 10, 3)))


def test_views_from_the_same_place_do_not_fix_a_point():
    cam = ring_rig(1)[0]
    R = look_at_rotation(cam.center, [0.3, -0.2, 0.1])  # same centre, turned: every ray pair coincides
    rig = Rig((cam, cam.renamed("twin").with_extrinsics(R, -R @ cam.center)))
    kp = observe(rig, np.random.default_rng(11).uniform(-0.5, 0.5, (50, 3)))
    out = triangulate(rig, kp)
    assert np.isnan(out[:, :3]).all() and np.all(out[:, 3] == 0)


# --- weights --------------------------------------------------------------------------------------

def test_a_low_weight_noisy_view_moves_the_point_less():
    rig = ring_rig(4)
    X = np.array([[0.1, -0.2, 0.3]])
    kp = observe(rig, X)
    kp[3, 0, :2] += [12.0, -9.0]
    moved = []
    for score in (0.05, 0.3, 1.0):
        kp[3, 0, 2] = score
        moved.append(np.linalg.norm(triangulate(rig, kp)[0, :3] - X[0]))
    assert 0 < moved[0] < moved[1] < moved[2]
    assert moved[2] > 5 * moved[0]


def test_weighted_dlt_in_torch_matches_numpy():
    rig = ring_rig(5)
    rng = np.random.default_rng(9)
    kp = observe(rig, rng.uniform(-1, 1, (30, 3)), 2.0, rng)
    kp[..., 2] = rng.uniform(0.1, 1, kp.shape[:-1])
    np.testing.assert_allclose(triangulate(rig, torch.tensor(kp)).numpy(), triangulate(rig, kp), atol=1e-10)


def test_depth_reweighting_brings_the_point_closer_under_noise():
    rng = np.random.default_rng(10)
    rig = ring_rig(6)
    X = rng.uniform(-1, 1, (2000, 3))
    kp = observe(rig, X, 2.0, rng)
    err = [np.linalg.norm(triangulate(rig, kp, iterations=i)[:, :3] - X, axis=-1).mean() for i in (0, 1)]
    assert err[1] < err[0]


# --- reprojection errors, RANSAC formula ----------------------------------------------------------

def test_reprojection_errors_in_pixels():
    rig = ring_rig(3)
    X = np.array([[0.0, 0.1, 0.2], [0.3, 0.2, 0.1]])
    kp = observe(rig, X)
    kp[1, 0, :2] += [3.0, 4.0]
    kp[2, 1, 2] = 0
    pts = np.concatenate([X, np.ones((2, 1))], -1)
    err = reprojection_errors(rig, pts, kp)
    assert err.shape == (3, 2)
    assert err[1, 0] == pytest.approx(5.0, abs=1e-9)
    assert np.isnan(err[2, 1])
    assert np.nanmax(np.delete(err.ravel(), [2, 5])) < 1e-9
    assert np.isnan(reprojection_errors(rig, np.full((2, 3), np.nan), kp)).all()


def test_ransac_sample_count_follows_the_formula():
    assert ransac_samples(0.99, 0.5) == 17  # log(0.01) / log(0.75) = 16.01
    assert ransac_samples(0.99, 0.9) == 3
    assert ransac_samples(0.99, 1.0) == 1


def test_equal_sized_consensus_sets_are_broken_by_the_smaller_error():
    rig = ring_rig(4)
    X, other = np.array([[0.0, 0.0, 0.5]]), np.array([[0.3, 0.3, 0.2]])
    kp = observe(rig, X)
    kp[2:] = observe(rig.subset(rig.names[2:]), other)
    kp[3, 0, :2] += [2.0, -2.0]  # both pairs agree within the threshold, (0, 1) exactly
    res = triangulate_robust(rig, kp)
    np.testing.assert_array_equal(res.inliers[:, 0], [True, True, False, False])
    assert np.abs(res.points[0, :3] - X[0]).max() < 1e-6
