"""Printable boards: a PNG at its dpi that the detector reads back whole with squares of the right pixel
size, and a true-size PDF whose page and board image measure what the spec says."""

import re
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from calibration.board_detection import detect_board
from calibration.board_print import board_image, write_board
from calibration.errors import CalibrationError
from rigs.board import Board

SPECS = ["charuco:5x7:0.04:0.03:DICT_5X5_100", "charuco:4x5:0.054:0.0405:DICT_4X4_1000:inverted",
         "checkerboard:9x6:0.025", "checkerboard:4x7:0.06:inverted"]
PT_PER_M = 72 / 0.0254


def square_px(board: Board, corners: np.ndarray) -> tuple[float, float]:
    """Mean distance between neighbouring corners along rows and down columns."""
    nx, ny = board.pattern_size
    grid = corners.reshape(ny, nx, 2)
    return (float(np.linalg.norm(np.diff(grid, axis=1), axis=-1).mean()),
            float(np.linalg.norm(np.diff(grid, axis=0), axis=-1).mean()))


@pytest.mark.parametrize("spec, dpi", [(s, 100) for s in SPECS] + [(SPECS[1], 300), (SPECS[2], 300)])
def test_png_reads_back_whole_at_its_dpi(tmp_path, spec, dpi):
    board = Board.parse(spec)
    path = write_board(board, tmp_path / "board.png", dpi=dpi)
    assert path == tmp_path / "board.png"
    stored = Image.open(path).info["dpi"]
    assert stored == pytest.approx((dpi, dpi), abs=0.01)
    img = cv2.imread(str(path))
    margin = round(0.015 * dpi / 0.0254)
    w, h = board.size
    assert img.shape[:2] == (round(h * dpi / 0.0254) + 2 * margin, round(w * dpi / 0.0254) + 2 * margin)
    ids, corners = detect_board(img, board)
    assert np.array_equal(ids, np.arange(board.num_corners))
    expect = board.square * dpi / 0.0254
    assert square_px(board, corners) == pytest.approx((expect, expect), abs=1.0)
    # corner 0 is one square in from the top-left of the squared area
    assert corners[0] == pytest.approx([margin + expect - 0.5] * 2, abs=1.0)
    # the page's margin is paper (white, or black for an inverted print); the text is in the bottom one
    paper = 0 if board.inverted else 255
    assert np.all(img[: margin // 2] == paper)
    assert np.sum(img[-margin:] != paper) > 100


@pytest.mark.parametrize("spec", SPECS)
def test_pdf_page_is_the_board_plus_margins_at_true_size(tmp_path, spec):
    board = Board.parse(spec)
    path = write_board(board, tmp_path / "board.pdf", dpi=72, margin=0.02)  # the raster's dpi changes no size
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    box = [float(v) for v in re.search(rb"/MediaBox\s*\[([^\]]*)\]", data).group(1).split()]
    w, h = board.size
    assert box[:2] == [0, 0]
    assert box[2:] == pytest.approx([(w + 0.04) * PT_PER_M, (h + 0.04) * PT_PER_M], abs=0.5)
    # the board image is drawn over exactly its physical area, inside the margins
    content = b"".join(zlib.decompress(m) for m in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S)
                       if _inflates(m))
    number = rb"\s+(-?[\d.]+)"
    place = re.search(rb"1 0 0 1" + number * 2 + rb"\s+cm" + number * 6 + rb"\s+cm\s*/I\d+ Do", content)
    x, y, iw, _, _, ih, _, _ = (abs(float(v)) for v in place.groups())
    assert (x, y) == pytest.approx((0.02 * PT_PER_M, 0.02 * PT_PER_M), abs=0.5)
    assert (iw, ih) == pytest.approx((w * PT_PER_M, h * PT_PER_M), abs=0.5)
    assert b" Tj" in content or b"TJ" in content  # the spec and the square size are written as text


def _inflates(raw: bytes) -> bool:
    try:
        zlib.decompress(raw)
    except zlib.error:
        return False
    return True


def test_board_image_has_the_printed_layout():
    cb = board_image(Board.parse("checkerboard:4x7:0.06"), 10)
    assert cb.shape == (80, 50) and cb[0, 0] == 0 and cb[0, 10] == 255 and cb[10, 0] == 255 and cb[79, 49] == 255
    inv = board_image(Board.parse("checkerboard:4x7:0.06:inverted"), 10)
    assert np.array_equal(inv, 255 - cb)
    ch = board_image(Board.parse("charuco:5x7:0.04:0.03:DICT_5X5_100"), 20.5)
    assert ch.shape == (round(7 * 20.5), round(5 * 20.5)) and ch[2, 2] == 0  # the top-left square is black


@pytest.mark.parametrize("name, dpi, margin, words", [
    ("board.svg", 300, 0.015, ".pdf (true size) or .png"),
    ("board.png", 20, 0.015, "dpi must be a whole number >= 50"),
    ("board.png", 300, 15, "margin is in metres"),
])
def test_bad_requests_say_what_to_change(tmp_path, name, dpi, margin, words):
    with pytest.raises(CalibrationError, match=re.escape(words)):
        write_board(Board.parse(SPECS[0]), tmp_path / name, dpi=dpi, margin=margin)
