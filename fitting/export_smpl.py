"""A fitted SMPL track as an AMASS-style npz in the requested axes and frame rate.

The file has AMASS's keys (``poses`` [T, 72], ``trans`` [T, 3], ``betas``, ``gender``, ``mocap_framerate``,
``surface_model_type`` = "smpl") so AMASS loaders and viewers read it, plus ``body_model`` (the model file
it was fitted with), ``body_model_standin`` (True: fitted with the simulated stand-in, not SMPL),
``first_frame`` and ``t_ns`` (where the track starts in the session), ``track_id``, ``valid`` and ``up``.

Axes. ``up="z"`` is AMASS's own convention and our world's: the track is written as fitted. ``up="y"`` shows
the world rotated by U: (x, y, z) -> (x, z, -y). smplx turns the body about the pelvis joint, which sits at
``rest_joints[0] + trans``, so rotating everything by U means

    global_orient' = U R_0,     trans' = U (rest_joints[0] + trans) - rest_joints[0]

(the rest pelvis depends on the shape, hence ``rest_joints``); every vertex and joint of the model then moves
by U exactly. Units: betas and the model are metric, so the npz always stays in metres whatever ``--units``
says (``units_note``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from fitting.export_bvh import up_rotation
from rigs.smpl_file import SmplTrack, resample_smpl_track


def units_note(units: str) -> str | None:
    """The one line to say when other units than metres were asked of the SMPL export, else None."""
    if units == "m":
        return None
    return (f"the SMPL npz stays in metres (its betas and body model are metric): --units {units} applies to "
            f"the BVH, TRC and C3D files only")


def smpl_export_arrays(track: SmplTrack, rest_joints: np.ndarray, *, up: str = "z",
                       fps: float | None = None) -> dict[str, np.ndarray]:
    """The npz content for ``track`` with ``up`` axes ("z": AMASS/world, "y": Y up) at ``fps`` (slerp/lerp
    resampling when it differs from the track's rate)."""
    U = up_rotation(up)
    rest = np.asarray(rest_joints, np.float64)
    if rest.shape != (24, 3) or not np.isfinite(rest).all():
        raise ValueError(f"rest_joints must be 24 finite SMPL joint positions [24, 3], got shape {rest.shape}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if fps is not None and abs(fps - track.fps) > 1e-9 * track.fps:
        track = resample_smpl_track(track, fps)
    poses = np.array(track.poses)
    trans = np.array(track.trans)
    if up != "z":
        R0 = Rotation.from_rotvec(track.global_orient).as_matrix()
        poses[:, :3] = Rotation.from_matrix(U @ R0).as_rotvec()
        trans = (U @ (rest[0] + trans).T).T - rest[0]
    return {
        "poses": poses, "trans": trans, "betas": np.array(track.betas), "gender": np.str_(track.gender),
        "mocap_framerate": np.float64(track.fps), "surface_model_type": np.str_("smpl"),
        "body_model": np.str_(track.body_model), "body_model_standin": np.bool_(track.body_model_standin),
        "first_frame": np.int64(track.first_frame), "t_ns": np.array(track.t_ns), "track_id": np.int64(track.track_id),
        "valid": np.array(track.valid), "up": np.str_(up), "units": np.str_("m"),
    }


def write_smpl_export(path: str | Path, track: SmplTrack, rest_joints: np.ndarray, *, up: str = "z",
                      fps: float | None = None) -> Path:
    """Write the AMASS-style npz of ``track`` (see ``smpl_export_arrays``); returns the path."""
    path = Path(path)
    arrays = smpl_export_arrays(track, rest_joints, up=up, fps=fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
