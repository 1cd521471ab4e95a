"""A printable calibration board at its exact physical size, as PDF or PNG.

The page is the board's squared area (``Board.size``) plus ``margin`` metres on every side; the bottom
margin carries the spec string and the square size to check with a ruler after printing. Print at
100 % ("actual size", no fit-to-page) on paper at least as large as the page.

* **PDF**: the page is exactly ``(width + 2 margin, height + 2 margin)`` at 72 pt per inch; the board is
  a raster image (at least ``dpi``, a whole number of pixels per square) stretched over exactly its
  physical area, so one square measures ``square`` metres whatever the printer's resolution; the text
  is vector.
* **PNG**: pixels at ``dpi`` with the dpi stored in the file (pHYs); square boundaries fall on the pixel
  nearest their exact position, so a square is ``square * dpi / 0.0254`` px to within one pixel.

ChArUco boards come from OpenCV's ``CharucoBoard.generateImage`` (marker ids and layout exactly as
``detect_board`` expects); a checkerboard has (cols + 1) x (rows + 1) squares with the top-left one black,
which is what makes its corner order canonical (``board_detection``). Inverted boards are printed
white on black, margins included, as the detector sees them after inverting the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from calibration.errors import CalibrationError
from rigs.board import Board

_INCH = 0.0254  # m
_MIN_TEXT_MARGIN = 0.005  # m: narrower margins carry no text


def board_image(board: Board, px_per_square: float) -> np.ndarray:
    """The board's squared area as grey uint8, ``px_per_square`` px a square (boundaries rounded to pixels),
    black on white (white on black when inverted)."""
    w_px, h_px = (int(round(n * px_per_square)) for n in _squares(board))
    if board.kind == "charuco":
        img = board.cv_board().generateImage((w_px, h_px), marginSize=0, borderBits=1)
    else:
        a = np.searchsorted(np.round(np.arange(1, board.cols + 2) * px_per_square), np.arange(w_px), side="right")
        b = np.searchsorted(np.round(np.arange(1, board.rows + 2) * px_per_square), np.arange(h_px), side="right")
        img = np.where((b[:, None] + a[None, :]) % 2 == 0, 0, 255).astype(np.uint8)
    return 255 - img if board.inverted else img


def write_board(board: Board, path: str | os.PathLike, dpi: int = 300, margin: float = 0.015) -> Path:
    """Write the board as a true-size ``.pdf`` or a ``.png`` at ``dpi`` (stored in the file); returns the path."""
    path = Path(path)
    if int(dpi) != dpi or dpi < 50:
        raise CalibrationError(f"dpi must be a whole number >= 50, got {dpi!r}")
    if not 0 <= margin <= 0.2:
        raise CalibrationError(f"margin is in metres, 0 <= margin <= 0.2 (15 mm is 0.015), got {margin!r}")
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise CalibrationError(f"{path}: the board is written as .pdf (true size) or .png (at --dpi); "
                               f"got {path.suffix or 'no suffix'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    (_write_pdf if suffix == ".pdf" else _write_png)(board, path, int(dpi), float(margin))
    return path


def _squares(board: Board) -> tuple[int, int]:
    """Squares across and down the printed area."""
    return (board.cols, board.rows) if board.kind == "charuco" else (board.cols + 1, board.rows + 1)


def _lines(board: Board) -> tuple[str, str]:
    return (board.spec_text(),
            f"square = {board.square * 1000:g} mm: measure a printed square and check; print at 100 % (actual size)")


def _write_png(board: Board, path: Path, dpi: int, margin: float) -> None:
    from PIL import Image, ImageDraw, ImageFont

    px_per_m = dpi / _INCH
    m = int(round(margin * px_per_m))
    img = board_image(board, board.square * px_per_m)
    ink, paper = (255, 0) if board.inverted else (0, 255)
    page = np.full((img.shape[0] + 2 * m, img.shape[1] + 2 * m), paper, np.uint8)
    page[m:m + img.shape[0], m:m + img.shape[1]] = img
    pil = Image.fromarray(page)
    if margin >= _MIN_TEXT_MARGIN:
        draw = ImageDraw.Draw(pil)
        size = max(6, int(0.25 * m))
        font = ImageFont.load_default(size=size)
        widest = max(draw.textlength(t, font=font) for t in _lines(board))
        if widest > page.shape[1] - 2 * m:  # shrink to fit the page's width
            size = max(6, int(size * (page.shape[1] - 2 * m) / widest))
            font = ImageFont.load_default(size=size)
        top = page.shape[0] - m + int(0.2 * m)
        for k, text in enumerate(_lines(board)):
            draw.text((m, top + int(k * 1.3 * size)), text, fill=ink, font=font)
    pil.save(path, dpi=(dpi, dpi))


def _write_pdf(board: Board, path: Path, dpi: int, margin: float) -> None:
    from matplotlib.figure import Figure

    w, h = board.size
    page_w, page_h = w + 2 * margin, h + 2 * margin
    px_per_square = int(np.ceil(board.square * dpi / _INCH))
    img = board_image(board, px_per_square)
    ink, paper = ("white", "black") if board.inverted else ("black", "white")
    fig = Figure(figsize=(page_w / _INCH, page_h / _INCH), facecolor=paper)
    ax = fig.add_axes((margin / page_w, margin / page_h, w / page_w, h / page_h))
    ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="none", aspect="auto",
              extent=(0, img.shape[1], img.shape[0], 0))
    ax.set_axis_off()
    if margin >= _MIN_TEXT_MARGIN:
        size_pt = 0.25 * margin / _INCH * 72
        widest = max(len(t) for t in _lines(board)) * 0.55 * size_pt / 72 * _INCH  # m, a rough text width
        size_pt *= min(1.0, w / widest)
        for k, text in enumerate(_lines(board)):
            y = margin - 0.2 * margin - (k + 1) * 1.3 * size_pt / 72 * _INCH
            fig.text(margin / page_w, y / page_h, text, color=ink, fontsize=size_pt, va="bottom", ha="left")
    fig.savefig(path, format="pdf", facecolor=paper)
