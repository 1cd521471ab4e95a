"""Tests for calibration/intrinsics.py (and its figure, calibration/intrinsics_plot.py): lenses recovered
from simulated board views with known truth (pinhole and fisheye, corners with 0.3 px noise and from
rendered images), outlier and unusable views dropped with their reason, advice on poor coverage, errors
for input that cannot determine a lens, and the real Pose2Sim checkerboard images against Pose2Sim's own
calibration."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.board_detection import BoardView, detect_board, detect_views
from calibration.errors import CalibrationError
from calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics, view_errors
from calibration.intrinsics_plot import plot_intrinsics
from rigs.board import Board
from rigs.camera import Camera
from rigs.formats import load_rig
from rigs.sim.board import SimulatedBoard, SimulatedBoardPose, board_truth

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
P2S = DATA / "perfanalytics+pose2sim" / "Pose2Sim" / "Demo_SinglePerson" / "calibration"
BOARD = SimulatedBoard(10, 14, 0.04, 0.03)  # 117 ChArUco corners, 0.4 x 0.56 m
DIST = np.array([-0.25, 0.08, 0.001, -0.0005, 0.0])
NOISE = 0.3  # px, per coordinate


def studio_camera(dist=DIST) -> Camera:
    """The first camera of the studio-8 preset (1920x1080, f 1371 px) with a barrel lens."""
    return load_rig("studio-8")[0].replace(dist=np.asarray(dist, float))


def fisheye_camera() -> Camera:
    K = np.array([[600.0, 0, 955.0], [0, 600.0, 545.0], [0, 0, 1]])
    return studio_camera().replace(model="fisheye", K=K, dist=np.array([0.05, -0.02, 0.005, -0.001]))


def board_pose(cam: Camera, u: float, v: float, tilt_deg: float = 0.0, direction: float = 0.0,
               depth: float = 1.2, board: SimulatedBoard = BOARD) -> SimulatedBoardPose:
    """The board centred on pixel (u, v) at ``depth`` m, facing the camera, tilted ``tilt_deg`` about the
    image-plane axis at ``direction`` rad from the camera's x axis."""
    ray = cam.undistort(np.array([[u, v]], float))[0]
    axis = np.array([np.cos(direction), np.sin(direction), 0.0])
    R_cam = Rotation.from_rotvec(np.radians(tilt_deg) * axis).as_matrix()
    w, h = board.size
    centre = np.array([ray[0], ray[1], 1.0]) * depth - R_cam @ [w / 2, h / 2, 0.0]
    return SimulatedBoardPose(board, cam.R.T @ R_cam, cam.R.T @ (centre - cam.t))


def good_capture(cam: Camera, tilt: float = 40.0, directions: int = 8, depths=(0.9, 1.4), spread: float = 0.3,
                 board: SimulatedBoard = BOARD) -> list[SimulatedBoardPose]:
    """What a lab guide asks for: the board at 9 places over the image, tilted 40 deg every way."""
    poses = []
    for fv in (0.5 - spread, 0.5, 0.5 + spread):
        for fu in (0.5 - spread, 0.5, 0.5 + spread):
            for k in range(directions):
                poses.append(board_pose(cam, fu * cam.width, fv * cam.height, tilt, 2 * np.pi * k / directions,
                                        depths[len(poses) % len(depths)], board))
    return poses


def views_of(cam: Camera, poses, noise: float = NOISE, seed: int = 0) -> list[BoardView]:
    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(poses):
        ids, px = board_truth(cam, p)
        if len(ids):
            out.append(BoardView(cam.name, i, ids, px + rng.normal(0, noise, px.shape), cam.size, f"sim#{i}"))
    return out


@pytest.fixture(scope="module")
def pinhole_result() -> tuple[Camera, list[BoardView], IntrinsicsResult]:
    cam = studio_camera()
    views = views_of(cam, good_capture(cam))
    return cam, views, calibrate_intrinsics(views, BOARD.spec, cam.size, name="cam0", max_views=80)


# --- simulated lenses --------------------------------------------------------------------------------

def test_pinhole_lens_is_recovered_within_the_targets(pinhole_result):
    cam, views, r = pinhole_result
    K = r.camera.K
    assert len(r.used) == len(views) == 72 and r.dropped == ()
    assert K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.005) and K[1, 1] == pytest.approx(cam.K[1, 1], rel=0.005)
    assert abs(K[0, 2] - cam.K[0, 2]) < 2 and abs(K[1, 2] - cam.K[1, 2]) < 2
    np.testing.assert_allclose(r.camera.dist[:4], DIST[:4], atol=0.005)
    assert r.camera.dist[4] == 0.0  # k3 not needed by this lens: held at 0
    # errors agree with the stated uncertainty, and the RMS with the noise (2D: sqrt(2) x 0.3 px)
    for i, (row, col) in enumerate(((0, 0), (1, 1), (0, 2), (1, 2))):
        name = ("fx", "fy", "cx", "cy")[i]
        assert 0 < r.std[name] < 1.5 and abs(K[row, col] - cam.K[row, col]) < 4 * r.std[name]
    assert r.rms == pytest.approx(NOISE * np.sqrt(2), rel=0.05)
    assert r.view_rms.shape == (72,) and np.median(r.view_rms) == pytest.approx(r.rms, rel=0.1)
    assert r.camera.name == "cam0" and r.camera.model == "pinhole" and r.camera.size == cam.size
    np.testing.assert_array_equal(r.camera.R, np.eye(3))
    assert r.advice == ()
    assert r.normals.shape == (72, 3) and np.degrees(np.arccos(r.normals[:, 2])).max() == pytest.approx(40, abs=1)


def test_uncertainty_agrees_with_opencv(pinhole_result):
    _, views, r = pinhole_result
    obj = [BOARD.spec.corner_points()[v.ids].astype(np.float32) for v in views]
    img = [v.corners.astype(np.float32) for v in views]
    out = cv2.calibrateCameraExtended(obj, img, (1920, 1080), None, None, flags=cv2.CALIB_FIX_K3)
    std_cv = out[5].ravel()
    for i, name in enumerate(("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2")):
        assert r.std[name] == pytest.approx(std_cv[i], rel=0.05), name
    assert r.std["k3"] == 0.0


def test_a_lens_that_needs_k3_keeps_it():
    dist = np.array([-0.32, 0.15, 0.0, 0.0, -0.05])
    cam = studio_camera(dist)
    views = views_of(cam, good_capture(cam, directions=4, spread=0.36), noise=0.1, seed=2)
    r = calibrate_intrinsics(views, BOARD.spec, cam.size)
    assert r.camera.dist[4] != 0.0 and r.std["k3"] > 0
    assert r.camera.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.005)
    # the lens agrees where the corners were: compare undistorted rays over the image
    grid = np.stack(np.meshgrid(np.linspace(100, 1820, 9), np.linspace(80, 1000, 6)), -1)
    assert np.abs(r.camera.undistort(grid) - cam.undistort(grid)).max() * cam.K[0, 0] < 2.0


def test_a_wide_lens_defeating_opencvs_start_is_recovered():
    # 108 deg across: OpenCV's distortion-free start alone ends near f = 1650 px with 9 px RMS
    wide = np.array([[700.0, 0, 959.5], [0, 700.0, 539.5], [0, 0, 1]])
    cam = studio_camera(np.array([-0.28, 0.07, 0.0, 0.0, -0.007])).replace(K=wide)
    r = calibrate_intrinsics(views_of(cam, good_capture(cam, directions=4, depths=(0.6, 0.9))), BOARD.spec,
                             cam.size)
    assert r.camera.K[0, 0] == pytest.approx(700, rel=0.005) and r.rms < 0.5 and r.dropped == ()
    assert r.camera.dist[0] == pytest.approx(-0.28, abs=0.01)


def test_fisheye_lens_is_recovered():
    cam = fisheye_camera()
    views = views_of(cam, good_capture(cam, directions=4, depths=(0.6, 0.9)))
    r = calibrate_intrinsics(views, BOARD.spec, cam.size, name="fish", model="fisheye")
    K = r.camera.K
    assert r.camera.model == "fisheye" and r.camera.dist.shape == (4,)
    assert K[0, 0] == pytest.approx(600, rel=0.01) and K[1, 1] == pytest.approx(600, rel=0.01)
    assert abs(K[0, 2] - 955) < 3 and abs(K[1, 2] - 545) < 3
    assert set(r.std) == {"fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"}
    assert all(abs(K[i, j] - cam.K[i, j]) < 4 * r.std[n] for (i, j), n in
               zip(((0, 0), (1, 1), (0, 2), (1, 2)), ("fx", "fy", "cx", "cy"), strict=True))
    assert r.rms == pytest.approx(NOISE * np.sqrt(2), rel=0.05)
    # the recovered lens bends rays as the true one does, out to 60 deg off axis
    angles = np.radians(np.linspace(0, 60, 7))
    rays = np.c_[np.tan(angles) * np.cos(0.5), np.tan(angles) * np.sin(0.5), np.ones(7)]
    assert np.abs(r.camera.project(rays) - cam.replace(R=np.eye(3), t=np.zeros(3)).project(rays)).max() < 1.5


def test_a_view_the_fisheye_fit_fails_on_is_dropped_and_the_fit_retried():
    cam = fisheye_camera()
    views = views_of(cam, good_capture(cam, directions=2, depths=(0.6, 0.9)))
    v = views[3]
    scrambled = np.random.default_rng(0).uniform(0, 1000, v.corners.shape)  # cv2.fisheye.calibrate raises
    views.append(BoardView(v.camera, 99, v.ids, scrambled, v.image_size, "scrambled.png"))
    r = calibrate_intrinsics(views, BOARD.spec, cam.size, model="fisheye")
    assert [(view.source, why.split(":")[0]) for view, why in r.dropped] == [("scrambled.png", "ill-conditioned")]
    assert r.camera.K[0, 0] == pytest.approx(600, rel=0.01) and r.rms < 0.5


def test_more_views_than_max_views_keeps_a_spread_subset():
    cam = studio_camera()
    views = views_of(cam, good_capture(cam))
    r = calibrate_intrinsics(views, BOARD.spec, cam.size, max_views=20)
    assert len(r.used) == 20 and len(r.dropped) == 52
    assert all(why.startswith("not selected: 20 well-spread views of 72") for _, why in r.dropped)
    again = calibrate_intrinsics(views, BOARD.spec, cam.size, max_views=20)
    assert [v.frame for v in again.used] == [v.frame for v in r.used]
    assert r.camera.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.005)
    # all nine places over the image stay represented
    assert len({v.frame // 8 for v in r.used}) == 9


def test_duplicate_views_of_a_still_board_are_dropped():
    cam = studio_camera()
    poses = good_capture(cam, directions=2)
    views = views_of(cam, poses)
    repeats = views_of(cam, poses[:3], noise=NOISE, seed=9)
    r = calibrate_intrinsics(views + repeats, BOARD.spec, cam.size)
    dup = [(v, why) for v, why in r.dropped if why.startswith("duplicate")]
    assert len(dup) == 3 and len(r.used) == len(views)
    assert "sim#0" in dup[0][1]


# --- dropped views, advice and errors -------------------------------------------------------------------

def test_a_view_with_10px_errors_is_dropped_as_an_outlier():
    cam = studio_camera()
    views = views_of(cam, good_capture(cam, directions=4))
    bad = views[7]
    shifted = bad.corners + np.random.default_rng(5).normal(0, 10, bad.corners.shape)
    views[7] = BoardView(bad.camera, bad.frame, bad.ids, shifted, bad.image_size, "blurred.png")
    r = calibrate_intrinsics(views, BOARD.spec, cam.size)
    assert len(r.dropped) == 1
    view, why = r.dropped[0]
    assert view is views[7]
    assert re.fullmatch(r"outlier: view rms \d+\.\d\d px vs median 0\.4\d px: motion blur or a misdetection", why)
    assert r.dropped_rms[0] > 10
    assert len(r.used) == 35 and r.view_rms.max() < 1
    assert r.camera.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.005)


def test_unusable_views_are_dropped_with_the_reason():
    cam = studio_camera()
    views = views_of(cam, good_capture(cam, directions=2))
    v = max(views, key=lambda view: len(view.ids))
    some = np.isin(v.ids, [0, 1, 9, 10, 20])  # two rows: enough for a pose, too few for a lens
    few = BoardView("cam0", 100, v.ids[some], v.corners[some], cam.size, "few.png")
    row = np.flatnonzero(v.ids < 9)  # the first row of inner corners: all on one line
    line = BoardView("cam0", 101, v.ids[row], v.corners[row], cam.size, "line.png")
    r = calibrate_intrinsics(views + [few, line], BOARD.spec, cam.size)
    reasons = {view.source: why for view, why in r.dropped}
    assert reasons == {"few.png": "too few corners: 5 (need 6)",
                       "line.png": f"collinear: its {len(row)} corners lie along one line of the board"}
    assert np.isfinite(r.dropped_rms[0]) and np.isnan(r.dropped_rms[1])  # no pose for corners on a line


def test_views_only_on_the_right_side_get_advice():
    cam = studio_camera()
    poses = [board_pose(cam, u, v, 40, 2 * np.pi * k / 4, 1.6) for u in (1450, 1650) for v in (300, 540, 780)
             for k in range(4)]
    r = calibrate_intrinsics(views_of(cam, poses), BOARD.spec, cam.size)
    assert any(a == "corners never seen in the left third of the image: show the board there" for a in r.advice)
    assert any("cover only" in a for a in r.advice)


def test_face_on_views_raise_naming_the_tilt():
    cam = studio_camera(np.zeros(5))
    poses = [board_pose(cam, u, v, 2.0, k, 1.2) for k, (u, v) in
             enumerate([(500, 300), (1400, 300), (500, 800), (1400, 800), (960, 540), (700, 500)])]
    with pytest.raises(CalibrationError, match=r"all 6 board views .* \(max tilt [1-4]\.\d deg\), so the focal length "
                                                r"cannot be told .*tilted 20-45 deg"):
        calibrate_intrinsics(views_of(cam, poses), BOARD.spec, cam.size)


def test_too_few_views_raise_saying_what_was_found_and_what_to_capture():
    cam = studio_camera()
    views = views_of(cam, good_capture(cam, directions=1))[:3]
    v = views[0]
    views.append(BoardView("cam0", 50, v.ids[:4], v.corners[:4], cam.size))
    with pytest.raises(CalibrationError) as err:
        calibrate_intrinsics(views, BOARD.spec, cam.size, name="cam0")
    msg = str(err.value)
    assert "found 4 board views" in msg and ", 4)" in msg and "3 have at least 6 corners" in msg
    assert "at least 4 such views" in msg and "capture 15-40 images" in msg
    with pytest.raises(CalibrationError, match="found no board views"):
        calibrate_intrinsics([], BOARD.spec, cam.size)


def test_bad_model_and_mismatched_image_sizes_raise():
    cam = studio_camera()
    views = views_of(cam, good_capture(cam, directions=1))
    with pytest.raises(CalibrationError, match="lens model 'omni'"):
        calibrate_intrinsics(views, BOARD.spec, cam.size, model="omni")
    with pytest.raises(CalibrationError, match="images of 1920x1080, but the calibration is for 1280x720"):
        calibrate_intrinsics(views, BOARD.spec, (1280, 720))
    small = Board("charuco", 3, 3, 0.04, 0.03, "DICT_4X4_50")
    with pytest.raises(CalibrationError, match="has 4 corners: check the board spec"):
        calibrate_intrinsics(views, small, cam.size)


def test_progress_is_reported_to_the_end():
    cam = studio_camera()
    calls = []
    calibrate_intrinsics(views_of(cam, good_capture(cam, directions=1)), BOARD.spec, cam.size,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] and all(d <= t for d, t in calls)


def test_view_errors_of_views_under_the_true_lens_is_its_noise():
    cam = studio_camera().replace(R=np.eye(3), t=np.zeros(3))
    v = views_of(cam, [board_pose(cam, 960, 540, 30, 0.3)], noise=0.5)[0]
    assert view_errors(cam, [v], BOARD.spec)[0] == pytest.approx(0.5 * np.sqrt(2), rel=0.15)
    line = BoardView("cam0", 1, v.ids[:9], v.corners[:9], cam.size)
    assert np.isnan(view_errors(cam, [v, line], BOARD.spec)).tolist() == [False, True]
    assert view_errors(cam, [], BOARD.spec).shape == (0,)


def test_plot_is_written(pinhole_result, tmp_path):
    cam, views, _ = pinhole_result
    views = list(views[:24])
    views[3] = BoardView("cam0", 3, views[3].ids, views[3].corners + 12.0 * np.sign(views[3].corners - 900),
                         cam.size, "bad.png")
    r = calibrate_intrinsics(views, BOARD.spec, cam.size)
    out = plot_intrinsics(r, tmp_path / "report" / "intrinsics_cam0.png")
    assert out == tmp_path / "report" / "intrinsics_cam0.png"
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 500 and img.shape[1] > 800


# --- rendered images ----------------------------------------------------------------------------------

def test_lens_from_rendered_board_images():
    from rigs.sim.render import RenderParams, render_view

    sim_board = SimulatedBoard(7, 10, 0.05, 0.0375)
    cam = studio_camera().resized(960, 540)
    poses = [board_pose(cam, u, v, 35, 2 * np.pi * k / 3 + u / 500, 0.9, sim_board)
             for u in (250, 480, 710) for v in (150, 270, 390) for k in range(2)]
    params = RenderParams(stamp=False)
    frames = [(i, f"render#{i}", render_view(cam, None, i, params, board=p)) for i, p in enumerate(poses)]
    views = detect_views(frames, sim_board.spec, "cam0")
    assert len(views) >= 15
    r = calibrate_intrinsics(views, sim_board.spec, cam.size)
    assert r.camera.K[0, 0] == pytest.approx(cam.K[0, 0], rel=0.01)
    assert abs(r.camera.K[0, 2] - cam.K[0, 2]) < 4 and abs(r.camera.K[1, 2] - cam.K[1, 2]) < 4
    assert r.rms < 0.5


# --- real images: Pose2Sim's checkerboard ---------------------------------------------------------------

P2S_BOARD = Board.parse("checkerboard:4x7:0.06")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent: the Pose2Sim checkerboard "
                                                          "images come from there")


@pytest.fixture(scope="module")
def pose2sim_images() -> dict[int, list[tuple[str, np.ndarray]]]:
    """Pose2Sim's checkerboard images per camera (1-4): (file name, BGR image), read once."""
    return {i: [(p.name, cv2.imread(str(p))) for p in sorted((P2S / "intrinsics" / f"int_cam0{i}_img").glob("*.jpg"))]
            for i in range(1, 5)}


def _pose2sim_views(images: list[tuple[str, np.ndarray]], index: int, detector) -> list[BoardView]:
    views = []
    for k, (name, img) in enumerate(images):
        ids, corners = detector(img)
        if len(ids):
            views.append(BoardView(f"cam0{index}", k, ids, corners, (img.shape[1], img.shape[0]), name))
    return views


def _opencv_classic(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose2Sim's own detection: findChessboardCorners, then cornerSubPix with an 11 px window."""
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    found, c = cv2.findChessboardCorners(gray, P2S_BOARD.pattern_size)
    if not found:
        return np.zeros(0, np.int32), np.zeros((0, 2))
    c = cv2.cornerSubPix(gray, c, (11, 11), (-1, -1), (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 1e-3))
    return np.arange(P2S_BOARD.num_corners, dtype=np.int32), c.reshape(-1, 2).astype(float)


@needs_data
def test_pose2sim_checkerboard_images_give_pose2sims_lenses(pose2sim_images):
    theirs = load_rig(P2S / "Calib_scene.toml")
    focal = []
    for i in range(1, 5):
        views = _pose2sim_views(pose2sim_images[i], i, lambda img: detect_board(img, P2S_BOARD))
        r = calibrate_intrinsics(views, P2S_BOARD, (1088, 1920), name=f"cam0{i}")
        K, ref = r.camera.K, theirs[i - 1].K
        focal += [K[0, 0], K[1, 1]]
        assert r.camera.size == (1088, 1920) and len(r.used) >= 6 and r.rms < 0.25
        # cam04: Pose2Sim's 1690.9 px comes with a corner on the border of cam04_07 found 11.6 px off
        # (see the next test); ours agrees with the three other cameras of the same make
        tol = 0.005 if i < 4 else 0.015
        assert K[0, 0] == pytest.approx(ref[0, 0], rel=tol) and K[1, 1] == pytest.approx(ref[1, 1], rel=tol)
        assert abs(K[0, 2] - ref[0, 2]) < (10 if i < 4 else 30) and abs(K[1, 2] - ref[1, 2]) < 10
        assert any(a.startswith("only") and "views used" in a for a in r.advice)
    assert np.ptp(focal) / np.mean(focal) < 0.005


@needs_data
def test_pose2sims_own_detections_reproduce_its_lenses_and_lose_a_bad_view(pose2sim_images):
    theirs = load_rig(P2S / "Calib_scene.toml")
    for i in range(1, 5):
        views = _pose2sim_views(pose2sim_images[i], i, _opencv_classic)
        r = calibrate_intrinsics(views, P2S_BOARD, (1088, 1920), name=f"cam0{i}")
        K, ref = r.camera.K, theirs[i - 1].K
        if i < 4:  # the same corners give Pose2Sim's numbers
            np.testing.assert_allclose([K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
                                       [ref[0, 0], ref[1, 1], ref[0, 2], ref[1, 2]], atol=0.5)
            assert r.dropped == ()
        else:
            assert [(v.source, why.split(":")[0]) for v, why in r.dropped] == [("cam04_07_int.jpg", "outlier")]
            assert r.dropped_rms[0] > 1.5 and r.rms < 0.25
            assert K[0, 0] == pytest.approx(1672, rel=0.002)
