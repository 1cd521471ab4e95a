"""Board detection: sub-pixel ChArUco and checkerboard corners against simulated truth, the canonical
checkerboard order, real boards (caliscope ChArUco videos, Pose2Sim and caliscope checkerboards), and
what explain_no_board says when the spec does not match the print."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.board_detection import BoardView, detect_board, detect_views, explain_no_board
from calibration.errors import CalibrationError
from calibration.frame_sources import image_folder_frames, video_frames
from rigs.board import Board, load_board
from rigs.camera import look_at
from rigs.sim.board import SimulatedBoard, SimulatedBoardPose, board_truth
from rigs.sim.board_motion import board_in_front_of
from rigs.sim.render import RenderParams, render_view

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CALISCOPE = SHARED / "mprib+caliscope" / "tests" / "sessions"
CHARUCO_VIDEOS = CALISCOPE / "charuco_calibration" / "calibration" / "extrinsic"
CHESSBOARD = CALISCOPE / "chessboard_intrinsic"
POSE2SIM = SHARED / "perfanalytics+pose2sim" / "Pose2Sim" / "Demo_SinglePerson" / "calibration" / "intrinsics"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent: real boards come from there")
DISTORTED = np.array([-0.25, 0.08, 0.001, -0.001, 0.0])


def facing_pose(spec, cam, centre, tilt=0.3):
    """A board centred at ``centre``, facing the camera, turned by ``tilt`` rad about its vertical."""
    c, s = np.cos(tilt), np.sin(tilt)
    R = cam.R.T @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    w, h = spec.size
    return SimulatedBoardPose(spec, R, np.asarray(centre, float) - R @ [w / 2, h / 2, 0])


def errors(ids, corners, truth_ids, truth_px):
    truth = dict(zip(truth_ids.tolist(), truth_px, strict=True))
    return np.array([np.linalg.norm(c - truth[i]) for i, c in zip(ids.tolist(), corners, strict=True)])


def checkerboard_render(cols, rows, size=(1280, 720), square_px=50, angles=(0.2, 0.3, 0.1), blur=0.6, seed=0):
    """A checkerboard (cols x rows inner corners, top-left square black, a white margin of one square)
    warped into a grey image by a homography, supersampled 4x; returns the image and the true corners
    [cols*rows, 2] in row-major order."""
    pps, S = 64, 4
    nx, ny = cols + 1, rows + 1
    a, b = np.meshgrid(np.arange((nx + 2) * pps) // pps - 1, np.arange((ny + 2) * pps) // pps - 1)
    inside = (a >= 0) & (a < nx) & (b >= 0) & (b < ny)
    sheet = np.where(inside & ((a + b) % 2 == 0), 0, 255).astype(np.uint8)
    W, H = size
    f = float(W)
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    R = cv2.Rodrigues(np.asarray(angles, float))[0]
    t = np.array([0, 0, f / square_px]) - R @ np.array([nx / 2, ny / 2, 0])
    Hm = K @ np.column_stack([R[:, 0], R[:, 1], t])  # square units (sheet origin at the top-left square) -> px
    to_sheet = np.array([[pps, 0, pps - 0.5], [0, pps, pps - 0.5], [0, 0, 1.0]])
    fine = np.array([[S, 0, (S - 1) / 2], [0, S, (S - 1) / 2], [0, 0, 1.0]])
    big = cv2.warpPerspective(sheet, fine @ Hm @ np.linalg.inv(to_sheet), (W * S, H * S), borderValue=128)
    img = cv2.GaussianBlur(cv2.resize(big, size, interpolation=cv2.INTER_AREA).astype(np.float32), (0, 0), blur)
    img += np.random.default_rng(seed).normal(0, 2.0, img.shape)
    j, i = np.divmod(np.arange(cols * rows), cols)
    p = np.c_[i + 1.0, j + 1.0, np.ones(cols * rows)] @ Hm.T
    return np.clip(np.round(img), 0, 255).astype(np.uint8), p[:, :2] / p[:, 2:]


# --- ChArUco on simulated renders ---------------------------------------------------------------

@pytest.mark.parametrize("dist", [np.zeros(5), DISTORTED], ids=["pinhole", "distorted"])
@pytest.mark.parametrize("inverted", [False, True], ids=["printed", "inverted"])
def test_charuco_corners_are_subpixel_accurate_on_a_sharp_render(dist, inverted):
    cam = look_at("c", (0.0, -2.2, 1.5), (0.3, 0.0, 1.2), 1280, 720, 70.0, dist=dist)
    spec = SimulatedBoard(cols=7, rows=5, square=0.06, marker=0.045, inverted=inverted)
    pose = facing_pose(spec, cam, (0.3, 0.0, 1.2))
    img = render_view(cam, None, 0, RenderParams(seed=1), board=pose)
    ids, corners = detect_board(img, spec.spec)
    truth_ids, truth_px = board_truth(cam, pose)
    assert ids.dtype == np.int32 and corners.dtype == np.float64 and corners.shape == (len(ids), 2)
    assert np.all(np.diff(ids) > 0) and len(ids) == len(truth_ids) == 24
    err = errors(ids, corners, truth_ids, truth_px)
    assert np.median(err) < 0.2 and err.max() < 0.5, (np.median(err), err.max())
    # the same corners from the grey image; the wrong polarity finds (almost) nothing
    gray_ids, gray_corners = detect_board(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), spec.spec)
    assert np.array_equal(gray_ids, ids) and np.allclose(gray_corners, corners, atol=1e-3)
    other = Board.parse(spec.spec.spec_text().replace(":inverted", "") + ("" if inverted else ":inverted"))
    assert len(detect_board(img, other)[0]) < 6


def test_charuco_accuracy_over_held_poses_at_1080p():
    """Five poses as a person holds a board in front of a 1080p camera (0.6-2 m, tilted up to 45 degrees):
    nearly every corner found, median error under 0.2 px (measured: 0.08 px, p95 0.18 px)."""
    cam = look_at("c", (0.0, -2.2, 1.5), (0.0, 0.0, 1.5), 1920, 1080, 70.0)
    spec = SimulatedBoard(cols=5, rows=7, square=0.04, marker=0.03)
    found, total, errs = 0, 0, []
    for k, pose in enumerate(board_in_front_of(cam, spec, 5, seed=3)):
        ids, corners = detect_board(render_view(cam, None, k, RenderParams(seed=k), board=pose), spec.spec)
        truth_ids, truth_px = board_truth(cam, pose)
        assert set(ids.tolist()) <= set(truth_ids.tolist())
        found, total = found + len(ids), total + len(truth_ids)
        errs.append(errors(ids, corners, truth_ids, truth_px))
    err = np.concatenate(errs)
    print(f"1080p held poses: {found}/{total} corners, median {np.median(err):.3f} px, "
          f"p95 {np.percentile(err, 95):.3f} px, max {err.max():.3f} px")
    assert found >= 0.95 * total
    assert np.median(err) < 0.2 and np.percentile(err, 95) < 0.4 and err.max() < 1.0


def test_a_partly_visible_charuco_board_gives_the_corners_in_view():
    cam = look_at("c", (0.0, -2.2, 1.5), (0.3, 0.0, 1.2), 1280, 720, 70.0)
    spec = SimulatedBoard(cols=7, rows=5, square=0.06, marker=0.045)
    pose = facing_pose(spec, cam, (2.0, 0.0, 1.2), tilt=0.1)  # its right part is out of the image
    truth_ids, truth_px = board_truth(cam, pose)
    assert 12 <= len(truth_ids) < 24
    ids, corners = detect_board(render_view(cam, None, 0, RenderParams(seed=2), board=pose), spec.spec)
    # a corner is interpolated from the markers beside it: those at the cut need both in view
    assert len(ids) >= 0.6 * len(truth_ids) and set(ids.tolist()) <= set(truth_ids.tolist())
    assert np.median(errors(ids, corners, truth_ids, truth_px)) < 0.2


def test_images_without_the_board_and_bad_images():
    cam = look_at("c", (0.0, -2.2, 1.5), (0.3, 0.0, 1.2), 640, 360, 70.0)
    empty = render_view(cam, None, 0, RenderParams(seed=1))
    for spec in ("charuco:5x7:0.04:0.03:DICT_5X5_100", "checkerboard:9x6:0.03"):
        ids, corners = detect_board(empty, Board.parse(spec))
        assert ids.shape == (0,) and corners.shape == (0, 2)
    with pytest.raises(CalibrationError, match="expected an 8- or 16-bit"):
        detect_board(np.zeros((10, 10, 2), np.uint8), Board.parse("checkerboard:9x6:0.03"))


# --- checkerboards --------------------------------------------------------------------------------

def test_checkerboard_corners_are_subpixel_accurate_and_canonical():
    board = Board.parse("checkerboard:9x6:0.03")
    for k, (angles, square_px) in enumerate([((0.2, 0.3, 0.1), 50), ((-0.4, 0.2, 2.5), 35), ((0.1, -0.5, -1.2), 70)]):
        img, truth = checkerboard_render(9, 6, angles=angles, square_px=square_px, seed=k)
        ids, corners = detect_board(img, board)
        assert np.array_equal(ids, np.arange(54))
        err = np.linalg.norm(corners - truth, axis=1)
        assert np.median(err) < 0.1 and err.max() < 0.3, (k, np.median(err), err.max())
        # turned by 180 degrees in the image: corner 0 is still the one by the black top-left square
        ids, corners = detect_board(img[::-1, ::-1].copy(), board)
        turned = np.array(img.shape[1::-1]) - 1 - truth
        assert np.linalg.norm(corners - turned, axis=1).max() < 0.3


def test_a_checkerboard_cut_by_the_image_border_is_found_when_its_corners_are_in_view():
    img, truth = checkerboard_render(9, 6, square_px=125, angles=(0.0, 0.0, 0.02))
    assert truth[:, 1].min() > 20 and truth[:, 1].max() < 700 and truth[:, 1].min() - 125 < 0  # outer squares cut
    ids, corners = detect_board(img, Board.parse("checkerboard:9x6:0.03"))
    assert len(ids) == 54 and np.linalg.norm(corners - truth, axis=1).max() < 0.3


def test_a_checkerboard_larger_than_the_spec_is_refused():
    img, _ = checkerboard_render(9, 6)
    for spec in ("checkerboard:5x4:0.03", "checkerboard:8x6:0.03", "checkerboard:9x5:0.03"):
        assert len(detect_board(img, Board.parse(spec))[0]) == 0, spec


def test_a_symmetric_checkerboard_starts_near_the_image_top_left():
    """8x6 inner corners look the same turned by 180 degrees: corner 0 is the candidate nearest (0, 0)."""
    img, truth = checkerboard_render(8, 6, angles=(0.1, 0.2, 0.05))
    ids, corners = detect_board(img, Board.parse("checkerboard:8x6:0.03"))
    assert len(ids) == 48 and np.linalg.norm(corners - truth, axis=1).max() < 0.3
    ids, corners = detect_board(img[::-1, ::-1].copy(), Board.parse("checkerboard:8x6:0.03"))
    assert corners[0].sum() < corners[-1].sum()


# --- detect_views -------------------------------------------------------------------------------

def test_detect_views_keeps_frames_with_enough_corners_and_reports_progress():
    cam = look_at("c", (0.0, -2.2, 1.5), (0.3, 0.0, 1.2), 1280, 720, 70.0)
    spec = SimulatedBoard(cols=7, rows=5, square=0.06, marker=0.045)
    board_img = render_view(cam, None, 0, RenderParams(seed=1), board=facing_pose(spec, cam, (0.3, 0.0, 1.2)))
    empty = render_view(cam, None, 1, RenderParams(seed=1))
    gray = cv2.cvtColor(board_img, cv2.COLOR_BGR2GRAY)
    frames = [(10, "a.png", board_img), (11, "b.png", empty), (12, "c.png", gray)]
    calls = []
    views = detect_views(frames, spec.spec, "cam3", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [(v.camera, v.frame, v.source, v.image_size) for v in views] == [
        ("cam3", 10, "a.png", (1280, 720)), ("cam3", 12, "c.png", (1280, 720))]
    assert len(views[0].ids) >= 20 and views[0].corners.shape == (len(views[0].ids), 2)
    assert detect_views(iter(frames), spec.spec, "cam3", min_corners=25) == []


def test_detect_views_leaves_out_charuco_corners_on_one_line(monkeypatch):
    """Corners along one row give no pose: such views are left out whatever their count."""
    import calibration.board_detection as board_detection

    board = Board.parse("charuco:7x5:0.06:0.045:DICT_5X5_100")
    found = {0: np.arange(6), 1: np.array([0, 1, 2, 6, 7, 8])}  # one row / two rows of corners
    monkeypatch.setattr(board_detection, "detect_board",
                        lambda image, b: (found[int(image[0, 0])].astype(np.int32), np.ones((6, 2))))
    frames = [(k, "", np.full((4, 4), k, np.uint8)) for k in (0, 1)]
    assert [v.frame for v in detect_views(frames, board, "c")] == [1]


def test_board_view_sorts_its_corners_and_refuses_repeated_ids():
    v = BoardView("c", 3, np.array([5, 2]), np.array([[5.0, 5.0], [2.0, 2.0]]), (10, 10))
    assert v.ids.tolist() == [2, 5] and v.corners.tolist() == [[2.0, 2.0], [5.0, 5.0]] and v.ids.dtype == np.int32
    with pytest.raises(ValueError, match="repeat"):
        BoardView("c", 3, np.array([2, 2]), np.zeros((2, 2)), (10, 10))


# --- real boards --------------------------------------------------------------------------------

@needs_shared
def test_caliscope_charuco_videos():
    """caliscope's inverted 4x5 ChArUco board, 4 webcams at 1280x720: every 6th of 111 frames (8, 4, 7, 8
    views). All 111 frames give 46, 28, 43, 45 views with >= 6 corners, mostly all 12."""
    board = load_board(CHARUCO_VIDEOS.parents[1] / "charuco.toml")
    assert board.inverted and board.num_corners == 12
    expect = {0: (6, 10), 1: (3, 6), 2: (5, 9), 3: (6, 10)}
    for cam, (low, high) in expect.items():
        views = detect_views(video_frames(CHARUCO_VIDEOS / f"cam_{cam}.mp4", step=6), board, f"cam_{cam}")
        full = sum(len(v.ids) == 12 for v in views)
        assert low <= len(views) <= high and full >= 0.6 * len(views), (cam, len(views), full)
        assert all(v.frame % 6 == 0 and v.image_size == (1280, 720) for v in views)


@needs_shared
@pytest.mark.parametrize("cam", [1, 4])
def test_pose2sim_checkerboard_images(cam):
    """Pose2Sim's 4x7 checkerboard (60 mm) in 7 portrait 1088x1920 images a camera: found in at least 6, and
    the corners fit one pinhole camera to well under half a pixel."""
    board = Board.parse("checkerboard:4x7:0.06")
    views = detect_views(image_folder_frames(POSE2SIM / f"int_cam0{cam}_img"), board, f"cam0{cam}")
    assert len(views) >= 6
    K0 = np.array([[1671.0, 0, 544], [0, 1671.0, 960], [0, 0, 1]])
    obj = board.corner_points().astype(np.float32)
    rms, K, *_ = cv2.calibrateCamera([obj] * len(views), [v.corners.astype(np.float32) for v in views],
                                     (1088, 1920), K0, np.zeros(5), flags=cv2.CALIB_USE_INTRINSIC_GUESS)
    assert rms < 0.3 and abs(K[0, 0] - 1671) < 15, (rms, K[0, 0])  # Pose2Sim's own result: fx 1671


@needs_shared
def test_caliscope_chessboard_frames():
    board = Board.parse("checkerboard:9x6:0.03")
    views = detect_views(image_folder_frames(CHESSBOARD), board, "c")
    assert len(views) == 7 and "cam_0_frame_000.jpg" not in [v.source for v in views]


# --- explain_no_board ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def caliscope_frames():
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent: real boards come from there")
    return [img for _, _, img in video_frames(CHARUCO_VIDEOS / "cam_0.mp4", step=20)]


@pytest.mark.parametrize("spec, words", [
    ("charuco:4x5:0.054:0.0405:DICT_4X4_1000", "add :inverted"),
    ("charuco:4x5:0.054:0.0405:DICT_5X5_100:inverted", "10 markers of DICT_4X4 (ids 0..9) were found: the spec's "
                                                       "dictionary does not match"),
    ("charuco:5x7:0.054:0.0405:DICT_4X4_1000:inverted", "looks like 4x5"),
    ("checkerboard:4x7:0.05:inverted", "looks like a ChArUco board"),
])
def test_explain_no_board_on_caliscope_video(caliscope_frames, spec, words):
    assert words in explain_no_board(caliscope_frames, Board.parse(spec))


@needs_shared
def test_explain_no_board_names_the_checkerboard_size_seen():
    images = [img for _, _, img in image_folder_frames(CHESSBOARD)]
    said = explain_no_board(images[1:4], Board.parse("checkerboard:4x7:0.03"))
    assert "a 9x6 checkerboard" in said or "a 6x9 checkerboard" in said
    said = explain_no_board(images[1:3], Board.parse("charuco:5x7:0.04:0.03:DICT_5X5_100"))
    assert "the print is a checkerboard" in said


def test_explain_no_board_with_nothing_in_view_and_the_wrong_polarity():
    rng = np.random.default_rng(0)
    clutter = cv2.GaussianBlur(rng.uniform(0, 255, (360, 640, 3)).astype(np.uint8), (0, 0), 3)
    said = explain_no_board([clutter, clutter[::-1]], Board.parse("charuco:5x7:0.04:0.03:DICT_5X5_100"))
    assert said.startswith("nothing board-like found in 2 images")
    cam = look_at("c", (0.0, -2.2, 1.5), (0.3, 0.0, 1.2), 1280, 720, 70.0)
    spec = SimulatedBoard(cols=7, rows=5, square=0.06, marker=0.045)
    img = render_view(cam, None, 0, RenderParams(seed=1), board=facing_pose(spec, cam, (0.3, 0.0, 1.2)))
    said = explain_no_board([img], Board.parse(spec.spec.spec_text() + ":inverted"))
    assert "drop :inverted" in said
