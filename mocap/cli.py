"""The `mocap` command: one verb per stage, every one taking any rig format or preset for --rig."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from rich.console import Console

from rigs.camera import RigError


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mocap",
        description="Markerless multi-camera motion capture: calibrate, capture, reconstruct, fit, export.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    rig = verbs.add_parser("rig", help="look at or convert a camera rig (calibration)")
    rig_verbs = rig.add_subparsers(dest="rig_verb", metavar="ACTION", required=True)
    show = rig_verbs.add_parser("show", help="print a table of the cameras; --plot writes a top view")
    show.add_argument("rig", help="rig file, folder (opencv format) or preset name (e.g. studio-4)")
    show.add_argument("--format", dest="fmt", help="the file's format when detection is not wanted")
    show.add_argument("--plot", metavar="PNG", help="write a top-view plot of the layout")
    conv = rig_verbs.add_parser("convert", help="convert a rig between formats")
    conv.add_argument("src", help="input rig file, folder or preset")
    conv.add_argument("dst", help="output file (a folder for the opencv format)")
    conv.add_argument("--from", dest="from_fmt", help="input format (detected from the content by default)")
    conv.add_argument("--to", dest="to_fmt", help="output format (default: mocap rig.toml)")

    sim = verbs.add_parser("sim", help="the simulated studio")
    sim_verbs = sim.add_subparsers(dest="sim_verb", metavar="ACTION", required=True)
    kp = sim_verbs.add_parser("keypoints", help="write what a simulated 2D detector saw, plus ground truth")
    kp.add_argument("--rig", default="studio-4", help="rig file or preset (default studio-4)")
    kp.add_argument("--people", type=int, default=2)
    kp.add_argument("--seconds", type=float, default=10.0)
    kp.add_argument("--out", required=True, help="output folder")
    kp.add_argument("--format", dest="fmt", choices=("openpose", "npz"), default="openpose")
    kp.add_argument("--skeleton", default="body25", help="keypoint layout written (default body25)")
    kp.add_argument("--seed", type=int, default=0)
    kp.add_argument("--bvh", help="drive the performers from a BVH clip instead of the procedural motion")

    from mocap.demo import add_demo_parser

    add_demo_parser(verbs)  # `mocap demo [--people N] [--seconds S] [--out DIR] [--rig PRESET] [--seed N] [--view]`

    from capture.camera_node import add_node_parser

    node_kinds = add_node_parser(verbs)  # `mocap node camera ...`
    from reconstruction.recon_node import add_recon_node_parser

    add_recon_node_parser(node_kinds)  # `mocap node recon --rig RIG [--connect ENDPOINT ...] [--pub ENDPOINT]`
    from mocap.reconstruct_command import add_reconstruct_parser

    add_reconstruct_parser(verbs)  # `mocap reconstruct SESSION` | `--rig RIG --keypoints DIR --out SESSION`
    from capture.curve_keys import add_keys_parser

    add_keys_parser(verbs)  # `mocap keys --rig RIG.toml [--client NAME ...] [--force]`
    from capture.capture_command import add_capture_parser

    add_capture_parser(verbs)  # `mocap capture --rig RIG`
    from capture.replay import add_replay_parser

    add_replay_parser(verbs)  # `mocap replay SESSION ...`
    from capture.record_command import add_record_parser

    add_record_parser(verbs)  # `mocap record --rig RIG --out SESSION [--duration S] [--connect ENDPOINT ...]`
    from mocap.calibrate_commands import add_calibrate_parser

    add_calibrate_parser(verbs)  # `mocap calibrate board|intrinsics|extrinsics|people|refine ...`
    from mocap.eval_command import add_eval_parser

    add_eval_parser(verbs)  # `mocap eval SESSION --truth FILE [--out DIR]`
    from mocap.keypoints_import import add_keypoints_parser

    add_keypoints_parser(verbs)  # `mocap keypoints import SESSION --from DIR --format openpose|coco`
    from mocap.fit_command import add_fit_parser

    add_fit_parser(verbs)  # `mocap fit SESSION [--body-model DIR] [--gender G] [--device cpu|cuda]`
    from mocap.export_command import add_export_parser

    add_export_parser(verbs)  # `mocap export SESSION [--bvh] [--smpl] [--trc] [--c3d] [--units] [--up] [--fps]`
    from mocap.body_model_commands import add_body_model_parser

    add_body_model_parser(verbs)  # `mocap body-model standin --out DIR [--gender G]` | `convert FILE.pkl OUT.npz`
    from mocap.view_command import add_view_parser

    add_view_parser(verbs)  # `mocap view SESSION [--snapshot PNG | --video MP4 ...]` | `--connect ENDPOINT`
    from mocap.overlay_command import add_overlay_parser

    add_overlay_parser(verbs)  # `mocap overlay SESSION --camera NAME [--out overlay.mp4] [--no-detections]`
    from mocap.process_command import add_process_parser

    add_process_parser(verbs)  # `mocap process SESSION [--rig RIG] [--force] [--camera NAME]`
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; user errors print one line and exit 2 (MOCAP_DEBUG=1: traceback)."""
    args = _build_parser().parse_args(argv)
    # Piped output (CI logs, files) gets a wide console so tables are not wrapped into columns of fragments.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    try:
        with warnings.catch_warnings():
            # Warnings from loaders (a guessed image size, fields a format cannot hold) are for the user.
            warnings.showwarning = _show_warning
            return _dispatch(args, console)
    except (RigError, FileNotFoundError, ValueError, KeyError) as exc:
        if os.environ.get("MOCAP_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mocap: error: {msg}", file=sys.stderr)
        return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"mocap: warning: {message}", file=sys.stderr)


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    if args.verb == "rig":
        from mocap.rig_commands import rig_convert, rig_show

        if args.rig_verb == "show":
            return rig_show(args.rig, args.fmt, args.plot, console)
        return rig_convert(args.src, args.dst, args.from_fmt, args.to_fmt, console)
    if args.verb == "sim":
        from mocap.sim_commands import sim_keypoints

        return sim_keypoints(args, console)
    if args.verb == "node":
        return args.node_run(args)
    if args.verb == "keys":
        return args.keys_run(args)
    if args.verb == "capture":
        return args.func(args, console)
    if args.verb == "replay":
        return args.replay_run(args)
    if args.verb == "record":
        return args.func(args)
    if args.verb in ("calibrate", "eval", "keypoints", "reconstruct", "fit", "export", "body-model", "demo",
                     "overlay", "process", "view"):
        return args.func(args, console)
    raise AssertionError(args.verb)


if __name__ == "__main__":
    sys.exit(main())
