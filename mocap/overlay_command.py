"""``mocap overlay SESSION --camera NAME``: the session's 3D skeletons reprojected on that camera's recorded video
(``viewer.overlay``), with its 2D detections, into an mp4; prints the frames written and a reprojection check.

    mocap overlay SESSION --camera NAME [--out overlay.mp4] [--no-detections]

Default output: ``SESSION/report/overlay_<camera>.mp4``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_overlay_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``overlay`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser("overlay", help="draw the reprojected 3D skeletons and 2D detections on a camera's video",
                         description="Reproject SESSION/poses3d.npz into one camera with the session's rig and "
                                     "draw it on that camera's recorded video (colour per track id), with the "
                                     "camera's 2D detections (keypoints2d/) as circles: an mp4v video.")
    p.add_argument("session", metavar="SESSION", help="a recorded session folder with poses3d.npz")
    p.add_argument("--camera", required=True, metavar="NAME", help="the camera whose video to draw on")
    p.add_argument("--out", metavar="MP4", help="output video (default SESSION/report/overlay_<camera>.mp4)")
    p.add_argument("--no-detections", action="store_true", help="leave out the 2D detections")
    p.set_defaults(func=run_overlay)
    return p


def default_overlay_path(session: Path, camera: str) -> Path:
    """Where an overlay of ``camera`` goes when no ``--out`` is given."""
    return Path(session) / "report" / f"overlay_{camera}.mp4"


def run_overlay(args: argparse.Namespace, console: Console) -> int:
    """``mocap overlay``: write the video, print its summary; exit code 0."""
    from mocap.progress_bar import progress_bar
    from viewer.overlay import write_overlay

    session = Path(args.session)
    out = Path(args.out) if args.out else default_overlay_path(session, args.camera)
    with progress_bar(console, f"overlay {args.camera}") as progress:
        stats = write_overlay(session, args.camera, out, detections=not args.no_detections, progress=progress)
    for line in stats.lines():
        console.print(line, markup=False)
    return 0
