"""`mocap fit SESSION`: fit the body model (SMPL, or the stand-in) to every track of the session's poses3d.npz.

Writes ``smpl/track_<id>.npz`` (AMASS layout, see ``rigs.smpl_file``) per fitted track and the report under
``report/fit/`` (``fitting.fit_report``), and records the stage in session.toml. Tracks that cannot be
fitted are listed with the reason; the others are still fitted and written (exit status 1 when any track was
left out, 0 when all were fitted).
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mocap.progress_bar import progress_bar


class FitCommandError(ValueError):
    """A session or option `mocap fit` cannot use; the message says what to do."""


def add_fit_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``fit`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser("fit", help="fit SMPL (or the stand-in body model) to a session's tracked 3D poses",
                         description="SMPLify on every track of SESSION/poses3d.npz: writes SESSION/smpl/"
                                     "track_<id>.npz and SESSION/report/fit/.")
    p.add_argument("session", help="a session folder with poses3d.npz (mocap reconstruct)")
    p.add_argument("--body-model", metavar="DIR", help="folder with SMPL_NEUTRAL/MALE/FEMALE .npz or .pkl "
                                                       "(default $MOCAP_BODY_MODELS; the stand-in when neither)")
    p.add_argument("--gender", choices=("neutral", "male", "female"), default="neutral")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--pose-prior", metavar="FILE", help="SMPLify GMM pose prior (gmm_08 .pkl or .npz); "
                                                        "default: the built-in joint-limit and L2 prior")
    p.add_argument("--use-2d", action="store_true",
                   help="add the multi-view 2D reprojection term (needs the session's keypoints2d/ and rig)")
    p.add_argument("--track", type=int, action="append", metavar="ID", help="fit only this track (repeatable)")
    p.add_argument("--min-frames", type=int, default=None, help="skip tracks seen in fewer frames (default 5)")
    p.add_argument("--force", action="store_true", help="replace an existing smpl/ folder's track files")
    p.set_defaults(func=run_fit)
    return p


def _session(folder: Path, force: bool) -> Path:
    if not folder.is_dir():
        raise FitCommandError(f"{folder}: no such session folder; give the folder `mocap reconstruct` wrote")
    if not (folder / "poses3d.npz").is_file():
        raise FitCommandError(f"{folder} has no poses3d.npz: reconstruct it first (mocap reconstruct {folder})")
    existing = sorted((folder / "smpl").glob("track_*.npz"))
    if existing and not force:
        raise FitCommandError(f"{folder / 'smpl'} already has {len(existing)} track file(s); pass --force to "
                              f"replace them")
    return folder


def _device(name: str) -> str:
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise FitCommandError("--device cuda: torch sees no CUDA device on this machine; use --device cpu")
    return name


def _views(folder: Path, poses3d, console: Console):
    """The per-track 2D observations for --use-2d, from the session's rig and keypoints2d/."""
    from fitting.fit_session import views_for_track
    from fitting.reprojection_term import MultiViewObservations
    from rigs.formats import load_rig
    from rigs.keypoint_files import read_keypoints_dir, stack_cameras

    if not (folder / "keypoints2d").is_dir() or not (folder / "session.toml").is_file():
        raise FitCommandError(f"--use-2d needs {folder / 'keypoints2d'} and {folder / 'session.toml'} (the rig); "
                              f"fit without --use-2d, or reconstruct from the session's own keypoints")
    rig = load_rig(folder / "session.toml")
    seqs = read_keypoints_dir(folder, rig.names, "npz", poses3d.skeleton)
    kp, _, t_ns, skeleton = stack_cameras([seqs[c] for c in rig.names], poses3d.fps)
    if skeleton != poses3d.skeleton:
        raise FitCommandError(f"--use-2d: keypoints2d are {skeleton} but poses3d.npz is {poses3d.skeleton}")
    console.print(f"multi-view 2D term: {len(rig)} cameras from {folder / 'keypoints2d'}", markup=False)
    return lambda track: MultiViewObservations(rig, views_for_track(rig, kp, t_ns, track))


def run_fit(args: argparse.Namespace, console: Console) -> int:
    """``mocap fit``: fit every track, write the files and the report; 1 when some track was left out."""
    from fitting.body_model import load_body_model
    from fitting.fit_report import write_fit_report
    from fitting.fit_session import MIN_FRAMES, fit_tracks, smpl_track, track_inputs
    from fitting.smplify import FitParams
    from rigs.poses3d_file import read_poses3d
    from rigs.smpl_file import write_smpl_track

    folder = _session(Path(args.session), args.force)
    device = _device(args.device)
    poses3d = read_poses3d(folder / "poses3d.npz")
    inputs, skipped = track_inputs(poses3d, min_frames=args.min_frames or MIN_FRAMES, tracks=args.track)
    if not inputs and not skipped:
        raise FitCommandError(f"{folder / 'poses3d.npz'} has no tracks (nobody was tracked): nothing to fit; "
                              f"check the reconstruction report")
    model = load_body_model(args.body_model, args.gender, device,
                            say=lambda line: console.print(line, markup=False))
    prior = None
    if args.pose_prior:
        from fitting.priors import GMMPrior

        prior = GMMPrior.load(args.pose_prior)
    views = _views(folder, poses3d, console) if args.use_2d else None
    params = FitParams(device=device, fps=poses3d.fps)
    t0 = time.perf_counter()
    with progress_bar(console, f"fitting {len(inputs)} track(s)") as progress:
        fits, failed = fit_tracks(model, inputs, poses3d.skeleton, params, pose_prior=prior, views=views,
                                  progress=progress)
    skipped = skipped + failed
    out = folder / "smpl"
    out.mkdir(exist_ok=True)
    written = [write_smpl_track(out / f"track_{f.input.track_id}.npz", smpl_track(f, model, poses3d.fps))
               for f in fits]
    report = write_fit_report(folder / "report" / "fit", fits, skipped, model, poses3d.skeleton, device,
                              tuple(poses3d.joint_names))
    _record_stage(folder, args, [str(p.relative_to(folder)) for p in written])

    table = Table(title=f"mocap fit: {folder}" + (" (STAND-IN body model)" if model.arrays.is_standin else ""))
    for col in ("track", "frames", "error mean (mm)", "jumps", "file"):
        table.add_column(col)
    for f, path in zip(fits, written, strict=True):
        import numpy as np

        e = np.asarray(f.result.joint_error_mm)
        e = e[np.isfinite(e)]
        table.add_row(str(f.input.track_id), str(f.input.keypoints.shape[0]), f"{e.mean():.1f}" if e.size else "-",
                      str(len(np.asarray(f.result.jumps).ravel())), str(path.relative_to(folder)))
    for s in skipped:
        table.add_row(str(s.track_id), "-", "-", "-", f"not fitted: {s.reason}")
    console.print(table)
    console.print(f"{len(fits)} track(s) fitted in {time.perf_counter() - t0:.1f} s; report: "
                  f"{folder / 'report' / 'fit' / 'summary.txt'} ({len(report)} files)", markup=False)
    return 1 if skipped else 0


def _record_stage(folder: Path, args: argparse.Namespace, outputs: list[str]) -> None:
    """Add the fit stage to session.toml when the session has one (a bare poses3d folder is left as it is)."""
    if not (folder / "session.toml").is_file():
        return
    from rigs.formats import load_rig
    from rigs.session_file import SessionInfo, StageRecord, read_session_info, write_session_toml

    words = ["mocap", "fit", str(folder), "--gender", args.gender, "--device", args.device]
    words += ["--body-model", str(args.body_model)] * bool(args.body_model)
    words += ["--use-2d"] * bool(args.use_2d)
    info = read_session_info(folder)
    stage = StageRecord("fit", shlex.join(words), time.time_ns(), tuple(outputs))
    stages = tuple(s for s in info.stages if s.name != "fit") + (stage,)
    write_session_toml(folder, SessionInfo(info.name, info.fps, info.start_ns, info.simulated, info.notes, stages),
                       load_rig(folder / "session.toml"))
