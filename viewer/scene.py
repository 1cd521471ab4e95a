"""What the viewer draws, as plain numpy records: floor grid, world axes, camera frustums, skeletons, bodies.

Everything is in the world frame (metres, Z up) and built by pure functions, so it is tested without Open3D;
``to_open3d_lines`` / ``to_open3d_mesh`` turn the records into Open3D geometry (imported only there).

- ``floor_grid``: 1 m squares on z = 0 covering the cameras' footprint (and the people), ``world_axes``:
  X red, Y green, Z blue from the origin;
- ``camera_frustums``: a pyramid per camera from K, R, t, width and height (``depth`` metres deep, with a
  small triangle over the image's top edge), its name as a label anchored at the camera centre;
- ``skeleton_lines``: one frame's people as bones coloured by track id (``track_colour``: a fixed palette
  indexed by id, so a person keeps their colour all session), the id as a label anchor above the head;
- fitted bodies (``smpl/track_<id>.npz``): the track's frame ``frame - first_frame`` posed with the body
  model it was fitted with (``smpl_frame_index``), coloured like the track.

``SessionScene`` loads a session folder (``poses3d.npz`` required; the rig from ``session.toml`` and bodies
from ``smpl/`` when present) and gives each frame's geometry with ``frame(t)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rigs.camera import Camera, Rig, RigError
from rigs.poses3d_file import Poses3D, Poses3DFileError, read_poses3d
from rigs.skeletons import SkeletonError, get_skeleton
from viewer import colours

# Colours are RGB in 0..1. Track colours are the project's one palette (viewer/colours.py: matplotlib's tab10),
# so a person has the same colour in the viewer, the overlays and the report plots.
PALETTE = np.asarray(colours.PALETTE, np.float64) / 255
UNTRACKED_COLOUR = tuple(c / 255 for c in colours.NO_TRACK)  # track id -1 (a slot without identity)
BACKGROUND = (0.11, 0.12, 0.14)
GRID_COLOUR = (0.42, 0.44, 0.48)
FRUSTUM_COLOUR = (0.95, 0.85, 0.55)
AXIS_COLOURS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.3, 1.0))  # X red, Y green, Z blue
AXIS_LIFT = 0.004  # metres: the axes sit just above the grid lines they overlap
LABEL_LIFT = 0.25  # metres above the highest joint
_TRACK_FILE = re.compile(r"track_(\d+)\.npz")


class ViewerError(ValueError):
    """A session or option the viewer cannot use; the message says what is wrong and what to do."""


@dataclass(frozen=True, eq=False)
class Lines:
    """Line segments: points [N, 3], segments int32 [M, 2] indexing points, one RGB colour per segment [M, 3]."""

    points: np.ndarray
    segments: np.ndarray
    colours: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", np.asarray(self.points, np.float64).reshape(-1, 3))
        object.__setattr__(self, "segments", np.asarray(self.segments, np.int32).reshape(-1, 2))
        object.__setattr__(self, "colours", np.asarray(self.colours, np.float64).reshape(-1, 3))
        if len(self.colours) != len(self.segments):
            raise ValueError(f"{len(self.segments)} segments but {len(self.colours)} colours")

    @property
    def num_segments(self) -> int:
        return len(self.segments)

    def ends(self) -> np.ndarray:
        """Both ends of every segment [M, 2, 3]."""
        return self.points[self.segments]

    @staticmethod
    def empty() -> Lines:
        return Lines(np.zeros((0, 3)), np.zeros((0, 2), np.int32), np.zeros((0, 3)))

    @staticmethod
    def concat(parts: Sequence[Lines]) -> Lines:
        """One record holding every segment of ``parts``."""
        if not parts:
            return Lines.empty()
        offsets = np.cumsum([0] + [len(p.points) for p in parts[:-1]])
        return Lines(np.concatenate([p.points for p in parts]),
                     np.concatenate([p.segments + o for p, o in zip(parts, offsets, strict=True)]),
                     np.concatenate([p.colours for p in parts]))


@dataclass(frozen=True, eq=False)
class Label:
    """A text to draw at the image of ``anchor`` (world [3]); ``kind`` is "camera" or "track"."""

    text: str
    anchor: np.ndarray
    colour: tuple[float, float, float]
    kind: str


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh: vertices [V, 3], faces int [F, 3], one RGB colour."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    colour: tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class FrameGeometry:
    """What changes from frame to frame: the people's bones, bodies and id labels, and the frame's time."""

    index: int
    time_s: float
    skeletons: Lines
    meshes: tuple[Mesh, ...]
    labels: tuple[Label, ...]
    num_people: int


# -- colours -------------------------------------------------------------------------------------------------

def track_colours(track_ids) -> np.ndarray:
    """RGB [..., 3] in 0..1 for track ids: ``viewer.colours.track_colour`` vectorised (grey for -1)."""
    ids = np.asarray(track_ids, np.int64)
    out = PALETTE[np.mod(ids, len(PALETTE))]
    return np.where((ids < 0)[..., None], np.asarray(UNTRACKED_COLOUR), out)


def track_colour(track_id: int) -> tuple[float, float, float]:
    """The fixed colour of one track id."""
    return tuple(float(c) for c in track_colours(track_id))


# -- static geometry -----------------------------------------------------------------------------------------

def grid_extent(rig: Rig | None, points: np.ndarray | None = None, margin: float = 0.0) -> tuple[int, int, int, int]:
    """(xmin, xmax, ymin, ymax) in whole metres covering the cameras' centres and ``points`` [..., 3]
    (finite ones), ``margin`` metres beyond them; at least 2 x 2 m around the origin when there is nothing."""
    xy = [np.zeros((1, 2))]
    if rig is not None and len(rig):
        xy.append(np.asarray(rig.centers)[:, :2])
    if points is not None:
        p = np.asarray(points, np.float64).reshape(-1, 3)[:, :2]
        xy.append(p[np.isfinite(p).all(1)])
    xy = np.concatenate(xy)
    lo = np.floor(xy.min(0) - margin).astype(int)
    hi = np.ceil(xy.max(0) + margin).astype(int)
    lo, hi = np.minimum(lo, -1), np.maximum(hi, 1)
    return int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1])


def floor_grid(extent: tuple[int, int, int, int], spacing: float = 1.0,
               colour: tuple[float, float, float] = GRID_COLOUR) -> Lines:
    """Lines on z = 0 every ``spacing`` metres over (xmin, xmax, ymin, ymax)."""
    x0, x1, y0, y1 = extent
    xs = np.arange(x0, x1 + spacing / 2, spacing)
    ys = np.arange(y0, y1 + spacing / 2, spacing)
    along_y = np.stack([np.stack([xs, np.full_like(xs, y0)], 1), np.stack([xs, np.full_like(xs, y1)], 1)], 1)
    along_x = np.stack([np.stack([np.full_like(ys, x0), ys], 1), np.stack([np.full_like(ys, x1), ys], 1)], 1)
    ends2 = np.concatenate([along_y, along_x])  # [M, 2, 2]
    ends = np.concatenate([ends2, np.zeros(ends2.shape[:2] + (1,))], axis=2)
    m = len(ends)
    return Lines(ends.reshape(-1, 3), np.arange(2 * m).reshape(m, 2), np.tile(colour, (m, 1)))


def world_axes(length: float = 1.0) -> Lines:
    """The world axes from the origin: X red, Y green, Z blue, lifted ``AXIS_LIFT`` above the floor grid."""
    origin = np.array([0.0, 0.0, AXIS_LIFT])
    points = np.concatenate([origin[None], origin + length * np.eye(3)])
    return Lines(points, [[0, 1], [0, 2], [0, 3]], AXIS_COLOURS)


def frustum_corners(camera: Camera, depth: float) -> np.ndarray:
    """World points [4, 3] of the image corners (top-left, top-right, bottom-right, bottom-left) at ``depth``
    metres in front of the camera (pinhole: distortion left out)."""
    w, h = camera.width, camera.height
    pix = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
    rays = pix @ np.linalg.inv(camera.K).T  # z = 1 in the camera frame
    cam = rays * depth
    return (cam - camera.t) @ camera.R  # R^T (x_cam - t)


def camera_frustum(camera: Camera, depth: float = 0.3,
                   colour: tuple[float, float, float] = FRUSTUM_COLOUR) -> Lines:
    """One camera's pyramid: centre to the image corners at ``depth`` metres, the image rectangle, and a
    triangle over its top edge showing which way is up."""
    c = np.asarray(camera.center, np.float64)
    corners = frustum_corners(camera, depth)
    top_mid = (corners[0] + corners[1]) / 2
    up = (corners[0] - corners[3]) * 0.25  # a quarter of the image height, towards the top
    pts = np.concatenate([c[None], corners, [corners[0] + (top_mid - corners[0]) * 0.6, top_mid + up,
                                             corners[1] + (top_mid - corners[1]) * 0.6]])
    segs = [[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1], [5, 6], [6, 7], [7, 5]]
    return Lines(pts, segs, np.tile(colour, (len(segs), 1)))


def camera_frustums(rig: Rig | None, depth: float = 0.3,
                    colour: tuple[float, float, float] = FRUSTUM_COLOUR) -> tuple[tuple[Lines, ...], tuple[Label, ...]]:
    """Every camera's frustum (``camera_frustum``, in the rig's order) and its name anchored at its centre."""
    if rig is None or not len(rig):
        return (), ()
    return (tuple(camera_frustum(cam, depth, colour) for cam in rig),
            tuple(Label(cam.name, np.asarray(cam.center, np.float64), colour, "camera") for cam in rig))


# -- people ----------------------------------------------------------------------------------------------------

def valid_joints(poses: np.ndarray) -> np.ndarray:
    """bool [..., J]: joints with a positive score and finite coordinates."""
    poses = np.asarray(poses)
    return (poses[..., 3] > 0) & np.isfinite(poses[..., :3]).all(-1)


def skeleton_lines(poses: np.ndarray, track_ids: np.ndarray, bones) -> tuple[Lines, tuple[Label, ...]]:
    """One frame's people (poses [P, J, 4], track ids [P], -1 = empty slot) as bones between valid joints,
    coloured by track id, and an id label per person ``LABEL_LIFT`` above their highest joint."""
    poses = np.asarray(poses, np.float64)
    ids = np.asarray(track_ids, np.int64)
    P, J = poses.shape[:2]
    bones = np.asarray(bones, np.int32).reshape(-1, 2)
    ok = valid_joints(poses) & (ids >= 0)[:, None]  # [P, J]
    bone_ok = ok[:, bones[:, 0]] & ok[:, bones[:, 1]]  # [P, B]
    person, bone = np.nonzero(bone_ok)
    segs = person[:, None] * J + bones[bone]
    points = np.where(ok[..., None], poses[..., :3], 0.0).reshape(-1, 3)
    lines = Lines(points, segs, track_colours(ids[person]))
    labels = []
    for p in np.nonzero(ok.any(1))[0]:
        xyz = poses[p, ok[p], :3]
        anchor = np.array([*xyz[:, :2].mean(0), xyz[:, 2].max() + LABEL_LIFT])
        labels.append(Label(str(int(ids[p])), anchor, track_colour(int(ids[p])), "track"))
    return lines, tuple(labels)


def people_per_frame(poses: np.ndarray, track_ids: np.ndarray) -> np.ndarray:
    """int [T]: people with at least one valid joint in each frame."""
    return ((np.asarray(track_ids) >= 0) & valid_joints(poses).any(-1)).sum(-1)


def smpl_frame_index(first_frame: int, num_frames: int, frame: int) -> int | None:
    """The row of a fitted track (starting at session frame ``first_frame``, ``num_frames`` long) for session
    frame ``frame``, or None when the track does not cover it."""
    k = int(frame) - int(first_frame)
    return k if 0 <= k < int(num_frames) else None


def posed_vertices(arrays, betas: np.ndarray, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """SMPL linear blend skinning in numpy, as smplx computes it: vertices [N, V, 3] of a body model's
    ``arrays`` (``fitting.body_model.BodyModelArrays``) for betas [B], poses [N, 72] axis-angle, trans [N, 3].

    The viewer poses bodies here rather than through torch: torch work between two renders of Open3D's
    offscreen renderer was seen to hang it."""
    from scipy.spatial.transform import Rotation

    poses = np.asarray(poses, np.float64).reshape(-1, 24, 3)
    n = poses.shape[0]
    parents = np.asarray(get_skeleton("smpl24").parents)
    v_shaped = arrays.shaped_vertices(np.asarray(betas, np.float64))  # [V, 3]
    J = arrays.J_regressor @ v_shaped  # [24, 3]
    rot = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(n, 24, 3, 3)
    feature = (rot[:, 1:] - np.eye(3)).reshape(n, -1)  # [N, 207]
    v_posed = v_shaped + (feature @ arrays.posedirs).reshape(n, -1, 3)
    rel = J - np.concatenate([np.zeros((1, 3)), J[parents[1:]]])  # joint offsets from their parents
    G = np.zeros((n, 24, 4, 4))
    G[:, :, :3, :3], G[:, :, :3, 3], G[:, :, 3, 3] = rot, rel, 1.0
    for j in range(1, 24):  # the kinematic chain (parents come first in SMPL's order)
        G[:, j] = G[:, parents[j]] @ G[:, j]
    G[:, :, :3, 3] -= np.einsum("njab,jb->nja", G[:, :, :3, :3], J)  # transforms of rest-pose points
    T = np.einsum("vj,njab->nvab", arrays.weights, G[:, :, :3])  # [N, V, 3, 4]
    v = np.einsum("nvab,nvb->nva", T[..., :3], v_posed) + T[..., 3]
    return v + np.asarray(trans, np.float64).reshape(n, 1, 3)


@dataclass(frozen=True, eq=False)
class BodyTrack:
    """A fitted body track and the arrays of the model it was fitted with (``BodyModelArrays``)."""

    track: object  # rigs.smpl_file.SmplTrack
    arrays: object  # fitting.body_model.BodyModelArrays

    @property
    def track_id(self) -> int:
        return int(self.track.track_id)

    @property
    def faces(self) -> np.ndarray:
        return np.asarray(self.arrays.faces)

    def vertices(self, frame: int) -> np.ndarray | None:
        """World vertices [V, 3] at session frame ``frame``, or None when the track does not cover it."""
        k = smpl_frame_index(self.track.first_frame, self.track.num_frames, frame)
        if k is None:
            return None
        return posed_vertices(self.arrays, self.track.betas, self.track.poses[k : k + 1],
                              self.track.trans[k : k + 1])[0]


def body_colour(track_id: int) -> tuple[float, float, float]:
    """A body's colour: its track's colour, a little lighter than its bones."""
    return tuple(float(c) for c in 0.75 * np.asarray(track_colour(track_id)) + 0.25)


# -- sessions -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SessionScene:
    """A session ready to draw: its poses, rig (or None), fitted bodies, and the static geometry."""

    poses: Poses3D
    bones: np.ndarray  # int32 [B, 2]
    rig: Rig | None = None
    bodies: tuple[BodyTrack, ...] = ()
    folder: Path | None = None
    notes: tuple[str, ...] = ()  # what was left out and why (an unreadable rig, a body model not here)
    grid: Lines = field(init=False)
    axes: Lines = field(init=False)
    frustums: tuple[Lines, ...] = field(init=False)  # one per rig camera, in the rig's order
    camera_labels: tuple[Label, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", floor_grid(grid_extent(self.rig, self.people_points())))
        object.__setattr__(self, "axes", world_axes())
        frustums, labels = camera_frustums(self.rig)
        object.__setattr__(self, "frustums", frustums)
        object.__setattr__(self, "camera_labels", labels)

    @property
    def num_frames(self) -> int:
        return self.poses.num_frames

    @property
    def fps(self) -> float:
        return self.poses.fps

    @property
    def name(self) -> str:
        return self.folder.name if self.folder is not None else "live"

    def static_lines(self) -> Lines:
        """Grid, axes and frustums in one record."""
        return Lines.concat([self.grid, self.axes, *self.frustums])

    def time_s(self, t: int) -> float:
        """Seconds from the session's first frame to frame ``t``."""
        return float(self.poses.t_ns[t] - self.poses.t_ns[0]) / 1e9

    def check_frame(self, t: int) -> int:
        """``t`` if it is a frame of the session, else a ViewerError giving the range."""
        if not 0 <= int(t) < self.num_frames:
            raise ViewerError(f"frame {t} is out of range: the session has {self.num_frames} frames "
                              f"(0..{self.num_frames - 1}); pass --frame within that range")
        return int(t)

    def busiest_frame(self) -> int:
        """The first frame with the most people (the default snapshot)."""
        return int(np.argmax(people_per_frame(self.poses.poses, self.poses.track_ids))) if self.num_frames else 0

    def people_points(self, max_points: int = 20000) -> np.ndarray:
        """Valid joint positions [N, 3] over the session (evenly subsampled to at most ``max_points``)."""
        pts = self.poses.poses[valid_joints(self.poses.poses) & (self.poses.track_ids >= 0)[..., None]][:, :3]
        step = max(1, len(pts) // max_points)
        return np.asarray(pts[::step], np.float64)

    def people_centre(self) -> np.ndarray:
        """Centre of the people's bounding box over the session (the origin 1 m up when there is nobody)."""
        pts = self.people_points()
        if not len(pts):
            return np.array([0.0, 0.0, 1.0])
        return (pts.min(0) + pts.max(0)) / 2

    def frame(self, t: int) -> FrameGeometry:
        """Frame ``t``'s bones, bodies and id labels."""
        t = self.check_frame(t)
        lines, labels = skeleton_lines(self.poses.poses[t], self.poses.track_ids[t], self.bones)
        meshes = []
        for body in self.bodies:
            v = body.vertices(t)
            if v is not None:
                meshes.append(Mesh(f"body_{body.track_id}", v, body.faces, body_colour(body.track_id)))
        n = int(people_per_frame(self.poses.poses[t : t + 1], self.poses.track_ids[t : t + 1])[0])
        return FrameGeometry(t, self.time_s(t), lines, tuple(meshes), labels, n)


def bones_of(skeleton: str, joint_names: Sequence[str]) -> np.ndarray:
    """The bones [B, 2] of ``skeleton`` for poses in ``joint_names`` order (matched by name, so a reordered or
    partial layout still draws); no bones when the skeleton is unknown."""
    try:
        sk = get_skeleton(skeleton)
    except SkeletonError:
        return np.zeros((0, 2), np.int32)
    where = {n: i for i, n in enumerate(joint_names)}
    pairs = [(where[sk.joints[a]], where[sk.joints[b]]) for a, b in sk.bones
             if sk.joints[a] in where and sk.joints[b] in where]
    return np.asarray(pairs, np.int32).reshape(-1, 2)


def _load_rig(folder: Path) -> tuple[Rig | None, str | None]:
    path = folder / "session.toml"
    if not path.exists():
        return None, None
    from rigs.formats import load_rig

    try:
        return load_rig(path), None
    except (RigError, ValueError, OSError) as exc:
        return None, f"no cameras drawn: {path} holds no usable rig ({exc})"


def _body_model_for(track, cache: dict):
    """The model arrays a track was fitted with (the stand-in, the recorded file, or $MOCAP_BODY_MODELS), or a
    string saying why they are not to be had here."""
    from fitting.body_model import BodyModelError, arrays_from_file, find_model_file, standin_dir

    key = ("standin", track.gender) if track.body_model_standin else ("smpl", track.body_model, track.gender)
    if key in cache:
        return cache[key]
    try:
        if track.body_model_standin:
            path = find_model_file(standin_dir(), track.gender)
            if path is None:
                from fitting.standin_model import write_standin

                standin_dir().mkdir(parents=True, exist_ok=True)
                path = write_standin(standin_dir(), genders=(track.gender,))[0]
            found = arrays_from_file(path, track.gender)
        else:
            recorded = Path(track.body_model)
            env = os.environ.get("MOCAP_BODY_MODELS")
            path = recorded if recorded.is_file() else (find_model_file(Path(env), track.gender) if env else None)
            found = arrays_from_file(path, track.gender) if path is not None else None
            if found is None or found.is_standin:
                found = (f"fitted with the SMPL model {track.body_model}, which is not here (set MOCAP_BODY_MODELS "
                         f"to the folder holding SMPL_{track.gender.upper()}.pkl)")
    except (BodyModelError, OSError) as exc:
        found = f"body model not loaded ({exc})"
    cache[key] = found
    return found


def load_bodies(folder: Path, num_frames: int) -> tuple[tuple[BodyTrack, ...], tuple[str, ...]]:
    """The fitted body tracks of ``folder/smpl/`` with their models, and notes on those left out."""
    from rigs.smpl_file import SmplFileError, read_smpl_track

    files = sorted((int(m.group(1)), p) for p in (folder / "smpl").glob("track_*.npz")
                   if (m := _TRACK_FILE.fullmatch(p.name)))
    bodies, notes, cache = [], [], {}
    for _, path in files:
        try:
            track = read_smpl_track(path)
        except SmplFileError as exc:
            notes.append(f"body left out: {exc}")
            continue
        if track.first_frame >= num_frames:
            notes.append(f"body left out: {path} starts at frame {track.first_frame}, after the session's "
                         f"{num_frames} frames")
            continue
        model = _body_model_for(track, cache)
        if isinstance(model, str):
            notes.append(f"body of track {track.track_id} left out: {model}")
            continue
        bodies.append(BodyTrack(track, model))
    return tuple(bodies), tuple(notes)


def load_session_scene(folder: str | Path, *, bodies: bool = True,
                       say: Callable[[str], None] | None = None) -> SessionScene:
    """A session folder as a SessionScene: ``poses3d.npz`` (required), the rig of ``session.toml`` and the
    bodies of ``smpl/`` when there (``bodies=False`` skips them); what is left out is said through ``say``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ViewerError(f"{folder}: no such session folder; give the folder `mocap record` or "
                          "`mocap reconstruct --out` wrote")
    if not (folder / "poses3d.npz").exists():
        raise ViewerError(f"{folder} has no poses3d.npz: run `mocap reconstruct {folder}` first")
    try:
        poses = read_poses3d(folder / "poses3d.npz")
    except Poses3DFileError as exc:
        raise ViewerError(f"{exc}; re-run `mocap reconstruct {folder}`") from None
    rig, note = _load_rig(folder)
    notes = [note] if note else []
    found: tuple[BodyTrack, ...] = ()
    if bodies and (folder / "smpl").is_dir():
        found, body_notes = load_bodies(folder, poses.num_frames)
        notes.extend(body_notes)
    if say is not None:
        for n in notes:
            say(n)
    return SessionScene(poses, bones_of(poses.skeleton, poses.joint_names), rig, found, folder, tuple(notes))


# -- Open3D -----------------------------------------------------------------------------------------------------

def to_open3d_lines(lines: Lines):
    """An ``open3d.geometry.LineSet`` of the segments with their colours."""
    import open3d as o3d

    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(lines.points),
                              o3d.utility.Vector2iVector(lines.segments.astype(np.int32)))
    ls.colors = o3d.utility.Vector3dVector(lines.colours)
    return ls


def to_open3d_mesh(mesh: Mesh):
    """An ``open3d.geometry.TriangleMesh`` (legacy, for the legacy Visualizer) with vertex normals, painted its
    colour; the offscreen renderer takes it as ``open3d.t.geometry.TriangleMesh.from_legacy(...)``."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices),
                                  o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)))
    m.compute_vertex_normals()
    m.paint_uniform_color(mesh.colour)
    return m
