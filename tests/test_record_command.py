"""capture.record_command (`mocap record`) and capture.subscriber, in process: argument and folder errors, the disk
estimate and its warning, recording from fake camera publishers over tcp loopback (every frame sent lands in the
video CSVs), SIGINT finishing cleanly, and a full disk stopping the recording with exit 1."""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import os
import signal
import threading
import time
from collections import namedtuple

import cv2
import numpy as np
import pytest
import zmq

import capture.recorder as recorder_module
from capture.protocol import FrameMessage, Heartbeat, frame_from_image
from capture.record_command import add_record_parser, parse_connect, run_record
from capture.segment_writer import SegmentWriter, list_segments
from capture.sources import SimulatedCameraSource
from capture.subscriber import FrameSubscriber, receive_hwm
from capture.sync import read_sync_csv
from rigs.formats import load_rig, save_rig
from rigs.session_file import read_session_info

FPS = 30.0
PERIOD = round(1e9 / FPS)
N = 30  # frames per camera sent by the fake publishers
DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.fixture(scope="module")
def small_rig_file(tmp_path_factory):
    """studio-4 at 160x90 (quick to render and encode), as a rig file."""
    rig = load_rig("studio-4")
    rig = rig.replace(cameras=tuple(c.resized(160, 90) for c in rig.cameras))
    return save_rig(rig, tmp_path_factory.mktemp("rig") / "rig.toml")


def _parse(argv):
    p = argparse.ArgumentParser(prog="mocap")
    verbs = p.add_subparsers(dest="verb", required=True)
    add_record_parser(verbs)
    return p.parse_args(["record", *argv])


def _record(argv, **kwargs):
    """Run `record` through the parser wiring (args.func) with stdout and stderr captured."""
    args = _parse(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def _one_error(code, out, err, *needles):
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mocap: error: "), err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_parser_sets_func_and_defaults():
    args = _parse(["--rig", "studio-4", "--out", "x"])
    assert args.func is run_record
    assert (args.duration, args.connect, args.segment, args.cameras, args.fmt, args.quality, args.seed,
            args.people, args.base_port) == (None, None, 60.0, None, "jpeg", 90, 0, 2, None)
    args = _parse(["--rig", "studio-4", "--out", "x", "--connect", "tcp://a:1", "cam1=tcp://b:2", "--duration", "5"])
    assert args.connect == ["tcp://a:1", "cam1=tcp://b:2"] and args.duration == 5.0


def test_out_under_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    _one_error(*_record(["--rig", "studio-4", "--out", str(tmp_path / "file" / "session")]),
               "cannot create the folder", "a part of the path is a file")
    _one_error(*_record(["--rig", "studio-4", "--out", str(tmp_path / "file")]), "not a folder")


def test_out_holding_a_recording_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sync.csv").write_text("set,t_ns\n")
    _one_error(*_record(["--rig", "studio-4", "--out", str(tmp_path / "s")]), "already holds a recording")
    assert (tmp_path / "s" / "sync.csv").read_text() == "set,t_ns\n"


@pytest.mark.parametrize("extra, needle", [
    (["--duration", "0"], "--duration"),
    (["--duration", "nan"], "--duration"),
    (["--segment", "-1"], "--segment"),
    (["--quality", "0"], "--quality"),
    (["--people", "-1"], "--people"),
    (["--cameras", "cam0,camX"], "camX"),
    (["--connect", "camX=tcp://127.0.0.1:5999"], "camX"),
    (["--connect", "localhost:5550"], "not a ZeroMQ endpoint"),
    (["--connect", "tcp://127.0.0.1:5999", "--base-port", "6000"], "--base-port"),
    (["--base-port", "70000"], "--base-port"),
    (["--cameras", "cam0", "--connect", "cam1=tcp://127.0.0.1:5999"], "cam1"),
])
def test_argument_errors_exit_2_before_anything_is_written(tmp_path, extra, needle):
    out_dir = tmp_path / "s"
    _one_error(*_record(["--rig", "studio-4", "--out", str(out_dir), *extra]), needle)
    assert not out_dir.exists()


def test_unknown_rig_is_one_clear_error(tmp_path):
    _one_error(*_record(["--rig", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "s")]), "nope.toml")


def test_parse_connect():
    names = ("cam0", "cam1")
    c = parse_connect(["cam0=tcp://10.0.0.5:5550", "tcp://10.0.0.6:5550", "ipc:///tmp/x=y"], names)
    assert c.named == {"cam0": "tcp://10.0.0.5:5550"}
    assert c.plain == ["tcp://10.0.0.6:5550", "ipc:///tmp/x=y"]  # '=' after '://' belongs to the endpoint
    assert set(c.endpoints.values()) == {"tcp://10.0.0.5:5550", "tcp://10.0.0.6:5550", "ipc:///tmp/x=y"}


def _fake_disk(monkeypatch, free):
    monkeypatch.setattr(recorder_module.shutil, "disk_usage", lambda path: DiskUsage(10**13, 10**13 - free, free))


def test_disk_estimate_and_warning(tmp_path, monkeypatch, small_rig_file):
    stop = threading.Event()
    stop.set()  # stop at once: only the checks before the recording are of interest here
    per_hour = recorder_module.estimate_bytes_per_hour(load_rig(small_rig_file))
    _fake_disk(monkeypatch, free=10**12)
    code, out, err = _record(["--rig", str(small_rig_file), "--out", str(tmp_path / "a"), "--duration", "60",
                              "--connect", "tcp://127.0.0.1:1"], stop=stop)
    assert code == 0, err
    assert f"disk estimate: {recorder_module.format_bytes(per_hour)} per hour" in out
    assert f"{recorder_module.format_bytes(per_hour / 60)} for the requested 60 s" in out
    assert "NOT ENOUGH DISK SPACE" not in err

    _fake_disk(monkeypatch, free=per_hour // 120)  # holds 30 s of the 60 s asked for
    code, out, err = _record(["--rig", str(small_rig_file), "--out", str(tmp_path / "b"), "--duration", "60",
                              "--connect", "tcp://127.0.0.1:1"], stop=stop)
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if "NOT ENOUGH DISK SPACE" in ln]
    assert len(warning) == 1 and warning[0].startswith("mocap: warning: ")
    assert "fills up after about 50%" in warning[0] and str(tmp_path / "b") in warning[0]

    # no --duration: the check is for one hour
    _fake_disk(monkeypatch, free=per_hour // 2)
    code, out, err = _record(["--rig", str(small_rig_file), "--out", str(tmp_path / "c"),
                              "--connect", "tcp://127.0.0.1:1"], stop=stop)
    assert code == 0 and "one hour (no --duration)" in out and "NOT ENOUGH DISK SPACE" in err


def test_subscriber_counts_rejects_and_filters_nothing_it_was_not_asked_for():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        with FrameSubscriber({"cam0": f"tcp://127.0.0.1:{port}"}, context=ctx) as sub:
            assert sub.hwm == receive_hwm(1) and sub.hwm >= 300
            assert sub.socket.getsockopt(zmq.RCVHWM) == sub.hwm
            subs = {pub.recv(), pub.recv()} if pub.poll(5000) else set()
            assert subs == {b"\x01frame.cam0", b"\x01heartbeat.cam0"}
            assert sub.recv(timeout_ms=10) is None
            msg = FrameMessage("cam0", 3, 10, 2, 2, "gray8", b"\0" * 4)
            pub.send_multipart([b"frame.cam0", b"\xc1", b""])  # malformed header: counted, not raised
            pub.send_multipart(msg.encode())
            pub.send_multipart(Heartbeat("cam0", 3, 11, 30.0, "ok").encode())
            got = [sub.recv(timeout_ms=2000) for _ in range(3)]
            assert got[0] is None and got[1] == msg and isinstance(got[2], Heartbeat)
            assert sub.rejects.counts == {"bad_header": 1}
            assert sub.frames == {"cam0": 1} and sub.last_heartbeat["cam0"].seq == 3
        assert receive_hwm(8, 30.0, 10.0) == 8 * 31 * 10
        with pytest.raises(ValueError, match="not a ZeroMQ endpoint"):
            FrameSubscriber({"cam0": "127.0.0.1:5550"}, context=ctx)
    finally:
        pub.close(0)
        ctx.term()


class FakeNodes:
    """PUB sockets standing in for camera nodes: each sends the simulated frames of its cameras, same timestamps."""

    def __init__(self, rig, groups, n=N):
        self.ctx = zmq.Context()
        self.rig = rig
        self.groups = groups  # one list of cameras per socket
        self.socks = [self.ctx.socket(zmq.XPUB) for _ in groups]
        self.endpoints = [f"tcp://127.0.0.1:{s.bind_to_random_port('tcp://127.0.0.1')}" for s in self.socks]
        self.n = n
        self.sent: dict[str, list[FrameMessage]] = {}
        t0 = time.monotonic_ns()
        for cams in groups:
            for cam in cams:
                src = SimulatedCameraSource(rig[cam], pace=False, seconds=2.0)
                self.sent[cam] = []
                for i in range(n):
                    f = src.read()
                    self.sent[cam].append(frame_from_image(cam, i, t0 + i * PERIOD, f.image, truth=f.truth))

    def wait_subscribed(self, timeout=10.0):
        for s in self.socks:
            assert s.poll(int(timeout * 1000)), "the recorder never subscribed"
            while s.poll(0):
                s.recv()

    def publish(self, rate=120.0):
        for i in range(self.n):
            for s, cams in zip(self.socks, self.groups, strict=True):
                for cam in cams:
                    s.send_multipart(self.sent[cam][i].encode())
            if i == 3:
                self.socks[-1].send_multipart([b"frame.camX", b"\xc1", b"junk"])  # rejected and counted
            time.sleep(1 / rate)

    def close(self):
        for s in self.socks:
            s.close(0)
        self.ctx.term()


def _csv_rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wait_rows(folder, cameras, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(_csv_rows(folder / "video" / f"{c}.csv")) >= n for c in cameras):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sync", ["timestamp", "index"])
def test_connect_to_fake_nodes_records_every_frame_sent_and_stops_on_sigint(tmp_path, small_rig_file, sync):
    rig = load_rig(small_rig_file)
    # cam0 named; the plain endpoint carries cam1, cam2 (in the rig, not recorded) and camX (not in the rig)
    nodes = FakeNodes(rig, [["cam0"], ["cam1", "cam2"]])
    extra = frame_from_image("camX", 0, 0, np.zeros((16, 16), np.uint8), "gray8")
    folder = tmp_path / "session"
    result = {}

    def drive():
        try:
            nodes.wait_subscribed()
            nodes.publish()
            for s in nodes.socks:
                s.send_multipart(extra.encode())
                s.send_multipart(extra.encode())
            result["all"] = _wait_rows(folder, ["cam0", "cam1"], N)
        finally:
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)  # the recorder's handler: finish cleanly

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        code, out, err = _record(["--rig", str(small_rig_file), "--out", str(folder), "--cameras", "cam0,cam1",
                                  "--connect", f"cam0={nodes.endpoints[0]}", nodes.endpoints[1],
                                  "--segment", "0.5", "--sync", sync])
    finally:
        thread.join(10)
        nodes.close()
    assert code == 0, err
    assert result.get("all"), err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    for cam in ("cam0", "cam1"):
        rows = _csv_rows(folder / "video" / f"{cam}.csv")
        sent = nodes.sent[cam]
        assert [(int(r["seq"]), int(r["t_ns"])) for r in rows] == [(m.seq, m.t_ns) for m in sent]
        segments = list_segments(folder, cam)
        assert len(segments) >= 2  # 1 s of frames in 0.5 s segments
        for k, seg in enumerate(segments):
            cap = cv2.VideoCapture(str(seg))
            count = 0
            while cap.grab():
                count += 1
            cap.release()
            assert count == sum(int(r["segment"]) == k for r in rows), seg
    assert not (folder / "video" / "cam2.csv").exists()
    index, t_ns, seqs, cams = read_sync_csv(folder / "sync.csv")
    assert cams == ("cam0", "cam1") and len(index) == N and (seqs >= 0).all()
    assert (folder / "truth" / "poses3d.npz").exists()
    info = read_session_info(folder)
    assert info.stages[0].name == "record" and info.stages[0].command.startswith("mocap record --rig")

    warnings = [ln for ln in err.splitlines() if ln.startswith("mocap: warning:")]
    assert sum("'camX'" in ln for ln in warnings) == 1 and sum("'cam2'" in ln for ln in warnings) == 1
    assert "record: stopped by SIGINT" in out
    assert f"FrameSets: {N} ({N} complete, 0 partial)" in out
    assert "ignored frames of other cameras: cam2 30, camX 4" in out  # camX: 2 per endpoint
    assert "rejected messages: 1" in out
    assert f"session: {folder.resolve()}" in out
    assert [ln.split()[:3] for ln in out.splitlines() if ln.startswith(("cam0 ", "cam1 "))] == \
        [["cam0", str(N), "0"], ["cam1", str(N), "0"]]


def test_disk_full_stops_with_exit_1_and_keeps_what_was_written(tmp_path, small_rig_file, monkeypatch):
    rig = load_rig(small_rig_file)
    nodes = FakeNodes(rig, [["cam0", "cam1"]])
    calls = {"n": 0}
    write = SegmentWriter.write

    def failing_write(self, msg, now_ns=None):
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.csv_path))
        return write(self, msg, now_ns)

    monkeypatch.setattr(SegmentWriter, "write", failing_write)
    stop = threading.Event()
    folder = tmp_path / "session"

    def drive():
        try:
            nodes.wait_subscribed()
            nodes.publish()
        finally:
            time.sleep(3)
            stop.set()  # only if the recorder did not stop by itself

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    try:
        code, out, err = _record(["--rig", str(small_rig_file), "--out", str(folder), "--connect",
                                  nodes.endpoints[0], "--cameras", "cam0,cam1"], stop=stop)
        assert not stop.is_set(), "the recording did not stop on the write error"
    finally:
        stop.set()
        thread.join(10)
        nodes.close()
    assert code == 1, (out, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("mocap: error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0] and str(folder) in errors[0]
    assert "the disk is full" in out and f"session: {folder.resolve()}" in out
    rows = sum(len(_csv_rows(folder / "video" / f"{c}.csv")) for c in ("cam0", "cam1"))
    assert rows == 20
    assert read_session_info(folder).stages[0].name == "record"
    for cam in ("cam0", "cam1"):
        for seg in list_segments(folder, cam):
            cap = cv2.VideoCapture(str(seg))
            assert cap.grab(), seg
            cap.release()


def test_record_is_wired_into_mocap_cli_when_present(tmp_path):
    from mocap import cli

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = cli._build_parser().parse_args(["record", "--rig", "studio-4", "--out", str(tmp_path / "s")])
    except SystemExit:
        pytest.skip("`mocap record` is not wired into mocap/cli.py yet (add_record_parser / func)")
    assert args.func is run_record
    (tmp_path / "f").write_text("")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["record", "--rig", "studio-4", "--out", str(tmp_path / "f" / "s")])
    assert code == 2 and err.getvalue().count("mocap: error:") == 1


def test_receive_queue_is_sized_per_connection_not_for_the_whole_rig():
    """ZeroMQ's RCVHWM is per connection: one node per camera gets one camera's buffer, a replay socket
    carrying four cameras gets four cameras' worth, so overload drops (counted) instead of exhausting memory."""
    ctx = zmq.Context()
    try:
        own = {f"cam{i}": f"tcp://127.0.0.1:{41000 + i}" for i in range(4)}
        shared = {f"cam{i}": "tcp://127.0.0.1:41010" for i in range(4)}
        with FrameSubscriber(own, context=ctx, fps=30.0) as a, FrameSubscriber(shared, context=ctx, fps=30.0) as b:
            assert a.hwm == receive_hwm(1, 30.0) and b.hwm == receive_hwm(4, 30.0)
            assert b.hwm == 4 * a.hwm
    finally:
        ctx.term()
