"""`mocap node recon` as a real process on a replayed recording, against `mocap reconstruct` on that recording.

A short session is recorded from simulated camera nodes (`mocap record`, real processes, a 320x180 studio-4
so the rendering stays cheap), replayed over loopback ZeroMQ (`mocap replay --keep-time`, so the FrameSets
keep their recorded times) into `mocap node recon`, whose pose3d messages a SUB socket here collects; then
`mocap reconstruct SESSION --filter none` runs on the same recording. The live node and the offline command
share the per-frame code path and see the same simulated detections, so every FrameSet both produced must
have the same people with the same poses, to the bit.
"""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from capture.protocol import Pose3DMessage, decode
from rigs.formats import load_rig, save_rig
from rigs.poses3d_file import read_poses3d
from tests.ports_and_processes import free_port_block

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 2


def _skip_unless_wired() -> None:
    from mocap import cli

    for argv in (["node", "recon", "--help"], ["reconstruct", "--help"]):
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                cli._build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code == 0:
                continue
        pytest.skip(f"`mocap {' '.join(argv[:-1])}` is not wired into mocap/cli.py yet")


def _mocap(*argv, log: Path, timeout: float) -> subprocess.CompletedProcess:
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "mocap", *map(str, argv)], cwd=ROOT, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
    assert proc.returncode == 0, f"mocap {argv[0]} failed:\n{log.read_text()[-3000:]}"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_line(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"mocap node recon exited early:\n{path.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"mocap node recon did not start within {timeout} s:\n{path.read_text()[-3000:]}")


def test_replay_through_the_node_gives_the_offline_poses(tmp_path):
    _skip_unless_wired()
    rig = load_rig("studio-4")
    rig_file = save_rig(rig.replace(cameras=tuple(c.resized(320, 180) for c in rig)), tmp_path / "small.toml")
    session = tmp_path / "take"
    _mocap("record", "--rig", rig_file, "--out", session, "--duration", SECONDS, "--base-port", free_port_block(4),
           log=tmp_path / "record.log", timeout=60)

    port = free_port_block(2)
    frames_at, poses_at = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"
    node_log = tmp_path / "node.log"
    with open(node_log, "w") as out:
        node = subprocess.Popen([sys.executable, "-m", "mocap", "node", "recon", "--rig", str(session / "session.toml"),
                                 "--connect", frames_at, "--pub", poses_at, "--exit-at-end"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"pose3d.recon")
    sub.connect(poses_at)
    live: list[Pose3DMessage] = []
    try:
        _wait_for_line(node_log, "recon node recon:", node, timeout=30)
        time.sleep(0.5)  # our subscription reaches the node before its first message
        _mocap("replay", session, "--pub", frames_at, "--keep-time", "--speed", "0", "--wait", "30",
               log=tmp_path / "replay.log", timeout=60)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (node.poll() is None or sub.poll(200)):
            if sub.poll(100):
                msg = decode(sub.recv_multipart())
                assert isinstance(msg, Pose3DMessage)
                live.append(msg)
        assert node.poll() == 0, f"the node did not end with the replay:\n{node_log.read_text()[-3000:]}"
    finally:
        _stop(node)
        sub.close(0)
        ctx.term()
    node_out = node_log.read_text()
    assert "SIMULATED detector" in node_out and "done:" in node_out and "Traceback" not in node_out

    _mocap("reconstruct", session, "--filter", "none", log=tmp_path / "reconstruct.log", timeout=60)
    offline = read_poses3d(session / "poses3d.npz")
    frame_of = {int(t): i for i, t in enumerate(offline.t_ns)}
    both = [m for m in live if m.t_ns in frame_of]
    assert len(both) >= offline.num_frames - 2 and len(both) >= 0.95 * len(live), (
        f"{len(live)} live messages, {offline.num_frames} offline frames, {len(both)} FrameSets in both")
    people = 0
    first_live = {}
    for msg in both:
        for tid in msg.track_ids.tolist():
            first_live.setdefault(tid, frame_of[msg.t_ns])
    for msg in both:
        t = frame_of[msg.t_ns]
        present = (offline.poses[t, :, :, 3] > 0).any(-1)
        # offline also carries a track's frames from before its confirmation (the live node cannot know the
        # id yet): those are the only extra people it may have
        extra = set(offline.track_ids[t][present].tolist()) - set(msg.track_ids.tolist())
        assert all(t < first_live.get(tid, offline.num_frames) for tid in extra), f"FrameSet {t}: {extra}"
        assert set(msg.track_ids.tolist()) <= set(offline.track_ids[t][present].tolist()), f"FrameSet {t}"
        for pose, tid in zip(msg.poses, msg.track_ids, strict=True):
            slot = int(np.flatnonzero(offline.track_ids[t] == tid)[0])
            assert np.array_equal(offline.poses[t, slot], pose, equal_nan=True), f"FrameSet {t}, track {tid}"
            people += 1
    assert people >= 2 * 0.8 * len(both), f"only {people} people in {len(both)} FrameSets"
