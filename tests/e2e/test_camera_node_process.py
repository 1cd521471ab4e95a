"""A real `mocap node camera` process with the simulated camera, received over tcp loopback.

Run 1 is stopped with SIGTERM (clean exit 0), run 2 is SIGKILLed, run 3 is received by the same subscriber:
a restarted node starts again at seq 0, which is how receivers tell a restart from a gap.
"""

import contextlib
import io
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from capture.protocol import FrameMessage, Heartbeat, RejectCounter, image_from_frame, receive

ROOT = Path(__file__).resolve().parents[2]


def _skip_unless_ready():
    try:
        import capture.sources  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"capture.sources (the simulated camera) is not importable yet: {exc}")
    from mocap import cli

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli._build_parser().parse_args(["node", "camera", "--rig", "studio-4", "--camera", "cam0"])
    except SystemExit:
        pytest.skip("`mocap node camera` is not wired into mocap/cli.py yet (add_node_parser / node_run)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(endpoint):
    cmd = [sys.executable, "-m", "mocap", "node", "camera", "--rig", "studio-4", "--camera", "cam0",
           "--pub", endpoint]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _frames(sub, counter, proc, n, timeout=60.0):
    """The next n frames of cam0 (heartbeats skipped); fails when the process dies first."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"{len(got)} of {n} frames within {timeout} s"
        assert proc.poll() is None, f"the node exited with {proc.returncode}: {proc.communicate()[1][-2000:]}"
        msg = receive(sub, counter, timeout_ms=100)
        if isinstance(msg, FrameMessage) and msg.camera == "cam0":
            got.append((time.monotonic(), msg))
    return got


def _stop(proc, sig):
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_camera_node_process_publishes_stops_cleanly_and_restarts():
    _skip_unless_ready()
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"frame.cam0")
    sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat.cam0")
    sub.connect(endpoint)  # before the node binds: ZeroMQ keeps reconnecting until it is there
    counter = RejectCounter("e2e")
    procs = []
    try:
        # Run 1: frames at ~30 fps, consecutive seqs, 1280x720 JPEG; SIGTERM -> exit 0 within 5 s.
        procs.append(proc := _start(endpoint))
        got = _frames(sub, counter, proc, 30)[5:]  # the first few can come in a burst as the connection opens
        seqs = [m.seq for _, m in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        stamps = [m.t_ns for _, m in got]
        assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
        assert (stamps[-1] - stamps[0]) / (len(stamps) - 1) == pytest.approx(1e9 / 30, rel=0.01)
        rate = (len(got) - 1) / (got[-1][0] - got[0][0])
        assert 20 < rate < 45, f"{rate:.1f} fps received"
        last = got[-1][1]
        assert (last.format, last.width, last.height) == ("jpeg", 1280, 720)
        assert image_from_frame(last).shape == (720, 1280, 3)
        assert last.truth is not None and last.sent_ns >= last.t_ns
        beat = None
        while not isinstance(beat, Heartbeat):
            beat = receive(sub, counter, timeout_ms=2000)
        assert beat.status == "ok"
        t0 = time.monotonic()
        assert _stop(proc, signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 5
        out, err = proc.communicate()
        assert out == f"camera cam0 publishing on {endpoint} (jpeg q90, 1280x720 @ 30 fps, simulated)\n", err
        assert counter.total == 0

        # Run 2: received again, then SIGKILL: nothing to flush, nothing to check but that we carry on.
        procs.append(proc := _start(endpoint))
        _frames(sub, counter, proc, 10)
        assert _stop(proc, signal.SIGKILL) == -signal.SIGKILL
        while receive(sub, counter, timeout_ms=300) is not None:  # drain what run 2 had delivered
            pass

        # Run 3: the same subscriber receives the restarted node, whose seq starts again at 0.
        procs.append(proc := _start(endpoint))
        got = _frames(sub, counter, proc, 10)
        seqs = [m.seq for _, m in got]
        assert seqs[0] < 30 and seqs == list(range(seqs[0], seqs[0] + 10)), seqs
        assert _stop(proc, signal.SIGTERM) == 0
        assert counter.total == 0
    finally:
        for p in procs:
            _stop(p, signal.SIGKILL)
            p.stdout.close()
            p.stderr.close()
        sub.close(linger=0)
        ctx.term()
