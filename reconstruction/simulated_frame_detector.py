"""The SIMULATED 2D detector on simulated camera frames: keypoints from the frame's ``truth`` header.

No 2D network runs yet. Simulated cameras (``capture.sources.simulated``) send with every frame a small
``truth`` map: ``frame``, ``sim_frame``, ``t_sim_ns``, ``people``, ``seed``, ``seconds``, ``fps``; the
recorder keeps it (``truth/``) and replay sends it again (``capture.session_reader.SessionVideo.truth``).
From it this module rebuilds the simulated performers exactly as the camera did
(``simulate_performers(people, seconds, fps, seed)``), runs the simulated detector
(``rigs.sim.detector.simulate_detections``, seeded with the truth's ``seed`` unless other parameters are
given) over the whole simulated sequence once, and answers each frame with that camera's row of simulated
frame ``sim_frame``. The detector's random draws depend on the rig's cameras (their number and order), so
the live node and ``mocap reconstruct SESSION`` agree when they use the same rig (the session's).

Frames without truth come from real cameras: no detector runs on those yet (``has_truth`` tells them apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rigs.camera import Rig
from rigs.sim.detector import SimulatedDetections, SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import simulate_performers
from rigs.skeletons import get_skeleton

NAME = "SIMULATED detector"
_FIELDS = ("sim_frame", "people", "seed", "seconds", "fps")
_CACHE_SIZE = 2  # simulations kept: a session normally has one


class SimulatedTruthError(ValueError):
    """A frame's ``truth`` header that does not describe a simulation the simulated detector can rebuild."""


def has_truth(truth: object) -> bool:
    """True when a frame carries a simulated camera's truth header (a map with the simulation's fields)."""
    return isinstance(truth, Mapping) and all(k in truth for k in _FIELDS)


def _simulation_key(truth: Mapping) -> tuple[int, float, float, int]:
    """(people, seconds, fps, seed) of a truth header, checked; SimulatedTruthError names what is wrong."""
    if not has_truth(truth):
        got = ", ".join(sorted(map(str, truth))) if isinstance(truth, Mapping) else type(truth).__name__
        raise SimulatedTruthError(f"frame truth: expected the simulated camera's fields {', '.join(_FIELDS)}, "
                                  f"got {got}; only frames from simulated cameras (or their replay) carry it")
    try:
        people, seed = int(truth["people"]), int(truth["seed"])
        seconds, fps = float(truth["seconds"]), float(truth["fps"])
    except (TypeError, ValueError):
        raise SimulatedTruthError(f"frame truth: people, seed, seconds and fps must be numbers, got "
                                  f"{[truth[k] for k in ('people', 'seed', 'seconds', 'fps')]}") from None
    if people < 1 or not (np.isfinite(seconds) and seconds > 0 and np.isfinite(fps) and fps > 0):
        raise SimulatedTruthError(f"frame truth: people {people}, seconds {seconds:g}, fps {fps:g}: expected "
                                  f"people >= 1 and positive seconds and fps")
    return people, seconds, fps, seed


class SimulatedFrameDetector:
    """Simulated 2D keypoints [C, S, J, 3] of one FrameSet of simulated frames, from their truth headers.

    ``params``: the simulated detector's knobs (default ``SimulatedDetectorParams(seed=<truth seed>)``, what
    ``mocap sim keypoints`` uses); ``skeleton``: the layout it reports (default body25, like OpenPose).
    """

    name = NAME

    def __init__(self, rig: Rig, skeleton: str = "body25", params: SimulatedDetectorParams | None = None):
        self.rig = rig
        self.skeleton = get_skeleton(skeleton).name
        self.params = params
        self._cache: dict[tuple, SimulatedDetections] = {}

    def detections(self, truth: Mapping) -> SimulatedDetections:
        """The simulated detector's output over the whole simulated sequence a truth header belongs to
        (computed once per simulation and kept)."""
        key = _simulation_key(truth)
        found = self._cache.get(key)
        if found is None:
            people, seconds, fps, seed = key
            performers = simulate_performers(people, seconds, fps, seed)  # as capture.sources.simulated does
            params = self.params if self.params is not None else SimulatedDetectorParams(seed=seed)
            found = simulate_detections(self.rig, performers, self.skeleton, params)
            while len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = found
        return found

    def slots(self, truth: Mapping) -> int:
        """Detection slots S per camera (people + the most simulated false detections)."""
        return self.detections(truth).keypoints2d.shape[2]

    def camera_keypoints(self, camera: int, truth: Mapping) -> np.ndarray:
        """Camera ``camera``'s (rig index) simulated detections [S, J, 3] of the frame the truth describes."""
        det = self.detections(truth)
        frame = truth["sim_frame"]
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not \
                0 <= int(frame) < det.keypoints2d.shape[1]:
            raise SimulatedTruthError(f"frame truth: sim_frame {frame!r} is outside the simulation's "
                                      f"0..{det.keypoints2d.shape[1] - 1}")
        return det.keypoints2d[camera, int(frame)]

    def frameset(self, truths: Sequence[Mapping | None]) -> np.ndarray:
        """Keypoints [C, S, J, 3] of one FrameSet: ``truths[c]`` is camera c's truth header (None: no frame or
        no truth; that camera then reports nothing). Raises SimulatedTruthError when none has truth."""
        if len(truths) != len(self.rig):
            raise ValueError(f"simulated detector: {len(truths)} truth headers for the rig's {len(self.rig)} "
                             f"cameras; give one per camera in rig order (None where missing)")
        present = [c for c, t in enumerate(truths) if t is not None]
        if not present:
            raise SimulatedTruthError("no frame of this FrameSet carries a simulated truth header")
        first = truths[present[0]]
        det = self.detections(first)
        C, S, J = len(self.rig), det.keypoints2d.shape[2], det.keypoints2d.shape[3]
        out = np.full((C, S, J, 3), np.nan, np.float32)
        out[..., 2] = 0.0
        for c in present:
            kp = self.camera_keypoints(c, truths[c])
            out[c, : kp.shape[0]] = kp[:S]
        return out
