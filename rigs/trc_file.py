"""TRC marker files (OpenSim / Pose2Sim 3D output): reading, writing, and their axes and marker names.

A TRC is tab-separated text: a ``PathFileType`` line, a line of header keys (DataRate, CameraRate,
NumFrames, NumMarkers, Units, OrigDataRate, OrigDataStartFrame, OrigNumFrames) and their values, then the
marker names (each followed by two empty cells), the ``X1 Y1 Z1 X2 ...`` line, and one row per frame:
frame number, time (s), then x, y, z per marker. Empty cells (or ``nan``) are missing markers. Units are
``m`` or ``mm`` (``cm`` too); ``read_trc`` returns metres and ``write_trc`` writes metres by default.

Axes: OpenSim, and so Pose2Sim's TRC output, is **Y up**. Pose2Sim writes its Z-up calibration world as
TRC (X, Y, Z) = world (Y, Z, X) (verified on its demo: the reference TRC lies within about 1-6 cm of a
triangulation of its OpenPose JSON with ``Calib_qualisys.toml`` after this mapping, and metres off without
it). ``trc_to_world`` and ``world_to_trc`` convert; the mapping is a cyclic permutation of the axes, a
proper rotation, so nothing is mirrored.

Marker names: Pose2Sim's (``RHip``, ``LBigToe``, ``Neck``, ``Head``) become our joint names
(``right_hip``, ``left_big_toe``, ``neck``, ``head_top``) with ``marker_joint_name``; names already in
our style (caliscope writes ``left_ankle``) stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigs.poses3d_file import Poses3D
from rigs.skeletons import get_skeleton, skeleton_names

_UNITS = {"m": 1.0, "mm": 0.001, "cm": 0.01}
_HEADER_KEYS = ("DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                "OrigDataStartFrame", "OrigNumFrames")


class TrcFileError(ValueError):
    """A TRC file that cannot be read or data that cannot be written as one; names the file and the fix."""


@dataclass(frozen=True, eq=False)
class TrcData:
    """The markers of one TRC file in metres, in the file's own axes."""

    markers: np.ndarray  # float64 [T, M, 3] metres, NaN where missing
    names: tuple[str, ...]  # [M] marker names as in the file
    fps: float  # DataRate
    frame_numbers: np.ndarray  # int64 [T] the Frame# column
    times: np.ndarray  # float64 [T] seconds, the Time column

    @property
    def num_frames(self) -> int:
        return self.markers.shape[0]


def read_trc(path: str | Path) -> TrcData:
    """Read a TRC file; coordinates converted to metres from the header's Units."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise TrcFileError(f"{path}: cannot be read ({err.strerror}); give an existing .trc file") from None
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise TrcFileError(f"{path}: not a TRC file (the first line should start with 'PathFileType')")
    keys = [k.strip() for k in lines[1].split("\t")]
    values = [v.strip() for v in lines[2].split("\t")]
    header = dict(zip(keys, values, strict=False))
    units = header.get("Units", "m")
    if units not in _UNITS:
        raise TrcFileError(f"{path}: units {units!r} in the header; expected one of {', '.join(_UNITS)}")
    try:
        fps = float(header["DataRate"])
        num_markers = int(header["NumMarkers"])
    except (KeyError, ValueError):
        raise TrcFileError(f"{path}: the header lacks a numeric DataRate or NumMarkers (line 3: {lines[2]!r}); "
                           f"write the standard TRC header") from None
    names = tuple(n.strip() for n in lines[3].split("\t")[2:] if n.strip())
    if len(names) != num_markers:
        raise TrcFileError(f"{path}: the header says {num_markers} markers but line 4 names {len(names)}")
    width = 2 + 3 * num_markers
    rows = []
    for n, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        cells = line.split("\t")
        cells += [""] * (width - len(cells))  # trailing missing markers may be cut off
        try:
            rows.append([float(c) if c.strip() else np.nan for c in cells[:width]])
        except ValueError:
            raise TrcFileError(f"{path}: line {n} holds a value that is not a number") from None
    table = np.array(rows, np.float64).reshape(-1, width)
    if not np.isfinite(table[:, 0]).all():
        raise TrcFileError(f"{path}: a data row without a frame number")
    return TrcData(markers=table[:, 2:].reshape(-1, num_markers, 3) * _UNITS[units], names=names, fps=fps,
                   frame_numbers=table[:, 0].astype(np.int64), times=table[:, 1].copy())


def write_trc(path: str | Path, markers: np.ndarray, names: Sequence[str], fps: float, *,
              frame_numbers: np.ndarray | None = None, times: np.ndarray | None = None, units: str = "m") -> Path:
    """Write markers [T, M, 3] (metres, in the axes wanted in the file: see ``world_to_trc``) as a TRC.

    Frame numbers default to 1..T (OpenSim counts from 1) and times to (frame - 1) / fps; missing markers
    (NaN) are written as empty cells. Values are written with full precision, so ``read_trc`` gets them back."""
    path = Path(path)
    markers = np.asarray(markers, np.float64)
    names = tuple(str(n) for n in names)
    if markers.ndim != 3 or markers.shape[-1] != 3:
        raise TrcFileError(f"write_trc: markers must be [T, M, 3], got shape {markers.shape}")
    T, M, _ = markers.shape
    if len(names) != M:
        raise TrcFileError(f"write_trc: {len(names)} names for {M} markers")
    if any(not n or "\t" in n for n in names):
        raise TrcFileError("write_trc: marker names must be non-empty and free of tabs")
    if units not in _UNITS:
        raise TrcFileError(f"write_trc: units {units!r}; use one of {', '.join(_UNITS)}")
    if not fps > 0:
        raise TrcFileError(f"write_trc: fps must be > 0, got {fps}")
    frames = np.arange(1, T + 1) if frame_numbers is None else np.asarray(frame_numbers, np.int64)
    secs = (frames - 1) / fps if times is None else np.asarray(times, np.float64)
    if frames.shape != (T,) or secs.shape != (T,):
        raise TrcFileError(f"write_trc: frame_numbers and times must have {T} entries")
    values = markers / _UNITS[units]
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "\t".join(_HEADER_KEYS),
        "\t".join(map(str, (f"{fps:g}", f"{fps:g}", T, M, units, f"{fps:g}", int(frames[0]) if T else 1, T))),
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, M + 1)),
        "",
    ]
    flat = values.reshape(T, -1)
    for t in range(T):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in flat[t]]
        lines.append(f"{int(frames[t])}\t{float(secs[t])!r}\t" + "\t".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def trc_to_world(points: np.ndarray) -> np.ndarray:
    """Y-up TRC coordinates [..., 3] -> our Z-up world: world (X, Y, Z) = TRC (Z, X, Y)
    (Pose2Sim writes TRC (X, Y, Z) = world (Y, Z, X))."""
    points = np.asarray(points)
    return points[..., [2, 0, 1]]


def world_to_trc(points: np.ndarray) -> np.ndarray:
    """Our Z-up world [..., 3] -> Y-up TRC coordinates: TRC (X, Y, Z) = world (Y, Z, X); inverse of trc_to_world."""
    points = np.asarray(points)
    return points[..., [1, 2, 0]]


_SPECIAL = {"head": "head_top", "hip": "mid_hip", "midhip": "mid_hip"}


def marker_joint_name(marker: str) -> str:
    """Our joint name for a TRC marker name: ``RHip`` -> ``right_hip``, ``LBigToe`` -> ``left_big_toe``,
    ``Head`` -> ``head_top`` (Pose2Sim's head top), ``Hip`` -> ``mid_hip``; snake_case names stay."""
    side = ""
    m = re.fullmatch(r"([RL])([A-Z].*)", marker)
    if m:
        side, marker = ("right_" if m.group(1) == "R" else "left_"), m.group(2)
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", marker).lower()
    return side + snake if side else _SPECIAL.get(snake, snake)


def trc_to_poses3d(data: TrcData, *, to_world: bool = True) -> Poses3D:
    """One person's markers as a Poses3D (one slot, track id 0): joint names from ``marker_joint_name``,
    coordinates moved into the Z-up world with ``trc_to_world`` (to_world=False: kept as in the file),
    score 1 where a marker exists. ``skeleton`` is the smallest known format that has every joint, else
    ``"markers"``; t_ns from the Time column."""
    joints = tuple(marker_joint_name(n) for n in data.names)
    if len(set(joints)) != len(joints):
        raise TrcFileError(f"two markers map to the same joint name ({', '.join(joints)}); rename them")
    xyz = trc_to_world(data.markers) if to_world else data.markers
    ok = np.isfinite(xyz).all(-1)
    poses = np.concatenate([xyz, ok[..., None].astype(np.float64)], -1)[:, None].astype(np.float32)
    holding = [get_skeleton(s) for s in skeleton_names() if set(joints) <= set(get_skeleton(s).joints)]
    skeleton = min(holding, key=lambda s: s.num_joints).name if holding else "markers"
    t_ns = np.round(data.times * 1e9).astype(np.int64)
    ids = np.where(ok.any(-1), 0, -1)[:, None].astype(np.int32)
    return Poses3D(poses, ids, t_ns, data.fps, skeleton, joints)
