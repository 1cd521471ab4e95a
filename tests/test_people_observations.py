"""People as a calibration target: candidates, putative pairs, matching people across cameras, 3D point tracks."""

from functools import cache

import numpy as np
import pytest

from calibration.epipolar import relative_pose
from calibration.errors import CalibrationError
from calibration.people_observations import (
    match_people,
    pair_correspondences,
    people_candidates,
    people_observations,
)
from rigs.formats import load_rig
from rigs.keypoint_files import Keypoints2DSequence
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import simulate_performers

J = 25


def _person(center, size, rng, score=0.9):
    """A fake detected person [J, 3]: joints spread over a box of the given pixel size."""
    kp = np.empty((J, 3))
    kp[:, :2] = np.asarray(center) + rng.uniform(-0.5, 0.5, (J, 2)) * size
    kp[:, 2] = score
    return kp


def _seq(people_per_frame, skeleton="body25"):
    """Keypoints2DSequence from a list (frames) of lists (people) of [J, 3] arrays."""
    T = len(people_per_frame)
    P = max(1, max(len(f) for f in people_per_frame))
    kp = np.full((T, P, J, 3), np.nan)
    kp[..., 2] = 0
    for t, frame in enumerate(people_per_frame):
        for p, person in enumerate(frame):
            kp[t, p] = person
    return Keypoints2DSequence(kp, np.arange(T), skeleton)


def test_candidates_drop_background_people_crowds_and_unconfident_joints():
    rig = load_rig("studio-4").subset(["cam0", "cam1"])
    rng = np.random.default_rng(0)
    big, small = _person((600, 400), 500, rng), _person((200, 200), 100, rng)
    low = big.copy()
    low[:10, 2] = 0.3                                      # 10 joints under the confidence threshold
    crowd = [_person((300 + 200 * i, 400), 400, rng) for i in range(4)]
    frames = [[big], [big, small], [small, big], crowd, [low], []]
    kp = {"cam0": _seq(frames), "cam1": _seq(frames)}
    cands = people_candidates(rig, kp, min_confidence=0.5, max_people=3)
    cand = cands.candidate[0]                              # camera 0: [T, P]
    assert cand[0].tolist() == [True, False, False, False]
    assert cand[1].tolist() == [True, False, False, False]  # the small person is background
    assert cand[2].tolist() == [False, True, False, False]
    assert not cand[3].any()                               # 4 people of one size: too crowded
    assert cands.confident[0, 4, 0].sum() == J - 10        # only confident joints are used
    assert not cand[5].any()
    assert np.isnan(cands.normalized[0, 1, 1]).all() and (cands.scores[0, 1, 1] == 0).all()
    # undistorted normalised coordinates of the used joints
    assert np.allclose(cands.normalized[0, 0, 0], rig[0].undistort(big[:, :2]))


def test_candidates_need_every_camera_and_one_skeleton():
    rig = load_rig("studio-4").subset(["cam0", "cam1"])
    rng = np.random.default_rng(0)
    frames = [[_person((600, 400), 500, rng)]]
    with pytest.raises(CalibrationError, match="cam1"):
        people_candidates(rig, {"cam0": _seq(frames)})
    with pytest.raises(CalibrationError, match="different skeletons"):
        people_candidates(rig, {"cam0": _seq(frames), "cam1": _seq(frames, "body25b")})


def test_frames_are_aligned_by_frame_number():
    rig = load_rig("studio-4").subset(["cam0", "cam1"])
    rng = np.random.default_rng(0)
    a = _seq([[_person((600, 400), 500, rng)] for _ in range(3)])
    b = Keypoints2DSequence(a.keypoints[1:], np.array([1, 2]), "body25")
    cands = people_candidates(rig, {"cam0": a, "cam1": b})
    assert cands.frames.tolist() == [0, 1, 2]
    assert not cands.candidate[1, 0].any() and cands.candidate[1, 1].any()
    pair = pair_correspondences(cands, 0, 1)
    assert set(pair.frame.tolist()) == {1, 2} and len(pair) == 2 * J


def test_pair_correspondences_pair_every_candidate():
    rig = load_rig("studio-4").subset(["cam0", "cam1"])
    rng = np.random.default_rng(0)
    two = [_person((400, 400), 500, rng), _person((800, 400), 500, rng)]
    cands = people_candidates(rig, {"cam0": _seq([two]), "cam1": _seq([two[:1]])})
    pair = pair_correspondences(cands, 0, 1)
    assert len(pair) == 2 * J
    assert sorted(set(zip(pair.person_a.tolist(), pair.person_b.tolist(), strict=True))) == [(0, 0), (1, 0)]
    assert np.allclose(pair.xa, cands.normalized[0, pair.frame, pair.person_a, pair.joint])


def _pair_from_flags(flags):
    """A PairCorrespondences-like record over one frame: flags[(pa, pb)] = inlier count of J joints."""
    from calibration.people_observations import PairCorrespondences

    rows = [(pa, pb, j, j < n) for (pa, pb), n in flags.items() for j in range(J)]
    pa, pb, j, inl = (np.array(v) for v in zip(*rows, strict=True))
    zeros = np.zeros((len(rows), 2))
    pair = PairCorrespondences(0, 1, zeros, zeros, np.zeros(len(rows), np.int64), pa, pb, j)
    return pair, inl


def test_match_people_takes_clear_mutual_best_pairings():
    pair, inl = _pair_from_flags({(0, 0): 22, (0, 1): 2, (1, 0): 3, (1, 1): 20})
    m = match_people(pair, inl, (1, 2))
    assert m[0].tolist() == [[True, False], [False, True]]


def test_match_people_refuses_ambiguous_and_weak_pairings():
    # person 0 in camera a fits both people of camera b about as well: neither pairing is taken
    pair, inl = _pair_from_flags({(0, 0): 20, (0, 1): 19, (1, 1): 22})
    m = match_people(pair, inl, (1, 2))
    assert not m[0, 0].any()
    assert m[0, 1].tolist() == [False, False]  # (1, 1) competes with (0, 1) in column 1: 19 >= 0.8 * 22
    pair, inl = _pair_from_flags({(0, 0): 10})  # under half of the joints agree
    assert not match_people(pair, inl, (1, 1)).any()


def test_observations_group_people_across_cameras_and_drop_contradictions():
    C, T, P = 3, 2, 2
    from calibration.people_observations import PeopleCandidates

    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 1000, (C, T, P, J, 2))
    scores = np.full((C, T, P, J), 0.9)
    cands = PeopleCandidates(("a", "b", "c"), "body25", np.array([10, 11]), pixels, pixels / 1000, scores)
    m01 = np.zeros((T, P, P), bool)
    m12 = np.zeros((T, P, P), bool)
    m01[0, 0, 1] = m12[0, 1, 0] = True         # frame 0: a0-b1-c0 one person
    m01[0, 1, 0] = True                        # frame 0: a1-b0 another
    m01[1, 0, 0] = m12[1, 0, 0] = True         # frame 1: a0-b0-c0 ...
    m02 = np.zeros((T, P, P), bool)
    m02[1, 0, 1] = True                        # ... and a0-c1: camera c twice in one group: dropped
    obs = people_observations(cands, {(0, 1): m01, (1, 2): m12, (0, 2): m02})
    assert set(obs.frame.tolist()) == {0}
    assert obs.num_points == 2 * J
    three = obs.seen.sum(0) == 3
    assert three.sum() == J
    g = obs.group[three][0]
    sel = obs.group == g
    assert np.allclose(obs.pixels[0, sel], pixels[0, 0, 0][obs.joint[sel]])
    assert np.allclose(obs.pixels[1, sel], pixels[1, 0, 1][obs.joint[sel]])
    assert np.allclose(obs.pixels[2, sel], pixels[2, 0, 0][obs.joint[sel]])
    people = obs.instances(np.arange(obs.num_points, dtype=float)[:, None], J)
    assert people.shape == (2, J, 1)


@cache
def _simulated_two_people():
    rig = load_rig("studio-4")
    perf = simulate_performers(2, 4.0, 30, seed=3)
    det = simulate_detections(rig, perf, "body25", SimulatedDetectorParams(pixel_noise_px=2.0, seed=3))
    kp = {n: Keypoints2DSequence(det.keypoints2d[c], np.arange(perf.num_frames), "body25")
          for c, n in enumerate(rig.names)}
    return rig, det, kp


def test_two_simulated_people_are_told_apart_by_epipolar_geometry():
    rig, det, kp = _simulated_two_people()
    cands = people_candidates(rig, kp)
    matches = {}
    for a, b in ((0, 1), (1, 2), (2, 3), (0, 3), (0, 2), (1, 3)):
        pair = pair_correspondences(cands, a, b)
        pose = relative_pose(pair.xa, pair.xb, threshold_px=8.0, focal=rig[a].K[0, 0])
        matches[a, b] = match_people(pair, pose.inliers, cands.scores.shape[1:3])
    obs = people_observations(cands, matches)
    # every group holds one simulated person in every camera that is in it
    truth = det.truth_person                                   # [C, T, P]
    slots = np.full((4, obs.num_points), -1)
    for c in range(4):
        same = cands.pixels[c, obs.frame, :, obs.joint, 0] == obs.pixels[c, :, 0, None]   # [N, P]: which slot
        slots[c] = np.where(obs.seen[c], truth[c, obs.frame, same.argmax(1)], -1)
    seen_people = np.where(obs.seen, slots, -2)
    agree = [len(set(col[col != -2].tolist())) == 1 for col in seen_people.T]
    assert np.mean(agree) > 0.995
    assert (slots[obs.seen] >= 0).mean() > 0.995                # ghosts are not matched
    # both people are used: about two groups per frame
    per_frame = np.bincount(obs.frame, minlength=len(obs.frames))
    assert np.median(per_frame) > 1.5 * J
