"""Tests for calibration/coverage.py: corner counts per image cell, the regions named for people, and the
advice on coverage, tilt and the number of views."""

import numpy as np
import pytest

from calibration.board_detection import BoardView
from calibration.coverage import corner_grid, coverage_advice, coverage_grid, region_advice, region_name

SIZE = (1920, 1080)
TILTED = np.array([[np.sin(np.radians(30)), 0, np.cos(np.radians(30))],
                   [0, np.sin(np.radians(30)), np.cos(np.radians(30))]])


def grid_points(x0: float, x1: float, y0: float, y1: float, n: int = 20) -> np.ndarray:
    u, v = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    return np.c_[u.ravel(), v.ravel()]


def test_corner_grid_counts_points_per_cell_and_ignores_nan():
    pts = np.array([[0, 0], [1919, 1079], [960, 540], [959, 539], [np.nan, 3], [-0.5, -0.5]])
    g = corner_grid(pts, SIZE, 3)
    assert g.shape == (3, 3)
    assert g.sum() == 5
    assert g[0, 0] == 2 and g[2, 2] == 1 and g[1, 1] == 2
    assert corner_grid(pts, SIZE, (4, 2)).shape == (2, 4)


def test_coverage_grid_sums_over_views():
    a = BoardView("c", 0, np.arange(2, dtype=np.int32), np.array([[10.0, 10], [1900, 10]]), SIZE)
    b = BoardView("c", 1, np.arange(1, dtype=np.int32), np.array([[10.0, 1070]]), SIZE)
    g = coverage_grid([a, b], SIZE, 2)
    np.testing.assert_array_equal(g, [[1, 1], [1, 0]])
    assert coverage_grid([], SIZE, 3).sum() == 0


def test_regions_have_names_people_use():
    assert region_name(0, 0) == "top-left corner"
    assert region_name(2, 2) == "bottom-right corner"
    assert region_name(1, 1) == "centre"
    assert region_name(0, 1) == "top edge (middle)"
    assert region_name(1, 2) == "right edge (middle)"


def test_an_empty_third_is_named_once_and_its_cells_are_not_repeated():
    g = np.ones((3, 3), int)
    g[:, 0] = 0
    g[2, 2] = 0
    msgs = region_advice(g)
    assert msgs[0] == "corners never seen in the left third of the image: show the board there"
    assert "bottom-right corner" in msgs[1] and "left" not in msgs[1]
    assert region_advice(np.ones((3, 3), int)) == []


def test_views_only_on_the_right_get_advice_to_show_the_board_left():
    pts = grid_points(1300, 1900, 20, 1060)
    advice = coverage_advice(pts, SIZE, TILTED, 20)
    text = " ".join(advice)
    assert "left third" in text
    assert "cover only" in text
    assert "tilt" not in text and "only 20 views" not in text


def test_full_coverage_and_good_tilts_need_no_advice():
    assert coverage_advice(grid_points(0, 1919, 0, 1079), SIZE, TILTED, 25) == ()


def test_face_on_views_get_tilt_advice_naming_the_max_tilt():
    normals = np.array([[np.sin(np.radians(8)), 0, np.cos(np.radians(8))], [0, 0, 1.0]])
    advice = coverage_advice(grid_points(0, 1919, 0, 1079), SIZE, normals, 25)
    assert advice == ("all views nearly face-on (max tilt 8 deg): tilt the board 20-45 deg towards and away from "
                      "the camera, so the focal length can be measured",)


@pytest.mark.parametrize(("axis", "words"), [(0, "tipped towards or away"), (1, "turned left or right")])
def test_tilts_about_one_axis_only_ask_for_the_other(axis, words):
    normals = np.zeros((3, 3))
    normals[:, axis] = np.sin(np.radians([25, -30, 40]))
    normals[:, 2] = np.sqrt(1 - normals[:, axis] ** 2)
    advice = coverage_advice(grid_points(0, 1919, 0, 1079), SIZE, normals, 25)
    assert len(advice) == 1 and words in advice[0]


def test_few_views_are_reported():
    advice = coverage_advice(grid_points(0, 1919, 0, 1079), SIZE, TILTED, 6)
    assert advice == ("only 6 views used: capture 15-40 views with the board at different places, distances "
                      "and tilts",)
