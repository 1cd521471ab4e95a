"""The camera node: one process per camera, publishing every frame it captures on a ZeroMQ PUB socket.

``mocap node camera --rig RIG --camera NAME`` runs a ``CameraNode``: it opens the camera's source
(``capture.sources.open_source``), publishes each frame as a ``FrameMessage`` (``[b"frame." + camera, header,
payload]``, JPEG or raw ``bgr8``) and a ``Heartbeat`` every ``heartbeat_s``, whatever the camera is doing.

- ``seq`` numbers the camera's frame slots since this node started, from 0. When the source fails and is
  re-opened, the first frame after the outage advances seq by the frame periods the camera was away (from the
  timestamps and the source's rate), so an outage reaches receivers as a seq jump they count, never as silent
  loss. A source that skips frames itself (the simulated camera when read late) counts them in its ``dropped``
  attribute (cumulative, optional); seq jumps by the frames dropped since the previous read.
  A restarted node starts again at seq 0 (receivers tell restarts by seq going back).
- ``t_ns`` is the source's capture time on the rig's clock; ``sent_ns`` (and a heartbeat's ``t_ns``) is the
  node's time on that same clock when it sent the message (monotonic: ``time.monotonic_ns``; ptp and ntp:
  ``time.time_ns``, the system clock those daemons discipline).
- A heartbeat carries the last published seq (-1 before the first), the frames published during the last second,
  and a status: ``ok``, ``retrying: <reason>`` (the source failed and is re-opened with back-off) or ``ended``
  (a file or folder source reached its end; the node keeps heartbeating until stopped, unless ``exit_at_end``).
  A status change is logged once and sent in a heartbeat at once.
- Failures never stop the node: ``SourceError`` (and ``OSError``) from opening or reading, or anything else once
  the source has opened once, closes the source and re-opens it after 0.5, 1, 2, 4, 8, 8, ... s. Only an error
  other than those on the very first open (a wrong source string in the rig file) is raised from ``run``.

Threads: a capture thread opens, reads and encodes (JPEG encoding releases the GIL); the thread calling ``run``
owns the socket and sends frames and heartbeats, so a camera that hangs in ``read`` still heartbeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import zmq

from capture.stop_signals import StopOnSignals

if TYPE_CHECKING:  # capture.protocol pulls in OpenCV: imported where used, so `mocap --help` stays quick
    from capture.curve_keys import CurveKeys
    from rigs.camera import Camera

log = logging.getLogger(__name__)

DEFAULT_BASE_PORT = 5550
DEFAULT_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds; the last value repeats
LINGER_MS = 200  # on close, the socket keeps trying to deliver queued frames this long
_QUEUE_FRAMES = 4  # encoded frames between the capture thread and the sender (a raw 1080p frame is 6 MB)
_CLOCKS: dict[str, Callable[[], int]] = {"monotonic": time.monotonic_ns, "ptp": time.time_ns, "ntp": time.time_ns}
_RETRYABLE = (OSError,)  # plus capture.sources.SourceError, added where the sources are imported


class NodeError(ValueError):
    """A node that cannot run: its endpoint cannot be bound, its source is misconfigured."""


def default_endpoint(camera: Camera, index: int = 0) -> str:
    """The camera's ``endpoint`` from the rig file, else ``tcp://127.0.0.1:<5550 + index>``."""
    return camera.endpoint or f"tcp://127.0.0.1:{DEFAULT_BASE_PORT + index}"


def _source_errors() -> tuple[type[BaseException], type[BaseException]]:
    """(SourceError, EndOfStream) from capture.sources."""
    from capture.sources import EndOfStream, SourceError

    return SourceError, EndOfStream


def _reason(exc: BaseException) -> str:
    """A one-line, printable reason that fits a heartbeat status."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 200 else text[:197] + "..."


def frames_missed(t_last_ns: int, t_next_ns: int, fps: float) -> int:
    """Frame slots a camera at ``fps`` skipped between two frames' timestamps (0 when unknown or back in time)."""
    if fps <= 0 or t_next_ns <= t_last_ns:
        return 0
    return max(0, round((t_next_ns - t_last_ns) * fps / 1e9) - 1)


class CameraNode:
    """Publishes one camera's frames and heartbeats on a PUB socket until stopped; see the module docstring.

    ``source_factory()`` opens the source (a ``capture.sources`` FrameSource: ``name``, ``width``, ``height``,
    ``fps``, ``read()``, ``close()``); it is called again after every failure. ``sleep(seconds)`` waits out a
    back-off (default: waits on the node's halt event, so stopping cuts it short); tests pass a fake.
    ``announce(line)`` is called once, when the source first opens. ``clock`` names the rig's clock.
    ``curve``: the rig's CURVE keys (``capture.curve_keys``); with them only authorized subscribers receive.
    """

    def __init__(self, camera: Camera, source_factory: Callable[[], Any], pub_endpoint: str | None = None,
                 fmt: str = "jpeg", quality: int = 90, heartbeat_s: float = 1.0,
                 backoff: Sequence[float] = DEFAULT_BACKOFF, context: zmq.Context | None = None, *,
                 index: int = 0, clock: str = "monotonic", exit_at_end: bool = False,
                 sleep: Callable[[float], Any] | None = None, announce: Callable[[str], Any] | None = None,
                 hwm: int | None = None, curve: CurveKeys | None = None):
        if fmt not in ("jpeg", "bgr8"):
            raise NodeError(f"camera {camera.name!r}: format {fmt!r}: expected jpeg or bgr8")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise NodeError(f"camera {camera.name!r}: JPEG quality {quality!r}: expected 1..100")
        if not heartbeat_s > 0:
            raise NodeError(f"camera {camera.name!r}: heartbeat interval {heartbeat_s!r}: expected > 0 s")
        if not backoff or any(not d >= 0 for d in backoff):
            raise NodeError(f"camera {camera.name!r}: back-off {backoff!r}: expected delays >= 0 s")
        if clock not in _CLOCKS:
            raise NodeError(f"camera {camera.name!r}: clock {clock!r}: expected one of {', '.join(_CLOCKS)}")
        self.camera = camera
        self.name = camera.name
        self.source_factory = source_factory
        self.endpoint = pub_endpoint or default_endpoint(camera, index)
        self.fmt = fmt
        self.quality = quality
        self.heartbeat_s = float(heartbeat_s)
        self.backoff = tuple(float(d) for d in backoff)
        self.exit_at_end = exit_at_end
        self.now_ns = _CLOCKS[clock]
        self._context = context
        self._sleep = sleep
        self._announce = announce
        self._hwm = hwm
        self.curve = curve
        self.ready = threading.Event()  # set once the socket is bound; ``endpoint`` is then the bound address
        self.status = "ok"  # the status last sent (read it from another thread for a glance, not for sync)
        self.frames_sent = 0
        self.last_seq = -1
        self.delays: list[float] = []  # every back-off waited, in order (for tests and post-mortems)
        self._capture_status = "ok"  # the capture thread's view; the sender's is ``status``
        self._halt = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)

    # -- the sender: the calling thread ------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, max_frames: int | None = None) -> int:
        """Publish until ``stop`` is set (or ``max_frames`` frames, or the end with ``exit_at_end``); frames sent."""
        from capture.protocol import DEFAULT_HWM, Heartbeat, configure_socket

        stop = stop or threading.Event()
        own_context = self._context is None
        ctx = zmq.Context() if own_context else self._context
        sock = ctx.socket(zmq.PUB)
        capture: threading.Thread | None = None
        auth = None  # CURVE: the ZAP authenticator admitting the rig's authorized subscribers
        try:
            configure_socket(sock, hwm=self._hwm or DEFAULT_HWM)
            if self.curve is not None:
                from capture.curve_keys import secure_server

                auth = secure_server(sock, self.curve, ctx)
            try:
                sock.bind(self.endpoint)
            except zmq.ZMQError as exc:
                raise NodeError(f"camera {self.name!r}: cannot publish on {self.endpoint}: {exc}") from None
            last = sock.getsockopt(zmq.LAST_ENDPOINT)
            if last:
                self.endpoint = last.decode()
            self.ready.set()
            capture = threading.Thread(target=self._capture_loop, name=f"capture-{self.name}", daemon=True)
            capture.start()

            sent_times: deque[float] = deque()  # monotonic times of the frames sent during the last second
            next_beat = time.monotonic()  # the first heartbeat goes out at once
            status_changed = False
            ended = False
            while not stop.is_set() and not self._halt.is_set():
                now = time.monotonic()
                if now >= next_beat or status_changed:
                    while sent_times and sent_times[0] <= now - 1.0:
                        sent_times.popleft()
                    beat = Heartbeat(self.name, self.last_seq, self.now_ns(), float(len(sent_times)), self.status,
                                     sent_ns=self.now_ns())
                    sock.send_multipart(beat.encode(), copy=False)
                    if now >= next_beat:
                        next_beat = max(next_beat + self.heartbeat_s, now)
                    status_changed = False
                    if ended:
                        break  # exit_at_end: the final "ended" heartbeat has gone out
                try:
                    kind, item = self._queue.get(timeout=min(0.1, max(0.0, next_beat - time.monotonic())))
                except queue.Empty:
                    continue
                if kind == "frame":
                    msg = dataclasses.replace(item, sent_ns=self.now_ns())
                    sock.send_multipart(msg.encode(), copy=False)
                    sent_times.append(time.monotonic())
                    self.last_seq = msg.seq
                    self.frames_sent += 1
                    if max_frames is not None and self.frames_sent >= max_frames:
                        break
                elif kind == "status":
                    status_changed = item != self.status
                    self.status = item
                elif kind == "exit":
                    ended = status_changed = True
                elif kind == "fatal":
                    raise item
            return self.frames_sent
        finally:
            self._halt.set()
            if capture is not None:
                capture.join(timeout=2.0)  # a source stuck in read() is left behind (daemon thread)
            sock.close(linger=LINGER_MS)
            if auth is not None:
                auth.stop()
            if own_context:
                ctx.term()

    # -- the capture thread -------------------------------------------------------------------------------------

    def _put(self, kind: str, item: Any) -> bool:
        """Hand an item to the sender; False when the node is halting."""
        while not self._halt.is_set():
            try:
                self._queue.put((kind, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _set_status(self, status: str, exc: BaseException | None = None) -> None:
        if status != self._capture_status:
            if status == "ok":
                log.info("camera %s: delivering frames again", self.name)
            elif status == "ended":
                log.warning("camera %s: the source ended%s", self.name,
                            "; exiting" if self.exit_at_end else "; heartbeating until stopped")
            else:
                log.warning("camera %s: %s (re-opening with back-off)", self.name, status, exc_info=exc)
        self._capture_status = status
        self._put("status", status)

    def _wait(self, attempt: int) -> None:
        delay = self.backoff[min(attempt, len(self.backoff) - 1)]
        self.delays.append(delay)
        if self._sleep is not None:
            self._sleep(delay)
        else:
            self._halt.wait(delay)

    def _capture_loop(self) -> None:
        try:
            self._capture()
        except NodeError as exc:
            self._put("fatal", exc)
        except BaseException as exc:  # noqa: BLE001 - a bug here must reach run(), not vanish with the thread
            log.exception("camera %s: the capture thread failed", self.name)
            self._put("fatal", exc)

    def _capture(self) -> None:
        from capture.protocol import frame_from_image

        source_error, end_of_stream = _source_errors()
        retryable = (source_error, *_RETRYABLE)
        next_seq = 0
        last_t: int | None = None  # timestamp of the last frame published, to count an outage's frames
        failures = 0  # consecutive failed opens/reads: picks the back-off delay
        opened_once = False
        while not self._halt.is_set():
            try:
                source = self.source_factory()
            except retryable as exc:
                self._set_status(f"retrying: {_reason(exc)}")
                self._wait(failures)
                failures += 1
                continue
            except Exception as exc:
                if not opened_once:
                    why = _reason(exc)
                    raise NodeError(why if repr(self.name) in why else
                                    f"camera {self.name!r}: cannot open its source: {why}") from exc
                self._set_status(f"retrying: {_reason(exc)}", exc)
                self._wait(failures)
                failures += 1
                continue
            if not opened_once:
                opened_once = True
                if self._announce is not None:
                    self._announce(self._describe(source))
            dropped = getattr(source, "dropped", 0) or 0
            after_outage = last_t is not None
            try:
                while not self._halt.is_set():
                    frame = source.read()
                    dropped, before = getattr(source, "dropped", 0) or 0, dropped
                    seq = next_seq + max(0, dropped - before)
                    if after_outage:
                        seq += frames_missed(last_t, int(frame.t_ns), getattr(source, "fps", 0) or 0)
                        after_outage = False
                    last_t = int(frame.t_ns)
                    msg = frame_from_image(self.name, seq, int(frame.t_ns), frame.image, self.fmt, self.quality,
                                           truth=frame.truth)
                    next_seq = seq + 1
                    if failures or self._capture_status != "ok":
                        failures = 0
                        self._set_status("ok")
                    if not self._put("frame", msg):
                        return
            except end_of_stream:
                self._set_status("ended")
                if self.exit_at_end:
                    self._put("exit", None)
                return
            except retryable as exc:
                self._set_status(f"retrying: {_reason(exc)}")
            except Exception as exc:  # noqa: BLE001 - a bad frame or a source bug: reported, retried
                self._set_status(f"retrying: {type(exc).__name__}: {_reason(exc)}", exc)
            finally:
                try:
                    source.close()
                except Exception:  # noqa: BLE001 - closing a broken camera may fail too
                    log.debug("camera %s: closing the source failed", self.name, exc_info=True)
            if not self._halt.is_set():
                self._wait(failures)
                failures += 1

    def _describe(self, source: Any) -> str:
        fmt = f"jpeg q{self.quality}" if self.fmt == "jpeg" else self.fmt
        fps = getattr(source, "fps", None)
        rate = f" @ {fps:g} fps" if fps else ""
        kind = "simulated" if self.camera.source == "sim" else (self.camera.source or getattr(source, "name", "?"))
        return f"camera {self.name} publishing on {self.endpoint} ({fmt}, {source.width}x{source.height}{rate}, {kind})"


# -- the command line -----------------------------------------------------------------------------------------

def add_node_parser(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``node`` (with ``camera``) to the mocap verbs; returns node's sub-verbs for ``node recon`` to join.

    Each sub-verb sets ``node_run`` (a function of the parsed args returning the exit code)."""
    node = subparsers.add_parser("node", help="run one pipeline process (mocap capture and demo start these)")
    kinds = node.add_subparsers(dest="node_verb", metavar="KIND", required=True)
    cam = kinds.add_parser("camera", help="publish one camera's frames and heartbeats over ZeroMQ",
                           description="Publish one camera's frames as [frame.<name>, header, payload] messages "
                                       "and a heartbeat every second; a failing camera is re-opened with "
                                       "back-off. Stops cleanly on SIGINT/SIGTERM. seq restarts at 0 when the "
                                       "node restarts.")
    cam.add_argument("--rig", required=True, help="rig file or preset (e.g. studio-4)")
    cam.add_argument("--camera", required=True, help="the camera's name in the rig")
    cam.add_argument("--pub", metavar="ENDPOINT",
                     help="ZeroMQ endpoint to bind (default: the camera's endpoint in the rig, else "
                          "tcp://127.0.0.1:<5550 + camera index>)")
    cam.add_argument("--format", dest="fmt", choices=("jpeg", "bgr8"), default="jpeg",
                     help="pixel format on the wire (default jpeg)")
    cam.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 (default 90)")
    cam.add_argument("--seed", type=int, default=0, help="simulated cameras: the scene's seed (default 0)")
    cam.add_argument("--people", type=int, default=2, help="simulated cameras: performers (default 2)")
    cam.add_argument("--no-pace", action="store_true",
                     help="deliver files and simulated frames as fast as possible, not at their rate")
    cam.add_argument("--exit-at-end", action="store_true",
                     help="exit when a file or folder source ends (default: report 'ended' until stopped)")
    cam.set_defaults(node_run=run_camera_node)
    return kinds


def run_camera_node(args: argparse.Namespace) -> int:
    """``mocap node camera``: load the rig, find the camera, publish until SIGINT/SIGTERM; exit code 0."""
    from capture.curve_keys import load_keys
    from rigs.formats import load_rig

    rig = load_rig(args.rig)
    camera = rig[args.camera]  # KeyError naming the rig's cameras, printed by the CLI
    if not 1 <= args.quality <= 100:
        raise NodeError(f"--quality {args.quality}: expected 1..100")
    if args.people < 0:
        raise NodeError(f"--people {args.people}: expected 0 or more")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format=f"mocap node camera {camera.name}: %(levelname)s: %(message)s")

    def open_camera():
        from capture.sources import open_source

        return open_source(camera, clock=rig.clock, pace=not args.no_pace, rig=rig, seed=args.seed,
                           people=args.people)

    node = CameraNode(camera, open_camera, args.pub, fmt=args.fmt, quality=args.quality, index=rig.index(camera.name),
                      clock=rig.clock, exit_at_end=args.exit_at_end, announce=lambda line: print(line, flush=True),
                      curve=load_keys(args.rig))  # None (CURVE off) without <rig stem>.keys/ beside a rig file
    stop = threading.Event()
    with StopOnSignals(stop):  # a second signal is not caught: it stops a stuck process at once
        node.run(stop)
    return 0
