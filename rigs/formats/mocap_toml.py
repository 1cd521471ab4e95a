"""Our own rig file, ``rig.toml``: the one format that keeps everything a ``Rig`` holds.

Layout: a ``[rig]`` table (name, ``units = "m"``, up, clock, simulated, description), an optional
``[board]`` table (the calibration board, see ``rigs.board``) and one ``[[camera]]`` table per camera
(name, model, source, width, height, fps, K, dist, R, t, endpoint).

Geometry: lengths in metres, pixels for K; extrinsics map world to camera, ``x_cam = R @ x_world + t``,
camera axes x right, y down, z forward; pixel (0, 0) is the centre of the top-left pixel; ``dist`` is
OpenCV's ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])`` for ``pinhole`` and ``(k1, k2, k3, k4)`` for
``fisheye``. ``up`` names the world axis pointing up (``z`` once the floor is aligned).

Floats are written with ``repr`` (shortest exact form), so write -> read returns the same rig bit for
bit; matrices are written one row per line. ``to_dict``/``from_dict`` give the same tables for files
that embed a rig (a session's rig snapshot).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from rigs.board import Board, BoardError
from rigs.camera import Camera, Rig, RigError
from rigs.formats import fields, toml_text

RIG_KEYS = ("name", "units", "up", "clock", "simulated", "description")
CAMERA_KEYS = ("name", "model", "source", "width", "height", "fps", "K", "dist", "R", "t", "endpoint",
               "clock_offset_ns")
_REQUIRED = "every [[camera]] needs name, width, height, K, dist, R and t"


def sniff(path: str | Path) -> bool:
    """True when the file is TOML with a [rig] table and [[camera]] tables."""
    data = fields.quietly(fields.load_toml, path)
    return (isinstance(data, dict) and isinstance(data.get("rig"), dict)
            and isinstance(data.get("camera"), list))


def read(path: str | Path) -> Rig:
    """Read a rig.toml file."""
    return from_dict(fields.load_toml(path), path)


def write(rig: Rig, path: str | Path) -> None:
    """Write a rig.toml file (exact floats, one matrix row per line, a header comment)."""
    Path(path).write_text(to_text(rig), encoding="utf-8")


def to_text(rig: Rig) -> str:
    """The rig.toml text of a rig."""
    data = to_dict(rig)
    head = f"{rig.name}: SIMULATED rig. No real camera has these parameters.\n" if rig.simulated else ""
    head += (f"{rig.description}\n" if rig.description else "")
    head += ("Rig file (mocap): lengths in metres, K in pixels, x_cam = R @ x_world + t,\n"
             "dist = OpenCV (k1, k2, p1, p2[, k3...]); pixel (0, 0) is the centre of the top-left pixel.")
    parts = [toml_text.comment(head) + toml_text.table("[rig]", data["rig"].items())]
    if "board" in data:
        parts.append(toml_text.table("[board]", data["board"].items()))
    parts += [toml_text.table("[[camera]]", cam.items()) for cam in data["camera"]]
    return "\n".join(parts)


def to_dict(rig: Rig) -> dict[str, Any]:
    """{"rig": {...}, "board": {...}, "camera": [{...}, ...]} with plain Python values (board, fps and
    endpoint only when set)."""
    meta = {k: getattr(rig, k) for k in RIG_KEYS}
    cams = []
    for c in rig:
        cam = {"name": c.name, "model": c.model, "source": c.source, "width": c.width, "height": c.height,
               "fps": c.fps, "K": c.K.tolist(), "dist": c.dist.tolist(), "R": c.R.tolist(), "t": c.t.tolist()}
        if c.fps is None:
            del cam["fps"]
        if c.endpoint:
            cam["endpoint"] = c.endpoint
        if c.clock_offset_ns:
            cam["clock_offset_ns"] = c.clock_offset_ns
        cams.append(cam)
    out = {"rig": meta, "camera": cams}
    if rig.board is not None:
        out["board"] = rig.board.to_table()
    return out


def from_dict(data: dict, path: str | Path = "<rig>") -> Rig:
    """A Rig from parsed rig.toml tables; errors name ``path``, the camera and the field."""
    meta = data.get("rig")
    if not isinstance(meta, dict):
        raise RigError(f"{path}: [rig]: missing; a rig file starts with a [rig] table "
                       f"(name, units, up, clock)")
    tables = data.get("camera")
    if not isinstance(tables, list) or not tables:
        raise RigError(f"{path}: [[camera]]: missing; a rig file has one [[camera]] table per camera")
    _warn_unknown(meta, RIG_KEYS, f"{path}: [rig]")
    cameras = [_camera(t, i, path) for i, t in enumerate(tables)]
    at = f"{path}: [rig]"
    kwargs = {
        "name": fields.text(meta.get("name", Path(str(path)).stem), at, "name"),
        "units": fields.text(meta.get("units", "m"), at, "units"),
        "up": fields.text(meta.get("up", "z"), at, "up"),
        "clock": fields.text(meta.get("clock", "monotonic"), at, "clock"),
        "simulated": fields.flag(meta.get("simulated", False), at, "simulated"),
        "description": fields.text(meta.get("description", ""), at, "description"),
        "board": None if data.get("board") is None else _board(data["board"], path),
    }
    return fields.rig(path, cameras, **kwargs)


def _board(table: Any, path: str | Path) -> Board:
    try:
        return Board.from_table(table, f"{path}: [board]")
    except BoardError as e:
        raise RigError(str(e)) from None


def _camera(table: Any, index: int, path: str | Path) -> Camera:
    if not isinstance(table, dict):
        raise RigError(f"{path}: [[camera]] #{index + 1}: expected a table, got {table!r}")
    name = table.get("name")
    at = fields.where(path, name if isinstance(name, str) else f"#{index + 1}")
    name = fields.text(fields.get(table, "name", at, _REQUIRED), at, "name")
    _warn_unknown(table, CAMERA_KEYS, at)
    fps = table.get("fps")
    return fields.camera(
        path,
        name=name,
        model=fields.text(table.get("model", "pinhole"), at, "model"),
        source=fields.text(table.get("source", ""), at, "source"),
        width=fields.whole(fields.get(table, "width", at, _REQUIRED), at, "width"),
        height=fields.whole(fields.get(table, "height", at, _REQUIRED), at, "height"),
        fps=None if fps is None else fields.number(fps, at, "fps"),
        K=fields.array(fields.get(table, "K", at, _REQUIRED), (3, 3), at, "K"),
        dist=fields.array(fields.get(table, "dist", at, _REQUIRED), [(0,), (4,), (5,), (8,)], at, "dist"),
        R=fields.array(fields.get(table, "R", at, _REQUIRED), (3, 3), at, "R"),
        t=fields.array(fields.get(table, "t", at, _REQUIRED), (3,), at, "t"),
        endpoint=fields.text(table.get("endpoint", ""), at, "endpoint"),
        clock_offset_ns=table.get("clock_offset_ns", 0),
    )


def _warn_unknown(table: dict, known: tuple[str, ...], at: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        warnings.warn(f"{at}: unknown field(s) {', '.join(unknown)} ignored (known: {', '.join(known)})",
                      stacklevel=4)
