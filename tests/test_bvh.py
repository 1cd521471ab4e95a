"""Tests for rigs/bvh.py: parsing, writing, forward kinematics and Euler decomposition."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from rigs.bvh import (
    BvhError,
    BvhJoint,
    BvhMotion,
    forward_kinematics,
    local_rotations,
    motion_from_rotations,
    read_bvh,
    world_transforms,
    write_bvh,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CMU = DATA / "facebookresearch+fairmotion/tests/data/01_01.bvh"
PYMO = DATA / "omimo+PyMO/demos/data/AV_8Walk_Meredith_HVHA_Rep1.bvh"
ORDERS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]
ROT = ("Zrotation", "Xrotation", "Yrotation")
POS = ("Xposition", "Yposition", "Zposition")


def _real(path: Path):
    if not path.is_file():
        pytest.skip(f"../shared/data is absent: {path} not found")
    return read_bvh(path)


def _chain(values, channels=POS + ROT, child_channels=(), child_values=(), offsets=((1, 0, 0),)):
    """A root at the origin with a chain of children at ``offsets``; one frame."""
    joints = [BvhJoint("root", -1, np.zeros(3), channels)]
    for k, off in enumerate(offsets):
        last = k == len(offsets) - 1
        joints.append(BvhJoint(f"j{k}", k, np.array(off, dtype=float), () if last else child_channels, last))
    row = list(values) + [v for _ in offsets[:-1] for v in child_values]
    return BvhMotion(tuple(joints), 1 / 30, np.array([row], dtype=float))


# ---------------------------------------------------------------- hand-computed forward kinematics


def test_90_degrees_about_z_moves_the_child_to_y():
    p = forward_kinematics(_chain([0, 0, 0, 90, 0, 0]))
    assert np.allclose(p[0], [[0, 0, 0], [0, 1, 0]], atol=1e-12)


def test_root_position_channels_place_the_root():
    p = forward_kinematics(_chain([5, -2, 0.5, 90, 0, 0]))
    assert np.allclose(p[0], [[5, -2, 0.5], [5, -1, 0.5]], atol=1e-12)


def test_channel_order_is_intrinsic_composition():
    # Zrotation Xrotation Yrotation: R = Rz(90) Rx(90); Rx(90) (0,1,0) = (0,0,1), Rz keeps it
    zxy = forward_kinematics(_chain([0, 0, 0, 90, 90, 0], offsets=((0, 1, 0),)))
    assert np.allclose(zxy[0, 1], [0, 0, 1], atol=1e-12)
    # Xrotation Zrotation: R = Rx(90) Rz(90); Rz(90) (0,1,0) = (-1,0,0), Rx keeps it
    xz = forward_kinematics(_chain([0, 0, 0, 90, 90], channels=POS + ("Xrotation", "Zrotation"),
                                   offsets=((0, 1, 0),)))
    assert np.allclose(xz[0, 1], [-1, 0, 0], atol=1e-12)
    # Yrotation 90 takes (0,0,1) to (1,0,0) (right-handed)
    y = forward_kinematics(_chain([0, 0, 0, 90], channels=POS + ("Yrotation",), offsets=((0, 0, 1),)))
    assert np.allclose(y[0, 1], [1, 0, 0], atol=1e-12)


def test_rotations_accumulate_down_the_chain():
    m = _chain([0, 0, 0, 90, 0, 0], child_channels=ROT, child_values=(90, 0, 0),
               offsets=((1, 0, 0), (1, 0, 0)))
    p = forward_kinematics(m)
    assert np.allclose(p[0], [[0, 0, 0], [0, 1, 0], [-1, 1, 0]], atol=1e-12)
    R, _ = world_transforms(m)
    assert np.allclose(R[0, 1], Rotation.from_euler("z", 180, degrees=True).as_matrix(), atol=1e-12)


def test_position_channels_of_a_joint_replace_its_offset():
    joints = (BvhJoint("root", -1, np.array([10.0, 20, 30]), POS),
              BvhJoint("mid", 0, np.array([1.0, 2, 3]), ("Xposition",)),
              BvhJoint("mid_end", 1, np.array([0.0, 0, 1]), (), True))
    p = forward_kinematics(BvhMotion(joints, 0.01, np.array([[0.0, 0, 0, 7], [1, 1, 1, -7]])))
    assert np.allclose(p[0], [[0, 0, 0], [7, 2, 3], [7, 2, 4]])
    assert np.allclose(p[1], [[1, 1, 1], [-6, 3, 4], [-6, 3, 5]])


# ---------------------------------------------------------------- real clips


@pytest.mark.parametrize("path", [CMU, PYMO], ids=["cmu_01_01", "pymo_walk"])
def test_real_clip_round_trips(path, tmp_path):
    m = _real(path)
    out = write_bvh(tmp_path / "clip.bvh", m)
    back = read_bvh(out)
    assert back.joint_names == m.joint_names
    assert np.array_equal(back.parents, m.parents)
    assert [j.channels for j in back.joints] == [j.channels for j in m.joints]
    assert [j.is_end_site for j in back.joints] == [j.is_end_site for j in m.joints]
    assert np.allclose(np.stack([j.offset for j in back.joints]), np.stack([j.offset for j in m.joints]),
                       atol=1e-4, rtol=0)
    assert back.motion.shape == m.motion.shape
    assert np.allclose(back.motion, m.motion, atol=1e-4, rtol=0)
    assert back.frame_time == pytest.approx(m.frame_time, rel=1e-9)
    assert np.allclose(forward_kinematics(back), forward_kinematics(m), atol=1e-4, rtol=0)
    # a second pass is byte-identical
    assert write_bvh(tmp_path / "again.bvh", back).read_text() == out.read_text()


def test_cmu_clip_shape():
    m = _real(CMU)
    real = [j for j in m.joints if not j.is_end_site]
    assert len(real) == 31 and m.num_frames == 2752 and m.motion.shape == (2752, 6 + 30 * 3)
    assert m.frame_time == pytest.approx(1 / 120, rel=1e-3)
    assert real[0].name == "Hips" and real[0].channels == POS + ("Zrotation", "Yrotation", "Xrotation")
    assert m.joints[m.joint_names.index("Head") + 1].name == "Head_end"


def test_pymo_clip_shape_and_feet_on_the_floor():
    m = _real(PYMO)
    assert sum(not j.is_end_site for j in m.joints) == 23 and m.num_frames == 1064
    assert np.allclose(m.joints[0].offset, [11.2666, 35.4190, -54.3259])
    p = forward_kinematics(m)
    # the root position channels are its world position (they replace its non-zero OFFSET), so the
    # feet touch the floor (Y up); adding the OFFSET would float them 35 units up
    assert np.allclose(p[:, 0], m.motion[:, :3])
    feet = [i for i, n in enumerate(m.joint_names) if "Foot" in n or "Toe" in n]
    assert -3 < p[:, feet, 1].min() < 3


def _reference_fk(m: BvhMotion, frame: int) -> np.ndarray:
    """Independent per-joint, per-frame FK with scipy rotations, for checking the vectorised one."""
    Rw, pw, start = [], [], 0
    for joint in m.joints:
        values = dict(zip(joint.channels, m.motion[frame, start:start + len(joint.channels)], strict=True))
        start += len(joint.channels)
        rot = [(c[0].upper(), v) for c, v in values.items() if c.endswith("rotation")]
        R = Rotation.from_euler("".join(a for a, _ in rot), [v for _, v in rot], degrees=True).as_matrix() \
            if rot else np.eye(3)
        t = np.array([values.get(f"{a}position", joint.offset[i]) for i, a in enumerate("XYZ")])
        if joint.parent < 0:
            Rw.append(R)
            pw.append(t)
        else:
            Rw.append(Rw[joint.parent] @ R)
            pw.append(pw[joint.parent] + Rw[joint.parent] @ t)
    return np.array(pw)


@pytest.mark.parametrize("path", [CMU, PYMO], ids=["cmu_01_01", "pymo_walk"])
def test_vectorised_fk_matches_a_per_frame_reference(path):
    m = _real(path)
    p = forward_kinematics(m)
    for frame in (0, 1, m.num_frames // 2, m.num_frames - 1):
        assert np.allclose(p[frame], _reference_fk(m, frame), atol=1e-9)
    # bones keep their length in every frame
    child = np.flatnonzero(m.parents >= 0)
    lengths = np.linalg.norm(p[:, child] - p[:, m.parents[child]], axis=-1)
    has_pos = np.array([any(c.endswith("position") for c in m.joints[j].channels) for j in child])
    expected = np.linalg.norm(np.stack([m.joints[j].offset for j in child]), axis=-1)
    assert np.allclose(lengths[:, ~has_pos], expected[~has_pos], atol=1e-9)


@pytest.mark.parametrize("order", [None, "XYZ", "ZYX"])
@pytest.mark.parametrize("path", [CMU, PYMO], ids=["cmu_01_01", "pymo_walk"])
def test_real_rotations_rebuild_the_same_motion(path, order):
    m = _real(path)
    rebuilt = motion_from_rotations(m.joints, local_rotations(m), m.motion[:, :3], m.frame_time, order=order)
    assert np.allclose(forward_kinematics(rebuilt), forward_kinematics(m), atol=1e-6)
    if order is None:  # same channel layout: the same angles come back away from gimbal lock
        assert [j.channels for j in rebuilt.joints] == [j.channels for j in m.joints]
        assert np.allclose(local_rotations(rebuilt), local_rotations(m), atol=1e-9)


# ---------------------------------------------------------------- Euler decomposition


def _random_tree(rng, n=6):
    parents = [-1] + [int(rng.integers(0, k)) for k in range(1, n)]
    joints = [BvhJoint(f"j{k}", p, rng.normal(size=3), POS + ROT if p < 0 else ROT)
              for k, p in enumerate(parents)]
    joints.append(BvhJoint(f"j{n - 1}_end", n - 1, rng.normal(size=3), (), True))
    return tuple(joints)


def _check_rebuild(joints, rotations, root, order):
    m = motion_from_rotations(joints, rotations, root, 1 / 60, order=order)
    assert all(j.channels[-3:] == tuple(f"{a}rotation" for a in order) for j in m.joints if not j.is_end_site)
    R = local_rotations(m)
    real = [k for k, j in enumerate(joints) if not j.is_end_site]
    assert np.allclose(R[:, real], rotations[:, real], atol=1e-9)
    reference = motion_from_rotations(joints, rotations, root, 1 / 60, order="XYZ")
    assert np.allclose(forward_kinematics(m), forward_kinematics(reference), atol=1e-6)
    assert np.allclose(forward_kinematics(m)[:, 0], root)
    return m


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(ORDERS))
def test_euler_decomposition_reproduces_random_rotations(seed, order):
    rng = np.random.default_rng(seed)
    joints = _random_tree(rng)
    rotations = Rotation.random(8 * len(joints), random_state=seed).as_matrix().reshape(8, len(joints), 3, 3)
    _check_rebuild(joints, rotations, rng.normal(size=(8, 3)), order)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ORDERS), st.sampled_from([0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.5]),
       st.sampled_from([90.0, -90.0]), st.floats(-180, 180), st.floats(-180, 180))
def test_euler_decomposition_near_gimbal_lock(order, eps, middle, first, last):
    angles = np.array([[first, middle - eps, last], [first, middle + eps, last]])
    R = Rotation.from_euler(order, angles, degrees=True).as_matrix()
    joints = (BvhJoint("root", -1, np.zeros(3), POS + ROT),
              BvhJoint("arm", 0, np.array([0.3, -1.2, 0.7]), ROT),
              BvhJoint("arm_end", 1, np.array([1.0, 0.5, -0.2]), (), True))
    rotations = np.stack([R, R[::-1], np.broadcast_to(np.eye(3), R.shape)], axis=1)
    m = _check_rebuild(joints, rotations, np.zeros((2, 3)), order)
    assert np.isfinite(m.motion).all()
    assert (np.abs(m.motion[:, 3:]) <= 180 + 1e-9).all()  # angles stay in range


def test_motion_from_rotations_rejects_bad_input():
    joints = _random_tree(np.random.default_rng(0), 3)
    R = np.broadcast_to(np.eye(3), (2, 4, 3, 3))
    with pytest.raises(BvhError, match="permutation of 'XYZ'"):
        motion_from_rotations(joints, R, np.zeros((2, 3)), 0.01, order="XXZ")
    with pytest.raises(BvhError, match=r"rotations must be \[frames, 4, 3, 3\]"):
        motion_from_rotations(joints, R[:, :3], np.zeros((2, 3)), 0.01)
    with pytest.raises(BvhError, match="root_positions"):
        motion_from_rotations(joints, R, np.zeros((3, 3)), 0.01)
    two_axes = (BvhJoint("r", -1, np.zeros(3), POS + ("Xrotation", "Zrotation")),)
    with pytest.raises(BvhError, match="pass order="):
        motion_from_rotations(two_axes, R[:, :1], np.zeros((2, 3)), 0.01, order=None)


# ---------------------------------------------------------------- writing details and bad input


def test_writer_precision_and_layout(tmp_path):
    m = _chain([1.23456789, 0, 0, 90, 0, 0])
    text = write_bvh(tmp_path / "a.bvh", m, precision=3).read_text()
    assert "1.235 0.000 0.000 90.000 0.000 0.000" in text
    assert "\t\tOFFSET 1.000 0.000 0.000\n" in text and "CHANNELS 0" not in text
    assert "\tEnd Site\n" in text and "JOINT" not in text
    assert text.startswith("HIERARCHY\nROOT root\n{\n\tOFFSET 0.000 0.000 0.000\n")
    assert "MOTION\nFrames: 1\nFrame Time: 0.03333333333\n" in text
    assert read_bvh(tmp_path / "a.bvh").joints[1].is_end_site


def test_motion_record_validates():
    joints = (BvhJoint("r", -1, np.zeros(3), POS),)
    with pytest.raises(BvhError, match=r"\[frames, 3 channels\]"):
        BvhMotion(joints, 0.01, np.zeros((2, 4)))
    with pytest.raises(BvhError, match="frame_time"):
        BvhMotion(joints, 0.0, np.zeros((2, 3)))
    with pytest.raises(BvhError, match="unknown channels"):
        BvhJoint("r", -1, np.zeros(3), ("Wrotation",))
    with pytest.raises(BvhError, match="parent"):
        BvhMotion((BvhJoint("a", 1, np.zeros(3)), BvhJoint("b", -1, np.zeros(3))), 0.01, np.zeros((1, 0)))
    m = BvhMotion(joints, 0.01, np.zeros((2, 3)))
    with pytest.raises(ValueError):
        m.motion[0, 0] = 1


GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
1 2 3 4 5 6 7 8 9
"""


def test_good_text_parses(tmp_path):
    (tmp_path / "g.bvh").write_text(GOOD)
    m = read_bvh(tmp_path / "g.bvh")
    assert m.joint_names == ("Hips", "Spine", "Spine_end") and m.motion.shape == (2, 9)
    assert np.array_equal(m.motion[1], np.arange(1, 10))


@pytest.mark.parametrize("bad, line, message", [
    (GOOD.replace("Zrotation Xrotation Yrotation\n    End", "Zrotation Qrotation Yrotation\n    End"), 9,
     "unknown channel 'Qrotation'"),
    (GOOD.replace("OFFSET 0 1 0\n    CHANNELS", "OFFSET 0 x 0\n    CHANNELS"), 8,
     "expected a number for OFFSET"),
    (GOOD.replace("  }\n}\nMOTION", "  }\nMOTION"), 14, "missing '}'"),
    (GOOD.replace("1 2 3 4 5 6 7 8 9", "1 2 3 4 5 6 7 8"), 20, "8 values where the hierarchy has 9"),
    (GOOD.replace("1 2 3 4 5 6 7 8 9", "1 2 3 4 5 six 7 8 9"), 20, "not a number"),
    (GOOD.replace("Frames: 2", "Frames: 3"), 20, "says 3 frames but 2 data lines"),
    (GOOD.replace("Frame Time: 0.0333333", "Frame Time: soon"), 18, "Frame Time"),
    (GOOD.replace("Frames: 2", "Frame count 2"), 17, "Frames: <count>"),
    (GOOD.replace("ROOT Hips", "BONE Hips"), 2, "expected ROOT, found 'BONE'"),
    (GOOD.replace("HIERARCHY", "HIERARCHIES"), 1, "does not start with HIERARCHY"),
    (GOOD.split("MOTION")[0], 15, "no MOTION section"),
    (GOOD.replace("JOINT Spine", "BONE Spine"), 6, "expected JOINT, End Site or '}'"),
])
def test_malformed_bvh_names_file_and_line(tmp_path, bad, line, message):
    path = tmp_path / "bad.bvh"
    path.write_text(bad)
    with pytest.raises(BvhError) as err:
        read_bvh(path)
    text = str(err.value)
    assert text.startswith(f"{path}, line {line}:"), text
    assert message in text


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(BvhError, match="cannot read the file"):
        read_bvh(tmp_path / "nope.bvh")
