"""The live capture monitor: what every camera node is doing, for the status display of ``mocap capture``.

    monitor = CaptureMonitor(sup.endpoints, rig.fps)
    while running:
        monitor.poll(100)                       # drains what arrived; waits at most 100 ms for the first message
        print("\\n".join(monitor.status_lines()))
    monitor.close()

One SUB socket connects to every endpoint and subscribes to frames and heartbeats. Frames are validated
(``capture.protocol.decode``: headers and sizes, never the image) and counted per camera:

- ``fps``: frames received during the last second; ``frames``: all received;
- ``dropped``: frames missing from seq jumps (a seq going back is a restarted node, counted in ``restarts_seen``,
  and gap counting starts over); frames lost before the monitor's first frame of a camera are not counted.
  This is what reached the monitor: a monitor too slow for its camera's rate (raw frames on a busy host) sees
  drops of its own, which no other subscriber shares (ZeroMQ queues per connection);
- ``skew_ms``: over the last ``SKEW_WINDOW`` FrameSets (a ``TimestampSync`` at the rig's rate) holding this
  camera, the median of |camera's time - the set's time| (offset-corrected); None before the first set;
- ``heartbeat_age_s`` and ``node_status``: from the node's last heartbeat (``ok``, ``retrying: ...``, ``ended``).

Cameras on the wire that are not in ``endpoints`` are counted in ``unexpected``, bad messages in ``rejects``.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import zmq

from capture.protocol import FrameMessage, Heartbeat, RejectCounter, configure_socket, receive
from capture.sync import FrameRef, TimestampSync

SKEW_WINDOW = 60  # FrameSets (2 s at 30 fps)
STALE_S = 3.0  # a node whose last heartbeat is older than this is reported silent
MAX_DRAIN = 5000  # messages per poll at most, so a flood cannot freeze the display
_MONITOR_HWM = 1000


@dataclass(frozen=True)
class CameraStatus:
    camera: str
    fps: float  # frames received during the last second
    frames: int
    dropped: int  # frames missing from seq gaps
    last_seq: int | None
    heartbeat_age_s: float | None  # None until the first heartbeat
    node_status: str | None  # from the last heartbeat
    skew_ms: float | None  # median |t - set time| over recent FrameSets; None before the first


class _Camera:
    def __init__(self, name: str):
        self.name = name
        self.frames = 0
        self.dropped = 0
        self.restarts_seen = 0
        self.last_seq: int | None = None
        self.arrivals: deque[float] = deque()
        self.heartbeat_at: float | None = None
        self.node_status: str | None = None
        self.skews: deque[int] = deque(maxlen=SKEW_WINDOW)


def format_status(st: CameraStatus, *, remote: bool = False, width: int = 0) -> str:
    """One status line: ``cam0   29.9 fps  frames 1234  dropped 0  skew 0.4 ms  ok``."""
    skew = "-" if st.skew_ms is None else f"{st.skew_ms:.1f}"
    age = st.heartbeat_age_s
    if age is None:
        state = "remote: no heartbeat yet" if remote else "waiting for the node"
    elif remote:
        state = f"remote: last heartbeat {age:.1f} s ago"
        state += f" (silent; was {st.node_status})" if age > STALE_S else f" ({st.node_status})"
    elif age > STALE_S:
        state = f"silent for {age:.1f} s (was {st.node_status})"
    else:
        state = st.node_status or "?"
    return (f"{st.camera:<{width}}  {st.fps:5.1f} fps  frames {st.frames}  dropped {st.dropped}  "
            f"skew {skew} ms  {state}")


class CaptureMonitor:
    """Subscribes to every endpoint's frames and heartbeats and keeps per-camera statistics; see the module doc.

    ``offsets_ns`` are the cameras' measured clock offsets (subtracted before sync), ``remote`` the cameras whose
    nodes run on other hosts (their status lines say so), ``clock`` the monitor's time in seconds (tests),
    ``curve`` the rig's CURVE keys (``capture.curve_keys.load_keys``) when its nodes require them."""

    def __init__(self, endpoints: Mapping[str, str], fps: float, *, context: zmq.Context | None = None,
                 offsets_ns: Mapping[str, int] | None = None, remote: Collection[str] = (),
                 clock: Callable[[], float] = time.monotonic, curve=None):
        if not endpoints:
            raise ValueError("CaptureMonitor: no endpoints to monitor")
        self.endpoints = dict(endpoints)
        self.cameras = tuple(self.endpoints)
        self.remote = frozenset(remote)
        self._clock = clock
        self._cams = {c: _Camera(c) for c in self.cameras}
        offsets = {c: int(v) for c, v in (offsets_ns or {}).items() if c in self._cams}
        self.sync = TimestampSync(self.cameras, fps, offsets_ns=offsets) if fps else None
        self.rejects = RejectCounter("capture monitor")
        self.unexpected: dict[str, int] = {}
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._sock = self._context.socket(zmq.SUB)
        configure_socket(self._sock, hwm=_MONITOR_HWM)
        self._sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            from capture.curve_keys import secure_client

            secure_client(self._sock, curve)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"frame.")
        self._sock.setsockopt(zmq.SUBSCRIBE, b"heartbeat.")
        for endpoint in dict.fromkeys(self.endpoints.values()):  # each once, in order
            self._sock.connect(endpoint)  # ZeroMQ reconnects by itself while a node is down
        self._closed = False

    # -- receiving -----------------------------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 100) -> None:
        """Wait up to ``timeout_ms`` for a message, then take every message already there (up to MAX_DRAIN)."""
        wait = timeout_ms
        for _ in range(MAX_DRAIN):
            msg = receive(self._sock, self.rejects, timeout_ms=wait)
            if msg is None:
                # a rejected message also returns None: look again at once if more are queued
                if not self._sock.poll(0, zmq.POLLIN):
                    break
            else:
                self._take(msg)
            wait = 0
        self._take_sets(self.sync.poll(time.monotonic_ns()) if self.sync is not None else [])

    def _take(self, msg) -> None:
        cam = self._cams.get(getattr(msg, "camera", None))
        if cam is None:
            name = getattr(msg, "camera", None) or getattr(msg, "node", "?")
            self.unexpected[name] = self.unexpected.get(name, 0) + 1
            return
        now = self._clock()
        if isinstance(msg, Heartbeat):
            cam.heartbeat_at = now
            cam.node_status = msg.status
            return
        if not isinstance(msg, FrameMessage):
            return
        cam.frames += 1
        cam.arrivals.append(now)
        self._prune(cam, now)
        if cam.last_seq is not None:
            if msg.seq > cam.last_seq:
                cam.dropped += msg.seq - cam.last_seq - 1
            elif msg.seq < cam.last_seq:
                cam.restarts_seen += 1
        cam.last_seq = msg.seq
        if self.sync is not None:
            self._take_sets(self.sync.push(FrameRef(msg.camera, msg.seq, msg.t_ns), time.monotonic_ns()))

    def _take_sets(self, sets) -> None:
        for fs in sets:
            for name, ref in fs.frames.items():
                if ref is not None:
                    t = ref.t_ns - self.sync.offsets_ns[name]
                    self._cams[name].skews.append(abs(t - fs.t_ns))

    @staticmethod
    def _prune(cam: _Camera, now: float) -> None:
        while cam.arrivals and cam.arrivals[0] <= now - 1.0:
            cam.arrivals.popleft()

    # -- reading -------------------------------------------------------------------------------------------------
    def status(self) -> dict[str, CameraStatus]:
        now = self._clock()
        out = {}
        for name, cam in self._cams.items():
            self._prune(cam, now)
            out[name] = CameraStatus(
                camera=name, fps=float(len(cam.arrivals)), frames=cam.frames, dropped=cam.dropped,
                last_seq=cam.last_seq,
                heartbeat_age_s=None if cam.heartbeat_at is None else max(0.0, now - cam.heartbeat_at),
                node_status=cam.node_status,
                skew_ms=statistics.median(cam.skews) / 1e6 if cam.skews else None)
        return out

    @property
    def restarts_seen(self) -> dict[str, int]:
        """Per camera, how often its seq went back (the node restarted) while monitored."""
        return {name: cam.restarts_seen for name, cam in self._cams.items()}

    def status_lines(self) -> list[str]:
        """One line per camera: ``cam0   29.9 fps  frames 1234  dropped 0  skew 0.4 ms  ok``."""
        width = max(len(c) for c in self.cameras)
        lines = [format_status(st, remote=name in self.remote, width=width) for name, st in self.status().items()]
        if self.unexpected:
            lines.append("unexpected cameras on the wire: "
                         + ", ".join(f"{c} ({n})" for c, n in sorted(self.unexpected.items())))
        if self.rejects.total:
            lines.append(f"rejected messages: {self.rejects.total} "
                         f"({', '.join(f'{r} {n}' for r, n in sorted(self.rejects.counts.items()))})")
        return lines

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sock.close(linger=0)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> CaptureMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
