"""EasyMocap's OpenCV YAML pair: a folder holding ``intri.yml`` and ``extri.yml``.

Both files are OpenCV FileStorage YAML (``%YAML:1.0``, ``!!opencv-matrix``) and start with ``names``,
the list of cameras. Per camera ``<name>``:

* ``intri.yml``: ``K_<name>`` (3x3, pixels), ``dist_<name>`` (1xN, OpenCV ``(k1, k2, p1, p2, k3)``;
  EasyMocap also reads ``D_<name>``), and optionally the image size ``H_<name>``, ``W_<name>``;
* ``extri.yml``: ``R_<name>`` (3x1 Rodrigues vector of the world->camera rotation), ``Rot_<name>`` (the
  same rotation as a 3x3 matrix), ``T_<name>`` (3x1 translation), so ``x_cam = R @ x_world + T``.
  EasyMocap requires T in metres.

EasyMocap itself builds R from ``R_`` and ignores ``Rot_``; so does this reader, falling back to
``Rot_`` when ``R_`` is absent and refusing a file where the two disagree. Without ``H_``/``W_`` the
image size is guessed from the principal point (with a warning); ``read(path, size=(w, h))`` gives it.
EasyMocap has no fisheye model and no place for fps or sources. Camera names must be usable inside a
YAML key (letters, digits, ``_`` and ``-``).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from rigs.camera import Camera, Rig, RigError
from rigs.formats import carried_fields, fields, image_size
from rigs.rotations import matrix_to_rotvec, rotvec_to_matrix

INTRI, EXTRI = "intri.yml", "extri.yml"
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ROT_AGREE = 1e-5  # R_ and Rot_ written with 6 decimals (EasyMocap) agree to about 1e-6
_INTRI_KEY = re.compile(r"^K_\S+:\s*!!opencv-matrix", re.M)
_EXTRI_KEY = re.compile(r"^(R|Rot|T)_\S+:\s*!!opencv-matrix", re.M)


def sniff(path: str | Path) -> bool:
    """True for a folder holding intri.yml and extri.yml, or for either file (any file name)."""
    try:
        return _pair(Path(path)) is not None
    except Exception:  # noqa: BLE001 - sniffing answers yes or no
        return False


def _yaml_head(path: Path) -> str | None:
    """The text of an OpenCV YAML file (None when it is not one)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text if text.lstrip().startswith("%YAML") else None


def _pair(path: Path) -> tuple[Path, Path] | None:
    """(intri, extri) for a folder or for one of the two files; None when this is not such a pair."""
    if path.is_dir():
        intri, extri = path / INTRI, path / EXTRI
        return (intri, extri) if intri.is_file() and extri.is_file() else None
    text = _yaml_head(path)
    if text is None:
        return None
    if _INTRI_KEY.search(text):
        other = path.with_name(path.name.replace("intri", "extri"))
        other = other if other != path and other.is_file() else path.with_name(EXTRI)
        return (path, other) if other.is_file() else None
    if _EXTRI_KEY.search(text):
        other = path.with_name(path.name.replace("extri", "intri"))
        other = other if other != path and other.is_file() else path.with_name(INTRI)
        return (other, path) if other.is_file() else None
    return None


def _open(path: Path) -> cv2.FileStorage:
    if not path.is_file():
        raise RigError(f"{path}: no such file; an EasyMocap calibration is a folder with {INTRI} and {EXTRI}")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as e:
        reason = str(e).strip().splitlines()[-1]
        raise RigError(f"{path}: not a readable OpenCV YAML file: {reason}") from None
    if not fs.isOpened():
        raise RigError(f"{path}: not a readable OpenCV YAML file")
    return fs


def _names(fs: cv2.FileStorage, path: Path) -> list[str]:
    node = fs.getNode("names")
    if node.empty() or not node.isSeq():
        raise RigError(f"{path}: names: missing; EasyMocap files start with the list of camera names")
    names = []
    for i in range(node.size()):
        item = node.at(i)
        names.append(item.string() if item.isString() else str(int(item.real())))
    return names


def _mat(fs: cv2.FileStorage, key: str) -> np.ndarray | None:
    node = fs.getNode(key)
    return None if node.empty() else node.mat()


def read(path: str | Path, size: tuple[int, int] | None = None) -> Rig:
    """Read an EasyMocap folder (or its intri.yml/extri.yml); size=(w, h) when the file has none."""
    path = Path(path)
    pair = _pair(path)
    if pair is None:
        if path.is_dir():
            raise RigError(f"{path}: expected {INTRI} and {EXTRI} in this folder (EasyMocap calibration)")
        raise RigError(f"{path}: not an EasyMocap {INTRI}/{EXTRI} file, or its partner file is missing "
                       f"from the same folder")
    intri_path, extri_path = pair
    intri, extri = _open(intri_path), _open(extri_path)
    names = _names(intri, intri_path)
    missing = sorted(set(names) - set(_names(extri, extri_path)))
    if missing:
        raise RigError(f"{extri_path}: camera {missing[0]!r}: names: listed in {intri_path.name} but not "
                       f"here; both files must list the same cameras")
    partial = [_camera(n, intri, extri, intri_path, extri_path) for n in names]
    sizes = [p.pop("size") for p in partial]
    if size is not None:
        sizes = [tuple(size)] * len(partial)
    sizes = image_size.fill_missing(
        sizes, [p["K"][:2, 2] for p in partial], None, f"{intri_path}: no H_/W_ image size for some cameras",
        f"Add H_<name>/W_<name> to {INTRI} or pass size=(w, h) to rigs.formats.opencv_yaml.read")
    cameras = [fields.camera(intri_path, width=w, height=h, **p)
               for p, (w, h) in zip(partial, sizes, strict=True)]
    folder = intri_path.parent
    return fields.rig(folder, cameras, name=folder.resolve().name or "rig",
                      description=f"imported from EasyMocap files in {folder.resolve().name}")


def _camera(name: str, intri: cv2.FileStorage, extri: cv2.FileStorage, ipath: Path, epath: Path) -> dict:
    ai, ae = fields.where(ipath, name), fields.where(epath, name)
    K = _mat(intri, f"K_{name}")
    if K is None:
        raise RigError(f"{ai}: K_{name}: missing; every camera in names needs K_<name> (3x3)")
    dist = _mat(intri, f"dist_{name}")
    dist = _mat(intri, f"D_{name}") if dist is None else dist
    dist = np.zeros(0) if dist is None else fields.array(dist, None, ai, f"dist_{name}").ravel()
    rvec, rot, T = _mat(extri, f"R_{name}"), _mat(extri, f"Rot_{name}"), _mat(extri, f"T_{name}")
    if T is None:
        raise RigError(f"{ae}: T_{name}: missing; every camera needs T_<name> (3x1, metres)")
    if rvec is None and rot is None:
        raise RigError(f"{ae}: R_{name}: missing; every camera needs R_<name> (Rodrigues 3x1) "
                       f"or Rot_<name> (3x3)")
    if rvec is not None:
        R = rotvec_to_matrix(fields.array(rvec, [(3, 1), (1, 3), (3,)], ae, f"R_{name}"))
        if rot is not None:
            rot = fields.array(rot, (3, 3), ae, f"Rot_{name}")
            if np.abs(rot - R).max() > _ROT_AGREE:
                raise RigError(f"{ae}: Rot_{name}: disagrees with R_{name} by {np.abs(rot - R).max():.2g}; "
                               f"EasyMocap uses R_ (Rodrigues): fix or delete Rot_{name}")
    else:
        R = fields.rotation(rot, ae, f"Rot_{name}")
    H, W = (intri.getNode(f"{k}_{name}") for k in ("H", "W"))
    size = None
    if not H.empty() and not W.empty():
        size = (fields.whole(W.real(), ai, f"W_{name}"), fields.whole(H.real(), ai, f"H_{name}"))
    return {"name": name, "K": fields.array(K, (3, 3), ai, f"K_{name}"), "dist": dist, "R": R,
            "t": fields.array(T, [(3, 1), (1, 3), (3,)], ae, f"T_{name}").ravel(), "size": size}


def write(rig: Rig, path: str | Path) -> None:
    """Write intri.yml and extri.yml into the folder ``path`` (created when missing)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RigError(f"{folder}: an EasyMocap calibration is a folder (intri.yml + extri.yml); "
                       f"this is a file")
    for cam in rig:
        carried_fields.require_lens(cam, "opencv", folder)
        if not _NAME.match(cam.name):
            raise RigError(f"{folder}: camera {cam.name!r}: name: EasyMocap keys are K_<name>, so names "
                           f"may only hold letters, digits, '_' and '-'; rename the camera")
    carried_fields.warn_dropped(rig, "opencv", folder)
    folder.mkdir(parents=True, exist_ok=True)
    intri = cv2.FileStorage(str(folder / INTRI), cv2.FILE_STORAGE_WRITE)
    extri = cv2.FileStorage(str(folder / EXTRI), cv2.FILE_STORAGE_WRITE)
    for fs in (intri, extri):
        fs.startWriteStruct("names", cv2.FileNode_SEQ)
        for cam in rig:
            fs.write("", cam.name)
        fs.endWriteStruct()
    for cam in rig:
        _write_camera(cam, intri, extri)
    intri.release()
    extri.release()


def _write_camera(cam: Camera, intri: cv2.FileStorage, extri: cv2.FileStorage) -> None:
    intri.write(f"K_{cam.name}", cam.K)
    if cam.dist.size:
        intri.write(f"dist_{cam.name}", cam.dist[None, :])
    intri.write(f"H_{cam.name}", cam.height)
    intri.write(f"W_{cam.name}", cam.width)
    extri.write(f"R_{cam.name}", matrix_to_rotvec(cam.R)[:, None])
    extri.write(f"Rot_{cam.name}", cam.R)
    extri.write(f"T_{cam.name}", cam.t[:, None])
