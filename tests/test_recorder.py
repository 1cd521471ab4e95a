"""capture.recorder, capture.segment_writer, capture.session_writer: a session folder from frames, in process."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import cv2
import numpy as np
import pytest

import capture.segment_writer as segment_writer
from capture.protocol import FrameMessage, frame_from_image
from capture.recorder import Recorder, RecordingError, check_disk, estimate_bytes_per_hour
from capture.segment_writer import SegmentWriter, list_segments
from capture.sources import SimulatedCameraSource
from capture.sync import read_sync_csv
from rigs.formats import load_rig
from rigs.poses3d_file import read_poses3d
from rigs.session_file import read_session_info
from rigs.sim.performers import keypoints3d, simulate_performers

ROOT = Path(__file__).resolve().parents[1]
FPS = 30.0
N = 90  # 3 s at 30 fps
PERIOD = round(1e9 / FPS)
T0 = 5_000_000_000
SIM_SECONDS = 4.0
Sent = namedtuple("Sent", "camera i payload truth")


def small_rig():
    rig = load_rig("studio-4")
    return rig.replace(cameras=tuple(c.resized(160, 90) for c in rig.cameras))


@pytest.fixture(scope="module")
def rig():
    return small_rig()


@pytest.fixture(scope="module")
def sent(rig):
    """N simulated frames per camera: JPEG payloads and truth from SimulatedCameraSource."""
    out = {}
    for cam in rig.cameras:
        src = SimulatedCameraSource(cam, pace=False, seed=0, seconds=SIM_SECONDS)
        frames = []
        for i in range(N):
            f = src.read()
            frames.append(Sent(cam.name, i, frame_from_image(cam.name, i, 0, f.image).payload, f.truth))
        out[cam.name] = frames
    return out


def t_of(camera_index: int, i: int) -> int:
    return T0 + i * PERIOD + 1_000_000 * camera_index  # a few ms of skew between cameras


def stream(rig, sent, skip=lambda camera, i: False, seq_of=lambda camera, i: i):
    """(message, arrival time) in arrival order: frame i of every camera, then frame i + 1."""
    for i in range(N):
        for c, cam in enumerate(rig.names):
            if skip(cam, i):
                continue
            s = sent[cam][i]
            t = t_of(c, i)
            msg = FrameMessage(cam, seq_of(cam, i), t, 160, 90, "jpeg", s.payload, s.truth)
            yield msg, t + 2_000_000


def read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def read_csv(path) -> list[list[int]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["seq", "t_ns", "segment", "frame_in_segment"]
    return [[int(v) for v in r] for r in rows[1:]]


def record(folder, rig, sent, **kwargs):
    skip = kwargs.pop("skip", lambda camera, i: False)
    seq_of = kwargs.pop("seq_of", lambda camera, i: i)
    rec = Recorder(folder, rig, segment_s=kwargs.pop("segment_s", 1.0), **kwargs)
    for msg, now in stream(rig, sent, skip, seq_of):
        rec.add(msg, now)
    rec.close()
    return rec


# --- the whole session ----------------------------------------------------------------------------------------

def test_session_toml_exists_from_the_start_and_is_completed_at_close(tmp_path, rig, sent):
    folder = tmp_path / "take0"
    rec = Recorder(folder, rig, segment_s=1.0)
    early = read_session_info(folder)  # a recorder killed now still leaves a readable session
    assert early.stages == () and "interrupted" in early.notes and load_rig(folder / "session.toml") == rig
    for msg, now in stream(rig, sent, lambda camera, i: False, lambda camera, i: i):
        rec.add(msg, now)
    rec.close()
    final = read_session_info(folder)
    assert [s.name for s in final.stages] == ["record"] and "interrupted" not in final.notes


def test_records_segments_csvs_sync_truth_stats_and_session_toml(tmp_path, rig, sent):
    folder = tmp_path / "take1"
    rec = record(folder, rig, sent, command="mocap record --rig studio-4")
    for c, cam in enumerate(rig.names):
        segs = list_segments(folder, cam)
        assert [p.name for p in segs] == [f"{cam}_{k:04d}.mkv" for k in range(3)]
        assert [len(read_video(p)) for p in segs] == [30, 30, 30]
        assert sum(len(read_video(p)) for p in segs) == N
        rows = read_csv(folder / "video" / f"{cam}.csv")
        assert rows == [[i, t_of(c, i), i // 30, i % 30] for i in range(N)]
    index, t_ns, seqs, cameras = read_sync_csv(folder / "sync.csv")
    assert cameras == rig.names
    assert index.tolist() == list(range(N))
    assert (seqs == np.arange(N)[:, None]).all()  # every set complete, frame i of each camera
    assert np.all(np.abs(t_ns - (T0 + np.arange(N) * PERIOD)) <= 3_000_000)

    truth = read_poses3d(folder / "truth" / "poses3d.npz")
    assert truth.poses.shape == (N, 2, 25, 4) and truth.skeleton == "body25"
    assert truth.extras["sim_frame"].tolist() == list(range(N))
    assert truth.t_ns.tolist() == t_ns.tolist()
    expected = keypoints3d(simulate_performers(2, SIM_SECONDS, FPS, 0), "body25")[:N]
    np.testing.assert_allclose(truth.poses, expected)
    assert read_poses3d(folder / "truth" / "smpl24.npz").poses.shape == (N, 2, 24, 4)
    assert (folder / "truth" / "SIMULATED.txt").exists()

    info = read_session_info(folder)
    assert info.name == "take1" and info.fps == FPS and info.simulated and info.start_ns > 0
    assert [s.name for s in info.stages] == ["record"]
    assert info.stages[0].command == "mocap record --rig studio-4"
    assert {"video", "sync.csv", "truth", "report/capture_stats.json"} <= set(info.stages[0].outputs)
    assert load_rig(folder / "session.toml").names == rig.names  # the rig snapshot

    stats = json.loads((folder / "report" / "capture_stats.json").read_text())
    assert stats["sync"]["complete"] == N and stats["sync"]["partial"] == 0
    for cam in rig.names:
        written = stats["cameras_written"][cam]
        assert written["frames"] == N and written["segments"] == 3 and written["dropped"] == 0
        assert written["payload_bytes"] == sum(len(s.payload) for s in sent[cam])
        assert written["bytes_on_disk"] > written["payload_bytes"]
    assert stats["bytes_on_disk"] == sum(stats["cameras_written"][c]["bytes_on_disk"] for c in rig.names)
    assert rec.closed and not rec.done  # no duration: never done


@pytest.mark.skipif(segment_writer.av is None, reason="PyAV not installed")
def test_a_camera_delayed_by_a_scheduling_hiccup_still_completes_its_sets(tmp_path, rig, sent):
    """cam3 stalls 200 ms at frame 10 (a busy host), so from there on its frames arrive 200 ms late, in order:
    the recording's sets stay complete (a live syncer's 2-period deadline would split them)."""
    folder = tmp_path / "hiccup"
    rec = Recorder(folder, rig, segment_s=1.0)
    events = [(now + (200_000_000 if msg.camera == "cam3" and msg.seq >= 10 else 0), k, msg)
              for k, (msg, now) in enumerate(stream(rig, sent))]
    for now, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        rec.add(msg, now)
    rec.close()
    _, _, seqs, _ = read_sync_csv(folder / "sync.csv")
    partial = np.nonzero((seqs < 0).any(axis=1))[0]
    assert len(seqs) == N and partial.size == 0, (partial, seqs[partial])


def test_jpeg_payloads_are_stored_as_received(tmp_path, rig, sent):
    import av

    record(tmp_path / "s", rig, sent)
    stored = []
    for path in list_segments(tmp_path / "s", "cam2"):
        with av.open(str(path)) as container:
            stream_ = container.streams.video[0]
            assert stream_.codec_context.name == "mjpeg"
            stored += [bytes(p) for p in container.demux(stream_) if p.size]
    assert stored == [s.payload for s in sent["cam2"]]  # byte for byte: no decode, no re-encode


def test_dropped_frames_show_as_partial_sets_and_seq_gaps(tmp_path, rig, sent):
    folder = tmp_path / "drops"
    rec = record(folder, rig, sent, skip=lambda cam, i: cam == "cam3" and 40 <= i < 45)
    rows = read_csv(folder / "video" / "cam3.csv")
    seqs = [r[0] for r in rows]
    assert len(rows) == N - 5 and seqs[39:41] == [39, 45]
    assert sum(len(read_video(p)) for p in list_segments(folder, "cam3")) == N - 5
    _, _, table, cameras = read_sync_csv(folder / "sync.csv")
    assert len(table) == N
    partial = np.nonzero((table == -1).any(axis=1))[0]
    assert partial.tolist() == list(range(40, 45))
    assert (table[partial, cameras.index("cam3")] == -1).all()
    assert (table[partial][:, [0, 1, 2]] == partial[:, None]).all()
    stats = rec.stats()
    assert stats["cameras_written"]["cam3"]["dropped"] == 5 and stats["sync"]["dropped"]["cam3"] == 5
    assert stats["sync"]["partial"] == 5 and stats["sync"]["complete"] == N - 5


def test_duration_counts_from_the_first_complete_set(tmp_path, rig, sent):
    folder = tmp_path / "dur"
    rec = Recorder(folder, rig, segment_s=1.0, duration_s=0.5)
    done_at = None
    for msg, now in stream(rig, sent, skip=lambda cam, i: cam == "cam1" and i < 10):
        rec.add(msg, now)
        if rec.done and done_at is None:
            done_at = (msg.camera, msg.seq)
    rec.close()
    assert done_at == ("cam3", 25)  # the last camera past the end: sets 10..24 are 0.5 s
    index, _, table, cameras = read_sync_csv(folder / "sync.csv")
    complete = (table >= 0).all(axis=1)
    assert len(index) == 25 and not complete[:10].any() and complete[10:].all()
    assert (table[:10, cameras.index("cam1")] == -1).all()
    assert len(read_csv(folder / "video" / "cam0.csv")) == 25  # frames before the first complete set too
    assert len(read_csv(folder / "video" / "cam1.csv")) == 15
    stats = rec.stats()
    assert stats["first_complete_set"] == 10 and stats["duration_s_recorded"] == pytest.approx(0.5, abs=0.01)
    assert stats["cameras_written"]["cam0"]["frames_after_end"] == N - 25
    assert read_poses3d(folder / "truth" / "poses3d.npz").num_frames == 25


def test_a_quiet_camera_gets_its_segment_closed_and_stray_cameras_are_ignored(tmp_path, rig, sent):
    rec = Recorder(tmp_path / "quiet", rig, segment_s=60.0, idle_close_s=2.0)
    msgs = list(stream(rig, sent))[:40]
    for msg, now in msgs:
        rec.add(msg, now)
    stray = FrameMessage("cam9", 0, T0, 160, 90, "jpeg", sent["cam0"][0].payload)
    assert rec.add(stray, msgs[-1][1]) == [] and rec.ignored == 1
    assert rec.writer("cam0").open_segment is not None
    rec.poll(msgs[-1][1] + 2_100_000_000)
    assert rec.writer("cam0").open_segment is None
    assert len(read_video(rec.writer("cam0").closed_segments[0])) == 10
    rec.close()


# --- crashes and errors --------------------------------------------------------------------------------------

CRASH = """
import os, signal, sys
import cv2, numpy as np
from capture.protocol import FrameMessage
from capture.segment_writer import SegmentWriter
w = SegmentWriter(sys.argv[1], "cam0", segment_s=1.0, fps=30.0, backend=sys.argv[2])
for i in range(75):
    image = np.full((90, 160, 3), i * 3, np.uint8)
    payload = cv2.imencode(".jpg", image)[1].tobytes()
    w.write(FrameMessage("cam0", i, 10**9 + round(i * 1e9 / 30), 160, 90, "jpeg", payload), i)
os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of the third segment
"""


@pytest.mark.parametrize("backend", ["av", "cv2"] if segment_writer.av is not None else ["cv2"])
def test_a_crash_loses_at_most_the_open_segment(tmp_path, backend):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), str(tmp_path), backend], env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    segs = list_segments(tmp_path, "cam0")
    assert len(segs) == 3
    assert [len(read_video(p)) for p in segs[:2]] == [30, 30]  # both closed segments play
    rows = read_csv(tmp_path / "video" / "cam0.csv")
    assert len(rows) == 75 and rows[-1] == [74, 10**9 + round(74e9 / 30), 2, 14]  # flushed per frame


def test_disk_full_stops_with_a_clear_error_and_keeps_closed_segments(tmp_path, rig, sent, monkeypatch):
    real_write = SegmentWriter.write

    def write(self, msg, now_ns=None):
        if self.camera == "cam1" and self.frames == 70:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.segments[-1]))
        return real_write(self, msg, now_ns)

    monkeypatch.setattr(SegmentWriter, "write", write)
    folder = tmp_path / "full"
    rec = Recorder(folder, rig, segment_s=1.0)
    with pytest.raises(RecordingError) as err:
        for msg, now in stream(rig, sent):
            rec.add(msg, now)
    text = str(err.value)
    assert str(folder) in text and "disk is full" in text and "No space left on device" in text
    assert err.value.folder == folder
    with pytest.raises(RecordingError, match="stopped"):
        rec.add(*next(stream(rig, sent)))
    for cam in rig.names:
        segs = list_segments(folder, cam)
        assert [len(read_video(p)) for p in segs[:2]] == [30, 30]
        assert len(read_csv(folder / "video" / f"{cam}.csv")) == sum(len(read_video(p)) for p in segs)
    assert len(read_video(list_segments(folder, "cam0")[2])) == 11  # its open segment was closed properly
    assert read_session_info(folder).stages[0].name == "record"  # written after the error when it still fits
    stats = json.loads((folder / "report" / "capture_stats.json").read_text())
    assert "disk is full" in stats["error"]
    rec.close()  # nothing more to do, no second error


def test_an_unwritable_folder_fails_before_anything_starts(tmp_path, rig):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(RecordingError, match="cannot create the folder") as err:
        Recorder(blocker / "session", rig)
    assert str(blocker / "session") in str(err.value)
    with pytest.raises(RecordingError, match="not a folder"):
        Recorder(blocker, rig)
    done = tmp_path / "done"
    done.mkdir()
    (done / "session.toml").write_text("")
    with pytest.raises(RecordingError, match="already holds a recording"):
        Recorder(done, rig)
    assert sorted(p.name for p in done.iterdir()) == ["session.toml"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_fails_before_anything_starts(tmp_path, rig):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RecordingError, match="not writable"):
            Recorder(ro, rig)
    finally:
        ro.chmod(0o700)


# --- formats and backends ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["bgr8", "gray8"])
def test_raw_frames_are_stored_losslessly_with_ffv1(tmp_path, fmt):
    rng = np.random.default_rng(1)
    w = SegmentWriter(tmp_path, "cam0", segment_s=1.0, fps=30.0)
    images = [rng.integers(0, 256, (48, 64, 3) if fmt == "bgr8" else (48, 64), np.uint8) for _ in range(40)]
    for i, image in enumerate(images):
        w.write(frame_from_image("cam0", i, round(i * 1e9 / 30), image, fmt))
    w.close()
    back = [f for p in list_segments(tmp_path, "cam0") for f in read_video(p)]
    assert [p.suffix for p in list_segments(tmp_path, "cam0")] == [".mkv", ".mkv"]
    assert len(back) == 40
    for a, b in zip(images, back, strict=True):
        assert np.array_equal(a if fmt == "bgr8" else np.repeat(a[..., None], 3, 2), b)


def test_raw_frames_as_mjpeg_and_a_format_change_starts_a_new_segment(tmp_path, rig, sent):
    w = SegmentWriter(tmp_path, "cam0", segment_s=60.0, fps=30.0, raw_codec="mjpeg", quality=95)
    image = cv2.imdecode(np.frombuffer(sent["cam0"][0].payload, np.uint8), cv2.IMREAD_COLOR)
    for i in range(5):
        w.write(frame_from_image("cam0", i, i * PERIOD, image, "bgr8"))
    w.write(FrameMessage("cam0", 5, 5 * PERIOD, 160, 90, "jpeg", sent["cam0"][5].payload))
    w.close()
    segs = list_segments(tmp_path, "cam0")
    assert [len(read_video(p)) for p in segs] == [5, 1]
    assert np.abs(read_video(segs[0])[0].astype(int) - image).mean() < 3


def test_without_pyav_opencv_writes_mjpg_avi(tmp_path, rig, sent, monkeypatch):
    monkeypatch.setattr(segment_writer, "av", None)
    folder = tmp_path / "cv2"
    record(folder, rig, sent)
    for cam in rig.names:
        segs = list_segments(folder, cam)
        assert [p.suffix for p in segs] == [".avi"] * 3
        assert [len(read_video(p)) for p in segs] == [30, 30, 30]
    stats = json.loads((folder / "report" / "capture_stats.json").read_text())
    assert stats["cameras_written"]["cam0"]["backend"] == "cv2"


# --- disk --------------------------------------------------------------------------------------------------------

def test_bytes_per_hour_is_measured_and_the_disk_check_warns(tmp_path, monkeypatch):
    rig = load_rig("studio-4")
    raw = estimate_bytes_per_hour(rig, "bgr8")
    assert raw == pytest.approx(4 * 1280 * 720 * 3 * 30 * 3600, rel=0.001)
    jpeg = estimate_bytes_per_hour(rig, "jpeg", quality=90, cameras=["cam0"])
    assert 1e8 < jpeg < raw / 4 / 10  # one camera of JPEGs is far smaller than raw
    assert estimate_bytes_per_hour(rig, "jpeg", quality=50, cameras=["cam0"]) < jpeg
    assert check_disk(tmp_path, 1000) is None
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("capture.recorder.shutil.disk_usage", lambda p: usage(10**12, 10**12 - 10**9, 10**9))
    warning = check_disk(tmp_path / "not" / "yet", 4 * 10**9)
    assert warning is not None and "4.0 GB" in warning and "1.0 GB free" in warning and "25%" in warning
