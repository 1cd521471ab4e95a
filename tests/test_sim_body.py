import numpy as np
import pytest

from rigs.rotations import euler_zyx_to_matrix
from rigs.sim import body
from rigs.sim.motion import mirror_right_side, relaxed_pose, relaxed_rotations
from rigs.skeletons import all_joint_names


def _random_rotations(rng, shape):
    return euler_zyx_to_matrix(rng.uniform(-1.2, 1.2, size=shape + (3,)))


def _pt(points, name):
    return points[..., body.POINT_NAMES.index(name), :]


def test_body_provides_every_joint_name_of_every_skeleton_format():
    missing = set(all_joint_names()) - set(body.POINT_NAMES)
    assert not missing, f"simulated body lacks {sorted(missing)}"
    assert len(set(body.POINT_NAMES)) == len(body.POINT_NAMES)
    assert body.JOINT_NAMES[:3] == ("pelvis", "left_hip", "right_hip") and len(body.JOINT_NAMES) == 24


@pytest.mark.parametrize("height", [1.55, 1.75, 1.95])
def test_rest_pose_has_the_requested_height_and_stands_on_the_floor(height):
    rest = body.rest_points(height)
    assert _pt(rest, "head_top")[2] == pytest.approx(height)
    soles = rest[body.point_index(body.FOOT_CONTACT_POINTS), 2]
    assert 0.0 < soles.min() < 0.03
    assert rest[:, 2].min() > -1e-9


def test_rest_pose_faces_plus_x_with_left_towards_plus_y_and_winter_proportions():
    h = 1.8
    rest = body.rest_points(h)
    assert _pt(rest, "nose")[0] > _pt(rest, "head")[0] + 0.05  # nose in front
    assert _pt(rest, "left_big_toe")[0] > _pt(rest, "left_heel")[0] + 0.15
    for name in ("hip", "knee", "shoulder", "wrist", "eye", "ear", "heel"):
        assert _pt(rest, f"left_{name}")[1] > 0 > _pt(rest, f"right_{name}")[1]
    thigh = np.linalg.norm(_pt(rest, "left_knee") - _pt(rest, "left_hip"))
    upper_arm = np.linalg.norm(_pt(rest, "left_elbow") - _pt(rest, "left_shoulder"))
    assert thigh == pytest.approx(0.245 * h, rel=0.01)
    assert upper_arm == pytest.approx(0.186 * h, rel=0.01)
    assert _pt(rest, "left_knee")[2] == pytest.approx(0.285 * h)
    np.testing.assert_allclose(_pt(rest, "mid_hip"), (_pt(rest, "left_hip") + _pt(rest, "right_hip")) / 2)


def test_forward_kinematics_identity_is_the_rest_pose_and_is_vectorised_over_people():
    heights = np.array([1.6, 1.9])
    R = np.broadcast_to(np.eye(3), (3, 2, 24, 3, 3))
    root = np.broadcast_to(body.rest_points(heights)[:, 0], (3, 2, 3))
    pts, G = body.forward_kinematics(R, root, heights)
    assert pts.shape == (3, 2, len(body.POINT_NAMES), 3)
    np.testing.assert_allclose(pts[1], body.rest_points(heights), atol=1e-12)
    np.testing.assert_allclose(G, R)


def test_forward_kinematics_keeps_bone_and_landmark_distances_under_any_rotation():
    rng = np.random.default_rng(0)
    h = 1.7
    R = _random_rotations(rng, (50, 24))
    pts, _ = body.forward_kinematics(R, rng.normal(size=(50, 3)), h)
    rest = body.rest_points(h)
    for j in range(1, 24):
        p = body.JOINT_PARENTS[j]
        np.testing.assert_allclose(
            np.linalg.norm(pts[:, j] - pts[:, p], axis=-1), np.linalg.norm(rest[j] - rest[p]), rtol=1e-9
        )
    for k, parent in enumerate(body.LANDMARK_PARENTS):
        i = 24 + k
        np.testing.assert_allclose(
            np.linalg.norm(pts[:, i] - pts[:, parent], axis=-1),
            np.linalg.norm(rest[i] - rest[parent]),
            rtol=1e-9,
            atol=1e-12,
        )
    # mid_hip stays the midpoint of the hips in any pose
    np.testing.assert_allclose(
        _pt(pts, "mid_hip"), (_pt(pts, "left_hip") + _pt(pts, "right_hip")) / 2, atol=1e-12
    )


def test_a_joint_rotation_moves_its_descendants_and_landmarks_only():
    h = 1.75
    R = np.broadcast_to(np.eye(3), (24, 3, 3)).copy()
    R[body.JOINT_NAMES.index("head")] = euler_zyx_to_matrix(np.array([0.0, 0.0, np.pi / 2]))  # look left
    pts, _ = body.forward_kinematics(R, body.rest_points(h)[0], h)
    rest = body.rest_points(h)
    moved = np.linalg.norm(pts - rest, axis=-1) > 1e-9
    assert {body.POINT_NAMES[i] for i in np.flatnonzero(moved)} >= {"nose", "left_eye", "right_ear"}
    assert not moved[:24].any()  # the head joint itself and the rest stay
    assert _pt(pts, "nose")[1] > _pt(pts, "head")[1] + 0.05  # the nose now points to the left (+Y)


def test_relaxed_pose_hangs_the_arms_down_on_both_sides():
    pts, _ = body.forward_kinematics(relaxed_rotations(np.zeros(())), np.array([0, 0, 1.0]), 1.75)
    for side, sign in (("left", 1), ("right", -1)):
        wrist, shoulder = _pt(pts, f"{side}_wrist"), _pt(pts, f"{side}_shoulder")
        assert wrist[2] < shoulder[2] - 0.4
        assert sign * (wrist[1] - shoulder[1]) > 0  # slightly away from the body
    # the right side mirrors the left
    left = _pt(pts, "left_wrist") - pts[0]
    right = _pt(pts, "right_wrist") - pts[0]
    np.testing.assert_allclose(left * [1, -1, 1], right, atol=1e-9)
    assert np.allclose(
        mirror_right_side(relaxed_pose(()))[body.JOINT_NAMES.index("right_shoulder"), 0],
        -relaxed_pose(())[body.JOINT_NAMES.index("left_shoulder"), 0],
    )


def test_capsules_follow_the_points_and_scale_with_height_and_girth():
    heights, girths = np.array([1.6, 1.9]), np.array([1.0, 1.1])
    pts = body.rest_points(heights)
    a, b, r = body.body_capsules(pts, heights, girths)
    assert a.shape == b.shape == (2, body.NUM_CAPSULES, 3) and r.shape == (2, body.NUM_CAPSULES)
    np.testing.assert_allclose(r[1] / r[0], 1.9 * 1.1 / 1.6)
    head = list(body.CAPSULE_A).index(body.POINT_NAMES.index("simulated_head_center"))
    np.testing.assert_array_equal(a[:, head], b[:, head])  # the head is a sphere
    # the head sphere encloses the eyes and the nose's root, not the feet
    d_eye = np.linalg.norm(_pt(pts, "left_eye") - a[:, head], axis=-1)
    assert (d_eye < r[:, head] * 1.05).all()


