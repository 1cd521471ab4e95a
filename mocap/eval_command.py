"""`mocap eval SESSION --truth FILE`: score a session's poses3d.npz against ground truth.

The truth is a poses3d npz (simulated sessions write ``truth/poses3d.npz``) or a TRC file (Pose2Sim's
reference 3D, or any OpenSim marker file): its markers are named like our joints (``rigs.trc_file``) and
moved from TRC's Y-up axes into the Z-up world unless ``--trc-axes as-is``. Joints are compared by name,
frames by time for npz truth and by index for TRC truth (a TRC's clock is not the session's). Prints the
headline table and writes ``summary.md``, ``summary.json`` and ``eval.png`` under SESSION/report/eval/
(or --out). Definitions: ``reconstruction.metrics``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reconstruction.eval_report import write_eval_report
from reconstruction.metrics import MATCH_DISTANCE, evaluate
from rigs.poses3d_file import Poses3D, read_poses3d
from rigs.trc_file import read_trc, trc_to_poses3d


def add_eval_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser("eval", help="score a session's 3D poses against ground truth (MPJPE, PCK, PCP, AP...)",
                         description="Compare SESSION/poses3d.npz with ground truth: MPJPE, PA-MPJPE, PCK, PCP, "
                                     "PDJ, AP and identity switches, per joint and overall.")
    p.add_argument("session", help="the session folder holding poses3d.npz (or a poses3d.npz file)")
    p.add_argument("--truth", required=True, help="ground truth: a poses3d npz (e.g. SESSION/truth/poses3d.npz) "
                                                  "or a .trc marker file")
    p.add_argument("--out", help="report folder (default SESSION/report/eval)")
    p.add_argument("--joints", metavar="A,B", help="compare only these joints (default: every shared name)")
    p.add_argument("--frames", choices=("auto", "t_ns", "index"), default=None,
                   help="pair frames by time or index (default: time for npz truth, index for TRC)")
    p.add_argument("--trc-axes", choices=("y-up", "as-is"), default="y-up",
                   help="a TRC's axes: y-up (OpenSim/Pose2Sim, converted to our Z-up world) or as-is")
    p.add_argument("--max-distance", type=float, default=MATCH_DISTANCE,
                   help=f"largest MPJPE (m) at which a prediction and a truth person match (default {MATCH_DISTANCE})")
    p.set_defaults(func=run_eval)
    return p


def load_truth(path: str | Path, trc_axes: str = "y-up") -> Poses3D:
    """Ground truth as Poses3D from a poses3d npz or a TRC file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such truth file; give a poses3d npz or a .trc file")
    if path.suffix.lower() == ".trc":
        return trc_to_poses3d(read_trc(path), to_world=trc_axes == "y-up")
    return read_poses3d(path)


def run_eval(args: argparse.Namespace, console: Console) -> int:
    """``mocap eval``: print the headline table, write the report; exit code 0."""
    session = Path(args.session)
    pred_path = session if session.suffix == ".npz" else session / "poses3d.npz"
    if not pred_path.exists():
        raise FileNotFoundError(f"{pred_path}: no poses3d.npz; reconstruct the session first "
                                f"(mocap reconstruct {session})")
    pred = read_poses3d(pred_path)
    truth = load_truth(args.truth, args.trc_axes)
    frames = args.frames or ("index" if Path(args.truth).suffix.lower() == ".trc" else "auto")
    joints = [j.strip() for j in args.joints.split(",") if j.strip()] if args.joints else None
    result = evaluate(pred, truth, joints, frames=frames, max_distance=args.max_distance)
    out = Path(args.out) if args.out else (session.parent if session.suffix == ".npz" else session) / "report" / "eval"
    paths = write_eval_report(result, out, f"{pred_path.parent.name} vs {Path(args.truth).name}")

    console.print(f"{pred_path} vs {args.truth}: {result.num_frames} frames (paired by "
                  f"{result.frames_matched_by}), {len(result.joint_names)} joints", markup=False)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.summary().items():
        if name in ("frames", "identity_switches", "false_positives"):
            shown = str(int(value))
        elif not math.isfinite(value):
            shown = "-"
        elif name.endswith("_mm"):
            shown = f"{value:.1f} mm"
        else:
            shown = f"{100 * value:.1f} %"
        table.add_row(name, shown)
    console.print(table)
    console.print(f"report: {', '.join(str(p) for p in paths)}", markup=False)
    return 0
