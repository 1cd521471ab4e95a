"""Calibration accuracy, end to end, against ground truth and against other labs' calibrations.

1. Simulated 8-camera studio (studio-8, 1920x1080 with lens distortion), everything through images:
   each camera's lens from 50 rendered board images (our detector, our intrinsics), then the rig from a
   board carried around the studio (rendered in every camera, 240 frames), the world from the board lying
   on the floor in the first frames. Targets: focal within 0.5 %, principal point within 2 px, rotation
   within 0.1 deg, position within 5 mm.
2. Self-calibration from simulated people (studio-4 and studio-8, one person walking 8 s, 2 px noise,
   10 % gross outliers), scale from the person's height. Target: rotation 0.5 deg, position 2 cm.
3. Real recordings (skipped when ../shared/data is absent): Pose2Sim's checkerboard images against
   Pose2Sim's own Calib_scene.toml; caliscope's ChArUco videos against caliscope's camera_array.toml;
   self-calibration from Pose2Sim's OpenPose JSON against the Qualisys calibration.

Writes the ``bench_calibration_accuracy`` section of docs/benchmarks.md and docs/calibration_accuracy.png.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.docs_section import machine_line, write_section  # noqa: E402
from calibration.board_detection import detect_views  # noqa: E402
from calibration.extrinsics import calibrate_extrinsics  # noqa: E402
from calibration.frame_sources import image_folder_frames, video_frames  # noqa: E402
from calibration.intrinsics import calibrate_intrinsics  # noqa: E402
from calibration.rig_comparison import (  # noqa: E402
    floor_frame_errors,
    relative_pose_errors,
    rotation_deg,
    similarity_errors,
)
from calibration.self_calibration import self_calibrate  # noqa: E402
from calibration.world_frame import board_world  # noqa: E402
from rigs.board import Board, load_board  # noqa: E402
from rigs.camera import Rig  # noqa: E402
from rigs.formats import load_rig  # noqa: E402
from rigs.keypoint_files import Keypoints2DSequence, read_keypoints_dir  # noqa: E402
from rigs.sim.board import SimulatedBoard, board_on_floor  # noqa: E402
from rigs.sim.board_motion import board_in_front_of, board_waved  # noqa: E402
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections  # noqa: E402
from rigs.sim.performers import simulate_performers  # noqa: E402
from rigs.sim.render import RenderParams, render_view  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "calibration_accuracy.png"
SHARED = ROOT.parent / "shared" / "data"
POSE2SIM = SHARED / "perfanalytics+pose2sim" / "Pose2Sim"
CALISCOPE = SHARED / "mprib+caliscope" / "tests" / "sessions" / "charuco_calibration"
BOARD = SimulatedBoard(cols=7, rows=10, square=0.06, marker=0.045, dictionary="DICT_5X5_100")  # lens board
FLOOR_BOARD = SimulatedBoard(cols=5, rows=7, square=0.15, marker=0.11)  # A0 print: seen on the floor from 4 m
PARAMS = RenderParams(stamp=False)
LENS_IMAGES = 50  # board images per camera for its lens


def _unplaced(rig: Rig) -> Rig:
    return rig.replace(cameras=tuple(c.with_extrinsics(np.eye(3), np.zeros(3)) for c in rig))


def simulated_board_pipeline(lines: list[str], checks: list[tuple[str, bool]], errors: dict) -> None:
    truth = load_rig("studio-8")
    spec = BOARD.spec
    t0 = time.perf_counter()
    lenses, rows = [], []
    for c, cam in enumerate(truth):
        frames = [(i, f"{cam.name}_{i}", render_view(cam, None, i, PARAMS, pose))
                  for i, pose in enumerate(board_in_front_of(cam, BOARD, LENS_IMAGES, seed=10 + c))]
        views = detect_views(frames, spec, cam.name)
        fit = calibrate_intrinsics(views, spec, cam.size, name=cam.name)
        lens = fit.camera
        f_err = 100 * np.abs(np.array(lens.focal) / np.array(cam.focal) - 1).max()
        c_err = np.abs(lens.K[:2, 2] - cam.K[:2, 2]).max()
        rows.append((cam.name, len(views), fit.rms, f_err, c_err))
        lenses.append(lens.replace(fps=cam.fps, source=cam.source))
    t_int = time.perf_counter() - t0
    calibrated_lenses = Rig(tuple(lenses), name="studio-8 lenses")
    big = FLOOR_BOARD.spec
    poses = board_waved(FLOOR_BOARD, 240, floor_frames=6, seed=2)
    t0 = time.perf_counter()
    views = []
    for cam in truth:
        frames = [(k, f"{cam.name}#{k}", render_view(cam, None, k, PARAMS, pose)) for k, pose in enumerate(poses)]
        views += detect_views(frames, big, cam.name)
    t_det = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = calibrate_extrinsics(_unplaced(calibrated_lenses), views, big)
    t_ba = time.perf_counter() - t0
    k = int(np.flatnonzero(result.frames == 0)[0])
    placed = board_world(big, result.bundle.board_R[k], result.bundle.board_t[k]).apply_rig(result.rig)
    floor = board_on_floor(FLOOR_BOARD)
    want = board_world(big, floor.R, floor.t).apply_rig(truth)
    rot = np.array([float(rotation_deg(a.R @ b.R.T)) for a, b in zip(placed, want, strict=True)])
    pos = np.linalg.norm(placed.centers - want.centers, axis=1)
    errors["simulated board (studio-8)"] = (rot, pos)
    worst_f, worst_c = max(r[3] for r in rows), max(r[4] for r in rows)
    lines += [
        "### Simulated studio-8 through rendered images",
        "",
        f"Lenses from {LENS_IMAGES} rendered images per camera of a {spec.describe()} ({t_int:.0f} s for all 8); "
        f"the rig from {len(poses)} frames of a {big.describe()} carried around ({len(views)} board views, detection "
        f"{t_det:.0f} s, bundle adjustment {t_ba:.1f} s), world from the board on the floor in frame 0.",
        "",
        "| camera | board views | lens RMS (px) | focal error (%) | principal point error (px) | "
        "rotation error (deg) | position error (mm) | reprojection RMS (px) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, nv, rms, f_err, c_err), r, p in zip(rows, rot, pos, strict=True):
        lines.append(f"| {name} | {nv} | {rms:.3f} | {f_err:.3f} | {c_err:.2f} | {r:.3f} | {p * 1000:.2f} | "
                     f"{result.camera_rms[name]:.3f} |")
    lines.append("")
    checks += [("simulated focal within 0.5 %", worst_f < 0.5), ("simulated principal point within 2 px", worst_c < 2),
               ("simulated rotation within 0.1 deg", rot.max() < 0.1),
               ("simulated position within 5 mm", pos.max() < 0.005)]
    lines.append(f"Worst: focal {worst_f:.3f} %, principal point {worst_c:.2f} px, rotation {rot.max():.3f} deg, "
                 f"position {pos.max() * 1000:.2f} mm.")
    lines.append("")


def simulated_people(lines: list[str], checks: list[tuple[str, bool]], errors: dict) -> None:
    lines += ["### Self-calibration from simulated people",
              "",
              "One person 1.75 m tall walking for 8 s at 30 fps, BODY_25B from the simulated detector with 2 px "
              "noise and 10 % of the joints moved to random pixels; scale from the stated height, world from the "
              "floor under the feet. Errors relative to the first camera (the calibration) and in the floor "
              "frame after the turn about Z and the shift along the floor that the floor leaves free.",
              "",
              "| rig | seed | rotation (deg) | position (cm) | floor frame rotation (deg) | floor frame position (cm) "
              "| time (s) |",
              "|---|---|---|---|---|---|---|"]
    worst_rot = worst_pos = 0.0
    for rig_name in ("studio-4", "studio-8"):
        for seed in (1, 2):
            truth = load_rig(rig_name)
            perf = simulate_performers(1, 8.0, 30, seed=seed, heights=[1.75])
            params = SimulatedDetectorParams(pixel_noise_px=2.0, gross_outlier_rate=0.1, seed=seed)
            kp = simulate_detections(truth, perf, "body25b", params).keypoints2d
            seqs = {n: Keypoints2DSequence(kp[c], np.arange(perf.num_frames), "body25b")
                    for c, n in enumerate(truth.names)}
            t0 = time.perf_counter()
            result = self_calibrate(_unplaced(truth), seqs, person_height=1.75)
            dt = time.perf_counter() - t0
            rot, pos = relative_pose_errors(result.rig, truth)
            frot, fpos = floor_frame_errors(result.rig, truth)
            errors[f"people {rig_name} seed {seed}"] = (rot, pos)
            worst_rot, worst_pos = max(worst_rot, rot.max()), max(worst_pos, pos.max())
            lines.append(f"| {rig_name} | {seed} | {rot.max():.3f} | {pos.max() * 100:.2f} | {frot.max():.3f} | "
                         f"{fpos.max() * 100:.2f} | {dt:.1f} |")
    lines.append("")
    checks += [("self-calibration rotation within 0.5 deg", worst_rot < 0.5),
               ("self-calibration position within 2 cm", worst_pos < 0.02)]


def real_pose2sim_intrinsics(lines: list[str]) -> None:
    ref = load_rig(POSE2SIM / "Demo_SinglePerson" / "calibration" / "Calib_scene.toml")
    board = Board.parse("checkerboard:4x7:0.06")
    lines += ["### Real: Pose2Sim checkerboard images against Pose2Sim's Calib_scene.toml",
              "",
              "| camera | views used | RMS (px) | fx ours / theirs | fy ours / theirs | cx ours / theirs | "
              "cy ours / theirs | focal difference (%) |",
              "|---|---|---|---|---|---|---|---|"]
    for i, cam in enumerate(ref):
        folder = POSE2SIM / "Demo_SinglePerson" / "calibration" / "intrinsics" / f"int_cam0{i + 1}_img"
        views = detect_views(image_folder_frames(folder), board, cam.name)
        fit = calibrate_intrinsics(views, board, views[0].image_size, name=cam.name)
        K, Kr = fit.camera.K, cam.K
        diff = 100 * (K[0, 0] / Kr[0, 0] - 1)
        pairs = " | ".join(f"{K[i, j]:.1f} / {Kr[i, j]:.1f}" for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
        lines.append(f"| {cam.name} | {len(fit.used)} | {fit.rms:.3f} | {pairs} | {diff:+.2f} |")
    lines += ["",
              "cam04: Pose2Sim's detector misplaces a corner of `cam04_07_int.jpg` on the image border by about "
              "12 px, which pulls its focal length up 1 %; ours places it (that view's RMS is 0.26 px). Fed Pose2Sim's "
              "own detections, our calibration drops that view as an outlier (2.1 px against a median of 0.4 px) "
              "and gives 1671.6 px. Our four "
              "cameras (one make) agree within 0.25 %, Pose2Sim's spread over 1.2 %.", ""]


def real_caliscope_extrinsics(lines: list[str], errors: dict) -> None:
    ref = load_rig(CALISCOPE / "camera_array.toml")
    board = load_board(CALISCOPE / "charuco.toml")
    t0 = time.perf_counter()
    views = []
    for cam in ref:
        index = cam.name.split("_")[-1]
        views += detect_views(video_frames(CALISCOPE / "calibration" / "extrinsic" / f"cam_{index}.mp4"), board,
                              cam.name)
    result = calibrate_extrinsics(_unplaced(ref), views, board)
    dt = time.perf_counter() - t0
    rot, pos = relative_pose_errors(result.rig, ref)
    errors["caliscope videos"] = (rot, pos)
    lines += ["### Real: caliscope's ChArUco videos against caliscope's camera_array.toml",
              "",
              f"{board.describe()}; 4 webcams 1280x720, {len(views)} board views; caliscope's intrinsics; "
              f"detection and bundle adjustment {dt:.1f} s. Poses relative to the first camera.",
              "",
              "| camera | rotation (deg) | position (cm) | reprojection RMS (px) |",
              "|---|---|---|---|"]
    for name, r, p in zip(ref.names, rot, pos, strict=True):
        lines.append(f"| {name} | {r:.2f} | {p * 100:.2f} | {result.camera_rms[name]:.3f} |")
    lines.append("")


def real_pose2sim_people(lines: list[str], errors: dict) -> None:
    base = POSE2SIM / "S00_Demo_Session"
    qualisys = load_rig(base / "S00_Calibration" / "Calib_qualisys.toml")
    kp = read_keypoints_dir(base / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "pose",
                            qualisys.names, "openpose", "body25b")
    t0 = time.perf_counter()
    result = self_calibrate(_unplaced(qualisys), kp, person_height=1.72, floor=False)
    dt = time.perf_counter() - t0
    rot, pos, scale = similarity_errors(result.rig, qualisys)
    errors["Pose2Sim people"] = (rot, pos)
    lines += ["### Real: self-calibration from Pose2Sim's OpenPose JSON against the Qualisys calibration",
              "",
              f"100 frames of one person balancing (BODY_25B, an experimenter in the background of two views), "
              f"Qualisys intrinsics, height 1.72 m, no floor (the person stays in place); {dt:.1f} s. Compared "
              f"after the best similarity; the height gave a scale {100 * (scale - 1):+.1f} % off.",
              "",
              "| camera | rotation (deg) | position (cm) | reprojection RMS (px) |",
              "|---|---|---|---|"]
    for name, r, p in zip(qualisys.names, rot, pos, strict=True):
        lines.append(f"| {name} | {r:.2f} | {p * 100:.1f} | {result.camera_rms[name]:.2f} |")
    lines.append("")


def plot(errors: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    names = list(errors)
    panels = ((axes[0], 0, "rotation error (deg)", 1.0, (0.1, 0.5)),
              (axes[1], 1, "position error (cm)", 100.0, (0.5, 2)))
    for ax, which, unit, scale, targets in panels:
        for i, name in enumerate(names):
            values = errors[name][which] * scale
            values = values[values > 1e-9]  # the reference camera of relative comparisons is exactly 0
            ax.plot(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, "o", ms=4)
        for y, label in zip(targets, ("board target", "people target"), strict=True):
            ax.axhline(y, color="grey", lw=0.8, ls="--")
            ax.text(len(names) - 0.5, y, label, fontsize=7, va="bottom", ha="right", color="grey")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("calibration accuracy per camera (bench_calibration_accuracy)", fontsize=10)
    fig.tight_layout()
    fig.savefig(PLOT)
    plt.close(fig)


def main() -> int:
    lines = [f"Machine: {machine_line()}.", ""]
    checks: list[tuple[str, bool]] = []
    errors: dict = {}
    t0 = time.perf_counter()
    simulated_board_pipeline(lines, checks, errors)
    simulated_people(lines, checks, errors)
    if SHARED.is_dir():
        real_pose2sim_intrinsics(lines)
        real_caliscope_extrinsics(lines, errors)
        real_pose2sim_people(lines, errors)
    else:
        lines += ["Real recordings skipped: ../shared/data is absent.", ""]
    plot(errors)
    lines += ["| target | result |", "|---|---|"] + [f"| {name} | {'PASS' if ok else 'FAIL'} |" for name, ok in checks]
    lines += ["", "![calibration accuracy](calibration_accuracy.png)", "",
              f"Whole benchmark: {time.perf_counter() - t0:.0f} s."]
    write_section(DOCS, "bench_calibration_accuracy", ["## Calibration accuracy", "", *lines])
    print("\n".join(lines))
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
