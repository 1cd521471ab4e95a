"""The wire: every ZeroMQ message mocap nodes exchange, how it is encoded, validated and received.

A message is three frames ``[topic, header, payload]``:

=========  ===========================  ==========================================================
message    topic                        payload
=========  ===========================  ==========================================================
frame      ``b"frame." + camera``       the image: JPEG bytes, or raw rows (``bgr8`` H*W*3, ``gray8`` H*W)
heartbeat  ``b"heartbeat." + camera``   empty
pose3d     ``b"pose3d." + node``        poses ``<f4 [P, J, 4]`` (x, y, z, score) C order, then track ids ``<i4 [P]``
=========  ===========================  ==========================================================

The header is a msgpack map (string keys) holding, for every type, ``v`` (protocol version, 1), ``type``
(the topic's kind), ``length`` (payload bytes) and optional ``sent_ns`` (sender's clock when sent); then

- frame: ``camera``, ``seq`` (>= 0), ``t_ns`` (int64 capture time on the rig's clock), ``width``, ``height``
  (1..16384), ``format`` (``jpeg`` | ``bgr8`` | ``gray8``), optional ``truth`` (a map: the simulation's ground
  truth, from simulated cameras only; bounded by the header cap);
- heartbeat: ``camera``, ``seq`` (the last frame's, -1 before the first), ``t_ns``, ``fps`` (measured),
  ``status`` (short text);
- pose3d: ``node``, ``seq``, ``t_ns``, ``skeleton`` (its name), ``people`` P, ``joints`` J, ``dtype`` (``float32``).

``decode`` rejects anything else with ``ProtocolError(reason, detail)``: unknown or missing fields, wrong types
(bools are not ints), out-of-range values, unknown versions, inconsistent sizes, headers over
``MAX_HEADER_BYTES`` and payloads over the receiver's cap. Reasons: bad_parts, bad_topic, topic_mismatch,
header_too_large, payload_too_large, bad_header, bad_version, missing_field, unknown_field, bad_field,
length_mismatch, raw_size, not_jpeg, jpeg_size, pose_size, bad_truth (and internal_error, counted by ``receive``).
``configure_socket`` also sets that cap as ZeroMQ's ``MAXMSGSIZE``, so ZeroMQ drops bigger messages (and the
offending connection) before they are read.
``receive`` decodes one message and counts rejections in a ``RejectCounter``: a bad message never stops a node.
Subscriptions are topic prefixes: ``b"frame.cam1"`` also matches ``frame.cam10``, so filter on ``msg.camera``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import msgpack
import numpy as np
import zmq

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024  # a raw 4K bgr8 frame is 24 MiB
MAX_TOPIC_BYTES = 256
MAX_NAME_BYTES = 128
MAX_SIDE = 16384
MAX_STATUS_CHARS = 256
MAX_PEOPLE = 1024
MAX_JOINTS = 1024
MAX_TRUTH_DEPTH = 16
DEFAULT_HWM = 300  # messages per connection: 10 s of one camera at 30 fps
FORMATS = {"jpeg": 3, "bgr8": 3, "gray8": 1}  # channels of the decoded image
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FRAME, HEARTBEAT, POSE3D = "frame", "heartbeat", "pose3d"

_log = logging.getLogger(__name__)
_UNPACK_LIMITS = dict(max_bin_len=MAX_HEADER_BYTES, max_str_len=MAX_HEADER_BYTES, max_array_len=16384,
                      max_map_len=1024, max_ext_len=0)


class ProtocolError(ValueError):
    """A message that breaks the wire protocol: ``reason`` is a short code to count by, ``detail`` says what."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)  # both in args, so it pickles across processes
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


# -- field rules, shared by the constructors (sending) and decode (receiving) --------------------------------

def _short(value: Any, limit: int = 60) -> str:
    """repr of a (possibly hostile) value, cut short for messages and logs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int(field: str, value: Any, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ProtocolError("bad_field", f"{field}: expected an integer, got {type(value).__name__} {_short(value)}")
    if not lo <= int(value) <= hi:
        raise ProtocolError("bad_field", f"{field}: {int(value)} is outside {lo}..{hi}")
    return int(value)


def _float(field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ProtocolError("bad_field", f"{field}: expected a number, got {type(value).__name__} {_short(value)}")
    if not (math.isfinite(float(value)) and lo <= float(value) <= hi):
        raise ProtocolError("bad_field", f"{field}: {float(value)} is outside {lo}..{hi}")
    return float(value)


def _text(field: str, value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"{field}: expected a string, got {type(value).__name__} {_short(value)}")
    if len(value) > max_chars or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ProtocolError("bad_field", f"{field}: over {max_chars} characters or has control characters")
    return value


def _name(field: str, value: Any) -> str:
    """A camera or node name: non-empty, printable, at most MAX_NAME_BYTES in UTF-8 (it goes into the topic)."""
    name = _text(field, value, MAX_NAME_BYTES)
    if not name.strip() or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ProtocolError("bad_field", f"{field}: {_short(name)} is blank or over {MAX_NAME_BYTES} bytes")
    return name


def _optional_ns(field: str, value: Any) -> int | None:
    return None if value is None else _int(field, value)


def _bytes(field: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProtocolError("bad_field", f"{field}: expected bytes, got {type(value).__name__}")
    return value if isinstance(value, bytes) else bytes(value)


def _check_truth(truth: Any) -> None:
    """Truth is a map of plain msgpack values (no arrays, no ext types), nested at most MAX_TRUTH_DEPTH deep."""
    if not isinstance(truth, dict):
        raise ProtocolError("bad_truth", f"truth: expected a map, got {type(truth).__name__}")
    stack = [(truth, 1)]  # iterative: hostile nesting must not hit Python's recursion limit
    while stack:
        value, depth = stack.pop()
        if depth > MAX_TRUTH_DEPTH:
            raise ProtocolError("bad_truth", f"truth: nested deeper than {MAX_TRUTH_DEPTH}")
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise ProtocolError("bad_truth", "truth: map keys must be strings")
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
        elif value is not None and type(value) not in (bool, int, float, str, bytes):
            raise ProtocolError("bad_truth", f"truth: {type(value).__name__} is not a msgpack value (use .tolist())")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF segment, or None when the bytes are not a well-formed JPEG start."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    for _ in range(1024):  # bounded: a hostile payload of tiny segments must not cost seconds
        if i + 4 > n:
            return None
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        seg_len = int.from_bytes(data[i + 2 : i + 4], "big")
        if seg_len < 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        i += 2 + seg_len
    return None


def _pack(header: dict) -> bytes:
    raw = msgpack.packb(header, use_bin_type=True)
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError("header_too_large", f"header is {len(raw)} bytes, the cap is {MAX_HEADER_BYTES}")
    return raw


def _with_sent(header: dict, sent_ns: int | None) -> dict:
    if sent_ns is not None:
        header["sent_ns"] = sent_ns
    return header


# -- the messages ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameMessage:
    """One camera image with its capture time and sequence number; the constructor enforces the protocol."""

    camera: str
    seq: int
    t_ns: int
    width: int
    height: int
    format: str
    payload: bytes
    truth: dict | None = None
    sent_ns: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "camera", _name("camera", self.camera))
        set_(self, "seq", _int("seq", self.seq, 0))
        set_(self, "t_ns", _int("t_ns", self.t_ns))
        set_(self, "width", _int("width", self.width, 1, MAX_SIDE))
        set_(self, "height", _int("height", self.height, 1, MAX_SIDE))
        if not isinstance(self.format, str) or self.format not in FORMATS:
            raise ProtocolError("bad_field", f"format: {_short(self.format)} is not one of {', '.join(FORMATS)}")
        set_(self, "payload", _bytes("payload", self.payload))
        set_(self, "sent_ns", _optional_ns("sent_ns", self.sent_ns))
        if self.truth is not None:
            _check_truth(self.truth)
        if self.format == "jpeg":
            size = jpeg_size(self.payload)
            if size is None:
                raise ProtocolError("not_jpeg", f"format jpeg but the payload is no JPEG ({self.payload[:4].hex()}...)")
            if size != (self.width, self.height):
                raise ProtocolError("jpeg_size", f"JPEG is {size[0]}x{size[1]}, header says {self.width}x{self.height}")
        else:
            expected = self.width * self.height * FORMATS[self.format]
            if len(self.payload) != expected:
                raise ProtocolError("raw_size", f"{self.format} {self.width}x{self.height} needs {expected} bytes, "
                                                f"payload has {len(self.payload)}")

    @property
    def topic(self) -> bytes:
        return b"frame." + self.camera.encode("utf-8")

    def encode(self) -> list[bytes]:
        """The three wire frames [topic, header, payload]."""
        header = {"v": PROTOCOL_VERSION, "type": FRAME, "camera": self.camera, "seq": self.seq, "t_ns": self.t_ns,
                  "width": self.width, "height": self.height, "format": self.format, "length": len(self.payload)}
        if self.truth is not None:
            header["truth"] = self.truth
        return [self.topic, _pack(_with_sent(header, self.sent_ns)), self.payload]


@dataclass(frozen=True)
class Heartbeat:
    """A camera node's sign of life: the last frame's seq (-1 before the first), measured fps and a status."""

    camera: str
    seq: int
    t_ns: int
    fps: float
    status: str
    sent_ns: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "camera", _name("camera", self.camera))
        set_(self, "seq", _int("seq", self.seq, -1))
        set_(self, "t_ns", _int("t_ns", self.t_ns))
        set_(self, "fps", _float("fps", self.fps, 0.0, 1e6))
        set_(self, "status", _text("status", self.status, MAX_STATUS_CHARS))
        set_(self, "sent_ns", _optional_ns("sent_ns", self.sent_ns))

    @property
    def topic(self) -> bytes:
        return b"heartbeat." + self.camera.encode("utf-8")

    def encode(self) -> list[bytes]:
        """The three wire frames [topic, header, empty payload]."""
        header = {"v": PROTOCOL_VERSION, "type": HEARTBEAT, "camera": self.camera, "seq": self.seq,
                  "t_ns": self.t_ns, "fps": self.fps, "status": self.status, "length": 0}
        return [self.topic, _pack(_with_sent(header, self.sent_ns)), b""]


@dataclass(frozen=True, eq=False)
class Pose3DMessage:
    """One instant of reconstructed people: poses float32 [P, J, 4] (x, y, z, score) and track ids int32 [P]."""

    node: str
    seq: int
    t_ns: int
    skeleton: str
    poses: np.ndarray
    track_ids: np.ndarray
    sent_ns: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "node", _name("node", self.node))
        set_(self, "seq", _int("seq", self.seq, 0))
        set_(self, "t_ns", _int("t_ns", self.t_ns))
        set_(self, "skeleton", _name("skeleton", self.skeleton))
        set_(self, "sent_ns", _optional_ns("sent_ns", self.sent_ns))
        poses = np.array(self.poses, dtype="<f4")  # copies: freezing them must not freeze the caller's arrays
        ids = np.array(self.track_ids, dtype="<i4")
        if poses.ndim != 3 or poses.shape[-1] != 4 or not 1 <= poses.shape[1] <= MAX_JOINTS:
            raise ProtocolError("pose_size", f"poses: expected [P, J, 4] with 1 <= J <= {MAX_JOINTS}, "
                                             f"got {poses.shape}")
        if poses.shape[0] > MAX_PEOPLE or ids.shape != poses.shape[:1]:
            raise ProtocolError("pose_size", f"track_ids: expected [{poses.shape[0]}] (at most {MAX_PEOPLE} "
                                             f"people), got {ids.shape}")
        poses.setflags(write=False)
        ids.setflags(write=False)
        set_(self, "poses", poses)
        set_(self, "track_ids", ids)

    @property
    def topic(self) -> bytes:
        return b"pose3d." + self.node.encode("utf-8")

    def encode(self) -> list[bytes]:
        """The three wire frames [topic, header, poses bytes + track id bytes]."""
        payload = self.poses.tobytes() + self.track_ids.tobytes()
        people, joints = self.poses.shape[:2]
        header = {"v": PROTOCOL_VERSION, "type": POSE3D, "node": self.node, "seq": self.seq, "t_ns": self.t_ns,
                  "skeleton": self.skeleton, "people": people, "joints": joints, "dtype": "float32",
                  "length": len(payload)}
        return [self.topic, _pack(_with_sent(header, self.sent_ns)), payload]


Message = FrameMessage | Heartbeat | Pose3DMessage


# -- decoding -------------------------------------------------------------------------------------------------

def _frame(h: dict, payload: bytes) -> FrameMessage:
    return FrameMessage(h["camera"], h["seq"], h["t_ns"], h["width"], h["height"], h["format"], payload,
                        h.get("truth"), h.get("sent_ns"))


def _heartbeat(h: dict, payload: bytes) -> Heartbeat:
    return Heartbeat(h["camera"], h["seq"], h["t_ns"], h["fps"], h["status"], h.get("sent_ns"))


def _pose3d(h: dict, payload: bytes) -> Pose3DMessage:
    people = _int("people", h["people"], 0, MAX_PEOPLE)
    joints = _int("joints", h["joints"], 1, MAX_JOINTS)
    if h["dtype"] != "float32":
        raise ProtocolError("bad_field", f"dtype: {_short(h['dtype'])} is not 'float32'")
    n_pose = people * joints * 4 * 4
    if len(payload) != n_pose + people * 4:
        raise ProtocolError("pose_size", f"{people} people x {joints} joints need {n_pose + people * 4} bytes, "
                                         f"payload has {len(payload)}")
    poses = np.frombuffer(payload, "<f4", count=people * joints * 4).reshape(people, joints, 4)
    ids = np.frombuffer(payload, "<i4", count=people, offset=n_pose)
    return Pose3DMessage(h["node"], h["seq"], h["t_ns"], h["skeleton"], poses, ids, h.get("sent_ns"))


# kind -> (name field, required fields, optional fields, builder)
_SCHEMAS: dict[str, tuple[str, frozenset, frozenset, Callable[[dict, bytes], Message]]] = {
    FRAME: ("camera", frozenset({"v", "type", "camera", "seq", "t_ns", "width", "height", "format", "length"}),
            frozenset({"truth", "sent_ns"}), _frame),
    HEARTBEAT: ("camera", frozenset({"v", "type", "camera", "seq", "t_ns", "fps", "status", "length"}),
                frozenset({"sent_ns"}), _heartbeat),
    POSE3D: ("node", frozenset({"v", "type", "node", "seq", "t_ns", "skeleton", "people", "joints", "dtype",
                                "length"}), frozenset({"sent_ns"}), _pose3d),
}


def _split_topic(topic: bytes) -> tuple[str, str]:
    if len(topic) > MAX_TOPIC_BYTES:
        raise ProtocolError("bad_topic", f"topic is {len(topic)} bytes, the cap is {MAX_TOPIC_BYTES}")
    kind, dot, name = topic.partition(b".")
    try:
        kind_s, name_s = kind.decode("ascii"), name.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_topic", f"topic {_short(topic)} is not text") from None
    if not dot or kind_s not in _SCHEMAS or not name_s:
        raise ProtocolError("bad_topic", f"unknown topic {_short(topic)}; expected frame.|heartbeat.|pose3d.<name>")
    return kind_s, name_s


def _unpack_header(raw: bytes) -> dict:
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True, **_UNPACK_LIMITS)
    except (ValueError, msgpack.UnpackException) as exc:  # ExtraData, FormatError, StackError, limits, bad UTF-8
        raise ProtocolError("bad_header", f"header is not valid msgpack: {type(exc).__name__}: {_short(str(exc))}") \
            from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", f"header is a msgpack {type(header).__name__}, expected a map")
    return header


def decode(parts: list[bytes], max_payload: int = MAX_PAYLOAD_BYTES) -> Message:
    """Validate and decode one received multipart message; anything malformed raises ProtocolError."""
    if not isinstance(parts, (list, tuple)) or len(parts) != 3:
        count = len(parts) if isinstance(parts, (list, tuple)) else type(parts).__name__
        raise ProtocolError("bad_parts", f"expected 3 parts [topic, header, payload], got {count}")
    if not all(isinstance(p, (bytes, bytearray, memoryview)) for p in parts):
        raise ProtocolError("bad_parts", "message parts must be bytes")
    topic, raw_header, payload = (bytes(p) if not isinstance(p, bytes) else p for p in parts)
    kind, topic_name = _split_topic(topic)
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ProtocolError("header_too_large", f"header is {len(raw_header)} bytes, the cap is {MAX_HEADER_BYTES}")
    if len(payload) > max_payload:
        raise ProtocolError("payload_too_large", f"payload is {len(payload)} bytes, the cap is {max_payload}")
    header = _unpack_header(raw_header)
    if "v" not in header:
        raise ProtocolError("missing_field", "v (the protocol version)")
    if type(header["v"]) is not int or header["v"] != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {_short(header['v'])} is not supported "
                                           f"(this receiver speaks version {PROTOCOL_VERSION})")
    if header.get("type") != kind:
        raise ProtocolError("topic_mismatch", f"topic says {kind}, header type is {_short(header.get('type'))}")
    name_field, required, optional, build = _SCHEMAS[kind]
    missing = required - header.keys()
    if missing:
        raise ProtocolError("missing_field", ", ".join(sorted(missing)))
    unknown = header.keys() - required - optional
    if unknown:
        raise ProtocolError("unknown_field", _short(sorted(map(repr, unknown))))
    length = _int("length", header["length"], 0, max_payload)
    if length != len(payload):
        raise ProtocolError("length_mismatch", f"header length {length}, payload has {len(payload)} bytes")
    if kind == HEARTBEAT and length:
        raise ProtocolError("length_mismatch", f"heartbeats carry no payload, got {length} bytes")
    if header[name_field] != topic_name:
        raise ProtocolError("topic_mismatch", f"topic names {_short(topic_name)}, header {name_field} is "
                                              f"{_short(header[name_field])}")
    return build(header, payload)


# -- images ---------------------------------------------------------------------------------------------------

def image_from_frame(msg: FrameMessage) -> np.ndarray:
    """The frame's image as uint8: BGR [H, W, 3] for jpeg and bgr8, [H, W] for gray8."""
    if msg.format == "jpeg":
        image = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (msg.height, msg.width):
            raise ProtocolError("bad_jpeg", f"camera {msg.camera!r} seq {msg.seq}: the JPEG does not decode "
                                            f"to {msg.width}x{msg.height}")
        return image
    shape = (msg.height, msg.width, 3) if msg.format == "bgr8" else (msg.height, msg.width)
    return np.frombuffer(msg.payload, np.uint8).reshape(shape)


def frame_from_image(camera: str, seq: int, t_ns: int, image: np.ndarray, format: str = "jpeg",
                     quality: int = 90, *, truth: dict | None = None, sent_ns: int | None = None) -> FrameMessage:
    """A FrameMessage from a uint8 image (BGR [H, W, 3] or gray [H, W]), JPEG-encoded at ``quality`` or raw."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image: expected uint8 [H, W, 3] or [H, W], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if format == "jpeg":
        q = _int("quality", quality, 1, 100)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            raise ValueError(f"camera {camera!r}: JPEG encoding failed for a {width}x{height} image")
        payload = buf.tobytes()
    elif format in FORMATS:
        if (image.ndim == 3) != (FORMATS[format] == 3):
            raise ValueError(f"format {format}: needs a {'BGR [H, W, 3]' if format == 'bgr8' else 'gray [H, W]'} "
                             f"image, got {image.shape}")
        payload = np.ascontiguousarray(image).tobytes()
    else:
        raise ValueError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
    return FrameMessage(camera, seq, t_ns, width, height, format, payload, truth, sent_ns)


# -- receiving ------------------------------------------------------------------------------------------------

class RejectCounter:
    """Counts a receiver's rejected messages by reason; warns at most once per reason per ``interval_s``."""

    def __init__(self, source: str = "receiver", interval_s: float = 10.0, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.interval_s = interval_s
        self._logger = logger or _log
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._last_log: dict[str, float] = {}
        self._since_log: dict[str, int] = {}

    def reject(self, error: ProtocolError, exc_info: BaseException | None = None) -> None:
        """Count one rejected message and log it unless this reason was logged less than interval_s ago."""
        reason = error.reason
        self._counts[reason] = self._counts.get(reason, 0) + 1
        self._since_log[reason] = self._since_log.get(reason, 0) + 1
        now = self._clock()
        last = self._last_log.get(reason)
        if last is not None and now - last < self.interval_s:
            return
        self._logger.warning("%s: rejected %d message(s) [%s] since the last report (%d in all); last: %s",
                             self.source, self._since_log[reason], reason, self._counts[reason],
                             _short(error.detail, 200), exc_info=exc_info)
        self._last_log[reason] = now
        self._since_log[reason] = 0

    @property
    def counts(self) -> dict[str, int]:
        """Rejections so far by reason (a copy)."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())


def configure_socket(sock: zmq.Socket, max_payload: int = MAX_PAYLOAD_BYTES, hwm: int = DEFAULT_HWM) -> None:
    """Cap inbound message parts at ``max_payload`` + header cap and set both high-water marks to ``hwm``.

    ZeroMQ discards a bigger part and drops that peer's connection (it reconnects). PUB/SUB silently drops
    messages past the HWM (per connection, in whole messages): size it for the rate and the stall to ride out,
    and watch seq gaps, since nothing else reports those drops."""
    sock.setsockopt(zmq.MAXMSGSIZE, max_payload + MAX_HEADER_BYTES)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)


def receive(sock: zmq.Socket, counter: RejectCounter, timeout_ms: int | None = 100,
            max_payload: int = MAX_PAYLOAD_BYTES) -> Message | None:
    """The next valid message, or None after ``timeout_ms`` or when the message was rejected (and counted).

    Never raises on bad input: a decoder bug on some input is counted as ``internal_error`` and logged with its
    traceback, so a hostile sender cannot stop a node. Socket errors (a closed context) still raise."""
    if not sock.poll(timeout_ms, zmq.POLLIN):
        return None
    try:
        parts = sock.recv_multipart(zmq.NOBLOCK)
    except zmq.Again:
        return None
    try:
        return decode(parts, max_payload)
    except ProtocolError as exc:
        counter.reject(exc)
    except Exception as exc:  # noqa: BLE001 - the node must outlive a decoder bug; counted and logged loudly
        counter.reject(ProtocolError("internal_error", f"{type(exc).__name__}: {exc}"), exc_info=exc)
    return None
