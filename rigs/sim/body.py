"""The simulated body: an SMPL-24 kinematic tree, landmarks for every skeleton format, capsule volumes.

Rest pose (all local rotations identity): a T-pose standing on the floor (soles at z ~ 0), **facing +X,
the person's left towards +Y**, Z up, metres. This is SMPL's canonical frame (x left, y up, z forward)
with its axes renamed (x->Y, y->Z, z->X), so every joint frame is world-aligned at rest, as in SMPL.
Proportions are fractions of height from standard anthropometry (Winter, *Biomechanics and Motor
Control of Human Movement*, segment lengths: hip 0.530 H, knee 0.285 H, ankle 0.039 H, shoulder
0.818 H, upper arm 0.186 H, forearm 0.146 H, foot 0.152 H, eyes 0.936 H, chin 0.870 H).

Landmarks are every named point of every skeleton format (``rigs.skeletons.all_joint_names``) that
is not an SMPL joint, each fixed to one SMPL joint by an offset in that joint's rest frame, so
"same name = same point" holds for the simulated body too.
"""

from __future__ import annotations

import numpy as np

from rigs.skeletons import get_skeleton

_SMPL = get_skeleton("smpl24")
JOINT_NAMES: tuple[str, ...] = _SMPL.joints
JOINT_PARENTS: np.ndarray = np.array(_SMPL.parents, dtype=np.int64)
NUM_JOINTS = len(JOINT_NAMES)

# Rest positions as fractions of height (x forward, y left, z up); right-side points mirror y.
_JOINT_REST = {
    "pelvis": (0.0, 0.0, 0.577),
    "left_hip": (0.0, 0.045, 0.530),
    "left_knee": (0.0, 0.045, 0.285),
    "left_ankle": (0.0, 0.045, 0.039),
    "left_foot": (0.080, 0.050, 0.012),
    "spine1": (-0.005, 0.0, 0.642),
    "spine2": (-0.005, 0.0, 0.722),
    "spine3": (0.0, 0.0, 0.757),
    "neck": (0.0, 0.0, 0.848),
    "head": (0.005, 0.0, 0.895),
    "left_collar": (0.0, 0.035, 0.812),
    "left_shoulder": (0.0, 0.105, 0.815),
    "left_elbow": (0.0, 0.291, 0.815),
    "left_wrist": (0.0, 0.437, 0.815),
    "left_hand": (0.0, 0.487, 0.815),
}

# Landmarks: name -> (SMPL joint it is fixed to, rest position as fractions of height).
_LANDMARK_REST = {
    "nose": ("head", (0.062, 0.0, 0.912)),
    "left_eye": ("head", (0.050, 0.018, 0.936)),
    "left_eye_inner": ("head", (0.053, 0.009, 0.936)),
    "left_eye_outer": ("head", (0.046, 0.028, 0.935)),
    "left_ear": ("head", (-0.003, 0.042, 0.925)),
    "mouth_left": ("head", (0.052, 0.014, 0.888)),
    "head_top": ("head", (-0.005, 0.0, 1.0)),
    "neck_nose": ("head", (0.035, 0.0, 0.890)),  # h36m "Neck/Nose"
    "thorax": ("spine3", (0.010, 0.0, 0.820)),  # h36m "Thorax", between the shoulders
    "spine": ("spine1", (0.0, 0.0, 0.700)),  # h36m "Spine", mid-torso
    "mid_hip": ("pelvis", (0.0, 0.0, 0.530)),  # midpoint of the hip joints
    "left_heel": ("left_ankle", (-0.030, 0.045, 0.010)),
    "left_big_toe": ("left_foot", (0.118, 0.035, 0.008)),
    "left_small_toe": ("left_foot", (0.095, 0.068, 0.008)),
    "left_foot_index": ("left_foot", (0.124, 0.047, 0.010)),
    "left_pinky": ("left_wrist", (-0.018, 0.482, 0.812)),
    "left_index": ("left_wrist", (0.015, 0.487, 0.812)),
    "left_thumb": ("left_wrist", (0.030, 0.462, 0.805)),
    "simulated_head_center": ("head", (0.015, 0.0, 0.935)),  # centre of the head sphere (volumes only)
}

# Capsules (point a, point b, radius as a fraction of height); a == b is a sphere.
_CAPSULES = (
    ("left_hip", "right_hip", 0.062),
    ("pelvis", "spine2", 0.075),
    ("spine1", "spine3", 0.080),
    ("left_shoulder", "right_shoulder", 0.040),
    ("neck", "head", 0.032),
    ("simulated_head_center", "simulated_head_center", 0.062),
    ("left_shoulder", "left_elbow", 0.027),
    ("right_shoulder", "right_elbow", 0.027),
    ("left_elbow", "left_wrist", 0.021),
    ("right_elbow", "right_wrist", 0.021),
    ("left_wrist", "left_hand", 0.020),
    ("right_wrist", "right_hand", 0.020),
    ("left_hip", "left_knee", 0.042),
    ("right_hip", "right_knee", 0.042),
    ("left_knee", "left_ankle", 0.030),
    ("right_knee", "right_ankle", 0.030),
    ("left_heel", "left_foot_index", 0.022),
    ("right_heel", "right_foot_index", 0.022),
)

# Foot points whose lowest one touches the floor when standing (soles).
FOOT_CONTACT_POINTS = (
    "left_heel",
    "left_big_toe",
    "left_small_toe",
    "right_heel",
    "right_big_toe",
    "right_small_toe",
)


def _mirror(name: str) -> str:
    return "_".join("right" if w == "left" else w for w in name.split("_"))


def _with_right_side(table: dict) -> dict:
    """The left-side table plus mirrored right-side entries (y -> -y, left_ names -> right_)."""
    out = dict(table)
    for name, value in table.items():
        mirrored = _mirror(name)
        if mirrored == name:
            continue
        if isinstance(value[0], str):
            parent, (x, y, z) = value
            out[mirrored] = (_mirror(parent), (x, -y, z))
        else:
            x, y, z = value
            out[mirrored] = (x, -y, z)
    return out


_JOINTS_FULL = _with_right_side(_JOINT_REST)
_LANDMARKS_FULL = _with_right_side(_LANDMARK_REST)
LANDMARK_NAMES: tuple[str, ...] = tuple(_LANDMARKS_FULL)
POINT_NAMES: tuple[str, ...] = JOINT_NAMES + LANDMARK_NAMES
"""Every point the simulated body provides: the 24 SMPL joints, then the landmarks."""

_JOINT_REST_FRAC = np.array([_JOINTS_FULL[n] for n in JOINT_NAMES], dtype=np.float64)  # [24, 3]
LANDMARK_PARENTS: np.ndarray = np.array([JOINT_NAMES.index(_LANDMARKS_FULL[n][0]) for n in LANDMARK_NAMES])
_LANDMARK_OFFSET_FRAC = (
    np.array([_LANDMARKS_FULL[n][1] for n in LANDMARK_NAMES], dtype=np.float64)
    - _JOINT_REST_FRAC[LANDMARK_PARENTS]
)  # [L, 3]
_JOINT_OFFSET_FRAC = _JOINT_REST_FRAC - np.where(
    JOINT_PARENTS[:, None] >= 0, _JOINT_REST_FRAC[np.maximum(JOINT_PARENTS, 0)], 0.0
)
CAPSULE_A = np.array([POINT_NAMES.index(a) for a, _, _ in _CAPSULES])
CAPSULE_B = np.array([POINT_NAMES.index(b) for _, b, _ in _CAPSULES])
_CAPSULE_RADIUS_FRAC = np.array([r for _, _, r in _CAPSULES])
NUM_CAPSULES = len(_CAPSULES)


def point_index(names) -> np.ndarray:
    """Indices into ``POINT_NAMES`` of the given point names (a KeyError names the unknown one)."""
    where = {n: i for i, n in enumerate(POINT_NAMES)}
    missing = [n for n in names if n not in where]
    if missing:
        raise KeyError(f"the simulated body has no point {missing[0]!r}")
    return np.array([where[n] for n in names], dtype=np.int64)


def rest_points(height) -> np.ndarray:
    """Rest-pose (T-pose) positions [..., N, 3] of every point in ``POINT_NAMES`` for height(s) [...]."""
    h = np.asarray(height, dtype=np.float64)[..., None, None]
    landmarks = _JOINT_REST_FRAC[LANDMARK_PARENTS] + _LANDMARK_OFFSET_FRAC
    return np.concatenate([_JOINT_REST_FRAC, landmarks]) * h


def joint_offsets(height) -> np.ndarray:
    """Rest offsets [..., 24, 3] of each joint from its parent (the root's from the origin), metres."""
    return _JOINT_OFFSET_FRAC * np.asarray(height, dtype=np.float64)[..., None, None]


def forward_kinematics(
    local_rotations: np.ndarray, root_translation: np.ndarray, height
) -> tuple[np.ndarray, np.ndarray]:
    """Local joint rotations [..., 24, 3, 3] + pelvis position [..., 3] -> (points [..., N, 3] in
    ``POINT_NAMES`` order, global rotations [..., 24, 3, 3]); ``height`` broadcasts against [...].

    Vectorised over the leading axes; the loop is over the 24 joints of the chain only.
    """
    R = np.asarray(local_rotations, dtype=np.float64)
    root = np.asarray(root_translation, dtype=np.float64)
    h = np.asarray(height, dtype=np.float64)[..., None]
    lead = R.shape[:-3]
    G = np.empty(lead + (NUM_JOINTS, 3, 3))
    pos = np.empty(lead + (NUM_JOINTS, 3))
    G[..., 0, :, :] = R[..., 0, :, :]
    pos[..., 0, :] = root
    for j in range(1, NUM_JOINTS):
        p = JOINT_PARENTS[j]
        G[..., j, :, :] = G[..., p, :, :] @ R[..., j, :, :]
        pos[..., j, :] = (
            pos[..., p, :] + np.einsum("...ab,b->...a", G[..., p, :, :], _JOINT_OFFSET_FRAC[j]) * h
        )
    offs = np.einsum("...lab,lb->...la", G[..., LANDMARK_PARENTS, :, :], _LANDMARK_OFFSET_FRAC) * h[..., None]
    landmarks = pos[..., LANDMARK_PARENTS, :] + offs
    return np.concatenate([pos, landmarks], axis=-2), G


def body_capsules(points: np.ndarray, height, girth=1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body volumes for occlusion: points [..., N, 3] (``POINT_NAMES`` order) -> capsule ends
    a, b [..., K, 3] and radii [..., K] (height, girth [...] scale the radii; a == b: the head sphere)."""
    points = np.asarray(points, dtype=np.float64)
    scale = np.asarray(height, dtype=np.float64) * np.asarray(girth, dtype=np.float64)
    radius = _CAPSULE_RADIUS_FRAC * scale[..., None]
    return points[..., CAPSULE_A, :], points[..., CAPSULE_B, :], radius
