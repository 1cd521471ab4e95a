"""Headless pictures and videos of a session with Open3D's offscreen renderer, labelled with OpenCV.

Open3D 0.20's ``rendering.OffscreenRenderer`` renders without a display (on the CPU through Vulkan here).
Lines use the ``unlitLine`` material (``line_width`` in pixels), fitted bodies ``defaultLit``. The view is a
``rigs.camera.Camera`` (pinhole, OpenCV convention), handed to ``setup_camera(K, extrinsic, W, H)``; the text
(frame number and time, camera names at their frustums, track ids above the heads) is then drawn with
``cv2.putText`` at the anchors projected with the SAME camera, so a label sits where its thing was drawn.

Views (``view_camera``):

- ``camera=NAME``: that rig camera's intrinsics and pose, scaled to the image size (distortion left out:
  the picture is the camera's undistorted view);
- ``orbit_deg=A``: a virtual camera on a circle around the people's centre at azimuth A (degrees from +X
  towards +Y), 20 degrees above the horizon, looking at the people and far enough to hold all of them over
  the whole session (so a video or a set of azimuths keeps one framing);
- default: a 3/4 view from above (azimuth -60, 35 degrees up) holding the people, the cameras and the floor
  grid, centred in the picture.

Only one OffscreenRenderer may live in a process (a second one aborts it at exit), and creating one costs
about a second, so ``shared_renderer`` keeps the process's one renderer in a module-level cache: the one
piece of module state in the project, documented here. A renderer of another size replaces it (the old one
is released first). Pass ``renderer=`` to reuse one explicitly.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from rigs.camera import Camera, look_at_rotation
from viewer.scene import (
    BACKGROUND,
    LABEL_LIFT,
    FrameGeometry,
    Label,
    SessionScene,
    ViewerError,
    load_session_scene,
    to_open3d_lines,
    to_open3d_mesh,
)

DEFAULT_SIZE = (960, 540)
HEADER_COLOUR = (255, 255, 255)  # BGR
ORBIT_ELEVATION_DEG = 20.0
OVERVIEW_AZIMUTH_DEG = -60.0
OVERVIEW_ELEVATION_DEG = 35.0
VIEW_HFOV_DEG = 55.0
HEADER_ROWS = 0.09  # share of a virtual view's height kept clear for the header
LINE_WIDTHS = {"grid": 1.5, "axes": 3.0, "frustums": 2.0, "skeletons": 4.0}  # pixels at 540 rows


# -- views ----------------------------------------------------------------------------------------------------

def _virtual_camera(name: str, target: np.ndarray, azimuth_deg: float, elevation_deg: float, points: np.ndarray,
                    size: tuple[int, int], hfov_deg: float = VIEW_HFOV_DEG, margin: float = 0.9,
                    centre: bool = False) -> Camera:
    """A pinhole camera looking at ``target`` from (azimuth, elevation), just far enough for every point of
    ``points`` [N, 3] to fall inside ``margin`` of the image below the header rows (at least 2 m away).
    ``centre``: first slide the target sideways so the points sit in the middle of that area."""
    w, h = size
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    R = look_at_rotation(target + direction, target)
    f = 0.5 * w / np.tan(np.radians(hfov_deg) / 2)
    tx, ty = margin * (w / 2) / f, margin * (h / 2) / f  # tangent of the usable half-angles
    ty_top = margin * (h / 2 - HEADER_ROWS * h) / f  # the top rows are kept for the header line
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    target = np.asarray(target, np.float64)
    for _ in range(4 if centre else 1):
        q = (pts - target) @ R.T  # camera axes, origin at target
        above = q[:, 1] < 0  # image y points down
        distance = float(np.concatenate([np.abs(q[:, 0]) / tx - q[:, 2],
                                         np.abs(q[:, 1]) / np.where(above, ty_top, ty) - q[:, 2], [2.0]]).max())
        if centre:
            x = q + [0.0, 0.0, distance]  # camera frame
            u, v = x[:, 0] / x[:, 2], x[:, 1] / x[:, 2]
            du = (u.min() + u.max()) / 2
            dv = (v.min() + v.max()) / 2 - (ty - ty_top) / 2  # the middle of the area under the header
            target = target + distance * (du * R[0] + dv * R[1])
    eye = target + direction * distance
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return Camera(name, w, h, K, np.zeros(5), R, -R @ eye)


def _content(scene: SessionScene, with_cameras: bool) -> np.ndarray:
    people = scene.people_points()
    pts = [people, people + [0.0, 0.0, LABEL_LIFT + 0.1]]  # the id labels above the heads too
    if with_cameras and scene.rig is not None:
        pts.append(np.asarray(scene.rig.centers))
    pts = np.concatenate(pts)
    if not len(pts):  # nobody, no cameras: the grid
        pts = scene.grid.points
    return pts


def orbit_camera(scene: SessionScene, azimuth_deg: float, size: tuple[int, int] = DEFAULT_SIZE,
                 elevation_deg: float = ORBIT_ELEVATION_DEG) -> Camera:
    """A virtual camera on a circle around the people's centre at ``azimuth_deg`` (from +X towards +Y)."""
    return _virtual_camera(f"orbit {azimuth_deg:g}", scene.people_centre(), azimuth_deg, elevation_deg,
                           _content(scene, False), size)


def overview_camera(scene: SessionScene, size: tuple[int, int] = DEFAULT_SIZE) -> Camera:
    """The default view: 3/4 from above, holding the people, the cameras and the floor grid, centred."""
    pts = np.concatenate([_content(scene, True), scene.grid.points])
    return _virtual_camera("overview", scene.people_centre(), OVERVIEW_AZIMUTH_DEG, OVERVIEW_ELEVATION_DEG, pts,
                           size, centre=True)


def rig_camera(scene: SessionScene, name: str, size: tuple[int, int]) -> Camera:
    """The rig camera ``name`` scaled to ``size``, without distortion (ViewerError listing the names)."""
    if scene.rig is None:
        raise ViewerError(f"{scene.name} has no rig (no usable session.toml), so there is no camera {name!r} to "
                          "view from; use --orbit DEG or the default view")
    if name not in scene.rig.names:
        raise ViewerError(f"no camera {name!r} in the session's rig; cameras: {', '.join(scene.rig.names)}")
    cam = scene.rig[name]
    return cam.resized(*size).replace(dist=np.zeros(5), model="pinhole")


def view_camera(scene: SessionScene, camera: str | None = None, orbit_deg: float | None = None,
                size: tuple[int, int] = DEFAULT_SIZE) -> Camera:
    """The camera a picture is taken with: a rig camera by name, an orbit azimuth, or the default view."""
    if camera is not None and orbit_deg is not None:
        raise ViewerError("give --camera NAME or --orbit DEG, not both")
    if camera is not None:
        return rig_camera(scene, camera, size)
    if orbit_deg is not None:
        return orbit_camera(scene, float(orbit_deg), size)
    return overview_camera(scene, size)


def project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole pixels [N, 2] of world points [N, 3] and whether each is in front of the camera [N]."""
    x = np.asarray(points, np.float64).reshape(-1, 3) @ camera.R.T + camera.t
    front = x[:, 2] > 1e-3
    z = np.where(front, x[:, 2], 1.0)
    uv = (x[:, :2] / z[:, None]) @ camera.K[:2, :2].T + camera.K[:2, 2]
    return uv, front


# -- the renderer ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_output():
    """Send this process's stdout and stderr (the file descriptors, where C++ libraries print) to a temporary
    file while the block runs; yields a function returning what was printed."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)

        def said() -> str:
            sink.seek(0)
            return sink.read().decode("utf-8", "replace")

        try:
            yield said
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _srgb_encode(colour) -> np.ndarray:
    """sRGB-encoded values of linear ``colour``: Open3D's background goes through the sRGB decode (lines do not)."""
    c = np.clip(np.asarray(colour, np.float64), 0, 1)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)



class SceneRenderer:
    """One OffscreenRenderer of a fixed size, holding a scene's static geometry and one frame's people.

    Meshes go in as tensor meshes (``open3d.t.geometry.TriangleMesh``): with legacy TriangleMeshes added and
    removed frame after frame, ``render_to_image`` spun for minutes after 1-25 frames here (Open3D 0.20 on
    Mesa llvmpipe); the tensor path rendered hundreds of frames without a stall. As a precaution every
    geometry added is also kept alive while it is in the scene and until the next render after its removal
    (``_alive`` / ``_retired``)."""

    def __init__(self, width: int, height: int) -> None:
        import open3d
        from open3d.visualization import rendering

        self._o3d = open3d
        self.size = (int(width), int(height))
        self._rendering = rendering
        with _quiet_output() as said:  # Filament's start-up lines would land in the command's output
            try:
                self._r = rendering.OffscreenRenderer(*self.size)
            except Exception as exc:  # noqa: BLE001 - whatever the engine says, the fix is the same
                raise ViewerError(f"Open3D's offscreen renderer did not start ({exc}; {said()[-300:]!r}); it needs "
                                  "Vulkan: apt-get install libvulkan1 mesa-vulkan-drivers") from None
        self._r.scene.view.set_post_processing(False)  # exact colours: no tone mapping
        self._r.scene.set_background([*_srgb_encode(BACKGROUND), 1.0])  # Open3D decodes it as sRGB
        light = np.array([0.3, -0.4, -1.0])
        self._r.scene.set_lighting(rendering.Open3DScene.LightingProfile.NO_SHADOWS, light)
        self._r.scene.scene.set_indirect_light_intensity(90000)  # brighter than the profile: bodies read
        self._r.scene.scene.set_sun_light(light, [1.0, 1.0, 1.0], 150000)  # well on the dark background
        self._scene: SessionScene | None = None
        self._dynamic: list[str] = []
        self._alive: dict[str, object] = {}  # name -> the Open3D geometry in the scene
        self._retired: list[object] = []  # removed, kept until the next render has finished
        self._serial = 0
        self._scale = self.size[1] / 540

    def _line_material(self, kind: str):
        m = self._rendering.MaterialRecord()
        m.shader = "unlitLine"
        m.line_width = max(1.0, LINE_WIDTHS[kind] * self._scale)
        return m

    def _add(self, name: str, geometry, material) -> None:
        self._alive[name] = geometry
        self._r.scene.add_geometry(name, geometry, material)

    def _remove(self, name: str) -> None:
        self._r.scene.remove_geometry(name)
        self._retired.append(self._alive.pop(name))

    def show_scene(self, scene: SessionScene) -> None:
        """Put the scene's grid, axes and frustums in place (nothing to do when they already are)."""
        if self._scene is scene:
            return
        for name in list(self._alive):
            self._remove(name)
        self._dynamic = []
        for kind, lines in (("grid", scene.grid), ("axes", scene.axes)):
            if lines.num_segments:
                self._add(kind, to_open3d_lines(lines), self._line_material(kind))
        for label, lines in zip(scene.camera_labels, scene.frustums, strict=True):
            self._add(f"frustum {label.text}", to_open3d_lines(lines), self._line_material("frustums"))
        self._scene = scene

    def show_frame(self, geometry: FrameGeometry) -> None:
        """Replace the people drawn with this frame's bones and bodies."""
        for name in self._dynamic:
            self._remove(name)
        self._dynamic = []
        self._serial += 1  # fresh names, so a new geometry never meets the remains of a removed one
        if geometry.skeletons.num_segments:
            name = f"skeletons #{self._serial}"
            self._add(name, to_open3d_lines(geometry.skeletons), self._line_material("skeletons"))
            self._dynamic.append(name)
        for mesh in geometry.meshes:
            m = self._rendering.MaterialRecord()
            m.shader = "defaultLit"
            m.base_color = [*mesh.colour, 1.0]
            name = f"{mesh.name} #{self._serial}"
            self._add(name, self._o3d.t.geometry.TriangleMesh.from_legacy(to_open3d_mesh(mesh)), m)
            self._dynamic.append(name)

    def render(self, camera: Camera) -> np.ndarray:
        """The current geometry seen by ``camera`` (its size must be the renderer's): RGB uint8 [H, W, 3]."""
        if camera.size != self.size:
            raise ValueError(f"camera is {camera.width}x{camera.height}, the renderer {self.size[0]}x{self.size[1]}")
        for label in self._scene.camera_labels if self._scene is not None else ():
            # a rig camera's view does not show its own frustum (it would frame the picture)
            self._r.scene.show_geometry(f"frustum {label.text}", label.text != camera.name)
        extrinsic = np.eye(4)
        extrinsic[:3, :3], extrinsic[:3, 3] = camera.R, camera.t
        self._r.setup_camera(np.asarray(camera.K, np.float64), extrinsic, *self.size)
        image = np.asarray(self._r.render_to_image())
        self._retired = []
        return image

    def release(self) -> None:
        """Drop the Open3D renderer (before another one is made in this process)."""
        if self._r is not None:
            self._r.scene.clear_geometry()
            self._r = None
            self._scene = None
            self._alive, self._retired = {}, []
            gc.collect()


_SHARED: dict[str, SceneRenderer] = {}  # the process's one renderer (see the module docstring)


def shared_renderer(size: tuple[int, int] = DEFAULT_SIZE) -> SceneRenderer:
    """This process's renderer of ``size``, made on first use; another size releases the old one first."""
    current = _SHARED.get("renderer")
    if current is not None and current.size == tuple(size):
        return current
    if current is not None:
        current.release()
        del _SHARED["renderer"], current
        gc.collect()
    _SHARED["renderer"] = SceneRenderer(*size)
    return _SHARED["renderer"]


# -- text -----------------------------------------------------------------------------------------------------

def _bgr(colour) -> tuple[int, int, int]:
    r, g, b = (int(round(255 * float(c))) for c in colour)
    return b, g, r


def _text(image: np.ndarray, text: str, org: tuple[int, int], colour, scale: float, centred: bool = False) -> None:
    thick = max(1, int(round(2 * scale)))
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = (org[0] - w // 2, org[1]) if centred else org
    for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1), (0, 2), (0, -2), (2, 0), (-2, 0)):  # a dark outline
        cv2.putText(image, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def label_pixels(camera: Camera, labels: tuple[Label, ...]) -> list[tuple[Label, tuple[int, int]]]:
    """Each label whose anchor is in front of ``camera`` and inside its image, with the anchor's pixel."""
    if not labels:
        return []
    uv, front = project(camera, np.stack([lab.anchor for lab in labels]))
    inside = front & (uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] < camera.height)
    return [(lab, (int(round(u)), int(round(v)))) for lab, (u, v), ok in zip(labels, uv, inside, strict=True) if ok]


def header_text(scene: SessionScene, geometry: FrameGeometry) -> str:
    """The line at the top of a picture: session, frame number, time and people."""
    return (f"{scene.name}   frame {geometry.index} / {scene.num_frames - 1}   t = {geometry.time_s:.2f} s   "
            f"{geometry.num_people} {'person' if geometry.num_people == 1 else 'people'}")


def draw_overlay(image_bgr: np.ndarray, camera: Camera, scene: SessionScene, geometry: FrameGeometry,
                 header: str | None = None) -> np.ndarray:
    """Draw (in place) the header, the camera names and the track ids at their anchors seen by ``camera``."""
    scale = image_bgr.shape[0] / 540
    _text(image_bgr, header if header is not None else header_text(scene, geometry),
          (int(12 * scale), int(28 * scale)), HEADER_COLOUR, 0.6 * scale)
    own = tuple(lab for lab in scene.camera_labels if lab.text != camera.name)
    for lab, (u, v) in label_pixels(camera, own + geometry.labels):
        if lab.kind == "track":
            _text(image_bgr, f"id {lab.text}", (u, v), _bgr(lab.colour), 0.6 * scale, centred=True)
        else:
            _text(image_bgr, lab.text, (u, v - int(8 * scale)), _bgr(lab.colour), 0.5 * scale, centred=True)
    return image_bgr


# -- pictures and videos --------------------------------------------------------------------------------------

def render_frame(scene: SessionScene, t: int, camera: Camera, renderer: SceneRenderer | None = None,
                 header: str | None = None) -> np.ndarray:
    """Frame ``t`` seen by ``camera``, labelled: BGR uint8 [H, W, 3] (OpenCV's order, ready to write)."""
    renderer = renderer or shared_renderer(camera.size)
    geometry = scene.frame(t)
    renderer.show_scene(scene)
    renderer.show_frame(geometry)
    image = cv2.cvtColor(renderer.render(camera), cv2.COLOR_RGB2BGR)
    return draw_overlay(image, camera, scene, geometry, header)


def _size(size) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ViewerError(f"image size {w}x{h}: give WIDTHxHEIGHT between 16 and 8192 pixels (e.g. 960x540)")
    return w, h


def render_scene_snapshot(scene: SessionScene, out_png: str | Path, *, frame: int | None = None,
                          camera: str | None = None, orbit_deg: float | None = None,
                          size: tuple[int, int] = DEFAULT_SIZE, renderer: SceneRenderer | None = None) -> Path:
    """Write one labelled picture of ``scene`` (frame default: the one with the most people)."""
    t = scene.busiest_frame() if frame is None else scene.check_frame(frame)
    view = view_camera(scene, camera, orbit_deg, _size(size))
    image = render_frame(scene, t, view, renderer)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), image):
        raise ViewerError(f"could not write {out}: give a .png (or .jpg) path in a writable folder")
    return out


def render_snapshot(session: Path, out_png: Path, *, frame: int | None = None, camera: str | None = None,
                    orbit_deg: float | None = None, size: tuple[int, int] = DEFAULT_SIZE,
                    renderer: SceneRenderer | None = None) -> Path:
    """Render one frame of a session headless to ``out_png`` and return its path."""
    if camera is not None and orbit_deg is not None:
        raise ViewerError("give --camera NAME or --orbit DEG, not both")
    scene = load_session_scene(session)
    return render_scene_snapshot(scene, out_png, frame=frame, camera=camera, orbit_deg=orbit_deg, size=size,
                                 renderer=renderer)


def render_video(session: Path, out_mp4: Path, *, camera: str | None = None, orbit_deg: float | None = None,
                 size: tuple[int, int] = DEFAULT_SIZE, progress: Callable[[int, int], None] | None = None,
                 renderer: SceneRenderer | None = None, frames: range | None = None) -> Path:
    """Render the session's playback (every frame, or ``frames``) to an mp4v video at the session's fps."""
    if camera is not None and orbit_deg is not None:
        raise ViewerError("give --camera NAME or --orbit DEG, not both")
    scene = load_session_scene(session)
    return render_scene_video(scene, out_mp4, camera=camera, orbit_deg=orbit_deg, size=size, progress=progress,
                              renderer=renderer, frames=frames)


def render_scene_video(scene: SessionScene, out_mp4: str | Path, *, camera: str | None = None,
                       orbit_deg: float | None = None, size: tuple[int, int] = DEFAULT_SIZE,
                       progress: Callable[[int, int], None] | None = None, renderer: SceneRenderer | None = None,
                       frames: range | None = None) -> Path:
    """``render_video`` for a loaded scene."""
    view = view_camera(scene, camera, orbit_deg, _size(size))
    frames = range(scene.num_frames) if frames is None else frames
    for t in (frames[0], frames[-1]) if len(frames) else ():
        scene.check_frame(t)
    out = Path(out_mp4)
    out.parent.mkdir(parents=True, exist_ok=True)
    fps = scene.fps if scene.fps > 0 else 30.0
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, view.size)
    if not writer.isOpened():
        raise ViewerError(f"could not open {out} for writing: give an .mp4 path in a writable folder")
    renderer = renderer or shared_renderer(view.size)
    try:
        for k, t in enumerate(frames):
            writer.write(render_frame(scene, t, view, renderer))
            if progress is not None:
                progress(k + 1, len(frames))
    finally:
        writer.release()
    return out


def time_rendering(scene: SessionScene, frames: int = 10, size: tuple[int, int] = DEFAULT_SIZE) -> float:
    """Seconds per labelled frame (the mean over ``frames`` frames, after one warm-up frame)."""
    view = overview_camera(scene, size)
    renderer = shared_renderer(size)
    render_frame(scene, 0, view, renderer)
    n = min(frames, scene.num_frames)
    start = time.perf_counter()
    for t in range(n):
        render_frame(scene, t, view, renderer)
    return (time.perf_counter() - start) / max(n, 1)
