"""10,000 random and mutated messages into a live receiver process over a real PUB/SUB socket on loopback.

The receiver runs ``protocol.receive`` in a loop in its own process. Phase 1 sends the fuzz interleaved with
valid frames and must be received in full (no PUB drops: HWM 100000, paced, then a probe confirms delivery), so
the receiver's verdicts must match decoding the same messages here, message for message. Phase 2 sends parts
over ``MAXMSGSIZE``, which ZeroMQ drops along with the connection. Phase 3: every valid frame sent must arrive.
"""

import multiprocessing
import random
import time
from collections import Counter

import msgpack
import numpy as np
import zmq

from capture.protocol import (
    MAX_HEADER_BYTES,
    FrameMessage,
    Heartbeat,
    Pose3DMessage,
    ProtocolError,
    RejectCounter,
    configure_socket,
    decode,
    frame_from_image,
    receive,
)

SEED = 20240603
N_FUZZ = 10_000
MAX_PAYLOAD = 256 * 1024  # the receiver's cap; MAXMSGSIZE is this + the header cap
HWM = 100_000
AFTER = 500
RECEIVER_LIMIT_S = 25.0


def _receiver_main(conn, max_payload: int, limit_s: float) -> None:
    """The live receiver: report the endpoint, ack probes, record every valid message until told to stop."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    configure_socket(sock, max_payload=max_payload, hwm=HWM)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.bind("tcp://127.0.0.1:*")
    conn.send(("endpoint", sock.getsockopt_string(zmq.LAST_ENDPOINT)))
    counter = RejectCounter("fuzz receiver", interval_s=60.0)
    valid, stopped = [], False
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        msg = receive(sock, counter, timeout_ms=50, max_payload=max_payload)
        if msg is None:
            continue
        if isinstance(msg, Heartbeat) and msg.camera == "control" and msg.status == "stop":
            stopped = True
            break
        if isinstance(msg, FrameMessage) and msg.camera == "probe":
            conn.send(("probe", msg.seq))
            continue
        valid.append(_key(msg))
    conn.send(("done", {"valid": valid, "rejected": counter.counts, "stopped": stopped}))
    sock.close(0)
    ctx.term()


def _key(msg) -> tuple:
    name = msg.node if isinstance(msg, Pose3DMessage) else msg.camera
    return type(msg).__name__, name, msg.seq


# -- the fuzz ---------------------------------------------------------------------------------------------------

EVIL = [None, True, False, -1, 0, 1, 2**63, -(2**63), 2**64 - 1, 16385, 1.5, float("nan"), "", "x", "jpeg",
        "frame", "\x00", "a" * 300, b"bytes", [], [1, 2], {}, {"a": 1}]


class Fuzzer:
    """Seeded generator of hostile messages, built from valid ones."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        image = np.random.default_rng(rng.randrange(2**32)).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        self.bases = [
            frame_from_image("fuzz", 1, 10, image, "bgr8").encode(),
            frame_from_image("fuzz", 2, 20, image[:, :, 0], "gray8").encode(),
            frame_from_image("fuzz", 3, 30, image, "jpeg").encode(),
            frame_from_image("fuzz", 4, 40, image, "bgr8", truth={"people": [[1.0, 2.0]]}, sent_ns=5).encode(),
            Heartbeat("fuzz", 5, 50, 30.0, "ok").encode(),
            Pose3DMessage("fuzz", 6, 60, "coco17", np.ones((2, 17, 4)), [0, 1]).encode(),
        ]
        self.wrong_part_counts = 0
        self.ops = [(self.random_parts, 1), (self.random_header, 1), (self.mutate_field, 4), (self.mutate_payload, 1),
                    (self.truncate_header, 1), (self.flip_bits, 2), (self.mutate_topic, 1), (self.hostile_header, 1),
                    (self.oversize_header, 0.05), (self.oversize_payload, 0.05)]

    def bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def base(self) -> list[bytes]:
        return list(self.rng.choice(self.bases))

    def message(self) -> list[bytes]:
        op = self.rng.choices([o for o, _ in self.ops], weights=[w for _, w in self.ops])[0]
        return op()

    def random_parts(self):
        n = self.rng.randint(1, 6)
        if n != 3:
            self.wrong_part_counts += 1
        return [self.bytes(self.rng.choice([0, 1, 8, 64, 300])) for _ in range(n)]

    def random_header(self):
        topic, _, payload = self.base()
        return [topic, self.bytes(self.rng.randint(0, 200)), payload]

    def mutate_field(self):
        topic, header, payload = self.base()
        h = msgpack.unpackb(header)
        key = self.rng.choice(sorted(h) + ["extra"])
        what = self.rng.random()
        if what < 0.2 and key in h:
            del h[key]
        elif what < 0.3 and isinstance(h.get(key), int) and not isinstance(h.get(key), bool):
            h[key] += self.rng.choice([-1, 1])
        else:
            h[key] = self.rng.choice(EVIL)
        return [topic, msgpack.packb(h, use_bin_type=True), payload]

    def mutate_payload(self):
        topic, header, payload = self.base()
        choice = self.rng.randrange(3)
        if choice == 0:
            payload = payload[: self.rng.randrange(len(payload) + 1)]
        elif choice == 1:
            payload = payload + self.bytes(self.rng.randint(1, 16))
        else:
            payload = self.bytes(len(payload))
        return [topic, header, payload]

    def truncate_header(self):
        topic, header, payload = self.base()
        return [topic, header[: self.rng.randrange(len(header))], payload]

    def flip_bits(self):
        topic, header, payload = self.base()
        flipped = bytearray(header)
        for _ in range(self.rng.randint(1, 3)):
            flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
        return [topic, bytes(flipped), payload]

    def mutate_topic(self):
        topic, header, payload = self.base()
        topic = self.rng.choice([b"frame.other", b"heartbeat.fuzz", b"pose3d.fuzz", b"frame.", b"frame",
                                 b"frame.\xff", b"", b"x" * 300, topic + self.bytes(2)])
        return [topic, header, payload]

    def hostile_header(self):
        header = self.rng.choice([b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                                  b"\xc6\xff\xff\xff\xff", b"\x91" * 3000 + b"\xc0",
                                  b"\x81\xa1v\xd6\xff\x00\x00\x00\x01",  # a timestamp ext
                                  msgpack.packb({1: 1}), msgpack.packb([1, 2]), b"\xa2\xff\xfe", b"\xc1"])
        return [b"frame.fuzz", header, b""]

    def oversize_header(self):
        topic, _, payload = self.base()
        return [topic, msgpack.packb({"v": 1, "pad": "x" * (MAX_HEADER_BYTES + 10)}), payload]

    def oversize_payload(self):  # over the receiver's cap, under MAXMSGSIZE: it reaches the decoder
        topic, header, _ = self.bases[0]
        return [topic, header, bytes(MAX_PAYLOAD + self.rng.randint(1, 1000))]


def _verdict(parts) -> tuple:
    """What the receiver should make of a message: its key when valid, else the rejection reason."""
    try:
        return "valid", _key(decode(parts, MAX_PAYLOAD))
    except ProtocolError as exc:
        return "rejected", exc.reason


def _wait_for_probe(pub, conn, seq: int, timeout_s: float = 10.0) -> None:
    """Send probe frames until the receiver acks one (slow joiner, reconnects); drain acks of earlier probes."""
    deadline = time.monotonic() + timeout_s
    probe = FrameMessage("probe", seq, 0, 1, 1, "gray8", b"\x00").encode()
    while time.monotonic() < deadline:
        pub.send_multipart(probe)
        while conn.poll(0.05):
            kind, got = conn.recv()
            assert kind == "probe", (kind, got)
            if got == seq:
                return
    raise AssertionError(f"the receiver never acknowledged probe {seq}")


def test_live_receiver_survives_10000_hostile_messages():
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng)
    phase1, valid_seq = [], 0
    for _ in range(N_FUZZ):
        if rng.random() < 0.1:
            phase1.append(frame_from_image("valid", valid_seq, valid_seq * 1000, np.zeros((2, 2), np.uint8),
                                           "gray8").encode())
            valid_seq += 1
        phase1.append(fuzzer.message())
    verdicts = [_verdict(m) for m in phase1]  # computed here, before anything is sent
    expected_valid = [key for kind, key in verdicts if kind == "valid"]
    expected_rejected = Counter(reason for kind, reason in verdicts if kind == "rejected")
    # the fuzz must actually exercise the rules, or the test proves nothing
    assert expected_rejected["bad_parts"] == fuzzer.wrong_part_counts > 100
    for reason in ("bad_topic", "topic_mismatch", "bad_header", "header_too_large", "payload_too_large",
                   "bad_version", "missing_field", "unknown_field", "bad_field", "length_mismatch", "raw_size",
                   "not_jpeg", "bad_truth", "pose_size"):
        assert expected_rejected[reason] > 0, reason
    assert sum(expected_rejected.values()) > 0.9 * N_FUZZ

    mp = multiprocessing.get_context("spawn")
    conn, child_conn = mp.Pipe()
    proc = mp.Process(target=_receiver_main, args=(child_conn, MAX_PAYLOAD, RECEIVER_LIMIT_S), daemon=True)
    proc.start()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    try:
        assert conn.poll(15), "the receiver process did not start"
        kind, endpoint = conn.recv()
        assert kind == "endpoint" and endpoint.startswith("tcp://127.0.0.1:")
        configure_socket(pub, max_payload=MAX_PAYLOAD, hwm=HWM)
        pub.setsockopt(zmq.RECONNECT_IVL, 20)
        pub.connect(endpoint)
        _wait_for_probe(pub, conn, 0)

        for i, parts in enumerate(phase1):  # phase 1: the fuzz, paced
            pub.send_multipart(parts)
            if i % 200 == 199:
                time.sleep(0.002)
        _wait_for_probe(pub, conn, 1)  # everything before it was delivered: the stream is ordered

        oversize = [b"frame.big", FrameMessage("big", 0, 0, 1, 1, "gray8", b"\x00").encode()[1],
                    bytes(MAX_PAYLOAD + MAX_HEADER_BYTES + 1)]
        for seq in (2, 3, 4):  # phase 2: parts over MAXMSGSIZE; ZeroMQ drops them and the connection
            pub.send_multipart(oversize)
            _wait_for_probe(pub, conn, seq)

        image = np.zeros((4, 4, 3), np.uint8)
        for seq in range(AFTER):  # phase 3: valid frames with known seqs must all arrive
            pub.send_multipart(frame_from_image("after", seq, seq, image, "bgr8").encode())
            if seq % 100 == 99:
                time.sleep(0.002)
        pub.send_multipart(Heartbeat("control", 0, 0, 0.0, "stop").encode())

        result = None
        deadline = time.monotonic() + RECEIVER_LIMIT_S
        while result is None and time.monotonic() < deadline:
            if conn.poll(0.5):
                kind, value = conn.recv()
                if kind == "done":
                    result = value
            elif not proc.is_alive():
                break
        proc.join(10)
    finally:
        pub.close(0)
        ctx.term()
        if proc.is_alive():
            proc.kill()
    assert result is not None, f"the receiver died or hung (exit code {proc.exitcode})"
    assert proc.exitcode == 0
    assert result["stopped"], "the receiver ran out of time before the stop message"
    rejected = result["rejected"]
    assert "internal_error" not in rejected, rejected
    received = result["valid"]
    assert received[-AFTER:] == [("FrameMessage", "after", s) for s in range(AFTER)]
    assert not any(name == "big" for _, name, _ in received), "a part over MAXMSGSIZE got through"
    assert received[:-AFTER] == expected_valid  # every interleaved valid frame and accidental valid mutation
    assert [k for k in received if k[1] == "valid"] == [("FrameMessage", "valid", s) for s in range(valid_seq)]
    assert rejected == dict(expected_rejected)  # every hostile message reached decode and met the same verdict
