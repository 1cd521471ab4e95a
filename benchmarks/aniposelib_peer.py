"""The peer every benchmark compares with: our rig as an aniposelib CameraGroup (aniposelib 0.8.0, the
`bench` extra)."""

from __future__ import annotations

import cv2

from rigs.camera import Rig


def aniposelib_group(rig: Rig):
    """The same cameras as an aniposelib CameraGroup (rvec = Rodrigues(R), tvec = t, K, dist, size)."""
    from aniposelib.cameras import Camera as ACamera
    from aniposelib.cameras import CameraGroup

    return CameraGroup([ACamera(name=c.name, size=(c.width, c.height), matrix=c.K, dist=c.dist,
                                rvec=cv2.Rodrigues(c.R)[0].ravel(), tvec=c.t) for c in rig])
