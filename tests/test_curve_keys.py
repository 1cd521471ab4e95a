"""CURVE keys beside the rig file: generate/load, and real PUB/SUB sockets on tcp loopback that admit only the
authorized subscriber (a camera node included)."""

import argparse
import stat
import threading
import time
from collections import namedtuple

import numpy as np
import pytest
import zmq

from capture import camera_node
from capture.camera_node import CameraNode
from capture.curve_keys import (
    AUTHORIZED,
    CurveError,
    CurveKeys,
    add_keys_parser,
    generate_keys,
    keys_dir,
    load_keys,
    secure_client,
    secure_server,
)
from capture.protocol import FrameMessage, Heartbeat, RejectCounter, configure_socket, receive
from rigs.camera import look_at
from rigs.formats import load_rig, save_rig

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")

SILENCE_S = 1.5  # how long an unauthorized subscriber must stay empty-handed


@pytest.fixture
def rig_file(tmp_path):
    return save_rig(load_rig("studio-4"), tmp_path / "lab" / "rig.toml")


@pytest.fixture
def keys(rig_file):
    generate_keys(rig_file, clients=("recorder", "viewer"))
    return load_keys(rig_file)


# -- generate and load ----------------------------------------------------------------------------------------

def test_generate_load_round_trip(rig_file):
    folder = generate_keys(rig_file, clients=("recorder", "viewer"))
    assert folder == rig_file.parent / "rig.keys" == keys_dir(rig_file)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == [f"{AUTHORIZED}/recorder.key", f"{AUTHORIZED}/viewer.key", "recorder.key", "recorder.key_secret",
                     "server.key", "server.key_secret", "viewer.key", "viewer.key_secret"]
    for secret in folder.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    k = load_keys(rig_file)
    assert isinstance(k, CurveKeys) and k.folder == folder and k.client == "recorder"
    assert all(len(key) == 40 for key in (k.server_public, k.server_secret, k.client_public, k.client_secret))
    assert zmq.curve_public(k.server_secret) == k.server_public
    assert zmq.curve_public(k.client_secret) == k.client_public
    viewer = load_keys(rig_file, client="viewer")
    assert viewer.server_public == k.server_public and viewer.client_public != k.client_public
    assert set(k.authorized) == {k.client_public, viewer.client_public}
    assert k.server_secret.decode() not in repr(k) and k.client_secret.decode() not in repr(k)


def test_no_keys_means_curve_off(rig_file, tmp_path):
    assert load_keys(rig_file) is None
    assert load_keys("studio-4") is None  # a preset: no file to keep keys beside
    assert load_keys(tmp_path / "missing.toml") is None


def test_a_subscriber_host_has_public_server_key_and_its_own_keypair_only(rig_file, keys):
    (keys.folder / "server.key_secret").unlink()
    k = load_keys(rig_file)
    assert k.server_public == keys.server_public and k.server_secret is None
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    try:
        with pytest.raises(CurveError, match="server.key_secret"):
            secure_server(pub, k, ctx)
        assert load_keys(rig_file, client="nobody").client is None
        with pytest.raises(CurveError, match="client keypair"):
            secure_client(sub, load_keys(rig_file, client="nobody"))
        secure_client(sub, k)  # the recorder's own pair is enough to subscribe
    finally:
        pub.close(linger=0)
        sub.close(linger=0)
        ctx.term()
    (keys.folder / "server.key").unlink()
    with pytest.raises(CurveError, match="no server.key"):
        load_keys(rig_file)


def test_generate_refuses_presets_missing_files_bad_names_and_overwriting(rig_file, tmp_path):
    with pytest.raises(CurveError, match="preset"):
        generate_keys("studio-4")
    with pytest.raises(CurveError, match="no such rig file"):
        generate_keys(tmp_path / "nope.toml")
    for bad in ("server", "../x", "", "a b"):
        with pytest.raises(CurveError, match="client name"):
            generate_keys(rig_file, clients=(bad,))
    assert not keys_dir(rig_file).exists()
    generate_keys(rig_file)
    before = load_keys(rig_file)
    with pytest.raises(CurveError, match="--force"):
        generate_keys(rig_file)
    assert load_keys(rig_file).server_public == before.server_public
    generate_keys(rig_file, force=True)
    assert load_keys(rig_file).server_public != before.server_public
    assert [p.name for p in rig_file.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def _keys_args(*argv):
    p = argparse.ArgumentParser(prog="mocap")
    add_keys_parser(p.add_subparsers(dest="verb", required=True))
    return p.parse_args(["keys", *argv])


def test_mocap_keys_command(rig_file, capsys):
    args = _keys_args("--rig", str(rig_file), "--client", "recorder", "--client", "recon")
    assert args.keys_run(args) == 0
    out = capsys.readouterr().out
    assert f"in {keys_dir(rig_file)}" in out
    assert "camera nodes (this host: cam0, cam1, cam2, cam3) need the rig file, lab/rig.keys/server.key_secret" in out
    assert "the recon host needs the rig file, lab/rig.keys/server.key and lab/rig.keys/recon.key_secret" in out
    assert load_keys(rig_file, client="recon").client == "recon"
    with pytest.raises(CurveError, match="--force"):
        args.keys_run(args)
    args = _keys_args("--rig", str(rig_file), "--force")
    assert (args.clients, args.force) == (None, True)
    assert args.keys_run(args) == 0
    assert sorted(p.name for p in (keys_dir(rig_file) / AUTHORIZED).iterdir()) == ["recorder.key"]
    with pytest.raises(CurveError, match="preset"):
        args.keys_run(_keys_args("--rig", "studio-4"))


# -- real sockets ---------------------------------------------------------------------------------------------

def _frame(seq):
    return FrameMessage("cam0", seq, seq * 1000, 2, 2, "gray8", bytes(4))


def _sub(ctx, endpoint, keys=None, client_keys=None):
    """A SUB for everything; ``keys`` with ``client_keys`` (public, secret) overriding the rig's client pair."""
    sub = ctx.socket(zmq.SUB)
    configure_socket(sub)
    if keys is not None:
        secure_client(sub, keys)
        if client_keys is not None:
            sub.curve_publickey, sub.curve_secretkey = client_keys
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return sub


def _drain(sub, counter, seconds):
    """Every valid message received within ``seconds``."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        msg = receive(sub, counter, timeout_ms=max(1, int(left * 1000)))
        if msg is not None:
            got.append(msg)
    return got


def test_curve_pub_serves_only_the_authorized_subscriber(keys):
    server_ctx, client_ctx = zmq.Context(), zmq.Context()
    pub = server_ctx.socket(zmq.PUB)
    auth = secure_server(pub, keys, server_ctx)
    stop = threading.Event()
    subs = []
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"

        def publish():
            seq = 0
            while not stop.is_set():
                pub.send_multipart(_frame(seq).encode())
                seq += 1
                time.sleep(0.005)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        counter = RejectCounter("test")
        good = _sub(client_ctx, endpoint, keys)
        plain = _sub(client_ctx, endpoint)  # no keys at all
        wrong = _sub(client_ctx, endpoint, keys, client_keys=zmq.curve_keypair())  # a key nobody authorized
        subs = [good, plain, wrong]
        assert _next_frame(good, counter, 5.0) is not None, "the authorized subscriber got nothing"
        # While the others stay empty-handed, the publisher keeps serving the authorized one.
        t0 = time.monotonic()
        served = []
        while time.monotonic() - t0 < SILENCE_S:
            served += _drain(good, counter, 0.1)
            for other in (plain, wrong):
                assert not other.poll(0, zmq.POLLIN), "a subscriber without the right key received a message"
        assert not plain.poll(100, zmq.POLLIN) and not wrong.poll(0, zmq.POLLIN)
        seqs = [m.seq for m in served]
        assert len(seqs) > 50 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert counter.total == 0
    finally:
        stop.set()
        for s in (*subs, pub):
            s.close(linger=0)
        auth.stop()
        server_ctx.term()
        client_ctx.term()


def _next_frame(sub, counter, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = receive(sub, counter, timeout_ms=50)
        if isinstance(msg, FrameMessage):
            return msg
    return None


def test_a_client_with_the_wrong_server_key_gets_nothing(keys):
    server_ctx, client_ctx = zmq.Context(), zmq.Context()
    pub = server_ctx.socket(zmq.PUB)
    auth = secure_server(pub, keys, server_ctx)
    try:
        endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
        sub = _sub(client_ctx, endpoint, keys)
        impostor = client_ctx.socket(zmq.SUB)  # thinks some other key is the server's
        secure_client(impostor, keys)
        impostor.curve_serverkey = zmq.curve_keypair()[0]
        impostor.setsockopt(zmq.SUBSCRIBE, b"")
        impostor.connect(endpoint)
        deadline, got = time.monotonic() + 5.0, False
        while time.monotonic() < deadline and not got:
            pub.send_multipart(_frame(0).encode())
            got = bool(sub.poll(20, zmq.POLLIN))
        assert got
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.5:
            pub.send_multipart(_frame(1).encode())
            assert not impostor.poll(10, zmq.POLLIN)
        for s in (sub, impostor):
            s.close(linger=0)
    finally:
        pub.close(linger=0)
        auth.stop()
        server_ctx.term()
        client_ctx.term()


# -- the camera node ------------------------------------------------------------------------------------------

Frame = namedtuple("Frame", "image t_ns truth")
CAM = look_at("cam0", (3, 3, 2.5), (0, 0, 1), 64, 48, 70, fps=30.0)


class EndlessSource:
    name, width, height, fps = "fake", 64, 48, 30.0

    def __init__(self):
        self.i = 0

    def read(self):
        time.sleep(0.005)
        self.i += 1
        return Frame(np.full((48, 64, 3), self.i % 256, np.uint8), self.i * 1_000_000, None)

    def close(self):
        pass


def test_a_camera_node_with_keys_serves_only_authorized_subscribers(keys):
    node = CameraNode(CAM, EndlessSource, "tcp://127.0.0.1:*", heartbeat_s=0.1, curve=keys)
    stop = threading.Event()
    errors = []

    def run():
        try:
            node.run(stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ctx = zmq.Context()
    try:
        assert node.ready.wait(5)
        counter = RejectCounter("test")
        good = _sub(ctx, node.endpoint, keys)
        plain = _sub(ctx, node.endpoint)
        first = _next_frame(good, counter, 5.0)
        assert first is not None and first.camera == "cam0"
        got = _drain(good, counter, SILENCE_S)
        assert any(isinstance(m, Heartbeat) for m in got) and len([m for m in got if isinstance(m, FrameMessage)]) > 10
        assert not plain.poll(0, zmq.POLLIN), "the subscriber without keys received a message"
        for s in (good, plain):
            s.close(linger=0)
    finally:
        stop.set()
        thread.join(5)
        ctx.term()
    assert not thread.is_alive() and not errors


def test_run_camera_node_loads_the_rigs_keys(rig_file, keys, monkeypatch):
    seen = []

    class Node:
        def __init__(self, camera, *a, curve=None, **kw):
            seen.append(curve)

        def run(self, stop):
            return 0

    monkeypatch.setattr(camera_node, "CameraNode", Node)
    for rig in (str(rig_file), "studio-4"):
        args = argparse.Namespace(rig=rig, camera="cam0", pub=None, fmt="jpeg", quality=90, seed=0, people=0,
                                  no_pace=True, exit_at_end=True)
        assert camera_node.run_camera_node(args) == 0
    assert seen == [keys, None]
