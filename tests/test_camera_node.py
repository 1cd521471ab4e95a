"""The camera node in-process: a node thread, fake sources, a SUB socket on inproc or tcp loopback."""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import types
from collections import namedtuple

import numpy as np
import pytest
import zmq

from capture import camera_node
from capture.camera_node import CameraNode, NodeError, add_node_parser, default_endpoint, run_camera_node
from capture.protocol import FrameMessage, Heartbeat, RejectCounter, image_from_frame, receive
from rigs.camera import look_at
from rigs.formats import load_rig

try:
    from capture.sources import EndOfStream, SourceError, open_source

    HAVE_SOURCES = True
except ImportError:  # the sources land separately: stand-ins with the same contract until then
    HAVE_SOURCES = False

    class SourceError(RuntimeError):
        pass

    class EndOfStream(Exception):
        pass


Frame = namedtuple("Frame", "image t_ns truth")  # what SourceFrame carries
CAM = look_at("cam0", (3, 3, 2.5), (0, 0, 1), 64, 48, 70, fps=30.0)
_ids = iter(range(10**6))


@pytest.fixture(autouse=True)
def _source_errors(monkeypatch):
    if not HAVE_SOURCES:
        monkeypatch.setattr(camera_node, "_source_errors", lambda: (SourceError, EndOfStream))


def _image(i, h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4 + i) % 256, y * 5 % 256, np.full_like(x, i % 256)], axis=-1).astype(np.uint8)


class FakeSource:
    """Delivers ``frames`` frames (t_ns 1 ms apart from ``t0``), then raises ``then`` (or blocks when None)."""

    name, width, height, fps = "fake", 64, 48, 30.0

    def __init__(self, frames=5, then=EndOfStream, t0=0, period_s=0.0, release=None, truth=True):
        self.frames, self.then, self.t0, self.period_s, self.truth = frames, then, t0, period_s, truth
        self.release = release or threading.Event()
        self.i = 0
        self.closed = False

    def read(self):
        if self.i >= self.frames:
            if self.then is None:
                while not self.release.wait(0.01):
                    pass
                raise EndOfStream("released")
            raise self.then(f"after {self.i} frames") if isinstance(self.then, type) else self.then
        if self.period_s:
            time.sleep(self.period_s)
        i, self.i = self.i, self.i + 1
        truth = {"frame": i, "people": [{"id": 1, "xyz": [0.5, 1.0, i * 0.1]}]} if self.truth else None
        return Frame(_image(i), self.t0 + i * 1_000_000, truth)

    def close(self):
        self.closed = True


class Factory:
    """source_factory: the next item of ``plan`` per call (an exception to raise, or a source to return);
    the first call waits for ``go`` so the test's subscriber is connected before anything is sent."""

    def __init__(self, *plan):
        self.plan = list(plan)
        self.calls = 0
        self.go = threading.Event()
        self.opened = []

    def __call__(self):
        assert self.go.wait(10), "the test never released the source"
        item = self.plan[min(self.calls, len(self.plan) - 1)]
        self.calls += 1
        if isinstance(item, BaseException):
            raise item
        self.opened.append(item)
        return item


class Harness:
    """A node running in a thread and a subscriber; ``start`` returns once the subscriber sees heartbeats."""

    def __init__(self, factory, endpoint=None, **kw):
        self.ctx = zmq.Context()
        self.endpoint = endpoint or f"inproc://camera-node-{next(_ids)}"
        self.node = CameraNode(CAM, factory, self.endpoint, context=None if endpoint else self.ctx, **kw)
        self.factory = factory
        self.stop = threading.Event()
        self.result = None
        self.error = None
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.counter = RejectCounter("test")
        self.closed = False

    def _run(self, max_frames):
        try:
            self.result = self.node.run(self.stop, max_frames=max_frames)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            self.error = exc

    def start(self, max_frames=None):
        early = not self.endpoint.endswith("*")
        if early:  # connected before the node binds: its first heartbeat already reaches us
            self.sub.connect(self.endpoint)
        self.thread = threading.Thread(target=self._run, args=(max_frames,), daemon=True)
        self.thread.start()
        assert self.node.ready.wait(5)
        if not early:
            self.sub.connect(self.node.endpoint)
        self.next(Heartbeat, timeout=5)  # subscribed: nothing sent from now on is lost
        self.factory.go.set()
        return self

    def next(self, kind=None, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = receive(self.sub, self.counter, timeout_ms=50)
            if msg is not None and (kind is None or isinstance(msg, kind)):
                return msg
        raise AssertionError(f"no {kind.__name__ if kind else 'message'} within {timeout} s")

    def collect(self, until, timeout=5.0):
        """Messages until ``until(msg)`` is true (that one included)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(timeout=max(0.01, deadline - time.monotonic()))
            out.append(msg)
            if until(msg):
                return out

    def close(self):
        self.closed = True
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the node did not stop"
        self.sub.close(linger=0)
        self.ctx.term()
        if self.error:
            raise self.error


@pytest.fixture
def harness():
    made = []

    def make(*plan, **kw):
        h = Harness(Factory(*plan), **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        if not h.closed and hasattr(h, "thread"):
            h.close()


def frames(msgs):
    return [m for m in msgs if isinstance(m, FrameMessage)]


@pytest.mark.parametrize("fmt", ["jpeg", "bgr8"])
def test_frames_are_published_in_order_with_valid_headers(harness, fmt):
    source = FakeSource(frames=12, t0=5_000_000_000)
    h = harness(source, fmt=fmt, quality=95).start()
    got = frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq == 11))
    assert [m.seq for m in got] == list(range(12))
    assert [m.t_ns for m in got] == [5_000_000_000 + i * 1_000_000 for i in range(12)]
    for i, m in enumerate(got):
        assert (m.camera, m.width, m.height, m.format) == ("cam0", 64, 48, fmt)
        assert m.topic == b"frame.cam0"
        assert m.sent_ns is not None and abs(m.sent_ns - time.monotonic_ns()) < 10e9  # on the rig's clock
        assert m.truth == {"frame": i, "people": [{"id": 1, "xyz": [0.5, 1.0, i * 0.1]}]}
        image = image_from_frame(m)
        if fmt == "bgr8":
            np.testing.assert_array_equal(image, _image(i))
        else:
            assert np.abs(image.astype(int) - _image(i)).mean() < 3
    assert h.counter.total == 0
    ended = h.next(Heartbeat)
    while ended.status != "ended":
        ended = h.next(Heartbeat)
    assert ended.seq == 11 and source.closed
    h.close()
    assert h.result == 12


def test_heartbeats_keep_coming_while_the_camera_delivers_nothing(harness):
    release = threading.Event()
    h = harness(FakeSource(frames=0, then=None, release=release), heartbeat_s=0.05).start()
    t0 = time.monotonic()
    beats = [h.next(Heartbeat) for _ in range(5)]
    assert time.monotonic() - t0 < 2
    assert all((b.camera, b.seq, b.fps, b.status) == ("cam0", -1, 0.0, "ok") for b in beats)
    assert all(abs(b.t_ns - time.monotonic_ns()) < 10e9 for b in beats)
    stamps = [b.t_ns for b in beats]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    release.set()
    h.close()


def test_heartbeats_report_the_measured_fps(harness):
    h = harness(FakeSource(frames=10**6, period_s=0.02), heartbeat_s=0.1).start()
    t_end = time.monotonic() + 1.3
    beats = [m for m in h.collect(lambda m: time.monotonic() > t_end) if isinstance(m, Heartbeat)]
    beat = beats[-1]  # the latest: the ones before were sent in the first second
    assert 25 <= beat.fps <= 52, beat  # 50 fps nominal, less on a busy machine
    assert beat.seq >= 0 and beat.status == "ok"
    h.close()


def test_a_failing_source_is_retried_with_growing_backoff_and_the_outage_is_a_seq_jump(harness, caplog):
    """A source dies after 3 frames, the camera then fails to open once, then works: the node rides it out."""
    flaky = FakeSource(frames=3, then=SourceError("decode error"), t0=0)
    good = FakeSource(frames=10**6, t0=10_000_000_000, period_s=0.005)

    def fake_sleep(seconds):  # the node's back-off, shortened: long enough for heartbeats to see it
        time.sleep(0.15)

    h = harness(flaky, SourceError("no camera at device:0"), good, heartbeat_s=0.02, sleep=fake_sleep)
    with caplog.at_level(logging.INFO, logger="capture.camera_node"):
        h.start()
        msgs = h.collect(lambda m: isinstance(m, FrameMessage) and m.seq >= 8, timeout=10)
    statuses = []
    for m in msgs:
        if isinstance(m, Heartbeat) and (not statuses or statuses[-1] != m.status):
            statuses.append(m.status)
    assert statuses[-3:] == ["retrying: decode error", "retrying: no camera at device:0", "ok"], statuses
    assert statuses[:-3] in ([], ["ok"])  # the first 3 frames may all go out between two heartbeats
    got = frames(msgs)
    # away from 2 ms to 10 s at 30 fps: 299 frame slots missed, counted by the receivers as a seq gap
    assert [m.seq for m in got[:4]] == [0, 1, 2, 3 + 299]
    assert [m.seq for m in got[3:]] == list(range(302, 302 + len(got) - 3))  # consecutive again after it
    assert [m.t_ns for m in got[:4]] == [0, 1_000_000, 2_000_000, 10_000_000_000]
    assert h.node.delays == [0.5, 1.0]
    assert flaky.closed and h.factory.calls == 3
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert logged == [("WARNING", "camera cam0: retrying: decode error (re-opening with back-off)"),
                      ("WARNING", "camera cam0: retrying: no camera at device:0 (re-opening with back-off)"),
                      ("INFO", "camera cam0: delivering frames again")]
    h.close()


def test_backoff_grows_to_its_cap_and_the_same_failure_is_logged_once(harness, caplog):
    h = harness(*[SourceError("unplugged")] * 7, FakeSource(frames=2), sleep=lambda s: None)
    with caplog.at_level(logging.WARNING, logger="capture.camera_node"):
        h.start()
        got = frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq == 1))
    assert [m.seq for m in got] == [0, 1]
    assert h.node.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert sum("unplugged" in r.getMessage() for r in caplog.records) == 1
    h.close()


def test_backoff_is_cut_short_by_stop(harness):
    h = harness(SourceError("unplugged"), backoff=(60,)).start()
    while h.next(Heartbeat).status == "ok":
        pass
    t0 = time.monotonic()
    h.close()
    assert time.monotonic() - t0 < 2


def test_a_source_that_crashes_or_sends_a_bad_image_is_retried(harness):
    class Broken(FakeSource):
        def read(self):
            if self.i == 1:
                self.i += 1
                return Frame(np.zeros((4, 4), np.float32), 0, None)  # not uint8: cannot be encoded
            return super().read()

    crashing = FakeSource(frames=1, then=ZeroDivisionError("bug in the driver"))
    h = harness(crashing, Broken(frames=10**6), sleep=lambda s: None, heartbeat_s=0.02).start()
    got = frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq >= 3))
    assert [m.seq for m in got] == [0, 1, 2, 3]  # the frame that could not be encoded takes no seq
    assert h.node.delays == [0.5, 0.5]  # a frame delivered in between resets the back-off
    h.close()


def test_frames_the_source_reports_skipped_make_seq_jump(harness):
    class Lossy(FakeSource):
        dropped = 0  # cumulative, as the simulated camera counts the frames it skips when read late

        def read(self):
            if self.i == 2:
                self.dropped += 2  # two frames lost before the third
            return super().read()

    h = harness(Lossy(frames=5)).start()
    got = frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq == 6))
    assert [m.seq for m in got] == [0, 1, 4, 5, 6]
    h.close()


def test_end_of_stream_keeps_heartbeating_ended_until_stopped(harness):
    h = harness(FakeSource(frames=3), heartbeat_s=0.02).start()
    frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq == 2))
    ended = [b for b in (h.next(Heartbeat) for _ in range(10)) if b.status == "ended"]
    assert len(ended) >= 5 and all(b.seq == 2 for b in ended)
    assert h.thread.is_alive()
    h.close()
    assert h.result == 3


def test_exit_at_end_returns_after_a_final_ended_heartbeat(harness):
    h = harness(FakeSource(frames=3), exit_at_end=True).start()
    msgs = h.collect(lambda m: isinstance(m, Heartbeat) and m.status == "ended")
    assert [m.seq for m in frames(msgs)] == [0, 1, 2]
    h.thread.join(5)
    assert not h.thread.is_alive() and h.result == 3
    h.close()


def test_max_frames(harness):
    h = harness(FakeSource(frames=10**6)).start(max_frames=4)
    h.thread.join(5)
    assert h.result == 4
    h.close()


def test_tcp_loopback_with_its_own_context_binds_a_free_port():
    factory = Factory(FakeSource(frames=10**6, period_s=0.002))
    h = Harness(factory, endpoint="tcp://127.0.0.1:*", heartbeat_s=0.05)
    h.start()
    assert h.node.endpoint.startswith("tcp://127.0.0.1:") and not h.node.endpoint.endswith("*")
    got = frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq >= 20))
    seqs = [m.seq for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    h.close()


def test_a_misconfigured_source_or_a_taken_port_is_an_error(harness):
    h = harness(ValueError("unknown source 'devce:0'"))
    h.start()
    h.thread.join(5)
    with pytest.raises(NodeError, match="cannot open its source: unknown source 'devce:0'"):
        h.close()
    ctx = zmq.Context()
    taken = ctx.socket(zmq.PUB)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        node = CameraNode(CAM, Factory(FakeSource()), f"tcp://127.0.0.1:{port}")
        with pytest.raises(NodeError, match=f"cannot publish on tcp://127.0.0.1:{port}"):
            node.run()
    finally:
        taken.close(linger=0)
        ctx.term()


def test_constructor_checks():
    for kw, match in [({"fmt": "gray9"}, "format"), ({"quality": 0}, "quality"), ({"heartbeat_s": 0}, "heartbeat"),
                      ({"backoff": ()}, "back-off"), ({"clock": "sundial"}, "clock")]:
        with pytest.raises(NodeError, match=match):
            CameraNode(CAM, Factory(), **kw)


def test_frames_missed_counts_whole_frame_periods():
    from capture.camera_node import frames_missed

    period = round(1e9 / 30)
    assert frames_missed(0, period, 30.0) == 0  # the next frame: nothing missed
    assert frames_missed(0, int(1.4 * period), 30.0) == 0  # jitter is not a gap
    assert frames_missed(0, 5 * period, 30.0) == 4
    assert frames_missed(5 * period, 0, 30.0) == 0 and frames_missed(0, 5 * period, 0.0) == 0


def test_default_endpoint():
    assert default_endpoint(CAM, 2) == "tcp://127.0.0.1:5552"
    assert default_endpoint(CAM.replace(endpoint="tcp://127.0.0.1:6000"), 2) == "tcp://127.0.0.1:6000"
    assert CameraNode(load_rig("studio-4")["cam1"], Factory()).endpoint == "tcp://127.0.0.1:5551"


# -- the command line -----------------------------------------------------------------------------------------

def _parse(*argv):
    p = argparse.ArgumentParser(prog="mocap")
    add_node_parser(p.add_subparsers(dest="verb", required=True))
    return p.parse_args(["node", "camera", *argv])


def test_parser_defaults_and_options():
    a = _parse("--rig", "studio-4", "--camera", "cam0")
    assert (a.verb, a.node_verb, a.node_run) == ("node", "camera", run_camera_node)
    assert (a.pub, a.fmt, a.quality, a.seed, a.people, a.no_pace, a.exit_at_end) == \
        (None, "jpeg", 90, 0, 2, False, False)
    a = _parse("--rig", "r.toml", "--camera", "c", "--pub", "tcp://127.0.0.1:7000", "--format", "bgr8",
               "--quality", "70", "--seed", "3", "--people", "1", "--no-pace", "--exit-at-end")
    assert (a.pub, a.fmt, a.quality, a.seed, a.people, a.no_pace, a.exit_at_end) == \
        ("tcp://127.0.0.1:7000", "bgr8", 70, 3, 1, True, True)
    with pytest.raises(SystemExit):
        _parse("--rig", "studio-4", "--camera", "cam0", "--format", "png")


def test_unknown_camera_names_the_rigs_cameras():
    with pytest.raises(KeyError, match="has no camera 'cam9'; it has cam0, cam1, cam2, cam3"):
        run_camera_node(_parse("--rig", "studio-4", "--camera", "cam9"))


@pytest.fixture
def fake_sources(monkeypatch):
    """A stand-in capture.sources whose open_source records its arguments."""
    calls = []
    module = types.ModuleType("capture.sources")

    def open_source(camera, **kw):
        calls.append((camera.name, kw))
        src = FakeSource(frames=module.frames, then=module.then, period_s=module.period_s)
        src.width, src.height, src.fps, src.name = camera.width, camera.height, camera.fps, camera.name
        return src

    module.open_source, module.SourceError, module.EndOfStream = open_source, SourceError, EndOfStream
    module.frames, module.then, module.period_s, module.calls = 3, EndOfStream, 0.0, calls
    monkeypatch.setitem(sys.modules, "capture.sources", module)
    monkeypatch.setattr(camera_node, "_source_errors", lambda: (SourceError, EndOfStream))
    return module


def test_run_camera_node_announces_and_exits_at_the_end(fake_sources, capsys, monkeypatch):
    monkeypatch.setattr(FakeSource, "read", lambda self: (_ for _ in ()).throw(EndOfStream("end")))
    args = _parse("--rig", "studio-4", "--camera", "cam2", "--pub", "tcp://127.0.0.1:*", "--quality", "80",
                  "--seed", "4", "--people", "3", "--no-pace", "--exit-at-end")
    assert run_camera_node(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("camera cam2 publishing on tcp://127.0.0.1:") and out.count("\n") == 1
    assert out.endswith(" (jpeg q80, 1280x720 @ 30 fps, simulated)\n")
    (name, kw), = fake_sources.calls
    assert name == "cam2" and kw["rig"].name == "studio-4"
    assert {k: kw[k] for k in ("clock", "pace", "seed", "people")} == \
        {"clock": "monotonic", "pace": False, "seed": 4, "people": 3}


def test_run_camera_node_stops_cleanly_on_sigterm(fake_sources):
    fake_sources.frames, fake_sources.period_s = 10**6, 0.01  # an endless camera: only the signal ends the node
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.monotonic()
    try:
        assert run_camera_node(_parse("--rig", "studio-4", "--camera", "cam0", "--pub", "tcp://127.0.0.1:*")) == 0
    finally:
        timer.cancel()
    assert 0.4 < time.monotonic() - t0 < 4
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored


@pytest.mark.skipif(not HAVE_SOURCES, reason="capture.sources (the simulated camera) has not landed yet")
def test_the_real_simulated_source_through_the_node(harness):
    rig = load_rig("studio-4")
    cam = rig["cam0"]
    h = Harness(Factory(open_source(cam, clock=rig.clock, pace=False, rig=rig, seed=0, people=2))).start()
    got = frames(h.collect(lambda m: isinstance(m, FrameMessage) and m.seq == 4, timeout=60))
    assert [m.seq for m in got] == [0, 1, 2, 3, 4]
    assert all(b.t_ns > a.t_ns for a, b in zip(got, got[1:], strict=False))
    assert image_from_frame(got[0]).shape == (720, 1280, 3)
    h.close()
