"""Driving the simulated SMPL-24 body from a BVH clip (CMU naming, e.g. 01_01.bvh).

Each SMPL joint takes the world rotation of its BVH counterpart, corrected for the difference between
the two rest poses (the smallest rotation taking our rest bone direction onto the BVH's), so the
simulated body keeps its own proportions and every landmark while following the clip. The BVH is
assumed Y-up and facing +Z with the performer's left at +X (CMU, Mixamo); it is turned to our Z-up,
facing +X, left +Y frame. Units are inferred from the skeleton's height (metres, cm, mm, inches or
CMU's 1/0.45 inch); the root path is scaled by the ratio of leg lengths. Clips shorter than the
simulation loop (the root jumps back at each loop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from rigs import bvh as bvh_file
from rigs.rotations import rotation_between
from rigs.sim import body
from rigs.sim.paths import initial_positions
from rigs.sim.performers import SimulatedPerformers

# smpl24 joint -> BVH joint names that drive it (first found wins), CMU names first.
BVH_TO_SMPL24_NAMES: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips", "Hip", "pelvis"),
    "left_hip": ("LeftUpLeg", "LeftHip", "LThigh"),
    "right_hip": ("RightUpLeg", "RightHip", "RThigh"),
    "left_knee": ("LeftLeg", "LeftKnee", "LShin"),
    "right_knee": ("RightLeg", "RightKnee", "RShin"),
    "left_ankle": ("LeftFoot", "LeftAnkle", "LFoot"),
    "right_ankle": ("RightFoot", "RightAnkle", "RFoot"),
    "left_foot": ("LeftToeBase", "LeftToe"),
    "right_foot": ("RightToeBase", "RightToe"),
    "spine1": ("LowerBack", "Spine"),
    "spine2": ("Spine", "Spine1"),
    "spine3": ("Spine1", "Spine2", "Chest"),
    "neck": ("Neck",),
    "head": ("Head",),
    "left_collar": ("LeftShoulder", "LeftCollar"),
    "right_collar": ("RightShoulder", "RightCollar"),
    "left_shoulder": ("LeftArm", "LeftUpArm"),
    "right_shoulder": ("RightArm", "RightUpArm"),
    "left_elbow": ("LeftForeArm", "LeftLowArm"),
    "right_elbow": ("RightForeArm", "RightLowArm"),
    "left_wrist": ("LeftHand",),
    "right_wrist": ("RightHand",),
    "left_hand": ("LeftFingerBase", "LeftHandIndex1"),
    "right_hand": ("RightFingerBase", "RightHandIndex1"),
}
# The point that gives each SMPL joint's rest bone direction (its main child, or a landmark at an end).
_OUR_DIRECTION_POINT = {
    "pelvis": "spine1",
    "left_hip": "left_knee",
    "right_hip": "right_knee",
    "left_knee": "left_ankle",
    "right_knee": "right_ankle",
    "left_ankle": "left_foot",
    "right_ankle": "right_foot",
    "left_foot": "left_foot_index",
    "right_foot": "right_foot_index",
    "spine1": "spine2",
    "spine2": "spine3",
    "spine3": "neck",
    "neck": "head",
    "head": "head_top",
    "left_collar": "left_shoulder",
    "right_collar": "right_shoulder",
    "left_shoulder": "left_elbow",
    "right_shoulder": "right_elbow",
    "left_elbow": "left_wrist",
    "right_elbow": "right_wrist",
    "left_wrist": "left_hand",
    "right_wrist": "right_hand",
    "left_hand": "left_index",
    "right_hand": "right_index",
}
Y_UP_TO_Z_UP = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""BVH (x left, y up, z forward) -> ours (X forward, Y left, Z up)."""
_UNITS_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu (1/0.45 inch)": 0.0254 / 0.45}


def _norm(name: str) -> str:
    return name.split(":")[-1].replace("_", "").lower()


def bvh_joint_map(motion: bvh_file.BvhMotion) -> dict[str, int]:
    """smpl24 joint name -> index of the BVH joint that drives it (joints with no match are left out)."""
    where = {_norm(n): i for i, n in enumerate(motion.joint_names) if not motion.joints[i].is_end_site}
    out = {}
    for ours, candidates in BVH_TO_SMPL24_NAMES.items():
        for c in candidates:
            if _norm(c) in where and where[_norm(c)] not in out.values():
                out[ours] = where[_norm(c)]
                break
    if "pelvis" not in out:
        raise ValueError(
            f"BVH joints {', '.join(motion.joint_names[:8])}...: no root joint named Hips; "
            f"the clip cannot drive the simulated body"
        )
    return out


def _direction_child(motion: bvh_file.BvhMotion, j: int) -> np.ndarray:
    """Rest direction of BVH joint j's bone: its longest child offset, descending through zero offsets
    (CMU's Neck, LeftFingerBase ... sit on their parents)."""
    parents = motion.parents
    for _ in range(4):
        children = np.flatnonzero(parents == j)
        if children.size == 0:
            break
        lengths = [np.linalg.norm(motion.joints[c].offset) for c in children]
        if max(lengths) > 1e-6:
            return motion.joints[int(children[int(np.argmax(lengths))])].offset
        j = int(children[0])
    return np.array([0.0, 1.0, 0.0])


def bvh_units(motion: bvh_file.BvhMotion) -> tuple[str, float, float]:
    """(unit name, metres per unit, skeleton height in metres) from the rest skeleton's height."""
    rest = bvh_file.forward_kinematics(
        bvh_file.BvhMotion(motion.joints, motion.frame_time, np.zeros((1, motion.motion.shape[1])))
    )[0]
    height = float(np.ptp(rest[:, 1]))
    name = min(_UNITS_M, key=lambda u: abs(np.log(max(height * _UNITS_M[u], 1e-9) / 1.7)))
    return name, _UNITS_M[name], height * _UNITS_M[name]


def retarget_bvh(motion: bvh_file.BvhMotion, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Drive the simulated body of ``height`` from a BVH clip: (local rotations [F, 24, 3, 3], pelvis
    position [F, 3] in metres, Z up) at the clip's own frames."""
    mapping = bvh_joint_map(motion)
    G_bvh, p_bvh = bvh_file.world_transforms(motion)  # [F, B, 3, 3], [F, B, 3]
    M = Y_UP_TO_Z_UP
    rest = body.rest_points(height)
    F = motion.num_frames
    G = np.empty((F, body.NUM_JOINTS, 3, 3))
    for j, name in enumerate(body.JOINT_NAMES):
        if name not in mapping:
            G[:, j] = G[:, body.JOINT_PARENTS[j]] if j else np.eye(3)
            continue
        b = mapping[name]
        ours = rest[body.point_index([_OUR_DIRECTION_POINT[name]])[0]] - rest[j]
        theirs = M @ _direction_child(motion, b)
        Q = np.eye(3) if name == "pelvis" else rotation_between(ours, theirs)
        G[:, j] = M @ G_bvh[:, b] @ M.T @ Q
    local = np.empty_like(G)
    local[:, 0] = G[:, 0]
    parents = body.JOINT_PARENTS[1:]
    local[:, 1:] = np.swapaxes(G[:, parents], -1, -2) @ G[:, 1:]
    # root path: scale by leg length ratio (hip -> knee -> ankle)
    chain = [mapping.get(n) for n in ("left_hip", "left_knee", "left_ankle")]
    if None not in chain:
        bvh_leg = sum(np.linalg.norm(motion.joints[c].offset) for c in chain[1:])
        our_leg = np.linalg.norm(rest[4] - rest[1]) + np.linalg.norm(rest[7] - rest[4])
        scale = our_leg / bvh_leg
    else:
        scale = bvh_units(motion)[1] * height / max(bvh_units(motion)[2], 1e-9)
    root = (p_bvh[:, mapping["pelvis"]] @ M.T) * scale
    return local, root


def _resample(
    local: np.ndarray, root: np.ndarray, frame_time: float, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (slerp) and root (linear) at times t (seconds, looped over the clip)."""
    F = local.shape[0]
    src_t = np.arange(F) * frame_time
    tt = np.mod(t, F * frame_time)
    tt = np.clip(tt, 0, src_t[-1])
    out = np.empty((len(t),) + local.shape[1:])
    for j in range(local.shape[1]):
        out[:, j] = Slerp(src_t, Rotation.from_matrix(local[:, j]))(tt).as_matrix()
    r = np.stack([np.interp(tt, src_t, root[:, k]) for k in range(3)], -1)
    return out, r


def bvh_performers(
    path: str | Path,
    num_people: int,
    t: np.ndarray,
    t_ns: np.ndarray,
    fps: float,
    seed: int,
    area: tuple[float, float],
    heights: np.ndarray,
    girths: np.ndarray,
    rng: np.random.Generator,
) -> SimulatedPerformers:
    """Simulated people all performing one BVH clip: each starts at a seeded point of the clip, its path
    centred at a seeded place and turned by a seeded yaw. Separation and the area are NOT enforced."""
    motion = bvh_file.read_bvh(path)
    unit, _, bvh_height = bvh_units(motion)
    duration = motion.num_frames * motion.frame_time
    offsets = rng.uniform(0, duration, num_people) if num_people > 1 else np.zeros(1)
    yaws = rng.uniform(-np.pi, np.pi, num_people) if num_people > 1 else np.zeros(1)
    places = initial_positions(num_people, area, rng, min_distance=1.5)
    rots, roots = [], []
    for p in range(num_people):
        local, root = retarget_bvh(motion, heights[p])
        centre = root[:, :2].mean(axis=0)
        local, root = _resample(local, root, motion.frame_time, t + offsets[p])
        c, s = np.cos(yaws[p]), np.sin(yaws[p])
        Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        root = np.concatenate([(root[:, :2] - centre) @ Rz[:2, :2].T + places[p], root[:, 2:]], -1)
        local[:, 0] = Rz @ local[:, 0]
        rots.append(local)
        roots.append(root)
    rotations, root = np.stack(rots, 1), np.stack(roots, 1)  # [T, P, ...]
    points, _ = body.forward_kinematics(rotations, root, heights)
    # put the feet on the floor: one constant shift per person, so the clip's own jumps are kept
    contact = points[:, :, body.point_index(body.FOOT_CONTACT_POINTS), 2].min(-1)
    floor = body.rest_points(heights)[:, body.point_index(body.FOOT_CONTACT_POINTS), 2].min(-1)
    shift = floor - np.percentile(contact, 2, axis=0)
    points[..., 2] += shift[None, :, None]
    root[..., 2] += shift[None]
    source = (
        f"simulated from BVH {Path(path).name} ({unit} units, skeleton {bvh_height:.2f} m, "
        f"{1 / motion.frame_time:.0f} Hz resampled to {fps:g} fps)"
    )
    return SimulatedPerformers.from_points(
        points,
        local_rotations=rotations,
        root_translation=root,
        heights=heights,
        girths=girths,
        t_ns=t_ns,
        fps=float(fps),
        seed=int(seed),
        activities=tuple(() for _ in range(num_people)),
        source=source,
    )
