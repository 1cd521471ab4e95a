"""Triangulation benchmark: ours (DLT, robust) against aniposelib (DLT, triangulate_ransac).

Synthetic data, generated here and independent of the simulated studio: one person (a 17-joint,
COCO-ordered, 1.7 m skeleton-shaped point cloud) wandering inside a 2 m-radius circle for 1000
frames, seen by 8 cameras on a 4 m ring (1920x1080, 60 degree hfov, every other one with mild
lens distortion). Detections get 2 px Gaussian noise and random scores in [0.5, 1]; 10 % of them are
replaced by outliers (half uniform random pixels in the image, half left/right joint swaps);
detections outside the image are missing. Everything is seeded.

aniposelib's ``triangulate_ransac`` manages a few points a second here (about 7), so every method is scored on
the same first frames (``--subset``), and ours also on all frames.

    .venv/bin/python benchmarks/bench_triangulation.py [--docs]    # --docs: update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aniposelib_peer import aniposelib_group  # noqa: E402
from docs_section import machine_line, report, write_section  # noqa: E402

from rigs.camera import Rig, look_at  # noqa: E402
from rigs.triangulate import triangulate, triangulate_robust  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

# A standing person in COCO-17 order, metres, facing +y, feet at z = 0 (x is the person's left).
TEMPLATE = np.array([
    [0.00, 0.09, 1.62], [0.035, 0.07, 1.66], [-0.035, 0.07, 1.66], [0.075, 0.0, 1.63], [-0.075, 0.0, 1.63],
    [0.19, 0.0, 1.42], [-0.19, 0.0, 1.42], [0.22, 0.0, 1.13], [-0.22, 0.0, 1.13], [0.24, 0.04, 0.86],
    [-0.24, 0.04, 0.86], [0.10, 0.0, 0.93], [-0.10, 0.0, 0.93], [0.11, 0.02, 0.50], [-0.11, 0.02, 0.50],
    [0.11, -0.03, 0.08], [-0.11, -0.03, 0.08]])
MIRROR = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])  # left <-> right


def make_rig() -> Rig:
    """8 cameras on a 4 m ring at 2.2-2.6 m height, looking at the centre 1 m up; odd ones distorted."""
    cams = []
    for i in range(8):
        a = 2 * np.pi * i / 8
        dist = np.array([-0.08, 0.03, 0.0005, -0.0004, 0.0]) if i % 2 else np.zeros(5)
        cams.append(look_at(f"cam{i}", [4 * np.cos(a), 4 * np.sin(a), 2.2 + 0.4 * (i % 2)], [0, 0, 1.0],
                            1920, 1080, 60.0, dist=dist))
    return Rig(tuple(cams), name="bench-ring8")


def make_motion(rng: np.random.Generator, frames: int, radius: float = 2.0) -> np.ndarray:
    """[T, 17, 3] a skeleton wandering within the circle, turning to its heading, limbs jittering."""
    pos, vel = np.zeros(2), np.zeros(2)
    root = np.zeros((frames, 2))
    for f in range(frames):  # data generation, one step per frame
        vel = 0.95 * vel + rng.normal(0, 0.004, 2) - 0.002 * pos * (np.linalg.norm(pos) > 0.8 * radius)
        pos = pos + vel
        if np.linalg.norm(pos) > radius:
            pos *= radius / np.linalg.norm(pos)
            vel = -vel
        root[f] = pos
    heading = np.unwrap(np.arctan2(np.gradient(root[:, 1]), np.gradient(root[:, 0]) + 1e-9))
    heading = np.convolve(heading, np.ones(15) / 15, mode="same") - np.pi / 2
    c, s = np.cos(heading), np.sin(heading)
    rot = np.stack([np.stack([c, -s, 0 * c], -1), np.stack([s, c, 0 * c], -1),
                    np.stack([0 * c, 0 * c, 1 + 0 * c], -1)], -2)  # [T, 3, 3] about z
    jitter = np.cumsum(rng.normal(0, 0.004, (frames, 17, 3)), 0)
    jitter = 0.06 * np.tanh(jitter / 0.06)  # limbs wander a few cm around the rest pose
    body = TEMPLATE[None] + jitter
    return np.einsum("tij,tkj->tki", rot, body) + np.concatenate([root, np.zeros((frames, 1))], -1)[:, None]


def make_detections(rng: np.random.Generator, rig: Rig, truth: np.ndarray, noise_px: float = 2.0,
                    outliers: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Detections [C, T, 17, 3] with noise, scores, outliers and missing views; and the outlier mask."""
    pix = rig.project(truth)
    inside = np.stack([cam.in_image(p) for cam, p in zip(rig, pix, strict=True)]) & np.isfinite(pix).all(-1)
    pix = pix + rng.normal(0, noise_px, pix.shape)
    bad = inside & (rng.random(inside.shape) < outliers)
    swap = bad & (rng.random(bad.shape) < 0.5)
    uniform = bad & ~swap
    pix[uniform] = rng.uniform([0, 0], [1920, 1080], (uniform.sum(), 2))
    swapped = pix[:, :, MIRROR]
    swapped[:, :, 0] = pix[:, :, rng.integers(1, 17)]  # the nose has no mirror: take another joint
    pix[swap] = swapped[swap]
    score = rng.uniform(0.5, 1.0, inside.shape)
    kp = np.concatenate([pix, score[..., None]], -1)
    kp[~inside] = [np.nan, np.nan, 0.0]
    return kp.astype(np.float32), bad


@dataclass(frozen=True)
class Row:
    """One method on one slice of the data."""

    method: str
    frames: int
    points: int
    errors_m: np.ndarray  # [N] Euclidean error per point, NaN where none was returned
    seconds: float

    def cells(self) -> list[str]:
        e = self.errors_m[np.isfinite(self.errors_m)]
        return [self.method, str(self.frames), str(self.points), f"{1000 * e.mean():.1f}",
                f"{1000 * np.median(e):.1f}", f"{100 * e.size / self.points:.1f}",
                f"{self.points / self.seconds:,.0f}", f"{self.seconds:.3f}"]


def timed(fn, repeat: int):
    """(result, best wall time of repeat runs)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def point_errors(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(points, float)[..., :3].reshape(-1, 3) - truth.reshape(-1, 3), axis=-1)


def run(frames: int, subset: int, seed: int) -> tuple[str, list[str]]:
    rng = np.random.default_rng(seed)
    rig = make_rig()
    truth = make_motion(rng, frames)
    kp, bad = make_detections(rng, rig, truth)
    C = len(rig)

    group = aniposelib_group(rig)
    probe = truth[: min(frames, 50)].reshape(-1, 3)
    gap = np.abs(group.project(probe) - rig.project(probe)).max()
    assert gap < 1e-6, f"aniposelib projects {gap:.3g} px away from our cameras: conventions differ"

    def anipose_input(k):
        p = k[..., :2].astype(np.float64).reshape(C, -1, 2).copy()
        p[k[..., 2].reshape(C, -1) <= 0] = np.nan
        return p

    rows: list[Row] = []
    sub_kp, sub_truth = kp[:, :subset], truth[:subset]
    n_sub, n_full = sub_truth[..., 0].size, truth[..., 0].size
    group.triangulate(anipose_input(sub_kp[:, :2]))  # jit warm-up, not timed
    group.triangulate_ransac(anipose_input(sub_kp[:, :1, :2]))
    for tag, k, tr, n, frames_used, repeat in (("subset", sub_kp, sub_truth, n_sub, subset, 3),
                                                ("full", kp, truth, n_full, frames, 3)):
        out, t = timed(lambda k=k: triangulate(rig, k), repeat)
        rows.append(Row("ours: triangulate (weighted DLT)", frames_used, n, point_errors(out, tr), t))
        res, t = timed(lambda k=k: triangulate_robust(rig, k), repeat)
        rows.append(Row("ours: triangulate_robust", frames_used, n, point_errors(res.points, tr), t))
        out, t = timed(lambda k=k: group.triangulate(anipose_input(k)), repeat)
        rows.append(Row("aniposelib: CameraGroup.triangulate (DLT)", frames_used, n,
                        point_errors(out, tr), t))
        if tag == "subset":
            (out, *_), t = timed(lambda k=k: group.triangulate_ransac(anipose_input(k)), 1)
            rows.append(Row("aniposelib: triangulate_ransac", frames_used, n, point_errors(out, tr), t))
        if tag == "subset" and subset == frames:
            break

    header = ["method", "frames", "points", "MPJPE (mm)", "median (mm)", "returned %", "points/s", "time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]

    sub = {r.method: r for r in rows if r.frames == subset}
    ours = sub["ours: triangulate_robust"]
    theirs = [sub["aniposelib: CameraGroup.triangulate (DLT)"], sub["aniposelib: triangulate_ransac"]]
    common = np.isfinite(ours.errors_m) & np.logical_and.reduce([np.isfinite(r.errors_m) for r in theirs])
    mpjpe = {r.method: 1000 * r.errors_m[common].mean() for r in (ours, *theirs)}
    best_name = min(mpjpe, key=lambda m: mpjpe[m] if m != ours.method else np.inf)
    full_robust = [r for r in rows if r.method == ours.method][-1]
    ransac = theirs[1]
    speedup = (full_robust.points / full_robust.seconds) / (ransac.points / ransac.seconds)
    detected = np.isfinite(kp[..., 0])
    notes = [
        f"Outliers: {bad.sum()} of {detected.sum()} detections ({100 * bad.sum() / detected.sum():.1f} %); "
        f"ours robust ({full_robust.frames} frames) marked {100 * (~res.inliers[bad]).mean():.1f} % of them "
        f"outliers and {100 * res.inliers[detected & ~bad].mean():.1f} % of the clean detections inliers.",
        f"On the {common.sum()} of {n_sub} subset points that all three return: "
        f"ours robust {mpjpe[ours.method]:.1f} mm, "
        + ", ".join(f"{m} {v:.1f} mm" for m, v in mpjpe.items() if m != ours.method) + ".",
        f"Speed-up of ours robust ({full_robust.frames} frames) over aniposelib triangulate_ransac: "
        f"{speedup:,.0f}x.",
    ]
    checks = [
        ("PASS" if mpjpe[ours.method] <= mpjpe[best_name] else "FAIL")
        + f": accuracy: ours robust {mpjpe[ours.method]:.1f} mm <= aniposelib's best ({best_name}) "
          f"{mpjpe[best_name]:.1f} mm",
        ("PASS" if speedup >= 10 else "FAIL") + f": speed: ours robust is {speedup:,.0f}x aniposelib's "
                                                 f"triangulate_ransac (target >= 10x)",
    ]
    return "\n".join(lines), notes + checks


def write_docs(table: str, notes: list[str], argv: list[str]) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (between its markers), or append it."""
    section = "\n".join([
        "## Triangulation", "",
        "Command: `" + " ".join([".venv/bin/python benchmarks/bench_triangulation.py", *argv]) + "`", "",
        f"Machine: {machine_line()} (shared with other work). Date: {datetime.date.today().isoformat()}.", "",
        "Data (synthetic, generated by the script, seeded): 1 person, 17 joints (COCO order), wandering in a",
        "2 m-radius circle; 8 cameras on a 4 m ring, 1920x1080, 60 deg hfov, 4 with mild distortion; 2 px",
        "Gaussian noise, scores uniform in [0.5, 1], 10 % of detections replaced by outliers (half uniform",
        "random pixels, half left/right swaps); detections outside the image are missing. aniposelib 0.8.0's",
        "`triangulate_ransac` (which triangulates every subset of >= 2 cameras per point, 247 on 8 cameras,",
        "and keeps the lowest mean reprojection error) runs at a few points a second here, so it is timed on",
        "the subset only and the speed-up compares rates (points/s); every",
        "method is scored on that subset, ours and aniposelib's DLT also on all frames. MPJPE and median are",
        "over the points each method returns (`returned %`); times are the best of 3 runs (ransac: 1 run).",
        "", table, "", *[f"- {n}" for n in notes]])
    write_section(DOCS, "bench_triangulation", section.split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames of motion (17 points each)")
    parser.add_argument("--subset", type=int, default=100, help="frames every method is timed and scored on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args(argv)
    subset = min(args.subset, args.frames)
    table, notes = run(args.frames, subset, args.seed)
    title = "Triangulation (synthetic: 1 person x 17 joints, 8 cameras, 2 px noise, 10 % outliers)"
    return report(title, table, notes, argv, write_docs if args.docs else None)


if __name__ == "__main__":
    sys.exit(main())
