"""`mocap view` through mocap.cli.main: snapshots and videos of a session, a snapshot and status of a live node,
and one clear line for every mistake."""

import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from capture.protocol import Pose3DMessage
from mocap.cli import main
from rigs.formats import load_rig
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.session_file import SessionInfo, write_session_toml
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from tests.ports_and_processes import free_port_block

SK = get_skeleton("body25")
T = 4


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("view") / "s"
    perf = simulate_performers(2, T / 30, 30.0, seed=5)
    ids = np.tile(np.array([1, 2], np.int32), (T, 1))
    write_poses3d(folder / "poses3d.npz", Poses3D(keypoints3d(perf, SK), ids, perf.t_ns, 30.0, SK.name, SK.joints))
    write_session_toml(folder, SessionInfo("sim", 30.0, 0, simulated=True), load_rig("studio-4"))
    return folder


@pytest.fixture(autouse=True)
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_snapshot_and_video_of_a_session(session, tmp_path, capsys):
    out = tmp_path / "shot.png"
    assert main(["view", str(session), "--snapshot", str(out), "--camera", "cam0"]) == 0
    assert "snapshot:" in capsys.readouterr().out
    img = cv2.imread(str(out))
    assert img.shape == (540, 960, 3)  # 960 wide at the camera's 16:9
    assert main(["view", str(session), "--snapshot", str(tmp_path / "o.png"), "--orbit", "30", "--frame", "1",
                 "--size", "320x200"]) == 0
    assert cv2.imread(str(tmp_path / "o.png")).shape == (200, 320, 3)
    video = tmp_path / "play.mp4"
    assert main(["view", str(session), "--video", str(video), "--size", "320x180"]) == 0
    assert f"{T} frames" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == T
    cap.release()


@pytest.mark.parametrize("argv, message", [
    (["--snapshot", "x.png", "--camera", "camX"], "no camera 'camX' in the session's rig; cameras: cam0, cam1"),
    (["--snapshot", "x.png", "--frame", "9"], r"frame 9 is out of range: the session has 4 frames \(0..3\)"),
    (["--snapshot", "x.png", "--camera", "cam0", "--orbit", "10"], "--camera NAME or --orbit DEG, not both"),
    (["--snapshot", "x.png", "--size", "big"], "--size 'big': give WIDTHxHEIGHT"),
    (["--frame", "2"], "--frame picks the frame of --snapshot"),
    ([], "no display here.*--snapshot out.png or --video out.mp4"),
])
def test_mistakes_get_one_clear_line(session, tmp_path, capsys, argv, message):
    import re

    argv = [str(tmp_path / a) if a.endswith(".png") else a for a in argv]
    assert main(["view", str(session), *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_missing_poses_and_missing_arguments(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["view", str(tmp_path / "empty"), "--snapshot", str(tmp_path / "x.png")]) == 2
    assert "no poses3d.npz: run `mocap reconstruct" in capsys.readouterr().err
    assert main(["view"]) == 2
    assert "give a SESSION folder to play, or --connect ENDPOINT" in capsys.readouterr().err


class _Node:
    """A stand-in reconstruction node: publishes pose3d messages every 30 ms from a thread."""

    def __init__(self, endpoint: str):
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(endpoint)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        perf = simulate_performers(2, 0.1, 30.0, seed=6)
        poses = keypoints3d(perf, SK)[0]
        seq = 0
        while not self.stop.wait(0.03):
            now = time.monotonic_ns()
            msg = Pose3DMessage("recon", seq, now - 30_000_000, SK.name, poses, np.array([4, 7], np.int32), now)
            self.pub.send_multipart(msg.encode())
            seq += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(2)
        self.pub.close()
        self.ctx.term()


def test_live_snapshot_and_status_without_a_display(tmp_path, capsys):
    endpoint = f"tcp://127.0.0.1:{free_port_block(1)}"
    out = tmp_path / "live.png"
    with _Node(endpoint):
        assert main(["view", "--connect", endpoint, "--snapshot", str(out), "--duration", "10"]) == 0
        text = capsys.readouterr().out
        assert "snapshot:" in text and "2 people" in text and "latency" in text
        img = cv2.imread(str(out))
        assert img.shape == (540, 960, 3)
        from viewer.scene import track_colour

        colour = np.array(track_colour(4)) * 255
        assert (np.abs(img[..., ::-1] - colour) <= 12).all(-1).sum() > 100  # track 4's skeleton is drawn
        assert main(["view", "--connect", endpoint, "--duration", "2.5"]) == 0
        lines = [ln for ln in capsys.readouterr().out.splitlines() if "msg/s" in ln]
        assert len(lines) >= 2 and "live" in lines[-1] and "latency" in lines[-1]
    assert main(["view", "--connect", endpoint, "--snapshot", str(tmp_path / "none.png"), "--duration", "0.5"]) == 2
    assert "no pose3d message from" in capsys.readouterr().err
    assert main(["view", "--connect", endpoint, "--video", str(tmp_path / "v.mp4")]) == 2
    assert "mocap record" in capsys.readouterr().err
