"""What a simulated camera sees: the simulated studio rendered as BGR images, with the truth kept.

Per camera, the static studio (wall, a checkered floor mat cast pixel by pixel through the camera's
undistortion, its grid lines drawn as finely subdivided projected polylines so the lens bends them)
is rendered once and cached. Per frame, the performers' body capsules (``body.body_capsules``) are
painted far to near by capsule mid-depth (painter's algorithm), each as two end discs and their hull
with a flat Lambert shade plus a highlight band, in a distinct colour per person. An optional ChArUco
board (``board``) joins that depth order (one lying on the floor goes under everything); then come
seeded sensor noise and a "SIMULATED" stamp. Capsule outlines are the
projected end spheres (radius f r / depth at each end), exact at the ends for a pinhole camera and an
approximation of the silhouette elsewhere; capsules with an end behind the camera are skipped.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from rigs import projection
from rigs.camera import Camera, Rig
from rigs.sim import body
from rigs.sim.board import SimulatedBoardPose, paint_board

BGR = tuple[int, int, int]
PERSON_COLORS: tuple[BGR, ...] = (
    (40, 40, 220),  # red
    (220, 110, 30),  # blue
    (40, 190, 40),  # green
    (20, 150, 240),  # orange
    (200, 50, 170),  # purple
    (200, 200, 20),  # teal
    (30, 210, 210),  # yellow
    (150, 60, 240),  # pink
)
_NEAR = 0.05  # metres: capsules closer to the camera plane are skipped
_NOISE_POOL = 4
_STAMP_ORIGIN = (8, 8)


@dataclass(frozen=True)
class RenderParams:
    """How the simulated studio looks (BGR colours) and the sensor's noise (grey levels, seeded)."""

    floor_size: tuple[float, float] = (6.0, 6.0)
    tile: float = 0.5
    floor_colors: tuple[BGR, BGR] = ((150, 152, 150), (178, 180, 178))
    line_color: BGR = (64, 64, 64)
    line_px: int = 2
    line_step: float = 0.05
    wall_color: BGR = (104, 98, 92)
    ground_color: BGR = (128, 128, 124)
    person_colors: tuple[BGR, ...] = PERSON_COLORS
    light: tuple[float, float, float] = (0.45, 0.3, 0.85)
    ambient: float = 0.4
    highlight: bool = True
    noise: float = 2.0
    seed: int = 0
    stamp: bool = True


@dataclass(frozen=True, eq=False)
class SimulatedImages:
    """One simulated frame of a rig: images in rig camera order, the frame index and time, the board."""

    frame: int
    t_ns: int
    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    board: SimulatedBoardPose | None = None


# --- per-camera caches (the static studio) --------------------------------------------------------

_CACHE: dict = {}
_CACHE_SIZE = 16


def _cached(key, make: Callable):
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = make()
    return _CACHE[key]


def _camera_key(camera: Camera) -> tuple:
    return (camera.width, camera.height, camera.model, camera.K.tobytes(), camera.dist.tobytes(),
            camera.R.tobytes(), camera.t.tobytes())


def pixel_rays(camera: Camera) -> np.ndarray:
    """Undistorted normalised coordinates [H, W, 2] float32 of every pixel centre (cached, read-only)."""
    def make():
        u, v = np.meshgrid(np.arange(camera.width, dtype=np.float64), np.arange(camera.height, dtype=np.float64))
        uv = np.stack([u, v], -1)
        if camera.model == "pinhole" and not camera.dist.any():
            xy = projection.pixels_to_normalized(uv, camera.K).astype(np.float32)
        else:
            xy = camera.undistort(uv).astype(np.float32)
        xy.setflags(write=False)
        return xy
    return _cached(("rays", _camera_key(camera)), make)


def _valid_radius2(camera: Camera) -> float:
    """Squared normalised radius beyond which the lens model is not trusted (well past the image)."""
    def make():
        w, h = camera.width - 1, camera.height - 1
        s = np.linspace(0, 1, 33)
        border = np.concatenate([np.c_[s * w, 0 * s], np.c_[s * w, 0 * s + h],
                                 np.c_[0 * s, s * h], np.c_[0 * s + w, s * h]])
        return float((camera.undistort(border) ** 2).sum(-1).max() * 1.5 ** 2)
    return _cached(("valid", _camera_key(camera)), make)


def _visible_normalised(camera: Camera, world: np.ndarray) -> np.ndarray:
    """Mask [...] of world points in front of the camera and inside the lens model's trusted field."""
    x_cam = world @ camera.R.T + camera.t
    z = x_cam[..., 2]
    zs = np.where(z > _NEAR, z, 1.0)
    r2 = (x_cam[..., 0] ** 2 + x_cam[..., 1] ** 2) / zs**2
    return (z > _NEAR) & (r2 < _valid_radius2(camera))


def _studio(camera: Camera, params: RenderParams) -> np.ndarray:
    """The empty studio as this camera sees it (cached, read-only)."""
    def make():
        xy = pixel_rays(camera).astype(np.float64)
        d = np.concatenate([xy, np.ones_like(xy[..., :1])], -1) @ camera.R  # world directions
        c = camera.center
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -c[2] / d[..., 2]
        hit = np.isfinite(s) & (s > 0)
        gx = c[0] + np.where(hit, s, 0) * d[..., 0]
        gy = c[1] + np.where(hit, s, 0) * d[..., 1]
        hx, hy = params.floor_size[0] / 2, params.floor_size[1] / 2
        mat = hit & (np.abs(gx) <= hx) & (np.abs(gy) <= hy)
        parity = (np.floor((gx + hx) / params.tile) + np.floor((gy + hy) / params.tile)).astype(np.int64) & 1
        img = np.empty((camera.height, camera.width, 3), np.uint8)
        img[:] = params.wall_color
        img[hit] = params.ground_color
        img[mat & (parity == 0)] = params.floor_colors[0]
        img[mat & (parity == 1)] = params.floor_colors[1]
        _draw_floor_lines(img, camera, params)
        img.setflags(write=False)
        return img
    return _cached(("studio", _camera_key(camera), params), make)


def floor_line_points(params: RenderParams) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The floor grid lines (world, z = 0) as two lists (along y, along x) of [S, 3] polylines, each
    subdivided every ``line_step`` m."""
    hx, hy = params.floor_size[0] / 2, params.floor_size[1] / 2
    xs = np.arange(-hx, hx + 1e-9, params.tile)
    ys = np.arange(-hy, hy + 1e-9, params.tile)
    sx = np.linspace(-hx, hx, int(np.ceil(2 * hx / params.line_step)) + 1)
    sy = np.linspace(-hy, hy, int(np.ceil(2 * hy / params.line_step)) + 1)
    along_y = [np.c_[np.full_like(sy, x), sy, np.zeros_like(sy)] for x in xs]
    along_x = [np.c_[sx, np.full_like(sx, y), np.zeros_like(sx)] for y in ys]
    return along_y, along_x


def _draw_floor_lines(img: np.ndarray, camera: Camera, params: RenderParams) -> None:
    runs = []
    for group in floor_line_points(params):
        for line in group:
            ok = _visible_normalised(camera, line)
            px = camera.project(line)
            # split the polyline where it leaves the trusted field
            idx = np.flatnonzero(ok)
            if idx.size < 2:
                continue
            for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
                if run.size >= 2:
                    runs.append(np.round(px[run] * 16).astype(np.int32))
    if runs:
        cv2.polylines(img, runs, False, params.line_color, params.line_px, cv2.LINE_AA, shift=4)


def _noise(width: int, height: int, params: RenderParams) -> list[np.ndarray]:
    """A seeded pool of non-negative uint8 noise images (added or subtracted per frame)."""
    def make():
        rng = np.random.default_rng([params.seed, width, height, 7])
        pool = []
        for _ in range(_NOISE_POOL):
            n = np.abs(rng.normal(0.0, params.noise, (height, width, 1))) * np.sqrt(np.pi / 2)
            n = np.minimum(np.round(n), 255).astype(np.uint8)
            pool.append(np.repeat(n, 3, axis=2))
        return pool
    return _cached(("noise", width, height, params.noise, params.seed), make)


# --- the performers -------------------------------------------------------------------------------

def _capsule_draws(camera: Camera, performers, frame: int, params: RenderParams) -> list[tuple]:
    """Per visible capsule: (depth, person, drawing primitives), unsorted."""
    points = np.concatenate([performers.joints[frame], performers.landmarks[frame]], axis=1)
    a, b, r = body.body_capsules(points, performers.heights, performers.girths)  # [P, K, 3], [P, K]
    P = r.shape[0]
    c = camera.center
    mid = 0.5 * (a + b)
    axis = b - a
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(length > 1e-9, axis / np.maximum(length, 1e-9), 0.0)
    view = c - mid
    view_perp = view - np.sum(view * axis, -1, keepdims=True) * axis
    view_perp /= np.maximum(np.linalg.norm(view_perp, axis=-1, keepdims=True), 1e-9)
    light = np.asarray(params.light, float)
    light /= np.linalg.norm(light)
    side = light - np.sum(light * axis, -1, keepdims=True) * axis
    side = side - np.sum(side * view_perp, -1, keepdims=True) * view_perp  # across the capsule, in view
    lambert = np.clip(np.sum(view_perp * light, -1), 0, 1)
    n_hi = view_perp + 0.8 * side
    n_hi /= np.maximum(np.linalg.norm(n_hi, axis=-1, keepdims=True), 1e-9)
    lambert_hi = np.clip(np.sum(n_hi * light, -1), 0, 1)
    shift = 0.4 * r[..., None] * side
    ends = np.stack([a, b, a + shift, b + shift], axis=2)  # [P, K, 4, 3]
    x_cam = ends @ camera.R.T + camera.t
    px = camera.project(ends)
    ok = _visible_normalised(camera, ends[:, :, :2]).all(-1) & np.isfinite(px[:, :, :2]).all((-1, -2))
    f = camera.K[0, 0]
    z = np.maximum(x_cam[..., 2], _NEAR)
    rad = f * r[..., None] / z[..., :2]  # [P, K, 2]
    depth = np.linalg.norm(mid - c, axis=-1)
    amb = params.ambient
    draws = []
    for p in range(P):
        base = np.asarray(params.person_colors[p % len(params.person_colors)], float)
        for k in np.flatnonzero(ok[p]):
            col = tuple(float(v) for v in base * (amb + (1 - amb) * lambert[p, k]))
            layers = [(px[p, k, 0], px[p, k, 1], rad[p, k, 0], rad[p, k, 1], col)]
            if params.highlight:
                hi = tuple(float(v) for v in np.minimum(base * (amb + (1 - amb) * lambert_hi[p, k]) * 1.08, 255))
                layers.append((px[p, k, 2], px[p, k, 3], 0.55 * rad[p, k, 0], 0.55 * rad[p, k, 1], hi))
            draws.append((float(depth[p, k]), layers))
    return draws


def _paint_capsule(img: np.ndarray, layers: list[tuple]) -> None:
    for pa, pb, ra, rb, col in layers:
        ia, ib = np.round(pa * 16).astype(np.int64), np.round(pb * 16).astype(np.int64)
        cv2.circle(img, (int(ia[0]), int(ia[1])), int(round(ra * 16)), col, -1, cv2.LINE_AA, shift=4)
        d = pb - pa
        n = np.hypot(d[0], d[1])
        if n > 1e-6:
            cv2.circle(img, (int(ib[0]), int(ib[1])), int(round(rb * 16)), col, -1, cv2.LINE_AA, shift=4)
            perp = np.array([-d[1], d[0]]) / n
            poly = np.array([pa + perp * ra, pb + perp * rb, pb - perp * rb, pa - perp * ra])
            cv2.fillConvexPoly(img, np.round(poly * 16).astype(np.int32), col, cv2.LINE_AA, shift=4)


# --- the stamp and noise --------------------------------------------------------------------------

def stamp_box(camera: Camera) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the "SIMULATED" stamp's first line in this camera's images."""
    x0, y0 = _STAMP_ORIGIN
    (tw, th), base = cv2.getTextSize("SIMULATED", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    return x0, y0, min(camera.width, x0 + tw + 8), min(camera.height, y0 + th + base + 8)


def _stamp(img: np.ndarray, camera: Camera, frame: int) -> None:
    x0, y0, x1, y1 = stamp_box(camera)
    text = f"SIMULATED {camera.name} #{frame}"
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(img, (x0, y0), (min(camera.width - 1, x0 + tw + 8), y1), (0, 0, 0), -1)
    cv2.putText(img, text, (x0 + 4, y1 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _add_noise(img: np.ndarray, camera: Camera, frame: int, params: RenderParams) -> None:
    pool = _noise(camera.width, camera.height, params)
    pick = zlib.crc32(f"{params.seed}/{camera.name}/{frame}".encode())
    a, b = pool[pick % _NOISE_POOL], pool[(pick // _NOISE_POOL) % _NOISE_POOL]
    if a is b:
        b = pool[(pick % _NOISE_POOL + 1) % _NOISE_POOL]
    cv2.add(img, a, dst=img)
    cv2.subtract(img, b, dst=img)


# --- public API -----------------------------------------------------------------------------------

def render_view(camera: Camera, performers, frame: int, params: RenderParams = RenderParams(),
                board: SimulatedBoardPose | None = None) -> np.ndarray:
    """The simulated image (H, W, 3) uint8 BGR that ``camera`` takes of the performers (a
    ``SimulatedPerformers`` or None) at ``frame``, with an optional board."""
    img = _studio(camera, params).copy()
    draws = _capsule_draws(camera, performers, frame, params) if performers is not None else []
    if board is not None:
        depth = np.inf if board.on_floor else float(np.linalg.norm(board.center - camera.center))
        draws.append((depth, None))
    for _, layers in sorted(draws, key=lambda d: -d[0]):
        if layers is None:
            paint_board(img, camera, board, pixel_rays(camera))
        else:
            _paint_capsule(img, layers)
    if params.noise > 0:
        _add_noise(img, camera, frame, params)
    if params.stamp:
        _stamp(img, camera, frame)
    return img


def render_frames(rig: Rig, performers, frames: Iterable[int], params: RenderParams = RenderParams(),
                  board: SimulatedBoardPose | Callable[[int], SimulatedBoardPose] | None = None
                  ) -> Iterator[SimulatedImages]:
    """Every camera's simulated image for each frame; ``board`` is a fixed pose or frame -> pose
    (e.g. ``functools.partial(board_held, spec, performers, 0)``)."""
    for frame in frames:
        pose = board(frame) if callable(board) else board
        images = tuple(render_view(cam, performers, frame, params, pose) for cam in rig)
        t_ns = int(performers.t_ns[frame]) if performers is not None else 0
        yield SimulatedImages(frame, t_ns, rig.names, images, pose)
