"""`mocap demo`: a simulated studio films simulated people; their 3D poses are reconstructed and scored.

Stages (each replaced by the real one as it lands): simulated performers -> simulated 2D detector ->
people grouped by the simulation's truth -> robust triangulation -> MPJPE against the truth. The output
folder is a session folder the later stages accept.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from rich.console import Console

from reconstruction.error_plot import plot_errors
from reconstruction.metrics import joint_errors
from rigs.camera import Rig
from rigs.formats import load_rig
from rigs.layout_plot import plot_layout
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.session_file import SessionInfo, StageRecord, read_session_info, write_session_toml
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.sim.recording import write_simulated_keypoints
from rigs.sim.truth_assignment import assign_by_simulated_truth
from rigs.triangulate import triangulate_robust

SKELETON = "body25"  # what OpenPose writes, the most common input labs bring
THRESHOLD_PX = 15.0
T = TypeVar("T")


def _prepare_output(out: Path) -> None:
    """Empty a previous demo's folder; refuse to touch a folder the demo did not write."""
    if out.exists() and any(out.iterdir()):
        try:
            is_demo = read_session_info(out).name == "demo" and read_session_info(out).simulated
        except (FileNotFoundError, ValueError):
            is_demo = False
        if not is_demo:
            raise ValueError(f"{out} exists and is not a previous demo's output; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _step(console: Console, label: str, fn: Callable[[], T]) -> T:
    """Run one demo step with a spinner, then print how long it took."""
    t0 = time.perf_counter()
    with console.status(f"{label} ..."):
        result = fn()
    console.print(f"  [green]done[/] {label} ({time.perf_counter() - t0:.1f} s)")
    return result


def _triangulate_people(rig: Rig, per_person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[C, T, P, J, 3] grouped detections -> poses [T, P, J, 4] and reprojection errors [C, T, P, J]."""
    result = triangulate_robust(rig, per_person, threshold_px=THRESHOLD_PX)
    return result.points.astype(np.float32), result.errors


def run_demo(rig_source: str, people: int, seconds: float, out: str | Path, seed: int, console: Console) -> int:
    """Run the demo end to end and print its report; returns the exit status."""
    t_start = time.perf_counter()
    start_ns = time.time_ns()
    out = Path(out)
    if people < 1 or seconds <= 0:
        raise ValueError("--people must be at least 1 and --seconds positive")
    rig = load_rig(rig_source)
    fps = rig.fps or 30.0
    _prepare_output(out)
    console.print(f"[bold]mocap demo[/] (SIMULATED studio {rig.name}): {len(rig)} cameras, {people} people, "
                  f"{seconds:g} s at {fps:g} fps, seed {seed}")

    performers = _step(console, "simulating performers",
                       lambda: simulate_performers(people, seconds, fps, seed))
    params = SimulatedDetectorParams(seed=seed)
    detections = _step(console, f"running the simulated 2D detector ({SKELETON}) on every camera",
                       lambda: simulate_detections(rig, performers, SKELETON, params))
    _step(console, "writing keypoints2d/ and truth/",
          lambda: write_simulated_keypoints(out, rig, performers, detections, SKELETON, fmt="npz"))
    per_person = assign_by_simulated_truth(detections.keypoints2d, detections.truth_person, people)
    poses, reproj = _step(console, "robust triangulation per person (people grouped by the simulation)",
                          lambda: _triangulate_people(rig, per_person))

    T_frames = poses.shape[0]
    present = (poses[..., 3] > 0).any(-1)  # [T, P]
    track_ids = np.where(present, np.arange(people, dtype=np.int32), -1).astype(np.int32)
    joint_names = detections.joint_names
    write_poses3d(out / "poses3d.npz", Poses3D(
        poses, track_ids, performers.t_ns, fps, SKELETON, joint_names,
        {"reprojection_px": np.moveaxis(reproj, 0, -1).astype(np.float32),  # [T, P, J, C]
         "camera_names": np.array(rig.names)}))

    truth = keypoints3d(performers, SKELETON)
    errors = joint_errors(poses, truth)
    report = out / "report"
    _step(console, "writing the report plots", lambda: (
        plot_layout(rig, report / "layout.png"),
        plot_errors(poses, truth, joint_names, fps, report / "errors.png",
                    f"SIMULATED demo: 3D error per joint vs ground truth (MPJPE {errors.mpjpe_mm:.1f} mm)")))

    frames_total = T_frames * len(rig)
    detected = (detections.keypoints2d[..., 2] > 0).any(-1)  # [C, T, S]
    ghosts = int((detections.ghost & detected).sum())
    with np.errstate(all="ignore"):
        reproj_median = float(np.nanmedian(reproj))
    lines = [
        "mocap demo: SIMULATED studio, simulated people, simulated 2D detector",
        f"rig: {rig.name}, {len(rig)} cameras ({', '.join(rig.names)})",
        f"frames: {T_frames} per camera, {frames_total} in all, {fps:g} fps, {seconds:g} s",
        f"people: {people} (heights {', '.join(f'{h:.2f}' for h in performers.heights)} m)",
        f"detections: {int(detected.sum())} people-views, {ghosts} simulated false detections",
        f"joints reconstructed: {errors.completeness * 100:.1f} % of ground truth",
        f"MPJPE: {errors.mpjpe_mm:.1f} mm",
        f"median error: {errors.median_mm:.1f} mm, 95th percentile: {errors.p95_mm:.1f} mm, "
        f"median reprojection error: {reproj_median:.2f} px",
    ]
    (report / "summary.txt").write_text("\n".join(lines) + "\n")
    stage = StageRecord("demo", f"mocap demo --rig {rig_source} --people {people} --seconds {seconds:g} "
                        f"--seed {seed}", time.time_ns(),
                        ("keypoints2d/", "truth/", "poses3d.npz", "report/"))
    write_session_toml(out, SessionInfo("demo", fps, start_ns, simulated=True, stages=(stage,),
                                         notes="SIMULATED demo session: no real camera or person."), rig)

    console.print()
    for line in lines:
        console.print(line, markup=False)
    console.print(f"results: {out}/ (poses3d.npz, keypoints2d/, truth/, session.toml); "
                  f"plots: {report}/layout.png, {report}/errors.png", markup=False)
    console.print(f"finished in {time.perf_counter() - t_start:.1f} s")
    return 0
