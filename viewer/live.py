"""The live view of a reconstruction node: receiving its ``pose3d`` messages, and what the viewer shows of them.

``LiveState`` is fed every received multipart message (``feed``) and keeps

- the latest poses per node (``latest``: a ``NodePoses`` per node name);
- the receive rate: pose3d messages per second over the last ``WINDOW_S`` (2 s) (before 2 s have passed since
  the first message, over the time since it);
- the latency of each message: this host's ``time.monotonic_ns()`` when it was received minus the header's
  ``sent_ns`` when there is one (the reconstruction node stamps it with its ``time.monotonic_ns()`` as it
  publishes, so this is the wire and queueing delay), else minus ``t_ns`` (the frames' capture time, so
  capture-to-view). ``latency_source`` says which was used. Both clocks must agree: one host (monotonic
  clocks), or hosts synchronised by PTP/NTP whose nodes stamp ``time.time_ns()`` (pass ``clock=time.time_ns``).
  ``age`` (receive time minus ``t_ns``) is reported too: how old the poses are when shown;
- rejected messages, by reason (``capture.protocol.decode`` refuses malformed ones; a bad message is counted
  and skipped, never raised), and messages of other kinds (frames, heartbeats) counted as ignored;
- the connection state: ``"waiting for node"`` before the first message and after ``STALE_S`` (2 s) without
  one, ``"live"`` while messages arrive (``reconnections`` counts the returns to live).

``LiveSubscriber`` owns a ZeroMQ SUB socket connected to the node's endpoint and subscribed to ``b"pose3d."``;
``poll`` waits up to a timeout and feeds everything queued into a LiveState. ZeroMQ reconnects by itself when
the node goes away and comes back (on the same endpoint), so the subscriber needs no restart.

``run_live_window`` shows the latest poses of every node in an Open3D window (needs a display);
``print_live_status`` prints the rate and latency once a second where there is none; ``scene_from_message``
turns one message into a one-frame ``SessionScene`` for ``viewer.render`` (``mocap view --connect --snapshot``).
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zmq

from capture.protocol import DEFAULT_HWM, Pose3DMessage, ProtocolError, configure_socket, decode
from rigs.camera import Rig
from rigs.poses3d_file import Poses3D
from rigs.skeletons import SkeletonError, get_skeleton
from viewer.scene import SessionScene, ViewerError, bones_of

WINDOW_S = 2.0  # receive rate and latency over this many seconds
STALE_S = 2.0  # "waiting for node" after this long without a message
WAITING, LIVE = "waiting for node", "live"
TOPIC = b"pose3d."


@dataclass(frozen=True, eq=False)
class NodePoses:
    """The latest message of one node: its poses [P, J, 4], track ids [P], and when and how late it came."""

    node: str
    seq: int
    t_ns: int
    skeleton: str
    poses: np.ndarray
    track_ids: np.ndarray
    received_ns: int
    latency_ns: int
    age_ns: int


class LiveState:
    """What the live viewer knows: latest poses per node, receive rate, latency, rejections, connection state."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns, window_s: float = WINDOW_S,
                 stale_s: float = STALE_S) -> None:
        self.clock = clock
        self.window_ns = int(window_s * 1e9)
        self.stale_ns = int(stale_s * 1e9)
        self.latest: dict[str, NodePoses] = {}
        self.rejected: Counter[str] = Counter()  # reason -> count
        self.ignored = 0  # valid messages that are not pose3d
        self.received = 0  # pose3d messages accepted
        self.seq_gaps = 0  # pose3d messages missed, from jumps in each node's seq
        self.reconnections = 0  # returns to "live" after "waiting for node"
        self.latency_source = ""  # "sent_ns" or "t_ns": what the last latency was measured from
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._recent: deque[tuple[int, int, int]] = deque()  # (received_ns, latency_ns, age_ns)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def feed(self, parts: list[bytes], now_ns: int | None = None) -> Pose3DMessage | None:
        """Take one received multipart message; the Pose3DMessage when it is a valid one, else None (counted)."""
        now = self.clock() if now_ns is None else int(now_ns)
        try:
            msg = decode(parts)
        except ProtocolError as exc:
            self.rejected[exc.reason] += 1
            return None
        except Exception:  # noqa: BLE001 - a decoder bug on hostile input must not stop the viewer
            self.rejected["internal_error"] += 1
            return None
        if not isinstance(msg, Pose3DMessage):
            self.ignored += 1
            return None
        if self._last_ns is not None and now - self._last_ns > self.stale_ns:
            self.reconnections += 1
        previous = self.latest.get(msg.node)
        if previous is not None and msg.seq > previous.seq + 1:
            self.seq_gaps += msg.seq - previous.seq - 1
        self.latency_source = "sent_ns" if msg.sent_ns is not None else "t_ns"
        latency = now - (msg.sent_ns if msg.sent_ns is not None else msg.t_ns)
        age = now - msg.t_ns
        self.latest[msg.node] = NodePoses(msg.node, msg.seq, msg.t_ns, msg.skeleton, msg.poses, msg.track_ids,
                                          now, latency, age)
        self.received += 1
        self._first_ns = now if self._first_ns is None else self._first_ns
        self._last_ns = now
        self._recent.append((now, latency, age))
        self._prune(now)
        return msg

    def _prune(self, now: int) -> None:
        while self._recent and self._recent[0][0] <= now - self.window_ns:
            self._recent.popleft()

    def rate(self, now_ns: int | None = None) -> float:
        """pose3d messages per second over the last window (0 when none arrived in it)."""
        now = self.clock() if now_ns is None else int(now_ns)
        self._prune(now)
        n = len(self._recent)
        if n == 0 or self._first_ns is None:
            return 0.0
        if now - self._first_ns >= self.window_ns:
            return n / (self.window_ns / 1e9)
        span = self._recent[-1][0] - self._recent[0][0]  # the window is not full yet: between the arrivals
        return (n - 1) / (span / 1e9) if n > 1 and span > 0 else 0.0

    def latency_ms(self, now_ns: int | None = None) -> float | None:
        """Median latency (ms) over the last window, None when nothing arrived in it."""
        return self._median(1, now_ns)

    def age_ms(self, now_ns: int | None = None) -> float | None:
        """Median age of the poses when received (ms, receive time minus capture time) over the last window."""
        return self._median(2, now_ns)

    def _median(self, column: int, now_ns: int | None) -> float | None:
        now = self.clock() if now_ns is None else int(now_ns)
        self._prune(now)
        if not self._recent:
            return None
        return float(np.median([r[column] for r in self._recent])) / 1e6

    def connection(self, now_ns: int | None = None) -> str:
        """``"live"`` while messages arrive, ``"waiting for node"`` before the first and after STALE_S without one."""
        now = self.clock() if now_ns is None else int(now_ns)
        return LIVE if self._last_ns is not None and now - self._last_ns <= self.stale_ns else WAITING

    def people(self) -> int:
        """People in the latest message of every node together."""
        return sum(int((p.track_ids >= 0).sum()) for p in self.latest.values())

    def summary(self, now_ns: int | None = None) -> str:
        """One status line: state, rate, latency, age, people, rejected."""
        now = self.clock() if now_ns is None else int(now_ns)
        lat, age = self.latency_ms(now), self.age_ms(now)
        parts = [f"{self.connection(now):<16}", f"{self.rate(now):6.1f} msg/s",
                 f"latency {lat:7.1f} ms ({self.latency_source})" if lat is not None else "latency      -",
                 f"age {age:7.1f} ms" if age is not None else "age      -",
                 f"{self.people()} people", f"rejected {self.rejected_total}"]
        if self.seq_gaps:
            parts.append(f"missed {self.seq_gaps}")
        return "  ".join(parts)


class LiveSubscriber:
    """A SUB socket on a reconstruction node's publisher, feeding a LiveState; ``poll`` receives."""

    def __init__(self, endpoint: str, state: LiveState | None = None, *, context: zmq.Context | None = None,
                 curve=None, hwm: int = DEFAULT_HWM) -> None:
        self.endpoint = endpoint
        self.state = state if state is not None else LiveState()
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self.sock = self._ctx.socket(zmq.SUB)
        try:
            configure_socket(self.sock, hwm=hwm)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.RECONNECT_IVL, 100)  # ms: back quickly when the node returns
            self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            if curve is not None:
                from capture.curve_keys import secure_client

                secure_client(self.sock, curve)
            self.sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
            self.sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise ViewerError(f"cannot connect to {endpoint!r} ({exc}); give an endpoint like "
                              "tcp://127.0.0.1:5570 (where `mocap node recon --pub` publishes)") from None

    def poll(self, timeout_ms: int = 100, max_messages: int = 10_000) -> int:
        """Wait up to ``timeout_ms`` for a message, then feed everything queued (up to ``max_messages``) to the
        state; returns how many messages were taken (rejected ones included)."""
        n = 0
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return 0
        while n < max_messages:
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.state.feed(parts)
            n += 1
        return n

    def wait_for_pose(self, timeout_s: float | None, poll_ms: int = 100) -> NodePoses | None:
        """Poll until a valid pose3d message has arrived (the newest one), or None after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        received = self.state.received
        while deadline is None or time.monotonic() < deadline:
            self.poll(poll_ms)
            if self.state.received > received:
                return max(self.state.latest.values(), key=lambda p: p.received_ns)
        return None

    def close(self) -> None:
        """Close the socket (and the context when this subscriber made it)."""
        if not self.sock.closed:
            self.sock.close(linger=0)
        if self._own_context:
            self._ctx.term()

    def __enter__(self) -> LiveSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- showing it ---------------------------------------------------------------------------------------------------

def _joint_names(skeleton: str, joints: int) -> tuple[str, ...]:
    try:
        sk = get_skeleton(skeleton)
    except SkeletonError:
        sk = None
    if sk is not None and sk.num_joints == joints:
        return sk.joints
    return tuple(f"joint_{j}" for j in range(joints))


def scene_from_poses(nodes: list[NodePoses], rig: Rig | None = None) -> SessionScene:
    """A one-frame SessionScene of the latest poses of ``nodes`` (one skeleton layout: the first node's)."""
    if not nodes:
        raise ViewerError("no pose3d message received yet")
    first = nodes[0]
    same = [n for n in nodes if n.skeleton == first.skeleton and n.poses.shape[1] == first.poses.shape[1]]
    poses = np.concatenate([n.poses for n in same])[None]
    ids = np.concatenate([n.track_ids for n in same])[None]
    names = _joint_names(first.skeleton, first.poses.shape[1])
    data = Poses3D(poses, ids, np.array([first.t_ns]), 30.0, first.skeleton, names)
    return SessionScene(data, bones_of(first.skeleton, names), rig, folder=None)


def scene_from_message(msg: Pose3DMessage, rig: Rig | None = None) -> SessionScene:
    """A one-frame SessionScene of one pose3d message."""
    now = time.monotonic_ns()
    node = NodePoses(msg.node, msg.seq, msg.t_ns, msg.skeleton, msg.poses, msg.track_ids, now, 0, now - msg.t_ns)
    return scene_from_poses([node], rig)


def print_live_status(subscriber: LiveSubscriber, duration_s: float | None = None, interval_s: float = 1.0,
                      out=sys.stdout) -> int:
    """Print the state, receive rate and latency every ``interval_s`` for ``duration_s`` (None: until Ctrl-C)."""
    start = time.monotonic()
    next_print = start + interval_s
    try:
        while duration_s is None or time.monotonic() - start < duration_s:
            subscriber.poll(max(1, int(1000 * min(0.1, max(0.0, next_print - time.monotonic())))))
            if time.monotonic() >= next_print:
                print(f"{subscriber.endpoint}  {subscriber.state.summary()}", file=out, flush=True)
                next_print += interval_s
    except KeyboardInterrupt:
        pass
    return 0


def run_live_window(endpoint: str, rig: Rig | None = None, curve=None, say=print) -> int:
    """Show a node's pose3d stream in an Open3D window (needs a display; ViewerError otherwise); Q closes it."""
    from viewer.playback import KEY_Q, NO_DISPLAY, WindowGeometry, has_display, set_initial_view

    if not has_display():
        raise ViewerError(NO_DISPLAY.replace("--video out.mp4", "--connect ENDPOINT without a window prints "
                                                                "the receive rate and latency"))
    import open3d as o3d

    with LiveSubscriber(endpoint, curve=curve) as sub:
        vis = o3d.visualization.VisualizerWithKeyCallback()
        if not vis.create_window(window_name=f"mocap view --connect {endpoint}  (Q quits)", width=1280, height=720):
            raise ViewerError("could not open a window on this display; use --snapshot out.png instead")
        vis.get_render_option().background_color = np.asarray((0.11, 0.12, 0.14))
        vis.get_render_option().line_width = 3.0
        empty = NodePoses("-", 0, 0, "body25", np.zeros((0, 25, 4), np.float32), np.zeros(0, np.int32), 0, 0, 0)
        window = WindowGeometry(scene_from_poses([empty], rig))
        for g in window.static:
            vis.add_geometry(g)
        for g in window.dynamic():
            vis.add_geometry(g, reset_bounding_box=False)
        set_initial_view(vis, window.scene)
        running = [True]

        def quit_(v) -> bool:
            running[0] = False
            return False

        vis.register_key_callback(KEY_Q, quit_)
        last_print = 0.0
        while running[0]:
            sub.poll(10)
            state = sub.state
            header = state.summary()
            if state.latest:
                scene = scene_from_poses(list(state.latest.values()), rig)
                window.scene = scene
                for g in window.update(scene.frame(0), header):
                    vis.add_geometry(g, reset_bounding_box=False)
                for g in window.dynamic():
                    vis.update_geometry(g)
            if time.monotonic() - last_print >= 1.0:
                say(f"{endpoint}  {header}")
                last_print = time.monotonic()
            if not vis.poll_events():
                break
            vis.update_renderer()
        vis.destroy_window()
    return 0
