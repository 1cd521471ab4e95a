"""viewer/playback.py without a window: the timeline (play/pause, step, speed, frame from wall-clock time, wrap or
stop at the end) and the window's key and frame handling against a stand-in Visualizer."""

import io

import numpy as np
import pytest

from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from viewer.playback import (
    KEY_DOWN,
    KEY_LEFT,
    KEY_Q,
    KEY_RIGHT,
    KEY_SPACE,
    KEY_UP,
    SPEEDS,
    PlaybackController,
    Timeline,
    has_display,
    run_window,
)
from viewer.scene import ViewerError, load_session_scene


def test_playing_follows_the_wall_clock_and_wraps():
    tl = Timeline(100, 30.0)
    assert tl.update(5.0) == 0  # paused: nothing moves
    tl.play(10.0)
    assert tl.update(10.0) == 0 and tl.update(10.5) == 15 and tl.update(11.0) == 30
    assert tl.update(13.4) == 2  # 102 frames after the start: wrapped
    assert tl.update(16.7) == 1  # 201 frames: wrapped twice
    assert tl.playing
    assert np.isclose(Timeline(100, 30.0, frame=45).time_s, 1.5)


def test_without_loop_it_stops_on_the_last_frame_and_play_restarts():
    tl = Timeline(10, 10.0, loop=False)
    tl.play(0.0)
    assert tl.update(0.55) == 5
    assert tl.update(3.0) == 9 and not tl.playing
    assert tl.update(4.0) == 9
    tl.play(5.0)
    assert tl.frame == 0 and tl.update(5.3) == 3


def test_pause_step_and_speed():
    tl = Timeline(50, 10.0)
    tl.play(0.0)
    tl.pause(1.0)
    assert tl.frame == 10 and not tl.playing and tl.update(9.0) == 10
    tl.toggle(9.0)
    assert tl.playing and tl.update(9.5) == 15
    assert tl.step(+1, 9.5) == 16 and not tl.playing
    assert tl.step(-1, 9.6) == 15
    assert Timeline(50, 10.0).step(-1, 0.0) == 49  # looping wraps backwards
    assert Timeline(50, 10.0, loop=False).step(-1, 0.0) == 0  # else clamps
    tl.play(20.0)
    assert tl.faster(21.0) == 2.0 and tl.frame == 25  # no jump when the speed changes
    assert tl.update(22.0) == 45
    assert tl.slower(22.0) == 1.0 and tl.slower(22.0) == 0.5 and tl.slower(22.0) == 0.25 and tl.slower(22.0) == 0.25
    assert tl.update(26.0) == 5  # 4 s at x0.25 and 10 fps: 10 frames on from 45, wrapped at 50
    for _ in range(10):
        tl.faster(26.0)
    assert tl.speed == max(SPEEDS) == 4.0
    with pytest.raises(ViewerError, match="speed 3"):
        tl.set_speed(3.0, 26.0)
    with pytest.raises(ViewerError, match="no frames"):
        Timeline(0, 30.0)


class _Vis:
    """Records what the controller asks of a Visualizer."""

    def __init__(self):
        self.added, self.updated, self.closed = [], 0, False

    def add_geometry(self, g, reset_bounding_box=True):
        self.added.append(g)

    def update_geometry(self, g):
        self.updated += 1

    def close(self):
        self.closed = True


def test_window_keys_and_frames_without_a_window(tmp_path):
    sk = get_skeleton("body25")
    perf = simulate_performers(2, 0.3, 30.0, seed=2)
    kp = keypoints3d(perf, sk)
    ids = np.tile(np.array([0, 1], np.int32), (9, 1))
    ids[:4, 1] = -1  # the second person from frame 4
    write_poses3d(tmp_path / "poses3d.npz", Poses3D(kp, ids, perf.t_ns, 30.0, sk.name, sk.joints))
    scene = load_session_scene(tmp_path)
    now = [100.0]
    vis, out = _Vis(), io.StringIO()
    ctl = PlaybackController(scene, vis, clock=lambda: now[0], out=out)
    assert ctl.timeline.frame == scene.busiest_frame() == 4
    assert len(vis.added) == len(ctl.window.static) + 2  # grid/axes (no rig here), then bones and text
    assert len(ctl.window.skeletons.lines) == 2 * len(sk.bones)
    assert len(ctl.window.text.vertices) > 0  # the header, standing at the grid's corner, and the ids
    assert "frame 4 / 8" in out.getvalue()
    assert ctl.key(KEY_RIGHT) and ctl.timeline.frame == 5
    assert ctl.key(KEY_LEFT) and ctl.key(KEY_LEFT) and ctl.timeline.frame == 3
    assert len(ctl.window.skeletons.lines) == len(sk.bones)  # one person in frame 3
    assert ctl.key(KEY_UP) and ctl.timeline.speed == 2.0
    assert ctl.key(KEY_DOWN) and ctl.timeline.speed == 1.0
    assert ctl.key(KEY_SPACE) and ctl.timeline.playing
    now[0] += 0.1  # 3 frames later
    assert ctl.tick() and ctl.timeline.frame == 6
    assert not ctl.tick()  # nothing new to show
    assert "frame 6 / 8" in out.getvalue() and "playing" in out.getvalue()
    assert vis.updated > 0
    assert not ctl.key(KEY_Q) and vis.closed and not ctl.running


def test_no_display_says_how_to_render_headless(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert not has_display()
    with pytest.raises(ViewerError, match="no display.*--snapshot out.png or --video out.mp4"):
        run_window(tmp_path)
