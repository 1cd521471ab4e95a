"""A track's 3D keypoints as marker files: TRC for OpenSim, C3D for Vicon-style tools.

The markers are the keypoints of one track of ``poses3d.npz`` in its own layout and joint names (no body
model involved), from the track's first to its last frame; frames where the track is absent, or a joint was
not seen (score 0 or NaN), are missing markers (TRC: empty cells; C3D: residual -1).

Axes. ``up="y"``: TRC (X, Y, Z) = world (Y, Z, X) (``rigs.trc_file.world_to_trc``), what Pose2Sim writes
and OpenSim expects. ``up="z"``: the world as it is (Z up), the lab frame of Vicon-style C3D files. The C3D
also says which way is up for viewers through ``POINT:X_SCREEN`` / ``POINT:Y_SCREEN``.

Units: TRC in metres by default (Pose2Sim's), C3D in millimetres (customary; ``POINT:UNITS`` says so).

Time. Frame numbers count from 1 at the session's first frame (OpenSim's and C3D's first frame is 1), so a
track starting at session frame ``f`` starts at frame number ``f + 1`` (TRC ``Frame#`` and
``OrigDataStartFrame``, C3D header first frame, which is 16-bit: past frame 65535 the header says 1 and only
the C3D's ``MOCAP:FIRST_FRAME`` parameter, always written, holds it); TRC times are seconds since the session's
first frame.
``fps`` other than the session's resamples on the frames' own times (linear; a marker missing on either side
of a new frame is missing there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigs.poses3d_file import Poses3D
from rigs.smpl_file import bracket, resample_times
from rigs.trc_file import world_to_trc, write_trc

UP_AXES = ("y", "z")
UNITS_PER_METRE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}
_C3D_HEADER_MAX_FRAME = 65535  # the C3D header's first/last frame numbers are 16-bit words


class MarkerExportError(ValueError):
    """A track that cannot be written as markers; the message names it and the fix."""


@dataclass(frozen=True, eq=False)
class MarkerTrack:
    """One track's keypoints on a regular timeline, in metres in the Z-up world."""

    track_id: int
    names: tuple[str, ...]
    points: np.ndarray  # float64 [T, M, 3], NaN where missing
    t_ns: np.ndarray  # int64 [T]
    t0_ns: int  # the session's first frame time
    fps: float
    frame_numbers: np.ndarray  # int64 [T], 1 at the session's first frame
    first_frame: int  # session frame index of the track's first frame

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]

    @property
    def times(self) -> np.ndarray:
        """Seconds since the session's first frame, [T]."""
        return (self.t_ns - self.t0_ns) / 1e9


def track_ids(poses3d: Poses3D) -> list[int]:
    """The track ids present in ``poses3d``, sorted."""
    return sorted(int(i) for i in np.unique(poses3d.track_ids[poses3d.track_ids >= 0]))


def marker_track(poses3d: Poses3D, track_id: int) -> MarkerTrack:
    """The track's keypoints from its first to its last frame (missing where absent or unseen)."""
    frames, poses = poses3d.track(track_id)
    if frames.size == 0:
        raise MarkerExportError(f"track {track_id}: not in poses3d.npz (tracks: "
                                f"{', '.join(map(str, track_ids(poses3d))) or 'none'})")
    first, last = int(frames.min()), int(frames.max())
    pts = np.full((last - first + 1, poses.shape[1], 3), np.nan)
    xyz = poses[..., :3].astype(np.float64)
    seen = (poses[..., 3] > 0) & np.isfinite(xyz).all(-1)
    pts[frames - first] = np.where(seen[..., None], xyz, np.nan)
    return MarkerTrack(track_id=int(track_id), names=poses3d.joint_names, points=pts,
                       t_ns=poses3d.t_ns[first:last + 1].copy(), t0_ns=int(poses3d.t_ns[0]), fps=poses3d.fps,
                       frame_numbers=np.arange(first, last + 1, dtype=np.int64) + 1, first_frame=first)


def resample_markers(track: MarkerTrack, fps: float) -> MarkerTrack:
    """The track at ``fps`` from its first frame's time (linear interpolation on the frames' times)."""
    if not (np.isfinite(fps) and fps > 0):
        raise MarkerExportError(f"fps must be a positive number, got {fps!r}")
    if abs(fps - track.fps) <= 1e-9 * track.fps:
        return track
    if track.num_frames == 1:
        times = track.t_ns.copy()
    else:
        if not (np.diff(track.t_ns) > 0).all():
            raise MarkerExportError(f"track {track.track_id}: frame times do not increase; cannot resample")
        times = resample_times(track.t_ns, fps)
    i0, i1, w = bracket(track.t_ns, times)
    pts = (1 - w)[:, None, None] * track.points[i0] + w[:, None, None] * track.points[i1]
    start = 1 + int(round((times[0] - track.t0_ns) / 1e9 * fps))
    return MarkerTrack(track_id=track.track_id, names=track.names, points=pts, t_ns=times, t0_ns=track.t0_ns,
                       fps=float(fps), frame_numbers=start + np.arange(len(times), dtype=np.int64),
                       first_frame=track.first_frame)


def to_axes(points: np.ndarray, up: str) -> np.ndarray:
    """World points [..., 3] in the file's axes: "y" -> TRC/OpenSim's Y up (world (Y, Z, X)), "z" -> as is."""
    if up not in UP_AXES:
        raise MarkerExportError(f"up axis {up!r}; use one of {', '.join(UP_AXES)}")
    return world_to_trc(points) if up == "y" else np.asarray(points)


def write_track_trc(path: str | Path, track: MarkerTrack, *, up: str = "y", units: str = "m") -> Path:
    """Write the track as a TRC (``rigs.trc_file.write_trc``) in ``up`` axes and ``units`` (m, cm or mm)."""
    if units not in UNITS_PER_METRE:
        raise MarkerExportError(f"units {units!r}; use one of {', '.join(UNITS_PER_METRE)}")
    return write_trc(path, to_axes(track.points, up), track.names, track.fps, frame_numbers=track.frame_numbers,
                     times=track.times, units=units)


def write_track_c3d(path: str | Path, track: MarkerTrack, *, up: str = "z", units: str = "mm") -> Path:
    """Write the track as a C3D (ezc3d): points in ``units`` (mm customary, POINT:UNITS set), ``up`` axes,
    rate POINT:RATE, labels the joint names, first frame the session frame number of the track's start."""
    import ezc3d

    if units not in UNITS_PER_METRE:
        raise MarkerExportError(f"units {units!r}; use one of {', '.join(UNITS_PER_METRE)}")
    path = Path(path)
    pts = to_axes(track.points, up) * UNITS_PER_METRE[units]  # [T, M, 3]
    c3d = ezc3d.c3d()
    point = c3d["parameters"]["POINT"]
    point["RATE"]["value"] = [float(track.fps)]
    point["LABELS"]["value"] = list(track.names)
    point["DESCRIPTIONS"]["value"] = [f"track {track.track_id} keypoint {n}" for n in track.names]
    point["UNITS"]["value"] = [units]
    data = np.ones((4, len(track.names), track.num_frames))
    data[:3] = np.transpose(pts, (2, 1, 0))  # ezc3d: [XYZ1, markers, frames]; NaN -> residual -1 on write
    c3d["data"]["points"] = data
    c3d.add_parameter("POINT", "X_SCREEN", ["+X"])
    c3d.add_parameter("POINT", "Y_SCREEN", ["+Y" if up == "y" else "+Z"])
    first = int(track.frame_numbers[0])
    c3d.add_parameter("MOCAP", "FIRST_FRAME", [float(first)])  # exact to 2**24; the header holds 16 bits only
    c3d.add_parameter("MOCAP", "TRACK_ID", [float(track.track_id)])
    if first + track.num_frames - 1 <= _C3D_HEADER_MAX_FRAME:
        c3d["header"]["points"]["first_frame"] = first - 1  # ezc3d counts from 0, the file from 1
    path.parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))
    return path
