"""The receive side of the wire: one SUB socket on every camera node of a rig, yielding validated messages.

    sub = FrameSubscriber({"cam0": "tcp://127.0.0.1:5550", "cam1": "tcp://127.0.0.1:5551"})
    while running:
        msg = sub.recv(timeout_ms=100)      # FrameMessage | Heartbeat | None
        ...
    sub.close()

Subscriptions are ``frame.<camera>`` and ``heartbeat.<camera>`` for each camera named (default: the endpoint
mapping's keys), or every ``frame.`` and ``heartbeat.`` topic with ``everything=True`` (cameras are then learned
from the topics). Topics are prefixes, so ``frame.cam1`` also brings ``frame.cam10``: the caller filters on
``msg.camera``. Connecting before the nodes bind is fine: ZeroMQ keeps reconnecting until they are there.

The socket never drops frames while the caller keeps up: ``configure_socket`` caps inbound parts at the
protocol's size (``MAXMSGSIZE``) and the receive high-water mark is sized for ``buffer_s`` seconds of every
camera at ``fps`` (per connection; ZeroMQ silently drops whole messages past it, so receivers count seq gaps).
Malformed or oversized messages are counted in ``rejects`` (a ``RejectCounter``) and skipped: ``recv`` never
raises on bad input.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import zmq

from capture.protocol import (
    DEFAULT_HWM,
    MAX_PAYLOAD_BYTES,
    FrameMessage,
    Heartbeat,
    Message,
    RejectCounter,
    configure_socket,
    receive,
)

__all__ = ["DEFAULT_BUFFER_S", "FrameSubscriber", "receive_hwm"]

DEFAULT_BUFFER_S = 10.0  # seconds of every camera the receive queue holds while the caller is busy


def receive_hwm(cameras: int, fps: float = 30.0, buffer_s: float = DEFAULT_BUFFER_S) -> int:
    """Messages one connection's receive queue must hold: ``buffer_s`` seconds of the ``cameras`` cameras that
    publish on that connection, at ``fps``, plus their heartbeats (never below the protocol's default).

    ZeroMQ applies the receive high-water mark to each connection, not to the socket: sizing it for every
    camera of the rig would let an overloaded subscriber queue seconds of all cameras on each connection and
    run out of memory (losing the session) before a frame is dropped; sized per connection, overload shows as
    counted seq gaps with memory bounded."""
    per_second = max(1, cameras) * (max(1.0, float(fps)) + 1.0)
    return max(DEFAULT_HWM, math.ceil(per_second * buffer_s))


class FrameSubscriber:
    """One SUB socket connected to every endpoint; ``recv`` returns the next valid FrameMessage or Heartbeat.

    ``endpoints``: label -> endpoint (the label is usually the camera's name; endpoints shared by several
    labels are connected once). ``cameras``: the cameras whose topics are subscribed (default the labels).
    ``everything``: subscribe to every camera's frames and heartbeats instead. ``fps`` and ``buffer_s`` size the
    receive high-water mark (``hwm`` overrides it). ``context``: a ZeroMQ context to use (default a new one,
    terminated by ``close``). ``curve``: the rig's CURVE keys (``capture.curve_keys.load_keys``) when its nodes
    require CURVE; this host's client keypair then authenticates the subscriber.

    Counts: ``frames`` and ``heartbeats`` per camera (every valid message received, any camera), ``rejects``
    (the RejectCounter of malformed messages), ``other`` (valid messages of other kinds, e.g. pose3d).
    ``last_heartbeat`` holds each camera's latest Heartbeat.
    """

    def __init__(self, endpoints: Mapping[str, str], *, cameras: Iterable[str] | None = None,
                 everything: bool = False, context: zmq.Context | None = None,
                 max_payload: int = MAX_PAYLOAD_BYTES, fps: float = 30.0, buffer_s: float = DEFAULT_BUFFER_S,
                 hwm: int | None = None, curve=None, name: str = "subscriber"):
        self.endpoints = dict(endpoints)
        if not self.endpoints:
            raise ValueError("subscriber: no endpoint to connect to")
        for label, endpoint in self.endpoints.items():
            if not isinstance(endpoint, str) or "://" not in endpoint:
                raise ValueError(f"subscriber: {label}: {endpoint!r} is not a ZeroMQ endpoint "
                                 f"(e.g. tcp://127.0.0.1:5550)")
        self.cameras = tuple(dict.fromkeys(self.endpoints if cameras is None else cameras))
        self.everything = bool(everything)
        if not self.everything and not self.cameras:
            raise ValueError("subscriber: no camera to subscribe to (name some, or everything=True)")
        self.max_payload = int(max_payload)
        per_connection = Counter(self.endpoints.values())  # cameras publishing on each connected endpoint
        self.hwm = int(hwm) if hwm is not None else receive_hwm(max(per_connection.values()), fps, buffer_s)
        self.rejects = RejectCounter(name)
        self.frames: Counter[str] = Counter()
        self.heartbeats: Counter[str] = Counter()
        self.last_heartbeat: dict[str, Heartbeat] = {}
        self.other = 0
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._sock = self._context.socket(zmq.SUB)
        try:
            configure_socket(self._sock, self.max_payload, self.hwm)
            self._sock.setsockopt(zmq.LINGER, 0)
            if curve is not None:
                from capture.curve_keys import secure_client

                secure_client(self._sock, curve)
            if self.everything:
                topics = [b"frame.", b"heartbeat."]
            else:
                topics = [kind + c.encode("utf-8") for c in self.cameras for kind in (b"frame.", b"heartbeat.")]
            for topic in topics:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic)
            for endpoint in dict.fromkeys(self.endpoints.values()):
                try:
                    self._sock.connect(endpoint)
                except zmq.ZMQError as exc:
                    raise ValueError(f"subscriber: cannot connect to {endpoint}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def recv(self, timeout_ms: int | None = 100) -> Message | None:
        """The next valid message (FrameMessage or Heartbeat), or None after ``timeout_ms`` or a rejected one."""
        msg = receive(self._sock, self.rejects, timeout_ms, self.max_payload)
        if isinstance(msg, FrameMessage):
            self.frames[msg.camera] += 1
        elif isinstance(msg, Heartbeat):
            self.heartbeats[msg.camera] += 1
            self.last_heartbeat[msg.camera] = msg
        elif msg is not None:
            self.other += 1
        return msg

    @property
    def socket(self) -> zmq.Socket:
        return self._sock

    def close(self) -> None:
        """Close the socket (and the context when it is the subscriber's own). Safe to call twice."""
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._own_context and not self._context.closed:
            self._context.term()

    def __enter__(self) -> FrameSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
