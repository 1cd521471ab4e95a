"""caliscope's ``camera_array.toml`` (and the ``[cam_N]`` tables of its older ``config.toml``).

One ``[cameras.N]`` table per camera: ``cam_id``, ``size = [w, h]``, ``matrix`` (K), ``distortions``
(OpenCV ``k1 k2 p1 p2 k3``), ``rotation`` (3x3 world->camera; older files: a Rodrigues vector),
``translation`` (metres), so ``x_cam = R @ x_world + t``; plus caliscope's own bookkeeping:
``rotation_count``, ``error`` (intrinsic RMS), ``exposure``, ``grid_count``, ``ignore``,
``verified_resolutions``, and ``fisheye`` in newer versions.

Decisions:

* Names: caliscope has no name field, so cameras are named ``cam_<cam_id>``; the writer takes cam_id
  from the trailing digits of each name (``cam_3`` -> 3), or numbers the cameras 0..N-1 when names have
  none or repeat, with a warning when names will not read back the same.
* ``ignore = true`` cameras are kept (their calibration is valid; ignoring is caliscope's processing
  choice), with a warning naming them. Cameras with no extrinsics or no intrinsics yet (caliscope writes
  those before calibrating) are skipped with a warning.
* ``rotation_count`` only turns caliscope's display: the calibration is of the unrotated sensor image
  (the real 4_cam_recording camera 1 has rotation_count -1 and cx = 626 in a 1280x720 image). Ignored.
* The writer knows no error, exposure or grid count: it writes 0 for them (caliscope's loaders require
  the keys), and ``fisheye = true`` only for fisheye cameras.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from rigs.camera import Camera, Rig, RigError
from rigs.formats import carried_fields, fields, toml_text
from rigs.rotations import rotvec_to_matrix

_DIGITS = re.compile(r"(\d+)$")
_EXTRINSIC = ("rotation", "translation")
_INTRINSIC = ("matrix", "distortions")


def _tables(data: dict) -> list[tuple[str, dict]]:
    """(key, table) of every camera: [cameras.N] tables, or legacy top-level [cam_N] ones."""
    cams = data.get("cameras")
    if isinstance(cams, dict) and cams and all(isinstance(v, dict) for v in cams.values()):
        return [(f"cameras.{k}", v) for k, v in cams.items()]
    return [(k, v) for k, v in data.items() if k.startswith("cam_") and isinstance(v, dict)
            and ("cam_id" in v or "port" in v)]


def sniff(path: str | Path) -> bool:
    """True for TOML with [cameras.N] tables holding 'matrix' or 'cam_id' (or legacy [cam_N] ones)."""
    data = fields.quietly(fields.load_toml, path)
    if not isinstance(data, dict):
        return False
    tables = _tables(data)
    return any("matrix" in t or "cam_id" in t or "port" in t for _, t in tables)


def read(path: str | Path) -> Rig:
    """Read a caliscope camera array; cameras are named cam_<cam_id>."""
    tables = _tables(fields.load_toml(path))
    if not tables:
        raise RigError(f"{path}: cameras: missing; a caliscope camera_array.toml has [cameras.N] tables")
    cameras, skipped, ignored = [], [], []
    for key, table in tables:
        digits = _DIGITS.search(key)
        cam_id = table.get("cam_id", table.get("port", digits[1] if digits else key))
        name = f"cam_{cam_id}"
        if all(table.get(k) is None for k in _EXTRINSIC) or all(table.get(k) is None for k in _INTRINSIC):
            skipped.append(name)
            continue
        cameras.append(_camera(name, table, path))
        if table.get("ignore") is True:
            ignored.append(name)
    if skipped:
        warnings.warn(f"{path}: not calibrated yet (no intrinsics or no extrinsics), skipped: "
                      f"{', '.join(skipped)}", stacklevel=2)
    if ignored:
        warnings.warn(f"{path}: marked ignore = true in caliscope, kept: {', '.join(ignored)}", stacklevel=2)
    stem = Path(path).stem
    name = Path(path).resolve().parent.name if stem in ("camera_array", "config") else stem
    return fields.rig(path, cameras, name=name or stem,
                      description=f"imported from caliscope file {Path(path).name}")


def _camera(name: str, table: dict, path: str | Path) -> Camera:
    at = fields.where(path, name)
    need = "a calibrated camera needs size, matrix, distortions, rotation and translation"
    g = lambda key: fields.get(table, key, at, need)  # noqa: E731
    width, height = fields.image_size(g("size"), at, "size")
    rot = fields.array(g("rotation"), [(3, 3), (3,)], at, "rotation")
    R = rotvec_to_matrix(rot) if rot.shape == (3,) else fields.rotation(rot, at, "rotation")
    fisheye = fields.flag(table.get("fisheye", False), at, "fisheye")
    return fields.camera(
        path, name=name, width=width, height=height, K=fields.array(g("matrix"), (3, 3), at, "matrix"),
        dist=fields.array(g("distortions"), None, at, "distortions").ravel(), R=R,
        t=fields.array(g("translation"), (3,), at, "translation"), model="fisheye" if fisheye else "pinhole")


def cam_ids(rig: Rig) -> list[int]:
    """caliscope cam_id per camera: each name's trailing digits, or 0..N-1 when some lack them or repeat."""
    found = [_DIGITS.search(c.name) for c in rig]
    ids = [int(m[1]) for m in found if m]
    if len(ids) == len(rig) and len(set(ids)) == len(ids):
        return ids
    return list(range(len(rig)))


def write(rig: Rig, path: str | Path) -> None:
    """Write a caliscope camera_array.toml ([cameras.<cam_id>] tables)."""
    path = Path(path)
    for cam in rig:
        carried_fields.require_lens(cam, "caliscope", path, fisheye=True, max_dist=5)
    carried_fields.warn_dropped(rig, "caliscope", path)
    ids = cam_ids(rig)
    renamed = [f"{c.name} -> cam_{i}" for c, i in zip(rig, ids, strict=True) if c.name != f"cam_{i}"]
    if renamed:
        warnings.warn(f"{path}: caliscope files have no camera names; they will read back as "
                      f"{', '.join(renamed)}", stacklevel=2)
    parts = [toml_text.comment(f"{rig.name}: caliscope camera array written by mocap.\n"
                               "rotation: world->camera; translation: metres. "
                               "error, exposure and grid_count are unknown here (0).")]
    for c, i in zip(rig, ids, strict=True):
        dist = c.dist if c.model == "fisheye" else carried_fields.padded_dist(c, 5)
        items = [("cam_id", i), ("rotation_count", 0), ("error", 0.0), ("exposure", 0), ("grid_count", 0),
                 ("ignore", False), ("fisheye", True if c.model == "fisheye" else None),
                 ("size", [c.width, c.height]), ("matrix", c.K), ("distortions", np.asarray(dist)),
                 ("translation", c.t), ("rotation", c.R), ("verified_resolutions", [[c.width, c.height]])]
        parts.append(toml_text.table(f"[cameras.{i}]", items))
    path.write_text("\n".join(parts), encoding="utf-8")
