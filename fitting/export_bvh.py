"""A fitted SMPL track as BVH: the 24-joint SMPL skeleton of the fitted shape, driven by the fitted pose.

Geometry. The track lives in the project world (metres, Z up); the model's rest frame is SMPL's canonical
one (Y up, facing +Z). With rest joints ``J`` (the fitted shape's, ``BodyModelArrays.rest_joints(betas)``),
root rotation ``R_0`` and local joint rotations ``R_j`` (Rodrigues of ``poses``), the model's joints are

    G_0 = R_0,  p_0 = J_0 + trans;   G_j = G_parent R_j,  p_j = p_parent + G_parent (J_j - J_parent)

which is exactly smplx's joint output (``trans`` is smplx's ``transl``). The BVH shows that world rotated by
``U`` (world -> file axes) and scaled by ``s`` (metres -> file units): ``up="y"`` (the default, what BVH
readers such as Blender's expect) takes Z up to Y up, (x, y, z) -> (x, z, -y); ``up="z"`` keeps the world.
Its skeleton is the rest skeleton expressed in a rest frame ``M`` (model -> file rest axes):

    OFFSET_j = s M (J_j - J_parent),   root rotation = U R_0 M^T,   joint rotation j = M R_j M^T,
    root position = s U (J_0 + trans)

so forward kinematics of the file gives ``s U p_j`` for every joint, whatever ``M``. ``M`` is chosen so the rest
pose stands upright in the file's axes: ``M = I`` for Y up (the model is already Y up, facing +Z) and
``M = U^T`` (Y up -> Z up, facing -Y as Blender's characters do) for Z up.

Joints are named as smplx names them (pelvis, left_hip, ..., left_hand, right_hand), listed depth first (the
order a BVH file lists them, so ``rigs.bvh.read_bvh`` gives them back in the same order). End Sites, which
only give the last bones a length to draw, sit at the head top, the finger tips and the toes: from the body
model's landmarks where it has them (``end_sites_from_model``), else from the rest joints' proportions.

Channels: the root has ``Xposition Yposition Zposition`` and three rotations, every other joint three
rotations, all in one Euler order (``ZXY`` by default, as in CMU's files; any order is exact, see
``rigs.bvh``). Euler angles are made continuous in time: of the two triples that give each rotation and
their 360-degree turns, each frame takes the one nearest the previous frame's, so curves do not jump at
+-180 degrees or where the middle angle passes 90 degrees (a knee bent past a right angle).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from rigs.bvh import BvhJoint, BvhMotion, motion_from_rotations
from rigs.skeletons import get_skeleton
from rigs.smpl_file import SmplTrack, resample_smpl_track

_SMPL = get_skeleton("smpl24")
SMPL_JOINT_NAMES: tuple[str, ...] = _SMPL.joints
SMPL_PARENTS = np.array(_SMPL.parents, dtype=np.int64)
UNITS = {"m": 1.0, "cm": 100.0}
UP_AXES = ("y", "z")
END_SITE_JOINTS = ("head", "left_hand", "right_hand", "left_foot", "right_foot")
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)


def up_rotation(up: str) -> np.ndarray:
    """U [3, 3]: world (Z up) -> the file's axes for ``up`` ("y": (x, y, z) -> (x, z, -y); "z": identity)."""
    if up not in UP_AXES:
        raise ValueError(f"up axis {up!r}; use one of {', '.join(UP_AXES)}")
    return Z_UP_TO_Y_UP.copy() if up == "y" else np.eye(3)


def rest_frame_rotation(up: str) -> np.ndarray:
    """M [3, 3]: SMPL's rest frame (Y up) -> the file's rest axes, so the rest pose stands upright there."""
    return np.eye(3) if up == "y" else Z_UP_TO_Y_UP.T.copy()


def default_end_sites(rest_joints: np.ndarray) -> dict[str, np.ndarray]:
    """Rest positions [3] (model frame) of the End Sites from the rest joints alone: head top 2.2 neck-head
    lengths above the head (anthropometric ratio), finger tips one wrist-hand length past the hand, toe tips
    half an ankle-foot length in front of the foot joint."""
    J = _check_rest_joints(rest_joints)
    idx = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    up, forward = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    out = {"head": J[idx["head"]] + up * 2.2 * np.linalg.norm(J[idx["head"]] - J[idx["neck"]])}
    for side in ("left", "right"):
        hand, wrist = J[idx[f"{side}_hand"]], J[idx[f"{side}_wrist"]]
        out[f"{side}_hand"] = hand + (hand - wrist)
        foot, ankle = J[idx[f"{side}_foot"]], J[idx[f"{side}_ankle"]]
        out[f"{side}_foot"] = foot + forward * 0.5 * np.linalg.norm(foot - ankle)
    return out


def end_sites_from_model(arrays, betas: np.ndarray, rest_joints: np.ndarray) -> dict[str, np.ndarray]:
    """End Site rest positions from a body model's landmarks on the fitted shape (``head_top``; the toes as
    the midpoint of ``*_big_toe`` and ``*_small_toe``), falling back to ``default_end_sites`` for what the model
    does not mark, for the finger tips (no model marks them: ``*_index``/``*_pinky`` are knuckles) and for any
    landmark less than 2 cm from its joint (a bone that short is dropped by some importers, Blender's included)."""
    out = default_end_sites(rest_joints)
    names = list(arrays.landmark_names)
    ids = np.asarray(arrays.landmark_vertex_ids, np.int64)
    betas = np.asarray(betas, np.float64).reshape(-1)
    b = min(len(betas), arrays.shapedirs.shape[-1])

    def vertex(name: str) -> np.ndarray:
        v = ids[names.index(name)]
        return np.asarray(arrays.v_template[v], np.float64) + np.asarray(arrays.shapedirs[v, :, :b]) @ betas[:b]

    def have(*wanted: str) -> bool:
        return all(n in names for n in wanted)

    J = _check_rest_joints(rest_joints)
    found = {}
    if have("head_top"):
        found["head"] = vertex("head_top")
    for side in ("left", "right"):
        if have(f"{side}_big_toe", f"{side}_small_toe"):
            found[f"{side}_foot"] = 0.5 * (vertex(f"{side}_big_toe") + vertex(f"{side}_small_toe"))
    for joint, site in found.items():
        if np.linalg.norm(site - J[SMPL_JOINT_NAMES.index(joint)]) >= 0.02:
            out[joint] = site
    return out


def _check_rest_joints(rest_joints: np.ndarray) -> np.ndarray:
    J = np.asarray(rest_joints, dtype=np.float64)
    if J.shape != (24, 3) or not np.isfinite(J).all():
        raise ValueError(f"rest_joints must be 24 finite SMPL joint positions [24, 3], got shape {J.shape}")
    return J


def _depth_first() -> list[int]:
    """SMPL joint indices in depth-first order from the pelvis, children in smplx's order."""
    children: list[list[int]] = [[] for _ in SMPL_JOINT_NAMES]
    for j, p in enumerate(SMPL_PARENTS):
        if p >= 0:
            children[p].append(j)
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def bvh_skeleton(rest_joints: np.ndarray, *, up: str = "y", units: str = "m", order: str = "ZXY",
                 end_sites: Mapping[str, np.ndarray] | None = None) -> tuple[tuple[BvhJoint, ...], np.ndarray]:
    """The BVH joints (depth first, End Sites after their joint) for the rest joints, and for each BVH
    joint the SMPL joint index it shows (-1 for an End Site)."""
    J = _check_rest_joints(rest_joints)
    if units not in UNITS:
        raise ValueError(f"units {units!r}; use one of {', '.join(UNITS)}")
    s, M = UNITS[units], rest_frame_rotation(up)
    sites = default_end_sites(J) if end_sites is None else {**default_end_sites(J), **dict(end_sites)}
    rot = tuple(f"{a}rotation" for a in order.upper())
    joints: list[BvhJoint] = []
    smpl_index: list[int] = []
    where: dict[int, int] = {}
    lowest = J[:, 1].min()  # rest pose on the floor: the lowest joint at height 0 in the rest frame
    for j in _depth_first():
        name, parent = SMPL_JOINT_NAMES[j], int(SMPL_PARENTS[j])
        if parent < 0:
            offset = s * M @ (J[j] - np.array([0.0, lowest, 0.0]))
            channels = ("Xposition", "Yposition", "Zposition") + rot
        else:
            offset = s * M @ (J[j] - J[parent])
            channels = rot
        where[j] = len(joints)
        joints.append(BvhJoint(name, where[parent] if parent >= 0 else -1, offset, channels))
        smpl_index.append(j)
        if name in END_SITE_JOINTS:
            site = np.asarray(sites[name], np.float64)
            joints.append(BvhJoint(f"{name}_end", where[j], s * M @ (site - J[j]), (), True))
            smpl_index.append(-1)
    return tuple(joints), np.array(smpl_index, dtype=np.int64)


def continuous_euler(angles: np.ndarray) -> np.ndarray:
    """Euler triples [F, K, 3] (degrees, R = R_a(a) R_b(b) R_c(c) for any three distinct axes) made continuous
    in time: per frame, of (a, b, c) and (a + 180, 180 - b, c + 180) (the same rotation) and their turns by
    360 degrees, the one nearest the previous frame's triple."""
    angles = np.asarray(angles, dtype=np.float64)
    if angles.shape[0] == 0:
        return angles.copy()
    alt = np.stack([angles[..., 0] + 180.0, 180.0 - angles[..., 1], angles[..., 2] + 180.0], axis=-1)

    def wrap(x: np.ndarray) -> np.ndarray:
        return (x + 180.0) % 360.0 - 180.0

    out = np.empty_like(angles)
    out[0] = wrap(angles[0])
    for f in range(1, angles.shape[0]):
        prev = out[f - 1]
        d0, d1 = wrap(angles[f] - prev), wrap(alt[f] - prev)
        take_alt = np.abs(d1).sum(-1) < np.abs(d0).sum(-1)
        out[f] = prev + np.where(take_alt[:, None], d1, d0)
    return out


def smpl_to_bvh(track: SmplTrack, rest_joints: np.ndarray, *, up: str = "y", units: str = "m",
                fps: float | None = None, end_sites: Mapping[str, np.ndarray] | None = None,
                order: str = "ZXY") -> BvhMotion:
    """The track as a BVH motion on the fitted shape's skeleton (``rest_joints`` [24, 3], SMPL canonical frame):
    joint positions by forward kinematics equal the model's joints, mapped to ``up`` axes and ``units``.
    ``fps`` resamples (slerp, lerp) when it differs from the track's; Frame Time is 1 / fps."""
    if up not in UP_AXES:
        raise ValueError(f"up axis {up!r}; use one of {', '.join(UP_AXES)}")
    if len(order) != 3 or set(order.upper()) != set("XYZ"):
        raise ValueError(f"Euler order {order!r}; use a permutation of XYZ such as ZXY")
    J = _check_rest_joints(rest_joints)
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if fps is not None and abs(fps - track.fps) > 1e-9 * track.fps:
        track = resample_smpl_track(track, fps)
    joints, smpl_index = bvh_skeleton(J, up=up, units=units, order=order, end_sites=end_sites)
    U, M, s = up_rotation(up), rest_frame_rotation(up), UNITS[units]
    T = track.num_frames
    local = Rotation.from_rotvec(track.joint_rotvecs.reshape(-1, 3)).as_matrix().reshape(T, 24, 3, 3)
    R = M @ local @ M.T  # joint rotations in the file's rest axes
    R[:, 0] = U @ local[:, 0] @ M.T  # root: from the file's rest axes into the world seen in the file's axes
    rotations = np.broadcast_to(np.eye(3), (T, len(joints), 3, 3)).copy()
    shown = smpl_index >= 0
    rotations[:, shown] = R[:, smpl_index[shown]]
    root = s * (U @ (J[0] + track.trans).T).T
    motion = motion_from_rotations(joints, rotations, root, 1.0 / track.fps, order=order)
    # Continuous Euler curves: every joint's rotation columns, taken together.
    rot_cols = np.concatenate([start + np.arange(len(j.channels) - 3, len(j.channels))
                               for j, start in zip(motion.joints, motion.channel_starts, strict=True)
                               if not j.is_end_site])
    values = motion.motion.copy()
    values[:, rot_cols] = continuous_euler(values[:, rot_cols].reshape(T, -1, 3)).reshape(T, -1)
    return BvhMotion(motion.joints, motion.frame_time, values)
