"""Reading the fields of a parsed rig file, with errors that say which file, camera and field is wrong.

Every reader goes through these functions so a bad file gets one ``RigError`` of the same shape:
``<file>: camera '<name>': <field>: <what is wrong>; <what to do>``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rigs.camera import Camera, Rig, RigError


def where(path: str | Path, camera: str | None = None) -> str:
    """The location prefix of an error: the file, and the camera when there is one."""
    return f"{path}: camera {camera!r}" if camera is not None else f"{path}"


def read_text(path: str | Path) -> str:
    """The file's text, or one RigError saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RigError(f"{path}: is a folder, expected a file") from None
    except UnicodeDecodeError:
        raise RigError(f"{path}: not a text file (not UTF-8); is this really a calibration file?") from None
    except OSError as e:
        raise RigError(f"{path}: cannot read: {e.strerror or e}") from None


def load_toml(path: str | Path) -> dict:
    """The parsed TOML document, or a RigError naming the file and the syntax error."""
    try:
        return tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:
        raise RigError(f"{path}: not valid TOML: {e}") from None


def load_json(path: str | Path) -> Any:
    """The parsed JSON document, or a RigError naming the file and the syntax error."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise RigError(f"{path}: not valid JSON: {e}") from None


def quietly(parse: Callable[[str | Path], Any], path: str | Path) -> Any:
    """parse(path), or None when it fails for any reason (for format sniffing, which must not raise)."""
    try:
        return parse(path)
    except Exception:  # noqa: BLE001 - sniffing answers yes or no, whatever the content
        return None


def get(table: Mapping, key: str, at: str, hint: str = "") -> Any:
    """table[key], or a RigError saying the field is missing (and what the format expects)."""
    if not isinstance(table, Mapping):
        raise RigError(f"{at}: expected a table of fields, got {type(table).__name__}")
    if key not in table or table[key] is None:
        raise RigError(f"{at}: {key}: missing{'; ' + hint if hint else ''}")
    return table[key]


Shapes = Sequence[tuple[int, ...]] | tuple[int, ...] | None


def array(value: Any, shapes: Shapes, at: str, key: str) -> np.ndarray:
    """value as a float64 array of one of the allowed shapes (None: any), or a located RigError."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RigError(f"{at}: {key}: expected numbers, got {value!r}") from None
    allowed = [shapes] if shapes and isinstance(shapes[0], int) else shapes
    if allowed is not None and arr.shape not in [tuple(s) for s in allowed]:
        want = " or ".join(str(tuple(s)) for s in allowed)
        raise RigError(f"{at}: {key}: expected shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise RigError(f"{at}: {key}: contains NaN or infinite values")
    return arr


def number(value: Any, at: str, key: str) -> float:
    """value as a finite float, or a located RigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RigError(f"{at}: {key}: expected a number, got {value!r}")
    if not np.isfinite(value):
        raise RigError(f"{at}: {key}: expected a finite number, got {value!r}")
    return float(value)


def whole(value: Any, at: str, key: str) -> int:
    """A positive whole number of pixels (1088 or 1088.0), or a located RigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RigError(f"{at}: {key}: expected a whole number of pixels, got {value!r}")
    if not float(value).is_integer() or value <= 0:
        raise RigError(f"{at}: {key}: expected a positive whole number of pixels, got {value!r}")
    return int(value)


def image_size(value: Any, at: str, key: str) -> tuple[int, int]:
    """[width, height] as two positive ints, or a located RigError."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RigError(f"{at}: {key}: expected [width, height], got {value!r}")
    return whole(value[0], at, key), whole(value[1], at, key)


def text(value: Any, at: str, key: str) -> str:
    """value as a string, or a located RigError."""
    if not isinstance(value, str):
        raise RigError(f"{at}: {key}: expected a string, got {value!r}")
    return value


def flag(value: Any, at: str, key: str) -> bool:
    """value as a boolean, or a located RigError."""
    if not isinstance(value, bool):
        raise RigError(f"{at}: {key}: expected true or false, got {value!r}")
    return value


def camera(path: str | Path, **fields: Any) -> Camera:
    """Camera(**fields), its validation errors prefixed with the file they come from."""
    try:
        return Camera(**fields)
    except RigError as e:
        raise RigError(f"{path}: {e}") from None


def rig(path: str | Path, cameras: Iterable[Camera], **meta: Any) -> Rig:
    """Rig(cameras, **meta), its validation errors prefixed with the file they come from."""
    cameras = tuple(cameras)
    if not cameras:
        raise RigError(f"{path}: no cameras found; is this the right file?")
    try:
        return Rig(cameras, **meta)
    except RigError as e:
        raise RigError(f"{path}: {e}") from None


def rotation(value: Any, at: str, key: str, tol: float = 1e-4) -> np.ndarray:
    """value as a 3x3 rotation matrix (orthonormal, det +1, to tol), or a located RigError."""
    R = array(value, (3, 3), at, key)
    ortho = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if ortho > tol or abs(det - 1) > tol:
        raise RigError(f"{at}: {key}: not a rotation (|R R^T - I| = {ortho:.2g}, det = {det:.6g}); "
                       f"expected an orthonormal matrix with det +1")
    return R
