import numpy as np
import pytest

from reconstruction.bone_lengths import BoneLengthError, estimate_bone_lengths, reject_bad_bones
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton

SKELETON = get_skeleton("body25")
BONES = SKELETON.bones


@pytest.fixture(scope="module")
def walking():
    """One simulated person, 10 s at 30 fps, body25 with 1 cm noise: (truth, noisy) [T, J, 4]."""
    truth = keypoints3d(simulate_performers(1, 10, 30, seed=7), SKELETON)[:, 0]
    noisy = truth.copy()
    noisy[..., :3] += np.random.default_rng(0).normal(0, 0.01, noisy[..., :3].shape)
    return truth, noisy


def test_estimated_lengths_match_the_body_despite_outliers_and_gaps(walking):
    truth, noisy = walking
    spoiled = noisy.copy()
    rng = np.random.default_rng(1)
    spoiled[rng.random(spoiled.shape[:2]) < 0.1, :3] += 0.5  # 10 % of joints thrown 50 cm
    spoiled[rng.random(spoiled.shape[:2]) < 0.2] = np.nan  # 20 % missing
    true_lengths = estimate_bone_lengths(truth, BONES)
    got = estimate_bone_lengths(spoiled, BONES)
    assert got.shape == (len(BONES),) and got.dtype == np.float32
    np.testing.assert_allclose(got, true_lengths, atol=0.015)
    never = spoiled.copy()
    never[:, SKELETON.index("left_heel")] = np.nan
    assert np.isnan(estimate_bone_lengths(never, BONES)[BONES.index((SKELETON.index("left_ankle"),
                                                                      SKELETON.index("left_heel")))])


def test_normal_joints_are_kept(walking):
    _, noisy = walking
    lengths = estimate_bone_lengths(noisy, BONES)
    out = reject_bad_bones(noisy, BONES, lengths)
    rejected = np.isnan(out[..., 0])
    assert rejected.mean() < 0.002
    np.testing.assert_array_equal(out[~rejected], noisy[~rejected])


def _bones_of(j: int) -> list[tuple[int, int]]:
    return [b for b in BONES if j in b]


def _rejected_joint_and_neighbours(poses, j):
    lengths = estimate_bone_lengths(poses[0], BONES)
    out = reject_bad_bones(poses[1], BONES, lengths)
    gone = np.isnan(out[..., 0])
    assert np.all(out[gone][:, 3] == 0)
    others = np.ones(out.shape[1], bool)
    others[j] = False
    return gone[:, j], gone[:, others]


@pytest.mark.parametrize("joint", ["right_elbow", "left_elbow"])
def test_an_elbow_thrown_30_cm_off_its_arm_is_rejected_and_its_neighbours_kept(walking, joint):
    _, noisy = walking
    j = SKELETON.index(joint)
    (a, _), (_, c) = _bones_of(j)  # (parent, joint), (joint, child)
    normal = np.cross(noisy[:, j, :3] - noisy[:, a, :3], noisy[:, c, :3] - noisy[:, j, :3])
    bad = noisy.copy()
    # off the arm's plane: both bones grow by 40 % or more (a knee would need more than 30 cm: its bones are longer)
    bad[:, j, :3] += 0.3 * normal / np.linalg.norm(normal, axis=-1, keepdims=True)
    rejected, neighbours = _rejected_joint_and_neighbours((noisy, bad), j)
    assert rejected.mean() > 0.98  # the noise can pull a 40 % change just under the 25 % tolerance
    assert neighbours.mean() < 0.002


def test_a_wrist_thrown_30_cm_is_rejected_and_the_elbow_kept(walking):
    _, noisy = walking
    j, elbow = SKELETON.index("right_wrist"), SKELETON.index("right_elbow")
    forearm = noisy[:, j, :3] - noisy[:, elbow, :3]
    bad = noisy.copy()
    bad[:, j, :3] += 0.3 * forearm / np.linalg.norm(forearm, axis=-1, keepdims=True)
    rejected, neighbours = _rejected_joint_and_neighbours((noisy, bad), j)
    assert rejected.all() and neighbours.mean() < 0.002


@pytest.mark.parametrize("joint", ["right_elbow", "right_wrist", "left_knee", "neck"])
def test_a_joint_thrown_30_cm_anywhere_is_rejected_wherever_its_bones_show_it(walking, joint):
    """A displacement that keeps a bone's length is invisible to lengths; every other one is caught."""
    truth, noisy = walking
    j = SKELETON.index(joint)
    direction = np.random.default_rng(2).normal(size=(noisy.shape[0], 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    bad = noisy.copy()
    bad[:, j, :3] += 0.3 * direction
    moved = truth.copy()
    moved[:, j, :3] += 0.3 * direction
    lengths = estimate_bone_lengths(truth, BONES)
    b = np.array(_bones_of(j))
    change = np.abs(np.linalg.norm(moved[:, b[:, 0], :3] - moved[:, b[:, 1], :3], axis=-1) / lengths[
        [BONES.index(tuple(x)) for x in b]] - 1)
    visible = (change > 0.35).all(-1)
    assert visible.mean() > 0.1  # enough frames to judge
    rejected, neighbours = _rejected_joint_and_neighbours((noisy, bad), j)
    assert rejected[visible].mean() > 0.97
    assert neighbours[visible].mean() < 0.005


def test_rejection_is_vectorised_over_people_and_frames(walking):
    _, noisy = walking
    lengths = estimate_bone_lengths(noisy, BONES)
    people = np.stack([noisy[:50], noisy[50:100]], axis=1)  # [T, P, J, 4]
    people[10, 1, SKELETON.index("left_elbow"), 0] += 1.0
    out = reject_bad_bones(people, BONES, lengths)
    assert out.shape == people.shape
    assert np.isnan(out[10, 1, SKELETON.index("left_elbow"), 0])
    assert not np.isnan(out[10, 0, SKELETON.index("left_elbow"), 0])
    # lengths per person: person 1 said to have arms 60 % longer than theirs, so their normal frames fail too
    per_person = np.stack([lengths, lengths])
    per_person[1, [BONES.index(b) for b in _bones_of(SKELETON.index("left_elbow"))]] *= 1.6
    out = reject_bad_bones(people, BONES, per_person)
    assert np.isnan(out[:, 1, SKELETON.index("left_elbow"), 0]).mean() > 0.9
    assert not np.isnan(out[:, 0, SKELETON.index("left_elbow"), 0]).any()


def test_bad_bones_or_lengths_are_refused(walking):
    _, noisy = walking
    with pytest.raises(BoneLengthError, match="get_skeleton"):
        estimate_bone_lengths(noisy[:, :10], BONES)
    with pytest.raises(BoneLengthError, match="estimate_bone_lengths"):
        reject_bad_bones(noisy, BONES, np.ones(3))
    with pytest.raises(BoneLengthError, match="estimate_bone_lengths"):
        reject_bad_bones(noisy, BONES, np.ones((7, len(BONES))))
