"""Tests for calibration/view_selection.py: board tilts and a rough focal length from homographies, near-
duplicate views, and the greedy well-spread subset, on simulated board views with known truth."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.board_detection import BoardView
from calibration.view_selection import (
    board_normals,
    cell_occupancy,
    dense_corners,
    fisheye_rays,
    homographies,
    near_duplicates,
    rough_focal,
    rough_normals,
    select_spread,
    spread_ratio,
    tilt_degrees,
)
from rigs.camera import Camera
from rigs.sim.board import SimulatedBoard, SimulatedBoardPose, board_truth

BOARD = SimulatedBoard(8, 11, 0.05, 0.0375)
F = 1200.0


def camera(model: str = "pinhole", f: float = F) -> Camera:
    K = np.array([[f, 0, 959.5], [0, f, 539.5], [0, 0, 1]])
    return Camera("cam", 1920, 1080, K, np.zeros(4) if model == "fisheye" else np.zeros(5), model=model)


def pose(cam: Camera, u: float, v: float, tilt_deg=(0.0, 0.0), depth: float = 1.5) -> SimulatedBoardPose:
    """The board centred on pixel (u, v) at ``depth`` m, tilted about the camera's x and y axes."""
    ray = cam.undistort(np.array([[u, v]]))[0]
    R = Rotation.from_euler("xy", tilt_deg, degrees=True).as_matrix()
    w, h = BOARD.size
    return SimulatedBoardPose(BOARD, R, np.array([ray[0], ray[1], 1.0]) * depth - R @ [w / 2, h / 2, 0.0])


def view(cam: Camera, p: SimulatedBoardPose, frame: int = 0, noise: float = 0.0, seed: int = 0) -> BoardView:
    ids, px = board_truth(cam, p)
    px = px + np.random.default_rng(seed).normal(0, noise, px.shape)
    return BoardView("cam", frame, ids, px, (cam.width, cam.height))


def test_tilt_of_simulated_views_is_recovered_with_a_rough_focal():
    cam = camera()
    tilts = [(0, 0), (30, 0), (0, -40), (20, 25), (-35, 10)]
    views = [view(cam, pose(cam, 960, 540, t), i, noise=0.2) for i, t in enumerate(tilts)]
    normals, f = rough_normals(views, BOARD.spec, (1920, 1080))
    assert f == pytest.approx(F, rel=0.03)
    truth = [np.degrees(np.arccos(np.cos(np.radians(a)) * np.cos(np.radians(b)))) for a, b in tilts]
    np.testing.assert_allclose(tilt_degrees(normals), truth, atol=1.5)
    assert (normals[:, 2] > 0).all()


def test_rough_focal_falls_back_to_a_typical_lens_for_face_on_views():
    cam = camera()
    views = [view(cam, pose(cam, u, 540)) for u in (500, 960, 1400)]
    pts = BOARD.spec.corner_points()[:, :2]
    H = homographies([pts[v.ids] for v in views], [v.corners for v in views])
    assert rough_focal(H, (1920, 1080)) == pytest.approx(0.8 * 1920)
    assert tilt_degrees(board_normals(H, np.diag([F, F, 1.0]))).max() < 0.5


def test_fisheye_views_are_unwarped_before_their_tilt_is_measured():
    cam = camera("fisheye", 600.0)
    cam = cam.replace(dist=np.array([0.03, -0.01, 0.0, 0.0]))
    tilts = [(0, 0), (35, 0), (0, 35), (-30, -20)]
    views = [view(cam, pose(cam, u, v, t, 0.8), i) for i, (t, (u, v)) in
             enumerate(zip(tilts, [(960, 540), (600, 400), (1300, 700), (900, 300)], strict=True))]
    normals, f = rough_normals(views, BOARD.spec, (1920, 1080), "fisheye")
    assert 450 < f < 800
    truth = [np.degrees(np.arccos(np.cos(np.radians(a)) * np.cos(np.radians(b)))) for a, b in tilts]
    np.testing.assert_allclose(tilt_degrees(normals), truth, atol=6)


def test_fisheye_rays_invert_the_equidistant_lens():
    xy = np.array([[0.0, 0.0], [0.3, -0.2], [1.2, 0.5]])
    theta = np.arctan(np.linalg.norm(xy, axis=1, keepdims=True))
    px = xy / np.maximum(np.linalg.norm(xy, axis=1, keepdims=True), 1e-12) * theta * 500 + [99.5, 49.5]
    px[0] = [99.5, 49.5]
    np.testing.assert_allclose(fisheye_rays(px, 500, (200, 100)), xy, atol=1e-12)


def test_spread_ratio_flags_corners_on_a_line():
    line = np.c_[np.arange(6.0), 2 * np.arange(6.0)]
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1.0]])
    assert spread_ratio(line) < 1e-12
    assert spread_ratio(square) == pytest.approx(1.0)
    assert spread_ratio(np.stack([line[:4], square])).shape == (2,)


def test_dense_corners_index_by_id():
    v = BoardView("cam", 0, np.array([2, 5], np.int32), np.array([[1.0, 2], [3, 4]]), (10, 10))
    d = dense_corners([v], 7)
    assert d.shape == (1, 7, 2)
    np.testing.assert_array_equal(d[0, [2, 5]], [[1, 2], [3, 4]])
    assert np.isnan(d[0, [0, 1, 3, 4, 6]]).all()


def test_near_duplicates_are_repeats_of_the_first_kept_view():
    cam = camera()
    still = pose(cam, 960, 540, (20, 0))
    moved = pose(cam, 1200, 540, (20, 0))
    views = [view(cam, still, 0, 0.1, 0), view(cam, still, 1, 0.1, 1), view(cam, moved, 2, 0.1, 2),
             view(cam, still, 3, 0.1, 3)]
    of = near_duplicates(dense_corners(views, BOARD.spec.num_corners), tolerance_px=2.0)
    np.testing.assert_array_equal(of, [-1, 0, -1, 0])


def test_a_partial_view_of_the_same_board_is_not_a_duplicate():
    cam = camera()
    full = view(cam, pose(cam, 960, 540, (20, 0)))
    half = BoardView("cam", 1, full.ids[: len(full.ids) // 2], full.corners[: len(full.ids) // 2], full.image_size)
    of = near_duplicates(dense_corners([full, half], BOARD.spec.num_corners), tolerance_px=2.0)
    np.testing.assert_array_equal(of, [-1, -1])


def test_cell_occupancy_marks_the_cells_reached():
    corners = np.full((2, 3, 2), np.nan)
    corners[0, 0] = [10, 10]
    corners[0, 1] = [1910, 1070]
    corners[1, 2] = [960, 540]
    occ = cell_occupancy(corners, (1920, 1080), cells=4)
    assert occ.shape == (2, 16)
    assert np.flatnonzero(occ[0]).tolist() == [0, 15]
    assert np.flatnonzero(occ[1]).tolist() == [10]


def test_selection_spreads_over_the_image_and_tilts_deterministically():
    cam = camera()
    # many face-on views crowded in the centre, a few at the sides and a few tilted
    crowd = [pose(cam, 960 + 5 * i, 540, (0, 0)) for i in range(30)]
    sides = [pose(cam, u, v, (0, 0)) for u, v in ((350, 250), (1570, 250), (350, 830), (1570, 830))]
    tilted = [pose(cam, 960, 540, t) for t in ((35, 0), (-35, 0), (0, 35), (0, -35))]
    poses = crowd + sides + tilted
    views = [view(cam, p, i) for i, p in enumerate(poses)]
    dense = dense_corners(views, BOARD.spec.num_corners)
    normals, _ = rough_normals(views, BOARD.spec, cam.size)
    pick = select_spread(cell_occupancy(dense, cam.size), normals, 10)
    assert len(pick) == len(set(pick.tolist())) == 10
    assert set(range(30, 38)) <= set(pick.tolist())  # every side and every tilted view
    np.testing.assert_array_equal(pick, select_spread(cell_occupancy(dense, cam.size), normals, 10))
    np.testing.assert_array_equal(select_spread(cell_occupancy(dense, cam.size), normals, 99), np.arange(38))
