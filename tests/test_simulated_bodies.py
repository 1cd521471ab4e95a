import numpy as np
import pytest

from fitting.simulated_bodies import A, simulate_bodies, smpl_parameters
from fitting.smplify import global_rotations
from rigs.sim.performers import simulate_performers
from rigs.skeletons import get_skeleton

SECONDS, FPS, SEED = 2.0, 30, 7


@pytest.fixture(scope="module")
def bodies(standin):
    return simulate_bodies(standin, 2, SECONDS, FPS, SEED)


def test_smpl_parameters_put_every_joint_frame_where_the_simulation_has_it():
    perf = simulate_performers(2, 1.0, FPS, seed=3)
    rest_pelvis = np.array([0.01, 0.9, -0.02])
    poses, trans = smpl_parameters(perf.local_rotations, perf.root_translation, rest_pelvis)
    assert poses.shape == (30, 2, 72) and trans.shape == (30, 2, 3)
    from scipy.spatial.transform import Rotation

    local = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(30, 2, 24, 3, 3)
    G_smpl = global_rotations(local)
    G_sim = global_rotations(perf.local_rotations)
    np.testing.assert_allclose(G_smpl, G_sim @ A, atol=1e-9)  # the SMPL frame of joint j = sim frame, axes renamed
    np.testing.assert_allclose(trans + rest_pelvis, perf.root_translation, atol=1e-12)


def test_bodies_follow_the_simulated_motion(standin, bodies):
    perf = simulate_performers(2, SECONDS, FPS, SEED)
    assert bodies.joints.shape == (60, 2, 24, 3) and bodies.poses.shape == (60, 2, 72)
    np.testing.assert_allclose(bodies.joints[:, :, 0], perf.root_translation, atol=1e-9)  # pelvis where the sim has it
    # bones point the same way as the simulated body's (the stand-in has the same rest directions)
    names = get_skeleton("smpl24").joints
    for parent, child in (("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"),
                          ("right_elbow", "right_wrist"), ("spine3", "neck")):
        p, c = names.index(parent), names.index(child)
        ours = bodies.joints[:, :, c] - bodies.joints[:, :, p]
        sim = perf.joints[:, :, c] - perf.joints[:, :, p]
        cos = (ours * sim).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(sim, axis=-1)
        assert cos.min() > 0.98, (parent, child, cos.min())


def test_betas_are_seeded_standard_normal_clipped(standin, bodies):
    assert bodies.betas.shape == (2, standin.arrays.num_betas)
    assert np.abs(bodies.betas).max() <= 2.0 and np.abs(bodies.betas[0] - bodies.betas[1]).max() > 0.1
    again = simulate_bodies(standin, 2, 0.5, FPS, SEED)
    np.testing.assert_array_equal(again.betas, bodies.betas)
    other = simulate_bodies(standin, 2, 0.5, FPS, SEED + 1)
    assert not np.allclose(other.betas, bodies.betas)
    many = simulate_bodies(standin, 40, 0.1, FPS, 1).betas
    assert abs(many.mean()) < 0.1 and 0.8 < many.std() < 1.1


def test_keypoints_in_any_skeleton_come_from_the_keypoint_map(standin, bodies):
    assert "simulated" in bodies.source and bodies.body_model == standin.arrays.source
    smpl = bodies.keypoints("smpl24")
    np.testing.assert_allclose(smpl[..., :3], bodies.joints)
    assert (smpl[..., 3] == 1).all()
    b25 = bodies.keypoints("body25")
    names = get_skeleton("body25").joints
    mid = b25[:, :, names.index("mid_hip"), :3]
    hips = b25[:, :, [names.index("left_hip"), names.index("right_hip")], :3].mean(2)
    np.testing.assert_allclose(mid, hips, atol=1e-12)
    nose = bodies.landmarks[:, :, bodies.landmark_names.index("nose")]
    np.testing.assert_allclose(b25[:, :, names.index("nose"), :3], nose)
    # the rotations round-trip
    np.testing.assert_allclose(global_rotations(bodies.rotations())[..., 0, :, :] @ A.T,
                               simulate_performers(2, SECONDS, FPS, SEED).local_rotations[..., 0, :, :], atol=1e-9)
