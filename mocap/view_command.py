"""``mocap view``: look at a session or at a live reconstruction node.

    mocap view SESSION                                   playback in a window (needs a display)
    mocap view SESSION --snapshot out.png [--frame N] [--camera NAME | --orbit DEG] [--size WxH]
    mocap view SESSION --video out.mp4 [--camera NAME | --orbit DEG] [--size WxH]
    mocap view --connect ENDPOINT [--rig RIG]            the live pose3d stream in a window; without a display,
                                                         its state, receive rate and latency once a second
    mocap view --connect ENDPOINT --snapshot out.png     waits for the first pose3d message, renders it, exits

Pictures and videos render headless (Open3D's offscreen renderer, ``viewer/render.py``): floor grid with the
world axes, camera frustums with their names, skeletons coloured by track id with the id above the head,
fitted bodies when ``smpl/`` holds them, and the frame number and time. The default frame is the one with the
most people; the default view a 3/4 view from above; ``--camera`` views through a rig camera (scaled to the
image size), ``--orbit`` from a virtual camera circling the people at that azimuth (degrees from +X to +Y).
"""

from __future__ import annotations

import argparse
import re
import time

from rich.console import Console

from viewer.scene import ViewerError

DEFAULT_WAIT_S = 30.0  # --connect --snapshot: how long to wait for the first message without --duration


def add_view_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``view`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser("view", help="look at a session (window, --snapshot, --video) or a live node (--connect)",
                         description="Play a session in a window, or render it headless: --snapshot PNG of one "
                                     "frame, --video MP4 of the playback. With --connect, the live pose3d stream "
                                     "of a reconstruction node.")
    p.add_argument("session", nargs="?", help="the session folder (with poses3d.npz)")
    p.add_argument("--connect", metavar="ENDPOINT", help="a reconstruction node's pose3d publisher, e.g. "
                                                         "tcp://127.0.0.1:5570 (instead of SESSION)")
    p.add_argument("--snapshot", metavar="PNG", help="render one frame headless to this picture and exit")
    p.add_argument("--video", metavar="MP4", help="render the playback headless to this video (mp4v) and exit")
    p.add_argument("--frame", type=int, help="the frame of --snapshot (default: the one with the most people)")
    p.add_argument("--camera", metavar="NAME", help="view through this rig camera")
    p.add_argument("--orbit", type=float, metavar="DEG", help="view from a virtual camera circling the people, at "
                                                              "this azimuth (degrees from +X towards +Y)")
    p.add_argument("--size", metavar="WxH", help="image size (default 960x540; through --camera: 960 wide at the "
                                                 "camera's aspect)")
    p.add_argument("--duration", type=float, metavar="S", help="--connect: seconds to print the live status "
                                                                "(default: until Ctrl-C), or to wait for the "
                                                                f"first message with --snapshot (default "
                                                                f"{DEFAULT_WAIT_S:g})")
    p.add_argument("--rig", metavar="RIG", help="--connect: the rig, for camera frustums and CURVE keys")
    p.set_defaults(func=run_view)
    return p


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"960x540"`` -> (960, 540); None stays None; anything else is a ViewerError."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise ViewerError(f"--size {text!r}: give WIDTHxHEIGHT in pixels, e.g. 960x540")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ViewerError(f"--size {text}: width and height must be 16..8192 pixels")
    return w, h


def _image_size(args, scene) -> tuple[int, int]:
    size = parse_size(args.size)
    if size is not None:
        return size
    if args.camera is not None and scene.rig is not None and args.camera in scene.rig.names:
        cam = scene.rig[args.camera]
        return 960, max(16, 2 * round(480 * cam.height / cam.width))
    from viewer.render import DEFAULT_SIZE

    return DEFAULT_SIZE


def _check(args) -> None:
    if args.camera is not None and args.orbit is not None:
        raise ViewerError("give --camera NAME or --orbit DEG, not both")
    if args.session and args.connect:
        raise ViewerError("give a SESSION folder or --connect ENDPOINT, not both")
    if not args.session and not args.connect:
        raise ViewerError("give a SESSION folder to play, or --connect ENDPOINT for a live node")
    if args.frame is not None and not args.snapshot:
        raise ViewerError("--frame picks the frame of --snapshot; add --snapshot out.png")
    if args.connect and args.video:
        raise ViewerError("--video renders a recorded session; record the live stream with `mocap record`, then "
                          "`mocap view SESSION --video out.mp4`")
    if args.session and args.rig:
        raise ViewerError("--rig goes with --connect; a session's rig comes from its session.toml")
    for flag in ("camera", "orbit", "size"):
        if getattr(args, flag) is not None and not (args.snapshot or args.video):
            raise ViewerError(f"--{flag} goes with --snapshot or --video (the window's view is turned with the mouse)")


def run_view(args: argparse.Namespace, console: Console) -> int:
    """``mocap view``: the checks, then a session (window / snapshot / video) or a live node."""
    _check(args)
    parse_size(args.size)
    if args.connect:
        return _live(args, console)
    return _session(args, console)


def _session(args, console: Console) -> int:
    from viewer.scene import load_session_scene

    if not (args.snapshot or args.video):
        from viewer.playback import run_window

        return run_window(args.session, say=lambda m: console.print(f"note: {m}"))
    from mocap.progress_bar import progress_bar
    from viewer.render import render_scene_snapshot, render_scene_video

    scene = load_session_scene(args.session, say=lambda m: console.print(f"note: {m}"))
    size = _image_size(args, scene)
    if args.snapshot:
        start = time.perf_counter()
        out = render_scene_snapshot(scene, args.snapshot, frame=args.frame, camera=args.camera,
                                    orbit_deg=args.orbit, size=size)
        console.print(f"snapshot: {out} ({size[0]}x{size[1]}, {time.perf_counter() - start:.1f} s)")
    if args.video:
        start = time.perf_counter()
        with progress_bar(console, "rendering video") as progress:
            out = render_scene_video(scene, args.video, camera=args.camera, orbit_deg=args.orbit, size=size,
                                     progress=progress)
        took = time.perf_counter() - start
        console.print(f"video: {out} ({scene.num_frames} frames at {scene.fps:g} fps, {size[0]}x{size[1]}, "
                      f"{took:.1f} s, {1000 * took / max(scene.num_frames, 1):.0f} ms a frame)")
    return 0


def _live_rig(args):
    if not args.rig:
        return None, None
    from capture.curve_keys import load_keys
    from rigs.formats import load_rig

    rig = load_rig(args.rig)
    keys = load_keys(args.rig, client="viewer")
    if keys is not None and keys.client_secret is None:
        keys = load_keys(args.rig, client="recorder")
    return rig, keys


def _live(args, console: Console) -> int:
    from viewer.live import LiveSubscriber, print_live_status, run_live_window, scene_from_poses
    from viewer.playback import has_display

    rig, keys = _live_rig(args)
    if args.snapshot:
        from viewer.render import render_scene_snapshot

        wait = DEFAULT_WAIT_S if args.duration is None else args.duration
        with LiveSubscriber(args.connect, curve=keys) as sub:
            pose = sub.wait_for_pose(wait)
            if pose is None:
                raise ViewerError(f"no pose3d message from {args.connect} within {wait:g} s (rejected "
                                  f"{sub.state.rejected_total}); is `mocap node recon --pub {args.connect}` running?")
            latency = sub.state.latency_ms()
        scene = scene_from_poses([pose], rig)
        out = render_scene_snapshot(scene, args.snapshot, frame=0, camera=args.camera, orbit_deg=args.orbit,
                                    size=_image_size(args, scene))
        console.print(f"snapshot: {out} (node {pose.node}, seq {pose.seq}, {int((pose.track_ids >= 0).sum())} "
                      f"people, latency {latency:.1f} ms)")
        return 0
    if has_display() and args.duration is None:
        return run_live_window(args.connect, rig, keys, say=console.print)
    if not has_display():
        console.print("no display here: printing the live state once a second"
                      + (f" for {args.duration:g} s" if args.duration else " (Ctrl-C stops)")
                      + "; --snapshot out.png renders the next message")
    with LiveSubscriber(args.connect, curve=keys) as sub:
        return print_live_status(sub, args.duration, out=console.file)
