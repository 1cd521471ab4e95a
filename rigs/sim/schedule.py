"""Seeded activity schedules for simulated performers, and the blend weights between activities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVITIES: tuple[str, ...] = ("walk", "stand", "crouch", "wave", "jump")
"""Activity kinds; their index in this tuple is the code used in arrays."""

_DURATION_RANGE = {
    "walk": (3.0, 6.0),
    "stand": (1.5, 3.0),
    "crouch": (2.5, 3.5),
    "wave": (2.0, 3.5),
    "jump": (1.8, 1.8),
}
_NEXT_PROBABILITY = {"walk": 0.30, "stand": 0.20, "crouch": 0.17, "wave": 0.17, "jump": 0.16}
TRANSITION_S = 0.4
"""Length of the blend between consecutive activities, seconds."""


@dataclass(frozen=True)
class SimulatedActivity:
    """One scheduled activity of one simulated performer: kind, start and end (seconds)."""

    kind: str
    start: float
    end: float


def simulated_schedule(seconds: float, rng: np.random.Generator) -> tuple[SimulatedActivity, ...]:
    """A seeded sequence of activities covering [0, seconds]; consecutive activities differ."""
    kinds, probs = list(_NEXT_PROBABILITY), np.array(list(_NEXT_PROBABILITY.values()))
    out: list[SimulatedActivity] = []
    t, previous = 0.0, None
    while t < seconds:
        if previous is None:
            kind = "walk" if rng.random() < 0.6 else "stand"
        else:
            p = np.where(np.array(kinds) == previous, 0.0, probs)
            if previous != "walk":  # after any other activity, walk on with probability 0.6
                walk = kinds.index("walk")
                p[walk] = 0.0
                p = 0.4 * p / p.sum()
                p[walk] = 0.6
            kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
        lo, hi = _DURATION_RANGE[kind]
        duration = float(rng.uniform(lo, hi))
        out.append(SimulatedActivity(kind, t, t + duration))
        t, previous = t + duration, kind
    return tuple(out)


def schedule_arrays(schedules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-person schedules -> padded (kind codes int [P, S], starts [P, S], ends [P, S]); padding has
    kind -1 and start/end +inf."""
    S = max(len(s) for s in schedules)
    kinds = np.full((len(schedules), S), -1, dtype=np.int64)
    starts = np.full((len(schedules), S), np.inf)
    ends = np.full((len(schedules), S), np.inf)
    for p, sched in enumerate(schedules):
        kinds[p, : len(sched)] = [ACTIVITIES.index(a.kind) for a in sched]
        starts[p, : len(sched)] = [a.start for a in sched]
        ends[p, : len(sched)] = [a.end for a in sched]
    return kinds, starts, ends


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, 3x^2 - 2x^3 between: a ramp with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def blend_segments(
    t: np.ndarray, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray, transition: float = TRANSITION_S
):
    """For times t [T] and padded schedules [P, S]: the two activities blended at each (t, person).

    Returns (segment a, segment b) as int [T, P] indices and the weight of a [T, P] (b gets 1 - w).
    Weights ramp with a smoothstep over ``transition`` seconds centred on each boundary.
    """
    t = np.asarray(t, dtype=np.float64)[:, None]  # [T, 1]
    count = (kinds >= 0).sum(axis=1)  # [P]
    cur = (starts[None] <= t[..., None]).sum(axis=-1) - 1  # [T, P]
    cur = np.clip(cur, 0, count[None] - 1)
    s = np.take_along_axis(starts, cur.T, axis=1).T
    e = np.take_along_axis(ends, cur.T, axis=1).T
    half = transition / 2
    near_start = (t - s < half) & (cur > 0)
    near_end = (e - t < half) & (cur < count[None] - 1) & ~near_start
    other = np.where(near_start, cur - 1, np.where(near_end, cur + 1, cur))
    w = np.where(
        near_start,
        smoothstep((t - s + half) / transition),
        np.where(near_end, smoothstep((e + half - t) / transition), 1.0),
    )
    return cur, other, w


def activity_weights(t: np.ndarray, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Weight of each activity kind [T, P, len(ACTIVITIES)] at times t [T]; sums to 1."""
    a, b, w = blend_segments(t, kinds, starts, ends)
    ka = np.take_along_axis(kinds, a.T, axis=1).T
    kb = np.take_along_axis(kinds, b.T, axis=1).T
    codes = np.arange(len(ACTIVITIES))
    return w[..., None] * (ka[..., None] == codes) + (1 - w)[..., None] * (kb[..., None] == codes)
