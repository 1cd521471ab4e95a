"""viewer/live.py without a window: a real ZeroMQ publisher on loopback sends pose3d messages; the subscriber's
state has the latest poses per node, the receive rate and latency, counts a malformed message and goes on,
says "waiting for node" when the publisher goes away and "live" again when a new one binds the endpoint."""

import time

import numpy as np
import pytest
import zmq

from capture.protocol import Pose3DMessage
from tests.ports_and_processes import free_port_block
from viewer.live import LIVE, WAITING, LiveState, LiveSubscriber, scene_from_message

J = 25


def _message(node: str, seq: int, sent_ns: int | None, t_ns: int, people: int = 2) -> Pose3DMessage:
    poses = np.zeros((people, J, 4), np.float32)
    poses[..., 2] = np.linspace(0.1, 1.7, J)
    poses[..., 3] = 1
    poses[:, :, 0] = np.arange(people)[:, None]
    return Pose3DMessage(node, seq, t_ns, "body25", poses, np.arange(people, dtype=np.int32) + 10, sent_ns)


def _publisher(ctx, endpoint):
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    return pub


def _until(sub: LiveSubscriber, condition, timeout_s: float = 5.0, send=None) -> None:
    """Poll (sending ``send()`` between polls, for ZeroMQ's slow joiner) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        if send is not None:
            send()
        sub.poll(20)


@pytest.fixture
def endpoint():
    return f"tcp://127.0.0.1:{free_port_block(1)}"


def test_live_state_follows_a_node_through_bad_messages_and_a_restart(endpoint):
    ctx = zmq.Context()
    state = LiveState(stale_s=0.6, window_s=0.6)
    sub = LiveSubscriber(endpoint, state, context=ctx)
    pub = _publisher(ctx, endpoint)
    try:
        seq = [0]

        def send(node="recon", delay_ms=5.0, with_sent=True):
            now = time.monotonic_ns()
            msg = _message(node, seq[0], now - int(delay_ms * 1e6) if with_sent else None, now - 40_000_000)
            seq[0] += 1
            pub.send_multipart(msg.encode())

        _until(sub, lambda: state.received > 0, send=send)
        assert state.connection() == LIVE
        # a steady 50 messages/s for 1 s, each sent 5 ms "ago" by the header's sent_ns
        received = state.received
        start = time.monotonic()
        for k in range(50):
            send()
            sub.poll(0)
            time.sleep(max(0.0, start + (k + 1) * 0.02 - time.monotonic()))
        _until(sub, lambda: state.received >= received + 50)
        assert 30 <= state.rate() <= 70, state.rate()
        assert state.latency_source == "sent_ns"
        assert 5.0 <= state.latency_ms() < 60.0, state.latency_ms()
        assert 40.0 <= state.age_ms() < 100.0  # the poses' capture time was 40 ms before sending
        latest = state.latest["recon"]
        assert latest.poses.shape == (2, J, 4) and latest.track_ids.tolist() == [10, 11]
        assert state.people() == 2 and state.rejected_total == 0 and state.seq_gaps == 0
        # a malformed message is counted and skipped; the next good one still arrives
        pub.send_multipart([b"pose3d.recon", b"\xc1 not msgpack", b""])
        pub.send_multipart([b"pose3d.recon", b"\x80", b"x"])  # an empty header map: fields missing
        _until(sub, lambda: state.rejected_total >= 2)
        assert set(state.rejected) <= {"bad_header", "missing_field", "bad_version"}
        received = state.received
        send(node="second", with_sent=False)  # no sent_ns: latency from t_ns (40 ms before)
        _until(sub, lambda: state.received > received)
        assert state.latency_source == "t_ns" and set(state.latest) == {"recon", "second"}
        assert "rejected 2" in state.summary()
        # the node goes away: after stale_s, "waiting for node"
        pub.close()
        time.sleep(0.7)
        sub.poll(50)
        assert state.connection() == WAITING
        assert state.rate() == 0.0 and state.latency_ms() is None
        # a new node on the same endpoint: ZeroMQ reconnects by itself, "live" again
        pub = _publisher(ctx, endpoint)
        received = state.received
        _until(sub, lambda: state.received > received, send=send)
        assert state.connection() == LIVE and state.reconnections == 1
    finally:
        pub.close()
        sub.close()
        ctx.term()


def test_rate_and_latency_from_given_times():
    state = LiveState(clock=lambda: 0)
    t0 = 1_000_000_000
    assert state.connection(t0) == WAITING and state.rate(t0) == 0.0
    for k in range(91):  # 30 messages/s for 3 s, each 2 ms late
        now = t0 + k * 33_333_333
        assert state.feed(_message("n", k, now - 2_000_000, now - 50_000_000).encode(), now) is not None
    now = t0 + 90 * 33_333_333
    assert abs(state.rate(now) - 30.0) < 1.0
    assert abs(state.latency_ms(now) - 2.0) < 1e-6 and abs(state.age_ms(now) - 50.0) < 1e-6
    assert state.connection(now + 1_900_000_000) == LIVE
    assert state.connection(now + 2_100_000_000) == WAITING
    assert state.feed([b"frame.x", b"", b""], now) is None and state.rejected_total == 1
    state.feed(_message("n", 95, now, now).encode(), now + 10_000)  # seq 91..94 never came
    assert state.seq_gaps == 4


def test_a_message_becomes_a_one_frame_scene():
    scene = scene_from_message(_message("recon", 0, None, 5))
    assert scene.num_frames == 1 and scene.rig is None
    frame = scene.frame(0)
    assert frame.num_people == 2 and [lab.text for lab in frame.labels] == ["10", "11"]
    assert frame.skeletons.num_segments == 2 * (J - 1)
