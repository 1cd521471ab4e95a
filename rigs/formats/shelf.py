"""Shelf / Campus / VoxelPose calibration JSON.

A dict keyed by camera ("0", "1", ...) or VoxelPose's ``{"customized_sequence": [...]}`` list; per
camera ``{"R": 3x3, "T": [[x], [y], [z]], "fx", "fy", "cx", "cy", "k": [[k1], [k2], [k3]],
"p": [[p1], [p2]]}``.

Geometry: R is world->camera but T is the camera **centre** in **millimetres**: ``x_cam = R (X - T)``,
so ``t = -R T / 1000``. Distortion becomes ours as ``(k1, k2, p1, p2, k3)``; K has no skew term. The
Shelf and Campus worlds are Z-up.

These files store neither names nor image sizes. Names are the dict keys ("0".."N-1" for the list
form). The size comes from "width"/"height" keys when present (our writer adds them; VoxelPose's readers
ignore extra keys), else from ``read(path, size=(w, h))``, else it is guessed from the principal points
(Shelf 1032x776, Campus 360x288 and Panoptic HD 1920x1080 come out right) with one warning. A fisheye
lens, a skewed K or more than 5 distortion coefficients cannot be written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rigs.camera import Rig, RigError
from rigs.formats import carried_fields, fields, image_size

MM = 1000.0  # Shelf lengths are millimetres
SEQUENCE = "customized_sequence"
_REQUIRED = "every camera needs R, T (centre, mm), fx, fy, cx, cy, k (3) and p (2)"


def sniff(path: str | Path) -> bool:
    """True for JSON keyed by camera (or a customized_sequence list) of dicts, some with "fx" and "T"."""
    data = fields.quietly(fields.load_json, path)
    if not isinstance(data, dict) or not data:
        return False
    cams = data[SEQUENCE] if isinstance(data.get(SEQUENCE), list) else list(data.values())
    return (bool(cams) and all(isinstance(c, dict) for c in cams)
            and any("fx" in c and "T" in c for c in cams))


def _entries(data, path: str | Path) -> list[tuple[str, dict]]:
    if isinstance(data, dict) and isinstance(data.get(SEQUENCE), list):
        return [(str(i), c) for i, c in enumerate(data[SEQUENCE])]
    if isinstance(data, dict) and data:
        return list(data.items())
    raise RigError(f"{path}: expected a JSON object keyed by camera (\"0\": {{\"R\", \"T\", \"fx\", ...}}) "
                   f"or {{\"{SEQUENCE}\": [...]}}")


def read(path: str | Path, size: tuple[int, int] | None = None) -> Rig:
    """Read a Shelf/Campus/VoxelPose calibration; size=(w, h) for files without width/height."""
    entries = _entries(fields.load_json(path), path)
    partial = [_camera(name, table, path) for name, table in entries]
    sizes = [p.pop("size") for p in partial]
    sizes = image_size.fill_missing(
        sizes, [p["K"][:2, 2] for p in partial], size, f"{path}: no image size in the file",
        "Give it with rigs.formats.shelf.read(path, size=(w, h)) or add \"width\" and \"height\" to each camera")
    cameras = [fields.camera(path, width=w, height=h, **p) for p, (w, h) in zip(partial, sizes, strict=True)]
    return fields.rig(path, cameras, name=Path(path).stem,
                      description=f"imported from shelf file {Path(path).name}")


def _camera(name: str, table: dict, path: str | Path) -> dict:
    at = fields.where(path, name)
    if not isinstance(table, dict):
        raise RigError(f"{at}: expected an object with R, T, fx, fy, cx, cy, k, p; got {table!r}")
    g = lambda key: fields.get(table, key, at, _REQUIRED)  # noqa: E731
    R = fields.array(g("R"), (3, 3), at, "R")
    T = fields.array(g("T"), [(3, 1), (3,), (1, 3)], at, "T").ravel()
    k = fields.array(g("k"), [(3, 1), (3,), (1, 3)], at, "k").ravel()
    p = fields.array(g("p"), [(2, 1), (2,), (1, 2)], at, "p").ravel()
    fx, fy, cx, cy = (fields.number(g(key), at, key) for key in ("fx", "fy", "cx", "cy"))
    size = None
    if "width" in table or "height" in table:
        size = (fields.whole(g("width"), at, "width"), fields.whole(g("height"), at, "height"))
    return {"name": name, "K": np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]),
            "dist": np.array([k[0], k[1], p[0], p[1], k[2]]), "R": R, "t": -R @ T / MM, "size": size}


def write(rig: Rig, path: str | Path) -> None:
    """Write a Shelf-style calibration keyed by camera name, with width and height added.

    T = -R^-1 t (solved, not R^T t) so that files whose R is rounded (Shelf's has 6 decimals) read back
    to the same t.
    """
    path = Path(path)
    for cam in rig:
        carried_fields.require_lens(cam, "shelf", path, skew=False, max_dist=5)
    carried_fields.warn_dropped(rig, "shelf", path)
    blocks = []
    for c in rig:
        d = carried_fields.padded_dist(c, 5)
        centre_mm = -np.linalg.solve(c.R, c.t) * MM
        entries = {"R": c.R.tolist(), "T": centre_mm[:, None].tolist(), "fx": float(c.K[0, 0]),
                   "fy": float(c.K[1, 1]), "cx": float(c.K[0, 2]), "cy": float(c.K[1, 2]),
                   "k": [[d[0]], [d[1]], [d[4]]], "p": [[d[2]], [d[3]]], "width": c.width, "height": c.height}
        body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items())
        blocks.append(f"  {json.dumps(c.name)}: {{\n{body}\n  }}")
    path.write_text("{\n" + ",\n".join(blocks) + "\n}\n", encoding="utf-8")
