"""Metric scale from a person's height (median body segments, Winter's proportions) or a camera distance."""

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.metric_scale import (
    body_chain,
    foot_points,
    person_height,
    scale_from_distance,
    scale_from_height,
)
from rigs.sim.performers import keypoints3d, simulate_performers


@pytest.fixture(scope="module")
def performers():
    """Two simulated people (walking, crouching, waving...: rarely upright) of known heights."""
    return simulate_performers(2, 6.0, 30, seed=5)


@pytest.mark.parametrize("skeleton, head", [("body25b", "head_top"), ("halpe26", "head_top"), ("h36m17", "head_top"),
                                            ("body25", "eyes"), ("coco17", "eyes"), ("mediapipe33", "eyes"),
                                            ("panoptic15", "nose")])
def test_height_of_simulated_people_in_any_skeleton(performers, skeleton, head):
    """The simulated body follows the same anthropometric table, so the estimate is within 0.5 %."""
    assert body_chain(skeleton)[1] == head
    kp = keypoints3d(performers, skeleton)[..., :3].astype(float)
    for p, h in enumerate(performers.heights):
        assert person_height(kp[:, p], skeleton) == pytest.approx(h, rel=0.005)


def test_height_ignores_missing_joints_and_a_few_gross_errors(performers):
    kp = keypoints3d(performers, "body25b")[:, 0, :, :3].astype(float)
    rng = np.random.default_rng(0)
    kp[rng.random(kp.shape[:2]) < 0.2] = np.nan
    bad = rng.random(kp.shape[:2]) < 0.05
    kp[bad] += rng.normal(0, 0.5, (bad.sum(), 3))
    assert person_height(kp, "body25b") == pytest.approx(performers.heights[0], rel=0.01)


def test_scale_from_height_undoes_any_unit(performers):
    kp = keypoints3d(performers, "body25")[:, 1, :, :3].astype(float)
    scale = scale_from_height(kp * 0.37, "body25", performers.heights[1])
    assert scale == pytest.approx(1 / 0.37, rel=0.005)
    with pytest.raises(CalibrationError, match="not a human height"):
        scale_from_height(kp, "body25", 175.0)


def test_skeletons_that_cannot_be_measured_say_what_to_do(performers):
    with pytest.raises(CalibrationError, match="smpl24 has no head point.*--distance"):
        body_chain("smpl24")
    kp = np.full((10, 25, 3), np.nan)
    with pytest.raises(CalibrationError, match="lack ankles.*--distance"):
        person_height(kp, "body25")


def test_scale_from_distance():
    centers = np.array([[0.0, 0, 0], [3.0, 4.0, 0], [1.0, 1.0, 1.0]])
    assert scale_from_distance(centers, 0, 1, 10.0) == pytest.approx(2.0)
    with pytest.raises(CalibrationError, match="positive length"):
        scale_from_distance(centers, 0, 1, -1.0)
    with pytest.raises(CalibrationError, match="same place"):
        scale_from_distance(np.zeros((2, 3)), 0, 1, 1.0)


def test_foot_points_and_their_height_above_the_floor(performers):
    kp = keypoints3d(performers, "body25")[:, 0, :, :3].astype(float)
    feet, offset = foot_points(kp, "body25", 1.8)
    assert feet.shape == (kp.shape[0], 8, 3)     # ankles, big and small toes, heels
    assert sorted(np.round(offset, 4).tolist()) == [0.018] * 6 + [0.0702] * 2
    standing = feet[0, :, 2] - offset * performers.heights[0] / 1.8
    assert np.abs(standing).min() < 0.01        # some foot point is on the floor
