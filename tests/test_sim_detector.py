import dataclasses

import numpy as np
import pytest

from rigs.camera import Rig, look_at
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.motion import relaxed_rotations
from rigs.sim.performers import keypoints3d, performers_from_rotations, simulate_performers
from rigs.skeletons import get_skeleton

CLEAN = SimulatedDetectorParams(
    pixel_noise_px=0.0, miss_rate=0.0, swap_rate=0.0, false_detection_rate=0.0, occlusion=False, seed=0
)


def _studio(n=4):
    """Cameras on the corners of a 6 x 6 m floor, 2.5 m up, looking at (0, 0, 1)."""
    angles = np.radians(45 + 360 / n * np.arange(n))
    return Rig(
        tuple(
            look_at(
                f"cam{i}",
                (3 * np.sqrt(2) * np.cos(a), 3 * np.sqrt(2) * np.sin(a), 2.5),
                (0, 0, 1),
                1280,
                720,
                80.0,
            )
            for i, a in enumerate(angles)
        ),
        name="test-studio",
        simulated=True,
    )


@pytest.fixture(scope="module")
def people():
    return simulate_performers(2, 10.0, 30, seed=7)


def _projections(rig, perf, skeleton):
    return rig.project(keypoints3d(perf, skeleton)[..., :3].astype(np.float64))  # [C, T, P, J, 2]


def _by_truth(det, P):
    """Detections re-ordered by true person [C, T, P, J, 3] (NaN where the person was not detected)."""
    C, T, S, J, _ = det.keypoints2d.shape
    out = np.full((C, T, P, J, 3), np.nan)
    c, t, s = np.nonzero(det.truth_person >= 0)
    out[c, t, det.truth_person[c, t, s]] = det.keypoints2d[c, t, s]
    return out


def _two_in_a_row(gap=1.2):
    """Two 1.75 m people standing on the X axis, at x = 0 and x = gap, facing +Y."""
    heading = np.full((1, 2), np.pi / 2)
    return performers_from_rotations(
        relaxed_rotations(heading), np.array([[[0.0, 0.0], [gap, 0.0]]]), [1.75, 1.75], 30
    )


def test_clean_detections_equal_the_projections_with_the_true_person_per_slot(people):
    rig = _studio()
    det = simulate_detections(rig, people, "body25", CLEAN)
    C, T, S, J, _ = det.keypoints2d.shape
    assert (C, T, J) == (4, 300, 25) and S == 2 + CLEAN.max_ghosts and det.keypoints2d.dtype == np.float32
    proj = _projections(rig, people, "body25")
    inside = np.stack([cam.in_image(proj[c]) for c, cam in enumerate(rig)])
    got = _by_truth(det, 2)
    np.testing.assert_allclose(got[..., :2][inside], proj[inside], atol=1e-3)
    assert np.isnan(got[..., :2][~inside]).all() and (np.nan_to_num(got[..., 2])[~inside] == 0).all()
    assert (got[..., 2][inside] >= 0.5).all() and (got[..., 2][inside] <= 0.95).all()
    # everyone in view is detected once per camera-frame; slots are filled first, in shuffled order
    seen = inside.sum(-1) >= CLEAN.min_visible_joints
    counts = (det.truth_person >= 0).sum(-1)
    np.testing.assert_array_equal(counts, seen.sum(-1))
    assert 0.2 < (det.truth_person[..., 0] == 1).mean() < 0.8
    assert not det.ghost.any() and not det.swapped.any()
    assert "simulated" in det.name


def test_same_seed_same_detections_different_seed_different(people):
    rig = _studio()
    p = SimulatedDetectorParams(seed=3)
    a, b = simulate_detections(rig, people, "coco17", p), simulate_detections(rig, people, "coco17", p)
    c = simulate_detections(rig, people, "coco17", dataclasses.replace(p, seed=4))
    np.testing.assert_array_equal(a.keypoints2d, b.keypoints2d)
    np.testing.assert_array_equal(a.truth_person, b.truth_person)
    assert not np.array_equal(np.nan_to_num(a.keypoints2d), np.nan_to_num(c.keypoints2d))


def test_pixel_noise_has_the_requested_spread_and_lowers_scores(people):
    rig = _studio()
    det = simulate_detections(rig, people, "body25", dataclasses.replace(CLEAN, pixel_noise_px=3.0))
    res = _by_truth(det, 2)
    err = res[..., :2] - _projections(rig, people, "body25")
    ok = np.isfinite(err).all(-1)
    assert ok.sum() > 20000
    assert np.std(err[ok], axis=0) == pytest.approx([3.0, 3.0], rel=0.05)
    assert np.abs(np.mean(err[ok], axis=0)).max() < 0.1
    corr = np.corrcoef(np.linalg.norm(err[ok], axis=-1), res[..., 2][ok])[0, 1]
    assert corr < -0.3


def test_misses_drop_joints_at_the_requested_rate(people):
    rig = _studio()
    det = simulate_detections(rig, people, "body25", dataclasses.replace(CLEAN, miss_rate=0.1))
    proj = _projections(rig, people, "body25")
    inside = np.stack([cam.in_image(proj[c]) for c, cam in enumerate(rig)])
    got = _by_truth(det, 2)
    missing = np.isnan(got[..., 0]) & inside & (inside.sum(-1, keepdims=True) >= 3)
    assert missing.sum() / (inside & (inside.sum(-1, keepdims=True) >= 3)).sum() == pytest.approx(
        0.1, abs=0.01
    )


def test_a_person_behind_another_is_occluded_in_that_camera_only():
    perf = _two_in_a_row()
    west = look_at("west", (-5.0, 0.0, 1.2), (0.0, 0.0, 1.0), 1280, 720, 60.0)
    east = look_at("east", (6.2, 0.0, 1.2), (1.2, 0.0, 1.0), 1280, 720, 60.0)
    side = look_at("side", (0.6, -5.0, 1.2), (0.6, 0.0, 1.0), 1280, 720, 60.0)
    rig = Rig((west, east, side))
    params = dataclasses.replace(CLEAN, occlusion=True, occluded_keep_rate=0.0)
    det = simulate_detections(rig, perf, "body25", params)
    occ = det.occluded[:, 0]  # [C, P, J]
    sk = get_skeleton("body25")
    torso = [sk.index(n) for n in ("neck", "mid_hip", "left_hip", "right_hip")]
    assert occ[0, 1, torso].all() and not occ[0, 0].any()  # west sees person 1 behind 0
    assert occ[1, 0, torso].all() and not occ[1, 1].any()  # east: the other way round
    assert not occ[2].any()  # side view: both in full
    got = _by_truth(det, 2)[:, 0]
    assert np.isnan(got[0, 1, torso, 0]).all() and (got[0, 1, torso, 2] == 0).all()
    assert np.isfinite(got[1, 1, :, 0]).all()
    # without occlusion modelling nothing is hidden
    assert not simulate_detections(rig, perf, "body25", CLEAN).occluded.any()


def test_occluded_joints_kept_as_guesses_get_low_scores():
    perf = _two_in_a_row()
    rig = Rig((look_at("west", (-5.0, 0.0, 1.2), (0.0, 0.0, 1.0), 1280, 720, 60.0),))
    params = dataclasses.replace(CLEAN, occlusion=True, occluded_keep_rate=1.0, pixel_noise_px=1.0)
    det = simulate_detections(rig, perf, "body25", params)
    occ = det.occluded[0, 0, 1]
    got = _by_truth(det, 2)[0, 0, 1]
    assert occ.sum() > 5 and np.isfinite(got[occ, 0]).all()
    lo, hi = params.occluded_score_range
    assert (got[occ, 2] >= lo).all() and (got[occ, 2] <= hi).all() and (got[~occ, 2] >= 0.5).all()


def test_joints_outside_the_image_are_dropped_and_unseen_people_leave_no_slot():
    perf = _two_in_a_row()
    close = look_at("close", (0.0, -1.5, 1.6), (0.0, 0.0, 1.6), 640, 480, 40.0)  # sees person 0's chest
    away = look_at("away", (0.0, -3.0, 1.5), (0.0, -8.0, 1.5), 640, 480, 60.0)  # looks the other way
    rig = Rig((close, away))
    det = simulate_detections(rig, perf, "body25", CLEAN)
    sk = get_skeleton("body25")
    got = _by_truth(det, 2)[:, 0]
    assert np.isfinite(got[0, 0, sk.index("neck")]).all()
    for foot in ("left_ankle", "right_heel"):
        assert np.isnan(got[0, 0, sk.index(foot), 0]) and got[0, 0, sk.index(foot), 2] == 0
    assert (det.truth_person[1] == -1).all() and np.isnan(det.keypoints2d[1, ..., 0]).all()
    assert (det.keypoints2d[1, ..., 2] == 0).all()


def test_left_right_swaps_happen_at_the_requested_rate(people):
    rig = _studio()
    params = dataclasses.replace(CLEAN, swap_rate=0.2)
    det = simulate_detections(rig, people, "coco17", params)
    real = det.truth_person >= 0
    assert det.swapped[real].mean() == pytest.approx(0.2, abs=0.03)
    proj = _projections(rig, people, "coco17")
    flip = get_skeleton("coco17").flip_indices()
    c, t, s = np.nonzero(det.swapped)
    expected = proj[c, t, det.truth_person[c, t, s]][:, flip]
    got = det.keypoints2d[c, t, s, :, :2]
    ok = np.isfinite(got).all(-1)
    np.testing.assert_allclose(got[ok], expected[ok], atol=1e-3)


def test_ghost_people_appear_at_about_the_requested_rate(people):
    rig = _studio()
    params = dataclasses.replace(CLEAN, false_detection_rate=0.3)
    det = simulate_detections(rig, people, "body25", params)
    per_frame = det.ghost.sum(-1)
    assert per_frame.max() <= params.max_ghosts
    assert per_frame.mean() == pytest.approx(0.3, abs=0.05)
    assert (det.truth_person[det.ghost] == -1).all()
    g = det.keypoints2d[det.ghost]
    assert ((g[..., 2] == 0) | ((g[..., 2] >= 0.2) & (g[..., 2] <= 0.6))).all()
    assert (np.isfinite(g[..., 0]).sum(-1) >= params.min_visible_joints).all()
    # the real people are unchanged by ghosts (all random draws are made at full size)
    clean = simulate_detections(rig, people, "body25", CLEAN)
    np.testing.assert_array_equal(_by_truth(det, 2), _by_truth(clean, 2))


def test_params_are_validated():
    with pytest.raises(ValueError, match="miss_rate"):
        SimulatedDetectorParams(miss_rate=1.5)
    with pytest.raises(ValueError, match="pixel_noise_px"):
        SimulatedDetectorParams(pixel_noise_px=-1.0)
