"""The demo's findings, read back from what each stage wrote into the session, and the summary it prints.

Every number comes from a file a stage left (``report/capture_stats.json`` of the recorder, ``poses3d.npz``
against ``truth/poses3d.npz``, ``report/fit/joint_errors.json``, ``export/``) or from the live messages the demo
received, so the summary says what the session holds, not what the demo hoped for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the wire and the metrics are imported by the demo when it gets there (`mocap --help` stays quick)
    from mocap.demo_live import LiveLatency
    from reconstruction.metrics import EvalResult


@dataclass(frozen=True)
class RecordingFacts:
    """What the recorder wrote: frames per camera, frames lost (seq gaps), FrameSets, seconds recorded."""

    cameras: tuple[str, ...]
    frames: dict[str, int]
    dropped: dict[str, int]
    sets: int
    complete_sets: int
    seconds: float
    first_t_ns: int | None  # capture time of the first complete FrameSet
    end_t_ns: int | None  # where the recording ended (first complete set + duration)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def recording_facts(stats: dict) -> RecordingFacts:
    """RecordingFacts from the recorder's stats (``Recorder.stats()``, also ``report/capture_stats.json``)."""
    written = stats.get("cameras_written") or {}
    sync = stats.get("sync") or {}
    return RecordingFacts(tuple(stats.get("cameras") or written), {c: int(w["frames"]) for c, w in written.items()},
                          {c: int(w["dropped"]) for c, w in written.items()}, int(sync.get("sets", 0)),
                          int(sync.get("complete", 0)), float(stats.get("duration_s_recorded") or 0.0),
                          stats.get("first_complete_t_ns"), stats.get("end_t_ns"))


@dataclass(frozen=True)
class FitFacts:
    """What ``mocap fit`` did: tracks fitted and skipped, the keypoint error, whether the stand-in model was used."""

    tracks: int
    skipped: int
    error_mm: float | None  # mean distance of the fitted bodies' keypoints to their input, every joint and frame
    standin: bool


def fit_facts(folder: Path) -> FitFacts:
    """FitFacts from ``report/fit/joint_errors.json`` (nothing fitted when it is absent)."""
    path = folder / "report" / "fit" / "joint_errors.json"
    if not path.is_file():
        return FitFacts(0, 0, None, False)
    data = json.loads(path.read_text())
    joints = data.get("joints") or {}
    frames = sum(j["frames"] for j in joints.values())
    error = sum(j["mean_mm"] * j["frames"] for j in joints.values()) / frames if frames else None
    return FitFacts(len(data.get("tracks") or {}), len(data.get("skipped") or {}), error, bool(data.get("standin")))


def export_files(folder: Path) -> dict[str, list[Path]]:
    """The exported files by kind: ``bvh``, ``smpl`` (the AMASS npz), ``trc``, ``c3d``."""
    export = folder / "export"
    kinds = {"bvh": "*.bvh", "smpl": "*.npz", "trc": "*.trc", "c3d": "*.c3d"}
    return {kind: sorted(export.glob(pattern)) for kind, pattern in kinds.items()}


def _mm(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f} mm"


def people_count(n: int) -> str:
    """'1 person', '2 people'."""
    return f"{n} person" if n == 1 else f"{n} people"


def summary_lines(*, rig_name: str, people: int, seconds: float, rec: RecordingFacts, live: LiveLatency,
                  live_eval: EvalResult | None, offline: EvalResult, fit: FitFacts, files: dict[str, list[Path]],
                  outputs: dict[str, str]) -> list[str]:
    """The demo's report, one finding per line; the error against the truth on its own line as ``MPJPE: x mm``."""
    per_camera = ", ".join(f"{c} {rec.frames.get(c, 0)}" for c in rec.cameras)
    lost = ", ".join(f"{c} {n}" for c, n in rec.dropped.items() if n) or "none"
    live_error = (f"; their error against the truth {_mm(live_eval.mpjpe_mm)} (unfiltered, "
                  f"{100 * live_eval.completeness:.0f} % of the truth's joints)" if live_eval is not None else "")

    def paths(kind: str) -> str:
        return ", ".join(str(p) for p in files.get(kind, [])) or "none written"

    return [
        f"mocap demo: SIMULATED studio {rig_name}, {people_count(people)} (simulated), simulated 2D detector",
        f"recorded: {len(rec.cameras)} cameras, {rec.seconds:.1f} s of {seconds:g} s asked; frames per camera: "
        f"{per_camera}; FrameSets {rec.sets} ({rec.complete_sets} complete)",
        f"frames dropped: {rec.dropped_total} ({lost})",
        f"live: {live.messages} pose3d messages during the recording; latency from capture to the 3D pose received "
        f"here: median {live.median_ms:.0f} ms, 95th percentile {live.p95_ms:.0f} ms (the node published after "
        f"{live.node_median_ms:.0f} ms, median){live_error}",
        f"MPJPE: {offline.mpjpe_mm:.1f} mm",
        f"  (offline reconstruction vs the simulation's ground truth over {offline.num_frames} frames: PA-MPJPE "
        f"{_mm(offline.pa_mpjpe_mm)}, {100 * offline.completeness:.1f} % of joints, {offline.identity_switches} "
        f"identity switches)",
        f"fit: {fit.tracks} track(s) fitted" + (f", {fit.skipped} skipped" if fit.skipped else "")
        + f"; keypoint error of the fitted bodies {_mm(fit.error_mm)}"
        + (" (the STAND-IN body model; $MOCAP_BODY_MODELS names SMPL files)" if fit.standin else ""),
        f"BVH: {paths('bvh')}",
        f"SMPL: {paths('smpl')}",
        f"TRC: {paths('trc')}",
        *(f"{label}: {path}" for label, path in outputs.items()),
    ]
