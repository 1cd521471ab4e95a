"""Replay: a recorded session republished over ZeroMQ with its recorded timing, so that it drives the stages
downstream (sync, recorder, reconstruction, viewer) exactly as the live camera nodes did.

    stats = replay("sessions/take1", "tcp://127.0.0.1:5560", speed=1.0)

``mocap replay SESSION [--pub ENDPOINT] [--pub-per-camera] [--speed X] [--loop]`` runs it from the command line.

What goes out, per recorded frame (``capture.session_reader.SessionVideo``), merged over the cameras in
``t_ns`` order: a ``FrameMessage`` on ``frame.<camera>`` carrying

- the recorded JPEG bytes as they are (Matroska/mjpeg segments: never decoded or re-encoded); frames of raw
  (FFV1) or OpenCV-written (AVI) segments go out decoded as raw ``bgr8``/``gray8``;
- ``seq`` as recorded (with ``loop``, pass p adds p x (the camera's largest seq + 1), so seqs keep rising
  like a camera that never stopped);
- ``t_ns`` moved onto the replay's clock: ``t_ns' = clock_at_start + (t_ns - t0)`` with ``t0`` the session's
  first frame and the clock the session rig's (``time.monotonic_ns`` or, for ptp/ntp rigs, ``time.time_ns``).
  Every camera is shifted by the same amount, so the skews between cameras, the gaps of dropped frames and the
  frame spacing are exactly as recorded, and a ``TimestampSync`` downstream forms the recorded FrameSets. The
  timestamps are **not** scaled by ``speed`` (scaling would shrink the frame spacing below the sync tolerance);
  at ``speed`` != 1 they run ahead of (or behind) the clock. ``retime=False`` sends the recorded ``t_ns``;
- for simulated sessions, the ``truth`` header field the simulated camera sent (rebuilt from ``truth/``), so the
  simulated detector works on a replay as on live cameras;
- ``sent_ns``: the clock when sent.

Timing: frame k is sent at ``start + (t_ns - t0) / speed`` on ``time.monotonic_ns`` (``speed=2``: twice as
fast; ``speed=0``: as fast as the receivers take them); a reader thread stays up to ``PREFETCH_FRAMES`` frames
ahead, so opening segments never delays a frame. Heartbeats go out per camera every ``heartbeat_s``
(last seq, frames sent during the last second, status ``ok``), and a final ``ended`` one.

Sockets: one XPUB (a PUB that also reports subscriptions) for every camera on ``pub`` (default
``tcp://127.0.0.1:5560``), or with ``per_camera`` one per camera bound on the rig's camera endpoints (as
``mocap node camera`` does: the camera's ``endpoint``, else ``tcp://127.0.0.1:<5550 + index>``) so that a
replay looks exactly like the live nodes; a mapping camera -> endpoint picks them. ``wait_s`` waits (up to that
long; ``math.inf``: until stopped) for every socket to have a subscriber before the first frame, since PUB
sends nothing to a subscriber that is not connected yet.

Never faster than the receivers: a live node's PUB drops frames for a subscriber that falls ``hwm`` messages
behind; replay sets ``XPUB_NODROP`` instead, so a full queue makes it wait (counted in ``stats.blocked``) and
nothing recorded is lost to a slow subscriber. The slowest subscriber paces the replay; with ``speed`` > 0 the
frames that waited go out late (``stats.max_late_ms``) and the schedule catches up afterwards.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from capture.stop_signals import StopOnSignals

if TYPE_CHECKING:  # numpy, OpenCV and PyAV are imported where used, so `mocap --help` stays quick
    from capture.protocol import FrameMessage
    from capture.session_reader import SessionVideo

__all__ = ["DEFAULT_ENDPOINT", "Replay", "ReplayStats", "add_replay_parser", "replay", "run_replay"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5560"
REPLAY_HWM = 1000  # messages queued per subscriber before replay waits (XPUB_NODROP)
LINGER_MS = 2000  # on close, queued messages still go out for this long
_CLOCKS: dict[str, Callable[[], int]] = {"monotonic": time.monotonic_ns, "ptp": time.time_ns, "ntp": time.time_ns}
PREFETCH_FRAMES = 256  # frames read ahead of the schedule by the reader thread (segment opens never delay one)
_MAX_WAIT_S = 0.05  # longest single sleep: stop, heartbeats and subscriptions are looked at this often


@dataclass
class ReplayStats:
    """What a replay did: frames and heartbeats sent, timing, waits on slow subscribers."""

    cameras: tuple[str, ...]
    endpoints: dict[str, str]
    recorded_s: float  # one pass: last frame - first frame
    speed: float
    frames: dict[str, int] = field(default_factory=dict)
    total_frames: int = 0  # frames in one pass
    heartbeats: int = 0
    skipped: int = 0  # stored frames that could not be sent (not a JPEG the protocol accepts)
    passes: int = 0  # passes completed
    pass_frames: int = 0  # frames sent in the current (or last) pass
    blocked: int = 0  # sends retried because a subscriber's queue was full
    max_late_ms: float = 0.0  # the most a frame went out after its due time
    wall_s: float = 0.0
    stopped: bool = False  # stopped before the end

    @property
    def sent(self) -> int:
        return sum(self.frames.values())

    def line(self) -> str:
        """A one-line progress report."""
        pct = 100.0 * self.pass_frames / self.total_frames if self.total_frames else 100.0
        current = self.passes + (self.pass_frames < self.total_frames or not self.passes)
        loop = f", pass {current}" if current > 1 else ""
        return (f"{self.sent} frames sent ({pct:.0f}%{loop}), {self.wall_s:.1f} s, {self.heartbeats} heartbeats, "
                f"late by up to {self.max_late_ms:.0f} ms, waited on subscribers {self.blocked} times")


class Replay:
    """Republishes a session (a folder or a ``SessionVideo``) until its end (or forever with ``loop``).

    ``pub``: one endpoint for every camera (default ``DEFAULT_ENDPOINT``), or a mapping camera -> endpoint
    (one socket each). ``per_camera``: bind each camera on the session rig's endpoint. ``cameras``: the cameras
    replayed (default all). ``progress(stats)`` is called about once a second. ``ready`` is set once the sockets
    are bound; ``endpoints`` then holds the bound addresses (``tcp://127.0.0.1:*`` picks a free port).
    """

    def __init__(self, session: str | Path | SessionVideo, pub: str | Mapping[str, str] | None = None, *,
                 per_camera: bool = False, speed: float = 1.0, loop: bool = False, retime: bool = True,
                 truth: bool = True, wait_s: float | None = None, heartbeat_s: float = 1.0, hwm: int = REPLAY_HWM,
                 cameras: Sequence[str] | None = None, context: zmq.Context | None = None,
                 progress: Callable[[ReplayStats], object] | None = None):
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"replay: speed {speed!r}: expected a number >= 0 (0: as fast as possible)")
        if not heartbeat_s > 0:
            raise ValueError(f"replay: heartbeat interval {heartbeat_s!r}: expected > 0 s")
        if wait_s is not None and not wait_s >= 0:
            raise ValueError(f"replay: wait_s {wait_s!r}: expected >= 0 s or None")
        from capture.session_reader import SessionError, SessionVideo

        self.video = session if isinstance(session, SessionVideo) else SessionVideo(session)
        self._own_video = not isinstance(session, SessionVideo)
        cams = tuple(self.video.cameras if cameras is None else cameras)
        unknown = [c for c in cams if c not in self.video.cameras]
        if unknown or not cams:
            raise SessionError(f"{self.video.folder}: no camera(s) {', '.join(unknown) or '(none given)'} to "
                               f"replay; the session has {', '.join(self.video.cameras)}")
        self.cameras = cams
        self.speed = float(speed)
        self.loop = loop
        self.retime = retime
        self.truth = truth
        self.wait_s = wait_s
        self.heartbeat_s = float(heartbeat_s)
        self.hwm = int(hwm)
        self.progress = progress
        rig = self.video.rig
        self.clock = _CLOCKS.get(rig.clock if rig is not None else "monotonic", time.monotonic_ns)
        self._shared = not per_camera and not isinstance(pub, Mapping)
        self.endpoints = self._plan_endpoints(pub, per_camera)
        self.ready = threading.Event()
        self._context = context
        span = self.video.t_range_ns
        if span is None:
            raise SessionError(f"{self.video.folder}: no recorded frame to replay")
        self.t0 = span[0]
        counts = {c: len(self.video.index(c)) for c in cams}
        period = round(1e9 / self.video.fps) if self.video.fps else 0
        self._pass_ns = span[1] - span[0] + period  # a loop's next pass starts one frame after the last
        self._seq_step = {c: int(self.video.index(c).seq.max()) + 1 if counts[c] else 0 for c in cams}
        self.stats = ReplayStats(cams, dict(self.endpoints), (span[1] - span[0]) / 1e9, self.speed,
                                 frames=dict.fromkeys(cams, 0), total_frames=sum(counts.values()))

    # --- public API ----------------------------------------------------------------------------
    def describe(self) -> str:
        """What is replayed, for the command line."""
        v = self.video
        per = ", ".join(f"{c} {len(v.index(c))}" for c in self.cameras)
        rate = "as fast as the subscribers take them" if self.speed == 0 else f"at {self.speed:g}x"
        where = sorted(set(self.endpoints.values()))
        return (f"replaying {v.folder}: {len(self.cameras)} cameras, {self.stats.total_frames} frames ({per}), "
                f"{self.stats.recorded_s:.1f} s recorded, {rate}{', looping' if self.loop else ''}, on "
                f"{', '.join(where)}")

    def run(self, stop: threading.Event | None = None) -> ReplayStats:
        """Publish until the end of the session (``loop``: until ``stop``); returns the statistics."""
        from capture.protocol import configure_socket
        from capture.session_reader import SessionError

        stop = stop or threading.Event()
        own_context = self._context is None
        ctx = zmq.Context() if own_context else self._context
        sockets: list[zmq.Socket] = []
        by_camera: dict[str, zmq.Socket] = {}
        groups = ([(self.cameras, self.endpoints[self.cameras[0]])] if self._shared
                  else [((c,), self.endpoints[c]) for c in self.cameras])
        try:
            for cams, endpoint in groups:
                sock = ctx.socket(zmq.XPUB)
                sockets.append(sock)
                configure_socket(sock, hwm=self.hwm)
                sock.setsockopt(zmq.XPUB_NODROP, 1)  # a full queue makes send wait instead of dropping
                sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription is reported
                try:
                    sock.bind(endpoint)
                except zmq.ZMQError as exc:
                    raise SessionError(f"replay: cannot publish camera(s) {', '.join(cams)} on {endpoint}: "
                                       f"{exc}") from None
                bound = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
                for c in cams:
                    by_camera[c] = sock
                    self.endpoints[c] = bound
            self.stats.endpoints = dict(self.endpoints)
            self.ready.set()
            self._publish(sockets, by_camera, stop)
        finally:
            for sock in sockets:
                sock.close(linger=LINGER_MS)
            if own_context:
                ctx.term()
            if self._own_video:
                self.video.close()
        return self.stats

    # --- internals -----------------------------------------------------------------------------
    def _plan_endpoints(self, pub: str | Mapping[str, str] | None, per_camera: bool) -> dict[str, str]:
        if isinstance(pub, Mapping):
            missing = [c for c in self.cameras if c not in pub]
            if missing:
                raise ValueError(f"replay: no endpoint given for camera(s) {', '.join(missing)}")
            return {c: pub[c] for c in self.cameras}
        if per_camera:
            if pub is not None:
                raise ValueError("replay: per_camera binds the rig's endpoints; give no pub endpoint with it")
            from capture.camera_node import DEFAULT_BASE_PORT

            rig = self.video.rig
            out = {}
            for i, cam in enumerate(self.video.cameras):
                endpoint = rig[cam].endpoint if rig is not None and cam in rig.names else ""
                out[cam] = endpoint or f"tcp://127.0.0.1:{DEFAULT_BASE_PORT + i}"
            return {c: out[c] for c in self.cameras}
        return dict.fromkeys(self.cameras, pub or DEFAULT_ENDPOINT)

    def _frames(self) -> Iterator[tuple[int, int, str, int, object]]:
        """(t_ns, camera order, camera, seq, data) of every camera, merged in t_ns order."""
        def one(c: int, cam: str):
            for seq, t_ns, data in self.video.iter_frames(cam):
                yield t_ns, c, cam, seq, data

        return heapq.merge(*(one(c, cam) for c, cam in enumerate(self.cameras)), key=lambda f: (f[0], f[1]))

    def _read_ahead(self, ahead: queue.Queue, halt: threading.Event) -> None:
        """The reader thread: (pass, frame) of every pass, (pass, None) at each pass's end, then _END; an
        exception goes into the queue in place of a frame."""
        def put(item) -> bool:
            while not halt.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            pass_no = 0
            while True:
                for frame in self._frames():
                    if not put((pass_no, frame)):
                        return
                if not put((pass_no, None)) or not self.loop:
                    break
                pass_no += 1
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the sender, which raises it
            put((0, exc))

    def _message(self, cam: str, seq: int, seq_out: int, t_out: int, data, sent_ns: int) -> FrameMessage | None:
        import numpy as np

        from capture.protocol import FrameMessage, ProtocolError, jpeg_size

        truth = self.video.truth(cam).get(seq) if self.truth else None
        try:
            if isinstance(data, np.ndarray):
                fmt = "bgr8" if data.ndim == 3 else "gray8"
                h, w = data.shape[:2]
                return FrameMessage(cam, seq_out, t_out, w, h, fmt, np.ascontiguousarray(data).tobytes(), truth,
                                    sent_ns)
            size = jpeg_size(data)
            if size is None:
                raise ProtocolError("not_jpeg", "the stored frame is no JPEG")
            return FrameMessage(cam, seq_out, t_out, size[0], size[1], "jpeg", data, truth, sent_ns)
        except ProtocolError as exc:
            self.stats.skipped += 1
            log.warning("replay: camera %s seq %d: not sent (%s)", cam, seq, exc)
            return None

    def _publish(self, sockets: list[zmq.Socket], by_camera: dict[str, zmq.Socket], stop: threading.Event) -> None:
        from capture.protocol import Heartbeat

        stats = self.stats
        subscribed = {id(s): False for s in sockets}

        def drain() -> None:  # subscription messages: read so they never queue up; note who has subscribers
            for s in sockets:
                while True:
                    try:
                        msg = s.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if msg[:1] == b"\x01":
                        subscribed[id(s)] = True

        if self.wait_s is not None:
            deadline = time.monotonic() + self.wait_s
            while not all(subscribed.values()) and not stop.is_set() and time.monotonic() < deadline:
                drain()
                stop.wait(0.01)
            if not all(subscribed.values()) and not stop.is_set():
                log.warning("replay: no subscriber after %.1f s; starting anyway", self.wait_s)

        sent_times = {c: deque() for c in self.cameras}
        last_seq = dict.fromkeys(self.cameras, -1)
        if self.truth:
            for cam in self.cameras:
                self.video.truth(cam)  # read before the clock starts, so the first frames are not late
        halt = threading.Event()
        ahead: queue.Queue = queue.Queue(maxsize=PREFETCH_FRAMES)
        reader = threading.Thread(target=self._read_ahead, args=(ahead, halt), name="replay-reader", daemon=True)
        reader.start()
        item = _get(ahead, stop)  # the first segments are open before the clock starts
        start_mono = time.monotonic_ns()
        start_clock = self.clock()
        next_beat = start_mono
        next_progress = start_mono + 1_000_000_000

        def send(sock: zmq.Socket, parts: list) -> bool:
            while True:
                try:
                    sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                    return True
                except zmq.Again:  # a subscriber's queue is full (XPUB_NODROP): wait for it
                    stats.blocked += 1
                    drain()
                    if stop.wait(0.001):
                        return False

        def beat(now: int, status: str = "ok") -> None:
            for cam in self.cameras:
                times = sent_times[cam]
                while times and times[0] <= now - 1_000_000_000:
                    times.popleft()
                hb = Heartbeat(cam, last_seq[cam], self.clock(), float(len(times)), status, sent_ns=self.clock())
                if send(by_camera[cam], hb.encode()):
                    stats.heartbeats += 1

        def tick() -> None:  # heartbeats, subscriptions, progress: whenever due
            nonlocal next_beat, next_progress
            now = time.monotonic_ns()
            drain()
            if now >= next_beat:
                beat(now)
                next_beat = max(next_beat + round(self.heartbeat_s * 1e9), now)
            if now >= next_progress:
                stats.wall_s = (now - start_mono) / 1e9
                if self.progress is not None:
                    self.progress(stats)
                next_progress = now + 1_000_000_000

        sending_pass = 0
        try:
            while item is not None and item is not _END:
                pass_no, frame = item
                if frame is None:  # the end of a pass
                    stats.passes += 1
                    item = _get(ahead, stop, tick)
                    continue
                if isinstance(frame, BaseException):
                    raise frame
                t_ns, _, cam, seq, data = frame
                rel = t_ns - self.t0 + pass_no * self._pass_ns
                due = None
                if self.speed > 0:
                    due = start_mono + round(rel / self.speed)
                    while not stop.is_set():
                        tick()
                        now = time.monotonic_ns()
                        if now >= due:
                            break
                        stop.wait(min((due - now) / 1e9, max(0.0, (next_beat - now) / 1e9), _MAX_WAIT_S))
                else:
                    tick()
                if stop.is_set():
                    break
                seq_out = seq + pass_no * self._seq_step[cam]
                t_out = start_clock + rel if self.retime else t_ns + pass_no * self._pass_ns
                msg = self._message(cam, seq, seq_out, t_out, data, self.clock())
                if msg is not None:
                    if not send(by_camera[cam], msg.encode()):
                        break
                    now = time.monotonic_ns()
                    if due is not None:
                        stats.max_late_ms = max(stats.max_late_ms, (now - due) / 1e6)
                    sent_times[cam].append(now)
                    last_seq[cam] = seq_out
                    stats.frames[cam] += 1
                    if pass_no != sending_pass:  # the first frame of a new pass
                        sending_pass, stats.pass_frames = pass_no, 0
                    stats.pass_frames += 1
                item = _get(ahead, stop, tick)
        finally:
            halt.set()
            reader.join(timeout=5.0)
        stats.stopped = stop.is_set()
        now = time.monotonic_ns()
        stats.wall_s = (now - start_mono) / 1e9
        if not stats.stopped:
            beat(now, "ended")
        if self.progress is not None:
            self.progress(stats)


_END = object()  # the reader thread's last item


def _get(ahead: queue.Queue, stop: threading.Event, tick: Callable[[], None] | None = None):
    """The reader thread's next item; None once ``stop`` is set. Calls ``tick`` while waiting."""
    while not stop.is_set():
        try:
            return ahead.get(timeout=_MAX_WAIT_S)
        except queue.Empty:
            if tick is not None:
                tick()
    return None


def replay(session: str | Path | SessionVideo, pub: str | Mapping[str, str] | None = None, speed: float = 1.0,
           loop: bool = False, stop: threading.Event | None = None, **options) -> ReplayStats:
    """Republish a recorded session; see the module docstring and ``Replay`` for ``options``."""
    return Replay(session, pub, speed=speed, loop=loop, **options).run(stop)


# -- the command line -----------------------------------------------------------------------------------------

def add_replay_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``replay`` to the mocap verbs; it sets ``replay_run`` (a function of the parsed args -> exit code)."""
    p = subparsers.add_parser(
        "replay", help="republish a recorded session over ZeroMQ with its recorded timing",
        description="Republish a recorded session's frames (the recorded JPEG bytes, seq as recorded, t_ns "
                    "shifted onto this replay's clock) and heartbeats, with the recorded timing scaled by "
                    "--speed, so a recorded session drives the stages downstream like live cameras. Waits for "
                    "a subscriber before the first frame (--no-wait: start at once), and never drops a frame "
                    "for a slow subscriber: it waits for it. Stops cleanly on SIGINT/SIGTERM.")
    p.add_argument("session", help="the session folder (what `mocap record --out` wrote)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pub", metavar="ENDPOINT",
                       help=f"ZeroMQ endpoint to bind for all cameras (default {DEFAULT_ENDPOINT})")
    where.add_argument("--pub-per-camera", action="store_true",
                       help="bind each camera on its endpoint in the session's rig (else tcp://127.0.0.1:<5550 + "
                            "index>), exactly where `mocap node camera` publishes")
    p.add_argument("--speed", type=float, default=1.0,
                   help="playback rate: 2 = twice as fast, 0 = as fast as the subscribers take them (default 1)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until stopped")
    p.add_argument("--cameras", metavar="A,B", help="replay only these cameras (default all)")
    p.add_argument("--keep-time", action="store_true",
                   help="send the recorded t_ns instead of moving them onto this replay's clock")
    wait = p.add_mutually_exclusive_group()
    wait.add_argument("--wait", type=float, metavar="S",
                      help="wait at most S seconds for a subscriber before starting (default: until one comes)")
    wait.add_argument("--no-wait", action="store_true", help="start at once, subscribers or not")
    p.set_defaults(replay_run=run_replay)
    return p


def run_replay(args: argparse.Namespace) -> int:
    """``mocap replay``: print what is replayed, a progress line, then a summary; exit code 0."""
    if not (math.isfinite(args.speed) and args.speed >= 0):
        raise ValueError(f"--speed {args.speed}: expected a number >= 0 (0: as fast as possible)")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="mocap replay: %(levelname)s: %(message)s")
    tty = sys.stdout.isatty()
    last_print = [0.0]

    def progress(stats: ReplayStats) -> None:
        now = time.monotonic()
        if tty:
            print("\r" + stats.line(), end="", flush=True)
        elif now - last_print[0] >= 10.0:
            print(stats.line(), flush=True)
            last_print[0] = now

    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()] if args.cameras else None
    wait_s = None if args.no_wait else (math.inf if args.wait is None else args.wait)
    rep = Replay(args.session, args.pub, per_camera=args.pub_per_camera, speed=args.speed, loop=args.loop,
                 retime=not args.keep_time, wait_s=wait_s, cameras=cameras, progress=progress)
    print(rep.describe(), flush=True)
    if wait_s:
        print("waiting for a subscriber (Ctrl-C stops)", flush=True)
    stop = threading.Event()
    with StopOnSignals(stop):  # a second signal is not caught: it stops a stuck process at once
        stats = rep.run(stop)
    if tty:
        print()
    print(("stopped: " if stats.stopped else "done: ") + stats.line(), flush=True)
    return 0
