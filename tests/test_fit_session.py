"""Per-track fitting inputs from poses3d: spans, gaps, skipped tracks with reasons, 2D views per track."""

import numpy as np
import pytest

from fitting.fit_session import FitInputError, TrackInput, track_inputs, views_for_track
from rigs.formats import load_rig
from rigs.poses3d_file import Poses3D
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton

SK = get_skeleton("body25")


def _poses3d(T: int = 40) -> Poses3D:
    """Three tracks: 0 seen throughout with a gap, 1 seen in 3 frames only, 2 NaN everywhere it exists."""
    perf = simulate_performers(2, T / 30, 30.0, seed=1)
    kp = keypoints3d(perf, SK)  # [T, 2, J, 4]
    poses = np.full((T, 3, SK.num_joints, 4), np.nan, np.float32)
    poses[..., 3] = 0
    ids = np.full((T, 3), -1, np.int32)
    poses[:, 0], ids[:, 0] = kp[:, 0], 0
    poses[10:14, 0] = np.array([np.nan, np.nan, np.nan, 0])  # occluded: slot keeps its id, empty pose
    poses[20:23, 1], ids[20:23, 1] = kp[20:23, 1], 1
    ids[5:30, 2] = 2  # alive but never seen
    return Poses3D(poses, ids, np.arange(T, dtype=np.int64) * 33_333_333, 30.0, SK.name, SK.joints)


def test_track_inputs_span_first_to_last_frame_and_skip_with_reasons():
    p = _poses3d()
    inputs, skipped = track_inputs(p)
    assert [t.track_id for t in inputs] == [0]
    t0 = inputs[0]
    assert t0.first_frame == 0 and t0.keypoints.shape == (40, SK.num_joints, 4)
    assert np.all(t0.keypoints[10:14, :, 3] == 0) and np.isnan(t0.keypoints[10:14, :, :3]).all()
    np.testing.assert_array_equal(t0.t_ns, p.t_ns)
    reasons = {s.track_id: s.reason for s in skipped}
    assert set(reasons) == {1, 2}
    assert "3 frames" in reasons[1] and "--min-frames 3" in reasons[1]
    assert "no 3D keypoints" in reasons[2]
    inputs, skipped = track_inputs(p, min_frames=3)
    assert [t.track_id for t in inputs] == [0, 1]
    assert inputs[1].first_frame == 20 and inputs[1].keypoints.shape[0] == 3


def test_track_inputs_unknown_track_is_an_error_naming_the_tracks():
    with pytest.raises(FitInputError, match=r"--track 7: no such track .*tracks: 0, 1, 2"):
        track_inputs(_poses3d(), tracks=[7])


def test_views_for_track_picks_each_cameras_detection_of_that_person():
    rig = load_rig("studio-4")
    T = 12
    perf = simulate_performers(2, T / 30, 30.0, seed=4)
    kp3 = keypoints3d(perf, SK)  # [T, 2, J, 4]
    proj = rig.project(kp3[..., :3])  # [C, T, 2, J, 2]
    det = np.concatenate([proj, np.ones(proj.shape[:-1] + (1,))], -1)
    det = det[:, :, ::-1].copy()  # person 1 first: the order of detections is arbitrary
    det[2, 5] = np.array([np.nan, np.nan, 0.0])  # camera 2 sees nobody in frame 5
    t_ns = np.arange(T, dtype=np.int64) * 33_333_333
    track = TrackInput(0, 0, kp3[:, 0].astype(np.float64), t_ns)
    views = views_for_track(rig, det, t_ns, track)
    assert views.shape == (len(rig), T, SK.num_joints, 3)
    ok = np.ones((len(rig), T), bool)
    ok[2, 5] = False
    np.testing.assert_allclose(views[ok][..., :2], proj[:, :, 0][ok], atol=1e-6)
    assert np.all(views[2, 5, :, 2] == 0)
