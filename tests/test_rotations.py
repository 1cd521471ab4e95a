import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from rigs.rotations import euler_zyx_to_matrix, matrix_to_rotvec, rotation_between, rotvec_to_matrix


def test_rodrigues_is_exact_near_a_half_turn():
    axis = np.array([1.0, 2.0, -2.0]) / 3
    for angle in (0.0, 1e-9, 1.0, np.pi - 1e-7, np.pi):
        R = Rotation.from_rotvec(axis * angle).as_matrix()
        np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(R)), R, atol=1e-14)
        np.testing.assert_allclose(rotvec_to_matrix(axis * angle), cv2.Rodrigues(axis * angle)[0],
                                   atol=1e-14)


def test_euler_zyx_is_z_then_y_then_x_and_orthonormal():
    rng = np.random.default_rng(1)
    ang = rng.uniform(-3, 3, size=(20, 3))
    R = euler_zyx_to_matrix(ang)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0)
    x, y, z = (euler_zyx_to_matrix(np.eye(3)[i] * ang[0, i]) for i in range(3))
    np.testing.assert_allclose(R[0], z @ y @ x, atol=1e-12)
    # +90 deg about z takes +X to +Y
    np.testing.assert_allclose(
        euler_zyx_to_matrix(np.array([0, 0, np.pi / 2])) @ [1, 0, 0], [0, 1, 0], atol=1e-12
    )


def test_rotation_between_takes_one_direction_onto_another_including_opposite():
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    u[0], v[0] = [0, 0, 1], [0, 0, -1]
    u[1], v[1] = [1, 0, 0], [2, 0, 0]
    R = rotation_between(u, v)
    got = np.einsum("nab,nb->na", R, u / np.linalg.norm(u, axis=-1, keepdims=True))
    np.testing.assert_allclose(got, v / np.linalg.norm(v, axis=-1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0)
    np.testing.assert_allclose(R[1], np.eye(3), atol=1e-12)
