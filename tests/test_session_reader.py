"""capture.session_reader: a recorded session's frames read back (index, JPEG bytes, random access, damage)."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import capture.session_reader as session_reader
from capture.protocol import frame_from_image
from capture.recorder import Recorder
from capture.segment_writer import list_segments
from capture.session_reader import SessionError, SessionVideo, SessionWarning, decode_frame
from capture.sources import SimulatedCameraSource
from rigs.formats import load_rig

FPS = 30.0
N = 60  # 2 s at 30 fps, in segments of 1 s
PERIOD = round(1e9 / FPS)
T0 = 7_000_000_000
DROPPED = {"cam2": {10, 11, 40}}  # this camera's node dropped these frames: seq jumps, no row
SIM_SECONDS = 4.0


@dataclass
class Recorded:
    folder: Path
    cameras: tuple[str, ...]
    sent: dict[str, list] = field(default_factory=dict)  # camera -> [(seq, t_ns, jpeg bytes, truth)]


def small_rig(cameras: int = 4):
    rig = load_rig("studio-4")
    rig = rig.subset(rig.names[:cameras])
    return rig.replace(cameras=tuple(c.resized(160, 90) for c in rig.cameras))


def build_session(folder: Path, rig=None, dropped=None, backend: str = "auto", fmt: str = "jpeg") -> Recorded:
    """Record N frames of each camera's SimulatedCameraSource (unpaced) with the Recorder, segments of 1 s.

    Frame i of camera c is stamped T0 + i * PERIOD + c ms and arrives 2 ms later; ``dropped`` frames are not sent."""
    rig = rig or small_rig()
    dropped = DROPPED if dropped is None else dropped
    rec = Recorded(Path(folder), rig.names)
    sources = {c.name: SimulatedCameraSource(c, pace=False, seed=0, seconds=SIM_SECONDS) for c in rig.cameras}
    recorder = Recorder(folder, rig, segment_s=1.0, backend=backend)
    for i in range(N):
        for c, cam in enumerate(rig.names):
            frame = sources[cam].read()
            if i in dropped.get(cam, ()):
                continue
            t = T0 + i * PERIOD + 1_000_000 * c
            msg = frame_from_image(cam, i, t, frame.image, fmt, truth=frame.truth)
            recorder.add(msg, t + 2_000_000)
            rec.sent.setdefault(cam, []).append((i, t, msg.payload, frame.truth))
    recorder.close()
    return rec


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Recorded:
    return build_session(tmp_path_factory.mktemp("session") / "take")


@pytest.fixture
def copy(recorded, tmp_path):
    """A copy of the recorded session to damage."""
    def make() -> Path:
        dst = tmp_path / "take"
        shutil.copytree(recorded.folder, dst)
        return dst
    return make


def test_every_frame_is_indexed(recorded):
    with SessionVideo(recorded.folder) as video:
        assert video.cameras == recorded.cameras
        assert video.fps == FPS and video.rig is not None and video.info is not None
        for cam in recorded.cameras:
            ix = video.index(cam)
            sent = recorded.sent[cam]
            assert ix.seq.tolist() == [s[0] for s in sent]
            assert ix.t_ns.tolist() == [s[1] for s in sent]
            assert sorted(ix.segments) == [0, 1] and all(p.suffix == ".mkv" for p in ix.segments.values())
            assert ix.frame_in_segment[ix.segment == 0].tolist() == list(range(int((ix.segment == 0).sum())))
        assert video.num_frames == {c: N - len(DROPPED.get(c, ())) for c in recorded.cameras}
        assert video.t_range_ns == (T0, T0 + (N - 1) * PERIOD + 3_000_000)


def test_jpeg_bytes_read_back_identical(recorded):
    with SessionVideo(recorded.folder) as video:
        for cam in recorded.cameras:
            frames = list(video.iter_frames(cam))
            assert [(f.seq, f.t_ns) for f in frames] == [(s[0], s[1]) for s in recorded.sent[cam]]
            assert all(isinstance(f.data, bytes) for f in frames)
            assert [f.data for f in frames] == [s[2] for s in recorded.sent[cam]]


def test_random_access_equals_sequential(recorded):
    cam = "cam2" if "cam2" in recorded.cameras else recorded.cameras[-1]
    with SessionVideo(recorded.folder) as video:
        sequential = {f.seq: decode_frame(f.data) for f in video.iter_frames(cam)}
        order = list(sequential)
        rng = np.random.default_rng(1)
        picks = [order[-1], order[0], *rng.choice(order, 12, replace=False).tolist(), order[29], order[30]]
        for seq in picks:  # backwards, forwards and across segments
            image = video.frame(cam, seq)
            assert image.shape == (90, 160, 3)
            np.testing.assert_array_equal(image, sequential[seq])
        assert video.frame_data(cam, order[5]) == recorded.sent[cam][5][2]
        with pytest.raises(SessionError, match="no readable frame with seq 10"):
            video.frame(cam, 10)  # dropped by the camera
        with pytest.raises(SessionError, match="no camera 'nope'"):
            video.index("nope")


def test_deleted_last_segment_warns_and_the_rest_reads(recorded, copy):
    folder = copy()
    cam = recorded.cameras[1]
    list_segments(folder, cam)[-1].unlink()
    with pytest.warns(SessionWarning, match=rf"camera '{cam}': segment\(s\) 0001 .* missing"):
        video = SessionVideo(folder)
        frames = list(video.iter_frames(cam))
    n0 = int((np.loadtxt(folder / "video" / f"{cam}.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 2] == 0).sum())
    assert 0 < n0 < N and len(frames) == n0
    assert [f.data for f in frames] == [s[2] for s in recorded.sent[cam][:n0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the other cameras read in full, silently
        other = recorded.cameras[0]
        assert [f.data for f in video.iter_frames(other)] == [s[2] for s in recorded.sent[other]]
    with pytest.raises(SessionError, match="no readable frame"):
        video.frame(cam, N - 1)


def test_truncated_and_corrupt_segments(recorded, copy):
    folder = copy()
    cam = recorded.cameras[0]
    first, last = list_segments(folder, cam)
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a crash mid-segment
    first.write_bytes(b"not a video " * 100)  # a damaged file
    with pytest.warns(SessionWarning) as caught:
        video = SessionVideo(folder)
        frames = list(video.iter_frames(cam))
    text = " | ".join(str(w.message) for w in caught)
    assert f"{first}: does not open as a video" in text and "the segment is corrupt" in text
    assert f"{last}: holds" in text and "truncated" in text
    sent = {s[0]: s[2] for s in recorded.sent[cam]}
    assert frames and all(f.seq >= 30 and f.data == sent[f.seq] for f in frames)  # a prefix of segment 1
    with pytest.raises(SessionError, match="corrupt"):
        video.frame(cam, 3)
    with pytest.raises(SessionError, match="truncated"):
        video.frame(cam, N - 1)


def test_not_a_session(tmp_path):
    with pytest.raises(SessionError, match="does not exist"):
        SessionVideo(tmp_path / "nope")
    with pytest.raises(SessionError, match="not a session folder"):
        SessionVideo(tmp_path)
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "cam0.csv").write_text("frame,t_ns\n0,1\n")
    with pytest.raises(SessionError, match="not a frame index"), pytest.warns(SessionWarning, match="no session.toml"):
        SessionVideo(tmp_path).index("cam0")


def test_unfinished_session_without_toml(recorded, copy):
    folder = copy()
    (folder / "session.toml").unlink()
    cam = recorded.cameras[3]
    with open(folder / "video" / f"{cam}.csv", "a") as f:
        f.write("60,90")  # a row cut off by a crash
    with pytest.warns(SessionWarning) as caught:
        video = SessionVideo(folder)
        assert video.index(cam).seq.tolist() == [s[0] for s in recorded.sent[cam]]
    text = " | ".join(str(w.message) for w in caught)
    assert "no session.toml" in text and "partial last line" in text
    assert video.cameras == tuple(sorted(recorded.cameras)) and video.rig is None
    assert video.fps == pytest.approx(FPS, rel=1e-3)


def test_truth_rebuilt_per_frame(recorded):
    with SessionVideo(recorded.folder) as video:
        for cam in recorded.cameras:
            truth = video.truth(cam)
            assert truth and all(truth[seq] == sent_truth for seq, _, _, sent_truth in recorded.sent[cam]
                                 if seq in truth)
            assert len(truth) >= len(recorded.sent[cam]) - 2


def test_without_pyav_frames_decode_with_opencv(recorded, monkeypatch):
    monkeypatch.setattr(session_reader, "av", None)
    cam = recorded.cameras[0]
    with SessionVideo(recorded.folder) as video:
        frames = list(video.iter_frames(cam))
        assert [f.seq for f in frames] == [s[0] for s in recorded.sent[cam]]
        for f, s in zip(frames[::9], recorded.sent[cam][::9], strict=True):
            assert isinstance(f.data, np.ndarray)
            assert np.abs(f.data.astype(int) - decode_frame(s[2]).astype(int)).mean() < 2.0
        np.testing.assert_array_equal(video.frame(cam, 33), frames[33].data)


@pytest.mark.parametrize("backend, fmt", [("cv2", "jpeg"), ("auto", "bgr8")])
def test_opencv_and_raw_segments(tmp_path, backend, fmt):
    rig = small_rig(1)
    rec = build_session(tmp_path / "take", rig, dropped={}, backend=backend, fmt=fmt)
    cam = rig.names[0]
    with SessionVideo(rec.folder) as video:
        ext = {p.suffix for p in video.index(cam).segments.values()}
        assert ext == ({".avi"} if backend == "cv2" else {".mkv"})
        frames = list(video.iter_frames(cam))
        assert [f.seq for f in frames] == list(range(N))
        assert all(isinstance(f.data, np.ndarray) and f.data.shape == (90, 160, 3) for f in frames)
        if fmt == "bgr8":  # FFV1 is lossless: the very pixels sent
            sent = rec.sent[cam]
            assert all(f.data.tobytes() == s[2] for f, s in zip(frames, sent, strict=True))
        for seq in (45, 3, 30):
            np.testing.assert_array_equal(video.frame(cam, seq), frames[seq].data)
