"""Procedural joint angles for simulated performers: walking, standing, crouching, waving, jumping.

Angles are (rx, ry, rz) Euler angles per SMPL joint, R = Rz Ry Rx (``rotations.euler_zyx_to_matrix``),
in the simulated body's frame (facing +X, left +Y, Z up; see ``body``). Generators write both sides in
the LEFT side's convention; ``mirror_right_side`` turns that into true angles (a mirror through the
sagittal plane negates rx and rz), so one formula drives both legs and both arms.
Signs for the left side: hip flexion = -ry, knee flexion = +ry, ankle dorsiflexion = -ry, spine
flexion = +ry, shoulder: rx = -90 deg hangs the arm down, shoulder flexion (swing forward) = -ry,
elbow flexion = -rz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs.rotations import euler_zyx_to_matrix
from rigs.sim.body import JOINT_NAMES, NUM_JOINTS
from rigs.sim.schedule import ACTIVITIES, blend_segments, smoothstep

J = {name: i for i, name in enumerate(JOINT_NAMES)}
_MIRROR_SIGN = np.ones((NUM_JOINTS, 3))
_MIRROR_SIGN[[i for n, i in J.items() if n.startswith("right_")]] = (-1.0, 1.0, -1.0)
GRAVITY = 9.81
JUMP_TAKEOFF_S, JUMP_LANDING_S = 0.70, 1.15
"""Local times within a jump activity at which the feet leave and touch the floor."""


@dataclass(frozen=True)
class SimulatedStyle:
    """Per-person motion style of simulated performers, arrays [P]: arm swing (deg), phases of the
    standing sway and head turns (rad), and the waving arm (+1 right, -1 left)."""

    arm_swing_deg: np.ndarray
    sway_phase: np.ndarray
    head_phase: np.ndarray
    wave_side: np.ndarray

    @staticmethod
    def random(num_people: int, rng: np.random.Generator) -> SimulatedStyle:
        return SimulatedStyle(
            arm_swing_deg=rng.uniform(14.0, 26.0, num_people),
            sway_phase=rng.uniform(0, 2 * np.pi, num_people),
            head_phase=rng.uniform(0, 2 * np.pi, num_people),
            wave_side=np.where(rng.random(num_people) < 0.8, 1, -1),
        )


def mirror_right_side(angles: np.ndarray) -> np.ndarray:
    """Left-convention angles [..., 24, 3] -> true joint angles (right side: rx, rz negated)."""
    return angles * _MIRROR_SIGN


def _bump(phase: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A periodic Gaussian bump over the gait cycle (phase in cycles)."""
    d = np.mod(phase - centre + 0.5, 1.0) - 0.5
    return np.exp(-0.5 * (d / width) ** 2)


def keyframe_curve(u: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values [K, C] at key times [K] eased (smoothstep) between keys, sampled at u [...] -> [..., C]."""
    idx = np.clip(np.searchsorted(times, u, side="right") - 1, 0, len(times) - 2)
    x = (u - times[idx]) / (times[idx + 1] - times[idx])
    w = smoothstep(x)[..., None]
    return values[idx] + w * (values[idx + 1] - values[idx])


def relaxed_pose(shape: tuple[int, ...]) -> np.ndarray:
    """Standing upright, arms hanging with elbows slightly bent: left-convention angles [*shape, 24, 3]."""
    a = np.zeros(shape + (NUM_JOINTS, 3))
    for side in ("left", "right"):
        a[..., J[f"{side}_shoulder"], 0] = np.radians(-75.0)
        a[..., J[f"{side}_elbow"], 2] = np.radians(-12.0)
    return a


def walking_delta(
    phase: np.ndarray, speed_ratio: np.ndarray, hip_amplitude: np.ndarray, arm_swing_deg: np.ndarray
) -> np.ndarray:
    """Gait-phase-driven change from the relaxed pose [..., 24, 3]: hips, knees and ankles of each leg
    half a cycle apart, arms swinging against the same-side leg, pelvis and trunk counter-rotating.
    Phase 0 is the left heel strike; speed_ratio (0..1) fades the motion in and out."""
    s = speed_ratio[..., None]
    d = np.zeros(phase.shape + (NUM_JOINTS, 3))
    deg = np.radians
    for side, offset in (("left", 0.0), ("right", 0.5)):
        ph = phase + offset
        c = np.cos(2 * np.pi * ph)
        hip = hip_amplitude * (0.2 + c)
        knee = s[..., 0] * deg(15 * _bump(ph, 0.12, 0.07) + 55 * _bump(ph, 0.72, 0.11))
        # stance (foot flat on the floor: dorsiflexion = knee - hip), swing (5 deg), push-off (plantar)
        cyc = np.mod(ph, 1.0)
        stance = smoothstep(cyc / 0.12) * smoothstep((0.55 - cyc) / 0.1)
        dorsi = (
            stance * (knee - hip)
            + (1 - stance) * s[..., 0] * deg(5.0)
            - s[..., 0] * deg(15.0) * _bump(ph, 0.6, 0.05)
        )
        d[..., J[f"{side}_hip"], 1] = -hip
        d[..., J[f"{side}_knee"], 1] = knee
        d[..., J[f"{side}_ankle"], 1] = -dorsi
        d[..., J[f"{side}_shoulder"], 1] = s[..., 0] * deg(arm_swing_deg) * c
        d[..., J[f"{side}_elbow"], 2] = -s[..., 0] * deg(15.0) * (1 - c) / 2
    c = np.cos(2 * np.pi * phase)
    d[..., J["pelvis"], 2] = -s[..., 0] * deg(5.0) * c
    d[..., J["spine2"], 2] = s[..., 0] * deg(6.0) * c
    d[..., J["spine1"], 1] = s[..., 0] * deg(3.0)
    return d


def standing_delta(t: np.ndarray, sway_phase: np.ndarray, head_phase: np.ndarray) -> np.ndarray:
    """Idle standing [..., 24, 3]: a slow forward/back sway about the ankles and slow head turns."""
    d = np.zeros(t.shape + (NUM_JOINTS, 3))
    sway = np.radians(1.2) * np.sin(2 * np.pi * 0.23 * t + sway_phase)
    d[..., J["pelvis"], 1] = sway
    d[..., J["left_ankle"], 1] = -sway
    d[..., J["right_ankle"], 1] = -sway
    d[..., J["head"], 2] = np.radians(12.0) * np.sin(2 * np.pi * 0.09 * t + head_phase)
    return d


def crouching_delta(u: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Crouching down over 0.8 s, holding, and rising over the last 0.8 s of the activity [..., 24, 3]."""
    a = (smoothstep((u - 0.2) / 0.8) * smoothstep((duration - 0.2 - u) / 0.8))[..., None]
    full = np.zeros((NUM_JOINTS, 3))
    for side in ("left", "right"):
        full[J[f"{side}_hip"], 1] = np.radians(-95.0)
        full[J[f"{side}_knee"], 1] = np.radians(115.0)
        full[J[f"{side}_ankle"], 1] = np.radians(-20.0)
        full[J[f"{side}_shoulder"], 1] = np.radians(-45.0)
        full[J[f"{side}_elbow"], 2] = np.radians(-30.0)
    full[J["spine1"], 1] = np.radians(20.0)
    full[J["spine2"], 1] = np.radians(10.0)
    full[J["neck"], 1] = np.radians(-15.0)
    return a[..., None] * full


def waving_delta(u: np.ndarray, duration: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Raising one arm (side +1 right, -1 left) and waving the forearm at 2 Hz [..., 24, 3]."""
    a = smoothstep((u - 0.15) / 0.6) * smoothstep((duration - 0.15 - u) / 0.6)
    d = np.zeros(u.shape + (NUM_JOINTS, 3))
    wave = np.radians(75.0 + 20.0 * np.sin(2 * np.pi * 2.0 * u))
    for name, sign in (("right", 1), ("left", -1)):
        on = a * (side == sign)
        d[..., J[f"{name}_shoulder"], 0] = on * np.radians(95.0)
        d[..., J[f"{name}_shoulder"], 1] = on * np.radians(-20.0)
        d[..., J[f"{name}_elbow"], 0] = on * wave
        d[..., J[f"{name}_elbow"], 2] = on * np.radians(12.0)
    return d


# Jump keyframes (local time s; degrees): hip, knee, ankle dorsiflexion, spine flexion, shoulder and
# elbow flexion. Knees bend before take-off (0.70 s) and after landing (1.15 s).
_JUMP_TIMES = np.array([0.0, 0.15, 0.50, 0.62, 0.70, 0.92, 1.15, 1.32, 1.60, 1.80])
_JUMP_KEYS = np.radians(
    np.array(
        [
            # hip knee ankle spine shoulder elbow
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [50, 70, 25, 25, -40, 20],
            [10, 15, 0, 10, 60, 30],
            [5, 0, -30, 0, 120, 10],
            [20, 30, -20, 0, 60, 20],
            [10, 10, -25, 0, 20, 20],
            [45, 60, 20, 15, 20, 30],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=np.float64,
    )
)


def jumping_delta(u: np.ndarray) -> np.ndarray:
    """A two-footed vertical jump [..., 24, 3] at local time u (seconds into the 1.8 s activity)."""
    k = keyframe_curve(u, _JUMP_TIMES, _JUMP_KEYS)
    d = np.zeros(u.shape + (NUM_JOINTS, 3))
    for side in ("left", "right"):
        d[..., J[f"{side}_hip"], 1] = -k[..., 0]
        d[..., J[f"{side}_knee"], 1] = k[..., 1]
        d[..., J[f"{side}_ankle"], 1] = -k[..., 2]
        d[..., J[f"{side}_shoulder"], 1] = -k[..., 4]
        d[..., J[f"{side}_elbow"], 2] = -k[..., 5]
    d[..., J["spine1"], 1] = k[..., 3]
    return d


def jump_flight_height(u: np.ndarray) -> np.ndarray:
    """Height of the body above its standing height during the flight of a jump (ballistic), metres."""
    return np.where(
        (u > JUMP_TAKEOFF_S) & (u < JUMP_LANDING_S),
        0.5 * GRAVITY * (u - JUMP_TAKEOFF_S) * (JUMP_LANDING_S - u),
        0.0,
    )


def simulated_joint_angles(
    t: np.ndarray,
    kinds: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    phase: np.ndarray,
    speed_ratio: np.ndarray,
    hip_amplitude: np.ndarray,
    style: SimulatedStyle,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend the scheduled activities into joint angles [T, P, 24, 3] (root heading not included) and
    the jump flight height [T, P]. t [T]; schedules padded [P, S]; gait phase, speed ratio, hip
    amplitude [T, P]."""
    a, b, w = blend_segments(t, kinds, starts, ends)
    tt = np.broadcast_to(np.asarray(t, float)[:, None], a.shape)
    seg = {}
    for name, idx in (("a", a), ("b", b)):
        k = np.take_along_axis(kinds, idx.T, axis=1).T
        s = np.take_along_axis(starts, idx.T, axis=1).T
        e = np.take_along_axis(ends, idx.T, axis=1).T
        seg[name] = (k, tt - s, e - s)
    angles = relaxed_pose(a.shape)
    flight = np.zeros(a.shape)
    for code, kind in enumerate(ACTIVITIES):
        wk = w * (seg["a"][0] == code) + (1 - w) * (seg["b"][0] == code)
        if not wk.any():
            continue
        use_a = seg["a"][0] == code
        u = np.where(use_a, seg["a"][1], seg["b"][1])
        dur = np.where(use_a, seg["a"][2], seg["b"][2])
        if kind == "walk":
            delta = walking_delta(phase, speed_ratio, hip_amplitude, style.arm_swing_deg)
        elif kind == "stand":
            delta = standing_delta(tt, style.sway_phase, style.head_phase)
        elif kind == "crouch":
            delta = crouching_delta(u, dur)
        elif kind == "wave":
            delta = waving_delta(u, dur, style.wave_side) + standing_delta(
                tt, style.sway_phase, style.head_phase
            )
        else:
            delta = jumping_delta(u)
            flight = flight + wk * jump_flight_height(u)
        angles = angles + wk[..., None, None] * delta
    return mirror_right_side(angles), flight


def relaxed_rotations(heading: np.ndarray) -> np.ndarray:
    """Local rotations [..., 24, 3, 3] of people standing relaxed, facing ``heading`` [...] (rad from +X)."""
    angles = mirror_right_side(relaxed_pose(np.shape(heading)))
    angles[..., 0, 2] = heading
    return euler_zyx_to_matrix(angles)
