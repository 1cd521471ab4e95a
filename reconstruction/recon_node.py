"""The reconstruction node: camera nodes (or a replay) in, ``pose3d`` messages out, one FrameSet at a time.

``mocap node recon --rig RIG [--connect ENDPOINT ...] [--pub ENDPOINT]`` runs a ``ReconNode``:

1. subscribe (``capture.subscriber.FrameSubscriber``) to every camera's frames and heartbeats: by default on
   each camera's endpoint in the rig (where ``mocap node camera`` publishes), or on the ``--connect``
   endpoints (``CAMERA=ENDPOINT``, or a plain ``ENDPOINT`` such as a ``mocap replay``, whose cameras are
   learned from the topics);
2. group the frames into FrameSets (``capture.sync.TimestampSync`` at the rig's rate, with its clock offsets),
   in a receiver thread, so the sync sees the frames' true arrival times however long a FrameSet's
   reconstruction takes; FrameSets wait in order for steps 3-5 (more than ``BACKLOG_S`` of them: the
   oldest are dropped and counted, so a node that cannot keep up stays current);
3. detect: 2D keypoints [C, S, J, 3] per FrameSet. No 2D network exists yet: frames from simulated cameras
   carry the simulation's ``truth`` header, from which the SIMULATED detector
   (``reconstruction.simulated_frame_detector``) answers. Frames without it come from real cameras: the node
   says once that no detector runs on real frames yet and skips those FrameSets. Keypoints from files (an
   external detector) are reconstructed offline: ``mocap keypoints import`` then ``mocap reconstruct``;
4. reconstruct: ``reconstruction.pipeline.FrameReconstructor.step`` (associate, triangulate, track, bone
   check: the very code ``mocap reconstruct`` runs), then, with ``--filter one-euro``, each track through a
   causal one-euro filter (``reconstruction.filters.OneEuroFilter``);
5. publish the confirmed people as a ``capture.protocol.Pose3DMessage`` on topic ``pose3d.<name>`` (PUB,
   default ``tcp://127.0.0.1:5570``): ``seq`` the FrameSet's index, ``t_ns`` its time, poses [P, J, 4] and
   track ids [P] (P may be 0). FrameSets without detections publish nothing.

With ``--filter none`` (the default) the published poses are those of ``mocap reconstruct SESSION --filter
none`` on the same recording, frame for frame: a replay of a recorded simulated session through this node
gives the offline command's poses (the end-to-end test checks it; ``mocap replay --keep-time`` keeps the
recorded times, so the messages' ``t_ns`` are the session's FrameSet times too). Malformed messages are counted and
skipped (``capture.protocol``): a bad message never stops the node. SIGINT/SIGTERM stop it; with
``exit_at_end`` it also stops once every camera has sent an ``ended`` heartbeat (the end of a replay), after
reconstructing the last FrameSets.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

if TYPE_CHECKING:  # the reconstruction and the wire are imported where used: `mocap --help` stays quick
    from capture.protocol import Pose3DMessage
    from capture.sync import FrameSet
    from reconstruction.pipeline import ReconstructionParams
    from reconstruction.simulated_frame_detector import SimulatedFrameDetector
    from rigs.camera import Rig

log = logging.getLogger(__name__)

DEFAULT_PUB = "tcp://127.0.0.1:5570"
DEFAULT_NAME = "recon"
LIVE_FILTERS = ("none", "one-euro")
STATUS_INTERVAL_S = 10.0
LINGER_MS = 1000  # on close, queued pose3d messages still go out for this long
BACKLOG_S = 10.0  # FrameSets waiting for the reconstruction, in seconds of the rig's rate; older ones are dropped
_END = object()  # the receiver thread's last item
_NO_DETECTOR = ("camera {camera} sends real frames (no simulated truth): no 2D detector runs on real frames "
                "yet, so its FrameSets are skipped; reconstruct real recordings offline from keypoint files "
                "(mocap keypoints import, then mocap reconstruct)")


class ReconNodeError(ValueError):
    """A reconstruction node that cannot run: a bad argument, an endpoint it cannot bind."""


@dataclass
class ReconNodeStats:
    """What the node did: frames in, FrameSets formed, reconstructed and published, and what was skipped."""

    frames: int = 0  # frames received from the rig's cameras
    ignored: int = 0  # frames of cameras outside the rig
    sets: int = 0  # FrameSets formed
    reconstructed: int = 0  # FrameSets run through the reconstruction
    without_truth: int = 0  # FrameSets skipped: no frame with a simulated truth header (real cameras)
    bad_truth: int = 0  # FrameSets skipped: a truth header the simulated detector cannot use
    published: int = 0  # pose3d messages sent
    dropped: int = 0  # FrameSets dropped because the reconstruction fell BACKLOG_S behind
    people: int = 0  # confirmed people in the last message
    late: dict[str, int] = field(default_factory=dict)  # frames the sync discarded, per camera

    def line(self) -> str:
        late = sum(self.late.values())
        return (f"{self.frames} frames, {self.sets} FrameSets, {self.reconstructed} reconstructed, "
                f"{self.published} published ({self.people} people now)"
                + (f", {self.without_truth} without a detector" if self.without_truth else "")
                + (f", {self.bad_truth} with bad truth" if self.bad_truth else "")
                + (f", {late} late frames" if late else "")
                + (f", {self.dropped} FrameSets dropped (too slow)" if self.dropped else ""))


class _OneEuroTracks:
    """One causal one-euro filter per track id; a track's filter is dropped when the track has been gone long."""

    def __init__(self, forget_ns: int):
        self.forget_ns = forget_ns
        self._filters: dict[int, Any] = {}
        self._last: dict[int, int] = {}

    def __call__(self, t_ns: int, poses: np.ndarray, track_ids: np.ndarray) -> np.ndarray:
        from reconstruction.filters import OneEuroFilter

        out = poses.copy()
        for g, tid in enumerate(track_ids.tolist()):
            filt = self._filters.get(tid)
            if filt is None:
                filt = self._filters[tid] = OneEuroFilter()
            out[g, :, :3] = filt(t_ns, poses[g, :, :3])
            self._last[tid] = t_ns
        for tid in [k for k, last in self._last.items() if t_ns - last > self.forget_ns]:
            self._filters.pop(tid, None)
            self._last.pop(tid, None)
        return out


class ReconNode:
    """Subscribes to a rig's cameras, reconstructs every FrameSet and publishes ``pose3d.<name>`` messages.

    ``endpoints``: label -> endpoint to subscribe to (``FrameSubscriber``); ``cameras``: the cameras synced
    (default the rig's); ``everything``: learn cameras from the topics (a replay's single endpoint).
    ``detector``: 2D keypoints of a FrameSet from its frames' truth headers (default the simulated detector).
    ``filter``: ``none`` or ``one-euro``. ``announce(line)`` is called once the sockets are ready; ``ready`` is
    then set and ``endpoint`` holds the bound address (``tcp://127.0.0.1:*`` picks a free port).
    """

    def __init__(self, rig: Rig, endpoints: Mapping[str, str], *, cameras: Sequence[str] | None = None,
                 everything: bool = False, pub_endpoint: str = DEFAULT_PUB, name: str = DEFAULT_NAME,
                 skeleton: str = "body25", fps: float | None = None, filter: str = "none",
                 params: ReconstructionParams | None = None, detector: SimulatedFrameDetector | None = None,
                 context: zmq.Context | None = None, curve=None, exit_at_end: bool = False, hwm: int | None = None,
                 announce: Callable[[str], Any] | None = None):
        from reconstruction.pipeline import FrameReconstructor, ReconstructionParams
        from reconstruction.simulated_frame_detector import SimulatedFrameDetector

        if filter not in LIVE_FILTERS:
            raise ReconNodeError(f"filter {filter!r}: the live node filters with one of {', '.join(LIVE_FILTERS)}")
        self.rig = rig
        self.cameras = tuple(rig.names if cameras is None else cameras)
        unknown = [c for c in self.cameras if c not in rig.names]
        if unknown or not self.cameras:
            raise ReconNodeError(f"cameras {', '.join(unknown) or '(none)'} are not in rig {rig.name!r} "
                                 f"({', '.join(rig.names)})")
        self.endpoints = dict(endpoints)
        self.everything = everything
        self.endpoint = pub_endpoint
        self.fps = float(fps or rig.fps or 30.0)
        params = params if params is not None else ReconstructionParams()
        self.filter = filter
        self.exit_at_end = exit_at_end
        self.reconstructor = FrameReconstructor(rig, skeleton, self.fps, params)
        self.skeleton = self.reconstructor.skeleton.name
        self.name = _checked_name(name, self.skeleton, self.reconstructor.skeleton.num_joints)
        self.detector = detector if detector is not None else SimulatedFrameDetector(rig, self.skeleton)
        self.stats = ReconNodeStats()
        self.ready = threading.Event()
        self._context = context
        self._curve = curve
        self._hwm = hwm
        self._announce = announce
        self._smooth = _OneEuroTracks(round(2e9 * params.tracker.max_missed_s) + 1) if filter == "one-euro" else None
        self._warned: set[str] = set()
        self._last_t: int | None = None

    # -- one FrameSet ---------------------------------------------------------------------------------------

    def handle(self, fs: FrameSet) -> Pose3DMessage | None:
        """Detect and reconstruct one FrameSet (payloads: the frames' truth headers); the message to publish,
        or None when the FrameSet has no frame the detector can read."""
        from capture.protocol import Pose3DMessage
        from reconstruction.simulated_frame_detector import SimulatedTruthError, has_truth

        self.stats.sets += 1
        headers = []
        for cam in self.rig.names:
            ref = fs.frames.get(cam)
            truth = None if ref is None else ref.payload
            if ref is not None and not has_truth(truth) and cam not in self._warned:
                self._warned.add(cam)
                log.warning(_NO_DETECTOR.format(camera=cam))
            headers.append(truth if has_truth(truth) else None)
        if not any(h is not None for h in headers):
            self.stats.without_truth += 1
            return None
        if self._last_t is not None and fs.t_ns <= self._last_t:
            log.warning("FrameSet %d at %d ns does not come after the previous one; skipped", fs.index, fs.t_ns)
            return None
        try:
            keypoints = self.detector.frameset(headers)
        except SimulatedTruthError as exc:
            self.stats.bad_truth += 1
            if "bad_truth" not in self._warned:
                self._warned.add("bad_truth")
                log.warning("FrameSet %d skipped: %s", fs.index, exc)
            return None
        result = self.reconstructor.step(fs.t_ns, keypoints)
        self._last_t = fs.t_ns
        self.stats.reconstructed += 1
        ok = result.confirmed
        poses, ids = result.poses[ok], result.track_ids[ok]
        if self._smooth is not None:
            poses = self._smooth(fs.t_ns, poses, ids)
        self.stats.people = len(ids)
        return Pose3DMessage(self.name, fs.index, fs.t_ns, self.skeleton, poses, ids)

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, max_sets: int | None = None) -> ReconNodeStats:
        """Receive, sync, reconstruct and publish until ``stop`` (or the end with ``exit_at_end``, or
        ``max_sets`` FrameSets); returns the statistics.

        A receiver thread reads the frames and forms the FrameSets as they arrive, so a slow reconstruction
        (the simulated detector's first call simulates the whole sequence) never splits sets; this thread
        reconstructs and publishes them in order. FrameSets waiting longer than ``BACKLOG_S`` worth are
        dropped oldest first (counted in ``stats.dropped``): a node that cannot keep up stays current."""
        import dataclasses

        from capture.protocol import DEFAULT_HWM, configure_socket
        from capture.subscriber import FrameSubscriber

        stop = stop or threading.Event()
        own_context = self._context is None
        ctx = zmq.Context() if own_context else self._context
        pub = ctx.socket(zmq.PUB)
        sub = None
        auth = None
        receiver = None
        halt = threading.Event()
        try:
            configure_socket(pub, hwm=self._hwm or DEFAULT_HWM)
            if self._curve is not None and self._curve.server_secret is not None:
                from capture.curve_keys import secure_server

                auth = secure_server(pub, self._curve, ctx)
            try:
                pub.bind(self.endpoint)
            except zmq.ZMQError as exc:
                raise ReconNodeError(f"recon node {self.name!r}: cannot publish on {self.endpoint}: {exc}") from None
            self.endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode() or self.endpoint
            fps = self.rig.subset(self.cameras).fps or self.fps
            sub = FrameSubscriber(self.endpoints, cameras=None if self.everything else self.cameras,
                                  everything=self.everything, context=ctx, fps=fps, curve=self._curve,
                                  name=f"recon node {self.name}")
            backlog: queue.Queue = queue.Queue(maxsize=max(1, round(BACKLOG_S * fps)))
            receiver = threading.Thread(target=self._receive, args=(sub, backlog, fps, halt), daemon=True,
                                        name=f"recon-{self.name}-receiver")
            self.ready.set()
            if self._announce is not None:
                self._announce(self.describe())
            receiver.start()
            next_status = time.monotonic() + STATUS_INTERVAL_S
            while not stop.is_set():
                try:
                    item = backlog.get(timeout=0.05)
                except queue.Empty:
                    item = None
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    out = self.handle(item)
                    if out is not None:
                        pub.send_multipart(dataclasses.replace(out, sent_ns=time.monotonic_ns()).encode(), copy=False)
                        self.stats.published += 1
                    if max_sets is not None and self.stats.sets >= max_sets:
                        break
                if time.monotonic() >= next_status:
                    log.info("%s", self.stats.line())
                    next_status += STATUS_INTERVAL_S
            return self.stats
        finally:
            halt.set()
            if receiver is not None and receiver.is_alive():
                receiver.join(timeout=2.0)
            if sub is not None:
                sub.close()
            pub.close(linger=LINGER_MS)
            if auth is not None:
                auth.stop()
            if own_context:
                ctx.term()

    def _receive(self, sub, backlog: queue.Queue, fps: float, halt: threading.Event) -> None:
        """The receiver thread: frames -> FrameSets at their arrival times -> ``backlog``; then _END."""
        from capture.protocol import FrameMessage, Heartbeat
        from capture.sync import FrameRef, TimestampSync

        def put(item) -> None:
            while True:
                try:
                    backlog.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        backlog.get_nowait()  # the oldest FrameSet goes: stay current
                        self.stats.dropped += 1
                        if self.stats.dropped == 1:
                            log.warning("the reconstruction falls behind the cameras: dropping the oldest "
                                        "FrameSets (more than %g s waiting)", BACKLOG_S)
                    except queue.Empty:
                        pass

        try:
            late = self.stats.late

            def discard(frame, reason: str) -> None:
                late[frame.camera] = late.get(frame.camera, 0) + 1

            synced = self.rig.subset(self.cameras)
            offsets = {c.name: c.clock_offset_ns for c in synced if c.clock_offset_ns}
            sync = TimestampSync(self.cameras, fps, offsets_ns=offsets or None, on_discard=discard)
            cams, ended = set(self.cameras), set()
            while not halt.is_set():
                msg = sub.recv(timeout_ms=50)
                now = time.monotonic_ns()
                if isinstance(msg, FrameMessage):
                    if msg.camera in cams:
                        self.stats.frames += 1
                        sets = sync.push(FrameRef(msg.camera, msg.seq, msg.t_ns, msg.truth), now)
                    else:
                        sets = []
                        self._ignore(msg.camera)
                else:
                    if isinstance(msg, Heartbeat) and msg.camera in cams and msg.status == "ended":
                        ended.add(msg.camera)
                    sets = sync.poll(now)
                finished = self.exit_at_end and ended == cams
                for fs in sets + (sync.flush() if finished else []):
                    put(fs)
                if finished:
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which raises it
            put(exc)
            return
        put(_END)

    def _ignore(self, camera: str) -> None:
        self.stats.ignored += 1
        if f"ignored:{camera}" not in self._warned:
            self._warned.add(f"ignored:{camera}")
            log.warning("frames from camera %r are ignored: it is not one of the synced cameras (%s)", camera,
                        ", ".join(self.cameras))

    def describe(self) -> str:
        """What the node does, for its first line."""
        where = ", ".join(dict.fromkeys(self.endpoints.values()))
        smooth = "one-euro filtered" if self.filter == "one-euro" else "unfiltered"
        from reconstruction.simulated_frame_detector import NAME

        return (f"recon node {self.name}: {len(self.cameras)} cameras of {self.rig.name} from {where} at "
                f"{self.fps:g} fps; 2D keypoints: {NAME} (simulated frames' truth; real frames have no "
                f"detector yet); publishing {smooth} {self.skeleton} poses on pose3d.{self.name} at {self.endpoint}")


def _checked_name(name: str, skeleton: str, joints: int) -> str:
    """The node name, if the protocol takes it in a pose3d message (it goes into the topic)."""
    from capture.protocol import Pose3DMessage, ProtocolError

    try:
        return Pose3DMessage(name, 0, 0, skeleton, np.zeros((0, joints, 4)), np.zeros(0)).node
    except ProtocolError as exc:
        raise ReconNodeError(f"node name {name!r}: {exc.detail}") from None


# -- the command line -----------------------------------------------------------------------------------------

def add_recon_node_parser(kinds: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``recon`` to the ``node`` sub-verbs (what ``capture.camera_node.add_node_parser`` returns); it sets
    ``node_run=run_recon_node``."""
    p = kinds.add_parser(
        "recon", help="reconstruct 3D people live from camera nodes (or a replay); publish pose3d messages",
        description="Subscribe to the rig's camera nodes (or a mocap replay), sync their frames into FrameSets, "
                    "detect 2D keypoints (the SIMULATED detector on simulated frames; real frames have no "
                    "detector yet), associate, triangulate and track as `mocap reconstruct` does, and publish "
                    "each FrameSet's confirmed people as a pose3d message. Stops cleanly on SIGINT/SIGTERM.")
    p.add_argument("--rig", required=True, help="rig file or preset; for a replay, the session's session.toml")
    p.add_argument("--connect", nargs="+", action="extend", metavar="ENDPOINT",
                   help="where to subscribe: CAMERA=ENDPOINT or ENDPOINT (cameras learned from the topics, e.g. "
                        "a mocap replay); default each camera's endpoint in the rig, else tcp://127.0.0.1:<5550 + "
                        "camera index>")
    p.add_argument("--pub", metavar="ENDPOINT", default=DEFAULT_PUB,
                   help=f"ZeroMQ endpoint to publish pose3d messages on (default {DEFAULT_PUB})")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"node name: the topic is pose3d.<name> (default "
                                                        f"{DEFAULT_NAME})")
    p.add_argument("--skeleton", default="body25", help="layout the simulated detector reports (default body25)")
    p.add_argument("--fps", type=float, help="frame rate (default the rig's cameras', else 30)")
    p.add_argument("--filter", choices=LIVE_FILTERS, default="none",
                   help="none (default: the per-frame poses, as `mocap reconstruct --filter none`) or one-euro")
    add_reconstruction_options(p)
    p.add_argument("--exit-at-end", action="store_true",
                   help="exit once every camera has sent an 'ended' heartbeat (the end of a replay)")
    p.set_defaults(node_run=run_recon_node)
    return p


def add_reconstruction_options(p: argparse.ArgumentParser) -> None:
    """The reconstruction's options, shared by ``mocap node recon`` and ``mocap reconstruct`` (so that both
    run with the same settings): --threshold-px, --association-px, --no-bone-check."""
    p.add_argument("--threshold-px", type=float, default=15.0,
                   help="a view within this reprojection error (px) of a joint is an inlier (default 15)")
    p.add_argument("--association-px", type=float, default=25.0,
                   help="how far (px) a view may lie from the others' epipolar lines and still be the same "
                        "person (default 25; raise it for a calibration that reprojects worse)")
    p.add_argument("--no-bone-check", action="store_true",
                   help="keep joints on bones whose length is far from the track's usual length")


def reconstruction_params(args: argparse.Namespace) -> ReconstructionParams:
    """``ReconstructionParams`` from the options of ``add_reconstruction_options``; bad values raise
    ReconNodeError naming the option."""
    from reconstruction.pipeline import ReconstructionParams

    for flag, value in (("--threshold-px", args.threshold_px), ("--association-px", args.association_px)):
        if not (np.isfinite(value) and value > 0):
            raise ReconNodeError(f"{flag} {value:g}: expected a positive number of pixels")
    return ReconstructionParams(threshold_px=args.threshold_px, association_px=args.association_px,
                                **({"bone_tolerance": None} if args.no_bone_check else {}))


def _endpoints(rig: Rig, connect: Sequence[str] | None) -> tuple[dict[str, str], tuple[str, ...], bool]:
    """(label -> endpoint, cameras synced, learn cameras from topics) from --connect or the rig."""
    from capture.camera_node import default_endpoint

    if not connect:
        return {c.name: default_endpoint(c, i) for i, c in enumerate(rig)}, rig.names, False
    from capture.record_command import parse_connect

    parsed = parse_connect(connect, rig.names)
    if parsed.plain:
        return parsed.endpoints, rig.names, True
    return parsed.endpoints, tuple(c for c in rig.names if c in parsed.named), False


def run_recon_node(args: argparse.Namespace) -> int:
    """``mocap node recon``: load the rig, subscribe, publish until SIGINT/SIGTERM (or the end); exit code 0."""
    from capture.curve_keys import load_keys
    from rigs.formats import load_rig

    if args.fps is not None and not (np.isfinite(args.fps) and args.fps > 0):
        raise ReconNodeError(f"--fps {args.fps:g}: expected a positive frame rate")
    rig = load_rig(args.rig)
    endpoints, cameras, everything = _endpoints(rig, args.connect)
    params = reconstruction_params(args)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format=f"mocap node recon {args.name}: %(levelname)s: %(message)s")
    node = ReconNode(rig, endpoints, cameras=cameras, everything=everything, pub_endpoint=args.pub, name=args.name,
                     skeleton=args.skeleton, fps=args.fps, filter=args.filter, params=params,
                     curve=load_keys(args.rig, client="recon"), exit_at_end=args.exit_at_end,
                     announce=lambda line: print(line, flush=True))
    from capture.stop_signals import StopOnSignals  # SIGINT/SIGTERM set stop once; a second one is not caught

    stop = threading.Event()
    with StopOnSignals(stop):
        stats = node.run(stop)
    print(f"recon node {node.name}: {'stopped' if stop.is_set() else 'done'}: {stats.line()}", flush=True)
    return 0
