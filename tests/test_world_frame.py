"""World alignment: a board on the floor and a plane through the feet give Z up with the floor at z = 0."""

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.world_frame import WorldTransform, board_world, first_camera_world, floor_world
from rigs.formats import load_rig
from rigs.rotations import rotvec_to_matrix
from rigs.sim.board import SimulatedBoard, board_on_floor


def _scrambled(rig):
    """The rig in an arbitrary frame, and the transform that made it."""
    R = rotvec_to_matrix(np.array([0.4, -1.1, 0.7]))
    t = np.array([0.3, -2.0, 5.0])
    return rig.transformed(R, t, 0.8), WorldTransform(R, t, 0.8)


def test_board_on_the_floor_gives_the_studio_frame_back():
    rig = load_rig("studio-4")
    pose = board_on_floor(SimulatedBoard(), xy=(0.2, -0.3), yaw=0.5)
    scrambled, T = _scrambled(rig)
    # the board pose as calibration would see it in the scrambled frame (rigid part; scale on t)
    R_b = T.R @ pose.R
    t_b = T.apply(pose.t)
    W = board_world(pose.board.spec, R_b, t_b)
    corners = T.apply(pose.corners_world())
    out = W.apply(corners)
    assert np.allclose(out[:, 2], out[0, 2], atol=1e-9)  # flat
    # cameras are above the board: positive z
    centres = W.apply(scrambled.centers)
    assert (centres[:, 2] > 0).all()
    # corner 0 sits one square along x and one along the rows (-Y) from the board's origin
    assert np.allclose(out[0, :2], T.scale * pose.board.square * np.array([1, -1]), atol=1e-9)


def test_floor_from_feet_puts_feet_on_z0_and_cameras_above():
    rig = load_rig("studio-8")
    rng = np.random.default_rng(1)
    feet = np.column_stack([rng.uniform(-1.5, 1.5, 300), rng.uniform(-1.5, 1.5, 300), 0.07 + rng.normal(0, 0.005, 300)])
    feet[:20, 2] += 0.6  # a foot in the air now and then
    scrambled, T = _scrambled(rig)
    W = floor_world(T.apply(feet), scrambled, offset=0.07 * T.scale)
    new = W.apply(T.apply(feet))
    assert np.median(np.abs(new[20:, 2] / T.scale - 0.07)) < 0.005
    assert (W.apply(scrambled.centers)[:, 2] > 0).all()
    # X along the first camera's view direction on the floor
    view = W.apply_rig(scrambled)[0].viewing_direction
    assert view[1] == pytest.approx(0, abs=1e-9) and view[0] > 0
    # the true rig's heights come back (up to the scrambling scale)
    assert np.allclose(W.apply(scrambled.centers)[:, 2] / T.scale, rig.centers[:, 2], atol=0.01)


def test_ankles_and_soles_together_give_a_level_floor():
    rig = load_rig("studio-8")
    rng = np.random.default_rng(2)
    n = 400
    xy = np.column_stack([rng.uniform(-1.5, 1.5, n), rng.uniform(-1.5, 1.5, n)])
    offset = np.where(np.arange(n) % 2 == 0, 0.08, 0.0)  # ankles 8 cm up, soles on the floor
    offset[xy[:, 0] > 0] = 0.08  # all ankles on one side: a naive fit would tilt
    feet = np.column_stack([xy, offset + rng.normal(0, 0.003, n)])
    W = floor_world(feet, rig, offset=offset)
    assert np.allclose(W.R[2], [0, 0, 1], atol=0.002)  # level to about 0.1 degree
    assert np.median(np.abs(W.apply(feet)[:, 2] - offset)) < 0.004


def test_feet_on_a_line_are_refused_with_the_fix():
    rig = load_rig("studio-4")
    x = np.linspace(-1, 1, 50)
    feet = np.column_stack([x, 0.3 * x, np.zeros_like(x)])
    with pytest.raises(CalibrationError, match="walk around"):
        floor_world(feet, rig)


def test_first_camera_world_is_the_first_camera_frame():
    rig = load_rig("studio-4")
    W = first_camera_world(rig)
    new = W.apply_rig(rig)
    assert np.allclose(new[0].R, np.eye(3), atol=1e-9) and np.allclose(new[0].t, 0, atol=1e-9)
