"""Cameras and rigs: immutable calibration records whose operations return new records.

A ``Camera`` is OpenCV's model: intrinsics K (3x3) and lens distortion, extrinsics world->camera
``x_cam = R @ x_world + t`` in metres, image size in pixels. A ``Rig`` is an ordered set of uniquely
named cameras sharing one world frame (right-handed, Z up, floor at z = 0 once aligned) and one clock.

Validation happens on construction, so a Camera that exists is a usable one: a bad value raises a
``RigError`` naming the camera and the field; loaders add the file name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rigs import projection
from rigs.board import Board

MODELS = ("pinhole", "fisheye")
CLOCKS = ("monotonic", "ptp", "ntp")
_DIST_LENGTHS = {"pinhole": (0, 4, 5, 8), "fisheye": (4,)}
_ORTHO_TOL = 1e-4
_ONE_PASS_POINTS = 512  # up to this many points, a pinhole rig projects in one pass (less call overhead)


class RigError(ValueError):
    """A camera or rig description that cannot be used, with what is wrong and where."""


def _frozen_array(value, shape: tuple[int, ...] | None, what: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RigError(f"{what}: expected numbers, got {value!r}") from None
    if shape is not None and arr.shape != shape:
        raise RigError(f"{what}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise RigError(f"{what}: contains NaN or infinite values")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera (OpenCV model). Arrays are read-only; use the ``with_*`` methods."""

    name: str
    width: int
    height: int
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    model: str = "pinhole"
    fps: float | None = None
    source: str = ""
    endpoint: str = ""
    clock_offset_ns: int = 0  # measured offset of this camera's clock: subtract from its timestamps

    def __post_init__(self) -> None:
        where = f"camera {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise RigError(f"camera name: expected a non-empty string, got {self.name!r}")
        if self.model not in MODELS:
            raise RigError(f"{where}: model: {self.model!r} is not one of {', '.join(MODELS)}")
        for dim in ("width", "height"):
            value = getattr(self, dim)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise RigError(f"{where}: {dim}: expected a positive whole number of pixels, got {value!r}")
            object.__setattr__(self, dim, int(value))
        K = _frozen_array(self.K, (3, 3), f"{where}: K")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise RigError(f"{where}: K: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
            raise RigError(f"{where}: K: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        dist = _frozen_array(np.ravel(self.dist), None, f"{where}: dist")
        if dist.size not in _DIST_LENGTHS[self.model]:
            raise RigError(f"{where}: dist: a {self.model} camera takes "
                           f"{' or '.join(map(str, _DIST_LENGTHS[self.model]))} coefficients, got {dist.size}")
        R = _frozen_array(self.R, (3, 3), f"{where}: R")
        ortho = np.abs(R @ R.T - np.eye(3)).max()
        if ortho > _ORTHO_TOL or abs(np.linalg.det(R) - 1) > _ORTHO_TOL:
            raise RigError(f"{where}: R: not a rotation (|R R^T - I| = {ortho:.2g}, det = "
                           f"{np.linalg.det(R):.6g}); expected orthonormal with det +1")
        t = _frozen_array(np.ravel(self.t), (3,), f"{where}: t")
        offset = self.clock_offset_ns
        if isinstance(offset, float) and offset.is_integer():
            offset = int(offset)
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or abs(offset) > 10**18:
            raise RigError(f"{where}: clock_offset_ns: expected a whole number of nanoseconds, got {offset!r}")
        object.__setattr__(self, "clock_offset_ns", int(offset))
        if self.fps is not None and not (np.isfinite(self.fps) and self.fps > 0):
            raise RigError(f"{where}: fps: expected a positive rate, got {self.fps!r}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        if self.fps is not None:
            object.__setattr__(self, "fps", float(self.fps))

    # --- derived geometry ----------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def center(self) -> np.ndarray:
        """Camera position in the world frame, -R^T t."""
        return -self.R.T @ self.t

    @property
    def viewing_direction(self) -> np.ndarray:
        """Unit optical axis in the world frame, R^T (0, 0, 1)."""
        return self.R[2].copy()

    @property
    def projection_matrix(self) -> np.ndarray:
        """P = K [R | t], 3x4 (ignores distortion)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def focal(self) -> tuple[float, float]:
        return float(self.K[0, 0]), float(self.K[1, 1])

    # --- operations returning arrays -----------------------------------------------------------
    def project(self, points):
        """World points [..., 3] (numpy or torch) -> pixels [..., 2]; NaN behind the camera."""
        return projection.project(points, self.K, self.dist, self.R, self.t, self.model)

    def undistort(self, pixels):
        """Pixels [..., 2] -> undistorted normalised coordinates [..., 2]."""
        return projection.undistort(pixels, self.K, self.dist, self.model)

    def in_image(self, pixels: np.ndarray) -> np.ndarray:
        """Boolean mask [...] of pixels inside the image (pixel centres at integers)."""
        u, v = pixels[..., 0], pixels[..., 1]
        return (u >= -0.5) & (v >= -0.5) & (u < self.width - 0.5) & (v < self.height - 0.5)

    # --- operations returning cameras ----------------------------------------------------------
    def replace(self, **changes) -> Camera:
        """A copy with the given fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_extrinsics(self, R, t) -> Camera:
        return self.replace(R=R, t=t)

    def with_intrinsics(self, K, dist=None) -> Camera:
        return self.replace(K=K, dist=self.dist if dist is None else dist)

    def renamed(self, name: str) -> Camera:
        return self.replace(name=name)

    def resized(self, width: int, height: int) -> Camera:
        """The same lens seen through an image scaled to (width, height)."""
        sx, sy = width / self.width, height / self.height
        K = np.diag([sx, sy, 1.0]) @ self.K
        K[0, 2] = (self.K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (self.K[1, 2] + 0.5) * sy - 0.5
        return self.replace(K=K, width=width, height=height)

    def transformed(self, R_w, t_w, scale: float = 1.0) -> Camera:
        """This camera in a new world frame where x_new = scale * R_w @ x_old + t_w."""
        R_w = np.asarray(R_w, float)
        R = self.R @ R_w.T
        return self.replace(R=R, t=scale * self.t - R @ np.asarray(t_w, float))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return self.isclose(other, atol=0.0)

    __hash__ = None  # mutable-free but array-valued: compare with isclose

    def isclose(self, other: Camera, atol: float = 1e-9) -> bool:
        """Same name, model, size, rate, source and parameters within atol."""
        scalars = ("name", "model", "width", "height", "fps", "source", "endpoint", "clock_offset_ns")
        if any(getattr(self, s) != getattr(other, s) for s in scalars):
            return False
        if self.dist.size != other.dist.size:
            return False
        return all(np.allclose(getattr(self, a), getattr(other, a), rtol=0, atol=atol)
                   for a in ("K", "dist", "R", "t"))


def look_at_rotation(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """World->camera rotation of a camera at eye looking at target, image 'up' towards the world up."""
    eye, target, up = (np.asarray(v, float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise RigError("look_at: the viewing direction is parallel to 'up'; choose another up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def look_at(name: str, eye, target, width: int, height: int, hfov_deg: float, up=(0.0, 0.0, 1.0),
            **fields) -> Camera:
    """A distortion-free camera at eye looking at target with the given horizontal field of view."""
    f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    R = look_at_rotation(eye, target, up)
    return Camera(name, width, height, K, fields.pop("dist", np.zeros(5)), R, -R @ np.asarray(eye, float),
                  **fields)


@dataclass(frozen=True, eq=False)
class Rig:
    """An ordered set of uniquely named cameras in one world frame, with a name, a clock and the
    calibration board it was calibrated with (if any)."""

    cameras: tuple[Camera, ...]
    name: str = "rig"
    units: str = "m"
    up: str = "z"
    clock: str = "monotonic"
    simulated: bool = False
    description: str = ""
    board: Board | None = None

    def __post_init__(self) -> None:
        cams = tuple(self.cameras)
        if not cams:
            raise RigError(f"rig {self.name!r}: has no cameras")
        if not all(isinstance(c, Camera) for c in cams):
            raise RigError(f"rig {self.name!r}: cameras must be Camera records")
        names = [c.name for c in cams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RigError(f"rig {self.name!r}: camera names must be unique, repeated: {', '.join(dupes)}")
        if self.units != "m":
            raise RigError(f"rig {self.name!r}: units: rigs are in metres (units = \"m\"), got {self.units!r}")
        if self.up not in ("x", "y", "z", "-x", "-y", "-z"):
            raise RigError(f"rig {self.name!r}: up: expected one of x, y, z (optionally negated), got {self.up!r}")
        if self.clock not in CLOCKS:
            raise RigError(f"rig {self.name!r}: clock: expected one of {', '.join(CLOCKS)}, got {self.clock!r}")
        object.__setattr__(self, "cameras", cams)

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            for cam in self.cameras:
                if cam.name == key:
                    return cam
            raise KeyError(f"rig {self.name!r} has no camera {key!r}; it has {', '.join(self.names)}")
        return self.cameras[key]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Rig):
            return NotImplemented
        return self.isclose(other, atol=0.0)

    __hash__ = None

    def isclose(self, other: Rig, atol: float = 1e-9) -> bool:
        meta = ("name", "units", "up", "clock", "simulated", "description", "board")
        return (all(getattr(self, m) == getattr(other, m) for m in meta) and len(self) == len(other)
                and all(a.isclose(b, atol) for a, b in zip(self, other, strict=True)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def fps(self) -> float | None:
        """The common frame rate of the cameras, when they declare one (the lowest if they differ)."""
        rates = [c.fps for c in self.cameras if c.fps]
        return min(rates) if rates else None

    def index(self, name: str) -> int:
        return self.names.index(self[name].name)

    def replace(self, **changes) -> Rig:
        return dataclasses.replace(self, **changes)

    def with_camera(self, camera: Camera) -> Rig:
        """This rig with the camera of the same name replaced (or appended when new)."""
        if camera.name in self.names:
            return self.replace(cameras=tuple(camera if c.name == camera.name else c for c in self))
        return self.replace(cameras=(*self.cameras, camera))

    def subset(self, names: Iterable[str]) -> Rig:
        return self.replace(cameras=tuple(self[n] for n in names))

    def transformed(self, R_w, t_w, scale: float = 1.0) -> Rig:
        """Every camera re-expressed in the frame x_new = scale * R_w @ x_old + t_w."""
        return self.replace(cameras=tuple(c.transformed(R_w, t_w, scale) for c in self))

    # --- stacked arrays, for batched geometry --------------------------------------------------
    @property
    def projection_matrices(self) -> np.ndarray:
        """[C, 3, 4] P = K [R | t] per camera."""
        return np.stack([c.projection_matrix for c in self])

    @property
    def centers(self) -> np.ndarray:
        """[C, 3] camera positions in the world frame."""
        return np.stack([c.center for c in self])

    def project(self, points) -> np.ndarray:
        """World points [..., 3] -> pixels [C, ..., 2] in every camera (NaN behind a camera)."""
        points = np.asarray(points)
        if points.size <= 3 * _ONE_PASS_POINTS and all(c.model == "pinhole" for c in self):
            width = max(c.dist.size for c in self)
            dist = np.zeros((len(self), width))
            for i, c in enumerate(self):
                dist[i, : c.dist.size] = c.dist
            return projection.project_pinholes(points, np.stack([c.K for c in self]), dist,
                                               np.stack([c.R for c in self]), np.stack([c.t for c in self]))
        return np.stack([c.project(points) for c in self])

    def undistort(self, pixels: Sequence) -> np.ndarray:
        """Pixels [C, ..., 2] (one block per camera) -> normalised coordinates [C, ..., 2]."""
        return np.stack([c.undistort(p) for c, p in zip(self, pixels, strict=True)])
