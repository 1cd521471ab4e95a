"""What a foreign format can carry: refuse cameras it cannot describe, warn about metadata it drops.

Calibration formats hold lenses and poses, not acquisition settings: a camera's fps, source and
endpoint and clock offset, and the rig's name, clock, up axis and description live only in our rig.toml. Writing them
elsewhere drops them with one warning. A lens the format cannot describe (a fisheye model, a skewed K,
more distortion coefficients than it takes) is an error: writing it would silently change the camera.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rigs.camera import Camera, Rig, RigError

_RIG_DEFAULTS = {"up": "z", "clock": "monotonic", "simulated": False, "description": ""}


def require_lens(cam: Camera, fmt: str, path: str | Path, *, fisheye: bool = False, skew: bool = True,
                 max_dist: int = 8) -> None:
    """RigError when this camera's lens cannot be written in the format (model, skew, distortion length)."""
    at = f"{path}: camera {cam.name!r}"
    if cam.model == "fisheye" and not fisheye:
        raise RigError(f"{at}: model: {fmt} files cannot describe a fisheye lens; save this rig as mocap "
                       f"or pose2sim instead")
    if not skew and cam.K[0, 1] != 0:
        raise RigError(f"{at}: K: {fmt} files have no skew term but K[0, 1] = {cam.K[0, 1]!r}; "
                       f"save as mocap, pose2sim, opencv, panoptic or caliscope instead")
    if cam.dist.size > max_dist:
        raise RigError(f"{at}: dist: {fmt} files take at most {max_dist} distortion coefficients "
                       f"(k1, k2, p1, p2, k3), this camera has {cam.dist.size}; save as mocap, pose2sim "
                       f"or opencv instead")


def padded_dist(cam: Camera, n: int = 5) -> np.ndarray:
    """The camera's distortion padded with zeros to n coefficients (the same lens in OpenCV's model)."""
    return np.concatenate([cam.dist, np.zeros(n - cam.dist.size)])


def warn_dropped(rig: Rig, fmt: str, path: str | Path) -> None:
    """One warning listing the rig and camera settings that a file of this format will not keep."""
    dropped = []
    for fld, default in _RIG_DEFAULTS.items():
        if getattr(rig, fld) != default:
            dropped.append(f"rig {fld}")
    for fld in ("fps", "source", "endpoint", "clock_offset_ns"):
        if any(getattr(c, fld) not in (None, "", 0) for c in rig):
            dropped.append(f"camera {fld}")
    if dropped:
        warnings.warn(f"{path}: {fmt} files hold calibration only; not written: {', '.join(dropped)} "
                      f"(save as mocap to keep them)", stacklevel=3)
