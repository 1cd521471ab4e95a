"""`mocap calibrate board|intrinsics|extrinsics|people|refine`: print a board, calibrate lenses, place the
cameras from a board or from the people in view, and put the world's floor at z = 0.

Every verb writes a rig file (mocap's rig.toml, or ``--to FORMAT``) and a report folder
beside it (``<stem>-report/``: summary.txt and plots), and prints what it measured."""

from __future__ import annotations

import argparse
import functools
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from calibration.errors import CalibrationError
from calibration.report import report_folder, write_report
from mocap.progress_bar import progress_bar
from rigs.board import Board, load_board
from rigs.camera import Camera, Rig
from rigs.formats import load_rig, save_rig


def add_calibrate_parser(verbs) -> None:
    """The `calibrate` verb and its actions."""
    cal = verbs.add_parser("calibrate", help="calibrate the rig: boards, intrinsics, extrinsics, from people")
    acts = cal.add_subparsers(dest="calibrate_verb", metavar="ACTION", required=True)
    board_help = ("board spec (charuco:COLSxROWS:SQUARE:MARKER:DICT[:inverted] or checkerboard:COLSxROWS:SQUARE, "
                  "metres) or a TOML file with a [board] table")

    p = acts.add_parser("board", help="write a printable board at its exact physical size (PDF or PNG)")
    p.add_argument("--board", required=True, help=board_help)
    p.add_argument("--out", required=True, help="board.pdf (true scale) or board.png")
    p.add_argument("--dpi", type=int, default=300, help="PNG resolution (default 300)")

    p = acts.add_parser("intrinsics", help="lens calibration of one camera from board images or a video")
    p.add_argument("--board", required=True, help=board_help)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of board images")
    src.add_argument("--video", help="video file of the board being moved in front of the camera")
    p.add_argument("--camera", required=True, help="the camera's name in the rig")
    p.add_argument("--rig", help="rig to update (the camera's intrinsics are replaced, the rest is kept)")
    p.add_argument("--fisheye", action="store_true", help="fisheye lens model (cv2.fisheye) instead of pinhole")
    p.add_argument("--step", type=int, default=0, help="use every STEP-th video frame (default: about 300 frames)")
    p.add_argument("--max-views", type=int, default=40, help="views used in the final fit (default 40)")
    _add_out_args(p)

    p = acts.add_parser("extrinsics", help="camera poses from a board moved through the capture volume")
    p.add_argument("--board", help=board_help + " (default: the rig's [board])")
    p.add_argument("--rig", required=True, help="rig with every camera's intrinsics")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--session", help="a recorded session folder (mocap record)")
    src.add_argument("--videos", nargs="+", metavar="NAME=FILE", help="one frame-synchronised video per camera")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame (default 1)")
    p.add_argument("--refine-intrinsics", action="store_true", help="also refine focal, centre and distortion")
    _add_world_args(p, default="camera", choices=("camera", "board", "people"))
    p.add_argument("--floor-frame", type=int, help="--world board: the frame where the board lies on the floor")
    p.add_argument("--keypoints", help="--world people: 2D keypoints of people walking around (folder)")
    _add_keypoint_format_args(p)
    _add_out_args(p)

    p = acts.add_parser("people", help="camera poses from the people in view (intrinsics known)")
    p.add_argument("--rig", required=True, help="rig with every camera's intrinsics")
    p.add_argument("--keypoints", required=True, help="2D keypoints folder (one sub-folder or file per camera)")
    _add_keypoint_format_args(p)
    scale = p.add_mutually_exclusive_group(required=True)
    scale.add_argument("--person-height", type=float, metavar="M", help="the person's standing height in metres")
    scale.add_argument("--distance", nargs=3, metavar=("CAM_A", "CAM_B", "M"),
                       help="a measured distance between two cameras' centres, metres")
    _add_world_args(p, default="floor", choices=("floor", "camera"))
    _add_out_args(p)

    p = acts.add_parser("refine", help="re-run the joint bundle adjustment from an existing calibration")
    p.add_argument("--rig", required=True, help="the existing calibration")
    p.add_argument("--keypoints", required=True, help="2D keypoints folder (one sub-folder or file per camera)")
    _add_keypoint_format_args(p)
    _add_out_args(p)
    cal.set_defaults(func=run_calibrate)


def _add_out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="rig file to write")
    p.add_argument("--to", default="mocap", help="rig format written (default mocap; see `mocap rig convert`)")


def _add_world_args(p: argparse.ArgumentParser, default: str, choices: tuple[str, ...]) -> None:
    p.add_argument("--world", default=default, choices=choices,
                   help=f"world frame: {', '.join(choices)} (default {default}); "
                        "board = the board on the floor, people/floor = the floor under their feet, "
                        "camera = the first camera's frame")


def _add_keypoint_format_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", dest="fmt", default="openpose", choices=("openpose", "coco", "npz"),
                   help="keypoint files: openpose (a JSON folder per camera), coco, npz (default openpose)")
    p.add_argument("--skeleton", help="keypoint layout (default: inferred from the number of points)")


def run_calibrate(args: argparse.Namespace, console: Console) -> int:
    """Dispatch `mocap calibrate ACTION`."""
    return {"board": _board, "intrinsics": _intrinsics, "extrinsics": _extrinsics, "people": _people,
            "refine": _refine}[args.calibrate_verb](args, console)


# --- board -----------------------------------------------------------------------------------------

def _board(args: argparse.Namespace, console: Console) -> int:
    from calibration.board_print import write_board

    board = load_board(args.board)
    out = write_board(board, args.out, dpi=args.dpi)
    w, h = board.size
    console.print(f"wrote {out}: {board.describe()}; squared area {w * 1000:.1f} x {h * 1000:.1f} mm. "
                  f"Print at 100 % (no 'fit to page') and measure a square: it must be {board.square * 1000:g} mm.")
    return 0


# --- intrinsics ------------------------------------------------------------------------------------

def _intrinsics(args: argparse.Namespace, console: Console) -> int:
    from calibration.board_detection import detect_views
    from calibration.frame_sources import image_folder_frames, video_frames
    from calibration.intrinsics import calibrate_intrinsics
    from calibration.intrinsics_plot import plot_intrinsics

    board = load_board(args.board)
    if args.images:
        where, open_frames = args.images, lambda: image_folder_frames(args.images)
    else:
        step = args.step or max(1, len(video_frames(args.video)) // 300)
        where, open_frames = args.video, lambda: video_frames(args.video, step=step)
    frames = open_frames()
    total = len(frames)
    with progress_bar(console, f"detecting the board in {total} images of {args.camera}") as progress:
        views = detect_views(frames, board, args.camera, progress=progress)
    if not views:
        raise _no_board(where, open_frames(), board)
    with progress_bar(console, "calibrating") as progress:
        result = calibrate_intrinsics(views, board, views[0].image_size, name=args.camera,
                                      model="fisheye" if args.fisheye else "pinhole",
                                      max_views=args.max_views, progress=progress)
    camera = result.camera
    rig = _rig_with_intrinsics(args.rig, camera, board)
    out = save_rig(rig, Path(args.out), args.to)
    lines = _intrinsics_lines(result, total, len(views))
    folder = write_report(report_folder(out), rig, f"intrinsics of {args.camera}", lines, {args.camera: result.rms},
                          result.advice)
    plot_intrinsics(result, folder / f"intrinsics_{args.camera}.png")
    for line in lines:
        console.print(line)
    for advice in result.advice:
        console.print(f"[yellow]advice:[/] {advice}")
    console.print(f"wrote {out} and {folder}/")
    return 0


def _no_board(where: str, frames, board: Board) -> CalibrationError:
    """The error for a camera whose images never showed the board, saying what was seen instead."""
    from calibration.board_detection import explain_no_board

    total = len(frames)
    every = max(1, total // 5)
    sample = [image for i, (_, _, image) in enumerate(frames) if i % every == 0][:5]
    return CalibrationError(f"{where}: the board ({board.describe()}) was not found in {total} images; "
                            f"{explain_no_board(sample, board)}")


def _intrinsics_lines(result, frames: int, views: int) -> list[str]:
    cam = result.camera
    std = result.std
    fx, fy = cam.focal
    lines = [f"board found in {views} of {frames} images; {len(result.used)} views used, {len(result.dropped)} dropped",
             f"RMS reprojection error: {result.rms:.3f} px (per view: median {np.median(result.view_rms):.3f}, "
             f"max {np.max(result.view_rms):.3f})",
             f"model {cam.model}, image {cam.width}x{cam.height}",
             f"fx {fx:.2f} ± {std.get('fx', float('nan')):.2f}  fy {fy:.2f} ± {std.get('fy', float('nan')):.2f}  "
             f"cx {cam.K[0, 2]:.2f} ± {std.get('cx', float('nan')):.2f}  "
             f"cy {cam.K[1, 2]:.2f} ± {std.get('cy', float('nan')):.2f} px",
             "distortion " + " ".join(f"{v:+.5f}" for v in cam.dist)]
    reasons = Counter(why.split(":")[0].split(" (")[0] for _, why in result.dropped)
    if reasons:
        lines.append("views not used: " + ", ".join(f"{n} {why}" for why, n in reasons.most_common()))
    lines += [f"dropped {view.source or view.frame}: {why}" for view, why in result.dropped
              if why.startswith("outlier")]
    return lines


def _rig_with_intrinsics(rig_arg: str | None, camera: Camera, board: Board) -> Rig:
    if rig_arg is None:
        return Rig((camera,), name=camera.name, board=board)
    rig = load_rig(rig_arg)
    if camera.name in rig.names:
        old = rig[camera.name]
        camera = camera.replace(R=old.R, t=old.t, fps=old.fps, source=old.source, endpoint=old.endpoint,
                                clock_offset_ns=old.clock_offset_ns)
    return rig.with_camera(camera).replace(board=board)


# --- extrinsics ------------------------------------------------------------------------------------

def _extrinsics(args: argparse.Namespace, console: Console) -> int:
    from calibration.board_detection import detect_views
    from calibration.extrinsics import calibrate_extrinsics
    from calibration.frame_sources import session_frames, video_frames

    rig = load_rig(args.rig)
    board = load_board(args.board) if args.board else rig.board
    if board is None:
        raise CalibrationError(f"{args.rig}: has no [board]; pass --board SPEC")
    sources = _frame_sources(args, rig, session_frames, video_frames)
    views, seen = [], {}
    for name, open_frames in sources.items():
        frames = open_frames()
        with progress_bar(console, f"detecting the board in {name}") as progress:
            found = detect_views(frames, board, name, progress=progress)
        if not found:
            raise _no_board(f"camera {name}", open_frames(), board)
        seen[name] = (len(found), len(frames))
        views += found
    with progress_bar(console, "bundle adjustment") as progress:
        result = calibrate_extrinsics(rig, views, board, refine_intrinsics=args.refine_intrinsics, progress=progress)
    calibrated, world = result.rig, "the first camera"
    if args.world == "board":
        calibrated, world = _board_world(args, result, board)
    elif args.world == "people":
        calibrated, world = _people_world(args, calibrated)
    calibrated = calibrated.replace(board=board)
    out = save_rig(calibrated, Path(args.out), args.to)
    lines = [f"{name}: board in {n} of {total} frames" for name, (n, total) in seen.items()]
    lines += [f"{a}-{b}: {k} shared board views" for (a, b), k in sorted(result.connections.items())]
    lines += [f"world frame: {world}"]
    folder = write_report(report_folder(out), calibrated, "extrinsics from the board",
                          lines + _rms_lines(result.camera_rms), result.camera_rms, result.warnings)
    console.print(_rms_table(result.camera_rms, "reprojection error after bundle adjustment"))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"world frame: {world}")
    console.print(f"wrote {out} and {folder}/")
    return 0


def _frame_sources(args, rig: Rig, session_frames, video_frames) -> dict:
    """camera -> a function opening its frames (opened twice when the board is missing: to explain why)."""
    step = max(1, args.step)
    if args.session:
        return {name: functools.partial(session_frames, args.session, name, step=step) for name in rig.names}
    sources = {}
    for item in args.videos:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise CalibrationError(f"--videos {item!r}: expected NAME=FILE, e.g. cam0=board_cam0.mp4")
        if name not in rig.names:
            raise CalibrationError(f"--videos {item!r}: the rig has no camera {name!r}; it has {', '.join(rig.names)}")
        sources[name] = functools.partial(video_frames, path, step=step)
    missing = [n for n in rig.names if n not in sources]
    if missing:
        raise CalibrationError(f"--videos: no video for {', '.join(missing)}; give NAME=FILE for every camera of "
                               f"the rig ({', '.join(rig.names)}), or a rig with only the cameras to calibrate")
    return sources


def _board_world(args, result, board: Board) -> tuple[Rig, str]:
    from calibration.world_frame import board_world

    if args.floor_frame is None:
        raise CalibrationError("--world board needs --floor-frame FRAME: the frame where the board lies on the floor "
                               f"(board frames seen: {_frame_range(result.frames)})")
    hits = np.flatnonzero(np.asarray(result.frames) == args.floor_frame)
    if not hits.size:
        raise CalibrationError(f"--floor-frame {args.floor_frame}: no camera saw the board in that frame "
                               f"(board frames seen: {_frame_range(result.frames)})")
    k = int(hits[0])
    T = board_world(board, result.bundle.board_R[k], result.bundle.board_t[k])
    return T.apply_rig(result.rig), T.origin + f" (frame {args.floor_frame})"


def _frame_range(frames) -> str:
    frames = np.unique(np.asarray(frames))
    return f"{len(frames)} frames from {frames.min()} to {frames.max()}" if frames.size else "none"


def _people_world(args, rig: Rig) -> tuple[Rig, str]:
    from calibration.self_calibration import floor_from_people
    from rigs.keypoint_files import read_keypoints_dir

    if not args.keypoints:
        raise CalibrationError("--world people needs --keypoints DIR: 2D keypoints of people walking on the floor")
    keypoints = read_keypoints_dir(args.keypoints, rig.names, args.fmt, args.skeleton)
    T = floor_from_people(rig, keypoints)
    return T.apply_rig(rig), T.origin


# --- people ----------------------------------------------------------------------------------------

def _people(args: argparse.Namespace, console: Console) -> int:
    from calibration.self_calibration import self_calibrate
    from rigs.keypoint_files import read_keypoints_dir

    rig = load_rig(args.rig)
    keypoints = read_keypoints_dir(args.keypoints, rig.names, args.fmt, args.skeleton)
    distance = None
    if args.distance:
        a, b, m = args.distance
        distance = (a, b, _metres(m))
    with progress_bar(console, "self-calibration from people") as progress:
        result = self_calibrate(rig, keypoints, person_height=args.person_height, distance=distance,
                                floor=args.world == "floor", progress=progress)
    return _write_people_result(args, result, "self-calibration from people", console)


def _refine(args: argparse.Namespace, console: Console) -> int:
    from calibration.self_calibration import refine_from_people
    from rigs.keypoint_files import read_keypoints_dir

    rig = load_rig(args.rig)
    keypoints = read_keypoints_dir(args.keypoints, rig.names, args.fmt, args.skeleton)
    with progress_bar(console, "joint bundle adjustment") as progress:
        result = refine_from_people(rig, keypoints, progress=progress)
    return _write_people_result(args, result, "refined from people", console)


def _write_people_result(args, result, title: str, console: Console) -> int:
    out = save_rig(result.rig, Path(args.out), args.to)
    lines = [f"{a}-{b}: {k} inlier correspondences" for (a, b), k in sorted(result.pair_inliers.items())]
    lines += [f"scale: {result.scale:.6g} m per unit", f"{len(result.points)} 3D joints in the adjustment"]
    folder = write_report(report_folder(out), result.rig, title, lines + _rms_lines(result.camera_rms),
                          result.camera_rms, result.warnings)
    console.print(_rms_table(result.camera_rms, f"{title}: reprojection error"))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"wrote {out} and {folder}/")
    return 0


def _metres(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CalibrationError(f"--distance: {text!r} is not a length in metres") from None
    if not 0 < value < 100:
        raise CalibrationError(f"--distance: {value:g} m between two cameras is not plausible; give metres")
    return value


# --- shared ----------------------------------------------------------------------------------------

def _rms_lines(camera_rms: dict[str, float]) -> list[str]:
    return [f"{name}: reprojection RMS {rms:.3f} px" for name, rms in camera_rms.items()]


def _rms_table(camera_rms: dict[str, float], title: str) -> Table:
    table = Table(title=title)
    table.add_column("camera")
    table.add_column("RMS (px)", justify="right")
    for name, rms in camera_rms.items():
        table.add_row(name, f"[red]{rms:.3f}[/]" if rms > 1.0 else f"{rms:.3f}")
    return table
