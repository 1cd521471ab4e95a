"""Simulated calibration sessions: where a person would hold the board, frame by frame.

* ``board_in_front_of``: intrinsics capture for one camera: the board held 0.6-2 m in front of it,
  swept over the whole image and tilted up to about 45 degrees each way, as a lab guide tells people to.
* ``board_scattered``: independent random poses through the studio (each frame anywhere within ``radius``
  of the middle, facing anywhere), for tests and benchmarks that need many unrelated views.
* ``board_waved``: extrinsics capture for a rig: the board lies on the floor at the studio's origin for
  the first frames, then is carried around the capture volume at chest height on a smooth path, turning
  slowly so every camera sees its face in turn. No performer is drawn holding it.

Poses are ``SimulatedBoardPose`` records (board -> world); everything is seeded.
"""

from __future__ import annotations

import numpy as np

from rigs.camera import Camera, look_at_rotation
from rigs.rotations import rotvec_to_matrix
from rigs.sim.board import SimulatedBoard, SimulatedBoardPose, board_centred_at, board_on_floor


def board_in_front_of(camera: Camera, board: SimulatedBoard, count: int, seed: int = 0,
                      max_tilt_deg: float = 45.0) -> list[SimulatedBoardPose]:
    """``count`` board poses filling ``camera``'s image at varied distance and tilt (face towards it)."""
    rng = np.random.default_rng(seed)
    w, h = board.size
    diag = np.hypot(w, h)
    f = camera.K[0, 0]
    poses = []
    for _ in range(count):
        depth = rng.uniform(max(0.6, 1.2 * diag * f / camera.width), max(2.0, 2.5 * diag * f / camera.width))
        # the board's centre on a pixel anywhere but the outermost band, the board fully or partly in view
        px = np.array([rng.uniform(0.15, 0.85) * camera.width, rng.uniform(0.15, 0.85) * camera.height])
        ray = camera.undistort(px[None])[0]
        centre_cam = np.array([ray[0], ray[1], 1.0]) * depth
        tilt = np.radians(rng.uniform(-max_tilt_deg, max_tilt_deg, size=2))
        spin = np.radians(rng.uniform(-20, 20))
        # board axes in the camera: facing the camera (board z = camera z), tilted about x and y, spun about z
        R_cam = rotvec_to_matrix(np.array([tilt[0], tilt[1], 0.0])) @ rotvec_to_matrix(np.array([0, 0, spin]))
        R_world = camera.R.T @ R_cam
        centre_world = camera.R.T @ (centre_cam - camera.t)
        poses.append(board_centred_at(board, R_world, centre_world, on_floor=False))
    return poses


def board_scattered(board: SimulatedBoard, count: int, rng: np.random.Generator, radius: float = 2.0
                    ) -> list[SimulatedBoardPose]:
    """``count`` independent board poses: centre within ``radius`` m of the middle at 0.8-1.8 m, facing
    any direction within 20 degrees of horizontal, rolled up to 20 degrees."""
    w, h = board.size
    out = []
    for _ in range(count):
        r, a = radius * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        centre = np.array([r * np.cos(a), r * np.sin(a), rng.uniform(0.8, 1.8)])
        az = rng.uniform(0, 2 * np.pi)
        normal = np.array([np.cos(az), np.sin(az), rng.uniform(-0.35, 0.35)])
        roll = rng.uniform(-0.35, 0.35)
        c, s = np.cos(roll), np.sin(roll)
        R = look_at_rotation(centre, centre - normal).T @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        out.append(SimulatedBoardPose(board, R, centre - R @ np.array([w / 2, h / 2, 0])))
    return out


def board_waved(board: SimulatedBoard, num_frames: int, floor_frames: int = 10, area: float = 1.5,
                height: tuple[float, float] = (0.9, 1.6), fps: float = 30.0, turns: float = 2.0,
                seed: int = 0) -> list[SimulatedBoardPose]:
    """Board poses for ``num_frames`` frames: on the floor at the origin for ``floor_frames``, then carried
    on a smooth random path within ``area`` m of the origin, turning ``turns`` times about the vertical."""
    rng = np.random.default_rng(seed)
    poses = [board_on_floor(board) for _ in range(min(floor_frames, num_frames))]
    n = num_frames - len(poses)
    if n <= 0:
        return poses
    t = np.arange(n) / fps
    duration = max(t[-1], 1e-6)
    # smooth path: a few random sinusoids per axis
    k = np.arange(1, 4)
    amp = rng.uniform(0.3, 1.0, size=(3, 3)) / k
    phase = rng.uniform(0, 2 * np.pi, size=(3, 3))
    waves = np.sin(2 * np.pi * k[None, :, None] * t[None, None] / duration * 1.5 + phase[..., None])
    path = (amp[..., None] * waves).sum(axis=1)  # [3, n]
    path /= np.abs(path).max(axis=1, keepdims=True) + 1e-9
    xy = area * path[:2].T
    z = height[0] + (height[1] - height[0]) * 0.5 * (path[2] + 1)
    yaw = 2 * np.pi * turns * t / duration
    pitch = np.radians(25) * np.sin(2 * np.pi * 3.3 * t / duration)
    for i in range(n):
        fwd = np.array([np.cos(yaw[i]), np.sin(yaw[i]), 0.0])  # where the face looks
        left = np.array([-np.sin(yaw[i]), np.cos(yaw[i]), 0.0])
        up = np.array([0.0, 0.0, 1.0])
        R = np.stack([left, -up, -fwd], axis=1)  # board x left, y down, face forward
        R = rotvec_to_matrix(left * pitch[i]) @ R
        poses.append(board_centred_at(board, R, np.array([xy[i, 0], xy[i, 1], z[i]]), on_floor=False))
    return poses
