"""`poses3d.npz`: tracked 3D skeletons of a session, the hand-off between reconstruction, fitting and export.

Keys: `poses` float32 [T, P, J, 4] (x, y, z metres in the rig's world frame, score; missing = NaN, 0),
`track_ids` int32 [T, P] (-1 for an empty slot), `t_ns` int64 [T], `fps`, `skeleton` (canonical name),
`joint_names` (the layout and order of the input keypoints), plus any extra arrays a stage adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Poses3DFileError(ValueError):
    """A poses3d.npz that is missing keys or has inconsistent shapes."""


@dataclass(frozen=True, eq=False)
class Poses3D:
    """A sequence of tracked 3D skeletons."""

    poses: np.ndarray  # float32 [T, P, J, 4]
    track_ids: np.ndarray  # int32 [T, P]
    t_ns: np.ndarray  # int64 [T]
    fps: float
    skeleton: str
    joint_names: tuple[str, ...]
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        poses = np.asarray(self.poses, np.float32)
        if poses.ndim != 4 or poses.shape[-1] != 4:
            raise Poses3DFileError(f"poses: expected [T, P, J, 4], got shape {poses.shape}")
        T, P, J, _ = poses.shape
        track_ids = np.asarray(self.track_ids, np.int32)
        if track_ids.shape != (T, P):
            raise Poses3DFileError(f"track_ids: expected shape {(T, P)}, got {track_ids.shape}")
        t_ns = np.asarray(self.t_ns, np.int64)
        if t_ns.shape != (T,):
            raise Poses3DFileError(f"t_ns: expected shape {(T,)}, got {t_ns.shape}")
        if len(self.joint_names) != J:
            raise Poses3DFileError(f"joint_names: {len(self.joint_names)} names for {J} joints")
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "track_ids", track_ids)
        object.__setattr__(self, "t_ns", t_ns)
        object.__setattr__(self, "joint_names", tuple(str(n) for n in self.joint_names))
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    def track(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame indices [N], poses [N, J, 4]) of one track over the frames where it exists."""
        frames, slots = np.nonzero(self.track_ids == track_id)
        return frames, self.poses[frames, slots]


def write_poses3d(path: str | Path, data: Poses3D) -> Path:
    """Write poses3d.npz (compressed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, poses=data.poses, track_ids=data.track_ids, t_ns=data.t_ns,
                        fps=np.float64(data.fps), skeleton=np.str_(data.skeleton),
                        joint_names=np.array(data.joint_names), **data.extras)
    return path


def read_poses3d(path: str | Path) -> Poses3D:
    """Read poses3d.npz, with one error naming the file and what is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such poses3d file; run `mocap reconstruct` to make one")
    with np.load(path, allow_pickle=False) as z:
        required = ("poses", "track_ids", "t_ns", "fps", "skeleton", "joint_names")
        missing = [k for k in required if k not in z.files]
        if missing:
            raise Poses3DFileError(f"{path}: missing {', '.join(missing)}; not a poses3d.npz written by mocap")
        extras = {k: z[k] for k in z.files if k not in required}
        try:
            return Poses3D(z["poses"], z["track_ids"], z["t_ns"], float(z["fps"]), str(z["skeleton"]),
                           tuple(z["joint_names"].tolist()), extras)
        except Poses3DFileError as exc:
            raise Poses3DFileError(f"{path}: {exc}") from None
