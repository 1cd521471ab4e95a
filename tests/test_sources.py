"""Tests for capture/sources: dispatch on the rig's source strings, the simulated camera (size, truth,
pacing, drops, same performers across cameras), video files (sidecars, pacing, end, loop, real codecs),
image folders (frame order) and OpenCV cameras (request and read-back through a fake capture)."""

import time
import warnings
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest

from capture.sources import (
    EndOfStream,
    FrameSource,
    ImageFolderSource,
    OpenCVCameraSource,
    SimulatedCameraSource,
    SourceError,
    SourceWarning,
    VideoFileSource,
    open_source,
    source_kind,
)
from capture.sources.opencv_device import capture_target
from rigs.camera import look_at
from rigs.formats import load_rig

DEMO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "perfanalytics+pose2sim" / "Pose2Sim" / \
    "Demo_SinglePerson"
W, H, N, FPS = 64, 48, 20, 20.0


def cam(source="sim", name="cam0", width=160, height=120, fps=30.0):
    return look_at(name, (3.0, -3.0, 2.0), (0.0, 0.0, 1.0), width, height, 70.0, fps=fps, source=source)


def level(image) -> int:
    """The grey level of a flat test frame."""
    return int(round(float(np.median(image))))


def index_of(image) -> int:
    """The index k of a test video frame painted grey 10 k (mp4v comes back a few levels darker)."""
    return int(round(level(image) / 10))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 64x48 mp4v video of N frames at 20 fps; frame k is flat grey 10 k."""
    path = tmp_path_factory.mktemp("video") / "cam0.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for k in range(N):
        out.write(np.full((H, W, 3), 10 * k, np.uint8))
    out.release()
    return path


def read_all(source, limit=1000):
    frames = []
    with pytest.raises(EndOfStream):
        for _ in range(limit):
            frames.append(source.read())
    return frames


# --- dispatch -------------------------------------------------------------------------------------

def test_every_source_form_is_dispatched(tmp_path, video):
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "f0001.png"), np.zeros((H, W, 3), np.uint8))
    assert [source_kind(s) for s in ("sim", f"file:{video}", str(tmp_path / "frames"), f"file:{tmp_path / 'frames'}",
                                     "device:0", "/dev/video2", "rtsp://10.0.0.5/stream", "v4l2src ! appsink")] == \
        ["sim", "file", "folder", "folder", "opencv", "opencv", "opencv", "opencv"]
    assert capture_target("device:3")[:2] == (3, cv2.CAP_V4L2)
    assert capture_target("/dev/video1")[:2] == ("/dev/video1", cv2.CAP_V4L2)
    assert capture_target("rtsp://host/s")[1] == cv2.CAP_FFMPEG
    assert capture_target("videotestsrc ! appsink")[1] == cv2.CAP_GSTREAMER
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SourceWarning)
        sources = [open_source(cam(s)) for s in ("sim", f"file:{video}", str(tmp_path / "frames"))]
    assert [type(s) for s in sources] == [SimulatedCameraSource, VideoFileSource, ImageFolderSource]
    assert all(isinstance(s, FrameSource) for s in sources)


def test_unknown_source_names_the_camera_and_the_forms(tmp_path, video):
    for source, hint in (("bogus", ""), ("", "no source"), (str(video), f"file:{video}"),
                         (str(tmp_path / "missing" / "x"), "not an existing folder")):
        with pytest.raises(ValueError, match="camera 'camX'") as e:
            open_source(cam(source, name="camX"))
        assert "device:N" in str(e.value) and "file:path.mp4" in str(e.value) and hint in str(e.value)
    with pytest.raises(ValueError, match="device:N"):
        open_source(cam("device:zero"))


def test_missing_device_and_pipeline_raise_source_error_naming_the_camera():
    with pytest.raises(SourceError, match=r"camera 'door' \(device:57\).*/dev/video57 does not exist"):
        open_source(cam("device:57", name="door"))
    with pytest.raises(SourceError, match=r"camera 'door' \(/dev/video57\)"):
        open_source(cam("/dev/video57", name="door"))
    with pytest.raises(SourceError, match="camera 'door'.*GStreamer"):
        open_source(cam("nosuchelement ! appsink", name="door"))


# --- the simulated camera -------------------------------------------------------------------------

def test_sim_frames_have_the_camera_size_advance_and_carry_small_truth():
    src = open_source(cam(width=200, height=100), pace=False, seed=3, people=1)
    assert (src.width, src.height, src.fps) == (200, 100, 30.0)
    frames = [src.read() for _ in range(5)]
    assert all(f.image.shape == (100, 200, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.truth["frame"] for f in frames] == [0, 1, 2, 3, 4]
    assert not np.array_equal(frames[0].image, frames[4].image)
    assert frames[0].truth == {"frame": 0, "sim_frame": 0, "t_sim_ns": 0, "people": 1, "seed": 3,
                               "seconds": 60.0, "fps": 30.0}
    assert len(msgpack.packb(frames[4].truth)) < 200
    assert np.diff([f.t_ns for f in frames]).tolist() == [33333333, 33333334, 33333333, 33333333]


def test_sim_pacing_holds_the_camera_rate():
    src = open_source(cam(width=96, height=72), clock="monotonic")
    src.read()
    t0 = time.monotonic()
    stamps = []
    while time.monotonic() - t0 < 1.0:
        stamps.append(src.read().t_ns)
    assert 29 <= len(stamps) <= 31
    assert np.allclose(np.diff(stamps), 1e9 / 30, atol=1)  # due times, not read times
    assert abs(stamps[-1] - time.monotonic_ns()) < 200e6
    assert src.dropped == 0


def test_sim_drops_frames_for_a_late_reader_like_a_camera():
    src = SimulatedCameraSource(cam(width=96, height=72), max_lag=2)
    first = src.read().truth["frame"]
    time.sleep(0.3)
    late = src.read()
    assert late.truth["frame"] - first >= 8 and src.dropped == late.truth["frame"] - first - 1
    assert late.t_ns == src.grid_time(late.truth["frame"])


def test_paced_sim_cameras_are_genlocked_whenever_they_start():
    rig = load_rig("studio-4")
    a, b = (SimulatedCameraSource(c.resized(96, 54), seed=3) for c in rig.cameras[:2])
    fa = [a.read()]
    time.sleep(0.012)  # b's node starts 12 ms later, a third of a frame period
    fb = []
    for _ in range(3):
        fb.append(b.read())
        fa.append(a.read())
    period = 1e9 / 30
    for f in fa + fb:  # every timestamp on the shared i / fps grid of the rig clock
        assert f.t_ns == a.grid_time(f.truth["frame"]) and abs(f.t_ns / period - f.truth["frame"]) < 1e-6
    by_time_a = {f.t_ns: f.truth["sim_frame"] for f in fa}
    shared = [f for f in fb if f.t_ns in by_time_a]
    assert shared, "the two cameras should have frames at the same instants"
    assert all(by_time_a[f.t_ns] == f.truth["sim_frame"] for f in shared)
    assert a.grid_index(a.grid_time(123456789)) == 123456789
    assert a.grid_index(a.grid_time(1000) + 1) == 1001


def test_sim_cameras_of_a_rig_with_the_same_seed_see_the_same_performers():
    rig = load_rig("studio-4")
    a, b = (open_source(c.resized(160, 90), rig=rig, seed=7, pace=False, clock="ptp") for c in rig.cameras[:2])
    assert np.array_equal(a.performers.joints, b.performers.joints)
    ta = [a.read() for _ in range(3)]
    tb = [b.read() for _ in range(3)]
    assert [f.truth for f in ta] == [f.truth for f in tb]
    assert abs(ta[0].t_ns - time.time_ns()) < 5e9  # ptp/ntp rigs stamp on the wall clock
    assert not np.array_equal(ta[2].image, tb[2].image)  # two viewpoints
    other = SimulatedCameraSource(rig[0].resized(160, 90), seed=8, pace=False)
    assert not np.allclose(other.performers.joints, a.performers.joints)


def test_sim_loops_its_performers_and_says_where_in_the_truth():
    src = SimulatedCameraSource(cam(width=64, height=48, fps=10.0), seconds=0.5, pace=False)
    truths = [src.read().truth for _ in range(7)]
    assert [t["sim_frame"] for t in truths] == [0, 1, 2, 3, 4, 0, 1]
    assert truths[6]["frame"] == 6 and truths[6]["t_sim_ns"] == 600_000_000


# --- video files ----------------------------------------------------------------------------------

def test_video_file_reads_every_frame_timed_by_its_rate(video):
    src = open_source(cam(f"file:{video}", width=W, height=H, fps=FPS), pace=False)
    assert (src.width, src.height, src.fps) == (W, H, FPS)
    frames = read_all(src)
    assert [index_of(f.image) for f in frames] == list(range(N))
    assert set(np.diff([f.t_ns for f in frames]).tolist()) == {50_000_000}
    with pytest.raises(EndOfStream):
        src.read()  # and stays ended
    src.close()


def test_video_file_takes_timestamps_from_its_sidecar(tmp_path, video):
    irregular = 1_000_000_000 + np.cumsum(np.r_[0, np.full(N - 1, 40_000_000) + 1000 * np.arange(N - 1)])
    (tmp_path / "cam0.csv").write_text("frame,t_ns\n" + "".join(f"{k},{t}\n" for k, t in enumerate(irregular)))
    copy = tmp_path / "cam0.mp4"
    copy.write_bytes(video.read_bytes())
    src = open_source(cam(f"file:{copy}", width=W, height=H, fps=25.0), pace=False)
    assert src.sidecar == tmp_path / "cam0.csv" and src.fps == pytest.approx(1e9 / np.median(np.diff(irregular)))
    t = [f.t_ns for f in read_all(src)]
    assert np.array_equal(np.array(t) - t[0], irregular - irregular[0])


def test_video_file_segment_reads_the_session_sidecar(tmp_path, video):
    seg = tmp_path / "video" / "cam0"
    seg.mkdir(parents=True)
    (seg / "000001.mp4").write_bytes(video.read_bytes())
    rows = [(s, 5_000_000 * s, s // N) for s in range(2 * N)]  # segment 0 then segment 1
    (tmp_path / "video" / "cam0.csv").write_text("seq,t_ns,segment\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    src = VideoFileSource(cam(width=W, height=H, fps=200.0), seg / "000001.mp4", pace=False)
    t = [f.t_ns for f in read_all(src)]
    assert src.sidecar == tmp_path / "video" / "cam0.csv" and len(t) == N
    assert set(np.diff(t).tolist()) == {5_000_000}
    with pytest.raises(SourceError, match="no rows for segment 000007.mp4"):
        (seg / "000007.mp4").write_bytes(video.read_bytes())
        VideoFileSource(cam(width=W, height=H), seg / "000007.mp4")


def test_video_file_paces_at_the_recorded_rate_or_runs_fast(video):
    fast = VideoFileSource(cam(width=W, height=H, fps=FPS), video, pace=False)
    t0 = time.monotonic()
    read_all(fast)
    assert time.monotonic() - t0 < 0.5  # 1 s of video
    paced = VideoFileSource(cam(width=W, height=H, fps=FPS), video)
    t0 = time.monotonic()
    stamps = [paced.read().t_ns for _ in range(7)]
    assert 0.29 <= time.monotonic() - t0 < 0.6  # frame 6 is due at 300 ms
    assert stamps[0] == paced.timeline.start_clock and stamps[6] - stamps[0] == 300_000_000


def test_video_file_loops(video):
    src = VideoFileSource(cam(width=W, height=H, fps=FPS), video, pace=False, loop=True)
    frames = [src.read() for _ in range(2 * N + 5)]
    assert [index_of(f.image) for f in frames[N - 1:N + 2]] == [N - 1, 0, 1]
    assert set(np.diff([f.t_ns for f in frames]).tolist()) == {50_000_000} and src.passes == 2


def test_video_file_errors_name_the_file(tmp_path, video):
    with pytest.warns(SourceWarning, match=r"camera 'cam0': video file .*cam0.mp4 is 64x48, the rig says 160x120"):
        VideoFileSource(cam(fps=FPS), video)
    with pytest.raises(SourceError, match=r"camera 'cam0': video file .*nothere.mp4 does not exist"):
        open_source(cam(f"file:{tmp_path / 'nothere.mp4'}"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[:600])
    for bad in (junk, truncated):
        with pytest.raises(SourceError, match=rf"camera 'cam0': .*{bad.name}"):
            open_source(cam(f"file:{bad}"))
    with pytest.raises(SourceError, match="sidecar .*none.csv does not exist"):
        open_source(cam(f"file:{video}"), timestamps=tmp_path / "none.csv")


@pytest.mark.skipif(not DEMO.is_dir(), reason="../shared data absent")
def test_real_videos_h264_and_vp9_with_a_size_mismatch():
    rig = load_rig(DEMO / "calibration" / "Calib.qca.txt")
    cam01 = rig["cam01"].replace(source=f"file:{DEMO / 'videos' / 'cam01.mp4'}")
    assert (cam01.width, cam01.height) == (1088, 1920)
    with pytest.warns(SourceWarning, match=r"camera 'cam01': .*cam01.mp4 is 1080x1920, the rig says 1088x1920"):
        src = open_source(cam01, pace=False)
    assert src.read().image.shape == (1920, 1080, 3) and src.fps == 60.0
    vp9 = rig["cam02"].replace(source=f"file:{DEMO / 'videos' / 'cam02.mp4'}")
    with pytest.warns(SourceWarning):
        src = open_source(vp9, pace=False)
    f = [src.read() for _ in range(3)]
    assert f[2].image.shape == (1920, 1080, 3) and f[2].t_ns - f[0].t_ns == round(2e9 / 60)
    assert not np.array_equal(f[0].image, f[2].image)


# --- image folders --------------------------------------------------------------------------------

def test_image_folder_in_frame_number_order_paced_at_the_camera_rate(tmp_path):
    for k in (10, 2, 1, 33):
        cv2.imwrite(str(tmp_path / f"cam3_{k}.png"), np.full((H, W), 5 * k, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(cam(str(tmp_path), width=W, height=H, fps=20.0))
    t0 = time.monotonic()
    frames = read_all(src)
    assert [level(f.image) for f in frames] == [5, 10, 50, 165]  # not 1, 10, 2, 33 as names sort
    assert frames[0].image.shape == (H, W)  # grey stays grey
    assert np.diff([f.t_ns for f in frames]).tolist() == [50_000_000] * 3 and time.monotonic() - t0 >= 0.14


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(SourceError, match=r"camera 'cam0': image folder .* has no jpg/jpeg/png images"):
        ImageFolderSource(cam(), tmp_path)
    cv2.imwrite(str(tmp_path / "background.jpg"), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(SourceError, match="background.jpg: no frame number"):
        ImageFolderSource(cam(), tmp_path)
    (tmp_path / "background.jpg").unlink()
    (tmp_path / "f_001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="f_001.jpg cannot be read"):
        ImageFolderSource(cam(), tmp_path)


# --- OpenCV cameras (through a fake capture: no camera here) -------------------------------------

class FakeCapture:
    """A VideoCapture stand-in giving ``gives`` (width, height, fps) whatever is requested."""

    def __init__(self, gives=(640, 480, 15.0), opened=True, frames=3):
        self.gives, self.opened, self.frames = gives, opened, frames
        self.requested, self.opened_with, self.released = {}, None, False

    def __call__(self, target, backend):
        self.opened_with = (target, backend)
        return self

    def isOpened(self):  # noqa: N802 -- OpenCV's name
        return self.opened

    def set(self, prop, value):
        self.requested[prop] = value
        return True

    def get(self, prop):
        w, h, fps = self.gives
        return {cv2.CAP_PROP_FRAME_WIDTH: w, cv2.CAP_PROP_FRAME_HEIGHT: h, cv2.CAP_PROP_FPS: fps}.get(prop, 0.0)

    def grab(self):
        self.frames -= 1
        return self.frames >= 0

    def retrieve(self):
        return True, np.zeros((self.gives[1], self.gives[0], 3), np.uint8)

    def release(self):
        self.released = True


def test_opencv_camera_requests_the_rig_values_and_warns_on_what_it_gets():
    fake = FakeCapture(gives=(640, 480, 15.0))
    camera = cam("device:2", name="left", width=1280, height=720, fps=30.0)
    with pytest.warns(SourceWarning, match=r"camera 'left' \(device:2\): the rig asks for 1280x720 at 30 fps, "
                                           r"the camera gives 640x480 at 15 fps"):
        src = OpenCVCameraSource(camera, capture_factory=fake)
    assert fake.opened_with == (2, cv2.CAP_V4L2)
    assert fake.requested == {cv2.CAP_PROP_FOURCC: cv2.VideoWriter_fourcc(*"MJPG"), cv2.CAP_PROP_FRAME_WIDTH: 1280,
                              cv2.CAP_PROP_FRAME_HEIGHT: 720, cv2.CAP_PROP_FPS: 30.0}
    assert (src.width, src.height, src.fps) == (640, 480, 15.0)
    before = time.monotonic_ns()
    frame = src.read()
    assert frame.image.shape == (480, 640, 3) and before <= frame.t_ns <= time.monotonic_ns()
    src.read(), src.read()
    with pytest.raises(SourceError, match=r"camera 'left' \(device:2\): no frame"):
        src.read()
    src.close()
    assert fake.released


def test_opencv_camera_that_gives_what_is_asked_is_quiet_and_pipelines_are_not_sent_requests():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src = OpenCVCameraSource(cam("/dev/video0", width=640, height=480, fps=15.0), capture_factory=FakeCapture())
        assert src.read().image.shape == (480, 640, 3)
    fake = FakeCapture(gives=(640, 480, 15.0))
    OpenCVCameraSource(cam("v4l2src ! videoconvert ! appsink", width=640, height=480, fps=15.0), capture_factory=fake)
    assert fake.requested == {} and fake.opened_with[1] == cv2.CAP_GSTREAMER
    with pytest.raises(SourceError, match=r"camera 'cam0' \(rtsp://10.0.0.9/s\): cannot open it"):
        OpenCVCameraSource(cam("rtsp://10.0.0.9/s"), capture_factory=FakeCapture(opened=False))
