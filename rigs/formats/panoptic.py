"""CMU Panoptic Studio ``calibration_<sequence>.json``.

``{"calibDataSource": "160906_calib_norm", "cameras": [{"name": "00_03", "type": "hd", "resolution":
[w, h], "panel": 0, "node": 3, "K": 3x3, "distCoef": [k1, k2, p1, p2, k3], "R": 3x3, "t": [[x], [y],
[z]]}, ...]}``.

Geometry: world->camera, ``x_cam = R @ x_world + t`` with t in **centimetres** (read as t / 100, written
as t * 100). Pixels and OpenCV distortion as usual. The Panoptic world has the floor normal along -y
(gravity along +y), so rigs read from it say ``up = "-y"``. VoxelPose turns it Z-up (its Shelf-style
demo calibration is this world with axes (x, y, z) -> (x, z, -y)); importing keeps the world as it is.

Names are "PP_NN" (panel, node): panel 0 holds the 31 HD cameras, 50 the 10 Kinects, 1-20 the 480 VGA
cameras. ``read(path, types=("hd",))`` keeps only some camera types. The writer derives type, panel and
node from names of that form and leaves them out for other names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from rigs.camera import Camera, Rig, RigError
from rigs.formats import carried_fields, fields

CM = 100.0  # Panoptic lengths are centimetres
_NAME = re.compile(r"^(\d{2})_(\d{2})$")
_REQUIRED = "every camera needs name, resolution, K, distCoef, R and t"


def sniff(path: str | Path) -> bool:
    """True for JSON with a "cameras" list whose entries (some of them) have "distCoef"."""
    data = fields.quietly(fields.load_json, path)
    cams = data.get("cameras") if isinstance(data, dict) else None
    return isinstance(cams, list) and any(isinstance(c, dict) and "distCoef" in c for c in cams)


def read(path: str | Path, types: Iterable[str] | None = None) -> Rig:
    """Read a Panoptic calibration (all cameras, or those whose "type" is in ``types``)."""
    data = fields.load_json(path)
    cams = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cams, list):
        raise RigError(f"{path}: cameras: missing; a Panoptic calibration is {{\"cameras\": [...]}}")
    if types is not None:
        types = set(types)
        found = sorted({str(c.get("type")) for c in cams if isinstance(c, dict)})
        cams = [c for c in cams if isinstance(c, dict) and c.get("type") in types]
        if not cams:
            raise RigError(f"{path}: type: no camera of type {', '.join(sorted(types))}; this file has "
                           f"{', '.join(found)}")
    cameras = [_camera(c, i, path) for i, c in enumerate(cams)]
    source = data.get("calibDataSource")
    name = source if isinstance(source, str) and source else Path(path).stem
    return fields.rig(path, cameras, name=name, up="-y",
                      description=f"imported from panoptic file {Path(path).name}")


def _camera(table: dict, index: int, path: str | Path) -> Camera:
    name = table.get("name") if isinstance(table, dict) else None
    at = fields.where(path, name if isinstance(name, str) else f"#{index + 1}")
    name = fields.text(fields.get(table, "name", at, _REQUIRED), at, "name")
    width, height = fields.image_size(fields.get(table, "resolution", at, _REQUIRED), at, "resolution")
    t = fields.array(fields.get(table, "t", at, _REQUIRED), [(3, 1), (3,), (1, 3)], at, "t").ravel()
    return fields.camera(
        path, name=name, width=width, height=height,
        K=fields.array(fields.get(table, "K", at, _REQUIRED), (3, 3), at, "K"),
        dist=fields.array(fields.get(table, "distCoef", at, _REQUIRED), None, at, "distCoef").ravel(),
        R=fields.array(fields.get(table, "R", at, _REQUIRED), (3, 3), at, "R"), t=t / CM)


def panel_node_type(name: str) -> dict:
    """{"type", "panel", "node"} implied by a Panoptic camera name "PP_NN", or {} for other names."""
    m = _NAME.match(name)
    if not m:
        return {}
    panel, node = int(m[1]), int(m[2])
    kind = "hd" if panel == 0 else "kinect-color" if panel == 50 else "vga"
    return {"type": kind, "panel": panel, "node": node}


def write(rig: Rig, path: str | Path) -> None:
    """Write a Panoptic calibration (t in centimetres, distCoef padded to 5)."""
    path = Path(path)
    for cam in rig:
        carried_fields.require_lens(cam, "panoptic", path, max_dist=5)
    carried_fields.warn_dropped(rig, "panoptic", path)
    blocks = []
    for c in rig:
        meta = panel_node_type(c.name)
        entries = {"name": c.name, **({"type": meta["type"]} if meta else {}),
                   "resolution": [c.width, c.height],
                   **({"panel": meta["panel"], "node": meta["node"]} if meta else {}),
                   "K": c.K.tolist(), "distCoef": carried_fields.padded_dist(c, 5).tolist(),
                   "R": c.R.tolist(), "t": (c.t * CM)[:, None].tolist()}
        body = ",\n".join(f"\t\t\t{json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items())
        blocks.append("\t\t{\n" + body + "\n\t\t}")
    text = ("{\n\t\"calibDataSource\": " + json.dumps(rig.name) + ",\n\t\"cameras\": [\n" + ",\n".join(blocks)
            + "\n\t]\n}\n")
    path.write_text(text, encoding="utf-8")

