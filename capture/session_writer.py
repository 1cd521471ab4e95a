"""The files a recording adds to a session folder besides the video: the folder check, ``truth/`` for
simulated cameras, and ``report/capture_stats.json``.

``prepare_session_folder`` makes sure a folder can take a new recording before anything starts: it is
created if missing, must be writable, and must not already hold one (a recording never overwrites).

``TruthCollector`` keeps, per FrameSet, which simulated frame its cameras showed (the ``truth`` header
field of simulated cameras: ``frame``, ``sim_frame``, ``seed``, ``people``, ``seconds``, ``fps``) and at the
end rebuilds the full ground truth by re-running ``rigs.sim.performers.simulate_performers`` with those
parameters (it is seeded, so it reproduces what the cameras rendered). It writes, indexed by sync set:

- ``truth/poses3d.npz``  the poses3d layout (``rigs.poses3d_file``) in ``skeleton`` (default body25, the
  simulated detector's), track id = person, plus ``set_index``, ``sim_frame``, ``frame`` [T] and ``simulated``;
- ``truth/smpl24.npz``   the same for the SMPL-24 joints, plus the heights, girths and seed;
- ``truth/SIMULATED.txt`` what this is and how to reproduce it.
Sets without truth (no simulated camera in them) have NaN joints with score 0 and track ids -1.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

from capture.sync import FrameSet
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton

SESSION_MARKERS = ("session.toml", "sync.csv", "video")

_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EIO: "an input/output error (a failing disk or a removed drive?)",
}


class RecordingError(RuntimeError):
    """A recording that cannot start or had to stop: names the session folder and the cause."""

    def __init__(self, folder: str | os.PathLike, cause: str):
        super().__init__(f"recording to {folder}: {cause}")
        self.folder = Path(folder)
        self.cause = cause


def describe_os_error(exc: BaseException) -> str:
    """A short human cause for an OSError: 'the disk is full ([Errno 28] No space left on device: ...)'."""
    code = getattr(exc, "errno", None)
    plain = _CAUSES.get(code)
    text = str(exc) or type(exc).__name__
    return f"{plain} ({text})" if plain else text


def prepare_session_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that a new recording can go there; RecordingError if not."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RecordingError(path, "it exists and is not a folder; choose another output folder") from None
    except OSError as exc:
        raise RecordingError(path, f"cannot create the folder: {describe_os_error(exc)}") from None
    present = [m for m in SESSION_MARKERS if (path / m).exists()]
    if present:
        raise RecordingError(path, f"it already holds a recording ({', '.join(present)}); a recording never "
                                   f"overwrites one, so choose a new output folder")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise RecordingError(path, f"the folder is not writable: {describe_os_error(exc)}") from None
    return path


def _finite(value):
    """JSON has no NaN: NaN and infinities become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_capture_stats(folder: str | os.PathLike, stats: dict) -> Path:
    """Write ``report/capture_stats.json`` (NaN written as null)."""
    path = Path(folder) / "report" / "capture_stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(stats), indent=2) + "\n")
    return path


def _truth_fields(truth) -> tuple[int, int, tuple] | None:
    """(frame, sim_frame, (seed, people, seconds, fps)) from a simulated camera's truth map, None if malformed."""
    if not isinstance(truth, dict):
        return None
    try:
        frame, sim_frame, seed, people = (truth[k] for k in ("frame", "sim_frame", "seed", "people"))
        seconds, fps = float(truth["seconds"]), float(truth["fps"])
    except (KeyError, TypeError, ValueError):
        return None
    ints = (frame, sim_frame, seed, people)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or sim_frame < 0 or people < 1:
        return None
    if not (math.isfinite(seconds) and seconds > 0 and math.isfinite(fps) and fps > 0):
        return None
    return frame, sim_frame, (seed, people, seconds, fps)


class TruthCollector:
    """Per FrameSet, the simulated frame its cameras showed; ``write`` turns that into ``truth/``."""

    def __init__(self) -> None:
        self.set_index = array("q")
        self.t_ns = array("q")
        self.sim_frame = array("q")  # -1: no truth in the set
        self.frame = array("q")
        self.params: tuple | None = None  # (seed, people, seconds, fps) of the first truth seen
        self.malformed = 0  # truth maps that could not be read
        self.disagreements = 0  # sets whose cameras showed different simulated frames
        self.other_params = 0  # truths from a different simulation than the first (ignored)

    @property
    def any(self) -> bool:
        return self.params is not None

    def add_set(self, fs: FrameSet) -> None:
        found = []
        for ref in fs.frames.values():
            if ref is None or ref.payload is None:
                continue
            fields = _truth_fields(ref.payload)
            if fields is None:
                self.malformed += 1
                continue
            if self.params is None:
                self.params = fields[2]
            if fields[2] != self.params:
                self.other_params += 1
                continue
            found.append(fields[:2])
        self.set_index.append(fs.index)
        self.t_ns.append(fs.t_ns)
        if found:
            (frame, sim_frame), n = Counter(found).most_common(1)[0]
            self.disagreements += n != len(found)
        else:
            frame, sim_frame = -1, -1
        self.frame.append(frame)
        self.sim_frame.append(sim_frame)

    def summary(self) -> dict:
        seed, people, seconds, fps = self.params or (None, None, None, None)
        return {"sets": len(self.set_index), "sets_with_truth": int(np.count_nonzero(np.asarray(self.sim_frame) >= 0)),
                "seed": seed, "people": people, "seconds": seconds, "fps": fps, "malformed": self.malformed,
                "disagreements": self.disagreements, "other_simulations": self.other_params}

    def write(self, folder: str | os.PathLike, skeleton: str = "body25") -> list[Path]:
        """Re-simulate the performers and write ``truth/`` indexed by sync set; returns the paths written."""
        if self.params is None:
            return []
        seed, people, seconds, fps = self.params
        performers = simulate_performers(people, seconds, fps, seed)
        truth = Path(folder) / "truth"
        truth.mkdir(parents=True, exist_ok=True)
        sim_frame = np.asarray(self.sim_frame, np.int64)
        valid = (sim_frame >= 0) & (sim_frame < performers.num_frames)
        T, P = len(sim_frame), performers.num_people
        ids = np.where(valid[:, None], np.arange(P, dtype=np.int32)[None], np.int32(-1))
        text = (
            "SIMULATED DATA: no real camera or person was recorded.\n"
            "Ground truth of the simulated cameras' performers (rigs.sim.performers), one row per sync set\n"
            "(sync.csv), rebuilt by simulate_performers(people, seconds, fps, seed) and indexed by each set's\n"
            f"simulated frame: people {people}, seconds {seconds:g}, fps {fps:g}, seed {seed}.\n"
            f"{T} sets, {int(valid.sum())} with truth; sets without truth have NaN joints, score 0, track id -1.\n"
        )
        (truth / "SIMULATED.txt").write_text(text)
        written = [truth / "SIMULATED.txt"]
        index = {"set_index": np.asarray(self.set_index, np.int64), "sim_frame": sim_frame,
                 "frame": np.asarray(self.frame, np.int64), "simulated": np.str_(text), "seed": np.int64(seed)}
        extras = {"poses3d.npz": {"heights": performers.heights},
                  "smpl24.npz": {"heights": performers.heights, "girths": performers.girths}}
        for name, sk in (("poses3d.npz", get_skeleton(skeleton)), ("smpl24.npz", get_skeleton("smpl24"))):
            all_frames = keypoints3d(performers, sk)  # [T_sim, P, J, 4]
            poses = np.full((T, P, len(sk.joints), 4), np.nan, np.float32)
            poses[..., 3] = 0.0
            poses[valid] = all_frames[sim_frame[valid]]
            data = Poses3D(poses, ids, np.asarray(self.t_ns, np.int64), fps, sk.name, sk.joints,
                           {**index, **extras[name]})
            written.append(write_poses3d(truth / name, data))
        return written
