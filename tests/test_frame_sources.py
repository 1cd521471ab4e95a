"""Frame sources for calibration: image folders in numeric order, videos every step-th frame, and recorded
sessions keyed by sync set so one key is one instant in every camera."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.frame_sources import image_folder_frames, session_frames, video_frames
from capture.protocol import frame_from_image
from capture.recorder import Recorder
from rigs.formats import load_rig

FPS = 30.0
PERIOD = round(1e9 / FPS)
T0 = 5_000_000_000
N = 8
SEQ0 = {"cam0": 0, "cam1": 100}  # cam1 numbers its frames from 100: seqs differ from set indices
DROPPED = {"cam1": {3}}


def level(image: np.ndarray) -> int:
    """The grey level a test frame was filled with (frames are filled with 20 * their index + 20)."""
    return int(round(float(np.median(image))))


def test_image_folder_in_numeric_order(tmp_path):
    for name, value in [("img10.png", 40), ("img2.png", 20), ("img1.jpg", 10), ("IMG3.BMP", 30)]:
        cv2.imwrite(str(tmp_path / name), np.full((24, 32, 3), value, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()
    frames = image_folder_frames(tmp_path)
    assert len(frames) == 4
    got = [(k, name, level(img), img.shape) for k, name, img in frames]
    assert got == [(0, "img1.jpg", 10, (24, 32, 3)), (1, "img2.png", 20, (24, 32, 3)),
                   (2, "IMG3.BMP", 30, (24, 32, 3)), (3, "img10.png", 40, (24, 32, 3))]


def test_image_folder_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        image_folder_frames(tmp_path / "nope")
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(CalibrationError, match=r"no images \(.jpg.*it holds 1 other entries such as readme.md"):
        image_folder_frames(tmp_path)
    (tmp_path / "broken.jpg").write_text("not a jpeg")
    frames = image_folder_frames(tmp_path)
    with pytest.raises(CalibrationError, match="broken.jpg: cannot be read as an image"):
        next(frames)


def test_video_every_step_th_frame(tmp_path):
    path = tmp_path / "board.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i + 20, np.uint8))
    writer.release()
    frames = video_frames(path, step=3)
    assert len(frames) == 4
    got = [(k, source, level(img)) for k, source, img in frames]
    assert [(k, source) for k, source, _ in got] == [(0, "board.avi#0"), (3, "board.avi#3"), (6, "board.avi#6"),
                                                     (9, "board.avi#9")]
    assert [lv for _, _, lv in got] == pytest.approx([20, 80, 140, 200], abs=3)  # MJPG is lossy
    assert [k for k, _, _ in video_frames(path)] == list(range(10))


def test_video_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        video_frames(tmp_path / "nope.mp4")
    (tmp_path / "fake.mp4").write_bytes(b"not a video at all")
    with pytest.raises(CalibrationError, match="does not open as a video"):
        video_frames(tmp_path / "fake.mp4")
    with pytest.raises(CalibrationError, match="step must be a whole number >= 1"):
        video_frames(tmp_path / "fake.mp4", step=0)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """Two cameras, N frames each; frame i of both shows grey 20 i + 20; cam1's seqs start at 100 and it
    dropped frame 3."""
    rig = load_rig("studio-4")
    rig = rig.subset(rig.names[:2])
    rig = rig.replace(cameras=tuple(c.resized(64, 48) for c in rig.cameras))
    folder = tmp_path_factory.mktemp("session") / "take"
    recorder = Recorder(folder, rig, segment_s=1.0)
    for i in range(N):
        for c, cam in enumerate(rig.names):
            if i in DROPPED.get(cam, ()):
                continue
            t = T0 + i * PERIOD + 1_000_000 * c
            image = np.full((48, 64, 3), 20 * i + 20, np.uint8)
            recorder.add(frame_from_image(cam, SEQ0[cam] + i, t, image), t + 2_000_000)
    recorder.close()
    return folder


def test_session_frames_are_keyed_by_sync_set(session):
    frames = {cam: [(k, src, level(img)) for k, src, img in session_frames(session, cam)] for cam in SEQ0}
    assert [k for k, _, _ in frames["cam0"]] == list(range(N))
    assert [k for k, _, _ in frames["cam1"]] == [k for k in range(N) if k != 3]
    # one key, one instant: both cameras' frames under a key are the same frame i
    for cam in SEQ0:
        assert all(lv == pytest.approx(20 * k + 20, abs=2) for k, _, lv in frames[cam])
    assert frames["cam1"][0][1] == "take:cam1#100"
    # step keeps the same sets in every camera
    even = {cam: [k for k, _, _ in session_frames(session, cam, step=2)] for cam in SEQ0}
    assert even == {"cam0": [0, 2, 4, 6], "cam1": [0, 2, 4, 6]}
    assert len(session_frames(session, "cam1")) == N - 1 and len(session_frames(session, "cam1", step=3)) == 2


def test_session_without_sync_csv_falls_back_to_seqs(session, tmp_path):
    import shutil

    copy = tmp_path / "take"
    shutil.copytree(session, copy)
    (copy / "sync.csv").unlink()
    assert [k for k, _, _ in session_frames(copy, "cam1")] == [100 + i for i in range(N) if i != 3]


def test_session_errors(session, tmp_path):
    with pytest.raises(CalibrationError, match="not a session folder"):
        session_frames(tmp_path, "cam0")
    with pytest.raises(CalibrationError, match="no camera 'cam7'"):
        session_frames(session, "cam7")
