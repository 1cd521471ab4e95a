import numpy as np
import pytest

from reconstruction.filters import (
    FILLED_SCORE_FACTOR,
    FilterError,
    OneEuroFilter,
    butterworth_zero_phase,
    fill_gaps,
    smooth_tracks,
)
from rigs.sim.performers import keypoints3d, simulate_performers

FPS = 30.0


def sines(freq_hz: float, seconds: float = 10.0, amplitude: float = 0.1) -> np.ndarray:
    """[T, 2, 3]: two joints moving as sines of ``freq_hz`` on every axis."""
    t = np.arange(int(seconds * FPS)) / FPS
    wave = amplitude * np.sin(2 * np.pi * freq_hz * t)
    return np.broadcast_to(wave[:, None, None], (t.size, 2, 3)).copy()


def test_butterworth_passes_slow_motion_without_lag_and_removes_fast_noise():
    slow = sines(1.0)
    fast = sines(15.0 - 1e-3, amplitude=0.02)  # just under Nyquist at 30 fps
    out = butterworth_zero_phase(slow + fast, FPS, cutoff_hz=6.0)
    inner = slice(30, -30)
    # 1 Hz passes at full amplitude and zero phase: the output sits on the input sine, no shift
    assert np.abs(out - slow)[inner].max() < 0.002
    lag = np.argmax(np.correlate(out[inner, 0, 0], slow[inner, 0, 0], "full")) - (out[inner].shape[0] - 1)
    assert lag == 0
    # 15 Hz is attenuated by far more than 20 dB
    assert np.std((out - slow)[inner]) < 0.02 * np.std(fast[inner])


def test_butterworth_filters_each_run_and_keeps_gaps():
    rng = np.random.default_rng(0)
    x = sines(0.5) + rng.normal(0, 0.01, (300, 2, 3))
    x[100:140, 0] = np.nan  # a long gap in joint 0 only
    x[200:202] = np.nan  # a short one in both
    x[290:293] = np.nan  # leaves a 7-sample run at the end
    out = butterworth_zero_phase(x, FPS, cutoff_hz=3.0)
    assert np.array_equal(np.isnan(out), np.isnan(x))
    truth = sines(0.5)
    finite = np.isfinite(x).all(-1)
    assert np.sqrt(np.mean((out - truth)[finite] ** 2)) < 0.6 * np.sqrt(np.mean((x - truth)[finite] ** 2))
    # an isolated short stretch is left as it is
    y = x.copy()
    y[:] = np.nan
    y[10:13] = x[10:13]
    np.testing.assert_array_equal(butterworth_zero_phase(y, FPS), y)
    # runs shorter than the filter's usual padding are still filtered, without NaN or blow-up
    z = np.full_like(x, np.nan)
    z[20:28] = x[20:28]
    short = butterworth_zero_phase(z, FPS)[20:28]
    assert np.isfinite(short).all() and np.abs(short - truth[20:28]).max() < 0.03


def test_fill_gaps_bridges_short_gaps_within_millimetres_of_smooth_motion_and_never_extrapolates():
    truth = sines(0.5, amplitude=0.3) + sines(0.2, amplitude=0.5)  # smooth motion up to 1.6 m/s
    x = truth.copy()
    x[:5, 0] = np.nan  # start: nothing before, stays NaN
    x[50:58, 0] = np.nan  # 8 frames: filled
    x[100:103] = np.nan  # 3 frames, both joints: filled
    x[150:170, 1] = np.nan  # 20 frames: too long, stays NaN
    x[-4:, 1] = np.nan  # end: nothing after, stays NaN
    out = fill_gaps(x, max_gap=8)
    assert np.isnan(out[:5, 0]).all() and np.isnan(out[150:170, 1]).all() and np.isnan(out[-4:, 1]).all()
    assert np.isfinite(out[50:58, 0]).all() and np.isfinite(out[100:103]).all()
    assert np.abs(out[50:58, 0] - truth[50:58, 0]).max() < 0.003
    assert np.abs(out[100:103] - truth[100:103]).max() < 0.001
    known = np.isfinite(x)
    np.testing.assert_array_equal(out[known], x[known])
    assert np.isnan(fill_gaps(x, max_gap=7)[50:58, 0]).all()


def test_fill_gaps_on_a_walking_body():
    perf = simulate_performers(1, 10, FPS, seed=3)
    truth = keypoints3d(perf, "body25")[:, 0, :, :3].astype(np.float64)
    x = truth.copy()
    x[100:108] = np.nan  # the whole body unseen for 8 frames (0.27 s)
    err = np.linalg.norm(fill_gaps(x, max_gap=8)[100:108] - truth[100:108], axis=-1)
    assert np.median(err) < 0.015 and np.percentile(err, 90) < 0.05  # swinging hands and feet are the worst


def test_one_euro_holds_still_joints_steady_and_follows_moving_ones_closely():
    rng = np.random.default_rng(1)
    t_ns = (np.arange(600) * 1e9 / FPS).astype(np.int64)
    noise = rng.normal(0, 0.02, (600, 1, 3))
    still = OneEuroFilter()
    jitter = np.std(np.stack([still(t, x) for t, x in zip(t_ns, noise, strict=True)])[100:])
    assert jitter < 0.6 * 0.02
    ramp = np.zeros((600, 1, 3))
    ramp[:, 0, 0] = t_ns * 1e-9  # 1 m/s
    moving = OneEuroFilter()
    out = np.stack([moving(t, x) for t, x in zip(t_ns, ramp, strict=True)])
    lag_s = np.mean(ramp[300:, 0, 0] - out[300:, 0, 0])  # metres behind at 1 m/s = seconds of lag
    assert 0 < lag_s < 0.04


def test_one_euro_restarts_a_missing_joint_and_refuses_time_going_back():
    f = OneEuroFilter()
    x = np.zeros((2, 3))
    f(0, x)
    y = x.copy()
    y[1] = np.nan
    assert np.isnan(f(33_000_000, y)[1]).all()
    z = np.full((2, 3), 5.0)
    out = f(66_000_000, z)
    assert np.all(out[1] == 5.0) and np.all(out[0] < 5.0)  # the restarted joint starts where it is seen
    with pytest.raises(FilterError, match="increasing time"):
        f(66_000_000, z)
    f.reset()
    np.testing.assert_array_equal(f(0, z), z)


def test_smooth_tracks_fills_and_filters_each_track_and_marks_filled_scores():
    perf = simulate_performers(2, 6, FPS, seed=5)
    truth = keypoints3d(perf, "body25")
    rng = np.random.default_rng(2)
    poses = truth.copy()
    poses[..., :3] += rng.normal(0, 0.01, poses[..., :3].shape)
    poses[..., 3] = 0.9
    ids = np.tile(np.array([4, 7], np.int32), (poses.shape[0], 1))
    ids[100:, :] = ids[100:, ::-1]  # the two tracks swap slots halfway: followed by id, not slot
    poses[100:] = poses[100:, ::-1]
    poses[40:45, 0] = np.nan  # 5 frames of track 4 unseen: filled (max gap 0.25 s = 8 frames)
    poses[40:45, 0, :, 3] = 0
    poses[120:140, 1, 2] = np.nan  # 20 frames of one joint of track 4: kept missing
    poses[120:140, 1, 2, 3] = 0
    for method in ("butterworth", "one-euro", "none"):
        out = smooth_tracks(poses, ids, FPS, method=method)
        assert out.shape == poses.shape and out.dtype == np.float32
        assert np.isfinite(out[40:45, 0]).all()
        np.testing.assert_allclose(out[40:45, 0, :, 3], FILLED_SCORE_FACTOR * 0.9)
        assert np.isnan(out[120:140, 1, 2, :3]).all() and np.all(out[120:140, 1, 2, 3] == 0)
        assert np.all(out[:40, :, :, 3] == np.float32(0.9))
        track4 = np.where((ids == 4)[..., None, None], out, 0).sum(1)
        err = np.linalg.norm(track4[:100, :, :3] - truth[:100, 0, :, :3], axis=-1)
        assert np.nanmedian(err) < 0.02  # raw: 1.5 cm
    raw_err = np.nanmedian(np.linalg.norm(poses[:100, 1, :, :3] - truth[:100, 1, :, :3], axis=-1))
    smooth_err = np.nanmedian(np.linalg.norm(smooth_tracks(poses, ids, FPS)[:100, 1, :, :3] - truth[:100, 1, :, :3],
                                             axis=-1))
    assert smooth_err < 0.8 * raw_err


def test_smooth_tracks_leaves_empty_slots_alone_and_refuses_bad_input():
    poses = np.full((10, 2, 3, 4), np.nan, np.float32)
    poses[..., 3] = 0
    poses[:, 0, :, :3] = 1.0
    poses[:, 0, :, 3] = 1.0
    ids = np.full((10, 2), -1, np.int32)
    ids[:, 0] = 3
    out = smooth_tracks(poses, ids, FPS)
    np.testing.assert_allclose(out[:, 0], poses[:, 0], atol=1e-6)
    assert np.isnan(out[:, 1, :, :3]).all()
    with pytest.raises(FilterError, match="unknown method"):
        smooth_tracks(poses, ids, FPS, method="kalman")
    with pytest.raises(FilterError, match="one slot"):
        smooth_tracks(poses, np.full((10, 2), 3, np.int32), FPS)
    with pytest.raises(FilterError, match="Nyquist"):
        butterworth_zero_phase(poses[:, 0, :, :3], FPS, cutoff_hz=20)
    with pytest.raises(FilterError, match="max_gap"):
        fill_gaps(poses[:, 0, :, :3], -1)
