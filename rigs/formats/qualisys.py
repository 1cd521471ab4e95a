"""Qualisys Track Manager calibration export (``.qca.txt``, XML); read only.

``<calibration><cameras><camera serial=... model=... viewrotation=...>`` holding:

* ``<transform x y z r11 .. r33>``: the camera pose. (x, y, z) is the camera centre in **millimetres**;
  the r-matrix (``r11 r12 r13`` its first row) is the world->camera rotation of Qualisys' camera frame,
  whose y and z axes point opposite to OpenCV's (y up, looking along -z). So
  ``R = diag(1, -1, -1) @ r`` and ``t = -R @ (x, y, z) / 1000``. Verified: this reproduces Pose2Sim's
  own conversion (``Calib_qualisys.toml``) of the same cameras to 1e-15.
* ``<intrinsic>``: focalLengthU/V and centerPointU/V in 1/64 sub-pixels (divided by 64); the principal
  point is then taken relative to the video window ``<fov_video left top right bottom>``, whose extent
  (right - left + 1, bottom - top + 1) is the image size. Distortion (radialDistortion1,
  radialDistortion2, tangentalDistortion1, tangentalDistortion2, radialDistortion3) is taken **raw** as
  OpenCV's (k1, k2, p1, p2, k3). Pose2Sim divides it by 64 too; the raw values agree with a checkerboard
  calibration of the same cameras, the divided ones are nearly zero.

Only video cameras are read by default (model "Miqus Video...", or "none" as in exported files), as
Pose2Sim does: marker cameras see infrared blobs, not people; ``read(path, video_only=False)`` reads
all. Names are the serials. A ``video_resolution`` such as "540p" (video recorded below the 1080p the
window is given in) scales the camera to that size. A non-zero ``viewrotation`` (the picture turned for
display) is not applied: the camera describes the sensor image, with a warning.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rigs.camera import Camera, Rig, RigError
from rigs.formats import fields

SUBPIXELS = 64.0
MM = 1000.0
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])
_DIST = ("radialDistortion1", "radialDistortion2", "tangentalDistortion1", "tangentalDistortion2",
         "radialDistortion3")


def parse_xml(path: str | Path) -> ET.Element:
    """The XML document's root element, or a RigError naming the file and the syntax error."""
    try:
        return ET.fromstring(fields.read_text(path))
    except ET.ParseError as e:
        raise RigError(f"{path}: not valid XML: {e}") from None


def sniff(path: str | Path) -> bool:
    """True for XML whose root is <calibration> holding <cameras>."""
    root = fields.quietly(parse_xml, path)
    return root is not None and root.tag == "calibration" and root.find("cameras") is not None


def is_video_camera(model: str | None) -> bool:
    """Whether a camera model records video (Miqus Video, or "none" in exported files)."""
    return model is None or model == "none" or "video" in model.lower()


def read(path: str | Path, video_only: bool = True) -> Rig:
    """Read a .qca.txt calibration (video cameras only unless video_only=False)."""
    root = parse_xml(path)
    if root.tag != "calibration" or root.find("cameras") is None:
        raise RigError(f"{path}: cameras: missing; a Qualisys calibration is <calibration><cameras>...")
    elements = root.findall("cameras/camera")
    chosen = [e for e in elements if not video_only or is_video_camera(e.get("model"))]
    if elements and not chosen:
        models = sorted({str(e.get("model")) for e in elements})
        raise RigError(f"{path}: model: no video camera here (models: {', '.join(models)}); "
                       f"use rigs.formats.qualisys.read(path, video_only=False) to read marker cameras")
    cameras = [_camera(e, i, path) for i, e in enumerate(chosen)]
    return fields.rig(path, cameras, name=Path(path).name.split(".")[0],
                      description=f"imported from qualisys file {Path(path).name}")


def _attrs(element: ET.Element | None, tag: str, keys: tuple[str, ...], at: str) -> list[float]:
    if element is None:
        raise RigError(f"{at}: {tag}: missing; every <camera> needs <transform>, <intrinsic> and <fov_video>")
    out = []
    for k in keys:
        v = element.get(k)
        if v is None:
            raise RigError(f"{at}: {tag}.{k}: missing")
        try:
            out.append(float(v))
        except ValueError:
            raise RigError(f"{at}: {tag}.{k}: expected a number, got {v!r}") from None
    return out


def _camera(cam: ET.Element, index: int, path: str | Path) -> Camera:
    name = cam.get("serial") or f"camera{index + 1}"
    at = fields.where(path, name)
    tr = _attrs(cam.find("transform"), "transform", ("x", "y", "z", "r11", "r12", "r13", "r21", "r22", "r23",
                                                     "r31", "r32", "r33"), at)
    centre = np.array(tr[:3]) / MM
    R = _FLIP_YZ @ fields.rotation(np.reshape(tr[3:], (3, 3)), at, "transform.r11..r33")
    left, top, right, bottom = _attrs(cam.find("fov_video"), "fov_video", ("left", "top", "right", "bottom"),
                                      at)
    fu, fv, cu, cv = _attrs(cam.find("intrinsic"), "intrinsic",
                            ("focalLengthU", "focalLengthV", "centerPointU", "centerPointV"), at)
    intrinsic = cam.find("intrinsic")
    dist = [float(intrinsic.get(k, "0")) for k in _DIST]
    if float(intrinsic.get("skew", "0") or 0) != 0:
        warnings.warn(f"{at}: intrinsic.skew = {intrinsic.get('skew')} ignored (its unit is not documented)",
                      stacklevel=3)
    K = np.array([[fu / SUBPIXELS, 0.0, cu / SUBPIXELS - left], [0.0, fv / SUBPIXELS, cv / SUBPIXELS - top],
                  [0.0, 0.0, 1.0]])
    camera = fields.camera(path, name=name, width=fields.whole(right - left + 1, at, "fov_video"),
                           height=fields.whole(bottom - top + 1, at, "fov_video"), K=K, dist=np.array(dist),
                           R=R, t=-R @ centre)
    if cam.get("viewrotation", "0") not in ("0", ""):
        warnings.warn(f"{at}: viewrotation = {cam.get('viewrotation')} not applied: the camera describes the "
                      f"unrotated sensor image", stacklevel=3)
    resolution = cam.get("video_resolution")
    if resolution and resolution not in ("N/A", "1080p"):
        try:
            lines = int(resolution.rstrip("p"))
        except ValueError:
            raise RigError(f"{at}: video_resolution: expected e.g. '540p', got {resolution!r}") from None
        s = lines / 1080
        camera = camera.resized(round(camera.width * s), round(camera.height * s))
    return camera
