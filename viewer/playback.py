"""Session playback in a window: the timeline logic (tested without a window) and the Open3D window around it.

``Timeline`` is the clock of playback: play/pause, step one frame back or forth (which pauses), speed from
x0.25 to x4, the frame to show computed from wall-clock time (so a slow renderer drops frames rather than
slowing time down), and at the end either wrap to the start (``loop``) or stop on the last frame.

``run_window`` opens the legacy ``open3d.visualization.VisualizerWithKeyCallback`` (space play/pause,
left/right step, up/down speed, Q quit; the mouse turns the view). It needs a display: without one it raises
a ViewerError saying to render with ``--snapshot`` / ``--video`` instead. The legacy window has no text overlay
and Open3D 0.20 cannot retitle it, so the frame number, time and speed are drawn as 3D text standing at the
far edge of the floor grid (and each track id above its person), and printed on the terminal's status line.
``WindowGeometry`` holds the window's Open3D objects and updates them in place from a ``FrameGeometry``;
it is what the live viewer (``viewer/live.py``) shows too.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.scene import FrameGeometry, Lines, SessionScene, ViewerError, load_session_scene, to_open3d_lines

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
KEY_SPACE, KEY_RIGHT, KEY_LEFT, KEY_DOWN, KEY_UP = 32, 262, 263, 264, 265  # GLFW key codes
KEY_Q = ord("Q")
VIEW_AZIMUTH_DEG = -60.0  # the window's first view, like the snapshots' default; the 3D text faces it
TEXT_SCALE = 0.012  # metres per unit of Open3D's text mesh (about 0.13 m tall letters)
NO_DISPLAY = ("no display here (DISPLAY and WAYLAND_DISPLAY are not set), so no window can open; render "
              "headless instead: --snapshot out.png or --video out.mp4")


@dataclass
class Timeline:
    """Playback clock over ``num_frames`` frames at ``fps``; times are wall-clock seconds passed in by the caller."""

    num_frames: int
    fps: float
    loop: bool = True
    frame: int = 0
    playing: bool = False
    speed: float = 1.0
    _anchor_s: float = field(default=0.0, repr=False)  # when _anchor_frame was current
    _anchor_frame: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ViewerError("nothing to play: the session has no frames")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ViewerError(f"fps must be a positive number, got {self.fps!r}")
        if self.speed not in SPEEDS:
            raise ViewerError(f"speed {self.speed} is not one of {', '.join(f'x{s:g}' for s in SPEEDS)}")
        self.frame = int(np.clip(self.frame, 0, self.num_frames - 1))

    @property
    def time_s(self) -> float:
        """Seconds from the first frame to the current one (at the nominal fps)."""
        return self.frame / self.fps

    def _anchor(self, now_s: float) -> None:
        self._anchor_s, self._anchor_frame = now_s, self.frame

    def update(self, now_s: float) -> int:
        """The frame to show at wall-clock ``now_s``: advances while playing, wraps or stops at the end."""
        if not self.playing:
            return self.frame
        rate = self.fps * self.speed
        f = self._anchor_frame + max(math.floor((now_s - self._anchor_s) * rate + 1e-9), 0)
        if f >= self.num_frames:
            if not self.loop:
                self.frame, self.playing = self.num_frames - 1, False
                return self.frame
            passes = f // self.num_frames  # wrap: the anchor moves on by whole passes, keeping its phase
            self._anchor_s += passes * self.num_frames / rate
            f -= passes * self.num_frames
        self.frame = f
        return self.frame

    def play(self, now_s: float) -> None:
        """Start playing from the current frame (from the start when stopped on the last frame)."""
        if not self.playing and not self.loop and self.frame >= self.num_frames - 1:
            self.frame = 0
        self.playing = True
        self._anchor(now_s)

    def pause(self, now_s: float) -> None:
        """Stop on the frame current at ``now_s``."""
        self.update(now_s)
        self.playing = False

    def toggle(self, now_s: float) -> None:
        """Play when paused, pause when playing."""
        (self.pause if self.playing else self.play)(now_s)

    def step(self, delta: int, now_s: float) -> int:
        """Pause and move ``delta`` frames (wrapping when looping, else clamped); returns the frame."""
        self.pause(now_s)
        f = self.frame + int(delta)
        self.frame = f % self.num_frames if self.loop else int(np.clip(f, 0, self.num_frames - 1))
        return self.frame

    def set_speed(self, speed: float, now_s: float) -> None:
        """Change the speed without a jump in the frame shown."""
        if speed not in SPEEDS:
            raise ViewerError(f"speed {speed} is not one of {', '.join(f'x{s:g}' for s in SPEEDS)}")
        self.update(now_s)
        self.speed = speed
        self._anchor(now_s)

    def faster(self, now_s: float) -> float:
        """The next speed up (x4 at most); returns the speed."""
        self.set_speed(SPEEDS[min(SPEEDS.index(self.speed) + 1, len(SPEEDS) - 1)], now_s)
        return self.speed

    def slower(self, now_s: float) -> float:
        """The next speed down (x0.25 at least); returns the speed."""
        self.set_speed(SPEEDS[max(SPEEDS.index(self.speed) - 1, 0)], now_s)
        return self.speed


def has_display() -> bool:
    """Whether a window can open here (an X or Wayland display, or macOS / Windows)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# -- the window's geometry ---------------------------------------------------------------------------------------

def text_mesh_arrays(text: str, origin: np.ndarray, scale: float = TEXT_SCALE, centred: bool = True,
                     facing_deg: float = VIEW_AZIMUTH_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] and triangles [F, 3] of ``text`` standing upright, facing the horizontal direction
    ``facing_deg`` (degrees from +X towards +Y), its baseline at ``origin`` (centred on it, or starting there)."""
    import open3d as o3d

    mesh = o3d.t.geometry.TriangleMesh.create_text(text, depth=0.0).to_legacy()
    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.triangles, np.int64)
    if not len(v):
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    a = np.radians(facing_deg)
    right = np.array([-np.sin(a), np.cos(a), 0.0])  # the text's x, as a viewer from that side sees it
    x0 = (v[:, 0].min() + v[:, 0].max()) / 2 if centred else v[:, 0].min()
    world = np.outer((v[:, 0] - x0) * scale, right) + np.outer((v[:, 1] - v[:, 1].min()) * scale, [0.0, 0.0, 1.0])
    return world + np.asarray(origin, np.float64), np.concatenate([f, f[:, ::-1]])  # both sides visible


class WindowGeometry:
    """The legacy Open3D objects of a window: static lines, and bones, bodies and text updated in place."""

    def __init__(self, scene: SessionScene) -> None:
        import open3d as o3d

        self._o3d = o3d
        self.scene = scene
        self.static = [to_open3d_lines(lines) for lines in (scene.grid, scene.axes, *scene.frustums)
                       if lines.num_segments]
        self.skeletons = to_open3d_lines(Lines.empty())
        self.text = o3d.geometry.TriangleMesh()
        self.bodies: dict[str, object] = {}  # mesh name -> TriangleMesh, created when first seen
        x0, x1, y0, y1 = _grid_box(scene)
        a = np.radians(VIEW_AZIMUTH_DEG)  # the header stands at the grid's far edge, facing the first view
        half = min(x1 - x0, y1 - y0) / 2
        self.header_origin = np.array([(x0 + x1) / 2 - half * np.cos(a), (y0 + y1) / 2 - half * np.sin(a), 0.05])

    def dynamic(self) -> list:
        """The objects whose content changes (add them to the window once, then ``update_geometry``)."""
        return [self.skeletons, self.text, *self.bodies.values()]

    def update(self, geometry: FrameGeometry, header: str) -> list:
        """Refill the bones, bodies and text from ``geometry``; returns body meshes seen for the first time
        (to add to the window)."""
        o3d = self._o3d
        s = geometry.skeletons
        self.skeletons.points = o3d.utility.Vector3dVector(s.points)
        self.skeletons.lines = o3d.utility.Vector2iVector(s.segments.astype(np.int32))
        self.skeletons.colors = o3d.utility.Vector3dVector(s.colours)
        verts, tris, cols = [], [], []
        n = 0
        texts = [(header, self.header_origin, (1.0, 1.0, 1.0), 2.0)]  # (text, baseline centre, colour, size)
        texts += [(f"id {lab.text}", lab.anchor, lab.colour, 1.0) for lab in geometry.labels]
        texts += [(lab.text, lab.anchor + [0, 0, 0.08], lab.colour, 1.0) for lab in self.scene.camera_labels]
        for text, origin, colour, size in texts:
            v, f = text_mesh_arrays(text, origin, TEXT_SCALE * size)
            verts.append(v)
            tris.append(f + n)
            cols.append(np.tile(colour, (len(v), 1)))
            n += len(v)
        self.text.vertices = o3d.utility.Vector3dVector(np.concatenate(verts))
        self.text.triangles = o3d.utility.Vector3iVector(np.concatenate(tris).astype(np.int32))
        self.text.vertex_colors = o3d.utility.Vector3dVector(np.concatenate(cols))
        new = []
        shown = {m.name for m in geometry.meshes}
        for mesh in geometry.meshes:
            target = self.bodies.get(mesh.name)
            if target is None:
                target = self.bodies[mesh.name] = o3d.geometry.TriangleMesh()
                new.append(target)
            target.vertices = o3d.utility.Vector3dVector(mesh.vertices)
            target.triangles = o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32))
            target.compute_vertex_normals()
            target.paint_uniform_color(mesh.colour)
        for name, target in self.bodies.items():
            if name not in shown:  # the track is not in this frame: empty it
                target.vertices = o3d.utility.Vector3dVector(np.zeros((0, 3)))
                target.triangles = o3d.utility.Vector3iVector(np.zeros((0, 3), np.int32))
        return new


def _grid_box(scene: SessionScene) -> tuple[float, float, float, float]:
    p = scene.grid.points
    return float(p[:, 0].min()), float(p[:, 0].max()), float(p[:, 1].min()), float(p[:, 1].max())


def status_line(scene: SessionScene, timeline: Timeline) -> str:
    """Frame, time, speed and state, for the 3D header and the terminal."""
    state = "playing" if timeline.playing else "paused"
    return (f"frame {timeline.frame} / {scene.num_frames - 1}   t = {scene.time_s(timeline.frame):.2f} s   "
            f"x{timeline.speed:g}   {state}")


class PlaybackController:
    """What the window's callbacks do, on a ``WindowGeometry``: keys change the timeline, ``tick`` shows the
    frame that is due. ``vis`` is the legacy Visualizer (anything with add_geometry / update_geometry)."""

    def __init__(self, scene: SessionScene, vis, clock=time.monotonic, out=sys.stdout) -> None:
        self.scene = scene
        self.vis = vis
        self.clock = clock
        self.out = out
        self.timeline = Timeline(scene.num_frames, scene.fps if scene.fps > 0 else 30.0)
        self.timeline.frame = scene.busiest_frame() if scene.num_frames else 0
        self.window = WindowGeometry(scene)
        self.shown: tuple | None = None
        self.running = True
        for g in self.window.static:
            vis.add_geometry(g)
        self._show(force=True)
        for g in self.window.dynamic():
            vis.add_geometry(g, reset_bounding_box=False)

    def _show(self, force: bool = False) -> bool:
        key = (self.timeline.frame, self.timeline.playing, self.timeline.speed)
        if key == self.shown and not force:
            return False
        header = status_line(self.scene, self.timeline)
        new = self.window.update(self.scene.frame(self.timeline.frame), header)
        if self.shown is not None:
            for g in new:
                self.vis.add_geometry(g, reset_bounding_box=False)
            for g in self.window.dynamic():
                self.vis.update_geometry(g)
        self.shown = key
        if self.out is not None:
            self.out.write("\r" + header + " " * 8)
            self.out.flush()
        return True

    def tick(self, vis=None) -> bool:
        """Animation callback: show the frame due now; True when something changed."""
        self.timeline.update(self.clock())
        return self._show()

    def key(self, code: int) -> bool:
        """Apply one key (GLFW code); True when the view must be redrawn."""
        now = self.clock()
        if code == KEY_SPACE:
            self.timeline.toggle(now)
        elif code == KEY_RIGHT:
            self.timeline.step(+1, now)
        elif code == KEY_LEFT:
            self.timeline.step(-1, now)
        elif code == KEY_UP:
            self.timeline.faster(now)
        elif code == KEY_DOWN:
            self.timeline.slower(now)
        elif code == KEY_Q:
            self.running = False
            self.vis.close()
            return False
        return self._show()


def set_initial_view(vis, scene: SessionScene, azimuth_deg: float = VIEW_AZIMUTH_DEG,
                     elevation_deg: float = 35.0) -> None:
    """Point the window's camera like the snapshots' default: 3/4 from above, at the people."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    ctrl = vis.get_view_control()
    ctrl.set_lookat(scene.people_centre())
    ctrl.set_front([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    ctrl.set_up([0.0, 0.0, 1.0])
    ctrl.set_zoom(0.6)


def run_window(session: str | Path, say=print) -> int:
    """Play a session in an Open3D window (needs a display; ViewerError otherwise). Returns 0 when closed."""
    if not has_display():
        raise ViewerError(NO_DISPLAY)
    import open3d as o3d

    scene = load_session_scene(session, say=say)
    vis = o3d.visualization.VisualizerWithKeyCallback()
    title = f"mocap view {scene.name}  (space play/pause, left/right step, up/down speed, Q quit)"
    if not vis.create_window(window_name=title, width=1280, height=720):
        raise ViewerError("could not open a window on this display; render headless instead: --snapshot out.png "
                          "or --video out.mp4")
    opt = vis.get_render_option()
    opt.background_color = np.asarray((0.11, 0.12, 0.14))
    opt.line_width = 3.0
    opt.mesh_show_back_face = True
    controller = PlaybackController(scene, vis)
    set_initial_view(vis, scene)
    for code in (KEY_SPACE, KEY_RIGHT, KEY_LEFT, KEY_UP, KEY_DOWN, KEY_Q):
        vis.register_key_callback(code, lambda v, c=code: controller.key(c))
    vis.register_animation_callback(controller.tick)
    controller.timeline.play(time.monotonic())
    vis.run()
    vis.destroy_window()
    print()
    return 0
