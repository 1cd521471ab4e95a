from pathlib import Path

import numpy as np
import pytest

from rigs.sim import body
from rigs.sim.motion import relaxed_rotations
from rigs.sim.performers import HEIGHT_RANGE, keypoints3d, performers_from_rotations, simulate_performers
from rigs.sim.schedule import ACTIVITIES, activity_weights, schedule_arrays
from rigs.skeletons import get_skeleton, skeleton_names

BVH_CLIP = Path("/work/shared/data/facebookresearch+fairmotion/tests/data/01_01.bvh")
FPS = 30


@pytest.fixture(scope="module")
def crowd():
    """Four people for 20 s in the default 4 x 4 m area."""
    return simulate_performers(4, 20.0, FPS, seed=3)


def _weights(perf, kind):
    t = np.arange(perf.num_frames) / perf.fps
    return activity_weights(t, *schedule_arrays(perf.activities))[..., ACTIVITIES.index(kind)]


def _soles(perf):
    return perf.named_points(body.FOOT_CONTACT_POINTS)[..., 2].min(axis=-1)  # [T, P]


def test_same_seed_same_people_different_seed_different():
    a = simulate_performers(2, 4.0, FPS, seed=11)
    b = simulate_performers(2, 4.0, FPS, seed=11)
    c = simulate_performers(2, 4.0, FPS, seed=12)
    np.testing.assert_array_equal(a.joints, b.joints)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.activities == b.activities
    assert not np.allclose(a.joints, c.joints)
    assert a.joints.shape == (120, 2, 24, 3) and a.joints.dtype == np.float64
    np.testing.assert_array_equal(a.t_ns, np.round(np.arange(120) * 1e9 / FPS).astype(np.int64))
    assert "simulated" in a.source


def test_motion_is_a_function_of_time_not_of_the_frame_rate():
    a = simulate_performers(2, 3.0, 30, seed=5)
    b = simulate_performers(2, 3.0, 60, seed=5)
    np.testing.assert_allclose(a.joints, b.joints[::2], atol=1e-9)


def test_heights_are_varied_in_range_or_as_requested(crowd):
    lo, hi = HEIGHT_RANGE
    assert ((crowd.heights >= lo) & (crowd.heights <= hi)).all() and np.ptp(crowd.heights) > 0.05
    fixed = simulate_performers(2, 1.0, FPS, seed=0, heights=[1.62, 1.91])
    np.testing.assert_array_equal(fixed.heights, [1.62, 1.91])


def test_head_top_is_at_the_persons_height_when_standing_upright(crowd):
    standing = _weights(crowd, "stand") == 1.0
    assert standing.sum() > 30
    head = crowd.named_points(["head_top"])[..., 0, 2]
    err = (head - crowd.heights)[standing]
    assert np.abs(err).max() < 0.03


def test_bone_lengths_are_constant_over_time(crowd):
    bones = np.linalg.norm(crowd.joints[:, :, 1:] - crowd.joints[:, :, body.JOINT_PARENTS[1:]], axis=-1)
    assert np.ptp(bones, axis=0).max() < 1e-9
    lm = crowd.landmarks - crowd.joints[:, :, body.LANDMARK_PARENTS]
    assert np.ptp(np.linalg.norm(lm, axis=-1), axis=0).max() < 1e-9


def test_feet_stay_on_the_floor_except_when_jumping(crowd):
    soles = _soles(crowd)
    assert soles.min() > -0.03
    grounded = _weights(crowd, "jump") == 0
    assert np.abs(soles[grounded] - 0.015).max() < 0.03
    for p in range(crowd.num_people):  # no floating over the clip
        assert soles[:, p].min() < 0.03


def test_jumps_leave_the_floor_and_crouches_lower_the_head():
    perf = simulate_performers(3, 30.0, FPS, seed=1)
    jump, crouch = _weights(perf, "jump") == 1, _weights(perf, "crouch") == 1
    assert jump.any() and crouch.any()
    soles = _soles(perf)
    assert soles[jump].max() > 0.15
    head = perf.named_points(["head_top"])[..., 0, 2]
    assert (perf.heights - head)[crouch].max() > 0.4


def test_walking_speed_is_plausible_and_people_face_where_they_go(crowd):
    walking = _weights(crowd, "walk") == 1.0
    v = np.diff(crowd.root_translation[..., :2], axis=0) * FPS  # [T-1, P, 2]
    speed = np.linalg.norm(v, axis=-1)
    w = walking[1:] & walking[:-1]
    assert w.sum() > 100
    assert 0.5 <= np.median(speed[w]) <= 2.0
    assert speed.max() < 2.5
    forward = crowd.local_rotations[1:, :, 0, :2, 0]  # root x axis
    moving = w & (speed > 0.3)
    cos = np.sum(forward * v, -1)[moving] / speed[moving] / np.linalg.norm(forward, axis=-1)[moving]
    assert np.mean(cos) > 0.9


def test_people_stay_in_the_area_and_keep_apart():
    for seed in range(4):
        perf = simulate_performers(4, 20.0, FPS, seed=seed, area=(4.0, 4.0))
        xy = perf.root_translation[..., :2]
        assert np.abs(xy).max() <= 2.0
        d = np.linalg.norm(xy[:, :, None] - xy[:, None], axis=-1) + np.eye(4) * 99
        assert d.min() >= 0.5, (
            f"seed {seed}: people {np.unravel_index(d.argmin(), d.shape)} came within {d.min():.2f} m"
        )


def test_area_is_respected_when_smaller():
    perf = simulate_performers(2, 15.0, FPS, seed=2, area=(2.5, 3.0))
    xy = perf.root_translation[..., :2]
    assert np.abs(xy[..., 0]).max() <= 1.25 and np.abs(xy[..., 1]).max() <= 1.5


def test_schedules_cover_the_clip_and_use_every_activity():
    kinds = set()
    for seed in range(6):
        perf = simulate_performers(3, 20.0, FPS, seed=seed)
        for acts in perf.activities:
            assert acts[0].start == 0 and acts[-1].end >= 20.0
            assert all(a.end == b.start and a.kind != b.kind for a, b in zip(acts, acts[1:], strict=False))
            kinds |= {a.kind for a in acts}
    assert kinds == set(ACTIVITIES)
    w = activity_weights(np.linspace(0, 20, 500), *schedule_arrays(perf.activities))
    np.testing.assert_allclose(w.sum(-1), 1.0)


def test_waving_raises_a_hand_above_the_shoulders():
    perf = simulate_performers(3, 30.0, FPS, seed=1)
    wrists = perf.named_points(["left_wrist", "right_wrist"])[..., 2].max(-1)
    shoulders = perf.named_points(["left_shoulder", "right_shoulder"])[..., 2].max(-1)
    raised = wrists > shoulders
    t = np.arange(perf.num_frames) / FPS
    waves = 0
    for p, acts in enumerate(perf.activities):
        for a in acts:
            if a.kind == "wave" and a.end < t[-1]:
                middle = (t > a.start + 0.8) & (t < a.end - 0.8)  # arm up after 0.75 s, down in the last
                assert raised[middle, p].all()
                waves += 1
    assert waves >= 2
    assert not raised[_weights(perf, "stand") == 1].any()


@pytest.mark.parametrize("name", skeleton_names())
def test_keypoints3d_in_every_format_by_joint_name(crowd, name):
    sk = get_skeleton(name)
    kp = keypoints3d(crowd, name)
    assert kp.shape == (crowd.num_frames, 4, sk.num_joints, 4) and kp.dtype == np.float32
    assert (kp[..., 3] == 1).all()
    for j in (0, sk.num_joints - 1):
        np.testing.assert_allclose(kp[..., j, :3], crowd.named_points([sk.joints[j]])[..., 0, :], atol=1e-5)


def test_performers_from_rotations_stand_on_the_floor_where_placed():
    heading = np.zeros((1, 2))
    perf = performers_from_rotations(
        relaxed_rotations(heading), np.array([[[0.0, 0.0], [1.0, 2.0]]]), [1.7, 1.8], FPS
    )
    np.testing.assert_allclose(perf.root_translation[0, :, :2], [[0, 0], [1, 2]])
    np.testing.assert_allclose(
        _soles(perf), body.rest_points(np.array([1.7, 1.8]))[:, 24:, 2].min(-1)[None], atol=1e-9
    )


@pytest.mark.skipif(not BVH_CLIP.exists(), reason="CMU 01_01.bvh not available")
def test_bvh_clip_drives_the_body_in_metres_z_up_feet_on_floor():
    from rigs.bvh import forward_kinematics, read_bvh
    from rigs.sim.bvh_driver import Y_UP_TO_Z_UP, bvh_joint_map, bvh_units, retarget_bvh

    motion = read_bvh(BVH_CLIP)
    unit, per_unit, height = bvh_units(motion)
    assert unit.startswith("cmu") and 1.3 < height < 2.0
    mapping = bvh_joint_map(motion)
    assert mapping["left_knee"] == motion.joint_names.index("LeftLeg")
    assert mapping["right_elbow"] == motion.joint_names.index("RightForeArm")
    # limb directions follow the clip exactly
    local, root = retarget_bvh(motion, 1.75)
    pts, _ = body.forward_kinematics(local[::50], root[::50], 1.75)
    theirs = forward_kinematics(motion)[::50] @ Y_UP_TO_Z_UP.T
    for a, b in (("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_elbow", "left_wrist")):
        ours = pts[:, body.JOINT_NAMES.index(b)] - pts[:, body.JOINT_NAMES.index(a)]
        ref = theirs[:, mapping[b]] - theirs[:, mapping[a]]
        cos = np.sum(ours * ref, -1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
        assert cos.min() > 0.9999
    perf = simulate_performers(2, 5.0, FPS, seed=4, bvh=BVH_CLIP, heights=[1.75, 1.6])
    assert perf.num_frames == 150 and "01_01.bvh" in perf.source and "simulated" in perf.source
    head = perf.named_points(["head_top"])[..., 0, 2]
    assert (head > perf.joints[:, :, 0, 2] + 0.5).all()  # Z up
    soles = _soles(perf)
    assert soles.min() > -0.03 and np.median(soles) < 0.1
    single = simulate_performers(1, 0.5, FPS, seed=4, bvh=BVH_CLIP, heights=1.75)  # the clip starts standing
    np.testing.assert_allclose(single.named_points(["head_top"])[0, 0, 0, 2], 1.75, atol=0.05)
    again = simulate_performers(2, 5.0, FPS, seed=4, bvh=BVH_CLIP, heights=[1.75, 1.6])
    np.testing.assert_array_equal(perf.joints, again.joints)
