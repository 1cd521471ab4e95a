"""Calibration boards: what was printed, as a record, a compact spec string or a ``[board]`` table.

Spec strings (lengths in metres):

* ``charuco:COLSxROWS:SQUARE:MARKER:DICT[:inverted]``: COLSxROWS counts squares, DICT is OpenCV's
  dictionary name (``DICT_5X5_100``), ``inverted`` for white-on-black prints.
* ``checkerboard:COLSxROWS:SQUARE[:inverted]``: COLSxROWS counts inner corners.

Board frame (OpenCV's): x along the columns, y down the rows, z into the board's back (the printed face
looks towards -z). Corner ``i`` of a ChArUco board is OpenCV's ChArUco id ``i``; for a checkerboard it
is inner corner ``i`` in row-major order, the order ``findChessboardCornersSB`` returns. A ChArUco's
origin is the outer corner of its top-left square; a checkerboard's is its first inner corner.

A board file is TOML with a ``[board]`` table (``spec = "..."`` or the fields by name); a rig file may
carry the same table. caliscope's ``charuco.toml`` is read as well.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

KINDS = ("charuco", "checkerboard")
_MAX_SQUARE = 1.0  # m: a square larger than this is almost surely a length in mm or cm


class BoardError(ValueError):
    """A board spec that cannot describe a printable board; the message names the field and the fix."""


@dataclass(frozen=True)
class Board:
    """A printed calibration board. ``cols`` x ``rows`` are squares for ChArUco, inner corners for a
    checkerboard; ``square`` and ``marker`` are in metres."""

    kind: str
    cols: int
    rows: int
    square: float
    marker: float = 0.0
    dictionary: str = ""
    inverted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "square", float(self.square))
        object.__setattr__(self, "marker", float(self.marker))
        where = f"board {self.spec_text()!r}"
        if self.kind not in KINDS:
            raise BoardError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        least = 2 if self.kind == "charuco" else 3
        if int(self.cols) != self.cols or int(self.rows) != self.rows or min(self.cols, self.rows) < least:
            what = "squares" if self.kind == "charuco" else "inner corners"
            raise BoardError(f"{where}: COLSxROWS counts {what} and needs at least {least}x{least}, "
                             f"got {self.cols}x{self.rows}")
        if not 0 < self.square <= _MAX_SQUARE:
            s = self.square
            hint = f"; {s:g} mm is {s / 1000:g} m, {s:g} cm is {s / 100:g} m" if s > _MAX_SQUARE else ""
            raise BoardError(f"{where}: square must be in metres, 0 < square <= {_MAX_SQUARE}, got {s:g}{hint}")
        if self.kind == "charuco":
            if not 0 < self.marker < self.square:
                raise BoardError(f"{where}: the marker must be smaller than its square (both in metres), "
                                 f"got marker {self.marker:g} and square {self.square:g}")
            code = getattr(cv2.aruco, self.dictionary, None) if self.dictionary.startswith("DICT_") else None
            if not isinstance(code, int):
                raise BoardError(f"{where}: dictionary {self.dictionary!r} is not an OpenCV ArUco dictionary; "
                                 f"use a name such as DICT_4X4_50, DICT_5X5_100 or DICT_6X6_250")
            have = cv2.aruco.getPredefinedDictionary(code).bytesList.shape[0]
            if self.num_markers > have:
                raise BoardError(f"{where}: a {self.cols}x{self.rows} ChArUco board needs {self.num_markers} markers "
                                 f"but {self.dictionary} has {have}; use a larger dictionary")
        elif self.marker or self.dictionary:
            raise BoardError(f"{where}: a checkerboard has no markers; drop marker/dictionary or use charuco")

    # --- text forms ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str) -> Board:
        """A board from its compact spec string (see the module docstring)."""
        parts = [p.strip() for p in str(spec).strip().split(":")]
        inverted = bool(parts) and parts[-1].lower() == "inverted"
        if inverted:
            parts = parts[:-1]
        kind = parts[0].lower() if parts else ""
        forms = {"charuco": "charuco:COLSxROWS:SQUARE:MARKER:DICT[:inverted]",
                 "checkerboard": "checkerboard:COLSxROWS:SQUARE[:inverted]"}
        if kind not in forms:
            raise BoardError(f"board spec {spec!r}: starts with charuco or checkerboard, "
                             f"as in {forms['charuco']} or {forms['checkerboard']}")
        want = 5 if kind == "charuco" else 3
        if len(parts) != want:
            raise BoardError(f"board spec {spec!r}: expected {forms[kind]}")
        try:
            cols, rows = (int(v) for v in parts[1].lower().split("x"))
        except ValueError:
            raise BoardError(f"board spec {spec!r}: COLSxROWS must be two whole numbers such as 5x7, "
                             f"got {parts[1]!r}") from None
        try:
            lengths = [float(v) for v in parts[2:4 if kind == "charuco" else 3]]
        except ValueError:
            raise BoardError(f"board spec {spec!r}: SQUARE{' and MARKER' if kind == 'charuco' else ''} must be "
                             f"lengths in metres such as 0.04") from None
        if kind == "charuco":
            return cls(kind, cols, rows, lengths[0], lengths[1], parts[4].upper(), inverted)
        return cls(kind, cols, rows, lengths[0], inverted=inverted)

    def spec_text(self) -> str:
        """The compact spec string (``Board.parse(b.spec_text()) == b``)."""
        head = f"{self.kind}:{self.cols}x{self.rows}:{self.square!r}"
        body = f":{self.marker!r}:{self.dictionary}" if self.kind == "charuco" else ""
        return head + body + (":inverted" if self.inverted else "")

    def __str__(self) -> str:
        return self.spec_text()

    def describe(self) -> str:
        """One line for people: sizes in mm and what the counts mean."""
        if self.kind == "charuco":
            return (f"ChArUco {self.cols}x{self.rows} squares of {self.square * 1000:g} mm, markers "
                    f"{self.marker * 1000:g} mm ({self.dictionary}){', inverted print' if self.inverted else ''}")
        return (f"checkerboard {self.cols}x{self.rows} inner corners, squares of {self.square * 1000:g} mm"
                f"{', inverted print' if self.inverted else ''}")

    def to_table(self) -> dict[str, Any]:
        """The ``[board]`` table: the spec string and the fields by name, for people reading the file."""
        table: dict[str, Any] = {"spec": self.spec_text(), "kind": self.kind, "cols": self.cols,
                                 "rows": self.rows, "square": self.square}
        if self.kind == "charuco":
            table.update(marker=self.marker, dictionary=self.dictionary)
        table["inverted"] = self.inverted
        return table

    @classmethod
    def from_table(cls, table: dict, where: str = "[board]") -> Board:
        """A board from a ``[board]`` table: ``spec`` wins when present, else the named fields."""
        if not isinstance(table, dict):
            raise BoardError(f"{where}: expected a table, got {table!r}")
        if "spec" in table:
            try:
                return cls.parse(table["spec"])
            except BoardError as e:
                raise BoardError(f"{where}: {e}") from None
        missing = [k for k in ("kind", "cols", "rows", "square") if k not in table]
        if missing:
            raise BoardError(f"{where}: needs spec = \"charuco:...\" or the fields kind, cols, rows, square "
                             f"(and marker, dictionary for charuco); missing {', '.join(missing)}")
        try:
            return cls(str(table["kind"]), int(table["cols"]), int(table["rows"]), float(table["square"]),
                       float(table.get("marker", 0.0)), str(table.get("dictionary", "")),
                       bool(table.get("inverted", False)))
        except BoardError as e:
            raise BoardError(f"{where}: {e}") from None

    # --- geometry --------------------------------------------------------------------------------
    @property
    def num_markers(self) -> int:
        return self.cols * self.rows // 2 if self.kind == "charuco" else 0

    @property
    def num_corners(self) -> int:
        """Corners a detector can report: (cols-1)(rows-1) for ChArUco, cols*rows for a checkerboard."""
        return (self.cols - 1) * (self.rows - 1) if self.kind == "charuco" else self.cols * self.rows

    @property
    def pattern_size(self) -> tuple[int, int]:
        """Inner corners per row and per column (OpenCV's ``patternSize``)."""
        return (self.cols - 1, self.rows - 1) if self.kind == "charuco" else (self.cols, self.rows)

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) of the squared area in metres (a checkerboard has one more square each way)."""
        n = (self.cols, self.rows) if self.kind == "charuco" else (self.cols + 1, self.rows + 1)
        return n[0] * self.square, n[1] * self.square

    def corner_points(self) -> np.ndarray:
        """Corners [M, 3] float64 in the board frame; row i is corner id i."""
        return _corner_points(self).copy()

    def cv_board(self) -> cv2.aruco.CharucoBoard:
        """OpenCV's ChArUco board for detection and drawing (ChArUco boards only)."""
        if self.kind != "charuco":
            raise BoardError(f"board {self}: a checkerboard has no OpenCV CharucoBoard")
        return _cv_board(self)


@functools.lru_cache(maxsize=32)
def _cv_board(board: Board) -> cv2.aruco.CharucoBoard:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
    return cv2.aruco.CharucoBoard((board.cols, board.rows), board.square, board.marker, dictionary)


@functools.lru_cache(maxsize=32)
def _corner_points(board: Board) -> np.ndarray:
    nx, ny = board.pattern_size
    offset = board.square if board.kind == "charuco" else 0.0
    j, i = np.divmod(np.arange(nx * ny), nx)
    pts = np.column_stack([offset + i * board.square, offset + j * board.square, np.zeros(nx * ny)])
    pts.setflags(write=False)
    return pts


def _from_caliscope(data: dict, where: str) -> Board:
    if "square_size_override_cm" not in data:
        raise BoardError(f"{where}: caliscope charuco.toml without square_size_override_cm; measure a printed "
                         f"square and pass --board charuco:COLSxROWS:SQUARE:MARKER:DICT instead")
    square = round(float(data["square_size_override_cm"]) / 100, 9)
    return Board("charuco", int(data["columns"]), int(data["rows"]), square,
                 round(square * float(data.get("aruco_scale", 0.75)), 9), str(data["dictionary"]),
                 bool(data.get("inverted", False)))


def read_board_file(path: str | Path) -> Board:
    """The board in a board file, a rig file with a ``[board]`` table, or caliscope's ``charuco.toml``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BoardError(f"{path}: not a readable board file ({e}); pass a spec such as "
                         f"charuco:5x7:0.04:0.03:DICT_5X5_100 or a TOML file with a [board] table") from None
    if isinstance(data.get("board"), dict):
        return Board.from_table(data["board"], f"{path}: [board]")
    if {"columns", "rows", "dictionary"} <= set(data):
        return _from_caliscope(data, str(path))
    raise BoardError(f"{path}: has no [board] table; add one (spec = \"charuco:COLSxROWS:SQUARE:MARKER:DICT\") "
                     f"or pass the spec on the command line")


def load_board(arg: str | Path | Board) -> Board:
    """A board from a spec string, a board/rig TOML file, or a Board (returned as is)."""
    if isinstance(arg, Board):
        return arg
    text = str(arg)
    if text.split(":", 1)[0].lower() in KINDS:
        return Board.parse(text)
    if Path(text).is_file():
        return read_board_file(text)
    raise BoardError(f"board {text!r}: neither a spec (charuco:COLSxROWS:SQUARE:MARKER:DICT[:inverted] or "
                     f"checkerboard:COLSxROWS:SQUARE) nor an existing board file")
