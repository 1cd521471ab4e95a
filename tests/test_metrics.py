import numpy as np
import pytest

from reconstruction.metrics import (
    EvalError,
    average_precision,
    evaluate,
    identity_switches,
    joint_errors,
    match_frames,
    match_people,
    mpjpe,
    pa_mpjpe,
    pck,
    pcp,
    pcp_limbs,
    pdj,
    procrustes_align,
    with_mid_hip,
)
from rigs.poses3d_file import Poses3D
from rigs.skeletons import convert_keypoints, get_skeleton


def test_mpjpe_of_known_offsets():
    truth = np.zeros((2, 3, 4), np.float32)
    truth[..., 3] = 1
    pred = truth.copy()
    pred[0, :, 0] += 0.010  # 10 mm on three joints
    pred[1, :, 2] -= 0.030  # 30 mm on three joints
    assert mpjpe(pred, truth) == pytest.approx(20.0, abs=1e-3)


def test_missing_predictions_count_against_completeness_not_error():
    truth = np.zeros((4, 4), np.float32)
    truth[:, 3] = 1
    pred = truth.copy()
    pred[0, :3] = np.nan
    pred[0, 3] = 0
    pred[1, 0] += 0.1
    e = joint_errors(pred, truth)
    assert e.total == 4 and e.missing == 1
    assert e.completeness == pytest.approx(0.75)
    assert e.mpjpe_mm == pytest.approx(100 / 3, rel=1e-4)


def test_truth_joints_absent_are_not_compared():
    truth = np.zeros((3, 4), np.float32)
    truth[:, 3] = [1, 0, 1]
    pred = np.zeros((3, 3), np.float32)
    pred[1] = 5.0  # far off, but the truth says this joint does not exist
    assert joint_errors(pred, truth).total == 2
    assert mpjpe(pred, truth) == 0.0


# --- the metric definitions, on hand-computed cases ---------------------------------------------------------


def _pose(rng, joints=6, score=1.0):
    xyz = rng.normal(size=(joints, 3)) * 0.3 + [0, 0, 1]
    return np.concatenate([xyz, np.full((joints, 1), score)], -1).astype(np.float64)


def test_a_translation_is_all_mpjpe_and_no_pa_mpjpe():
    rng = np.random.default_rng(0)
    truth = np.stack([_pose(rng) for _ in range(3)])
    pred = truth.copy()
    pred[..., :3] += [0.01, 0.02, 0.02]  # |shift| = 30 mm
    assert mpjpe(pred, truth) == pytest.approx(30.0, abs=1e-6)
    assert pa_mpjpe(pred, truth) == pytest.approx(0.0, abs=1e-6)


def test_procrustes_undoes_rotation_scale_and_translation_per_pose():
    rng = np.random.default_rng(1)
    truth = np.stack([_pose(rng, 8) for _ in range(4)])
    pred = truth.copy()
    for i, (angle, s) in enumerate([(0.3, 1.2), (2.0, 0.7), (-1.0, 1.0), (3.0, 2.5)]):
        c, n = np.cos(angle), np.sin(angle)
        R = np.array([[c, -n, 0], [n, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, c, n], [0, -n, c]])
        pred[i, :, :3] = s * truth[i, :, :3] @ R.T + [0.5, -1, 2]
    pred[0, 2] = [np.nan, np.nan, np.nan, 0]  # a missing joint: fitted on the others, stays missing
    aligned = procrustes_align(pred, truth)
    assert np.isnan(aligned[0, 2]).all()
    ok = ~np.isnan(aligned[..., 0])
    np.testing.assert_allclose(aligned[ok], truth[..., :3][ok], atol=1e-9)
    assert pa_mpjpe(pred, truth) == pytest.approx(0.0, abs=1e-6)
    assert mpjpe(pred, truth) > 100
    # a reflection is not a rotation: a mirrored pose keeps an error
    mirrored = truth.copy()
    mirrored[..., 0] *= -1
    assert pa_mpjpe(mirrored, truth) > 10
    # fewer than 3 shared joints: no alignment
    few = pred.copy()
    few[1, 2:] = [np.nan, np.nan, np.nan, 0]
    assert np.isnan(procrustes_align(few, truth)[1]).all()


def test_pck_at_each_threshold_with_misses_and_absent_truth():
    truth = np.zeros((6, 4))
    truth[:, 3] = 1
    truth[5, 3] = 0  # the truth lacks this joint: not counted
    pred = truth.copy()
    pred[:4, 0] = [0.010, 0.030, 0.060, 0.120]
    pred[4] = [np.nan, np.nan, np.nan, 0]  # not predicted: a miss
    hits = pck(pred, truth)
    assert hits.shape == (3, 6)
    np.testing.assert_array_equal(hits[:, :5], [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    assert np.isnan(hits[:, 5]).all()
    np.testing.assert_allclose(np.nanmean(hits, -1), [0.2, 0.4, 0.6])
    assert pck(pred, truth, [0.030])[0, 1] == 1  # within means <=


def test_pcp_uses_the_mean_of_the_endpoint_errors_against_half_the_limb():
    truth = np.array([[0, 0, 1.0, 1], [0, 0, 1.5, 1]])  # a 0.5 m limb: the bound is 0.25 m
    pred = truth.copy()
    pred[0, 0] += 0.125
    pred[1, 0] += 0.375  # mean 0.25: correct (VoxelPose's variant; both-endpoints PCP would fail it)
    assert pcp(pred, truth, [(0, 1)])[0] == 1
    pred[1, 0] += 0.02  # mean 0.26
    assert pcp(pred, truth, [(0, 1)])[0] == 0
    pred[1] = [np.nan, np.nan, np.nan, 0]
    assert pcp(pred, truth, [(0, 1)])[0] == 0  # a missing endpoint: wrong
    truth[1, 3] = 0
    assert np.isnan(pcp(pred, truth, [(0, 1)])[0])  # the truth lacks the limb: not counted


def test_pcp_limbs_by_name_with_the_torso_from_the_hips():
    names = get_skeleton("coco17").joints
    poses = np.zeros((2, 17, 4))
    poses[..., 3] = 1
    poses[:, names.index("left_hip"), :3] = [0.2, 0, 1]
    poses[:, names.index("right_hip"), :3] = [0, 0, 1]
    ext, ext_names = with_mid_hip(poses, names)
    assert ext_names[-1] == "mid_hip" and ext.shape == (2, 18, 4)
    np.testing.assert_allclose(ext[:, -1], [[0.1, 0, 1, 1]] * 2)
    limbs, idx = pcp_limbs(ext_names)
    assert len(limbs) == 8  # coco17 has no neck: arms and legs only
    limbs, idx = pcp_limbs(get_skeleton("body25b").joints + ("mid_hip",))
    assert len(limbs) == 10 and "torso" in limbs and "head" in limbs
    assert with_mid_hip(poses, get_skeleton("body25").joints[:17])[1] == get_skeleton("body25").joints[:17]


def test_pdj_against_a_fraction_of_the_torso_diameter():
    truth = np.zeros((3, 4))
    truth[:, 3] = 1
    truth[1, :3] = [0.3, 0.4, 0]  # torso: joint 0 to joint 1, 0.5 m: the bound is 0.1 m (strict)
    pred = truth.copy()
    pred[2, 0] = 0.09
    assert pdj(pred, truth, (0, 1))[2] == 1
    pred[2, 0] = 0.1
    assert pdj(pred, truth, (0, 1))[2] == 0
    np.testing.assert_array_equal(pdj(pred, truth, (0, 1), fraction=0.3), [1, 1, 1])


def _people(rng, frames, people, joints=5):
    return np.stack([np.stack([_pose(rng, joints) + [p * 2.0, 0, 0, 0] for p in range(people)])
                     for _ in range(frames)])


def test_average_precision_is_one_for_perfect_predictions_and_drops_with_a_confident_false_positive():
    rng = np.random.default_rng(2)
    truth = _people(rng, 1, 2)
    ap = average_precision(truth, np.array([[0.8, 0.7]]), truth)
    np.testing.assert_allclose(ap.ap, 1.0)
    np.testing.assert_allclose(ap.recall, 1.0)
    ghost = truth[:, :1].copy()
    ghost[..., :3] += [0, 5.0, 0]  # nowhere near anyone
    pred = np.concatenate([ghost, truth], 1)
    # the false positive first (score 0.9): precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> AP = 2/3
    ap = average_precision(pred, np.array([[0.9, 0.8, 0.7]]), truth)
    np.testing.assert_allclose(ap.ap, 2 / 3)
    # the same false positive scored last costs nothing
    ap = average_precision(pred, np.array([[0.1, 0.8, 0.7]]), truth)
    np.testing.assert_allclose(ap.ap, 1.0)
    assert ap.predictions == 3 and ap.truth_people == 2


def test_average_precision_thresholds_duplicates_and_lists():
    rng = np.random.default_rng(3)
    truth = _people(rng, 2, 1)
    off = truth.copy()
    off[0, 0, :, 0] += 0.06  # 60 mm off in frame 0: found from 75 mm on
    ap = average_precision(off, np.ones((2, 1)), truth)
    np.testing.assert_allclose(ap.recall, [0.5, 0.5, 1, 1, 1, 1])
    # a duplicate of a found person is a false positive (its nearest truth person is taken)
    dup = np.concatenate([truth, truth], 1)
    ap = average_precision(dup, np.array([[0.9, 0.5], [0.9, 0.5]]), truth)
    # order: 0.9 (f0, TP), 0.9 (f1, TP), 0.5 (FP), 0.5 (FP): recall reaches 1 at precision 1
    np.testing.assert_allclose(ap.ap, 1.0)
    # per-frame lists of different sizes give the same as padded arrays
    lists = average_precision([dup[0], truth[1]], [np.array([0.9, 0.5]), np.array([0.9])], [truth[0], truth[1]])
    np.testing.assert_allclose(lists.ap, 1.0)
    assert lists.predictions == 3
    assert np.isnan(average_precision(truth, np.ones((2, 1)), np.full_like(truth, np.nan)).ap).all()


def test_match_people_is_one_to_one_within_the_distance():
    rng = np.random.default_rng(4)
    truth = _people(rng, 1, 3)[0]
    pred = truth[[2, 0, 1]].copy()
    pred[..., :3] += 0.01
    np.testing.assert_array_equal(match_people(pred, truth), [[1, 0], [2, 1], [0, 2]])
    pred[0, :, 1] += 3.0  # now 3 m from truth person 2: not the same person
    np.testing.assert_array_equal(match_people(pred, truth), [[1, 0], [2, 1]])
    empty = np.full_like(pred[:1], np.nan)
    assert match_people(empty, truth).shape == (0, 2)
    assert match_people(pred[:0], truth).shape == (0, 2)


def test_identity_switches_count_changes_of_track_per_truth_person():
    tracks = np.array([[5, 1], [5, 1], [-1, 1], [7, 1], [7, 2], [5, 2]])
    truth = np.array([[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 1]])
    # person 0: 5, 5, (none), 7, 7, 5 -> 2 switches; person 1: 1, 1, 1, 1, 2, 2 -> 1 switch
    assert identity_switches(tracks, truth) == 3
    assert identity_switches(tracks, np.full_like(truth, -1)) == 0
    with pytest.raises(EvalError, match="same shape"):
        identity_switches(tracks, truth[:, :1])


def test_match_frames_by_time_within_the_tolerance():
    pred = np.array([0, 100, 205, 290, 1000])
    truth = np.array([0, 100, 200, 300, 400])
    p, t = match_frames(pred, truth, 20)
    np.testing.assert_array_equal(p, [0, 1, 2, 3])
    np.testing.assert_array_equal(t, [0, 1, 2, 3])


def _sequence(rng, frames=6, people=2, skeleton="body25", t0=0):
    sk = get_skeleton(skeleton)
    poses = np.stack([np.stack([_pose(rng, sk.num_joints) + [2.0 * p, 0, 0, 0] for p in range(people)])
                      for _ in range(frames)]).astype(np.float32)
    ids = np.tile(np.arange(people, dtype=np.int32), (frames, 1))
    t = t0 + np.arange(frames, dtype=np.int64) * 33_333_333
    return Poses3D(poses, ids, t, 30.0, sk.name, sk.joints)


def test_evaluate_a_shifted_sequence_with_a_miss_a_ghost_and_a_switch():
    rng = np.random.default_rng(5)
    truth = _sequence(rng)
    poses = truth.poses[:, ::-1].copy()  # slots swapped: matching must find people, not slots
    poses[..., 0] += 0.02
    poses[2, 0] = np.nan  # truth person 1 not reconstructed in frame 2
    poses[2, 0, :, 3] = 0
    ids = truth.track_ids[:, ::-1].copy()
    ids[4:, 1] = 9  # truth person 0 gets a new track from frame 4: one identity switch
    ghost = np.full((6, 1, 25, 4), np.nan, np.float32)
    ghost[..., 3] = 0
    ghost[3, 0] = truth.poses[3, 0] + [0, 5, 0, 0]  # a false positive in frame 3
    poses = np.concatenate([poses, ghost], 1)
    ids = np.concatenate([ids, np.where(np.arange(6) == 3, 4, -1)[:, None]], 1).astype(np.int32)
    pred = Poses3D(poses, ids, truth.t_ns + 1_000_000, 30.0, "body25", truth.joint_names)  # 1 ms late
    r = evaluate(pred, truth)
    assert r.frames_matched_by == "t_ns" and r.num_frames == 6
    assert r.mpjpe_mm == pytest.approx(20.0, abs=1e-3)  # the missed person is not in MPJPE
    assert r.pa_mpjpe_mm == pytest.approx(0.0, abs=1e-3)
    assert r.completeness == pytest.approx(11 / 12)
    np.testing.assert_allclose(r.pck(), [11 / 12] * 3)
    np.testing.assert_allclose(r.pck([0.01]), [0.0])
    assert r.pck(per_joint=True).shape == (3, 25)
    assert r.pcp == pytest.approx(11 / 12) and r.pdj == pytest.approx(11 / 12)
    assert r.limb_names and len(r.pcp_per_limb) == len(r.limb_names)
    assert r.identity_switches == 1 and r.false_positives == 1
    np.testing.assert_array_equal(r.matched[2], [1, -1])  # truth person 0 is in predicted slot 1
    assert r.ap.predictions == 12 and r.ap.truth_people == 12
    assert 0.8 < r.ap.ap[0] < 1.0  # the ghost's score equals the others': it costs some precision
    assert r.mpjpe_per_joint_mm.shape == (25,) and r.mpjpe_over_time_mm.shape == (6,)
    s = r.summary()
    assert s["mpjpe_mm"] == pytest.approx(20.0, abs=1e-3) and s["identity_switches"] == 1


def test_evaluate_maps_joints_by_name_and_falls_back_to_frame_index():
    rng = np.random.default_rng(6)
    truth = _sequence(rng, people=1, skeleton="body25")
    coco = convert_keypoints(truth.poses, "body25", "coco17")
    coco[..., 2] += 0.03
    pred = Poses3D(coco, truth.track_ids, 10**12 + truth.t_ns, 30.0, "coco17", get_skeleton("coco17").joints)
    r = evaluate(pred, truth)
    assert r.frames_matched_by == "index"
    assert r.joint_names == tuple(n for n in truth.joint_names if n in pred.joint_names) and len(r.joint_names) == 17
    assert r.mpjpe_mm == pytest.approx(30.0, abs=1e-3)
    r = evaluate(pred, truth, joints=["left_knee", "right_knee"])
    assert r.errors.shape == (6, 1, 2)
    with pytest.raises(EvalError, match="mid_hip"):
        evaluate(pred, truth, joints=["mid_hip"])
    with pytest.raises(EvalError, match="within half a frame"):
        evaluate(pred, truth, frames="t_ns")
    other = Poses3D(np.zeros((6, 1, 2, 4)), truth.track_ids, truth.t_ns, 30.0, "x", ("a", "b"))
    with pytest.raises(EvalError, match="share no name"):
        evaluate(other, truth)
