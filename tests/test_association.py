"""Tests for reconstruction/association.py: simulated studios, people close together, one-camera people and
ghosts, missed detections, the tracker's prior, left/right swaps, the geometry, bad input, and real recordings
(Pose2Sim with a background person, Shelf).

What "association correct for a person-frame" means here. A detection is *clear* when it shows at least
``CLEAR_JOINTS`` joints correctly: reported with score >= min_score and within ``CLEAR_PX`` of the person's
projected truth (the simulator also reports occluded joints as low-score guesses and moves 10 % of joints to
random pixels, so a detection can be present yet mostly wrong). A person-frame (p, t) counts when p has at
least two clear detections. It is correct when exactly one returned group holds detections of p, that group
holds every clear detection of p, and it holds no detection of another person or of a ghost. Detections of p
that are not clear may be in p's group or left out, but never in another person's. The stricter figure
(every detection reporting at least ``CLEAR_JOINTS`` joints must be in, however wrong) is printed as well.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
import time
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from reconstruction.association import Association, AssociationInputError, associate, gather
from rigs.camera import Camera, Rig, look_at
from rigs.formats import load_rig, shelf
from rigs.keypoint_files import read_keypoints_dir
from rigs.sim.detector import SimulatedDetections, SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import SimulatedPerformers, keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from rigs.trc_file import read_trc, trc_to_world
from rigs.triangulate import triangulate_robust

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSE2SIM = SHARED / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session"
SHELF = SHARED / "open-mmlab+mmpose/tests/data/shelf"

CLEAR_JOINTS = 8
CLEAR_PX = 10.0
MIN_SCORE = 0.2
SECONDS = 6.0
FLIP = get_skeleton("body25").flip_indices()
DONE_WHEN = SimulatedDetectorParams(pixel_noise_px=2.0, gross_outlier_rate=0.1, occlusion=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """A simulated capture: the rig, the detector's output, the 3D truth [T, P, J, 4] and clear detections."""

    rig: Rig
    det: SimulatedDetections
    truth3d: np.ndarray
    clear: np.ndarray  # bool [C, T, S]
    reported: np.ndarray  # bool [C, T, S]: at least CLEAR_JOINTS joints reported (the strict figure)


def _scene(rig: Rig, perf: SimulatedPerformers, params: SimulatedDetectorParams) -> Scene:
    det = simulate_detections(rig, perf, "body25", params)
    truth3d = keypoints3d(perf, "body25")
    owner = np.clip(det.truth_person, 0, None)
    truth2d = np.take_along_axis(rig.project(truth3d[..., :3]), owner[..., None, None], axis=2)  # [C, T, S, J, 2]
    kp = det.keypoints2d
    good = (np.linalg.norm(kp[..., :2] - truth2d, axis=-1) < CLEAR_PX) & (kp[..., 2] >= MIN_SCORE)
    person = det.truth_person >= 0
    return Scene(rig, det, truth3d, clear=(good.sum(-1) >= CLEAR_JOINTS) & person,
                 reported=((kp[..., 2] >= MIN_SCORE).sum(-1) >= CLEAR_JOINTS) & person)


@cache
def studio(name: str, seed: int, people: int = 4, **params) -> Scene:
    """The done-when studio: `people` simulated performers, 2 px noise, 10 % outlier joints, occlusion."""
    perf = simulate_performers(people, SECONDS, 30, seed=seed)
    return _scene(load_rig(name), perf, dataclasses.replace(DONE_WHEN, seed=seed + 1, **params))


def close_together(perf: SimulatedPerformers, gap: float) -> SimulatedPerformers:
    """Performer 1 moved to walk alongside performer 0, their roots `gap` metres apart (along x)."""
    delta = perf.root_translation[:, 0] - perf.root_translation[:, 1] + np.array([gap, 0.0, 0.0])
    delta[:, 2] = 0.0

    def moved(points: np.ndarray) -> np.ndarray:
        return np.concatenate([points[:, :1], points[:, 1:2] + delta[:, None, None], points[:, 2:]], axis=1)

    return dataclasses.replace(perf, joints=moved(perf.joints), landmarks=moved(perf.landmarks),
                               root_translation=moved(perf.root_translation[:, :, None])[:, :, 0])


def person_frames(groups: np.ndarray, owners: np.ndarray, must: np.ndarray) -> dict[int, bool]:
    """Correctness of each counted person in one frame (see the module docstring): groups [G, C] slots,
    owners [C, S] (performer, -1 ghost or empty), must [C, S] the detections p's group has to hold."""
    C = owners.shape[0]
    in_group = np.where(groups >= 0, owners[np.arange(C)[None, :], np.clip(groups, 0, None)], -9)  # [G, C]
    result = {}
    for p in range(owners.max(initial=-1) + 1):
        needed = must & (owners == p)
        if needed.sum() < 2:
            continue
        holding = np.flatnonzero((in_group == p).any(1))
        if len(holding) != 1:
            result[p] = False
            continue
        g = holding[0]
        cams, slots = np.nonzero(needed)
        result[p] = bool(np.all(groups[g, cams] == slots) and np.all(in_group[g][groups[g] >= 0] == p))
    return result


@dataclasses.dataclass
class Score:
    correct: int = 0
    counted: int = 0
    strict_correct: int = 0
    strict_counted: int = 0
    ghosts_with_people: int = 0  # ghost detections in a group that also holds a real person
    ghosts_kept: int = 0  # ghost detections in any returned group
    seconds: float = 0.0
    frames: int = 0

    @property
    def rate(self) -> float:
        return self.correct / self.counted

    @property
    def strict_rate(self) -> float:
        return self.strict_correct / self.strict_counted


def score(scene: Scene, prior=None, frames: range | None = None, keypoints: np.ndarray | None = None,
          **kwargs) -> Score:
    """Associate every frame of a scene and count correct person-frames; prior(t) gives the prior or None."""
    kp = scene.det.keypoints2d if keypoints is None else keypoints
    owners = scene.det.truth_person
    out = Score()
    for t in frames or range(kp.shape[1]):
        start = time.perf_counter()
        assoc = associate(scene.rig, kp[:, t], prior=None if prior is None else prior(t), skeleton="body25",
                          min_score=MIN_SCORE, **kwargs)
        out.seconds += time.perf_counter() - start
        out.frames += 1
        for strict, must in ((False, scene.clear[:, t]), (True, scene.reported[:, t])):
            res = person_frames(assoc.groups, owners[:, t], must)
            if strict:
                out.strict_correct += sum(res.values())
                out.strict_counted += len(res)
            else:
                out.correct += sum(res.values())
                out.counted += len(res)
        for row in assoc.groups:
            who = owners[np.flatnonzero(row >= 0), t, row[row >= 0]]
            out.ghosts_kept += int((who < 0).sum())
            out.ghosts_with_people += int((who < 0).sum()) if (who >= 0).any() else 0
    return out


def report(label: str, s: Score) -> None:
    print(f"\n{label}: association correct on {s.correct}/{s.counted} person-frames = {100 * s.rate:.2f} % "
          f"(strict: {100 * s.strict_rate:.2f} %), ghosts kept {s.ghosts_kept}, "
          f"{1e3 * s.seconds / s.frames:.2f} ms/frame")


# --- the done-when figures -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["studio-8", "studio-4"])
def test_simulated_studio_associates_at_least_99_percent_of_person_frames(name):
    """Done-when: studio-8, 4 people, 2 px noise, 10 % outlier joints, occlusion on: >= 99 % of person-frames.
    studio-4 (4 cameras) is harder; it reached 100 % (strict 100 %) when written, studio-8 100 % (strict
    99.9 %); both must stay above 99 %."""
    total = Score()
    for seed in (3, 5):
        s = score(studio(name, seed))
        for f in dataclasses.fields(Score):
            setattr(total, f.name, getattr(total, f.name) + getattr(s, f.name))
    report(f"{name}, 4 people, {2 * SECONDS:.0f} s", total)
    assert total.counted >= 0.9 * 4 * 2 * SECONDS * 30  # nearly every person-frame is counted
    assert total.rate >= 0.99
    assert total.strict_rate >= 0.98
    assert total.ghosts_kept == 0


def test_associate_is_fast_enough_for_the_pipeline():
    """The pipeline must run at 200 frames/s for 8 cameras x 4 people, so association gets well under 5 ms;
    about 1.5 ms measured on two shared cores. The bound here is loose: timing on shared machines is noisy."""
    scene = studio("studio-8", 3)
    score(scene, frames=range(20))  # warm up
    s = score(scene, frames=range(20, 170))
    fps = s.frames / s.seconds
    print(f"\nassociate on studio-8, 4 people: {fps:.0f} frames/s ({1e3 / fps:.2f} ms/frame)")
    assert fps >= 100


# --- people close together, one-camera people, ghosts, missed detections -------------------------------

@pytest.mark.parametrize("name", ["studio-8", "studio-4"])
def test_people_standing_half_a_metre_apart_are_told_apart(name):
    perf = close_together(simulate_performers(2, SECONDS, 30, seed=11), gap=0.5)
    scene = _scene(load_rig(name), perf, dataclasses.replace(DONE_WHEN, seed=12))
    s = score(scene)
    report(f"{name}, two people 0.5 m apart", s)
    assert s.counted >= 0.9 * 2 * SECONDS * 30
    assert s.rate >= 0.99


def test_a_person_seen_by_one_camera_is_dropped_and_the_others_kept():
    scene = studio("studio-8", 3)
    kp = scene.det.keypoints2d.copy()
    owners = scene.det.truth_person
    only_cam0 = (owners == 1) & (np.arange(kp.shape[0]) != 0)[:, None, None]
    kp[only_cam0] = np.array([np.nan, np.nan, 0.0], np.float32)  # person 1 stays in camera 0 only
    for t in range(0, kp.shape[1], 15):
        assoc = associate(scene.rig, kp[:, t], skeleton="body25")
        slot = np.flatnonzero(owners[0, t] == 1)
        assert not len(slot) or not (assoc.groups[:, 0] == slot[0]).any()
        res = person_frames(assoc.groups, owners[:, t], scene.clear[:, t] & ~only_cam0[:, t])
        assert 1 not in res and all(res.values())


def test_ghost_detections_never_join_a_person():
    """Ten times the detector's default ghost rate. A ghost can only pair with another ghost that happens to
    lie on its epipolar lines (a chance 2-view 'person'; the tracker's min_hits drops those)."""
    scene = studio("studio-8", 7, false_detection_rate=0.2)
    s = score(scene)
    ghosts = int(scene.det.ghost.sum())
    report(f"studio-8 with {ghosts} ghost detections", s)
    assert s.rate >= 0.99
    assert s.ghosts_with_people == 0
    assert s.ghosts_kept <= 0.05 * ghosts


def test_missed_detections_and_joints_leave_the_rest_grouped():
    """A third of the joints missed, and every person missed by a random half of the cameras each frame."""
    scene = studio("studio-8", 9, miss_rate=0.3)
    kp = scene.det.keypoints2d.copy()
    rng = np.random.default_rng(0)
    C, T, _ = scene.det.truth_person.shape
    missed = rng.random((C, T, 4)) < 0.5  # [C, T, person]
    owners = scene.det.truth_person
    dropped = np.take_along_axis(missed, np.clip(owners, 0, None), axis=2) & (owners >= 0)
    kp[dropped] = np.array([np.nan, np.nan, 0.0], np.float32)
    kept = dataclasses.replace(scene, clear=scene.clear & ~dropped, reported=scene.reported & ~dropped)
    s = score(kept, keypoints=kp)
    report("studio-8, 30 % joints missed, half the views missed", s)
    assert s.counted >= 0.8 * 4 * SECONDS * 30
    assert s.rate >= 0.99


# --- the tracker's prior ---------------------------------------------------------------------------------

def test_prior_separates_people_that_two_views_cannot():
    """Two people 0.5 m apart along the baseline of two cameras: each joint of one lies on the epipolar plane
    of the same joint of the other, so geometry alone cannot say who is who in the second view; the
    tracks' predictions (3 cm off) can."""
    rig = load_rig("studio-8").subset(["cam0", "cam2"])
    perf = simulate_performers(1, 2.0, 30, seed=2)
    pose = keypoints3d(perf, "body25")[:, 0].astype(np.float64)  # [T, J, 4]
    baseline = rig[1].center - rig[0].center
    baseline /= np.linalg.norm(baseline)
    rng = np.random.default_rng(1)
    right = {"no prior": 0, "prior": 0}
    trials = 0
    for t in range(0, 60, 3):
        a = pose[t].copy()
        a[:, :2] -= perf.root_translation[t, 0, :2]
        b = a.copy()
        b[:, :3] += 0.5 * baseline
        people = np.stack([a, b])
        pix = rig.project(people[..., :3]) + rng.normal(0, 1.0, (2, 2, 25, 2))
        kp = np.concatenate([pix, np.full((2, 2, 25, 1), 0.9)], -1).astype(np.float32)
        for order in ([0, 1], [1, 0]):  # slots of the second camera in both orders
            frame = kp.copy()
            frame[1] = kp[1, order]
            want = sorted([[0, order.index(0)], [1, order.index(1)]])
            prior = people.copy()
            prior[..., :3] += rng.normal(0, 0.03, prior[..., :3].shape)
            for label, p in (("no prior", None), ("prior", prior)):
                right[label] += sorted(associate(rig, frame, prior=p, skeleton="body25").groups.tolist()) == want
            trials += 1
    print(f"\nalong the baseline, {trials} trials: right without prior {right['no prior']}, with {right['prior']}")
    assert right["prior"] == trials
    assert right["no prior"] < 0.9 * trials  # geometry alone is a coin toss here


def test_prior_helps_or_keeps_and_a_wrong_prior_does_not_hurt():
    """Good predictions (constant velocity, 3 cm noise) and wrong ones (every track a second stale, plus a
    track that ended, predicted between two people) on studio-4 with four people."""
    scene = studio("studio-4", 21)
    truth = scene.truth3d
    rng = np.random.default_rng(0)

    def good(t):
        p = truth[t - 1].copy()
        p[..., :3] += truth[t - 1, ..., :3] - truth[t - 2, ..., :3] + rng.normal(0, 0.03, p[..., :3].shape)
        return p

    def wrong(t):
        ended = truth[t, :1].copy()
        ended[..., :2] += truth[t, :2, :1, :2].mean(0) - ended[:, :1, :2]  # centred between people 0 and 1
        return np.concatenate([truth[t - 30], ended])

    frames = range(30, truth.shape[0])
    base, helped, hurt = (score(scene, prior=p, frames=frames) for p in (None, good, wrong))
    for label, s in (("no prior", base), ("good prior", helped), ("wrong prior", hurt)):
        report(f"studio-4, {label}", s)
    assert helped.rate >= base.rate >= 0.99
    assert hurt.rate >= base.rate - 0.005


# --- left/right swaps, geometry, slots ------------------------------------------------------------------

def test_left_right_swaps_are_found_and_gather_undoes_them():
    """20 % of person-views swapped: ``flipped`` marks them relative to the group, i.e. flipped XOR swapped
    is the same for every member (a group swapped in most views is consistent the other way round)."""
    scene = studio("studio-8", 13, swap_rate=0.2)
    det = scene.det
    consistent = groups = 0
    for t in range(0, det.keypoints2d.shape[1], 2):
        kp = det.keypoints2d[:, t]
        assoc = associate(scene.rig, kp, skeleton="body25")
        for g, row in enumerate(assoc.groups):
            cams = np.flatnonzero(row >= 0)
            relation = assoc.flipped[g, cams] ^ det.swapped[cams, t, row[cams]]
            consistent += bool(relation.all() or not relation.any())
            groups += 1
        unswapped = gather(kp, assoc.groups, assoc.flipped, "body25")
        for g, c in zip(*np.nonzero(assoc.groups >= 0), strict=True):
            joints = FLIP if assoc.flipped[g, c] else slice(None)
            assert np.array_equal(unswapped[c, g], kp[c, assoc.groups[g, c]][joints], equal_nan=True)
    print(f"\nleft/right flips consistent in {consistent}/{groups} groups")
    assert consistent >= 0.99 * groups


def test_affinity_is_one_minus_the_symmetric_epipolar_distance_in_pixels():
    """A person seen by two cameras, the second view's joints moved along the image normal of their epipolar
    lines: the group affinity is the mean of 1 - d / threshold with d the mean of the two point-to-line
    distances, computed here independently from the fundamental matrix."""
    cams = (look_at("a", (4.0, 0.0, 1.5), (0, 0, 1), 1280, 720, 70), look_at("b", (0.5, 3.5, 2.2), (0, 0, 1), 1920,
                                                                             1080, 50))
    rig = Rig(cams)
    points = np.random.default_rng(3).uniform(-0.4, 0.4, (25, 3)) + [0, 0, 1]
    pix = rig.project(points)  # [2, J, 2]
    F = _fundamental(rig[0], rig[1])
    line_b = np.c_[pix[0], np.ones(25)] @ F.T  # epipolar lines in b of a's points
    normal = line_b[:, :2] / np.linalg.norm(line_b[:, :2], axis=1, keepdims=True)
    shift = np.random.default_rng(4).uniform(-12, 12, 25)
    moved = pix[1] + shift[:, None] * normal
    line_a = np.c_[moved, np.ones(25)] @ F  # epipolar lines in a of b's moved points
    d_a = np.abs((np.c_[pix[0], np.ones(25)] * line_a).sum(1)) / np.linalg.norm(line_a[:, :2], axis=1)
    expected = np.mean(np.clip(1 - 0.5 * (np.abs(shift) + d_a) / 25.0, 0, 1))
    kp = np.stack([np.c_[pix[0], np.full(25, 0.8)], np.c_[moved, np.full(25, 0.8)]])[:, None].astype(np.float32)
    assoc = associate(rig, kp, threshold_px=25.0)
    assert assoc.groups.tolist() == [[0, 0]]
    assert assoc.affinity[0] == pytest.approx(expected, abs=1e-4)


def _fundamental(a: Camera, b: Camera) -> np.ndarray:
    """x_b^T F x_a = 0 for pixels of distortion-free cameras a and b."""
    R = b.R @ a.R.T
    t = b.t - R @ a.t
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(b.K).T @ tx @ R @ np.linalg.inv(a.K)


def test_lens_distortion_is_undone_before_matching():
    rig = load_rig("studio-4")
    rig = rig.replace(cameras=tuple(c.with_intrinsics(c.K, [-0.25, 0.08, 0.001, -0.001, 0.0]) for c in rig))
    truth = keypoints3d(simulate_performers(2, 0.2, 30, seed=5), "body25")[0]  # [P, J, 4]
    pix = rig.project(truth[..., :3])
    kp = np.concatenate([pix, np.full(pix.shape[:-1] + (1,), 0.9)], -1).astype(np.float32)
    assoc = associate(rig, kp)
    assert sorted(assoc.groups.tolist()) == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert np.all(assoc.affinity > 0.999)


def test_slot_order_does_not_matter():
    scene = studio("studio-8", 3)
    rng = np.random.default_rng(5)
    for t in range(0, 60, 6):
        kp = scene.det.keypoints2d[:, t]
        perm = np.stack([rng.permutation(kp.shape[1]) for _ in range(kp.shape[0])])  # per camera
        shuffled = np.take_along_axis(kp, perm[..., None, None], axis=1)
        a = associate(scene.rig, kp, skeleton="body25").groups
        b = associate(scene.rig, shuffled, skeleton="body25").groups
        b_original = np.where(b >= 0, np.take_along_axis(perm, np.clip(b, 0, None).T, axis=1).T, -1)
        assert sorted(a.tolist()) == sorted(b_original.tolist())


def test_no_detections_and_gather_of_missing_views():
    rig = load_rig("studio-4")
    empty = np.full((4, 3, 25, 3), np.nan, np.float32)
    empty[..., 2] = 0
    assoc = associate(rig, empty)
    assert isinstance(assoc, Association)
    assert assoc.groups.shape == (0, 4) and assoc.groups.dtype == np.int32 and assoc.affinity.shape == (0,)
    assert associate(rig, empty[:, :0]).groups.shape == (0, 4)
    kp = studio("studio-4", 3).det.keypoints2d[:, 0]
    groups = np.array([[0, -1, 2, 1]], np.int32)
    out = gather(kp, groups)
    assert out.shape == (4, 1, 25, 3)
    assert np.array_equal(out[0, 0], kp[0, 0], equal_nan=True) and np.array_equal(out[3, 0], kp[3, 1], equal_nan=True)
    assert np.isnan(out[1, 0, :, :2]).all() and (out[1, 0, :, 2] == 0).all()
    assert gather(kp, np.zeros((0, 4), np.int32)).shape == (4, 0, 25, 3)


@pytest.mark.parametrize("call, message", [
    (lambda rig, kp: associate(rig, kp[:2]), "keypoints2d: expected one frame"),
    (lambda rig, kp: associate(rig, kp[None]), "keypoints2d: expected one frame"),
    (lambda rig, kp: associate(rig, kp, prior=np.zeros((2, 17, 4))), "prior: expected predicted poses"),
    (lambda rig, kp: associate(rig, kp, threshold_px=0), "threshold_px"),
    (lambda rig, kp: associate(rig, kp, min_views=0), "min_views"),
    (lambda rig, kp: associate(rig, kp, skeleton="coco17"), "skeleton: 'coco17' has 17 joints"),
    (lambda rig, kp: gather(kp, np.zeros((1, 3), np.int32)), "gather: expected"),
])
def test_bad_input_says_what_is_wrong(call, message):
    rig = load_rig("studio-4")
    kp = studio("studio-4", 3).det.keypoints2d[:, 0]
    with pytest.raises(AssociationInputError, match=message):
        call(rig, kp)


# --- real recordings -------------------------------------------------------------------------------------

@pytest.mark.skipif(not POSE2SIM.exists(), reason="Pose2Sim demo data not in ../shared/data")
def test_pose2sim_background_person_never_joins_the_subject():
    """Pose2Sim's balancing trial: one subject seen by 4 cameras, the experimenter in the background of cam01
    and cam02. The subject is the one group with 3 cameras or more, in every frame; Pose2Sim's reference TRC,
    projected, tells subject detections (median 7-24 px from the nearest reference marker) from the
    experimenter's (85-475 px; checked by eye on frame 37 of the videos). This calibration reprojects at
    11-22 px (shared/data MANIFEST), so the test allows 50 px; at 25 px cam03 falls out of the subject."""
    rig = load_rig(POSE2SIM / "S00_Calibration/Calib_qualisys.toml")
    trial = POSE2SIM / "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    seqs = read_keypoints_dir(trial / "pose", rig.names, "openpose", "body25b")
    T = min(s.num_frames for s in seqs.values())
    kp = np.full((len(rig), T, max(s.keypoints.shape[1] for s in seqs.values()), 25, 3), np.nan, np.float32)
    kp[..., 2] = 0
    for c, name in enumerate(rig.names):
        kp[c, :, : seqs[name].keypoints.shape[1]] = seqs[name].keypoints[:T]
    reference = rig.project(trc_to_world(read_trc(trial / "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc").markers))
    to_marker = np.linalg.norm(kp[..., None, :2] - reference[:, :T, None, None], axis=-1).min(-1)  # [C, T, S, J]
    with warnings.catch_warnings():  # empty slots have no joints
        warnings.simplefilter("ignore", RuntimeWarning)
        on_subject = np.nanmedian(np.where(kp[..., 2] >= MIN_SCORE, to_marker, np.nan), -1) < 60  # [C, T, S]
    experimenter = 0
    four_views = 0
    for t in range(T):
        assoc = associate(rig, kp[:, t], threshold_px=50.0, skeleton="body25b")
        views = (assoc.groups >= 0).sum(1)
        assert (views >= 3).sum() == 1, f"frame {t}: groups {assoc.groups.tolist()}"
        subject = assoc.groups[0]
        cams = np.flatnonzero(subject >= 0)
        assert on_subject[cams, t, subject[cams]].all(), f"frame {t}: {subject.tolist()}"
        four_views += views[0] == 4
        experimenter += int((~on_subject[:2, t] & (kp[:2, t, :, :, 2] >= MIN_SCORE).any(-1)).sum())
    print(f"\nPose2Sim: subject in 4 views in {four_views}/{T} frames, {experimenter} experimenter detections "
          f"in cam01/cam02, none in the subject's group")
    assert experimenter >= T  # the background person is there to be rejected
    assert four_views >= 0.95 * T


@pytest.mark.skipif(not SHELF.exists(), reason="mmpose Shelf test data not in ../shared/data")
def test_shelf_people_found_and_their_reprojection_error():
    """mmpose's Shelf test frames: Mask R-CNN + HRNet COCO-17 detections in 5 cameras, 3 frames. Found when
    written: 4 people per frame (one of them in 3 views), median reprojection 4.3-4.9 px."""
    sys.modules.setdefault("numpy.core.multiarray", np._core.multiarray)  # the pickle predates numpy 2
    with open(SHELF / "pred_shelf_maskrcnn_hrnet_coco.pkl", "rb") as f:
        pred = pickle.load(f)
    rig = shelf.read(SHELF / "calibration_shelf.json", size=(1032, 776))
    for frame in range(3):
        dets = [pred[f"{c}_{frame}"] for c in range(len(rig))]
        kp = np.full((len(rig), max(len(d) for d in dets), 17, 3), np.nan, np.float32)
        kp[..., 2] = 0
        for c, people in enumerate(dets):
            for s, person in enumerate(people):
                kp[c, s] = person["pred"]
        assoc = associate(rig, kp, skeleton="coco17")
        grouped = gather(kp, assoc.groups, assoc.flipped, "coco17")
        robust = triangulate_robust(rig, grouped, threshold_px=25.0, min_score=MIN_SCORE)
        errors = np.where(robust.inliers, robust.errors, np.nan)
        median = float(np.nanmedian(errors))
        print(f"\nShelf frame {frame}: {len(assoc.groups)} people, views {(assoc.groups >= 0).sum(1).tolist()}, "
              f"median reprojection {median:.1f} px")
        assert len(assoc.groups) >= 2
        assert median < 20
        assert np.all(np.nanmedian(errors, axis=(0, 2)) < 20)
