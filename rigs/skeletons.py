"""Skeleton formats, defined once: joint names and order, a drawing tree, and left/right pairs.

Naming rule: **same name = same point.** A joint name denotes one anatomical point, whatever the
format; two formats that both have ``left_knee`` mean the same knee, so mapping between formats
(``joint_mapping``, ``convert_keypoints``) and fitting a body model match joints by name alone.
Names are snake_case with ``left_``/``right_`` prefixes (the person's own left and right). SMPL-24
names are exactly smplx's. A point that differs from every other format's gets its own name, e.g.
``mid_hip`` (OpenPose MidHip, the midpoint of the hip keypoints) is not SMPL's ``pelvis`` joint.

Known looseness, accepted so that the names stay few: ``neck`` is OpenPose's neck (midway between
the shoulders) in coco18/body25, the "upper neck" in body25b/halpe26 (a few cm higher), the CMU
Panoptic neck in panoptic15 and the SMPL neck joint in smpl24; ``head_top`` is the top of the head
(body25b, halpe26 "Head", h36m17 "Head"). ``all_joint_names`` lists every name a simulated body must
provide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np


class SkeletonError(ValueError):
    """An unknown skeleton name, an ambiguous joint count, or keypoints of the wrong layout."""


@dataclass(frozen=True)
class Skeleton:
    """One keypoint layout: joint names in the format's order, a tree for bones, left/right pairs."""

    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    left_right: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.joints)
        if len(set(self.joints)) != n:
            raise SkeletonError(f"skeleton {self.name!r}: joint names are not unique")
        if len(self.parents) != n:
            raise SkeletonError(f"skeleton {self.name!r}: {len(self.parents)} parents for {n} joints")
        for j, p in enumerate(self.parents):
            if not -1 <= p < n or p == j:
                raise SkeletonError(f"skeleton {self.name!r}: joint {self.joints[j]!r} has bad parent {p}")
        for j in range(n):  # every chain of parents must reach a root: no cycles
            seen, k = set(), j
            while k != -1:
                if k in seen:
                    raise SkeletonError(f"skeleton {self.name!r}: parents form a cycle at {self.joints[k]!r}")
                seen.add(k)
                k = self.parents[k]
        flat = [i for pair in self.left_right for i in pair]
        if len(set(flat)) != len(flat) or any(not 0 <= i < n for i in flat):
            raise SkeletonError(f"skeleton {self.name!r}: left_right pairs must be distinct joint indices")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) for every non-root joint, in joint order."""
        return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)

    def index(self, joint_name: str) -> int:
        """Index of ``joint_name`` in this format; a missing name raises listing the format's joints."""
        try:
            return self.joints.index(joint_name)
        except ValueError:
            raise SkeletonError(
                f"skeleton {self.name!r} has no joint {joint_name!r}; "
                f"its joints are: {', '.join(self.joints)}"
            ) from None

    def flip_indices(self) -> np.ndarray:
        """Permutation ``perm`` with ``flipped = keypoints[..., perm, :]`` swapping left and right joints."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm


def _build(name: str, spec: tuple[tuple[str, str | None], ...]) -> Skeleton:
    """A Skeleton from (joint, parent joint or None) rows; left/right pairs are the names that differ
    only by a ``left`` / ``right`` word (``left_knee``/``right_knee``, ``mouth_left``/``mouth_right``)."""
    joints = tuple(j for j, _ in spec)
    parents = tuple(-1 if p is None else joints.index(p) for _, p in spec)
    mirrored = ["_".join("right" if w == "left" else w for w in j.split("_")) for j in joints]
    pairs = tuple((i, joints.index(m)) for i, (j, m) in enumerate(zip(joints, mirrored, strict=True))
                  if m != j and m in joints)
    return Skeleton(name, joints, parents, pairs)


# COCO-17 (MS COCO keypoints, also MMPose/YOLO-pose/AlphaPose COCO output).
COCO17 = _build("coco17", (
    ("nose", None),
    ("left_eye", "nose"), ("right_eye", "nose"),
    ("left_ear", "left_eye"), ("right_ear", "right_eye"),
    ("left_shoulder", "nose"), ("right_shoulder", "nose"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
))

# OpenPose COCO (18 points): COCO-17 reordered plus the neck (midway between the shoulders).
COCO18 = _build("coco18", (
    ("nose", "neck"), ("neck", None),
    ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
    ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("right_hip", "neck"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("left_hip", "neck"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("right_eye", "nose"), ("left_eye", "nose"), ("right_ear", "right_eye"), ("left_ear", "left_eye"),
))

# OpenPose BODY_25: COCO-18 order with MidHip (mid_hip) at 8 and six foot points.
BODY25 = _build("body25", (
    ("nose", "neck"), ("neck", "mid_hip"),
    ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
    ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("mid_hip", None),
    ("right_hip", "mid_hip"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("left_hip", "mid_hip"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("right_eye", "nose"), ("left_eye", "nose"), ("right_ear", "right_eye"), ("left_ear", "left_eye"),
    ("left_big_toe", "left_ankle"), ("left_small_toe", "left_big_toe"), ("left_heel", "left_ankle"),
    ("right_big_toe", "right_ankle"), ("right_small_toe", "right_big_toe"), ("right_heel", "right_ankle"),
))

# OpenPose BODY_25B (openpose_train experimental model, as Pose2Sim uses it): COCO-17 order, then
# UpperNeck (neck) and HeadTop (head_top), then the foot points. No mid_hip.
BODY25B = _build("body25b", (
    ("nose", "neck"),
    ("left_eye", "nose"), ("right_eye", "nose"),
    ("left_ear", "left_eye"), ("right_ear", "right_eye"),
    ("left_shoulder", "neck"), ("right_shoulder", "neck"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_hip", "neck"), ("right_hip", "neck"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
    ("neck", None), ("head_top", "neck"),
    ("left_big_toe", "left_ankle"), ("left_small_toe", "left_big_toe"), ("left_heel", "left_ankle"),
    ("right_big_toe", "right_ankle"), ("right_small_toe", "right_big_toe"), ("right_heel", "right_ankle"),
))

# Halpe-26 (AlphaPose / RTMPose body+feet): COCO-17, then Head (head_top), Neck, Hip (mid_hip),
# then toes and heels interleaved left/right.
HALPE26 = _build("halpe26", (
    ("nose", "neck"),
    ("left_eye", "nose"), ("right_eye", "nose"),
    ("left_ear", "left_eye"), ("right_ear", "right_eye"),
    ("left_shoulder", "neck"), ("right_shoulder", "neck"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_hip", "mid_hip"), ("right_hip", "mid_hip"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
    ("head_top", "neck"), ("neck", "mid_hip"), ("mid_hip", None),
    ("left_big_toe", "left_ankle"), ("right_big_toe", "right_ankle"),
    ("left_small_toe", "left_big_toe"), ("right_small_toe", "right_big_toe"),
    ("left_heel", "left_ankle"), ("right_heel", "right_ankle"),
))

# MediaPipe BlazePose (33 landmarks), MediaPipe's own names. left/right_pinky, _index, _thumb are
# hand points (knuckles/tip) near the wrist; left/right_foot_index is the tip of the foot.
MEDIAPIPE33 = _build("mediapipe33", (
    ("nose", None),
    ("left_eye_inner", "nose"), ("left_eye", "left_eye_inner"), ("left_eye_outer", "left_eye"),
    ("right_eye_inner", "nose"), ("right_eye", "right_eye_inner"), ("right_eye_outer", "right_eye"),
    ("left_ear", "left_eye_outer"), ("right_ear", "right_eye_outer"),
    ("mouth_left", "nose"), ("mouth_right", "nose"),
    ("left_shoulder", "nose"), ("right_shoulder", "nose"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_pinky", "left_wrist"), ("right_pinky", "right_wrist"),
    ("left_index", "left_wrist"), ("right_index", "right_wrist"),
    ("left_thumb", "left_wrist"), ("right_thumb", "right_wrist"),
    ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
    ("left_heel", "left_ankle"), ("right_heel", "right_ankle"),
    ("left_foot_index", "left_ankle"), ("right_foot_index", "right_ankle"),
))

# SMPL-24 joints, smplx's names and kinematic tree (kintree_table).
SMPL24 = _build("smpl24", (
    ("pelvis", None), ("left_hip", "pelvis"), ("right_hip", "pelvis"), ("spine1", "pelvis"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"), ("spine2", "spine1"),
    ("left_ankle", "left_knee"), ("right_ankle", "right_knee"), ("spine3", "spine2"),
    ("left_foot", "left_ankle"), ("right_foot", "right_ankle"), ("neck", "spine3"),
    ("left_collar", "spine3"), ("right_collar", "spine3"), ("head", "neck"),
    ("left_shoulder", "left_collar"), ("right_shoulder", "right_collar"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_hand", "left_wrist"), ("right_hand", "right_wrist"),
))

# CMU Panoptic body (first 15 of joints19): Neck, Nose, BodyCenter (= mid_hip, the centre of the
# hips), then the left limbs, then the right limbs.
PANOPTIC15 = _build("panoptic15", (
    ("neck", None), ("nose", "neck"), ("mid_hip", "neck"),
    ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("left_hip", "mid_hip"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
    ("right_hip", "mid_hip"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
))

# Human3.6M 17 joints (the VideoPose3D subset of the 32-joint skeleton). Its own points:
#   pelvis    "Hip", the root joint of the mocap skeleton (same point as SMPL's pelvis)
#   spine     "Spine", mid-torso; not any of SMPL's spine1/2/3
#   thorax    "Thorax", top of the sternum / base of the neck
#   neck_nose "Neck/Nose", between the neck and the nose
#   head_top  "Head", the end site at the top of the head
# "RFoot"/"LFoot" are the ankle joints (right_ankle/left_ankle).
H36M17 = _build("h36m17", (
    ("pelvis", None),
    ("right_hip", "pelvis"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("left_hip", "pelvis"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("spine", "pelvis"), ("thorax", "spine"), ("neck_nose", "thorax"), ("head_top", "neck_nose"),
    ("left_shoulder", "thorax"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("right_shoulder", "thorax"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
))

_ALL = (COCO17, COCO18, BODY25, BODY25B, HALPE26, MEDIAPIPE33, SMPL24, PANOPTIC15, H36M17)
_BY_KEY = MappingProxyType({s.name: s for s in _ALL})
# Which format a bare joint count means; counts not listed here (e.g. 17 vs h36m17) need --skeleton.
_BY_COUNT = MappingProxyType({17: "coco17", 18: "coco18", 24: "smpl24", 25: "body25", 26: "halpe26",
                              33: "mediapipe33", 15: "panoptic15"})


def _key(name: str) -> str:
    return re.sub(r"[-_\s]", "", name).lower()


def skeleton_names() -> tuple[str, ...]:
    """Canonical names of every known format."""
    return tuple(_BY_KEY)


def get_skeleton(name: str | Skeleton) -> Skeleton:
    """The format called ``name``, ignoring case, '-' and '_' ("BODY_25" is "body25")."""
    if isinstance(name, Skeleton):
        return name
    skeleton = _BY_KEY.get(_key(str(name)))
    if skeleton is None:
        raise SkeletonError(f"unknown skeleton {name!r}; known skeletons: {', '.join(_BY_KEY)}")
    return skeleton


def infer_skeleton(num_joints: int, name: str | None = None) -> Skeleton:
    """The format for keypoints with ``num_joints`` points: ``name`` when given, else by the count."""
    if name is not None:
        skeleton = get_skeleton(name)
        if skeleton.num_joints != num_joints:
            raise SkeletonError(
                f"skeleton {skeleton.name!r} has {skeleton.num_joints} joints but the keypoints have "
                f"{num_joints}; pass the right --skeleton NAME (known: {', '.join(_BY_KEY)})"
            )
        return skeleton
    if num_joints not in _BY_COUNT:
        raise SkeletonError(
            f"cannot tell the skeleton format of {num_joints} keypoints; pass --skeleton NAME "
            f"(known: {', '.join(f'{s.name} ({s.num_joints})' for s in _ALL)})"
        )
    return _BY_KEY[_BY_COUNT[num_joints]]


def joint_mapping(src: Skeleton | str, dst: Skeleton | str) -> tuple[np.ndarray, np.ndarray]:
    """(src_idx, dst_idx): indices of the joints both formats share (same name), in dst order."""
    src, dst = get_skeleton(src), get_skeleton(dst)
    where = {n: i for i, n in enumerate(src.joints)}
    pairs = [(where[n], d) for d, n in enumerate(dst.joints) if n in where]
    src_idx = np.array([s for s, _ in pairs], dtype=np.int64)
    dst_idx = np.array([d for _, d in pairs], dtype=np.int64)
    return src_idx, dst_idx


def convert_keypoints(keypoints: np.ndarray, src: Skeleton | str, dst: Skeleton | str) -> np.ndarray:
    """[..., Jsrc, C] -> [..., Jdst, C] by joint name; dst joints that src lacks get NaN coordinates
    and score 0 (the last channel)."""
    src, dst = get_skeleton(src), get_skeleton(dst)
    keypoints = np.asarray(keypoints)
    if keypoints.ndim < 2 or keypoints.shape[-2] != src.num_joints:
        raise SkeletonError(
            f"convert_keypoints: keypoints of shape {keypoints.shape} do not have {src.num_joints} "
            f"{src.name} joints on axis -2; pass the skeleton the keypoints were made with"
        )
    dtype = keypoints.dtype if np.issubdtype(keypoints.dtype, np.floating) else np.float64
    out = np.full(keypoints.shape[:-2] + (dst.num_joints, keypoints.shape[-1]), np.nan, dtype=dtype)
    out[..., -1] = 0
    src_idx, dst_idx = joint_mapping(src, dst)
    out[..., dst_idx, :] = keypoints[..., src_idx, :]
    return out


def all_joint_names() -> tuple[str, ...]:
    """Sorted union of the joint names of every format: the points a simulated body must provide."""
    return tuple(sorted({n for s in _ALL for n in s.joints}))
