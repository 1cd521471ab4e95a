"""Tests for rigs/skeletons.py: format tables, lookup, inference, mapping, and BODY_25B on real data."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rigs.skeletons import (
    Skeleton,
    SkeletonError,
    all_joint_names,
    convert_keypoints,
    get_skeleton,
    infer_skeleton,
    joint_mapping,
    skeleton_names,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
POSE2SIM_POSE = (DATA / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session/S00_P00_SingleParticipant"
                 / "S00_P00_T01_BalancingTrial/pose")
STATIC_POSE = POSE2SIM_POSE.parents[1] / "S00_P00_T00_StaticTrial/pose"

SMPL_NAMES = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
              "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
              "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
              "left_wrist", "right_wrist", "left_hand", "right_hand")
COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle")
FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")


def test_every_format_is_known_with_its_size():
    sizes = {"coco17": 17, "coco18": 18, "body25": 25, "body25b": 25, "halpe26": 26, "mediapipe33": 33,
             "smpl24": 24, "panoptic15": 15, "h36m17": 17}
    assert set(skeleton_names()) == set(sizes)
    for name, n in sizes.items():
        s = get_skeleton(name)
        assert s.name == name and s.num_joints == n == len(s.parents)


def test_joint_orders_match_the_formats_documentation():
    assert get_skeleton("coco17").joints == COCO_NAMES
    assert get_skeleton("smpl24").joints == SMPL_NAMES
    assert get_skeleton("smpl24").parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14,
                                              16, 17, 18, 19, 20, 21)
    assert get_skeleton("body25b").joints == COCO_NAMES + ("neck", "head_top") + FEET
    assert get_skeleton("halpe26").joints == COCO_NAMES + (
        "head_top", "neck", "mid_hip", "left_big_toe", "right_big_toe", "left_small_toe",
        "right_small_toe", "left_heel", "right_heel")
    b25 = get_skeleton("body25").joints
    assert b25[:9] == ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
                       "left_elbow", "left_wrist", "mid_hip")
    assert b25[15:] == ("right_eye", "left_eye", "right_ear", "left_ear") + FEET
    assert get_skeleton("coco18").joints == b25[:8] + b25[9:19]
    assert get_skeleton("panoptic15").joints[:3] == ("neck", "nose", "mid_hip")
    h36m = get_skeleton("h36m17")
    assert h36m.joints[:11] == ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
                                "left_ankle", "spine", "thorax", "neck_nose", "head_top")
    assert h36m.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    mp = get_skeleton("mediapipe33")
    assert mp.index("left_eye_inner") == 1 and mp.index("mouth_right") == 10
    assert mp.index("left_pinky") == 17 and mp.index("right_foot_index") == 32


@pytest.mark.parametrize("name", ["coco17", "coco18", "body25", "body25b", "halpe26", "mediapipe33",
                                  "smpl24", "panoptic15", "h36m17"])
def test_each_format_is_one_tree_with_mirrored_pairs(name):
    s = get_skeleton(name)
    assert sum(p == -1 for p in s.parents) == 1
    assert len(s.bones) == s.num_joints - 1
    for left, right in s.left_right:
        ln, rn = s.joints[left], s.joints[right]
        assert "left" in ln.split("_") and rn == ln.replace("left", "right")
    # every left_/right_ joint is paired
    sided = [j for j in s.joints if "left" in j.split("_") or "right" in j.split("_")]
    assert len(sided) == 2 * len(s.left_right)
    perm = s.flip_indices()
    assert sorted(perm.tolist()) == list(range(s.num_joints))
    assert np.array_equal(perm[perm], np.arange(s.num_joints))
    names = np.array(s.joints)[perm]
    for j, flipped in zip(s.joints, names, strict=True):
        assert flipped == j.replace("left", "@").replace("right", "left").replace("@", "right")


def test_names_are_snake_case_and_smpl_names_are_reused():
    for n in all_joint_names():
        assert n == n.lower() and " " not in n and "-" not in n
    assert all_joint_names() == tuple(sorted(all_joint_names()))
    assert set(SMPL_NAMES) <= set(all_joint_names())
    assert "mid_hip" in all_joint_names() and "pelvis" in all_joint_names()
    assert "mid_hip" not in get_skeleton("h36m17").joints  # h36m's root is the pelvis
    assert len(all_joint_names()) == len(set().union(*(get_skeleton(n).joints for n in skeleton_names())))


@pytest.mark.parametrize("spelling, name", [("BODY_25", "body25"), ("COCO-17", "coco17"),
                                            ("Body25B", "body25b"),
                                            ("h36m_17", "h36m17"), ("MediaPipe-33", "mediapipe33")])
def test_lookup_ignores_case_dashes_and_underscores(spelling, name):
    assert get_skeleton(spelling) is get_skeleton(name)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(SkeletonError, match="unknown skeleton 'body26'.*coco17.*h36m17"):
        get_skeleton("body26")
    with pytest.raises(ValueError):
        get_skeleton("")


def test_index_and_missing_joint():
    s = get_skeleton("body25")
    assert s.index("mid_hip") == 8 and s.joints[s.index("left_heel")] == "left_heel"
    with pytest.raises(SkeletonError, match="no joint 'pelvis'"):
        s.index("pelvis")


@pytest.mark.parametrize("n, name", [(17, "coco17"), (25, "body25"), (18, "coco18"), (24, "smpl24"),
                                     (26, "halpe26"), (33, "mediapipe33"), (15, "panoptic15")])
def test_infer_by_count(n, name):
    assert infer_skeleton(n).name == name


def test_infer_name_wins_and_bad_counts_ask_for_skeleton():
    assert infer_skeleton(25, "BODY_25B").name == "body25b"
    assert infer_skeleton(17, "h36m17").name == "h36m17"
    with pytest.raises(SkeletonError, match="--skeleton NAME"):
        infer_skeleton(19)
    with pytest.raises(SkeletonError, match="has 17 joints but the keypoints have 25"):
        infer_skeleton(25, "coco17")


def test_skeleton_validates_its_tables():
    with pytest.raises(SkeletonError, match="cycle"):
        Skeleton("bad", ("a", "b"), (1, 0), ())
    with pytest.raises(SkeletonError, match="parents"):
        Skeleton("bad", ("a", "b"), (-1,), ())
    with pytest.raises(SkeletonError, match="unique"):
        Skeleton("bad", ("a", "a"), (-1, 0), ())
    with pytest.raises(SkeletonError, match="left_right"):
        Skeleton("bad", ("a", "b"), (-1, 0), ((0, 2),))


def test_joint_mapping_matches_names():
    src_idx, dst_idx = joint_mapping("body25", "coco17")
    assert len(src_idx) == 17 and np.array_equal(dst_idx, np.arange(17))
    b25, c17 = get_skeleton("body25"), get_skeleton("coco17")
    for s, d in zip(src_idx, dst_idx, strict=True):
        assert b25.joints[s] == c17.joints[d]
    src_idx, dst_idx = joint_mapping("h36m17", "body25")
    assert {get_skeleton("h36m17").joints[i] for i in src_idx} == {
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "left_shoulder",
        "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist"}  # no head_top, pelvis
    assert src_idx.dtype.kind == "i" and dst_idx.dtype.kind == "i"


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["coco17", "coco18", "body25", "body25b", "halpe26", "mediapipe33", "smpl24",
                        "panoptic15", "h36m17"]),
       st.sampled_from(["coco17", "coco18", "body25", "body25b", "halpe26", "mediapipe33", "smpl24",
                        "panoptic15", "h36m17"]),
       st.integers(0, 2**31 - 1))
def test_convert_keypoints_moves_points_by_name(src, dst, seed):
    s, d = get_skeleton(src), get_skeleton(dst)
    kp = np.random.default_rng(seed).uniform(1, 100, (2, 3, s.num_joints, 3)).astype(np.float32)
    out = convert_keypoints(kp, src, dst)
    assert out.shape == (2, 3, d.num_joints, 3) and out.dtype == np.float32
    for j, name in enumerate(d.joints):
        if name in s.joints:
            assert np.array_equal(out[..., j, :], kp[..., s.index(name), :])
        else:
            assert np.isnan(out[..., j, :2]).all() and (out[..., j, 2] == 0).all()


def test_convert_keypoints_rejects_the_wrong_layout():
    with pytest.raises(SkeletonError, match="17 coco17 joints"):
        convert_keypoints(np.zeros((5, 25, 3)), "coco17", "body25")


def _main_person_body25b(folder: Path) -> np.ndarray:
    """[T, 25, 3] of the tallest person per frame in one Pose2Sim camera folder, missing as NaN."""
    if not folder.is_dir():
        pytest.skip(f"../shared/data is absent: {folder} not found")
    frames = []
    for f in sorted(folder.glob("*.json")):
        people = [np.array(p["pose_keypoints_2d"], dtype=float).reshape(25, 3)
                  for p in json.loads(f.read_text())["people"]]
        heights = [np.ptp(p[p[:, 2] > 0, 1]) for p in people]
        kp = people[int(np.argmax(heights))]
        kp[kp[:, 2] == 0, :2] = np.nan
        frames.append(kp)
    return np.stack(frames)


@pytest.mark.parametrize("cam", ["cam01", "cam02", "cam03", "cam04"])
def test_body25b_order_on_real_pose2sim_standing_person(cam):
    """Static trial (person standing upright): image y grows downwards, so in every frame the head top
    is above the nose, above the neck, above the shoulders, hips, knees, ankles; toes and heels lie
    below or level with their own ankle."""
    kp = _main_person_body25b(STATIC_POSE / f"{cam}_json")
    s = get_skeleton("body25b")

    def y(*names):
        return np.nanmean(np.stack([kp[:, s.index(n), 1] for n in names]), axis=0)

    chain = [y("head_top"), y("nose"), y("neck"), y("left_shoulder", "right_shoulder"),
             y("left_hip", "right_hip"), y("left_knee", "right_knee"), y("left_ankle", "right_ankle")]
    for upper, lower in zip(chain[:-1], chain[1:], strict=False):
        assert np.all(upper < lower)
    for side in ("left", "right"):
        for foot in ("big_toe", "small_toe", "heel"):
            assert np.nanmedian(y(f"{side}_{foot}") - y(f"{side}_ankle")) > -5


@pytest.mark.parametrize("trial", ["static", "balancing"])
@pytest.mark.parametrize("cam", ["cam01", "cam02", "cam03", "cam04"])
def test_body25b_left_and_right_are_consistent_on_real_keypoints(cam, trial):
    """In each frame the left joints all lie on the same side of their right twins (image x) as the
    shoulders do: one swapped pair in the table would break this in most frames."""
    base = STATIC_POSE if trial == "static" else POSE2SIM_POSE
    kp = _main_person_body25b(base / f"{cam}_json")
    s = get_skeleton("body25b")
    x = kp[..., 0]

    def side(part):
        return np.sign(x[:, s.index(f"left_{part}")] - x[:, s.index(f"right_{part}")])

    reference = side("hip")
    for part in ("shoulder", "elbow", "wrist", "knee", "ankle", "heel", "big_toe", "small_toe", "eye", "ear"):
        valid = ~np.isnan(side(part))
        if part in ("eye", "ear") and valid.sum() < 10:
            continue  # eyes and ears are often undetected in side and back views
        assert valid.sum() >= 10, part
        # legs cross while balancing on one foot (70% agreement at worst); a swapped pair gives ~0%
        assert (side(part) == reference)[valid].mean() > 0.6, part
