"""capture.replay: a recorded session republished over real sockets reproduces its FrameSets, bytes and timing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from capture.protocol import FrameMessage, Heartbeat, RejectCounter, configure_socket, receive
from capture.replay import DEFAULT_ENDPOINT, Replay, replay
from capture.session_reader import SessionError
from capture.sync import FrameRef, TimestampSync, read_sync_csv
from tests.test_session_reader import FPS, PERIOD, N, build_session, small_rig

ROOT = Path(__file__).resolve().parents[1]
ANY = "tcp://127.0.0.1:*"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return build_session(tmp_path_factory.mktemp("replay") / "take")


class Received:
    def __init__(self):
        self.frames: list[tuple[FrameMessage, int]] = []  # (message, arrival monotonic ns)
        self.beats: list[Heartbeat] = []
        self.sets = []


def subscribe(ctx, endpoints, hwm: int = 100_000) -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    configure_socket(sub, hwm=hwm)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    for e in endpoints:
        sub.connect(e)
    return sub


def collect(sub, cameras, *, timeout_s=30.0, slow_s=0.0, until=None) -> Received:
    """Receive frames (fed to a TimestampSync) and heartbeats until every camera sent 'ended' (or ``until``)."""
    got = Received()
    sync = TimestampSync(cameras, FPS)
    counter = RejectCounter("test")
    ended: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(ended) < len(cameras) and time.monotonic() < deadline and not (until and until(got)):
        msg = receive(sub, counter, 100)
        now = time.monotonic_ns()
        if isinstance(msg, FrameMessage):
            got.frames.append((msg, now))
            got.sets += sync.push(FrameRef(msg.camera, msg.seq, msg.t_ns), now)
            if slow_s:
                time.sleep(slow_s)
        elif isinstance(msg, Heartbeat):
            got.beats.append(msg)
            if msg.status == "ended":
                ended.add(msg.camera)
        else:
            got.sets += sync.poll(now)
    got.sets += sync.flush()
    assert counter.total == 0, counter.counts
    return got


def run(rep: Replay, ctx=None, stop=None, **collect_kw):
    """Run a replay in a thread and receive it here; returns (stats, Received)."""
    own = ctx is None
    ctx = ctx or zmq.Context()
    stop = stop or threading.Event()
    out = {}
    thread = threading.Thread(target=lambda: out.update(stats=rep.run(stop)), daemon=True)
    thread.start()
    assert rep.ready.wait(10)
    sub = subscribe(ctx, sorted(set(rep.endpoints.values())), collect_kw.pop("hwm", 100_000))
    try:
        got = collect(sub, rep.cameras, **collect_kw)
    finally:
        stop.set()
        thread.join(15)
        sub.close(linger=0)
        if own:
            ctx.term()
    assert not thread.is_alive()
    return out["stats"], got


def check_sets(recorded, got):
    """The replayed FrameSets are the ones in sync.csv: same members (seq per camera), same completeness,
    set times shifted by the replay's one constant offset."""
    _, t_ns, seqs, cams = read_sync_csv(recorded.folder / "sync.csv")
    assert cams == recorded.cameras
    replayed = np.array([[-1 if f is None else f.seq for f in fs.frames.values()] for fs in got.sets])
    assert replayed.shape == seqs.shape
    np.testing.assert_array_equal(replayed, seqs)
    assert [fs.complete for fs in got.sets] == (seqs >= 0).all(axis=1).tolist()
    assert not all(fs.complete for fs in got.sets)  # the camera with drops leaves partial sets
    shift = {int(fs.t_ns) - int(t) for fs, t in zip(got.sets, t_ns, strict=True)}
    assert len(shift) == 1
    return shift.pop()


@pytest.mark.parametrize("speed", [0, 1, 4])
def test_replay_reproduces_the_recorded_framesets(recorded, speed):
    rep = Replay(recorded.folder, ANY, speed=speed, wait_s=10)
    stats, got = run(rep)
    shift = check_sets(recorded, got)
    by_cam = {c: [m for m, _ in got.frames if m.camera == c] for c in recorded.cameras}
    for cam, sent in recorded.sent.items():
        msgs = by_cam[cam]
        assert [m.seq for m in msgs] == [s[0] for s in sent]  # seq as recorded
        assert [m.t_ns - shift for m in msgs] == [s[1] for s in sent]  # recorded times, one shift for all
        assert [m.payload for m in msgs] == [s[2] for s in sent]  # the recorded JPEG bytes
        assert all(m.format == "jpeg" and (m.width, m.height) == (160, 90) for m in msgs)
        assert all(m.truth == s[3] for m, s in zip(msgs, sent, strict=True) if m.truth is not None)
        assert sum(m.truth is not None for m in msgs) >= len(sent) - 2
        beats = [b for b in got.beats if b.camera == cam]
        assert beats and beats[-1].status == "ended" and beats[-1].seq == sent[-1][0]
    assert stats.sent == stats.total_frames == sum(len(s) for s in recorded.sent.values())
    assert stats.passes == 1 and not stats.stopped and stats.skipped == 0
    if speed:
        arrivals = [t for _, t in got.frames]
        took = (arrivals[-1] - arrivals[0]) / 1e9
        recorded_s = (recorded.sent["cam3"][-1][1] - recorded.sent["cam0"][0][1]) / 1e9
        assert stats.recorded_s == pytest.approx(recorded_s)
        assert recorded_s / speed * 0.8 <= took <= recorded_s / speed * 1.2, (took, recorded_s)


def test_per_camera_endpoints_and_recorded_times(recorded):
    endpoints = {c: ANY for c in recorded.cameras}
    rep = Replay(recorded.folder, endpoints, speed=0, retime=False, wait_s=10)
    stats, got = run(rep)
    assert len(set(stats.endpoints.values())) == len(recorded.cameras)
    assert check_sets(recorded, got) == 0  # retime=False: the recorded t_ns
    # --pub-per-camera: where `mocap node camera` publishes (the rig's endpoints, else 5550 + index)
    planned = Replay(recorded.folder, per_camera=True).endpoints
    assert planned == {c: f"tcp://127.0.0.1:{5550 + i}" for i, c in enumerate(recorded.cameras)}
    assert set(Replay(recorded.folder).endpoints.values()) == {DEFAULT_ENDPOINT}


def test_a_slow_subscriber_loses_nothing(recorded):
    ctx = zmq.Context()
    try:
        rep = Replay(recorded.folder, "inproc://replay-slow", speed=0, wait_s=10, hwm=2, context=ctx)
        stats, got = run(rep, ctx, hwm=2, slow_s=0.001)
    finally:
        ctx.term()
    assert stats.blocked > 0  # the replay waited for the subscriber instead of dropping
    assert len(got.frames) == stats.total_frames
    check_sets(recorded, got)


def test_loop_keeps_seq_and_time_rising(recorded):
    total = sum(len(s) for s in recorded.sent.values())
    stop = threading.Event()
    rep = Replay(recorded.folder, ANY, speed=0, loop=True, wait_s=10)
    stats, got = run(rep, stop=stop, until=lambda g: len(g.frames) >= total * 3 // 2)
    assert stats.passes >= 1 and stats.stopped
    for cam, sent in recorded.sent.items():
        msgs = [m for m, _ in got.frames if m.camera == cam]
        assert all(np.diff([m.t_ns for m in msgs]) > 0) and all(np.diff([m.seq for m in msgs]) > 0)
        second = [m for m in msgs if m.seq >= N]
        assert [m.seq - N for m in second] == [s[0] for s in sent][: len(second)]
        assert [m.payload for m in second] == [s[2] for s in sent][: len(second)]
        span = recorded.sent["cam3"][-1][1] - recorded.sent["cam0"][0][1]
        if second:
            assert second[0].t_ns - msgs[0].t_ns == span + PERIOD  # the next pass starts a frame after the last


def test_raw_session_replays_raw_frames(tmp_path):
    rec = build_session(tmp_path / "raw", small_rig(1), dropped={}, fmt="bgr8")
    cam = rec.cameras[0]
    rep = Replay(rec.folder, ANY, speed=0, wait_s=10)
    stats, got = run(rep)
    msgs = [m for m, _ in got.frames]
    assert [m.format for m in msgs] == ["bgr8"] * N
    assert [m.payload for m in msgs] == [s[2] for s in rec.sent[cam]]  # FFV1: lossless


def test_bad_arguments(recorded, tmp_path):
    with pytest.raises(ValueError, match="speed"):
        Replay(recorded.folder, speed=-1)
    with pytest.raises(SessionError, match="no camera"):
        Replay(recorded.folder, cameras=["nope"])
    with pytest.raises(SessionError, match="not a session folder"):
        replay(tmp_path)
    with pytest.raises(ValueError, match="no endpoint given for camera"):
        Replay(recorded.folder, {"cam0": ANY})


def test_cli_replay_in_its_own_process(recorded):
    """`mocap replay` as a real process: waits for the subscriber, then publishes every frame and exits."""
    probe = zmq.Context.instance().socket(zmq.PUB)
    probe.bind(ANY)
    endpoint = probe.getsockopt(zmq.LAST_ENDPOINT).decode()
    probe.close(linger=0)
    script = textwrap.dedent("""
        import argparse, sys
        from capture.replay import add_replay_parser
        parser = argparse.ArgumentParser(prog="mocap")
        add_replay_parser(parser.add_subparsers(dest="verb", required=True))
        args = parser.parse_args(sys.argv[1:])
        sys.exit(args.replay_run(args))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, "replay", str(recorded.folder), "--pub", endpoint,
                             "--speed", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ctx = zmq.Context()
    sub = subscribe(ctx, [endpoint])
    try:
        got = collect(sub, recorded.cameras)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close(linger=0)
        ctx.term()
    assert proc.returncode == 0, err
    check_sets(recorded, got)
    assert f"replaying {recorded.folder}: 4 cameras, {sum(map(len, recorded.sent.values()))} frames" in out
    assert "waiting for a subscriber" in out and "done: " in out
