"""The simulated ChArUco board: its printed image, its pose in the studio, its ground truth, and how a
simulated camera sees it.

Board frame (OpenCV's): origin at the outer corner of the top-left square, x along the columns, y down
the rows (as in ``generateImage``), z into the board's back; the printed face looks towards -z. The
board is painted by ray casting every pixel of its image region (exact for any lens model, the rays
come from the camera's undistortion), sampling the printed image bilinearly at a resolution chosen
from its projected size. Occlusion of the board by people is left to the renderer's depth order;
``board_truth`` does not account for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from rigs.board import Board
from rigs.camera import Camera
from rigs.sim import body

_SPINE3 = body.JOINT_NAMES.index("spine3")
_BACK_COLOR = (120, 125, 130)  # BGR, the board's plain back
_SUPERSAMPLE = 2  # the board is sampled at 2x2 points per pixel and averaged


@dataclass(frozen=True)
class SimulatedBoard:
    """A simulated ChArUco board: squares (cols x rows) of ``square`` m, markers of ``marker`` m from
    ``dictionary`` (a ``cv2.aruco`` DICT_* name), a white ``margin`` m; ``inverted`` prints it negative."""

    cols: int = 5
    rows: int = 7
    square: float = 0.08
    marker: float = 0.06
    dictionary: str = "DICT_5X5_100"
    inverted: bool = False
    margin: float = 0.02

    def __post_init__(self) -> None:
        if self.cols < 2 or self.rows < 2 or not 0 < self.marker < self.square or self.margin < 0:
            raise ValueError(f"simulated board: need cols, rows >= 2 and 0 < marker < square, got {self}")
        if not isinstance(getattr(cv2.aruco, self.dictionary, None), int):
            raise ValueError(f"simulated board: {self.dictionary!r} is not a cv2.aruco dictionary name")

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) of the squared area, metres."""
        return self.cols * self.square, self.rows * self.square

    @property
    def spec(self) -> Board:
        """The printed board as calibration reads it (the margin is not part of the spec)."""
        return Board("charuco", self.cols, self.rows, self.square, self.marker, self.dictionary, self.inverted)

    def cv_board(self) -> cv2.aruco.CharucoBoard:
        """The matching OpenCV board (for detection and calibration)."""
        return _cv_board(self)

    def corner_points(self) -> np.ndarray:
        """ChArUco corners [M, 3] in the board frame; row i has id i."""
        return np.asarray(self.cv_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def outline(self) -> np.ndarray:
        """The printed sheet's corners [4, 3] in the board frame (margin included), clockwise from top-left."""
        w, h = self.size
        m = self.margin
        return np.array([[-m, -m, 0], [w + m, -m, 0], [w + m, h + m, 0], [-m, h + m, 0]], dtype=np.float64)

    def image(self, px_per_square: int) -> tuple[np.ndarray, int]:
        """The printed image (BGR uint8) at ``px_per_square`` and its margin in pixels."""
        return _board_image(self, int(px_per_square))


@functools.lru_cache(maxsize=16)
def _cv_board(spec: SimulatedBoard) -> cv2.aruco.CharucoBoard:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    return cv2.aruco.CharucoBoard((spec.cols, spec.rows), spec.square, spec.marker, dictionary)


@functools.lru_cache(maxsize=32)
def _board_image(spec: SimulatedBoard, pps: int) -> tuple[np.ndarray, int]:
    m = int(round(spec.margin / spec.square * pps))
    gray = spec.cv_board().generateImage((spec.cols * pps + 2 * m, spec.rows * pps + 2 * m), marginSize=m,
                                         borderBits=1)
    if spec.inverted:
        gray = 255 - gray
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    img.setflags(write=False)
    return img, m


@dataclass(frozen=True, eq=False)
class SimulatedBoardPose:
    """A simulated board placed in the world: ``x_world = R @ x_board + t``; ``on_floor`` boards lie under
    everything else in depth order."""

    board: SimulatedBoard
    R: np.ndarray
    t: np.ndarray
    on_floor: bool = False

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, float) @ self.R.T + self.t

    def corners_world(self) -> np.ndarray:
        """ChArUco corners [M, 3] in the world (row i has id i)."""
        return self.to_world(self.board.corner_points())

    @property
    def center(self) -> np.ndarray:
        w, h = self.board.size
        return self.to_world(np.array([w / 2, h / 2, 0.0]))

    @property
    def face_normal(self) -> np.ndarray:
        """Unit normal of the printed face, world frame."""
        return -self.R[:, 2]


def board_centred_at(board: SimulatedBoard, R: np.ndarray, centre: np.ndarray, on_floor: bool = False
                     ) -> SimulatedBoardPose:
    """The board with axes ``R`` (columns: board x, y, z in the world) and its centre at ``centre``."""
    w, h = board.size
    return SimulatedBoardPose(board, R, np.asarray(centre, float) - R @ np.array([w / 2, h / 2, 0.0]), on_floor)


def board_on_floor(board: SimulatedBoard, xy=(0.0, 0.0), yaw: float = 0.0) -> SimulatedBoardPose:
    """The board lying face up on the floor, centred at ``xy``, its x axis at ``yaw`` rad from world +X."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])  # columns: x, y, z (down into the floor)
    return board_centred_at(board, R, np.array([xy[0], xy[1], 0.001]), on_floor=True)


def board_held(board: SimulatedBoard, performers, person: int, frame: int, reach: float = 0.32,
               drop: float = 0.05) -> SimulatedBoardPose:
    """The board held by a simulated performer: ``reach`` m in front of the chest (spine3) and ``drop`` m
    below it, facing where the chest faces and tilting with it (the arms do not hold it)."""
    G = body.forward_kinematics(performers.local_rotations[frame, person],
                                performers.root_translation[frame, person], performers.heights[person])[1]
    fwd, left, up = G[_SPINE3].T  # joint frames are world-aligned at rest: forward +X, left +Y, up +Z
    R = np.stack([left, -up, -fwd], axis=1)  # board x to the performer's left, y down, face forward
    centre = performers.joints[frame, person, _SPINE3] + reach * fwd - drop * up
    return board_centred_at(board, R, centre, on_floor=False)


def faces_camera(camera: Camera, pose: SimulatedBoardPose) -> bool:
    """Whether the camera sees the printed face (not the back)."""
    return float(np.dot(camera.center - pose.t, pose.face_normal)) > 0


def board_truth(camera: Camera, pose: SimulatedBoardPose) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth a detector should find: ids int32 [V] and pixels float64 [V, 2] of the ChArUco corners
    in front of the camera and inside the image, when the face is towards it (people's occlusion ignored)."""
    if not faces_camera(camera, pose):
        return np.zeros(0, np.int32), np.zeros((0, 2))
    px = camera.project(pose.corners_world())
    keep = np.isfinite(px).all(-1) & camera.in_image(np.nan_to_num(px, nan=-1e9))
    return np.flatnonzero(keep).astype(np.int32), px[keep]


def paint_board(image: np.ndarray, camera: Camera, pose: SimulatedBoardPose, rays: np.ndarray) -> None:
    """Draw the board into ``image`` (in place); ``rays`` [H, W, 2] are the undistorted normalised
    coordinates of every pixel centre of ``camera``."""
    spec = pose.board
    H, W = image.shape[:2]
    edge = np.linspace(0.0, 1.0, 17)[:-1, None]
    ol = spec.outline()
    rim = np.concatenate([a + edge * (b - a) for a, b in zip(ol, np.roll(ol, -1, axis=0), strict=True)])
    x_cam = pose.to_world(rim) @ camera.R.T + camera.t
    if not (x_cam[:, 2] > 1e-3).any():
        return
    px = camera.project(pose.to_world(rim))
    if not faces_camera(camera, pose):
        if np.isfinite(px).all():
            cv2.fillPoly(image, [np.round(px * 16).astype(np.int32)], _BACK_COLOR, cv2.LINE_AA, shift=4)
        return
    if np.isfinite(px).all():
        lo = np.floor(px.min(0)).astype(int) - 3
        hi = np.ceil(px.max(0)).astype(int) + 4
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], W), min(hi[1], H)
    else:
        x0, y0, x1, y1 = 0, 0, W, H
    if x1 <= x0 or y1 <= y0:
        return
    depth = float(np.median(x_cam[:, 2][x_cam[:, 2] > 0]))
    projected = _SUPERSAMPLE * camera.K[0, 0] * spec.square / max(depth, 1e-3)
    pps = int(np.clip(2 ** np.ceil(np.log2(max(projected, 1.0))), 16, 256))
    img, m = spec.image(pps)
    # normalised (x, y, 1) -> board (u, v, 1) / depth -> printed-image pixels
    M = np.column_stack([camera.R @ pose.R[:, 0], camera.R @ pose.R[:, 1], camera.R @ pose.t + camera.t])
    to_img = np.array([[pps / spec.square, 0, m - 0.5], [0, pps / spec.square, m - 0.5], [0, 0, 1]])
    Hm = to_img @ np.linalg.inv(M)
    w_roi, h_roi = x1 - x0, y1 - y0
    r = cv2.resize(np.ascontiguousarray(rays[y0:y1, x0:x1]), (w_roi * _SUPERSAMPLE, h_roi * _SUPERSAMPLE),
                   interpolation=cv2.INTER_LINEAR)  # rays at sub-pixel centres
    h = r[..., 0, None] * Hm[:, 0].astype(np.float32) + r[..., 1, None] * Hm[:, 1].astype(np.float32) \
        + Hm[:, 2].astype(np.float32)
    ok = h[..., 2] > 1e-9
    w = np.where(ok, h[..., 2], 1.0)
    map_x = np.where(ok, h[..., 0] / w, -10.0).astype(np.float32)
    map_y = np.where(ok, h[..., 1] / w, -10.0).astype(np.float32)
    fine = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.remap(_sheet(img.shape[:2]), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    colour = cv2.resize(fine, (w_roi, h_roi), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(cover, (w_roi, h_roi), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    roi = image[y0:y1, x0:x1]
    roi[:] = np.round(roi * (1 - alpha) + colour * alpha).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _sheet(shape: tuple[int, int]) -> np.ndarray:
    """An all-covered mask of the printed image's shape (its remap gives the board's coverage)."""
    return np.full(shape, 255, np.uint8)
