"""Reconstruction benchmark: the whole 2D-keypoints-to-tracked-3D pipeline against aniposelib, and its
multi-person throughput.

Data (simulated, seeded): the `studio-8` and `studio-4` presets, BODY_25 from the simulated detector with
2 px noise, 10 % of the joints moved to random pixels, false detections and occlusion by other people.

1. Single person (studio-8, 20 s at 30 fps): ours (association, robust triangulation, tracking; no
   smoothing, and with the offline Butterworth) against aniposelib 0.8.0's `CameraGroup.triangulate` (DLT)
   and `triangulate_ransac`, which get each camera's detection of the person picked by the simulation's
   truth (they have no association). `triangulate_ransac` is timed on the first 60 frames only: it runs at
   a few points a second here.
2. Four people (studio-8 and studio-4, 20 s): MPJPE, association correctness, identity switches per
   person-minute and frames per second.

Targets: better MPJPE than aniposelib, >= 1000 frames/s for one person and >= 200 frames/s for 4 people on
8 cameras. Our frames per second are the fastest of 3 identical runs (this 2-core machine is shared, and
one run varies by 10-20 %). Writes the ``bench_reconstruction`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aniposelib_peer import aniposelib_group  # noqa: E402
from docs_section import machine_line, write_section  # noqa: E402

from reconstruction.metrics import evaluate  # noqa: E402
from reconstruction.pipeline import reconstruct  # noqa: E402
from rigs.formats import load_rig  # noqa: E402
from rigs.poses3d_file import Poses3D  # noqa: E402
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections  # noqa: E402
from rigs.sim.performers import keypoints3d, simulate_performers  # noqa: E402
from rigs.sim.truth_assignment import assign_by_simulated_truth  # noqa: E402
from rigs.skeletons import get_skeleton  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SKELETON = "body25"
FPS = 30.0
SECONDS = 20.0
RANSAC_FRAMES = 60
REPEATS = 3  # our runs are timed this many times, the fastest kept


def studio(rig_name: str, people: int, seed: int):
    """(rig, performers, detections, truth Poses3D) of a simulated take."""
    rig = load_rig(rig_name)
    perf = simulate_performers(people, SECONDS, FPS, seed=seed)
    params = SimulatedDetectorParams(pixel_noise_px=2.0, gross_outlier_rate=0.1, occlusion=True, seed=seed)
    det = simulate_detections(rig, perf, SKELETON, params)
    sk = get_skeleton(SKELETON)
    truth = keypoints3d(perf, sk)
    T = perf.num_frames
    truth3d = Poses3D(truth, np.broadcast_to(np.arange(people, dtype=np.int32), (T, people)), perf.t_ns, FPS,
                      sk.name, sk.joints)
    return rig, perf, det, truth3d


def ours(rig, det, perf, filt: str, repeats: int = REPEATS):
    """Our reconstruction and its fastest wall time over ``repeats`` identical runs (the results are the same
    bit for bit; the best run is the one least disturbed by the rest of this shared machine)."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = reconstruct(rig, det.keypoints2d, perf.t_ns, SKELETON, FPS, filter=filt)
        best = min(best, time.perf_counter() - t0)
    return result, best


def single_person(lines: list[str], checks: list[tuple[str, bool]]) -> None:
    rig, perf, det, truth = studio("studio-8", 1, seed=3)
    T = perf.num_frames
    rows = []
    for filt in ("none", "butterworth"):
        result, dt = ours(rig, det, perf, filt)
        ev = evaluate(result.poses3d, truth)
        median = float(np.median(ev.errors[np.isfinite(ev.errors)]) * 1000)
        rows.append((f"ours ({'no smoothing' if filt == 'none' else 'Butterworth 6 Hz'})", T, ev.mpjpe_mm, median,
                     ev.pck([0.05])[0] * 100, T / dt))
    per_person = assign_by_simulated_truth(det.keypoints2d, det.truth_person, 1)[:, :, 0]  # [C, T, J, 3]
    group = aniposelib_group(rig)
    pts = np.where(per_person[..., 2:] > 0, per_person[..., :2], np.nan).astype(np.float64)  # [C, T, J, 2]
    tr = truth.poses[:, 0, :, :3]
    J = pts.shape[2]
    t0 = time.perf_counter()
    dlt = group.triangulate(pts.reshape(len(rig), -1, 2), undistort=True, progress=False).reshape(T, J, 3)
    dt = time.perf_counter() - t0
    seen = (per_person[..., 2] > 0).sum(0) >= 2  # [T, J]
    rows.append(("aniposelib CameraGroup.triangulate (DLT)", T, *_mpjpe_mm(dlt, tr, seen), _pck(dlt, tr, seen),
                 T / dt))
    sub = pts[:, :RANSAC_FRAMES].reshape(len(rig), -1, 2)
    t0 = time.perf_counter()
    out = group.triangulate_ransac(sub, undistort=True, progress=False)[0].reshape(RANSAC_FRAMES, J, 3)
    dt = time.perf_counter() - t0
    sub_seen = seen[:RANSAC_FRAMES]
    rows.append(("aniposelib triangulate_ransac", RANSAC_FRAMES, *_mpjpe_mm(out, tr[:RANSAC_FRAMES], sub_seen),
                 _pck(out, tr[:RANSAC_FRAMES], sub_seen), RANSAC_FRAMES / dt))
    lines += ["### One person, 8 cameras", "",
              "aniposelib is scored on the joints two or more cameras saw; its mean is pulled up by points "
              "triangulated through an outlier view, so the median is shown too.", "",
              "| method | frames | MPJPE (mm) | median (mm) | PCK@50mm (%) | frames/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {n} | {e:.1f} | {med:.1f} | {p:.1f} | {f:,.{0 if f >= 10 else 2}f} |"
              for m, n, e, med, p, f in rows]
    lines.append("")
    best_ours = min(r[2] for r in rows[:2])
    best_theirs = min(r[2] for r in rows[2:])
    checks.append((f"one person: our MPJPE {best_ours:.1f} mm < aniposelib's best {best_theirs:.1f} mm",
                   best_ours < best_theirs))
    checks.append((f"one person: {rows[0][5]:,.0f} frames/s >= 1000", rows[0][5] >= 1000))


def _mpjpe_mm(pred: np.ndarray, truth: np.ndarray, seen: np.ndarray) -> tuple[float, float]:
    """Mean and median error (mm) over the joints seen by two or more cameras (what any triangulation can
    return)."""
    err = np.linalg.norm(pred - truth, axis=-1)[seen]
    return float(np.nanmean(err) * 1000), float(np.nanmedian(err) * 1000)


def _pck(pred: np.ndarray, truth: np.ndarray, seen: np.ndarray, threshold: float = 0.05) -> float:
    err = np.linalg.norm(pred - truth, axis=-1)[seen]
    return float(np.mean(np.nan_to_num(err, nan=np.inf) < threshold) * 100)


def person_frames_right(errors: np.ndarray, limit: float = 0.05) -> float:
    """Share of truth person-frames whose matched reconstruction is within ``limit`` m (median over the joints
    both have); errors [N, Q, J] in metres, +inf where the person or joint was missed, NaN where the truth
    lacks the joint. A person missed altogether fails."""
    counted = (np.isfinite(errors) | np.isinf(errors)).any(-1)
    finite = np.where(np.isfinite(errors), errors, np.nan)
    found = np.isfinite(finite).any(-1)
    median = np.nanmedian(np.where(found[..., None], finite, 0.0), axis=-1)
    return float((found & (median < limit))[counted].mean())


def four_people(lines: list[str], checks: list[tuple[str, bool]]) -> None:
    lines += ["### Four people", "",
              "Person-frames right: the truth person's matched reconstruction is within 50 mm MPJPE (a wrong "
              "association, a missed person or a swapped identity fails it).", "",
              "| rig | frames | MPJPE (mm) | PCK@50mm (%) | person-frames right (%) | identity switches per "
              "person-minute | frames/s |",
              "|---|---|---|---|---|---|---|"]
    for rig_name in ("studio-8", "studio-4"):
        rig, perf, det, truth = studio(rig_name, 4, seed=5)
        result, dt = ours(rig, det, perf, "none")
        ev = evaluate(result.poses3d, truth)
        minutes = perf.num_frames / FPS / 60
        switches = ev.identity_switches / (4 * minutes)
        fps = perf.num_frames / dt
        right = person_frames_right(ev.errors)
        lines.append(f"| {rig_name} | {perf.num_frames} | {ev.mpjpe_mm:.1f} | {ev.pck([0.05])[0] * 100:.1f} | "
                     f"{right * 100:.2f} | {switches:.2f} | {fps:,.0f} |")
        if rig_name == "studio-8":
            checks += [(f"studio-8, 4 people: MPJPE {ev.mpjpe_mm:.1f} mm <= 15", ev.mpjpe_mm <= 15),
                       (f"studio-8, 4 people: {right * 100:.2f} % person-frames right >= 99", right >= 0.99),
                       (f"studio-8, 4 people: {switches:.2f} identity switches per person-minute < 1", switches < 1),
                       (f"studio-8, 4 people: {fps:,.0f} frames/s >= 200", fps >= 200)]
    lines.append("")


def main() -> int:
    lines = [f"Machine: {machine_line()}.", "", __doc__.split("\n\n")[1].replace("\n", " "), ""]
    checks: list[tuple[str, bool]] = []
    single_person(lines, checks)
    four_people(lines, checks)
    lines += [f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks]
    write_section(DOCS, "bench_reconstruction", ["## Reconstruction (2D keypoints to tracked 3D)", "", *lines])
    print("\n".join(lines))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
