"""`mocap demo`: the whole system on this machine, as a lab runs it, on a SIMULATED studio.

1. One ``mocap node camera`` process per camera of the rig (simulated cameras rendering the same simulated people,
   genlocked) publishes JPEG frames over ZeroMQ on loopback, and ``mocap node recon`` (the simulated 2D
   detector, association, triangulation, tracking) publishes ``pose3d`` live; ``mocap demo`` subscribes to it and
   measures the latency (``mocap.demo_processes``, ``mocap.demo_live``).
2. Once the reconstruction keeps up, the demo records ``--seconds`` of the session into ``--out`` with the code
   of ``mocap record --connect`` (``capture.record_command.record_session``, in this process): video per camera,
   ``sync.csv``, ``truth/`` (the simulation's ground truth), ``session.toml``.
3. The nodes are stopped (SIGTERM, SIGKILL after a timeout; also on Ctrl-C or an error), then ``reconstruct``,
   ``fit`` (the stand-in body model unless ``$MOCAP_BODY_MODELS`` names SMPL files) and ``export`` run on the
   session, through the commands' own functions, with their output in ``report/demo.log``.
4. The offline poses are scored against the truth (``report/eval/``), ``snapshot.png`` (a headless Open3D render)
   and ``overlay.mp4`` (the reprojected skeletons on a camera's video) are written, and a summary is printed and
   kept in ``report/demo_summary.txt`` (``mocap.demo_report``).

The output folder is a session folder every later command accepts (``mocap view``, ``mocap overlay``, ...). A demo
replaces its own earlier output (marked by ``DEMO.txt``) and refuses any other non-empty folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from mocap.demo_recording import live_part
from mocap.demo_report import people_count
from mocap.demo_steps import DemoError, DemoOptions, DemoStopped, step, step_with_bar

if TYPE_CHECKING:
    from capture.record_command import RecordResult
    from mocap.demo_live import PoseListener
    from rigs.camera import Rig
    from viewer.overlay import OverlayStats

DEFAULTS = {"rig": "studio-4", "people": 2, "seconds": 10.0, "out": "out/demo", "seed": 0}
MARKER = "DEMO.txt"


def add_demo_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``demo`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser(
        "demo", help="the whole system on a simulated studio: camera nodes, live 3D, record, fit, export",
        description="Start one camera node per camera of a simulated rig and the live reconstruction node (separate "
                    "processes over ZeroMQ on loopback), record a session while measuring the live latency, then "
                    "reconstruct, fit and export it, render snapshot.png and overlay.mp4, and print a summary with "
                    "the error against the simulation's ground truth (MPJPE). No display needed.")
    p.add_argument("--rig", default=DEFAULTS["rig"], help=f"simulated rig preset or file (default {DEFAULTS['rig']})")
    p.add_argument("--people", type=int, default=DEFAULTS["people"], help="simulated performers (default 2)")
    p.add_argument("--seconds", type=float, default=DEFAULTS["seconds"], help="seconds recorded (default 10)")
    p.add_argument("--out", default=DEFAULTS["out"], help=f"output session folder (default {DEFAULTS['out']})")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="the simulated scene's seed (default 0)")
    p.add_argument("--view", action="store_true", help="open the live 3D viewer during the recording (needs a "
                                                       "display)")
    p.set_defaults(func=run_demo)
    return p


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """``mocap demo``: run every step, print the summary; 0 when done, 130 when stopped by a signal."""
    from capture.stop_signals import StopOnSignals
    from rigs.formats import load_rig

    opts = _options(args)
    rig = load_rig(opts.rig)
    if not rig.simulated and any(c.source != "sim" for c in rig):
        raise DemoError(f"rig {rig.name!r} has cameras that are not simulated (source other than 'sim'); the demo "
                        f"runs on a simulated studio such as studio-4 (use mocap record for real cameras)")
    t_start = time.perf_counter()
    prepare_output(opts.out)
    console.print(f"[bold]mocap demo[/] (SIMULATED studio {rig.name}): {len(rig)} camera nodes, "
                  f"{people_count(opts.people)}, {opts.seconds:g} s at {rig.fps or 30:g} fps, seed {opts.seed}; "
                  f"output {opts.out}/")
    stop = threading.Event()
    log = opts.out / "report" / "demo.log"
    try:
        with StopOnSignals(stop):
            record, listener = live_part(opts, rig, console, stop)
        with open(log, "a") as log_file:
            detail = Console(file=log_file, width=150, highlight=False, force_terminal=False)
            overlay = _offline_part(opts, rig, console, detail, log)
    except (DemoStopped, KeyboardInterrupt):
        console.print(f"stopped: no node is left running; what was written so far is in {opts.out}/", markup=False)
        return 130
    lines = _summary(opts, rig, record, listener, overlay)
    (opts.out / "report" / "demo_summary.txt").write_text("\n".join(lines) + "\n")
    console.print()
    for line in lines:  # one line each, however narrow the terminal: scripts grep them
        console.print(line, markup=False, soft_wrap=True)
    console.print(f"details of every step: {log}; finished in {time.perf_counter() - t_start:.0f} s", markup=False,
                  soft_wrap=True)
    return 0


# -- arguments and the output folder ------------------------------------------------------------------------

def _options(args: argparse.Namespace) -> DemoOptions:
    if args.people < 1:
        raise DemoError(f"--people {args.people}: expected 1 or more")
    if not args.seconds > 0:
        raise DemoError(f"--seconds {args.seconds:g}: expected a positive number of seconds")
    return DemoOptions(args.rig, args.people, float(args.seconds), Path(args.out), args.seed,
                       bool(getattr(args, "view", False)))


def _is_demo_output(folder: Path) -> bool:
    """A folder an earlier demo wrote: it has DEMO.txt (or is a session the first demo wrote)."""
    if (folder / MARKER).is_file():
        return True
    from rigs.session_file import read_session_info

    try:
        info = read_session_info(folder)
    except (OSError, ValueError):
        return False
    return info.name == "demo" and info.simulated and any(s.name == "demo" for s in info.stages)


def prepare_output(out: Path) -> None:
    """Empty an earlier demo's folder (never any other non-empty folder) and mark the new one as the demo's."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out {out} is a file; give a folder")
    if out.exists() and any(out.iterdir()):
        if not _is_demo_output(out):
            raise DemoError(f"{out} exists and is not a previous demo's output; choose another --out")
        shutil.rmtree(out)
    (out / "report").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("SIMULATED: written by `mocap demo`; the next `mocap demo` with this --out replaces "
                              "this folder.\nEverything here comes from a simulated studio, simulated people and a "
                              "simulated 2D detector.\n")


# -- the offline part: reconstruct, fit, export, pictures ------------------------------------------------------------

def _command(add_parser: Callable, argv: list[str], console: Console) -> int:
    """Run one mocap verb in this process through its own parser (so its defaults are the command's)."""
    parser = argparse.ArgumentParser(prog="mocap")
    add_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    console.rule(f"mocap {shlex.join(argv)}")
    return args.func(args, console)


@contextlib.contextmanager
def _native_output_to(path: Path) -> Iterator[None]:
    """The process's stdout and stderr (file descriptors 1 and 2) appended to ``path`` while the block runs: Open3D's
    renderer prints its engine's start-up chatter from C++, past Python's sys.stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _offline_part(opts: DemoOptions, rig: Rig, console: Console, detail: Console, log: Path) -> OverlayStats:
    """reconstruct, fit and export the session (their output into ``detail``), then snapshot.png and overlay.mp4;
    returns what the overlay found."""
    from mocap.export_command import add_export_parser
    from mocap.fit_command import add_fit_parser
    from mocap.reconstruct_command import add_reconstruct_parser
    from viewer.overlay import write_overlay
    from viewer.render import render_snapshot

    session = str(opts.out)
    step(console, "reconstruct: association, triangulation, tracking, smoothing",
         lambda: _command(add_reconstruct_parser, ["reconstruct", session], detail))
    fitted = step(console, "fit: the body model to every track (one torch thread, see fitting.smplify)",
                  lambda: _command(add_fit_parser, ["fit", session], detail))
    if fitted != 0:
        console.print(f"  some tracks were not fitted (see {opts.out}/report/fit/summary.txt)", markup=False)
    exported = step(console, "export: BVH, SMPL npz, TRC, C3D",
                    lambda: _command(add_export_parser, ["export", session], detail))
    if exported != 0:
        console.print(f"  some exports failed (see {log})", markup=False)
    t0 = time.perf_counter()
    with _native_output_to(log):  # no spinner here: its frames would go to the log too
        render_snapshot(opts.out, opts.out / "snapshot.png")
    console.print(f"  [green]done[/] snapshot.png (Open3D, headless) ({time.perf_counter() - t0:.1f} s)")
    camera = rig.names[0]
    return step_with_bar(console, f"overlay.mp4 (skeletons on {camera}'s video)",
                         lambda progress: write_overlay(opts.out, camera, opts.out / "overlay.mp4", detections=True,
                                                        progress=progress))


def _summary(opts: DemoOptions, rig: Rig, record: RecordResult, listener: PoseListener, overlay: OverlayStats
             ) -> list[str]:
    """Score the offline and the live poses against the truth (report/eval/) and say what the session holds."""
    from mocap.demo_live import in_window, latency, live_poses3d
    from mocap.demo_report import export_files, fit_facts, recording_facts, summary_lines
    from reconstruction.eval_report import write_eval_report
    from reconstruction.metrics import EvalError, evaluate
    from rigs.poses3d_file import read_poses3d

    rec = recording_facts(record.stats)
    truth = read_poses3d(opts.out / "truth" / "poses3d.npz")
    offline = evaluate(read_poses3d(opts.out / "poses3d.npz"), truth)
    write_eval_report(offline, opts.out / "report" / "eval", "SIMULATED demo: offline reconstruction vs the truth")
    messages, received = in_window(listener, rec.first_t_ns, rec.end_t_ns)
    live_eval = None
    live = live_poses3d(messages, truth.fps)
    if live is not None:
        try:
            live_eval = evaluate(live, truth, frames="t_ns")
        except EvalError:
            live_eval = None
    fit = fit_facts(opts.out)
    outputs = {"session": str(opts.out), "snapshot": str(opts.out / "snapshot.png"),
               "overlay": f"{overlay.path} ({overlay.frames_written} frames of {overlay.camera}; reprojected joints "
                          f"{overlay.median_px:.1f} px from the 2D detections, median)",
               "report": f"{opts.out / 'report'} (eval/, fit/, nodes/, record.log, demo.log)"}
    return summary_lines(rig_name=rig.name, people=opts.people, seconds=opts.seconds, rec=rec,
                         live=latency(messages, received), live_eval=live_eval, offline=offline,
                         fit=fit, files=export_files(opts.out), outputs=outputs)
