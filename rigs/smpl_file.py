"""`smpl/track_<id>.npz`: one fitted body track in the AMASS layout, and resampling it in time.

The file is a compressed ``np.savez`` archive (no pickled objects) holding AMASS's keys

- ``poses`` float64 [T, 72]: axis-angle per SMPL joint, the global orientation (pelvis) first, then the 23
  body joints in smplx's order (``rigs.skeletons`` ``smpl24``), each relative to its parent;
- ``trans`` float64 [T, 3]: smplx's ``transl`` (metres): the pelvis joint ends at ``rest_joints[0] + trans``
  because the global orientation turns the body about the pelvis joint;
- ``betas`` float64 [B], ``gender`` ("neutral" | "male" | "female"), ``mocap_framerate`` (frames per second),
  ``surface_model_type`` ("smpl"),

plus ours: ``body_model`` (the model file it was fitted with, or the stand-in's description),
``body_model_standin`` (bool), ``track_id``, ``first_frame`` (index of the track's first frame in the
session's ``poses3d.npz``), ``t_ns`` int64 [T] (times of the frames) and ``valid`` bool [T] (False where a
frame was interpolated across a short gap rather than fitted to observations).

The world is the project's: metres, right-handed, Z up. The model's own rest frame is SMPL's canonical one
(Y up, facing +Z); the global orientation carries the body from it into the world.

``resample_smpl_track`` changes the frame rate: rotations (global orientation and every joint) are slerped,
the translation interpolated linearly, on the frames' own times ``t_ns``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

NUM_POSE_PARAMS = 72  # 24 joints x 3 (axis-angle)
GENDERS = ("neutral", "male", "female")
_KEYS = ("poses", "trans", "betas", "gender", "mocap_framerate", "surface_model_type", "body_model",
         "body_model_standin", "track_id", "first_frame", "t_ns", "valid")


class SmplFileError(ValueError):
    """An SMPL track file or record that cannot be used; names the file (when there is one) and the fix."""


@dataclass(frozen=True, eq=False)
class SmplTrack:
    """One body track: SMPL parameters per frame in the Z-up world, the shape, and where it came from."""

    poses: np.ndarray  # float64 [T, 72] axis-angle, global orientation first
    trans: np.ndarray  # float64 [T, 3] smplx transl, metres
    betas: np.ndarray  # float64 [B]
    gender: str
    fps: float
    body_model: str  # BodyModelArrays.source
    body_model_standin: bool
    track_id: int
    first_frame: int  # index into the session's poses3d frames
    t_ns: np.ndarray  # int64 [T]
    valid: np.ndarray  # bool [T]

    def __post_init__(self) -> None:
        poses = np.array(self.poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != NUM_POSE_PARAMS or poses.shape[0] < 1:
            raise SmplFileError(f"poses must be [frames >= 1, {NUM_POSE_PARAMS}] (SMPL axis-angle), got shape "
                                f"{poses.shape}")
        T = poses.shape[0]
        trans = np.array(self.trans, dtype=np.float64)
        if trans.shape != (T, 3):
            raise SmplFileError(f"trans must be [{T}, 3], got shape {trans.shape}")
        betas = np.array(self.betas, dtype=np.float64).reshape(-1)
        if not (np.isfinite(poses).all() and np.isfinite(trans).all() and np.isfinite(betas).all()):
            raise SmplFileError("poses, trans and betas must be finite (no NaN): a fitted track has a value in "
                                "every frame")
        t_ns = np.array(self.t_ns, dtype=np.int64).reshape(-1)
        valid = np.array(self.valid, dtype=bool).reshape(-1)
        if t_ns.shape != (T,) or valid.shape != (T,):
            raise SmplFileError(f"t_ns and valid must have one entry per frame ({T}), got {t_ns.shape[0]} and "
                                f"{valid.shape[0]}")
        if T > 1 and not (np.diff(t_ns) > 0).all():
            raise SmplFileError("t_ns must increase from frame to frame")
        gender = str(self.gender).lower()
        if gender not in GENDERS:
            raise SmplFileError(f"gender {self.gender!r}; expected one of {', '.join(GENDERS)}")
        fps = float(self.fps)
        if not (np.isfinite(fps) and fps > 0):
            raise SmplFileError(f"fps (mocap_framerate) must be a positive number, got {self.fps!r}")
        if int(self.first_frame) < 0:
            raise SmplFileError(f"first_frame must be >= 0, got {self.first_frame}")
        # Own copies, left writable: scipy's Rotation refuses read-only arrays.
        for name, value in (("poses", poses), ("trans", trans), ("betas", betas), ("t_ns", t_ns), ("valid", valid)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "gender", gender)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "body_model", str(self.body_model))
        object.__setattr__(self, "body_model_standin", bool(self.body_model_standin))
        object.__setattr__(self, "track_id", int(self.track_id))
        object.__setattr__(self, "first_frame", int(self.first_frame))

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    @property
    def global_orient(self) -> np.ndarray:
        """[T, 3] axis-angle of the pelvis in the world; a writable copy."""
        return self.poses[:, :3].copy()

    @property
    def joint_rotvecs(self) -> np.ndarray:
        """[T, 24, 3] axis-angle of every joint (global orientation first); a writable copy."""
        return self.poses.reshape(-1, 24, 3).copy()


def write_smpl_track(path: str | Path, track: SmplTrack) -> Path:
    """Write ``track`` as an AMASS-layout npz (compressed; no pickled objects)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, poses=track.poses, trans=track.trans, betas=track.betas, gender=np.str_(track.gender),
        mocap_framerate=np.float64(track.fps), surface_model_type=np.str_("smpl"),
        body_model=np.str_(track.body_model), body_model_standin=np.bool_(track.body_model_standin),
        track_id=np.int64(track.track_id), first_frame=np.int64(track.first_frame), t_ns=track.t_ns,
        valid=track.valid)
    return path


def read_smpl_track(path: str | Path) -> SmplTrack:
    """Read ``smpl/track_<id>.npz``; a missing key or bad value is one SmplFileError naming it and the file."""
    path = Path(path)
    if not path.is_file():
        raise SmplFileError(f"{path}: no such SMPL track file; run `mocap fit SESSION` to make one")
    if not zipfile.is_zipfile(path):
        raise SmplFileError(f"{path}: not an npz archive (damaged or another kind of file); re-run `mocap fit` "
                            f"to rewrite it")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SmplFileError(f"{path}: not a readable npz archive ({err}); re-run `mocap fit` to rewrite it") from None
    try:
        with archive as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise SmplFileError(f"{path}: missing key{'s' * (len(missing) > 1)} {', '.join(missing)}; not an "
                                    f"SMPL track written by `mocap fit` (re-run it)")
            kind = str(z["surface_model_type"])
            if kind.lower() != "smpl":
                raise SmplFileError(f"{path}: surface_model_type is {kind!r}; only 'smpl' (72 pose parameters) "
                                    f"is supported")
            values = {k: z[k] for k in _KEYS}
    except SmplFileError:
        raise
    except (OSError, ValueError, EOFError) as err:  # a damaged member of the zip
        raise SmplFileError(f"{path}: damaged archive ({err}); re-run `mocap fit` to rewrite it") from None
    try:
        return SmplTrack(poses=values["poses"], trans=values["trans"], betas=values["betas"],
                         gender=str(values["gender"]), fps=float(values["mocap_framerate"]),
                         body_model=str(values["body_model"]), body_model_standin=bool(values["body_model_standin"]),
                         track_id=int(values["track_id"]), first_frame=int(values["first_frame"]),
                         t_ns=values["t_ns"], valid=values["valid"])
    except (SmplFileError, TypeError, ValueError) as err:
        raise SmplFileError(f"{path}: {err}") from None


def resample_times(t_ns: np.ndarray, fps: float) -> np.ndarray:
    """Times [N] int64 from ``t_ns[0]`` every 1/fps seconds, the last one not after ``t_ns[-1]``."""
    t_ns = np.asarray(t_ns, np.int64)
    if not (np.isfinite(fps) and fps > 0):
        raise SmplFileError(f"fps must be a positive number, got {fps!r}")
    span = float(t_ns[-1] - t_ns[0])
    n = int(np.floor(span * fps / 1e9 + 1e-6)) + 1  # 1e-6: a span of exactly k frames is k frames
    return t_ns[0] + np.round(np.arange(n) * (1e9 / fps)).astype(np.int64)


def bracket(t_ns: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each time of ``times`` (within [t_ns[0], t_ns[-1]]): the frames before and after and the weight
    of the later one, (i0 [N], i1 [N], w [N]) with times = (1 - w) t_ns[i0] + w t_ns[i1]."""
    t_ns = np.asarray(t_ns, np.int64)
    times = np.clip(np.asarray(times, np.int64), t_ns[0], t_ns[-1])
    i1 = np.clip(np.searchsorted(t_ns, times, side="left"), 0, len(t_ns) - 1)
    i0 = np.where(t_ns[i1] == times, i1, np.maximum(i1 - 1, 0))
    span = (t_ns[i1] - t_ns[i0]).astype(np.float64)
    w = np.divide((times - t_ns[i0]).astype(np.float64), span, out=np.zeros(len(times)), where=span > 0)
    return i0, i1, w


def resample_smpl_track(track: SmplTrack, fps: float) -> SmplTrack:
    """The track at ``fps`` frames per second from its first frame's time: joint rotations slerped, the
    translation interpolated linearly; a new frame is valid where both frames it lies between are."""
    times = resample_times(track.t_ns, fps)
    i0, i1, w = bracket(track.t_ns, times)
    rots = Rotation.from_rotvec(track.joint_rotvecs.reshape(-1, 3))
    q = rots.as_quat().reshape(track.num_frames, 24, 4)
    q0, q1 = q[i0], q[i1]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # the shorter way round
    angle = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))  # half the rotation between them
    ww = w[:, None, None]
    sin = np.sin(angle)
    small = sin < 1e-9
    safe = np.where(small, 1.0, sin)
    a = np.where(small, 1 - ww, np.sin((1 - ww) * angle) / safe)
    b = np.where(small, ww, np.sin(ww * angle) / safe)
    qs = a * q0 + b * q1
    qs /= np.linalg.norm(qs, axis=-1, keepdims=True)
    poses = Rotation.from_quat(qs.reshape(-1, 4)).as_rotvec().reshape(len(times), NUM_POSE_PARAMS)
    trans = (1 - w)[:, None] * track.trans[i0] + w[:, None] * track.trans[i1]
    return SmplTrack(poses=poses, trans=trans, betas=track.betas, gender=track.gender, fps=fps,
                     body_model=track.body_model, body_model_standin=track.body_model_standin,
                     track_id=track.track_id, first_frame=track.first_frame, t_ns=times,
                     valid=track.valid[i0] & track.valid[i1])
