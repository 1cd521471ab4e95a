"""Floor paths of simulated performers: curved walks between seeded waypoints, kept apart and in the area.

A unicycle model per person (heading turns at a bounded rate towards the next waypoint, so paths
curve), steered away from other people within ``repel_radius`` and from the area's edges, with a hard
constraint that pushes walkers apart below ``min_separation``. It is integrated on a fixed control
grid (``dt``), independent of the output frame rate, then resampled to frames by the caller.
The time loop is inherently sequential; each step is vectorised over people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PathParams:
    """Parameters of simulated path planning (metres, seconds, radians)."""

    dt: float = 0.05
    repel_radius: float = 1.2
    repel_gain: float = 2.5
    min_separation: float = 0.65
    edge_margin: float = 0.3
    wall_zone: float = 0.6
    max_turn_rate: float = np.radians(120.0)
    speed_lag_s: float = 0.3
    waypoint_reached: float = 0.4


@dataclass(frozen=True)
class SimulatedPaths:
    """Planned root paths on the control grid: times [N], positions [N, P, 2], headings [N, P] (rad,
    unwrapped), speeds [N, P] (m/s)."""

    t: np.ndarray
    positions: np.ndarray
    headings: np.ndarray
    speeds: np.ndarray


def initial_positions(
    num_people: int,
    area: tuple[float, float],
    rng: np.random.Generator,
    min_distance: float = 1.0,
    margin: float = 0.5,
) -> np.ndarray:
    """Seeded start positions [P, 2] inside the area, at least ``min_distance`` apart when they fit
    (the distance shrinks if the area is too crowded)."""
    half = np.maximum(np.asarray(area, float) / 2 - margin, 0.05)
    for attempt in range(200):
        d = min_distance * 0.97 ** (attempt // 10)
        pos = rng.uniform(-half, half, size=(num_people, 2))
        gap = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(num_people) * 1e9
        if gap.min() >= d:
            return pos
    return pos


def plan_simulated_paths(
    walk_weight: np.ndarray,
    preferred_speed: np.ndarray,
    area: tuple[float, float],
    rng: np.random.Generator,
    params: PathParams = PathParams(),
) -> SimulatedPaths:
    """Integrate the paths of P people over N control steps of ``params.dt``.

    walk_weight [N, P] (0..1, how much each person is walking at each step) scales the speed;
    preferred_speed [P] m/s. People start apart (``initial_positions``) and face the area's centre.
    """
    N, P = walk_weight.shape
    half = np.asarray(area, float) / 2
    lo, hi = -half + params.edge_margin, half - params.edge_margin
    pos = initial_positions(P, area, rng)
    to_centre = -pos + rng.normal(0, 0.3, size=pos.shape)
    heading = np.arctan2(to_centre[:, 1], to_centre[:, 0])
    num_waypoints = 64
    waypoints = rng.uniform(lo + 0.3, hi - 0.3, size=(P, num_waypoints, 2))
    ptr = np.zeros(P, dtype=np.int64)
    speed = np.zeros(P)
    people = np.arange(P)
    out_pos, out_heading, out_speed = np.empty((N, P, 2)), np.empty((N, P)), np.empty((N, P))
    not_self = ~np.eye(P, dtype=bool)
    alpha = min(1.0, params.dt / params.speed_lag_s)
    for n in range(N):
        target = waypoints[people, ptr % num_waypoints]
        to = target - pos
        dist = np.linalg.norm(to, axis=-1)
        ptr = ptr + (dist < params.waypoint_reached)
        desired = to / np.maximum(dist, 1e-9)[:, None]
        diff = pos[:, None] - pos[None]  # [P, P, 2]
        gap = np.linalg.norm(diff, axis=-1)
        near = not_self & (gap < params.repel_radius)
        push = np.where(near, (params.repel_radius - gap) / params.repel_radius, 0.0)
        desired = desired + params.repel_gain * np.sum(
            push[..., None] * diff / np.maximum(gap, 1e-9)[..., None], axis=1
        )
        desired = desired + np.clip((lo + params.wall_zone - pos) / params.wall_zone, 0, None) * 2.0
        desired = desired - np.clip((pos - hi + params.wall_zone) / params.wall_zone, 0, None) * 2.0
        err = np.angle(np.exp(1j * (np.arctan2(desired[:, 1], desired[:, 0]) - heading)))
        moving = walk_weight[n] > 0.02
        heading = heading + moving * np.clip(
            err, -params.max_turn_rate * params.dt, params.max_turn_rate * params.dt
        )
        target_speed = preferred_speed * walk_weight[n] * np.clip(np.cos(err), 0.25, 1.0)
        speed = speed + alpha * (target_speed - speed)
        pos = pos + (speed * params.dt)[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1)
        pos = _separate(pos, walk_weight[n], params.min_separation, not_self)
        pos = np.clip(pos, lo, hi)
        out_pos[n], out_heading[n], out_speed[n] = pos, heading, speed
    return SimulatedPaths(np.arange(N) * params.dt, out_pos, out_heading, out_speed)


def _separate(
    pos: np.ndarray, walk_weight: np.ndarray, min_separation: float, not_self: np.ndarray
) -> np.ndarray:
    """Push pairs closer than min_separation apart; walkers give way, people standing still barely move."""
    diff = pos[:, None] - pos[None]
    gap = np.linalg.norm(diff, axis=-1)
    deficit = np.where(not_self & (gap < min_separation), min_separation - gap, 0.0)
    if not deficit.any():
        return pos
    mobility = 0.05 + walk_weight
    share = mobility[:, None] / (mobility[:, None] + mobility[None])  # my share of each push
    direction = diff / np.maximum(gap, 1e-9)[..., None]
    return pos + np.sum((deficit * share)[..., None] * direction, axis=1)
