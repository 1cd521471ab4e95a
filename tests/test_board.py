"""Board specs: the compact string, the [board] table, caliscope's charuco.toml, and the errors for specs
that cannot be a printed board."""

from pathlib import Path

import numpy as np
import pytest

from rigs.board import Board, BoardError, load_board, read_board_file
from rigs.formats import load_rig, save_rig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CALISCOPE = SHARED / "mprib+caliscope" / "tests" / "sessions" / "charuco_calibration" / "charuco.toml"


@pytest.mark.parametrize("spec", ["charuco:5x7:0.04:0.03:DICT_5X5_100",
                                  "charuco:4x5:0.054:0.0405:DICT_4X4_1000:inverted",
                                  "checkerboard:4x7:0.06", "checkerboard:9x6:0.025:inverted"])
def test_spec_round_trips_through_string_and_table(spec):
    board = Board.parse(spec)
    assert board.spec_text() == spec
    assert Board.from_table(board.to_table()) == board
    table = {k: v for k, v in board.to_table().items() if k != "spec"}
    assert Board.from_table(table) == board


def test_charuco_corners_match_opencv_and_checkerboard_is_row_major():
    board = Board.parse("charuco:5x7:0.04:0.03:DICT_5X5_100")
    assert board.num_corners == 24 and board.pattern_size == (4, 6)
    assert np.allclose(board.corner_points(), np.asarray(board.cv_board().getChessboardCorners()), atol=1e-6)
    cb = Board.parse("checkerboard:4x7:0.06")
    pts = cb.corner_points()
    assert pts.shape == (28, 3) and np.allclose(pts[1], [0.06, 0, 0]) and np.allclose(pts[4], [0, 0.06, 0])
    assert cb.size == pytest.approx((0.3, 0.48))


@pytest.mark.parametrize("spec, words", [
    ("charuco:5x7:40:30:DICT_5X5_100", "40 mm is 0.04 m"),
    ("charuco:5x7:0.03:0.04:DICT_5X5_100", "marker must be smaller"),
    ("charuco:5x7:0.04:0.03:DICT_9X9_1", "not an OpenCV ArUco dictionary"),
    ("charuco:12x12:0.04:0.03:DICT_4X4_50", "needs 72 markers but DICT_4X4_50 has 50"),
    ("checkerboard:4x7", "checkerboard:COLSxROWS:SQUARE"),
    ("checkerboard:4by7:0.06", "two whole numbers"),
    ("aruco:4x7:0.06", "starts with charuco or checkerboard"),
    ("checkerboard:2x7:0.06", "at least 3x3"),
])
def test_bad_specs_say_what_is_wrong(spec, words):
    with pytest.raises(BoardError, match=words):
        Board.parse(spec)


def test_rig_file_carries_its_board(tmp_path):
    board = Board.parse("charuco:5x7:0.04:0.03:DICT_5X5_100")
    rig = load_rig("studio-4").replace(board=board)
    path = save_rig(rig, tmp_path / "rig.toml")
    assert "[board]" in path.read_text()
    assert load_rig(path) == rig
    assert load_board(path) == board
    assert load_board(str(path)) == board


def test_file_without_a_board_says_how_to_add_one(tmp_path):
    path = save_rig(load_rig("studio-4"), tmp_path / "rig.toml")
    with pytest.raises(BoardError, match=r"no \[board\] table"):
        read_board_file(path)
    with pytest.raises(BoardError, match="neither a spec"):
        load_board(str(tmp_path / "missing.toml"))


@pytest.mark.skipif(not CALISCOPE.is_file(), reason="../shared/data is absent: caliscope's charuco.toml is not here")
def test_caliscope_charuco_toml():
    board = load_board(CALISCOPE)
    assert board == Board.parse("charuco:4x5:0.054:0.0405:DICT_4X4_1000:inverted")
