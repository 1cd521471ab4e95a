"""The live part of `mocap demo`: the nodes up, the live reconstruction keeping up, a session recorded.

``live_part`` starts the camera nodes and the reconstruction node (``mocap.demo_processes``) under a
``NodeSupervisor``, subscribes to the pose3d messages (``mocap.demo_live.PoseListener``), waits until a message
arrives less than ``CURRENT_MS`` after its capture (the live reconstruction keeps up), then records ``--seconds``
with the code of ``mocap record --connect`` (``capture.record_command.record_session``) in a thread while this
thread keeps the nodes supervised (a crashed node is restarted and reported). Whatever happens (the end, an
error, SIGINT/SIGTERM) the nodes are stopped before it returns: SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``.
"""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from capture.supervisor import NodeSupervisor
from mocap.demo_processes import (
    RECON_NAME,
    DemoEndpoints,
    camera_node_specs,
    connect_arguments,
    demo_endpoints,
    display_available,
    free_port_block,
    recon_node_spec,
    rig_argument,
    viewer_spec,
)
from mocap.demo_steps import DemoError, DemoOptions, DemoStopped, step
from mocap.progress_bar import progress_bar

if TYPE_CHECKING:  # the wire (OpenCV, ZeroMQ) is imported where used: building the mocap parser stays quick
    from capture.record_command import RecordResult
    from mocap.demo_live import PoseListener
    from rigs.camera import Rig

READY_TIMEOUT_S = 90.0  # nodes started -> the reconstruction publishes and keeps up
CURRENT_MS = 500.0  # a pose3d message this fresh means the live reconstruction keeps up
NODE_FAILURES = 3  # a node that exits this often before the recording starts stops the demo
STOP_TIMEOUT_S = 5.0  # SIGTERM -> SIGKILL


def live_part(opts: DemoOptions, rig: Rig, console: Console, stop: threading.Event
              ) -> tuple[RecordResult, PoseListener]:
    """Start the nodes, wait until the live reconstruction keeps up, record; stop the nodes whatever happens.
    Returns the recorder's result and the pose3d listener (every message, with its arrival time)."""
    from mocap.demo_live import CLOCKS, PoseListener

    endpoints = demo_endpoints(rig, free_port_block(len(rig) + 1))
    rig_arg = rig_argument(opts.rig)
    specs = camera_node_specs(rig, rig_arg, endpoints, opts.people, opts.seed) + [recon_node_spec(rig_arg, endpoints)]
    logs = opts.out / "report" / "nodes"

    def say(line: str) -> None:  # a node's exit and restart, as they happen
        console.print(f"  node: {line}", markup=False)

    nodes = NodeSupervisor(specs, on_event=say, log_dir=logs)
    viewer = _viewer(opts, endpoints, logs, console)
    listener = PoseListener(endpoints.poses, RECON_NAME, CLOCKS.get(rig.clock, time.monotonic_ns))
    try:
        listener.start()
        step(console, f"starting {len(rig)} camera nodes and the reconstruction node (logs in {logs})",
             lambda: _start_and_wait(nodes, listener, stop))
        if viewer is not None:
            viewer.start()
        record = _record(opts, rig, rig_arg, endpoints, nodes, stop, console)
    finally:
        nodes.stop(STOP_TIMEOUT_S)
        if viewer is not None:
            viewer.stop(STOP_TIMEOUT_S)
        listener.stop()
    if stop.is_set() and record.reason != "duration reached":
        raise DemoStopped()
    return record, listener


def _viewer(opts: DemoOptions, endpoints: DemoEndpoints, logs: Path, console: Console) -> NodeSupervisor | None:
    """The live viewer's supervisor with --view and a display; None otherwise (saying why with --view)."""
    if not opts.view:
        return None
    if not display_available():
        console.print("--view needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set): running without the "
                      "live viewer; open the session later with `mocap view`", markup=False)
        return None
    return NodeSupervisor([viewer_spec(endpoints)], log_dir=logs,
                          on_event=lambda line: console.print(f"  viewer: {line}", markup=False))


def _last_line(path: Path | None) -> str:
    """The last line of a node's log (what it said before exiting), shortened; '' when there is none."""
    if path is None or not path.is_file():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()[-20:] if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("--- ")]
    return lines[-1][:300] if lines else ""


def _start_and_wait(nodes: NodeSupervisor, listener: PoseListener, stop: threading.Event,
                    timeout_s: float = READY_TIMEOUT_S) -> None:
    """Start the nodes; return once a pose3d message arrives less than CURRENT_MS after its capture."""
    nodes.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop.is_set():
            raise DemoStopped()
        nodes.poll()
        for name, exits in nodes.exits.items():
            if len(exits) >= NODE_FAILURES:
                raise DemoError(f"the {name} node keeps exiting ({', '.join(exits)}): "
                                f"{_last_line(nodes.log_path(name)) or 'no output'}; see {nodes.log_path(name)}")
        latest = listener.latest_latency_ms()
        if latest is not None and latest < CURRENT_MS:
            return
        time.sleep(0.1)
    if not listener.messages:
        raise DemoError(f"no 3D pose from the reconstruction node {timeout_s:g} s after the start: see the node logs "
                        f"in {nodes.log_dir} (recon.log: {_last_line(nodes.log_path('recon')) or 'no output'})")
    # the reconstruction publishes but lags (a busy machine): record anyway, the summary shows the latency


def _record(opts: DemoOptions, rig: Rig, rig_arg: str, endpoints: DemoEndpoints, nodes: NodeSupervisor,
            stop: threading.Event, console: Console) -> RecordResult:
    """Record ``opts.seconds`` from the camera nodes into ``opts.out`` (mocap record's code, in a thread) while this
    thread keeps the nodes supervised; the recorder's ``RecordResult``."""
    from capture.record_command import parse_connect, record_session

    connect = connect_arguments(endpoints)
    command = shlex.join(["mocap", "record", "--rig", rig_arg, "--out", str(opts.out), "--duration",
                          f"{opts.seconds:g}", "--connect", *connect])
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(opts.out / "report" / "record.log", "w") as log:
                outcome["result"] = record_session(
                    rig=rig, folder=opts.out, rig_source=rig_arg, duration_s=opts.seconds,
                    connect=parse_connect(connect, rig.names), seed=opts.seed, people=opts.people, stop=stop,
                    notes="SIMULATED: recorded by mocap demo", command=command, out=log, err=log)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the demo's thread
            outcome["error"] = exc

    recorder = threading.Thread(target=run, name="demo-recorder", daemon=True)
    t0 = time.monotonic()
    recorder.start()
    try:
        with progress_bar(console, f"recording {opts.seconds:g} s from {len(rig)} cameras, live 3D") as progress:
            while recorder.is_alive():
                recorder.join(0.25)
                nodes.poll()
                progress(min(int(time.monotonic() - t0), int(opts.seconds)), int(opts.seconds))
            progress(int(opts.seconds), int(opts.seconds))
    finally:
        if recorder.is_alive():  # an error or a second Ctrl-C here: let the recorder finalise its files
            stop.set()
            recorder.join(10.0)
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    console.print(f"  [green]done[/] recording: {result.reason} ({time.monotonic() - t0:.1f} s)")
    if result.exit_code != 0 or result.stats is None:
        raise DemoError(f"the recording failed: {result.error or result.reason}; see {opts.out}/report/record.log")
    return result
