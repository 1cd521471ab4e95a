"""Tests for fitting/export_bvh.py: the exported BVH reproduces the fitted model's joints (our FK, bvhio's FK,
the body model's own forward pass), with the hierarchy, channels and timing BVH readers such as Blender's need."""

import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from fitting.export_bvh import (
    END_SITE_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    continuous_euler,
    default_end_sites,
    smpl_to_bvh,
    up_rotation,
)
from rigs.bvh import _axis_rotations, forward_kinematics, local_rotations, read_bvh, write_bvh
from rigs.sim.body import rest_points
from rigs.smpl_file import SmplTrack
from tests.smpl_reference import model_joints

A = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # SMPL canonical -> sim body world
SCALE = {"m": 1.0, "cm": 100.0}
TOL_M = 1e-3  # the export must reproduce the model's joints within 1 mm


def sim_rest_joints(height: float = 1.75) -> np.ndarray:
    """The simulated body's rest joints in SMPL's canonical frame (x left, y up, z forward), pelvis off-origin
    like a real SMPL template's."""
    return (A.T @ rest_points(height)[:24].T).T + np.array([0.003, -0.35, 0.02])


def random_track(T: int = 40, seed: int = 0, fps: float = 30.0, spread: float = 0.6) -> SmplTrack:
    """A standing body (global orientation A brings SMPL's Y up to the world's Z up) in random poses."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, spread, (T, 72))
    tilt = Rotation.from_rotvec(rng.normal(0, 0.4, (T, 3)))
    poses[:, :3] = (tilt * Rotation.from_matrix(np.tile(A, (T, 1, 1)))).as_rotvec()
    trans = rng.normal(0, 1.5, (T, 3))
    return SmplTrack(poses=poses, trans=trans, betas=np.zeros(10), gender="neutral", fps=fps, body_model="test",
                     body_model_standin=True, track_id=0, first_frame=4,
                     t_ns=np.round(np.arange(T) * 1e9 / fps).astype(np.int64), valid=np.ones(T, bool))


def bvh_joints(motion) -> np.ndarray:
    """[F, 24, 3] FK positions of the SMPL joints of a BVH, by name."""
    names = list(motion.joint_names)
    return forward_kinematics(motion)[:, [names.index(n) for n in SMPL_JOINT_NAMES]]


@pytest.mark.parametrize("up", ["y", "z"])
@pytest.mark.parametrize("units", ["m", "cm"])
def test_written_bvh_reproduces_the_model_joints(tmp_path, up, units):
    rest, track = sim_rest_joints(), random_track()
    path = write_bvh(tmp_path / "t.bvh", smpl_to_bvh(track, rest, up=up, units=units))
    got = bvh_joints(read_bvh(path)) / SCALE[units]
    want = (up_rotation(up) @ model_joints(rest, track.poses, track.trans)[..., None])[..., 0]
    err = np.abs(got - want).max()
    assert err < TOL_M, f"{err * 1000:.4f} mm"
    assert err < 1e-5  # in fact the file's 6 decimals are all that is lost


def test_y_up_is_the_world_turned_z_to_y_and_the_rest_pose_stands_upright():
    U = up_rotation("y")
    assert np.allclose(U @ [0, 0, 1], [0, 1, 0]) and np.allclose(U @ [1, 0, 0], [1, 0, 0])
    assert np.isclose(np.linalg.det(U), 1.0)
    rest = sim_rest_joints()
    still = random_track(T=2, spread=0.0)  # rest pose, standing upright in the world (orientation A, no tilt)
    still = SmplTrack(**{**still.__dict__, "poses": np.concatenate(
        [np.tile(Rotation.from_matrix(A).as_rotvec(), (2, 1)), np.zeros((2, 69))], axis=1)})
    for up, axis in (("y", 1), ("z", 2)):
        motion = smpl_to_bvh(still, rest, up=up)
        p = bvh_joints(motion)[0]
        names = list(SMPL_JOINT_NAMES)
        head, pelvis, foot = p[names.index("head")], p[names.index("pelvis")], p[names.index("left_foot")]
        assert head[axis] - pelvis[axis] > 0.4 and pelvis[axis] - foot[axis] > 0.7  # upright in the file's axes
        # the skeleton's OFFSETs (the rest pose tools draw) are upright too: spine up, legs down
        off = {j.name: j.offset for j in motion.joints}
        assert off["spine1"][axis] > 0.05 and off["left_knee"][axis] < -0.3 and off["head_end"][axis] > 0.1


def test_hierarchy_names_channels_and_timing(tmp_path):
    track = random_track(T=25, fps=25.0)
    path = write_bvh(tmp_path / "t.bvh", smpl_to_bvh(track, sim_rest_joints()))
    motion = read_bvh(path)
    joints = [j for j in motion.joints if not j.is_end_site]
    assert sorted(j.name for j in joints) == sorted(SMPL_JOINT_NAMES)
    by_name = {j.name: j for j in motion.joints}
    for name, parent in zip(SMPL_JOINT_NAMES, SMPL_PARENTS, strict=True):
        p = motion.joints[by_name[name].parent].name if by_name[name].parent >= 0 else None
        assert p == (SMPL_JOINT_NAMES[parent] if parent >= 0 else None), name
    sites = [j for j in motion.joints if j.is_end_site]
    assert sorted(motion.joints[j.parent].name for j in sites) == sorted(END_SITE_JOINTS)
    assert motion.joints[0].name == "pelvis"
    assert motion.joints[0].channels == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    assert all(j.channels == ("Zrotation", "Xrotation", "Yrotation") for j in joints[1:])
    assert motion.num_frames == 25 and motion.frame_time == pytest.approx(1 / 25, abs=1e-10)
    # written depth first: reading it back keeps the order the exporter made
    assert motion.joint_names == smpl_to_bvh(track, sim_rest_joints()).joint_names


def test_file_follows_the_conventions_blenders_importer_parses(tmp_path):
    """Blender's import_bvh reads HIERARCHY, ROOT/JOINT NAME, '{', OFFSET x y z, CHANNELS n ..., 'End Site',
    '}', MOTION, 'Frames: n', 'Frame Time: t', then n lines of numbers; names must be single words."""
    path = write_bvh(tmp_path / "t.bvh", smpl_to_bvh(random_track(T=7), sim_rest_joints(), units="cm"))
    lines = [line.strip() for line in path.read_text().splitlines()]
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT pelvis" and lines.count("MOTION") == 1
    m = lines.index("MOTION")
    assert re.fullmatch(r"Frames: 7", lines[m + 1]) and re.fullmatch(r"Frame Time: 0\.0333333333\d*", lines[m + 2])
    data = lines[m + 3:]
    assert len(data) == 7 and all(len(row.split()) == 6 + 3 * 23 for row in data)
    head = lines[:m]
    assert sum(line.startswith("JOINT ") for line in head) == 23 and head.count("End Site") == 5
    assert head.count("{") == head.count("}") == 24 + 5
    for k, line in enumerate(head):
        if line.startswith(("ROOT ", "JOINT ")):
            assert len(line.split()) == 2 and head[k + 1] == "{" and head[k + 2].startswith("OFFSET ")
            assert head[k + 3].startswith("CHANNELS ")
            orders = re.findall(r"([XYZ])rotation", head[k + 3])
            assert orders == ["Z", "X", "Y"]  # one Euler order throughout
        if line == "End Site":
            assert head[k + 1] == "{" and head[k + 2].startswith("OFFSET ") and head[k + 3] == "}"


def test_resampling_slerps_between_frames(tmp_path):
    rest, track = sim_rest_joints(), random_track(T=11, spread=0.3)
    motion = smpl_to_bvh(track, rest, fps=60.0)
    assert motion.num_frames == 21 and motion.frame_time == pytest.approx(1 / 60)
    got = bvh_joints(motion)
    U = up_rotation("y")
    want_even = (U @ model_joints(rest, track.poses, track.trans)[..., None])[..., 0]
    assert np.abs(got[::2] - want_even).max() < 1e-9
    # odd frames: each joint's rotation slerped halfway, the translation halfway
    t = np.arange(11) / 30
    mid = (t[:-1] + t[1:]) / 2
    rots = Rotation.from_rotvec(track.poses.reshape(11, 24, 3).transpose(1, 0, 2).reshape(-1, 3))
    poses_mid = np.stack([Slerp(t, rots[j * 11:(j + 1) * 11])(mid).as_rotvec() for j in range(24)], axis=1)
    trans_mid = (track.trans[:-1] + track.trans[1:]) / 2
    want_odd = (U @ model_joints(rest, poses_mid.reshape(10, 72), trans_mid)[..., None])[..., 0]
    assert np.abs(got[1::2] - want_odd).max() < 1e-6  # t_ns are whole nanoseconds: weights 0.5 to 1e-8


def test_euler_curves_stay_continuous_when_a_knee_bends_past_a_right_angle():
    T = 60
    rest = sim_rest_joints()
    poses = np.zeros((T, 72))
    poses[:, :3] = Rotation.from_matrix(A).as_rotvec()
    knee = SMPL_JOINT_NAMES.index("left_knee")
    spine = SMPL_JOINT_NAMES.index("spine1")
    poses[:, 3 * knee] = np.radians(np.linspace(0, 150, T))  # flexion about SMPL's x axis, past 90 degrees
    poses[:, 3 * spine + 1] = np.radians(np.linspace(0, 340, T))  # a twist that passes 180 degrees
    track = random_track(T=T)
    track = SmplTrack(**{**track.__dict__, "poses": poses, "trans": np.zeros((T, 3))})
    motion = smpl_to_bvh(track, rest)
    steps = np.abs(np.diff(motion.motion[:, 3:], axis=0)).max()
    assert steps < 10.0, f"a channel jumps {steps:.1f} degrees between frames"
    assert np.abs(bvh_joints(motion) - (up_rotation("y") @ model_joints(rest, poses, track.trans)[..., None])[..., 0]
                  ).max() < 1e-9
    # the plain decomposition (middle angle within +-90, others within +-180) would have jumped here
    starts = dict(zip(motion.joint_names, motion.channel_starts, strict=True))
    raw_steps = max(np.abs(np.diff(((motion.motion[:, starts[n]:starts[n] + 3] + 180) % 360) - 180, axis=0)).max()
                    for n in ("left_knee", "spine1"))
    assert raw_steps > 90


def test_continuous_euler_keeps_every_rotation():
    rng = np.random.default_rng(3)
    angles = rng.uniform(-180, 180, (50, 4, 3))
    angles[:, :, 1] = rng.uniform(-90, 90, (50, 4))
    out = continuous_euler(angles)

    def mats(a):
        return _axis_rotations("Z", a[..., 0]) @ _axis_rotations("X", a[..., 1]) @ _axis_rotations("Y", a[..., 2])

    assert np.abs(mats(out) - mats(angles)).max() < 1e-12
    assert np.abs(np.diff(out, axis=0)).max() <= 360


def test_local_rotations_match_the_poses_in_the_files_rest_frame(tmp_path):
    """Y up: the rest frame is SMPL's own, so every joint's local rotation is exactly Rodrigues(poses)."""
    track = random_track(T=5)
    motion = read_bvh(write_bvh(tmp_path / "t.bvh", smpl_to_bvh(track, sim_rest_joints(), up="y"), precision=9))
    R = local_rotations(motion)
    names = list(motion.joint_names)
    want = Rotation.from_rotvec(track.poses.reshape(-1, 3)).as_matrix().reshape(5, 24, 3, 3)
    for j in range(1, 24):
        assert np.abs(R[:, names.index(SMPL_JOINT_NAMES[j])] - want[:, j]).max() < 1e-7


def test_end_sites_and_bad_input():
    rest = sim_rest_joints()
    sites = default_end_sites(rest)
    names = list(SMPL_JOINT_NAMES)
    assert sites["head"][1] - rest[names.index("head")][1] > 0.1  # above the head
    assert sites["left_foot"][2] > rest[names.index("left_foot")][2]  # in front of the foot
    custom = smpl_to_bvh(random_track(T=2), rest, end_sites={"head": rest[names.index("head")] + [0, 0.2, 0]})
    assert np.allclose({j.name: j.offset for j in custom.joints}["head_end"], [0, 0.2, 0])
    with pytest.raises(ValueError, match="rest_joints"):
        smpl_to_bvh(random_track(T=2), rest[:23])
    with pytest.raises(ValueError, match="up axis"):
        smpl_to_bvh(random_track(T=2), rest, up="x")
    with pytest.raises(ValueError, match="units"):
        smpl_to_bvh(random_track(T=2), rest, units="ft")


def test_bvhio_reads_the_same_skeleton_motion_and_positions(tmp_path):
    """A second, independent reader (bvhio, from PyPI): names, hierarchy, frame count and time, and its own
    forward kinematics within 1 mm on every frame."""
    bvhio = pytest.importorskip("bvhio", reason="bvhio is in the test extra: pip install -e .[test]")
    rest, track = sim_rest_joints(), random_track(T=12, fps=24.0)
    for up, units in (("y", "cm"), ("z", "m")):
        path = write_bvh(tmp_path / f"t_{up}_{units}.bvh", smpl_to_bvh(track, rest, up=up, units=units))
        ours = read_bvh(path)
        container = bvhio.readAsBvh(str(path))
        assert container.FrameCount == 12 and container.FrameTime == pytest.approx(1 / 24)
        root = bvhio.readAsHierarchy(str(path))
        layout = [joint for joint, _, _ in root.layout()]
        assert [j.Name for j in layout] == [j.name for j in ours.joints if not j.is_end_site]
        for joint in layout:
            parent = joint.Parent.Name if joint.Parent is not None else None
            want = {j.name: j for j in ours.joints}[joint.Name]
            assert parent == (ours.joints[want.parent].name if want.parent >= 0 else None)
        want = (up_rotation(up) @ model_joints(rest, track.poses, track.trans)[..., None])[..., 0]
        names = list(SMPL_JOINT_NAMES)
        worst = 0.0
        for f in range(12):
            root.loadPose(f)
            got = np.array([list(j.PositionWorld) for j in layout]) / SCALE[units]
            ref = want[f, [names.index(j.Name) for j in layout]]
            worst = max(worst, np.abs(got - ref).max())
        assert worst < TOL_M, f"bvhio's FK is {worst * 1000:.3f} mm off"


def toy_smpl_model(folder, betas_scale: float = 0.01):
    """A small model file in the SMPL layout (not SMPL, not the stand-in): 24 vertices at the simulated
    body's rest joints (J_regressor picks them) plus three, random shape directions, no pose correctives."""
    rng = np.random.default_rng(5)
    rest = sim_rest_joints(1.7)
    v = np.concatenate([rest, rest[[15, 10, 11]] + [[0, 0.2, 0], [0, -0.05, 0.08], [0, -0.05, 0.08]]])
    V = len(v)
    J_regressor = np.zeros((24, V))
    J_regressor[:, :24] = np.eye(24)
    weights = np.zeros((V, 24))
    weights[np.arange(24), np.arange(24)] = 1.0
    weights[[24, 25, 26], [15, 10, 11]] = 1.0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "SMPL_NEUTRAL.npz"
    np.savez(path, v_template=v, shapedirs=rng.normal(0, betas_scale, (V, 3, 10)), posedirs=np.zeros((V, 3, 207)),
             J_regressor=J_regressor, weights=weights, kintree_table=np.stack([SMPL_PARENTS, np.arange(24)]),
             f=np.array([[0, 1, 2], [24, 25, 26]], np.int64))
    return path


def _check_against_body_model(model, tmp_path, up: str, units: str) -> None:
    """The written BVH's joints against the model's own forward passes: BodyModel.points and smplx.SMPL."""
    import torch

    from fitting.export_bvh import end_sites_from_model

    arrays = model.arrays
    track = random_track(T=15, seed=7)
    betas = np.random.default_rng(2).normal(0, 1, arrays.num_betas)
    track = SmplTrack(**{**track.__dict__, "betas": betas})
    rest = arrays.rest_joints(betas)
    motion = smpl_to_bvh(track, rest, up=up, units=units, end_sites=end_sites_from_model(arrays, betas, rest))
    got = bvh_joints(read_bvh(write_bvh(tmp_path / f"m_{up}{units}.bvh", motion))) / SCALE[units]
    U = up_rotation(up)
    b = torch.as_tensor(betas[None])
    pose = torch.as_tensor(track.poses.reshape(-1, 24, 3))
    transl = torch.as_tensor(track.trans)
    joints, _ = model.points(b, pose, transl)
    want = (U @ joints.double().numpy()[..., None])[..., 0]
    assert np.abs(got - want).max() < TOL_M
    smpl = model.smplx_model()
    rot = torch.as_tensor(Rotation.from_rotvec(track.poses.reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3),
                          dtype=model.dtype)
    with torch.no_grad():
        out = smpl(betas=b.to(model.dtype).expand(len(rot), -1), global_orient=rot[:, :1], body_pose=rot[:, 1:],
                   transl=transl.to(model.dtype), pose2rot=False)
    ref = (U @ out.joints[:, :24].double().numpy()[..., None])[..., 0]
    assert np.abs(got - ref).max() < TOL_M


@pytest.mark.parametrize(("up", "units"), [("y", "m"), ("z", "cm")])
def test_bvh_matches_the_body_models_forward_pass(tmp_path, up, units):
    import torch

    from fitting.body_model import BodyModel, arrays_from_file

    arrays = arrays_from_file(toy_smpl_model(tmp_path / "models"), "neutral")
    _check_against_body_model(BodyModel(arrays, dtype=torch.float64), tmp_path, up, units)


def test_bvh_matches_the_standin_models_forward_pass(tmp_path, monkeypatch):
    import torch

    from fitting.body_model import BodyModel, load_body_model

    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)
    arrays = load_body_model(None, "neutral", say=None).arrays
    assert arrays.is_standin
    _check_against_body_model(BodyModel(arrays, dtype=torch.float64), tmp_path, "y", "m")


def test_end_sites_come_from_the_models_landmarks_on_the_fitted_shape():
    from types import SimpleNamespace

    from fitting.export_bvh import end_sites_from_model

    rest = sim_rest_joints()
    names = list(SMPL_JOINT_NAMES)
    head, lfoot, rfoot = rest[names.index("head")], rest[names.index("left_foot")], rest[names.index("right_foot")]
    v = np.stack([head + [0, 0.21, 0], lfoot + [0.01, -0.03, 0.07], lfoot + [0.03, -0.03, 0.05],
                  rfoot + [0, 0, 0.005], rfoot + [0, 0, 0.005]])
    shapedirs = np.zeros((5, 3, 2))
    shapedirs[0, 1, 0] = 0.01  # beta 0 raises the head top by 1 cm per unit
    arrays = SimpleNamespace(v_template=v, shapedirs=shapedirs, landmark_vertex_ids=np.arange(5),
                             landmark_names=("head_top", "left_big_toe", "left_small_toe", "right_big_toe",
                                             "right_small_toe"))
    sites = end_sites_from_model(arrays, np.array([2.0, 0.0, 5.0]), rest)  # more betas than the model: cut
    assert np.allclose(sites["head"], head + [0, 0.23, 0])
    assert np.allclose(sites["left_foot"], lfoot + [0.02, -0.03, 0.06])
    assert np.allclose(sites["right_foot"], default_end_sites(rest)["right_foot"])  # 5 mm: too short a bone
    assert np.allclose(sites["left_hand"], default_end_sites(rest)["left_hand"])
