"""Relative pose from correspondences: robust essential matrix, cheirality, Sampson refinement, refusals."""

import cv2
import numpy as np
import pytest

from calibration.epipolar import (
    parallax_deg,
    relative_pose,
    sampson_distance,
    skew,
    two_view_points,
)
from calibration.errors import CalibrationError
from rigs.rotations import matrix_to_rotvec, rotvec_to_matrix

FOCAL = 1000.0


def _scene(n=1500, noise_px=1.0, outliers=0.2, baseline=(-2.0, 0.1, 0.5), seed=0):
    """Points 4-6 m in front of camera a, seen by camera b turned 34 deg and moved by the baseline; a
    fraction of camera b's points replaced by random ones. Returns xa, xb, R, t, outlier mask."""
    rng = np.random.default_rng(seed)
    R = rotvec_to_matrix(np.array([0.05, 0.6, 0.02]))
    t = np.asarray(baseline, float)
    X = rng.uniform([-1, -1, 4], [1, 1, 6], (n, 3))
    xa = X[:, :2] / X[:, 2:]
    Xb = X @ R.T + t
    xb = Xb[:, :2] / Xb[:, 2:]
    xa = xa + rng.normal(0, noise_px / FOCAL, xa.shape)
    xb = xb + rng.normal(0, noise_px / FOCAL, xb.shape)
    bad = rng.random(n) < outliers
    xb[bad] = rng.uniform(-0.6, 0.6, (bad.sum(), 2))
    return xa, xb, R, t, bad


def _angle_deg(Ra, Rb):
    return np.degrees(np.linalg.norm(matrix_to_rotvec(Ra @ Rb.T)))


def test_recovers_rotation_and_translation_direction_despite_outliers():
    xa, xb, R, t, bad = _scene(noise_px=2.0, outliers=0.3)
    pose = relative_pose(xa, xb, threshold_px=6.0, focal=FOCAL)
    assert pose.method in ("USAC_MAGSAC", "RANSAC")
    assert _angle_deg(pose.R, R) < 0.5
    assert np.degrees(np.arccos(pose.t @ t / np.linalg.norm(t))) < 1.0
    assert np.isclose(np.linalg.norm(pose.t), 1.0)
    assert pose.inliers[bad].mean() < 0.05          # outliers rejected...
    assert pose.inliers[~bad].mean() > 0.9          # ...inliers kept
    assert pose.num_inliers == int(pose.inliers.sum())
    assert 15 < pose.median_parallax_deg < 35
    assert pose.median_error_px < 3.0


def test_usac_magsac_is_available_in_this_opencv():
    xa, xb, *_ = _scene(noise_px=0.5, outliers=0.0)
    assert hasattr(cv2, "USAC_MAGSAC")
    assert relative_pose(xa, xb, focal=FOCAL).method in ("USAC_MAGSAC", "USAC_ACCURATE")


def test_exact_correspondences_give_the_exact_pose():
    xa, xb, R, t, _ = _scene(noise_px=0.0, outliers=0.0)
    pose = relative_pose(xa, xb, focal=FOCAL)
    assert _angle_deg(pose.R, R) < 1e-4
    assert np.allclose(pose.t, t / np.linalg.norm(t), atol=1e-5)
    assert pose.inliers.all()


def test_same_input_same_result():
    xa, xb, *_ = _scene(noise_px=2.0, outliers=0.2)
    a = relative_pose(xa, xb, focal=FOCAL)
    b = relative_pose(xa, xb, focal=FOCAL)
    assert np.array_equal(a.R, b.R) and np.array_equal(a.inliers, b.inliers)


def test_nan_rows_are_ignored():
    xa, xb, R, _, _ = _scene(noise_px=1.0, outliers=0.0)
    xa[:50] = np.nan
    pose = relative_pose(xa, xb, focal=FOCAL)
    assert not pose.inliers[:50].any()
    assert _angle_deg(pose.R, R) < 0.5


def test_too_few_points_is_refused_with_the_count():
    xa, xb, *_ = _scene(n=10, outliers=0.0)
    with pytest.raises(CalibrationError, match="10 shared confident points"):
        relative_pose(xa, xb, focal=FOCAL)


def test_no_baseline_is_refused():
    """Two cameras at one place (pure rotation): the rays never meet at an angle, t is meaningless."""
    xa, xb, *_ = _scene(noise_px=1.0, outliers=0.0, baseline=(0.0, 0.0, 0.0))
    with pytest.raises(CalibrationError, match="degrees|agree"):
        relative_pose(xa, xb, focal=FOCAL)


def test_random_correspondences_are_refused():
    rng = np.random.default_rng(3)
    with pytest.raises(CalibrationError):
        relative_pose(rng.uniform(-0.5, 0.5, (300, 2)), rng.uniform(-0.5, 0.5, (300, 2)), threshold_px=1.0,
                      focal=FOCAL, min_points=60)


def test_geometry_helpers_agree():
    xa, xb, R, t, _ = _scene(n=50, noise_px=0.0, outliers=0.0)
    E = skew(t) @ R
    assert np.abs(sampson_distance(E, xa, xb)).max() < 1e-12
    X = two_view_points(R, t, xa, xb)
    assert np.allclose(X[:, :2] / X[:, 2:], xa, atol=1e-9)
    assert (parallax_deg(R, t, X) > 10).all()
    assert np.allclose(skew(np.array([1.0, 2.0, 3.0])) @ np.array([4.0, 5.0, 6.0]),
                       np.cross([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]))
