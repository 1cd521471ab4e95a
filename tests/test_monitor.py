"""capture.monitor: a CaptureMonitor fed by fake node publishers on tcp loopback."""

import time

import numpy as np
import pytest
import zmq

from capture.monitor import CameraStatus, CaptureMonitor, format_status
from capture.protocol import Heartbeat, frame_from_image

PERIOD = 33_333_333
IMAGE = np.zeros((2, 4, 3), np.uint8)


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def rig():
    """Two fake nodes (PUB on tcp://127.0.0.1:*) and a monitor on a fake clock, subscriptions settled."""
    ctx = zmq.Context()
    pubs, endpoints = {}, {}
    for cam in ("cam0", "cam1"):
        pub = ctx.socket(zmq.PUB)
        pub.bind("tcp://127.0.0.1:*")
        pubs[cam] = pub
        endpoints[cam] = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
    clock = FakeClock()
    monitor = CaptureMonitor(endpoints, 30.0, context=ctx, remote={"cam1"}, clock=clock)
    try:
        yield pubs, monitor, clock
    finally:
        monitor.close()
        for pub in pubs.values():
            pub.close(linger=0)
        ctx.term()


def _beat(pub, cam, status="ok", seq=-1):
    pub.send_multipart(Heartbeat(cam, seq, time.monotonic_ns(), 30.0, status).encode())


def _frame(pub, cam, seq, t_ns):
    pub.send_multipart(frame_from_image(cam, seq, t_ns, IMAGE, "bgr8").encode())


def _settle(pubs, monitor):
    """Heartbeat until the monitor hears every node (ZeroMQ drops what a PUB sends before a SUB joins)."""
    deadline = time.monotonic() + 10
    while any(st.heartbeat_age_s is None for st in monitor.status().values()):
        assert time.monotonic() < deadline, "the monitor never heard the fake nodes"
        for cam, pub in pubs.items():
            _beat(pub, cam)
        monitor.poll(50)


def _poll_until(monitor, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred(monitor.status()):
        assert time.monotonic() < deadline, monitor.status()
        monitor.poll(50)


def test_frames_drops_heartbeats_status_and_skew(rig):
    pubs, monitor, clock = rig
    before = monitor.status()["cam0"]
    assert before == CameraStatus("cam0", 0.0, 0, 0, None, None, None, None)
    _settle(pubs, monitor)
    t0 = 10**12
    seqs1 = [0, 1, 2, 3, 4, 7, 8, 9]  # 5 and 6 never arrive: a gap of 2
    for i in range(10):
        _frame(pubs["cam0"], "cam0", i, t0 + i * PERIOD)
        if i in seqs1:
            _frame(pubs["cam1"], "cam1", i, t0 + i * PERIOD + 1_000_000)  # cam1 is 1 ms behind
    _beat(pubs["cam0"], "cam0", "retrying: unplugged", 9)
    _poll_until(monitor, lambda s: s["cam0"].frames == 10 and s["cam1"].frames == 8
                and s["cam0"].node_status.startswith("retrying"))
    clock.t += 0.5
    st = monitor.status()
    assert (st["cam0"].frames, st["cam0"].dropped, st["cam0"].last_seq, st["cam0"].fps) == (10, 0, 9, 10.0)
    assert (st["cam1"].frames, st["cam1"].dropped, st["cam1"].last_seq, st["cam1"].fps) == (8, 2, 9, 8.0)
    assert st["cam0"].node_status == "retrying: unplugged" and st["cam1"].node_status == "ok"
    assert st["cam0"].heartbeat_age_s == pytest.approx(0.5)
    # Sets of two frames 1 ms apart: each camera is 0.5 ms from the set time.
    assert st["cam0"].skew_ms == pytest.approx(0.5) and st["cam1"].skew_ms == pytest.approx(0.5)

    lines = monitor.status_lines()
    assert lines[0] == "cam0   10.0 fps  frames 10  dropped 0  skew 0.5 ms  retrying: unplugged"
    assert lines[1] == "cam1    8.0 fps  frames 8  dropped 2  skew 0.5 ms  remote: last heartbeat 0.5 s ago (ok)"

    clock.t += 4.0  # a second later nothing is "in the last second"; 4.5 s without heartbeats is silence
    st = monitor.status()
    assert st["cam0"].fps == 0.0 and st["cam0"].frames == 10
    assert st["cam0"].heartbeat_age_s == pytest.approx(4.5)
    lines = monitor.status_lines()
    assert lines[0].endswith("silent for 4.5 s (was retrying: unplugged)")
    assert lines[1].endswith("remote: last heartbeat 4.5 s ago (silent; was ok)")


def test_a_restarted_node_is_no_drop_and_bad_or_foreign_messages_are_counted(rig):
    pubs, monitor, clock = rig
    _settle(pubs, monitor)
    t0 = 10**12
    for i in range(5):
        _frame(pubs["cam0"], "cam0", 100 + i, t0 + i * PERIOD)
    for i in range(3):  # the node restarted: seq from 0 again
        _frame(pubs["cam0"], "cam0", i, t0 + (20 + i) * PERIOD)
    pubs["cam0"].send_multipart([b"frame.cam0", b"\xc1 not msgpack", b""])
    _frame(pubs["cam0"], "camX", 0, t0)  # a node publishing a camera the rig does not have on this endpoint
    _poll_until(monitor, lambda s: s["cam0"].frames == 8 and monitor.rejects.total == 1 and monitor.unexpected)
    st = monitor.status()["cam0"]
    assert (st.frames, st.dropped, st.last_seq) == (8, 0, 2)
    assert monitor.restarts_seen == {"cam0": 1, "cam1": 0}
    assert monitor.unexpected == {"camX": 1}
    lines = monitor.status_lines()
    assert lines[2] == "unexpected cameras on the wire: camX (1)"
    assert lines[3] == "rejected messages: 1 (bad_header 1)"


def test_clock_offsets_are_removed_before_skew(rig):
    pubs, _, _ = rig
    endpoints = {cam: pub.getsockopt(zmq.LAST_ENDPOINT).decode() for cam, pub in pubs.items()}
    with CaptureMonitor(endpoints, 30.0, offsets_ns={"cam1": 5_000_000}) as monitor:
        _settle(pubs, monitor)
        t0 = 10**12
        for i in range(6):
            _frame(pubs["cam0"], "cam0", i, t0 + i * PERIOD)
            _frame(pubs["cam1"], "cam1", i, t0 + i * PERIOD + 5_000_000)  # its clock runs 5 ms ahead
        _poll_until(monitor, lambda s: s["cam1"].frames == 6 and s["cam0"].skew_ms is not None)
        assert monitor.status()["cam0"].skew_ms == 0.0 and monitor.status()["cam1"].skew_ms == 0.0


def test_format_status_before_any_heartbeat():
    st = CameraStatus("cam0", 0.0, 0, 0, None, None, None, None)
    assert format_status(st) == "cam0    0.0 fps  frames 0  dropped 0  skew - ms  waiting for the node"
    assert format_status(st, remote=True, width=6).startswith("cam0      0.0 fps")
    assert format_status(st, remote=True).endswith("remote: no heartbeat yet")


def test_no_endpoints_is_an_error():
    with pytest.raises(ValueError, match="no endpoints"):
        CaptureMonitor({}, 30.0)


def test_monitor_with_the_rigs_curve_keys_hears_a_curve_node(tmp_path):
    import zmq

    from capture.curve_keys import generate_keys, load_keys, secure_server
    from capture.monitor import CaptureMonitor
    from capture.protocol import Heartbeat, configure_socket
    from rigs.formats import load_rig, save_rig

    rig_path = save_rig(load_rig("studio-4"), tmp_path / "rig.toml")
    generate_keys(rig_path)
    keys = load_keys(rig_path)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    auth = secure_server(pub, keys, ctx)
    configure_socket(pub)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    endpoints = {"cam0": f"tcp://127.0.0.1:{port}"}
    secured = CaptureMonitor(endpoints, 30.0, curve=keys)
    plain = CaptureMonitor(endpoints, 30.0)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and secured.status()["cam0"].heartbeat_age_s is None:
            pub.send_multipart(Heartbeat("cam0", -1, time.monotonic_ns(), 0.0, "ok").encode())
            secured.poll(50)
            plain.poll(1)
        assert secured.status()["cam0"].heartbeat_age_s is not None
        assert plain.status()["cam0"].heartbeat_age_s is None  # no key, nothing heard
    finally:
        secured.close()
        plain.close()
        pub.close(0)
        auth.stop()
        ctx.term()
