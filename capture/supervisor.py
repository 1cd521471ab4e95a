"""The node supervisor: starts one ``mocap node camera`` process per local camera and keeps them running.

    specs = node_specs(rig, "studio-4")                     # one NodeSpec per camera
    with NodeSupervisor(specs, on_event=print, log_dir=Path("logs")) as sup:   # starts the local nodes
        while running:
            sup.poll()                                      # restarts crashed nodes, with back-off
            time.sleep(0.1)
    # leaving the block stops them: SIGTERM, then SIGKILL after ``timeout``

- A camera is LOCAL when its endpoint's host is this machine (loopback, ``localhost``, ``*``, this host's name,
  or an address this host owns); its node is started here with ``--pub`` set to that endpoint. Any other host
  runs its own node: its spec is REMOTE (``command == ()``), monitored by the caller, never started.
- Nodes run in their own session (``start_new_session``), so a Ctrl-C at the terminal reaches only the
  supervisor, which then stops them in order with SIGTERM (a node finishes the message it is sending). On Linux
  each node also gets SIGTERM when the supervisor dies without stopping it (``PR_SET_PDEATHSIG``; the thread
  that started a node must outlive it: call ``start`` and ``poll`` from one long-lived thread), so a killed
  supervisor leaves no node holding its port.
- ``poll`` notices a node that exited (any exit: a crash, a kill, or a clean exit nobody asked for), waits
  the next back-off delay (0.5, 1, 2, 5 s by default; the last repeats while the node keeps failing; a node
  that ran ``STABLE_S`` before exiting starts again from the first delay) and starts it again. A restarted
  node publishes from seq 0, which is how receivers tell a restart from a gap.
- Node output goes to ``log_dir/<camera>.log`` (appended, one banner line per start) when ``log_dir`` is given;
  otherwise stdout is discarded and stderr is inherited. ``on_event`` gets every event line as it happens.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from rigs.camera import Rig

STABLE_S = 10.0  # a node that ran this long before exiting was healthy: its back-off starts over
_PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where the `mocap` and `capture` packages live
_LOOPBACK_NAMES = frozenset({"localhost", "*", "0.0.0.0", "::", "::1", "ip6-localhost"})


@dataclass(frozen=True)
class NodeSpec:
    """One camera's node: where it publishes and, for a node started here, its command line."""

    camera: str
    endpoint: str  # where the node publishes (tcp://127.0.0.1:port for local nodes)
    command: tuple[str, ...]  # argv of `python -m mocap node camera ...` for local nodes; () for remote
    local: bool  # False when the rig places the node on another host: monitored, not started


# -- which host an endpoint is on -------------------------------------------------------------------------------

def endpoint_host(endpoint: str) -> str | None:
    """The host of a ``tcp://host:port`` (or ``epgm://iface;host:port``) endpoint; None for ipc/inproc."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return None
    netloc = parts.netloc.rsplit(";", 1)[-1]  # tcp://eth0;10.0.0.2:5550 names the interface first
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


def _owns_address(address: str) -> bool:
    """True when this host can bind ``address`` (an IP literal): the address is one of its own."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def is_local_endpoint(endpoint: str) -> bool:
    """True when ``endpoint`` is on this host: ipc/inproc, loopback, a wildcard, this host's name or address.

    Host names other than this host's own are not looked up (no DNS wait at start-up): they count as remote."""
    host = endpoint_host(endpoint)
    if host is None:
        return True
    host = host.lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        names = {socket.gethostname().lower(), socket.getfqdn().lower()}
        return host in names or host in {n.split(".", 1)[0] for n in names}
    return ip.is_loopback or ip.is_unspecified or _owns_address(str(ip))


# -- specs --------------------------------------------------------------------------------------------------------

def node_specs(rig: Rig, rig_source: str, *, fmt: str = "jpeg", quality: int = 90, seed: int = 0, people: int = 2,
               cameras: Sequence[str] | None = None, python: str = sys.executable) -> list[NodeSpec]:
    """One NodeSpec per camera of ``rig`` (or of ``cameras``, in that order), endpoints as the node would use.

    ``rig_source`` is what the nodes load (``--rig``): the file or preset ``rig`` was loaded from."""
    from capture.camera_node import default_endpoint

    names = list(rig.names if cameras is None else cameras)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"cameras named twice: {', '.join(dupes)}")
    specs = []
    for name in names:
        camera = rig[name]  # KeyError naming the rig's cameras
        endpoint = default_endpoint(camera, rig.index(name))
        local = is_local_endpoint(endpoint)
        command = (python, "-m", "mocap", "node", "camera", "--rig", str(rig_source), "--camera", name,
                   "--pub", endpoint, "--format", fmt, "--quality", str(quality), "--seed", str(seed),
                   "--people", str(people)) if local else ()
        specs.append(NodeSpec(name, endpoint, command, local))
    return specs


# -- the supervisor -----------------------------------------------------------------------------------------------

def _death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when the supervisor dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: nothing but two system calls
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def describe_exit(returncode: int) -> str:
    """``code 1`` or ``signal 9`` (Popen's negative return codes)."""
    return f"signal {-returncode}" if returncode < 0 else f"code {returncode}"


def _last_line(path: Path, limit: int = 200) -> str:
    """The last non-empty line of a log file (its end only is read), shortened; '' when there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln and not ln.startswith("--- ")]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Node:
    def __init__(self, spec: NodeSpec):
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.log: IO[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0  # consecutive short-lived runs: picks the back-off delay
        self.restart_at: float | None = None  # when a node in back-off starts again


class NodeSupervisor:
    """Starts, watches and stops the local nodes of ``specs``; see the module docstring. A context manager."""

    def __init__(self, specs: Sequence[NodeSpec], *, backoff: Sequence[float] = (0.5, 1, 2, 5),
                 on_event: Callable[[str], None] | None = None, log_dir: Path | None = None):
        names = [s.camera for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"NodeSupervisor: cameras named twice: {', '.join(dupes)}")
        if not backoff or any(not d >= 0 for d in backoff):
            raise ValueError(f"NodeSupervisor: back-off {tuple(backoff)!r}: expected delays >= 0 s")
        for s in specs:
            if s.local and not s.command:
                raise ValueError(f"NodeSupervisor: local camera {s.camera!r} has no command")
        self.specs = tuple(specs)
        self.backoff = tuple(float(d) for d in backoff)
        self.on_event = on_event
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.endpoints: dict[str, str] = {s.camera: s.endpoint for s in self.specs}
        self.restarts: dict[str, int] = {s.camera: 0 for s in self.specs}
        self.exits: dict[str, list[str]] = {s.camera: [] for s in self.specs}  # "signal 9", "code 1", ... per camera
        self._nodes = {s.camera: _Node(s) for s in self.specs if s.local}
        self._started = False
        self._stopped = False
        self._preexec = _death_signal()

    # -- reading ---------------------------------------------------------------------------------------------
    @property
    def pids(self) -> dict[str, int | None]:
        """The pid of each local node now running (None while it is in back-off or stopped)."""
        return {c: (n.proc.pid if n.proc is not None and n.proc.poll() is None else None)
                for c, n in self._nodes.items()}

    @property
    def waiting(self) -> dict[str, float]:
        """The local nodes in back-off now: camera -> seconds until the restart."""
        now = time.monotonic()
        return {c: max(0.0, n.restart_at - now) for c, n in self._nodes.items() if n.restart_at is not None}

    @property
    def uptime(self) -> dict[str, float]:
        """Seconds since each running local node (re)started."""
        now = time.monotonic()
        return {c: now - n.started_at for c, n in self._nodes.items()
                if n.proc is not None and n.proc.poll() is None}

    @property
    def local(self) -> tuple[str, ...]:
        return tuple(self._nodes)

    @property
    def remote(self) -> tuple[str, ...]:
        return tuple(s.camera for s in self.specs if not s.local)

    def log_path(self, camera: str) -> Path | None:
        return self.log_dir / f"{camera}.log" if self.log_dir is not None else None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every local node (a second call does nothing). A node that cannot be spawned raises OSError."""
        if self._started:
            return
        if self._stopped:
            raise RuntimeError("NodeSupervisor: stopped; make a new one")
        self._started = True
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for node in self._nodes.values():
                self._spawn(node)
        except BaseException:
            self.stop()
            raise

    def poll(self) -> list[str]:
        """Restart nodes that exited, after their back-off; the event lines of this call (non-blocking)."""
        events: list[str] = []
        if not self._started or self._stopped:
            return events
        now = time.monotonic()
        for name, node in self._nodes.items():
            if node.proc is not None:
                code = node.proc.poll()
                if code is None:
                    continue
                node.proc = None
                self._close_log(node)
                how = describe_exit(code)
                self.exits[name].append(how)
                why = _last_line(self.log_path(name)) if code > 0 and self.log_dir is not None else ""
                if now - node.started_at >= STABLE_S:
                    node.failures = 0
                delay = self.backoff[min(node.failures, len(self.backoff) - 1)]
                node.failures += 1
                node.restart_at = now + delay
                events.append(f"{name} exited ({how}{': ' + why if why else ''}); restarting in {delay:g} s")
            if node.restart_at is not None and now >= node.restart_at:
                node.restart_at = None
                try:
                    self._spawn(node)
                except OSError as exc:
                    delay = self.backoff[min(node.failures, len(self.backoff) - 1)]
                    node.failures += 1
                    node.restart_at = now + delay
                    events.append(f"{name} could not be started ({exc}); retrying in {delay:g} s")
                    continue
                self.restarts[name] += 1
                events.append(f"{name} restarted (restart {self.restarts[name]})")
        for line in events:
            self._emit(line)
        return events

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every running node, wait up to ``timeout`` s for all, SIGKILL the rest; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        running = []
        for node in self._nodes.values():
            node.restart_at = None
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.proc.terminate()
                running.append(node)
        deadline = time.monotonic() + timeout
        for node in running:
            try:
                node.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._emit(f"{node.spec.camera} did not stop within {timeout:g} s; killing it")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(node.proc.pid, signal.SIGKILL)  # its own process group: anything it started too
                node.proc.wait()
        for node in self._nodes.values():
            if node.proc is not None:
                node.proc.wait()  # reaped: exited on its own before the SIGTERM went out
            self._close_log(node)

    def __enter__(self) -> NodeSupervisor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:  # a supervisor dropped without stop() still takes its nodes down
        with contextlib.suppress(Exception):
            if self._started and not self._stopped:
                self.stop(timeout=1.0)

    # -- internals -------------------------------------------------------------------------------------------
    def _emit(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)

    def _spawn(self, node: _Node) -> None:
        spec = node.spec
        env = dict(os.environ)
        # The nodes import the same code as the supervisor, installed or not, wherever they are started from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach the log file as they are written
        stdout: int | IO[bytes] = subprocess.DEVNULL
        stderr: int | IO[bytes] | None = None
        if self.log_dir is not None:
            node.log = open(self.log_dir / f"{spec.camera}.log", "ab")  # noqa: SIM115 - closed in _close_log
            stdout = stderr = node.log
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            command = shlex.join(spec.command).replace("\n", "\\n")
            node.log.write(f"--- {stamp} mocap capture: starting {spec.camera}: {command}\n".encode())
            node.log.flush()
        try:
            node.proc = subprocess.Popen(spec.command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                         env=env, start_new_session=True, preexec_fn=self._preexec)
        except BaseException:
            self._close_log(node)
            raise
        node.started_at = time.monotonic()

    @staticmethod
    def _close_log(node: _Node) -> None:
        if node.log is not None:
            node.log.close()
            node.log = None
