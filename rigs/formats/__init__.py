"""Rig files in every format mocap reads and writes, chosen by name or detected from the content.

Formats (names as on the command line): ``mocap`` (our rig.toml), ``pose2sim`` (Pose2Sim/anipose
calib.toml; ``anipose`` is an alias), ``opencv`` (EasyMocap's intri.yml + extri.yml folder),
``panoptic`` (CMU Panoptic JSON), ``shelf`` (Shelf/Campus/VoxelPose JSON), ``caliscope``
(camera_array.toml) and ``qualisys`` (.qca.txt, read only). Each module documents its geometry: units,
direction of the transform, axis conventions. Importing keeps the source's world frame, in metres.

    rig = load_rig("studio-4")                 # a preset shipped in rigs/presets/
    rig = load_rig("Calib.qca.txt")            # any format, detected from the content
    save_rig(rig, "calib.toml", "pose2sim")
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType, ModuleType

from rigs.camera import Rig, RigError
from rigs.formats import caliscope, fields, mocap_toml, opencv_yaml, panoptic, pose2sim, qualisys, shelf

_MODULES: MappingProxyType[str, ModuleType] = MappingProxyType({
    "mocap": mocap_toml,
    "pose2sim": pose2sim,
    "opencv": opencv_yaml,
    "panoptic": panoptic,
    "shelf": shelf,
    "caliscope": caliscope,
    "qualisys": qualisys,
})
FORMATS: tuple[str, ...] = tuple(_MODULES)
ALIASES: MappingProxyType[str, str] = MappingProxyType({"anipose": "pose2sim"})
WRITABLE: tuple[str, ...] = tuple(name for name, m in _MODULES.items() if hasattr(m, "write"))
# Most specific first: caliscope's legacy config.toml would also pass pose2sim's test.
_DETECTION_ORDER = ("opencv", "qualisys", "panoptic", "shelf", "mocap", "caliscope", "pose2sim")
_PRESETS = Path(__file__).resolve().parent.parent / "presets"
_LOOKS = ("mocap: TOML with [rig] and [[camera]]; pose2sim: TOML tables with matrix and rotation; "
          "opencv: a folder with intri.yml and extri.yml; "
          "panoptic: JSON {\"cameras\": [... \"distCoef\" ...]}; "
          "shelf: JSON keyed by camera with fx, T; caliscope: TOML [cameras.N] with matrix; "
          "qualisys: XML <calibration><cameras>")


def canonical_format(fmt: str) -> str:
    """The format's canonical name (aliases resolved, case ignored), or a RigError listing the formats."""
    name = ALIASES.get(fmt.lower(), fmt.lower()) if isinstance(fmt, str) else None
    if name not in _MODULES:
        raise RigError(f"unknown rig format {fmt!r}; formats: {', '.join(FORMATS)} (anipose = pose2sim)")
    return name


def preset_names() -> tuple[str, ...]:
    """Names of the rigs shipped in rigs/presets/ (load them with load_rig(name))."""
    return tuple(sorted(p.stem for p in _PRESETS.glob("*.toml")))


def _resolve(source: str | Path) -> Path:
    """The file or folder a source names: an existing path, else a preset, else a RigError."""
    path = Path(source)
    if path.exists():
        return path
    if isinstance(source, str) and source in preset_names():
        return _PRESETS / f"{source}.toml"
    raise RigError(f"no such rig file or preset: {source} (presets: {', '.join(preset_names())})")


def detect_format(path: str | Path) -> str:
    """The format of a rig file or folder, from its content (never its extension)."""
    path = Path(path)
    if not path.exists():
        raise RigError(f"no such rig file or folder: {path}")
    for name in _DETECTION_ORDER:
        if _MODULES[name].sniff(path):
            return name
    if path.is_dir():
        raise RigError(f"{path}: a folder is a rig only when it holds EasyMocap's intri.yml and extri.yml")
    raise RigError(f"{path}: not a rig file in any known format{_content_hint(path)}. Formats: {_LOOKS}")


def _content_hint(path: Path) -> str:
    """Why the content is not a rig, when it looks like JSON, XML, OpenCV YAML or TOML but is broken."""
    try:
        head = path.read_text(encoding="utf-8").lstrip()
    except (OSError, UnicodeDecodeError):
        return " (not a text file)"
    if head.startswith("%YAML"):
        return " (OpenCV YAML: EasyMocap needs intri.yml and extri.yml side by side)"
    parse = {"{": fields.load_json, "<": qualisys.parse_xml}.get(head[:1], fields.load_toml)
    try:
        parse(path)
    except RigError as e:
        if not (head.startswith("[") and fields.quietly(fields.load_json, path) is not None):
            return f" ({str(e).removeprefix(f'{path}: ')})"
    return " (XML, but not <calibration><cameras>)" if head.startswith("<") else ""


def load_rig(source: str | Path, fmt: str | None = None) -> Rig:
    """A rig from a file or folder (format detected when fmt is None) or a preset name like 'studio-4'."""
    path = _resolve(source)
    name = detect_format(path) if fmt is None else canonical_format(fmt)
    return _MODULES[name].read(path)


def save_rig(rig: Rig, dest: str | Path, fmt: str = "mocap") -> Path:
    """Write a rig in a format (a folder for opencv); returns the path written."""
    name = canonical_format(fmt)
    if name not in WRITABLE:
        raise RigError(f"{name} files can be read but not written; write one of: {', '.join(WRITABLE)}")
    if not isinstance(rig, Rig):
        raise RigError(f"save_rig: expected a Rig, got {type(rig).__name__}")
    dest = Path(dest)
    if name != "opencv":
        if dest.is_dir():
            raise RigError(f"{dest}: is a folder; give the file to write ({name} rigs are single files)")
        dest.parent.mkdir(parents=True, exist_ok=True)
    _MODULES[name].write(rig, dest)
    return dest


__all__ = ["ALIASES", "FORMATS", "WRITABLE", "canonical_format", "detect_format", "load_rig", "preset_names",
           "save_rig"]
