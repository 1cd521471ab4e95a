"""``mocap reconstruct``: tracked 3D people (``poses3d.npz``) from 2D keypoints, into a session folder.

    mocap reconstruct --rig RIG --keypoints DIR [--format openpose|coco|npz] [--skeleton NAME] [--fps N] --out SESSION
    mocap reconstruct SESSION

From files: every camera's keypoints in ``DIR`` (``rigs.keypoint_files.read_keypoints_dir``) are lined up by
frame number (a camera without a frame reports nobody there); times are the files' own (npz) or frame / fps.
fps: ``--fps``, else the rig's cameras' rate, else 30. The output folder becomes a session the later stages
accept: ``session.toml`` (rig snapshot, the ``reconstruct`` stage), ``keypoints2d/`` (the input, one npz per
camera, unless the folder has one already), ``poses3d.npz`` and ``report/``.

From a session: its ``keypoints2d/`` (written by ``mocap keypoints import`` or an earlier run). A simulated
session recorded without keypoints gets them from the SIMULATED detector run on its FrameSets (the frames'
truth, exactly what ``mocap node recon`` computes live on a replay of it); they are written to
``keypoints2d/`` so later runs reuse them. fps: ``--fps``, else the session's, else the rig's, else 30.

The reconstruction is ``reconstruction.pipeline.reconstruct``: the per-frame steps the live node runs, then
each track smoothed with ``--filter`` (default zero-phase Butterworth). ``--filter none`` keeps the per-frame
poses, which are what ``mocap node recon`` publishes: on a replayed session the two agree frame by frame.

``poses3d.npz`` holds ``poses`` [T, P, J, 4], ``track_ids`` [T, P], ``t_ns``, ``fps``, ``skeleton``,
``joint_names`` plus ``reprojection_errors`` float32 [T, P, C, J] (px, every camera's detection against the
point), ``inlier_views`` bool [T, P, C, J] (the views each joint was triangulated from) and ``camera_names``.
``report/`` gets ``reconstruction_summary.txt``, ``tracks.png`` (top view and timeline of the tracks) and
``reprojection.png`` (reprojection error per camera).
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np
from rich.console import Console

DEFAULT_FPS = 30.0
SIMULATED_SKELETON = "body25"  # the layout the simulated detector reports on simulated sessions


class ReconstructCommandError(ValueError):
    """Arguments or folders ``mocap reconstruct`` cannot use; the message says what to do instead."""


def add_reconstruct_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``reconstruct`` verb to the mocap verbs; it sets ``func=run_reconstruct`` (args, console -> code)."""
    from reconstruction.recon_node import add_reconstruction_options

    p = verbs.add_parser(
        "reconstruct", help="3D people from 2D keypoints: poses3d.npz and a report in a session folder",
        description="Associate people across views, triangulate robustly, track and smooth: poses3d.npz (metres, "
                    "the rig's world frame, the input's keypoint layout) plus report/. Either SESSION (a "
                    "session with keypoints2d/, or a simulated recording: the simulated detector then runs on "
                    "its frames) or --rig, --keypoints and --out.")
    p.add_argument("session", nargs="?", metavar="SESSION",
                   help="a session folder with keypoints2d/ (or a recorded simulated session); results are added")
    p.add_argument("--rig", help="rig file or preset (default for SESSION: its session.toml)")
    p.add_argument("--keypoints", metavar="DIR", help="folder with every camera's 2D keypoints (see --format)")
    p.add_argument("--format", dest="fmt", default="openpose", metavar="openpose|coco|npz",
                   help="keypoint files in DIR: openpose (a JSON folder per camera), coco (a results JSON per "
                        "camera) or npz (keypoints2d/<camera>.npz); default openpose")
    p.add_argument("--skeleton", metavar="NAME", help="keypoint layout where the joint count does not say "
                                                      "(e.g. body25b); default inferred")
    p.add_argument("--fps", type=float, metavar="N", help="frame rate (default: the session's, else the rig's "
                                                          "cameras', else 30)")
    p.add_argument("--out", metavar="SESSION", help="output session folder (with --keypoints)")
    p.add_argument("--filter", default="butterworth", metavar="butterworth|one-euro|none",
                   help="smoothing of each track: butterworth (zero-phase, default), one-euro, or none (the "
                        "per-frame poses, as the live node publishes them)")
    add_reconstruction_options(p)
    p.add_argument("--force", action="store_true", help="replace the poses3d.npz of an earlier run")
    p.set_defaults(func=run_reconstruct)
    return p


def run_reconstruct(args: argparse.Namespace, console: Console) -> int:
    """``mocap reconstruct``: read the keypoints, reconstruct, write the session's files; exit code 0."""
    from mocap.progress_bar import progress_bar
    from reconstruction.pipeline import FILTERS, reconstruct
    from reconstruction.recon_node import reconstruction_params
    from rigs.poses3d_file import write_poses3d

    if args.fps is not None and not (np.isfinite(args.fps) and args.fps > 0):
        raise ReconstructCommandError(f"--fps {args.fps:g}: expected a positive frame rate")
    if args.filter not in FILTERS:
        raise ReconstructCommandError(f"--filter {args.filter}: expected one of {', '.join(FILTERS)}")
    params = reconstruction_params(args)  # every option checked before anything is read or written
    inputs = _session_inputs(args, console) if args.session else _file_inputs(args, console)
    folder, rig = inputs["folder"], inputs["rig"]
    kp, t_ns, skeleton, fps = inputs["keypoints"], inputs["t_ns"], inputs["skeleton"], inputs["fps"]
    C, T, P, J, _ = kp.shape
    console.print(f"reconstructing {T} frames of {C} cameras ({skeleton}, {J} joints, up to {P} detections per "
                  f"camera) at {fps:g} fps", markup=False)
    with progress_bar(console, "reconstructing") as progress:
        rec = reconstruct(rig, kp, t_ns, skeleton, fps, filter=args.filter, params=params, progress=progress)
    outputs = list(inputs["outputs"])
    write_poses3d(folder / "poses3d.npz", rec.poses3d)
    outputs.append("poses3d.npz")
    lines = summary_lines(rec, rig, inputs["source"], args.filter)
    report = folder / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "reconstruction_summary.txt").write_text("\n".join(lines) + "\n")
    plot_tracks(rec.poses3d, report / "tracks.png")
    plot_reprojection(rec.poses3d, report / "reprojection.png")
    outputs += ["report/reconstruction_summary.txt", "report/tracks.png", "report/reprojection.png"]
    _record_stage(folder, rig, fps, inputs["simulated"], _command_line(args), outputs)
    for line in lines:
        console.print(line, markup=False)
    console.print(f"wrote {folder / 'poses3d.npz'} and {report}/ (reconstruction_summary.txt, tracks.png, "
                  f"reprojection.png)", markup=False)
    return 0


# --- inputs ------------------------------------------------------------------------------------------------

def _fps(args: argparse.Namespace, *rates: float | None) -> float:
    """--fps, else the first positive rate given, else 30."""
    for rate in (args.fps, *rates):
        if rate is not None and rate > 0:
            return float(rate)
    return DEFAULT_FPS


def _file_inputs(args: argparse.Namespace, console: Console) -> dict:
    """--rig, --keypoints and --out: the keypoints lined up by frame, the output folder prepared."""
    from rigs.formats import load_rig
    from rigs.keypoint_files import read_keypoints_dir, stack_cameras

    missing = [flag for flag, value in (("--rig", args.rig), ("--keypoints", args.keypoints), ("--out", args.out))
               if not value]
    if missing:
        raise ReconstructCommandError(f"give a SESSION, or --rig, --keypoints and --out (missing "
                                      f"{', '.join(missing)})")
    rig = load_rig(args.rig)
    keypoints = Path(args.keypoints)
    seqs = read_keypoints_dir(keypoints, rig.names, args.fmt, args.skeleton)
    fps = _fps(args, rig.fps)
    kp, frames, t_ns, skeleton = stack_cameras([seqs[c] for c in rig.names], fps)
    folder = _output_folder(Path(args.out), args.force)
    outputs = []
    if not (folder / "keypoints2d").exists():
        _write_keypoints2d(folder, rig.names, kp, t_ns, skeleton, frames)
        outputs.append("keypoints2d")
    simulated = bool(rig.simulated or (keypoints / "SIMULATED.txt").exists())
    return dict(folder=folder, rig=rig, keypoints=kp, t_ns=t_ns, skeleton=skeleton, fps=fps, outputs=outputs,
                simulated=simulated, source=f"keypoints from {keypoints} ({args.fmt})")


def _session_inputs(args: argparse.Namespace, console: Console) -> dict:
    """SESSION: its keypoints2d/, or the simulated detector on its simulated FrameSets (then written)."""
    from rigs.formats import load_rig
    from rigs.keypoint_files import read_keypoints_dir, stack_cameras
    from rigs.session_file import read_session_info

    if args.keypoints or args.out:
        raise ReconstructCommandError("SESSION is reconstructed from its own keypoints2d/ into itself; give "
                                      "either SESSION, or --keypoints DIR with --out SESSION")
    folder = Path(args.session)
    if not (folder / "session.toml").is_file():
        what = "does not exist" if not folder.exists() else "has no session.toml"
        raise ReconstructCommandError(f"{folder} {what}: give a session folder (mocap record --out), or "
                                      f"--rig, --keypoints and --out to start one from keypoint files")
    if (folder / "poses3d.npz").exists() and not args.force:
        raise ReconstructCommandError(f"{folder} already has poses3d.npz; pass --force to replace it")
    info = read_session_info(folder)
    rig = load_rig(args.rig or folder / "session.toml")
    fps = _fps(args, info.fps, rig.fps)
    outputs: list[str] = []
    if (folder / "keypoints2d").is_dir():
        seqs = read_keypoints_dir(folder, rig.names, "npz", args.skeleton)
        kp, frames, t_ns, skeleton = stack_cameras([seqs[c] for c in rig.names], fps)
        source = f"keypoints from {folder / 'keypoints2d'}"
    else:
        kp, frames, t_ns, skeleton = simulated_session_keypoints(folder, rig, args.skeleton or SIMULATED_SKELETON)
        _write_keypoints2d(folder, rig.names, kp, t_ns, skeleton, frames, simulated=True)
        outputs.append("keypoints2d")
        source = (f"no keypoints2d/ in the session: ran the SIMULATED detector on its {len(frames)} FrameSets "
                  f"(from the simulated frames' truth) and wrote keypoints2d/")
        console.print(source, markup=False)
    return dict(folder=folder, rig=rig, keypoints=kp, t_ns=t_ns, skeleton=skeleton, fps=fps, outputs=outputs,
                simulated=info.simulated, source=source)


def simulated_session_keypoints(folder: Path, rig, skeleton: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The SIMULATED detector on a recorded simulated session: keypoints [C, T, S, J, 3] per FrameSet of
    ``sync.csv`` (each camera's frame answered from its truth header, as the live node does on a replay),
    set indices [T], set times [T] and the skeleton."""
    from capture.session_reader import SessionVideo
    from reconstruction.simulated_frame_detector import SimulatedFrameDetector
    from rigs.skeletons import get_skeleton

    with SessionVideo(folder) as video:
        if not (folder / "sync.csv").exists():
            raise ReconstructCommandError(f"{folder} has no keypoints2d/ and no sync.csv: nothing to reconstruct "
                                          f"from; import keypoints with `mocap keypoints import`")
        sets, t_sets, seqs, cams = video.sync()
        truth = {cam: video.truth(cam) for cam in cams}
    if not any(truth.values()):
        raise ReconstructCommandError(
            f"{folder} has no keypoints2d/ and its frames are not simulated: no 2D detector runs on real video "
            f"yet; import keypoints first (mocap keypoints import {folder} --from DIR --format openpose|coco)")
    detector = SimulatedFrameDetector(rig, skeleton)
    column = {cam: i for i, cam in enumerate(cams)}
    sk = get_skeleton(skeleton)
    first = next(t for table in truth.values() for t in table.values())
    S = detector.slots(first)
    kp = np.full((len(rig), len(sets), S, sk.num_joints, 3), np.nan, np.float32)
    kp[..., 2] = 0.0
    for row in range(len(sets)):
        headers = [None] * len(rig)
        for c, name in enumerate(rig.names):
            i = column.get(name)
            if i is not None and seqs[row, i] >= 0:
                headers[c] = truth[name].get(int(seqs[row, i]))
        if any(h is not None for h in headers):
            found = detector.frameset(headers)[:, :S]
            kp[:, row, : found.shape[1]] = found
    return kp, sets.astype(np.int64), t_sets.astype(np.int64), sk.name


# --- outputs -----------------------------------------------------------------------------------------------

def _output_folder(folder: Path, force: bool) -> Path:
    if folder.exists() and not folder.is_dir():
        raise ReconstructCommandError(f"--out {folder} is a file; give a folder for the session")
    if (folder / "poses3d.npz").exists() and not force:
        raise ReconstructCommandError(f"--out {folder} already has poses3d.npz; pass --force to replace it, or "
                                      f"choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_keypoints2d(folder: Path, cameras, kp: np.ndarray, t_ns: np.ndarray, skeleton: str,
                       frames: np.ndarray, simulated: bool = False) -> None:
    from rigs.keypoint_files import write_keypoints_npz

    for c, name in enumerate(cameras):
        write_keypoints_npz(folder / "keypoints2d" / f"{name}.npz", kp[c], t_ns, skeleton, frames)
    if simulated:
        (folder / "keypoints2d" / "SIMULATED.txt").write_text(
            "SIMULATED DATA: 2D keypoints of the SIMULATED detector (reconstruction.simulated_frame_detector),\n"
            "computed from the recorded simulated frames' truth, one row per FrameSet of sync.csv.\n")


def _record_stage(folder: Path, rig, fps: float, simulated: bool, command: str, outputs: list[str]) -> None:
    """Add the reconstruct stage to session.toml (created for a new folder; the rig snapshot is kept)."""
    from rigs.formats import load_rig
    from rigs.session_file import SessionInfo, StageRecord, read_session_info, write_session_toml

    stage = StageRecord("reconstruct", command, time.time_ns(), tuple(outputs))
    if (folder / "session.toml").exists():
        info = read_session_info(folder)
        snapshot = load_rig(folder / "session.toml")
        stages = tuple(s for s in info.stages if s.name != "reconstruct") + (stage,)
        info = SessionInfo(info.name, info.fps, info.start_ns, info.simulated, info.notes, stages)
    else:
        snapshot = rig
        info = SessionInfo(folder.resolve().name, fps, time.time_ns(), simulated,
                           "reconstructed from keypoint files (mocap reconstruct)", (stage,))
    write_session_toml(folder, info, snapshot)


def _command_line(args: argparse.Namespace) -> str:
    words = ["mocap", "reconstruct"]
    if args.session:
        words.append(str(args.session))
    for flag, value in (("--rig", args.rig), ("--keypoints", args.keypoints), ("--out", args.out),
                        ("--skeleton", args.skeleton)):
        if value:
            words += [flag, str(value)]
    if args.keypoints:
        words += ["--format", args.fmt]
    if args.fps is not None:
        words += ["--fps", f"{args.fps:g}"]
    words += ["--filter", args.filter]
    for flag, value, default in (("--threshold-px", args.threshold_px, 15.0),
                                 ("--association-px", args.association_px, 25.0)):
        if value != default:
            words += [flag, f"{value:g}"]
    words += ["--no-bone-check"] * bool(args.no_bone_check) + ["--force"] * bool(args.force)
    return shlex.join(words)


def summary_lines(rec, rig, source: str, filter: str) -> list[str]:
    """The report's summary: people, frames, tracks, reprojection per camera, what was reconstructed, speed."""
    s, p = rec.stats, rec.poses3d
    T = p.num_frames
    span = (p.t_ns[-1] - p.t_ns[0]) / 1e9 if T > 1 else 0.0
    ids = sorted(int(i) for i in np.unique(p.track_ids[p.track_ids >= 0]))
    shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
    reproj = ", ".join(f"{c} {v:.2f}" if np.isfinite(v) else f"{c} -" for c, v in s.median_reprojection_px.items())
    stages = ", ".join(f"{k} {v:.1f} ms" for k, v in s.stage_ms.items())
    return [
        "mocap reconstruct" + (" (SIMULATED input)" if "SIMULATED" in source else ""),
        f"input: {source}",
        f"rig: {rig.name}, {len(rig)} cameras ({', '.join(rig.names)})",
        f"frames: {T} at {p.fps:g} fps ({span:.1f} s); skeleton {p.skeleton} ({len(p.joint_names)} joints)",
        f"people: up to {s.max_people} at once; {s.tracks} tracks (ids {shown or 'none'})",
        f"frames with people: {100 * s.frames_with_people:.1f} %",
        f"joints reconstructed: {100 * s.joints_reconstructed:.1f} % of the tracked people's joints",
        f"left out: {s.unconfirmed} person-frames before their track was confirmed",
        f"median reprojection error (px, views used) per camera: {reproj}",
        f"filter: {filter}",
        f"speed: {s.frames_per_s:.0f} frames/s ({stages} per frame)",
    ]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tracks(poses3d, path: Path) -> Path:
    """Write a PNG: every track's path seen from above (mean of its joints) and when each track was seen."""
    plt = _pyplot()
    poses, ids = poses3d.poses, poses3d.track_ids
    ok = np.isfinite(poses[..., :3]).all(-1) & (poses[..., 3] > 0)  # [T, P, J]
    n = ok.sum(-1)
    with np.errstate(all="ignore"):
        centre = np.where(ok[..., None], poses[..., :3], 0.0).sum(2) / n[..., None]  # [T, P, 3]
    t = (poses3d.t_ns - poses3d.t_ns[0]) / 1e9 if poses3d.num_frames else np.zeros(0)
    fig, (top, line) = plt.subplots(1, 2, figsize=(12, 5.5), dpi=100, gridspec_kw={"width_ratios": [1, 1.3]})
    colours = plt.get_cmap("tab10")
    ticks: list[int] = []
    for slot in range(poses.shape[1]):
        seen = n[:, slot] > 0
        if not seen.any():
            continue
        tid = int(ids[seen, slot][0])
        colour = colours(tid % 10)
        xy = np.where(seen[:, None], centre[:, slot, :2], np.nan)
        top.plot(xy[:, 0], xy[:, 1], lw=1.0, color=colour, label=f"track {tid}")
        first = np.flatnonzero(seen)[0]
        top.plot(*xy[first], "o", color=colour, ms=4)
        line.plot(t, np.where(seen, tid, np.nan), "-", color=colour, lw=4, solid_capstyle="butt")
        ticks.append(tid)
    top.set_aspect("equal", adjustable="datalim")
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")
    top.set_title("tracks from above (o: start)")
    top.grid(True, lw=0.3)
    if poses.shape[1]:
        top.legend(fontsize=7, loc="best")
    line.set_xlabel("time (s)")
    line.set_ylabel("track id")
    line.set_yticks(ticks[:40])
    line.set_title("when each track was seen")
    line.grid(True, lw=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_reprojection(poses3d, path: Path) -> Path:
    """Write a PNG: the reprojection error (px) of the views each joint was triangulated from, per camera."""
    plt = _pyplot()
    errors, inliers = poses3d.extras["reprojection_errors"], poses3d.extras["inlier_views"]
    names = [str(n) for n in poses3d.extras["camera_names"]]
    data = [errors[:, :, c][inliers[:, :, c]] for c in range(len(names))]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4.5), dpi=100)
    shown = [d if d.size else np.array([np.nan]) for d in data]
    ax.boxplot(shown, showfliers=False)
    ax.set_xticks(np.arange(1, len(names) + 1), names)
    for c, d in enumerate(data):
        if d.size:
            ax.annotate(f"{np.median(d):.2f}", (c + 1, np.median(d)), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
    ax.set_ylabel("reprojection error (px)")
    ax.set_title("reprojection error per camera\n(views each joint was triangulated from; median annotated)",
                 fontsize=10)
    ax.grid(True, axis="y", lw=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
