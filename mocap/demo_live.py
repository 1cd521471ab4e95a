"""What the demo sees of the live reconstruction: every ``pose3d`` message of the reconstruction node, with when
it arrived, collected by a background thread; then its latency and its poses as a ``Poses3D`` to score.

Latency is measured end to end on the rig's clock (this host's ``CLOCK_MONOTONIC`` for the simulated studios):
arrival here minus the message's ``t_ns``, the capture time of the FrameSet it was reconstructed from; so it
holds rendering and JPEG encoding in the camera nodes, transport, sync, detection, reconstruction and the hop
to this process. ``sent_ns`` (when the node published) splits it into the node's part and the last hop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import zmq

from capture.protocol import Pose3DMessage, RejectCounter, configure_socket, receive
from rigs.poses3d_file import Poses3D
from rigs.skeletons import get_skeleton

CLOCKS: dict[str, Callable[[], int]] = {"monotonic": time.monotonic_ns, "ptp": time.time_ns, "ntp": time.time_ns}


@dataclass
class LiveLatency:
    """Latency of the messages counted (ms): capture -> here (median, 95th percentile), capture -> node's send."""

    messages: int
    median_ms: float
    p95_ms: float
    node_median_ms: float  # capture -> the node published it (``sent_ns``)


@dataclass
class PoseListener:
    """Subscribes to ``pose3d.<node>`` on ``endpoint`` in a thread; ``messages`` and ``received_ns`` grow as
    messages arrive (``received_ns`` on ``clock``, the rig's). Start with ``start()``, end with ``stop()``."""

    endpoint: str
    node: str
    clock: Callable[[], int] = time.monotonic_ns
    messages: list[Pose3DMessage] = field(default_factory=list)
    received_ns: list[int] = field(default_factory=list)
    rejects: RejectCounter = field(default_factory=lambda: RejectCounter("mocap demo (pose3d)"))

    def __post_init__(self) -> None:
        self._halt = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-pose3d", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> PoseListener:
        """Connect and start receiving (returns once the socket is connected)."""
        self._thread.start()
        self._connected.wait(5.0)
        return self

    def stop(self) -> None:
        """Stop receiving; raises what failed in the thread, if anything did."""
        self._halt.set()
        self._thread.join(5.0)
        if self._error is not None:
            raise self._error

    def latest_latency_ms(self) -> float | None:
        """Latency of the last message received (ms), None before the first."""
        if not self.messages:
            return None
        return (self.received_ns[-1] - self.messages[-1].t_ns) / 1e6

    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB)
        try:
            configure_socket(sock)
            sock.setsockopt(zmq.SUBSCRIBE, f"pose3d.{self.node}".encode())
            sock.connect(self.endpoint)
            self._connected.set()
            while not self._halt.is_set():
                msg = receive(sock, self.rejects, timeout_ms=50)
                if isinstance(msg, Pose3DMessage) and msg.node == self.node:
                    self.received_ns.append(self.clock())
                    self.messages.append(msg)
        except BaseException as exc:  # noqa: BLE001 - handed to stop(), which raises it in the demo's thread
            self._error = exc
        finally:
            self._connected.set()
            sock.close(linger=0)
            ctx.term()


def in_window(listener: PoseListener, t_from_ns: int | None, t_to_ns: int | None
              ) -> tuple[list[Pose3DMessage], list[int]]:
    """The messages captured in [t_from_ns, t_to_ns) (None: open-ended) and when each arrived."""
    pairs = [(m, r) for m, r in zip(listener.messages, listener.received_ns, strict=True)
             if (t_from_ns is None or m.t_ns >= t_from_ns) and (t_to_ns is None or m.t_ns < t_to_ns)]
    return [m for m, _ in pairs], [r for _, r in pairs]


def latency(messages: list[Pose3DMessage], received_ns: list[int]) -> LiveLatency:
    """Latency of these messages: arrival minus capture time, and the node's send minus capture time."""
    if not messages:
        return LiveLatency(0, float("nan"), float("nan"), float("nan"))
    t = np.array([m.t_ns for m in messages], np.int64)
    sent = np.array([m.sent_ns if m.sent_ns is not None else -1 for m in messages], np.int64)
    total = (np.array(received_ns, np.int64) - t) / 1e6
    node = (sent - t)[sent >= 0] / 1e6
    return LiveLatency(len(t), float(np.median(total)), float(np.percentile(total, 95)),
                       float(np.median(node)) if node.size else float("nan"))


def live_poses3d(messages: list[Pose3DMessage], fps: float) -> Poses3D | None:
    """The messages as one sequence [T, P, J, 4] (P: the most people in one message), None when there is none."""
    if not messages:
        return None
    skeleton = get_skeleton(messages[0].skeleton)
    people = max(1, max(len(m.track_ids) for m in messages))
    poses = np.full((len(messages), people, skeleton.num_joints, 4), np.nan, np.float32)
    poses[..., 3] = 0.0
    ids = np.full((len(messages), people), -1, np.int32)
    for i, m in enumerate(messages):
        poses[i, : len(m.track_ids)] = m.poses
        ids[i, : len(m.track_ids)] = m.track_ids
    return Poses3D(poses, ids, np.array([m.t_ns for m in messages], np.int64), fps, skeleton.name, skeleton.joints)
