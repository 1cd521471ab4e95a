"""``mocap capture --rig RIG``: run one camera node per local camera, keep them running, show their status.

Starts a ``NodeSupervisor`` (one ``mocap node camera`` process per camera this host runs; cameras the rig places
on other hosts are only monitored) and a ``CaptureMonitor`` on every endpoint, then until Ctrl-C / SIGTERM (or
``--duration`` seconds): restarts crashed nodes with back-off and prints each restart as an event, and shows one
status line per camera, refreshed twice a second (a live display on a terminal; every 5 s when the output is a
pipe or a file). On the way out it stops the nodes (SIGTERM, SIGKILL after 5 s) and prints a summary: frames,
drops and restarts per camera. Exit code 0.

``--base-port P`` moves every camera to ``tcp://127.0.0.1:<P + index>`` (several captures on one host, tests).
``--pid-file`` keeps a JSON ``{"supervisor": pid, "nodes": {camera: pid or null}}`` up to date.
Node output goes to ``--log-dir`` (default: a new folder under the system's temporary folder, printed at start).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REFRESH_S = 0.5  # live display
PLAIN_REFRESH_S = 5.0  # status lines printed to a pipe or file
STOP_TIMEOUT_S = 5.0
DEFAULT_FPS = 30.0  # for sync when the rig declares no rate


def add_capture_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``capture`` to the mocap verbs; it sets ``func`` (parsed args -> exit code)."""
    p = subparsers.add_parser(
        "capture", help="run and supervise the camera nodes of a rig, with a live status per camera",
        description="Start one `mocap node camera` process per camera of the rig on this host, restart any that "
                    "crashes (with back-off), and show each camera's fps, drops, sync skew and node status. "
                    "Cameras the rig places on other hosts are monitored, not started. Ctrl-C or SIGTERM stops "
                    "the nodes cleanly and prints a summary.")
    add_capture_arguments(p)
    p.set_defaults(func=run_capture)
    return p


def add_capture_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rig", required=True, help="rig file or preset (e.g. studio-4)")
    p.add_argument("--cameras", metavar="A,B", help="only these cameras (comma-separated; default all)")
    p.add_argument("--format", dest="fmt", choices=("jpeg", "bgr8"), default="jpeg",
                   help="pixel format the nodes publish (default jpeg)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 (default 90)")
    p.add_argument("--seed", type=int, default=0, help="simulated cameras: the scene's seed (default 0)")
    p.add_argument("--people", type=int, default=2, help="simulated cameras: performers (default 2)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--base-port", type=int, metavar="P",
                   help="publish camera i on tcp://127.0.0.1:<P + i> instead of the rig's endpoints")
    p.add_argument("--log-dir", type=Path, metavar="DIR",
                   help="node logs <DIR>/<camera>.log (default: a new temporary folder)")
    p.add_argument("--pid-file", type=Path, metavar="JSON", help="keep the node pids in this JSON file")


# -- helpers ------------------------------------------------------------------------------------------------------

def _select(rig, cameras: str | None) -> list[str] | None:
    if cameras is None:
        return None
    names = [c.strip() for c in cameras.split(",") if c.strip()]
    if not names:
        raise ValueError("--cameras: expected camera names separated by commas")
    for name in names:
        rig[name]  # KeyError naming the rig's cameras
    return names


def _with_base_port(rig, base_port: int):
    if not 1 <= base_port <= 65535 - len(rig) + 1:
        raise ValueError(f"--base-port {base_port}: expected a port such that every camera's fits in 1..65535")
    return rig.replace(cameras=tuple(c.replace(endpoint=f"tcp://127.0.0.1:{base_port + i}")
                                     for i, c in enumerate(rig)))


def _check_ports(specs) -> None:
    """Refuse to start when a local node's TCP port is taken (another capture or record running?)."""
    from capture.supervisor import endpoint_host

    for spec in specs:
        host = endpoint_host(spec.endpoint) if spec.local and spec.endpoint.startswith("tcp://") else None
        if host is None:
            continue
        port = spec.endpoint.rsplit(":", 1)[-1]
        if not port.isdigit():
            continue  # "*" (any port): nothing to check
        bind_host = "" if host in ("*", "0.0.0.0") else ("::" if host == "::" else host)
        if bind_host == "localhost":
            bind_host = "127.0.0.1"
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds: TIME_WAIT is no conflict
            try:
                s.bind((bind_host, int(port)))
            except OSError as exc:
                raise ValueError(f"camera {spec.camera!r}: cannot publish on {spec.endpoint}: {exc.strerror or exc} "
                                 f"(is another mocap capture or record running? --base-port picks other ports)"
                                 ) from None


def _write_pid_file(path: Path, pids: dict[str, int | None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"supervisor": os.getpid(), "nodes": pids}, indent=1) + "\n")
    os.replace(tmp, path)


def status_lines(monitor, supervisor) -> list[str]:
    """The monitor's line per camera, with the supervisor's view: restarts, and a node in back-off."""
    lines = monitor.status_lines()
    status = monitor.status()
    waiting, uptime = supervisor.waiting, supervisor.uptime
    for i, name in enumerate(monitor.cameras):
        age = status[name].heartbeat_age_s
        if name in waiting:
            exits = supervisor.exits.get(name) or ["?"]
            lines[i] += f"  [exited ({exits[-1]}); restarting in {waiting[name]:.1f} s]"
        elif name in uptime and age is not None and age > uptime[name]:
            lines[i] += f"  [starting: up {uptime[name]:.1f} s, not heard from yet]"
        if supervisor.restarts.get(name):
            lines[i] += f"  restarts {supervisor.restarts[name]}"
    return lines


def summary_lines(monitor, supervisor, elapsed_s: float) -> list[str]:
    """The final report: one line per camera with frames, drops and restarts (and how the node exited)."""
    status = monitor.status()
    width = max(len(c) for c in status)
    lines = [f"mocap capture: stopped after {elapsed_s:.1f} s"]
    for name, st in status.items():
        line = f"  {name:<{width}}  frames {st.frames}  dropped {st.dropped}  restarts {supervisor.restarts[name]}"
        exits = supervisor.exits.get(name) or []
        if exits:
            line += f" (exited: {', '.join(exits)})"
        if name in supervisor.remote:
            age = st.heartbeat_age_s
            line += "  remote, " + ("never heard from" if age is None else f"last heartbeat {age:.1f} s ago")
        lines.append(line)
    return lines


# -- the command ----------------------------------------------------------------------------------------------------

def run_capture(args: argparse.Namespace, console: Any = None) -> int:
    """``mocap capture``: see the module docstring. Rig and argument errors raise before any node starts."""
    from capture.monitor import CaptureMonitor
    from capture.supervisor import NodeSupervisor, node_specs
    from rigs.formats import load_rig

    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality {args.quality}: expected 1..100")
    if args.people < 0:
        raise ValueError(f"--people {args.people}: expected 0 or more")
    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration {args.duration}: expected a positive number of seconds")
    rig = load_rig(args.rig)
    cameras = _select(rig, args.cameras)
    if args.base_port is not None:
        rig = _with_base_port(rig, args.base_port)
    specs = node_specs(rig, args.rig, fmt=args.fmt, quality=args.quality, seed=args.seed, people=args.people,
                       cameras=cameras)
    _check_ports(specs)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="mocap-capture-"))
    offsets = {c.name: int(getattr(c, "clock_offset_ns", 0) or 0) for c in rig}
    live = sys.stdout.isatty()
    if console is None:
        from rich.console import Console

        console = Console(highlight=False, width=None if live else 150)

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        if not live:
            sys.stdout.flush()

    stop = threading.Event()
    handled = _install_signals(stop)
    n_remote = sum(not s.local for s in specs)
    say(f"mocap capture: {rig.name}, {len(specs)} camera(s) ({len(specs) - n_remote} started here, "
        f"{n_remote} on other hosts); node logs in {log_dir}; Ctrl-C to stop")
    supervisor = NodeSupervisor(specs, on_event=say, log_dir=log_dir)
    from capture.curve_keys import load_keys

    monitor = CaptureMonitor(supervisor.endpoints, rig.fps or DEFAULT_FPS, offsets_ns=offsets,
                             remote=supervisor.remote, curve=load_keys(args.rig))
    t0 = time.monotonic()
    try:
        supervisor.start()
        for spec in specs:
            where = f"pid {supervisor.pids[spec.camera]}" if spec.local else "remote"
            say(f"  {spec.camera}: {spec.endpoint} ({where})")
        pids = supervisor.pids
        if args.pid_file:
            _write_pid_file(args.pid_file, pids)
        _loop(supervisor, monitor, stop, args, live, console, say, t0)
    finally:
        elapsed = time.monotonic() - t0
        supervisor.stop(STOP_TIMEOUT_S)
        if args.pid_file:
            _write_pid_file(args.pid_file, supervisor.pids)
        with contextlib.suppress(Exception):
            monitor.poll(0)
        for line in summary_lines(monitor, supervisor, elapsed):
            say(line)
        monitor.close()
        _restore_signals(handled)
    return 0


def _loop(supervisor, monitor, stop: threading.Event, args, live: bool, console, say: Callable[[str], None],
          t0: float) -> None:
    end = None if args.duration is None else t0 + args.duration
    pids = supervisor.pids

    def check() -> bool:
        nonlocal pids
        supervisor.poll()  # events go to say() as they happen
        if args.pid_file and supervisor.pids != pids:
            pids = supervisor.pids
            _write_pid_file(args.pid_file, pids)
        return stop.is_set() or (end is not None and time.monotonic() >= end)

    if live:
        from rich.live import Live
        from rich.text import Text

        def render() -> Text:
            return Text("\n".join(status_lines(monitor, supervisor)), no_wrap=True, overflow="ellipsis")

        with Live(render(), console=console, auto_refresh=False, transient=False) as display:
            next_draw = 0.0
            while not check():
                monitor.poll(100)
                if time.monotonic() >= next_draw:
                    display.update(render(), refresh=True)
                    next_draw = time.monotonic() + REFRESH_S
        return
    next_print = time.monotonic() + PLAIN_REFRESH_S
    while not check():
        monitor.poll(100)
        if time.monotonic() >= next_print:
            say(f"--- {time.monotonic() - t0:.0f} s")
            for line in status_lines(monitor, supervisor):
                say(line)
            next_print += PLAIN_REFRESH_S


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGINT/SIGTERM set ``stop`` (main thread only; elsewhere the caller stops by ``--duration``)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def on_signal(signum, _frame):
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m capture.capture_command ...``: the same command without the mocap CLI (tests, debugging)."""
    p = argparse.ArgumentParser(prog="mocap capture")
    add_capture_arguments(p)
    args = p.parse_args(argv)
    from rigs.camera import RigError

    try:
        return run_capture(args)
    except (RigError, FileNotFoundError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mocap: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
