"""Pose2Sim / anipose ``calib.toml`` (``anipose`` is the same format).

One table per camera (``[cam_01]``, ``[int_cam01_img]``, anipose's ``[cam_0]``...) plus an optional
``[metadata]`` table:

* ``name``: the camera's name (the table key is used only when there is none);
* ``size = [width, height]`` in pixels (Pose2Sim writes floats, ``1088.0``);
* ``matrix``: K (3x3, pixels); ``distortions``: OpenCV ``(k1, k2, p1, p2[, k3...])``, 4 in Pose2Sim,
  5 in anipose; ``fisheye``: true for cv2.fisheye's ``(k1, k2, k3, k4)`` (absent means false);
* ``rotation``: Rodrigues vector of the world->camera rotation; ``translation``: t, so that
  ``x_cam = R @ x_world + t``.

Units: the format has no unit field. Pose2Sim writes metres; anipose writes whatever unit its
calibration board was measured in (its mouse rigs are in millimetres). Files are read as metres
unless ``read(path, scale=0.001)`` says otherwise; camera centres more than 100 units from the
origin get a warning that the file is probably not in metres. Converting never rescales silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rigs.camera import Camera, Rig, RigError
from rigs.formats import carried_fields, fields, toml_text
from rigs.rotations import matrix_to_rotvec, rotvec_to_matrix

NOT_CAMERAS = ("metadata", "capture_volume", "charuco", "checkerboard")
_REQUIRED = "a camera table needs size, matrix, distortions, rotation and translation"
_FAR = 100.0  # camera centres further than this from the origin are probably not in metres


def sniff(path: str | Path) -> bool:
    """True when the file is TOML with at least one table holding 'matrix' and 'rotation'."""
    data = fields.quietly(fields.load_toml, path)
    return isinstance(data, dict) and any(
        isinstance(v, dict) and "matrix" in v and "rotation" in v for v in data.values())


def read(path: str | Path, scale: float = 1.0) -> Rig:
    """Read a Pose2Sim/anipose calibration; translations are multiplied by ``scale`` to give metres."""
    data = fields.load_toml(path)
    tables = {k: v for k, v in data.items() if k not in NOT_CAMERAS and isinstance(v, dict)}
    cameras = [_camera(key, table, path, scale) for key, table in tables.items()]
    rig = fields.rig(path, cameras, name=Path(path).stem,
                     description=f"imported from pose2sim file {Path(path).name}")
    if scale == 1.0:
        far = float(np.median(np.linalg.norm(rig.centers, axis=1)))
        if far > _FAR:
            warnings.warn(f"{path}: camera centres are {far:.0f} units from the origin: this file is "
                          f"probably not in metres (anipose keeps the board's unit, often mm). It was read "
                          f"as metres; use rigs.formats.pose2sim.read(path, scale=0.001) for millimetres",
                          stacklevel=2)
    return rig


def _camera(key: str, table: dict, path: str | Path, scale: float) -> Camera:
    name = table.get("name", key)
    at = fields.where(path, name if isinstance(name, str) else key)
    name = fields.text(name, at, "name")
    width, height = fields.image_size(fields.get(table, "size", at, _REQUIRED), at, "size")
    fisheye = fields.flag(table.get("fisheye", False), at, "fisheye")
    rvec = fields.array(fields.get(table, "rotation", at, _REQUIRED), (3,), at, "rotation")
    t = fields.array(fields.get(table, "translation", at, _REQUIRED), (3,), at, "translation")
    return fields.camera(
        path, name=name, width=width, height=height,
        K=fields.array(fields.get(table, "matrix", at, _REQUIRED), (3, 3), at, "matrix"),
        dist=fields.array(fields.get(table, "distortions", at, _REQUIRED), None, at, "distortions").ravel(),
        R=rotvec_to_matrix(rvec), t=t * scale, model="fisheye" if fisheye else "pinhole")


def write(rig: Rig, path: str | Path) -> None:
    """Write a Pose2Sim calibration: one table per camera keyed by its name, then [metadata]."""
    path = Path(path)
    reserved = [c.name for c in rig if c.name in NOT_CAMERAS]
    if reserved:
        raise RigError(f"{path}: camera {reserved[0]!r}: name: this name is reserved for a non-camera "
                       f"table in pose2sim files; rename the camera")
    for cam in rig:
        carried_fields.require_lens(cam, "pose2sim", path, fisheye=True)
    carried_fields.warn_dropped(rig, "pose2sim", path)
    parts = [toml_text.comment(f"{rig.name}: Pose2Sim/anipose calibration written by mocap.\n"
                               "rotation: Rodrigues vector (world->camera); translation: metres.")]
    for c in rig:
        items = [("name", c.name), ("size", [c.width, c.height]), ("matrix", c.K), ("distortions", c.dist),
                 ("rotation", matrix_to_rotvec(c.R)), ("translation", c.t),
                 ("fisheye", c.model == "fisheye")]
        parts.append(toml_text.table(f"[{toml_text.key(c.name)}]", items))
    parts.append(toml_text.table("[metadata]", [("adjusted", False), ("error", 0.0)]))
    path.write_text("\n".join(parts), encoding="utf-8")
