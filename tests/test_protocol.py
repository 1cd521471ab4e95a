import logging

import msgpack
import numpy as np
import pytest
import zmq

from capture import protocol
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
    image_from_frame,
    jpeg_size,
    receive,
)

DELETE = object()


def _image(h=24, w=32):
    """A smooth BGR test image (JPEG keeps it close)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1).astype(np.uint8)


def _frame(fmt="bgr8", **kw):
    return frame_from_image("cam0", 7, 123_456_789, _image(), fmt, **kw)


def _parts(msg=None, topic=None, payload=None, **fields):
    """A valid message's wire parts with header fields overridden (DELETE removes one)."""
    topic0, header, payload0 = (msg or _frame()).encode()
    h = msgpack.unpackb(header)
    for key, value in fields.items():
        if value is DELETE:
            del h[key]
        else:
            h[key] = value
    return [topic0 if topic is None else topic, msgpack.packb(h, use_bin_type=True),
            payload0 if payload is None else payload]


def _pose(P=2, J=17):
    poses = np.random.default_rng(0).normal(size=(P, J, 4)).astype(np.float32)
    poses[-1:, 3, :3] = np.nan  # a missing joint, as the convention writes it
    poses[-1:, 3, 3] = 0
    return Pose3DMessage("recon", 3, 99, "coco17", poses, np.arange(P, dtype=np.int32) * 5 - 1, sent_ns=100)


def test_frame_round_trip_keeps_every_field():
    msg = _frame("bgr8", truth={"poses": [[1.0, 2.0, float("nan")]], "people": 1}, sent_ns=5)
    back = decode(msg.encode())
    assert isinstance(back, FrameMessage)
    assert (back.camera, back.seq, back.t_ns, back.width, back.height, back.format, back.sent_ns) == \
           ("cam0", 7, 123_456_789, 32, 24, "bgr8", 5)
    assert back.payload == msg.payload and back.truth["people"] == 1 and np.isnan(back.truth["poses"][0][2])


def test_wire_layout_is_as_documented():
    topic, header, payload = frame_from_image("cam0", 7, 123_456_789, _image()[:, :, 0], "gray8").encode()
    h = msgpack.unpackb(header)
    assert topic == b"frame.cam0"
    assert h == {"v": 1, "type": "frame", "camera": "cam0", "seq": 7, "t_ns": 123_456_789, "width": 32,
                 "height": 24, "format": "gray8", "length": 32 * 24}
    assert len(payload) == 32 * 24
    topic, header, payload = Heartbeat("cam0", -1, 5, 29.5, "starting").encode()
    assert topic == b"heartbeat.cam0" and payload == b""
    assert msgpack.unpackb(header) == {"v": 1, "type": "heartbeat", "camera": "cam0", "seq": -1, "t_ns": 5,
                                       "fps": 29.5, "status": "starting", "length": 0}
    msg = _pose(P=2, J=17)
    topic, header, payload = msg.encode()
    h = msgpack.unpackb(header)
    assert topic == b"pose3d.recon"
    assert (h["people"], h["joints"], h["dtype"], h["skeleton"], h["length"]) == (2, 17, "float32", "coco17",
                                                                                   2 * 17 * 16 + 2 * 4)
    np.testing.assert_array_equal(np.frombuffer(payload[: 2 * 17 * 16], "<f4").reshape(2, 17, 4), msg.poses)
    assert np.frombuffer(payload[2 * 17 * 16 :], "<i4").tolist() == [-1, 4]


def test_heartbeat_round_trip():
    hb = Heartbeat("cam 1", 41, -5, 30, "ok", sent_ns=8)
    back = decode(hb.encode())
    assert back == hb and isinstance(back.fps, float)


@pytest.mark.parametrize("people", [0, 1, 3])
def test_pose3d_round_trip(people):
    msg = _pose(P=people)
    back = decode(msg.encode())
    assert isinstance(back, Pose3DMessage)
    assert (back.node, back.seq, back.t_ns, back.skeleton, back.sent_ns) == ("recon", 3, 99, "coco17", 100)
    np.testing.assert_array_equal(back.poses, msg.poses)  # NaN == NaN here
    np.testing.assert_array_equal(back.track_ids, msg.track_ids)
    assert back.poses.dtype == np.float32 and back.track_ids.dtype == np.int32 and back.poses.shape == (people, 17, 4)


def test_base_message_is_valid():
    """The rejection cases below mutate this message: it must pass unmutated."""
    assert isinstance(decode(_parts()), FrameMessage)
    assert isinstance(decode(_parts(_frame("jpeg"))), FrameMessage)


def _huge_truth():
    return {"blob": "x" * MAX_HEADER_BYTES}


REJECTIONS = {
    "two parts": (lambda: _parts()[:2], "bad_parts"),
    "four parts": (lambda: _parts() + [b""], "bad_parts"),
    "a part that is not bytes": (lambda: [b"frame.cam0", "header", b""], "bad_parts"),
    "unknown topic": (lambda: _parts(topic=b"video.cam0"), "bad_topic"),
    "topic without a name": (lambda: _parts(topic=b"frame."), "bad_topic"),
    "topic not utf-8": (lambda: _parts(topic=b"frame.\xff\xfe"), "bad_topic"),
    "topic names another camera": (lambda: _parts(topic=b"frame.cam1"), "topic_mismatch"),
    "header type disagrees with topic": (lambda: _parts(type="heartbeat"), "topic_mismatch"),
    "header not a map": (lambda: [b"frame.cam0", msgpack.packb([1, 2, 3]), b""], "bad_header"),
    "header not msgpack": (lambda: [b"frame.cam0", b"\xc1garbage", b""], "bad_header"),
    "header truncated": (lambda: [b"frame.cam0", _parts()[1][:-3], _parts()[2]], "bad_header"),
    "header with trailing bytes": (lambda: [b"frame.cam0", _parts()[1] + b"\x00", _parts()[2]], "bad_header"),
    "integer map keys": (lambda: [b"frame.cam0", msgpack.packb({1: 2}), b""], "bad_header"),
    "ext type (timestamp)": (lambda: [b"frame.cam0", b"\x81\xa1v\xd6\xff\x00\x00\x00\x01", b""], "bad_header"),
    "huge msgpack array claim": (lambda: [b"frame.cam0", b"\xdd\xff\xff\xff\xff", b""], "bad_header"),
    "huge msgpack map claim": (lambda: [b"frame.cam0", b"\xdf\xff\xff\xff\xff", b""], "bad_header"),
    "huge msgpack str claim": (lambda: [b"frame.cam0", b"\xdb\xff\xff\xff\xff", b""], "bad_header"),
    "deep nesting": (lambda: [b"frame.cam0", b"\x91" * 5000 + b"\xc0", b""], "bad_header"),
    "bool as int": (lambda: _parts(seq=True), "bad_field"),
    "float as int": (lambda: _parts(width=32.0), "bad_field"),
    "string as int": (lambda: _parts(t_ns="1"), "bad_field"),
    "negative seq": (lambda: _parts(seq=-1), "bad_field"),
    "zero width": (lambda: _parts(width=0), "bad_field"),
    "width over 16384": (lambda: _parts(width=16385), "bad_field"),
    "t_ns beyond int64": (lambda: _parts(t_ns=2**63), "bad_field"),
    "unknown format": (lambda: _parts(format="png"), "bad_field"),
    "camera with control characters": (lambda: _parts(topic=b"frame.c\x00", camera="c\x00"), "bad_field"),
    "sent_ns not an int": (lambda: _parts(sent_ns=1.5), "bad_field"),
    "unknown version": (lambda: _parts(v=2), "bad_version"),
    "version as a string": (lambda: _parts(v="1"), "bad_version"),
    "no version": (lambda: _parts(v=DELETE), "missing_field"),
    "missing field": (lambda: _parts(height=DELETE), "missing_field"),
    "unknown field": (lambda: _parts(colour="red"), "unknown_field"),
    "length mismatch": (lambda: _parts(length=32 * 24 * 3 + 1), "length_mismatch"),
    "payload shorter than length": (lambda: _parts(payload=_frame().payload[:-1]), "length_mismatch"),
    "raw size mismatch": (lambda: _parts(width=31), "raw_size"),
    "jpeg format, payload not JPEG": (lambda: _parts(format="jpeg"), "not_jpeg"),
    "JPEG of another size": (lambda: _parts(_frame("jpeg"), width=33), "jpeg_size"),
    "truth not a map": (lambda: _parts(truth=[1, 2]), "bad_truth"),
    "truth nested too deep": (lambda: _parts(truth={"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}), "bad_truth"),
    "oversize header": (lambda: _parts(truth=_huge_truth()), "header_too_large"),
    "heartbeat with a payload": (lambda: _parts(Heartbeat("cam0", 1, 2, 3.0, "ok"), payload=b"x", length=1),
                                 "length_mismatch"),
    "heartbeat fps negative": (lambda: _parts(Heartbeat("cam0", 1, 2, 3.0, "ok"), fps=-1.0), "bad_field"),
    "heartbeat seq below -1": (lambda: _parts(Heartbeat("cam0", 1, 2, 3.0, "ok"), seq=-2), "bad_field"),
    "pose3d payload of the wrong size": (lambda: _parts(_pose(), people=3), "pose_size"),
    "pose3d dtype not float32": (lambda: _parts(_pose(), dtype="float64"), "bad_field"),
    "pose3d topic names another node": (lambda: _parts(_pose(), topic=b"pose3d.other"), "topic_mismatch"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_each_rule_rejects_with_its_reason(case):
    make, reason = REJECTIONS[case]
    with pytest.raises(ProtocolError) as err:
        decode(make())
    assert err.value.reason == reason, str(err.value)


def test_oversize_payload_is_rejected_against_the_receivers_cap():
    parts = _parts()
    assert isinstance(decode(parts, max_payload=len(parts[2])), FrameMessage)
    with pytest.raises(ProtocolError) as err:
        decode(parts, max_payload=len(parts[2]) - 1)
    assert err.value.reason == "payload_too_large"
    with pytest.raises(ProtocolError) as err:  # the default cap, 64 MiB
        decode([b"frame.cam0", parts[1], bytes(protocol.MAX_PAYLOAD_BYTES + 1)])
    assert err.value.reason == "payload_too_large"


def test_unknown_version_is_named():
    with pytest.raises(ProtocolError, match="version 7 is not supported"):
        decode(_parts(v=7))


def test_senders_cannot_build_invalid_messages():
    with pytest.raises(ProtocolError, match="raw_size"):
        FrameMessage("cam0", 0, 0, 32, 24, "bgr8", b"\x00" * 10)
    with pytest.raises(ProtocolError, match="not_jpeg"):
        FrameMessage("cam0", 0, 0, 32, 24, "jpeg", b"\x00" * 10)
    with pytest.raises(ProtocolError, match="bad_field"):
        FrameMessage("cam0", True, 0, 32, 24, "gray8", b"\x00" * 32 * 24)
    with pytest.raises(ProtocolError, match="bad_truth"):
        _frame(truth={"poses": np.zeros(3)})
    with pytest.raises(ProtocolError, match="header_too_large"):
        _frame(truth=_huge_truth()).encode()
    with pytest.raises(ProtocolError, match="pose_size"):
        Pose3DMessage("n", 0, 0, "coco17", np.zeros((2, 17, 3)), np.zeros(2))
    assert _frame(sent_ns=np.int64(4)).sent_ns == 4  # numpy ints are ints


def test_images_round_trip():
    image = _image()
    np.testing.assert_array_equal(image_from_frame(decode(_frame("bgr8").encode())), image)
    gray = image[:, :, 1].copy()
    back = image_from_frame(decode(frame_from_image("cam0", 0, 0, gray, "gray8").encode()))
    np.testing.assert_array_equal(back, gray)
    jpeg = decode(_frame("jpeg", quality=95).encode())
    assert jpeg.payload[:2] == b"\xff\xd8" and jpeg_size(jpeg.payload) == (32, 24)
    decoded = image_from_frame(jpeg)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 3


def test_frame_from_image_refuses_what_it_cannot_send():
    with pytest.raises(ValueError, match="format"):
        frame_from_image("cam0", 0, 0, _image(), "png")
    with pytest.raises(ValueError, match="gray"):
        frame_from_image("cam0", 0, 0, _image(), "gray8")
    with pytest.raises(ValueError, match="uint8"):
        frame_from_image("cam0", 0, 0, _image().astype(np.float32), "bgr8")


def test_reject_counter_counts_every_rejection_and_rate_limits_the_log(caplog):
    now = [0.0]
    counter = RejectCounter("test rx", interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="capture.protocol"):
        for _ in range(1000):
            counter.reject(ProtocolError("bad_header", "junk"))
        counter.reject(ProtocolError("bad_field", "seq"))
        assert len(caplog.records) == 2
        now[0] = 9.9
        counter.reject(ProtocolError("bad_header", "junk"))
        assert len(caplog.records) == 2
        now[0] = 10.0
        counter.reject(ProtocolError("bad_header", "junk"))
    assert len(caplog.records) == 3
    assert "1001 message(s) [bad_header]" in caplog.records[-1].getMessage()  # 1000 suppressed + this one
    assert "1002 in all" in caplog.records[-1].getMessage()
    assert counter.counts == {"bad_header": 1002, "bad_field": 1} and counter.total == 1003


def test_configure_socket_sets_the_caps():
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.SUB)
        configure_socket(sock, max_payload=1000, hwm=1234)
        assert sock.getsockopt(zmq.MAXMSGSIZE) == 1000 + MAX_HEADER_BYTES
        assert sock.getsockopt(zmq.RCVHWM) == 1234 and sock.getsockopt(zmq.SNDHWM) == 1234
        sock.close(0)
    finally:
        ctx.term()


@pytest.fixture
def pipe():
    ctx = zmq.Context()
    rx, tx = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    rx.bind("inproc://protocol-test")
    tx.connect("inproc://protocol-test")
    yield rx, tx
    rx.close(0)
    tx.close(0)
    ctx.term()


def test_receive_counts_bad_messages_and_returns_good_ones(pipe):
    rx, tx = pipe
    counter = RejectCounter()
    assert receive(rx, counter, timeout_ms=10) is None and counter.total == 0  # timeout
    tx.send_multipart([b"junk"])
    tx.send_multipart(_parts(v=9))
    tx.send_multipart(_frame().encode())
    assert receive(rx, counter, timeout_ms=1000) is None
    assert receive(rx, counter, timeout_ms=1000) is None
    assert receive(rx, counter, timeout_ms=1000) == _frame()
    assert counter.counts == {"bad_parts": 1, "bad_version": 1}


def test_receive_survives_a_decoder_bug(pipe, monkeypatch):
    rx, tx = pipe

    def broken(parts, max_payload):
        raise KeyError("bug")

    monkeypatch.setattr(protocol, "decode", broken)
    counter = RejectCounter()
    tx.send_multipart(_frame().encode())
    assert receive(rx, counter, timeout_ms=1000) is None
    assert counter.counts == {"internal_error": 1}
