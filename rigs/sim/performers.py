"""Simulated performers: seeded people of varied heights doing scheduled activities in the capture volume.

``simulate_performers`` plans each person's floor path (``paths``), blends procedural joint angles for
their activity schedule (``motion``, ``schedule``), runs forward kinematics on the simulated body
(``body``) and sets the root height from the legs so the lowest sole point rests on the floor (plus
the flight of a jump). ``keypoints3d`` reads the result out in any skeleton format, by joint name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline

from rigs.rotations import euler_zyx_to_matrix
from rigs.sim import body
from rigs.sim.motion import SimulatedStyle, simulated_joint_angles
from rigs.sim.paths import PathParams, plan_simulated_paths
from rigs.sim.schedule import (
    ACTIVITIES,
    SimulatedActivity,
    activity_weights,
    schedule_arrays,
    simulated_schedule,
)
from rigs.skeletons import get_skeleton

HEIGHT_RANGE = (1.55, 1.95)
GIRTH_RANGE = (0.9, 1.15)


@dataclass(frozen=True, eq=False)
class SimulatedPerformers:
    """Ground truth of simulated people over time: SMPL-24 joints and every landmark, world frame (metres).

    ``joints`` [T, P, 24, 3] in smpl24 order, ``landmarks`` [T, P, L, 3] named by ``landmark_names``,
    ``local_rotations`` [T, P, 24, 3, 3] and ``root_translation`` [T, P, 3] (pelvis) that produced them,
    ``heights``/``girths`` [P], ``t_ns`` int64 [T] from 0, ``fps``, ``seed``, and each person's
    ``activities`` (kind, start s, end s); ``source`` says what drove the motion.
    """

    joints: np.ndarray
    landmarks: np.ndarray
    local_rotations: np.ndarray
    root_translation: np.ndarray
    heights: np.ndarray
    girths: np.ndarray
    t_ns: np.ndarray
    fps: float
    seed: int
    activities: tuple[tuple[SimulatedActivity, ...], ...]
    source: str = "simulated procedural motion"
    landmark_names: tuple[str, ...] = field(default=body.LANDMARK_NAMES)

    def __post_init__(self) -> None:
        for name in (
            "joints",
            "landmarks",
            "local_rotations",
            "root_translation",
            "heights",
            "girths",
            "t_ns",
        ):
            arr = np.array(getattr(self, name))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return body.JOINT_NAMES

    @property
    def point_names(self) -> tuple[str, ...]:
        return body.JOINT_NAMES + tuple(self.landmark_names)

    @property
    def num_frames(self) -> int:
        return self.joints.shape[0]

    @property
    def num_people(self) -> int:
        return self.joints.shape[1]

    @property
    def points(self) -> np.ndarray:
        """Every body point [T, P, N, 3] in ``point_names`` order (joints, then landmarks)."""
        return np.concatenate([self.joints, self.landmarks], axis=2)

    def named_points(self, names) -> np.ndarray:
        """Points [T, P, len(names), 3] by name (joint or landmark)."""
        where = {n: i for i, n in enumerate(self.point_names)}
        missing = [n for n in names if n not in where]
        if missing:
            raise KeyError(f"the simulated body has no point {missing[0]!r}")
        return self.points[:, :, [where[n] for n in names]]

    @classmethod
    def from_points(cls, points: np.ndarray, **fields) -> SimulatedPerformers:
        """A record from the body's forward-kinematics points [T, P, N, 3] (SMPL-24 joints, then landmarks)."""
        return cls(joints=points[:, :, : body.NUM_JOINTS], landmarks=points[:, :, body.NUM_JOINTS :], **fields)

    def capsules(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body volumes: capsule ends a, b [T, P, K, 3] and radii [P, K] (``body.body_capsules``)."""
        return body.body_capsules(self.points, self.heights, self.girths)


def keypoints3d(performers: SimulatedPerformers, skeleton) -> np.ndarray:
    """Ground-truth 3D keypoints float32 [T, P, J, 4] (score 1) in the joint order of ``skeleton``."""
    names = get_skeleton(skeleton).joints
    xyz = performers.named_points(names)
    out = np.ones(xyz.shape[:-1] + (4,), dtype=np.float32)
    out[..., :3] = xyz
    return out


def _stride_length(speed: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Stride (two steps) length for a walking speed: 0.8 H at 1.3 m/s, growing as sqrt(speed)."""
    return 0.8 * height * np.sqrt(np.maximum(speed, 0.0) / 1.3)


def settle_on_floor(points: np.ndarray, heights: np.ndarray, lift: np.ndarray) -> np.ndarray:
    """Vertical offsets [T, P] that put each body's lowest sole point at its rest height (about 1 cm
    above the floor), plus ``lift`` (e.g. a jump's flight); points [T, P, N, 3] from FK with root z = 0."""
    contact = points[:, :, body.point_index(body.FOOT_CONTACT_POINTS), 2].min(axis=-1)
    rest = body.rest_points(heights)[:, body.point_index(body.FOOT_CONTACT_POINTS), 2].min(axis=-1)
    return rest[None] - contact + lift


def simulate_performers(
    num_people: int,
    seconds: float,
    fps: float,
    seed: int,
    area: tuple[float, float] = (4.0, 4.0),
    bvh: str | Path | None = None,
    heights=None,
) -> SimulatedPerformers:
    """Seeded simulated people (heights 1.55-1.95 m unless given) moving inside ``area`` (width, depth,
    centred on the origin) for ``seconds`` at ``fps``: procedural activities, or a BVH clip when given."""
    if num_people < 1 or seconds <= 0 or fps <= 0:
        raise ValueError(
            f"simulate_performers: need num_people >= 1, seconds > 0, fps > 0; got "
            f"{num_people}, {seconds}, {fps}"
        )
    rng = np.random.default_rng(seed)
    heights = (
        rng.uniform(*HEIGHT_RANGE, num_people)
        if heights is None
        else np.broadcast_to(np.asarray(heights, float), (num_people,)).copy()
    )
    girths = rng.uniform(*GIRTH_RANGE, num_people)
    T = max(1, int(round(seconds * fps)))
    t = np.arange(T) / fps
    t_ns = np.round(np.arange(T) * (1e9 / fps)).astype(np.int64)
    if bvh is not None:
        from rigs.sim.bvh_driver import bvh_performers

        return bvh_performers(bvh, num_people, t, t_ns, fps, seed, area, heights, girths, rng)
    style = SimulatedStyle.random(num_people, rng)
    schedules = tuple(simulated_schedule(seconds, rng) for _ in range(num_people))
    kinds, starts, ends = schedule_arrays(schedules)
    params = PathParams()
    tc = np.arange(int(np.ceil(seconds / params.dt)) + 4) * params.dt
    walk = activity_weights(tc, kinds, starts, ends)[..., ACTIVITIES.index("walk")]
    preferred = rng.uniform(1.0, 1.4, num_people) * np.sqrt(heights / 1.75)
    paths = plan_simulated_paths(walk, preferred, area, rng, params)
    phase0 = rng.uniform(0, 1, num_people)
    phase_c = phase0 + np.cumsum(np.sqrt(paths.speeds * 1.3) / (0.8 * heights) * params.dt, axis=0)

    xy = CubicSpline(paths.t, paths.positions, axis=0)(t)  # [T, P, 2]
    heading = CubicSpline(paths.t, np.unwrap(paths.headings, axis=0), axis=0)(t)  # [T, P]
    speed = np.stack([np.interp(t, paths.t, paths.speeds[:, p]) for p in range(num_people)], -1)
    phase = np.stack([np.interp(t, paths.t, phase_c[:, p]) for p in range(num_people)], -1)
    stride = _stride_length(speed, heights)
    hip_amplitude = 0.75 * np.arcsin(np.clip(0.3 * stride / (0.49 * heights), 0.0, 0.9))
    speed_ratio = np.clip(speed / preferred, 0.0, 1.0)

    angles, flight = simulated_joint_angles(t, kinds, starts, ends, phase, speed_ratio, hip_amplitude, style)
    angles[..., 0, 2] += heading
    return performers_from_rotations(
        euler_zyx_to_matrix(angles), xy, heights, fps, seed, girths, flight, schedules
    )


def performers_from_rotations(
    rotations: np.ndarray,
    root_xy: np.ndarray,
    heights,
    fps: float,
    seed: int = 0,
    girths=None,
    lift=None,
    activities=None,
    source: str = "simulated procedural motion",
) -> SimulatedPerformers:
    """Simulated people from local joint rotations [T, P, 24, 3, 3] and pelvis floor positions [T, P, 2]:
    forward kinematics, then each body lowered or raised so its lowest sole point is on the floor
    (plus ``lift`` [T, P], e.g. a jump's flight). Heights, girths [P] (girth 1 by default)."""
    rotations = np.asarray(rotations, dtype=np.float64)
    T, P = rotations.shape[:2]
    heights = np.broadcast_to(np.asarray(heights, float), (P,)).copy()
    girths = np.ones(P) if girths is None else np.broadcast_to(np.asarray(girths, float), (P,)).copy()
    lift = np.zeros((T, P)) if lift is None else np.asarray(lift, float)
    root = np.concatenate([np.asarray(root_xy, float), np.zeros((T, P, 1))], axis=-1)
    points, _ = body.forward_kinematics(rotations, root, heights)
    dz = settle_on_floor(points, heights, lift)
    points[..., 2] += dz[..., None]
    root[..., 2] = dz
    t_ns = np.round(np.arange(T) * (1e9 / fps)).astype(np.int64)
    return SimulatedPerformers.from_points(
        points,
        local_rotations=rotations,
        root_translation=root,
        heights=heights,
        girths=girths,
        t_ns=t_ns,
        fps=float(fps),
        seed=int(seed),
        activities=tuple(activities) if activities is not None else tuple(() for _ in range(P)),
        source=source,
    )
