"""Tests for fitting/export_markers.py: a poses3d track as TRC (OpenSim) and C3D (ezc3d), read back."""

import numpy as np
import pytest

from fitting.export_markers import (
    MarkerExportError,
    marker_track,
    resample_markers,
    track_ids,
    write_track_c3d,
    write_track_trc,
)
from rigs.poses3d_file import Poses3D
from rigs.skeletons import get_skeleton
from rigs.trc_file import read_trc, trc_to_world

ezc3d = pytest.importorskip("ezc3d", reason="ezc3d is a dependency of mocap: pip install -e .")

NAMES = get_skeleton("coco17").joints
T0_NS = 7 * 10**12


def session_poses(T: int = 16, fps: float = 30.0, seed: int = 0) -> Poses3D:
    """Two tracks: id 7 over frames 3..12 with frames 6 and 7 absent and left_wrist unseen in frame 9;
    id 1 in every frame. Coordinates in metres around a person standing 2 m from the origin."""
    rng = np.random.default_rng(seed)
    J = len(NAMES)
    poses = np.full((T, 2, J, 4), np.nan, np.float32)
    poses[..., 3] = 0
    ids = np.full((T, 2), -1, np.int32)
    xyz = rng.normal([2.0, -1.0, 1.0], 0.4, (T, 2, J, 3))
    for f in range(T):
        poses[f, 1, :, :3], poses[f, 1, :, 3], ids[f, 1] = xyz[f, 1], 0.9, 1
        if 3 <= f <= 12 and f not in (6, 7):
            poses[f, 0, :, :3], poses[f, 0, :, 3], ids[f, 0] = xyz[f, 0], 0.8, 7
    wrist = NAMES.index("left_wrist")
    if T > 9:
        poses[9, 0, wrist] = [1.0, 1.0, 1.0, 0.0]  # a point with score 0 is not an observation
    t_ns = T0_NS + np.round(np.arange(T) * 1e9 / fps).astype(np.int64)
    return Poses3D(poses, ids, t_ns, fps, "coco17", NAMES)


def test_track_runs_first_to_last_frame_with_gaps_missing():
    p = session_poses()
    assert track_ids(p) == [1, 7]
    tr = marker_track(p, 7)
    assert tr.first_frame == 3 and tr.num_frames == 10 and tr.names == NAMES
    assert list(tr.frame_numbers) == list(range(4, 14))  # 1-based session frame numbers
    assert np.allclose(tr.times, np.arange(3, 13) / 30)
    missing = ~np.isfinite(tr.points).all(-1)
    assert missing[3:5].all() and not missing[[0, 1, 2, 5, 7, 8, 9]].any()
    assert list(np.flatnonzero(missing[6])) == [NAMES.index("left_wrist")]
    assert np.array_equal(tr.points[0], p.poses[3, 0, :, :3].astype(np.float64))
    with pytest.raises(MarkerExportError, match="track 5: not in poses3d.npz"):
        marker_track(p, 5)


@pytest.mark.parametrize(("up", "units"), [("y", "m"), ("z", "cm")])
def test_trc_round_trip(tmp_path, up, units):
    p = session_poses()
    tr = marker_track(p, 7)
    data = read_trc(write_track_trc(tmp_path / "track_7.trc", tr, up=up, units=units))
    assert data.names == NAMES and data.fps == 30.0 and data.num_frames == 10
    assert list(data.frame_numbers) == list(range(4, 14)) and np.allclose(data.times, np.arange(3, 13) / 30)
    world = trc_to_world(data.markers) if up == "y" else data.markers
    ok = np.isfinite(tr.points)
    assert np.array_equal(np.isfinite(world), ok)
    assert np.abs(world[ok] - tr.points[ok]).max() < 1e-9
    if up == "y":  # OpenSim's Y up: the height (world z, about 1 m here) is the file's Y
        assert abs(np.nanmean(data.markers[..., 1]) - 1.0) < 0.2
    header = (tmp_path / "track_7.trc").read_text().splitlines()[2].split("\t")
    assert header[4] == units and header[6] == "4"  # Units, OrigDataStartFrame


@pytest.mark.parametrize("up", ["z", "y"])
def test_c3d_round_trip_in_millimetres(tmp_path, up):
    p = session_poses()
    tr = marker_track(p, 7)
    path = write_track_c3d(tmp_path / "track_7.c3d", tr, up=up)
    c = ezc3d.c3d(str(path))
    params = c["parameters"]["POINT"]
    assert params["UNITS"]["value"] == ["mm"] and list(params["LABELS"]["value"]) == list(NAMES)
    assert float(params["RATE"]["value"][0]) == 30.0
    assert params["Y_SCREEN"]["value"] == (["+Z"] if up == "z" else ["+Y"])
    assert c["header"]["points"]["first_frame"] == 3 and c["header"]["points"]["last_frame"] == 12  # file: 4..13
    assert float(c["parameters"]["MOCAP"]["FIRST_FRAME"]["value"][0]) == 4
    pts = np.transpose(c["data"]["points"][:3], (2, 1, 0)) / 1000.0  # [T, M, 3] metres
    world = pts if up == "z" else trc_to_world(pts)
    ok = np.isfinite(tr.points)
    assert np.array_equal(np.isfinite(world), ok)  # missing markers come back missing
    assert np.abs(world[ok] - tr.points[ok]).max() < 1e-4  # 0.1 mm


def test_c3d_first_frame_past_the_16_bit_header(tmp_path):
    p = session_poses(T=4)
    tr = marker_track(p, 1)
    far = type(tr)(**{**tr.__dict__, "frame_numbers": tr.frame_numbers + 70_000, "first_frame": 70_000})
    c = ezc3d.c3d(str(write_track_c3d(tmp_path / "far.c3d", far, units="m")))
    assert float(c["parameters"]["MOCAP"]["FIRST_FRAME"]["value"][0]) == 70_001
    assert c["header"]["points"]["first_frame"] == 0  # not a wrapped-around number
    assert c["parameters"]["POINT"]["UNITS"]["value"] == ["m"]
    assert np.abs(np.transpose(c["data"]["points"][:3], (2, 1, 0)) - tr.points).max() < 1e-6


def test_resampling_interpolates_and_keeps_missing_missing():
    p = session_poses()
    tr = marker_track(p, 7)
    up = resample_markers(tr, 60.0)
    assert up.num_frames == 19 and up.fps == 60.0
    assert list(up.frame_numbers[:2]) == [7, 8]  # 3/30 s = frame 6 at 60 fps -> number 7
    assert np.allclose(up.times, 0.1 + np.arange(19) / 60)
    assert np.allclose(up.points[0::2][[0, 1, 2]], tr.points[[0, 1, 2]])
    assert np.allclose(up.points[1], (tr.points[0] + tr.points[1]) / 2)
    complete = np.isfinite(up.points).all(axis=(1, 2))  # new frames with every marker: none next to a gap
    assert list(np.flatnonzero(complete)) == [0, 1, 2, 3, 4, 10, 14, 15, 16, 17, 18]
    assert resample_markers(tr, 30.0) is tr
    with pytest.raises(MarkerExportError, match="fps"):
        resample_markers(tr, -1.0)


def test_bad_options():
    tr = marker_track(session_poses(), 1)
    with pytest.raises(MarkerExportError, match="up axis"):
        write_track_trc("/nonexistent/x.trc", tr, up="x")
    with pytest.raises(MarkerExportError, match="units"):
        write_track_c3d("/nonexistent/x.c3d", tr, units="inch")
