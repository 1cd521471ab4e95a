"""`mocap demo` end to end as a real process: camera nodes, the reconstruction node, recording, fit, export,
pictures; every file it says it writes is there and readable, its summary scores the reconstruction, and no
process it started outlives it (also when it is interrupted).

The demo runs shortened (1 person, 2 s) with the stand-in body model built into a temporary folder. Its child
processes are found by watching /proc for processes whose parent is the demo while it runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from capture.session_reader import SessionVideo
from mocap.cli import main
from rigs.bvh import read_bvh
from rigs.formats import load_rig
from rigs.poses3d_file import read_poses3d
from rigs.session_file import read_session_info
from rigs.smpl_file import read_smpl_track
from rigs.trc_file import read_trc
from tests.ports_and_processes import process_alive

ROOT = Path(__file__).resolve().parents[2]
CAMERAS = ("cam0", "cam1", "cam2", "cam3")


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` now."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.add(int(entry))
    return found


class _Demo:
    """``mocap demo`` as a subprocess; a thread records every child it starts."""

    def __init__(self, out: Path, tmp: Path, *extra: str):
        env = dict(os.environ, MOCAP_STANDIN_DIR=str(tmp / "standin"), PYTHONPATH=str(ROOT))
        for name in ("MOCAP_BODY_MODELS", "DISPLAY", "WAYLAND_DISPLAY"):  # the stand-in model; no display
            env.pop(name, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "mocap", "demo", "--people", "1", "--seconds", "2",
                                      "--out", str(out), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.children: set[int] = set()
        self._watch = threading.Thread(target=self._watch_children, daemon=True)
        self._watch.start()

    def _watch_children(self) -> None:
        while self.proc.poll() is None:
            self.children |= _children(self.proc.pid)
            time.sleep(0.1)

    def wait_for(self, text: str, timeout: float) -> str:
        """Read the output until a line contains ``text``; the output so far."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in line:
                return "".join(seen)
        raise AssertionError(f"{text!r} did not appear within {timeout} s:\n{''.join(seen)[-3000:]}")

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"mocap demo did not finish within {timeout} s:\n{out[-3000:]}") from None
        self._watch.join(2)
        return self.proc.returncode, out

    def assert_no_child_left(self) -> None:
        deadline = time.monotonic() + 5  # a killed child may take a moment to be reaped by init
        while time.monotonic() < deadline and any(process_alive(p) for p in self.children):
            time.sleep(0.1)
        assert not [p for p in self.children if process_alive(p)], "processes the demo started are still running"


def test_demo_runs_the_process_topology_and_writes_every_file_it_names(tmp_path):
    out = tmp_path / "demo"
    demo = _Demo(out, tmp_path, "--view")
    head = demo.wait_for("done reconstruct", timeout=180)
    # the topology: 4 camera nodes and the reconstruction node ran as processes of their own, and the demo has
    # stopped them itself once the recording ended (it still runs: this is not their parent's death signal)
    assert len(demo.children) >= len(CAMERAS) + 1, demo.children
    demo.assert_no_child_left()
    assert demo.proc.poll() is None
    code, tail = demo.finish(timeout=180)
    text = head + tail
    assert code == 0, text[-4000:]
    demo.assert_no_child_left()

    lines = [line.strip() for line in text.splitlines()]
    mpjpe = [float(m.group(1)) for line in lines if (m := re.fullmatch(r"MPJPE: ([0-9.]+) mm", line))]
    assert len(mpjpe) == 1 and 0.5 < mpjpe[0] < 50.0, text[-3000:]
    dropped = [int(m.group(1)) for line in lines if (m := re.match(r"frames dropped: (\d+)", line))]
    assert len(dropped) == 1
    live = [line for line in lines if line.startswith("live: ")]
    assert len(live) == 1 and re.search(r"median \d+ ms, 95th percentile \d+ ms", live[0]), live
    assert int(live[0].split()[1]) > 0  # pose3d messages arrived during the recording
    assert "Traceback" not in text and "--view needs a display" in text

    # the recording: session.toml, every camera's video and index, sync.csv, the simulation's truth
    info = read_session_info(out)
    assert info.simulated and {s.name for s in info.stages} >= {"record", "reconstruct", "fit"}
    assert load_rig(out / "session.toml").names == CAMERAS
    with SessionVideo(out) as video:
        frames = video.num_frames
        assert set(frames) == set(CAMERAS) and min(frames.values()) >= 50, frames  # 2 s at 30 fps
        image = video.frame("cam0", int(video.index("cam0").seq[0]))
        assert image.shape == (720, 1280, 3)
        sets = video.sync()[0]
    assert len(sets) >= 50
    truth = read_poses3d(out / "truth" / "poses3d.npz")
    poses = read_poses3d(out / "poses3d.npz")
    assert poses.num_frames == truth.num_frames == len(sets) and poses.skeleton == "body25"
    assert (poses.track_ids >= 0).any()

    # fit and export
    tracks = sorted((out / "smpl").glob("track_*.npz"))
    assert tracks
    for path in tracks:
        track = read_smpl_track(path)
        assert track.poses.shape[1] == 72 and np.isfinite(track.poses).all() and track.body_model_standin
        tid = path.stem.split("_")[1]
        bvh = read_bvh(out / "export" / f"track_{tid}.bvh")
        assert bvh.num_frames == len(track.poses)
        assert read_trc(out / "export" / f"track_{tid}.trc").markers.shape[0] > 0
        for ext in ("npz", "c3d", "json"):
            assert (out / "export" / f"track_{tid}.{ext}").stat().st_size > 0, ext
        for kind in ("BVH", "SMPL", "TRC"):
            assert any(line.startswith(f"{kind}: ") and f"track_{tid}." in line for line in lines), kind

    # the pictures
    snapshot = cv2.imread(str(out / "snapshot.png"))
    assert snapshot is not None and snapshot.shape == (540, 960, 3) and snapshot.std() > 5
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    ok, first = cap.read()
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert ok and first.shape == (720, 1280, 3) and count >= 50

    # the reports the summary points to
    summary = (out / "report" / "demo_summary.txt").read_text()
    assert f"MPJPE: {mpjpe[0]:.1f} mm" in summary
    for name in ("eval/summary.json", "fit/summary.txt", "record.log", "demo.log", "capture_stats.json",
                 "nodes/cam0.log", "nodes/recon.log"):
        assert (out / "report" / name).stat().st_size > 0, name
    assert (out / "DEMO.txt").exists()


def test_an_interrupted_demo_stops_every_node_and_keeps_what_it_recorded(tmp_path):
    out = tmp_path / "demo"
    demo = _Demo(out, tmp_path)
    demo.wait_for("recording", timeout=120)
    time.sleep(1.0)
    demo.proc.send_signal(signal.SIGINT)
    code, text = demo.finish(timeout=60)
    assert code == 130, text[-3000:]
    assert "stopped" in text and "Traceback" not in text
    assert len(demo.children) >= len(CAMERAS) + 1
    demo.assert_no_child_left()
    assert (out / "session.toml").exists() and (out / "sync.csv").exists()  # the recorder finished its files


def test_the_demo_never_touches_a_folder_it_did_not_write(tmp_path, capsys):
    other = tmp_path / "precious"
    other.mkdir()
    (other / "data.txt").write_text("keep me")
    assert main(["demo", "--out", str(other)]) == 2
    assert "not a previous demo's output" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["data.txt"]
    assert main(["demo", "--seconds", "0", "--out", str(tmp_path / "new")]) == 2
    assert "--seconds" in capsys.readouterr().err
