"""caliscope's tracked-point CSVs: ``xy_<TRACKER>.csv`` (2D per camera) and ``xyz_<TRACKER>.csv`` (3D).

``xy_*.csv`` has one row per camera (``port``), synchronised frame (``sync_index``) and landmark
(``point_id``): ``sync_index, port, frame_index, frame_time, point_id, img_loc_x, img_loc_y`` (plus board
coordinates ``obj_loc_*`` for ChArUco corners). ``xyz_*.csv`` has ``sync_index, point_id, x_coord, y_coord,
z_coord`` (metres, caliscope's world) after an unnamed index column.

Both are read into arrays over the union of sync indices (rows) and point ids (columns, sorted); a point a
camera did not see is NaN with score 0, one it saw has score 1 (caliscope keeps no detector score). Camera
names are ``cam_<port>``, as ``rigs.formats.load_rig`` names the cameras of caliscope's
``camera_array.toml``. Time: each sync index gets the mean ``frame_time`` (seconds) of the cameras that saw
it, as int64 ns.

For the HOLISTIC tracker, point ids 0-32 are MediaPipe's 33 pose landmarks in order (our ``mediapipe33``),
100+ and 200+ the hands and 500+ face landmarks; ``caliscope_keypoints`` keeps the pose landmarks as
``Keypoints2DSequence``s for the rest of the pipeline.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigs.keypoint_files import Keypoints2DSequence
from rigs.skeletons import get_skeleton

XY_COLUMNS = ("sync_index", "port", "frame_index", "frame_time", "point_id", "img_loc_x", "img_loc_y")
XYZ_COLUMNS = ("sync_index", "point_id", "x_coord", "y_coord", "z_coord")


class CaliscopeCsvError(ValueError):
    """A caliscope CSV that lacks its columns or holds values that are not numbers."""


@dataclass(frozen=True, eq=False)
class CaliscopePoints2D:
    """Every camera's 2D points of an ``xy_*.csv`` on the common grid of sync indices x point ids."""

    keypoints: dict[str, np.ndarray]  # camera -> float32 [T, 1, J, 3] (x, y, score)
    frame_index: dict[str, np.ndarray]  # camera -> int64 [T]: the camera's own frame, -1 where it has none
    sync_index: np.ndarray  # int64 [T]
    point_ids: np.ndarray  # int64 [J]
    t_ns: np.ndarray  # int64 [T]: mean frame_time of the cameras that saw the set

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.keypoints)


@dataclass(frozen=True, eq=False)
class CaliscopePoints3D:
    """The 3D points of an ``xyz_*.csv``."""

    points: np.ndarray  # float64 [T, J, 3] metres, NaN where missing
    sync_index: np.ndarray  # int64 [T]
    point_ids: np.ndarray  # int64 [J]


def _read_columns(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    """The named columns of a CSV as float64 [N, len(columns)]."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            lacking = [c for c in columns if c not in header]
            if lacking:
                raise CaliscopeCsvError(f"{path}: no column {', '.join(lacking)} (it has {', '.join(header)}); "
                                        f"give caliscope's xy_<TRACKER>.csv or xyz_<TRACKER>.csv")
            where = [header.index(c) for c in columns]
            rows = [[row[i] for i in where] for row in reader if row]
    except OSError as err:
        raise CaliscopeCsvError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        return np.array(rows, np.float64).reshape(-1, len(columns))
    except ValueError:
        raise CaliscopeCsvError(f"{path}: a value in {', '.join(columns)} is not a number") from None


def read_caliscope_xy(path: str | Path) -> CaliscopePoints2D:
    """Read ``xy_<TRACKER>.csv`` into per-camera keypoints [T, 1, J, 3] on the union of sync indices and ids."""
    path = Path(path)
    table = _read_columns(path, XY_COLUMNS)
    sync, port, frame, ftime, pid, x, y = table.T
    syncs, row = np.unique(sync.astype(np.int64), return_inverse=True)
    ids, col = np.unique(pid.astype(np.int64), return_inverse=True)
    ports, cam = np.unique(port.astype(np.int64), return_inverse=True)
    T, J = len(syncs), len(ids)
    kp = np.full((len(ports), T, 1, J, 3), np.nan, np.float32)
    kp[..., 2] = 0
    kp[cam, row, 0, col] = np.stack([x, y, np.ones_like(x)], -1)
    frames = np.full((len(ports), T), -1, np.int64)
    frames[cam, row] = frame.astype(np.int64)
    times = np.full((len(ports), T), np.nan)
    times[cam, row] = ftime
    with np.errstate(invalid="ignore"):
        mean_t = np.nansum(times, 0) / np.isfinite(times).sum(0)
    names = [f"cam_{p}" for p in ports]
    return CaliscopePoints2D(keypoints={n: kp[i] for i, n in enumerate(names)},
                             frame_index={n: frames[i] for i, n in enumerate(names)},
                             sync_index=syncs, point_ids=ids, t_ns=np.round(mean_t * 1e9).astype(np.int64))


def read_caliscope_xyz(path: str | Path) -> CaliscopePoints3D:
    """Read ``xyz_<TRACKER>.csv`` into points [T, J, 3] on the union of sync indices and point ids."""
    path = Path(path)
    table = _read_columns(path, XYZ_COLUMNS)
    syncs, row = np.unique(table[:, 0].astype(np.int64), return_inverse=True)
    ids, col = np.unique(table[:, 1].astype(np.int64), return_inverse=True)
    points = np.full((len(syncs), len(ids), 3), np.nan)
    points[row, col] = table[:, 2:]
    return CaliscopePoints3D(points, syncs, ids)


def holistic_to_mediapipe33(values: np.ndarray, point_ids: np.ndarray, *, scored: bool) -> np.ndarray:
    """HOLISTIC values [..., J, C] with their point ids [J] -> MediaPipe's 33 pose landmarks [..., 33, C]
    (ids 0-32). Landmarks the file lacks are NaN; with ``scored`` the last channel is a score, 0 there."""
    values, point_ids = np.asarray(values), np.asarray(point_ids)
    out = np.full(values.shape[:-2] + (33, values.shape[-1]), np.nan, np.result_type(values.dtype, np.float32))
    if scored:
        out[..., -1] = 0
    pose = np.flatnonzero((point_ids >= 0) & (point_ids < 33))
    out[..., point_ids[pose], :] = values[..., pose, :]
    return out


def caliscope_keypoints(points: CaliscopePoints2D) -> dict[str, Keypoints2DSequence]:
    """The HOLISTIC pose landmarks of every camera as mediapipe33 ``Keypoints2DSequence``s (rows: sync sets)."""
    name = get_skeleton("mediapipe33").name
    return {cam: Keypoints2DSequence(holistic_to_mediapipe33(kp, points.point_ids, scored=True),
                                     points.sync_index, name, points.t_ns)
            for cam, kp in points.keypoints.items()}
