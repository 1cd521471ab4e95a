"""viewer/scene.py: the floor grid, axes, camera frustums, skeletons coloured by track id, fitted bodies on the
right frames, and loading a session folder; all without Open3D."""

import numpy as np
import pytest

from rigs.formats import load_rig
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.session_file import SessionInfo, write_session_toml
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from rigs.smpl_file import SmplTrack, write_smpl_track
from viewer import colours
from viewer.scene import (
    AXIS_COLOURS,
    LABEL_LIFT,
    ViewerError,
    bones_of,
    camera_frustums,
    floor_grid,
    grid_extent,
    load_session_scene,
    posed_vertices,
    skeleton_lines,
    smpl_frame_index,
    track_colour,
    track_colours,
    world_axes,
)

SK = get_skeleton("body25")


@pytest.fixture(autouse=True)
def standin_here(tmp_path_factory, monkeypatch):
    """The stand-in body model is built into a test folder (once per test session); no SMPL files."""
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path_factory.getbasetemp() / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)


def _session(folder, T=12, people=2, rig=True):
    perf = simulate_performers(people, T / 30, 30.0, seed=3)
    kp = keypoints3d(perf, SK)
    ids = np.tile(np.arange(people, dtype=np.int32) + 4, (T, 1))  # track ids 4, 5, ...
    write_poses3d(folder / "poses3d.npz", Poses3D(kp, ids, perf.t_ns, 30.0, SK.name, SK.joints))
    if rig:
        write_session_toml(folder, SessionInfo("t", 30.0, 0, simulated=True), load_rig("studio-4"))
    return folder, kp, ids


def test_floor_grid_has_one_metre_squares_on_the_floor_covering_the_cameras():
    g = floor_grid((-2, 2, -1, 1))
    ends = g.ends()
    assert np.all(ends[..., 2] == 0)
    along_y = ends[ends[:, 0, 0] == ends[:, 1, 0]]  # lines of constant x
    along_x = ends[ends[:, 0, 1] == ends[:, 1, 1]]
    assert sorted(along_y[:, 0, 0]) == [-2, -1, 0, 1, 2] and sorted(along_x[:, 0, 1]) == [-1, 0, 1]
    assert np.allclose(np.abs(along_y[:, 1, 1] - along_y[:, 0, 1]), 2.0)  # each spans the whole extent
    rig = load_rig("studio-4")
    x0, x1, y0, y1 = grid_extent(rig)
    c = rig.centers
    assert x0 <= c[:, 0].min() and x1 >= c[:, 0].max() and y0 <= c[:, 1].min() and y1 >= c[:, 1].max()
    assert all(float(v).is_integer() for v in (x0, x1, y0, y1))
    # people outside the cameras' footprint widen it
    assert grid_extent(rig, np.array([[9.2, 0.0, 1.0]]))[1] == 10


def test_world_axes_are_x_red_y_green_z_blue():
    axes = world_axes(1.0)
    ends = axes.ends()
    directions = ends[:, 1] - ends[:, 0]
    assert np.allclose(directions, np.eye(3))
    assert np.allclose(axes.colours, AXIS_COLOURS)
    assert axes.colours[0].argmax() == 0 and axes.colours[1].argmax() == 1 and axes.colours[2].argmax() == 2


def test_frustums_open_from_each_camera_through_its_image_corners():
    rig = load_rig("studio-4")
    frustums, labels = camera_frustums(rig, depth=0.3)
    assert [lab.text for lab in labels] == list(rig.names)
    for cam, lines, lab in zip(rig, frustums, labels, strict=True):
        assert np.allclose(lab.anchor, cam.center)
        apex, corners = lines.points[0], lines.points[1:5]
        assert np.allclose(apex, cam.center)
        px = cam.project(corners)
        expected = [[-0.5, -0.5], [cam.width - 0.5, -0.5], [cam.width - 0.5, cam.height - 0.5],
                    [-0.5, cam.height - 0.5]]
        assert np.allclose(px, expected, atol=1e-6)
        depth = (corners @ cam.R.T + cam.t)[:, 2]
        assert np.allclose(depth, 0.3)
        # the "up" triangle sits above the image's top edge
        up_tip = lines.points[6]
        assert cam.project(up_tip[None])[0, 1] < -0.5
    assert camera_frustums(None) == ((), ())


def test_skeletons_are_coloured_by_track_id_with_the_id_above_the_head():
    perf = simulate_performers(3, 2 / 30, 30.0, seed=1)
    kp = keypoints3d(perf, SK)
    bones = bones_of(SK.name, SK.joints)
    poses = kp[0].copy()
    poses[1, SK.index("left_wrist"), 3] = 0  # a joint not seen: its bones are left out
    ids = np.array([7, -1, 2], np.int32)  # slot 1 is empty
    lines, labels = skeleton_lines(poses, ids, bones)
    assert lines.num_segments == 2 * len(bones)
    colour_7, colour_2 = track_colour(7), track_colour(2)
    assert colour_7 != colour_2
    got = {tuple(c) for c in lines.colours}
    assert got == {colour_7, colour_2}
    # every segment joins two joints of the person whose colour it has
    ends = lines.ends()
    for person, tid in ((0, 7), (2, 2)):
        mine = np.all(np.isclose(lines.colours, track_colour(tid)), axis=1)
        assert np.allclose(np.sort(ends[mine].reshape(-1, 3), 0),
                           np.sort(poses[person, bones.ravel(), :3], 0))
    assert [lab.text for lab in labels] == ["7", "2"]
    top = poses[0, :, 2].max()
    assert np.isclose(labels[0].anchor[2], top + LABEL_LIFT)
    assert np.linalg.norm(labels[0].anchor[:2] - poses[0, :, :2].mean(0)) < 0.3
    # the palette is the project's (viewer/colours.py), fixed by id: the same id, the same colour, every frame
    assert np.allclose(np.array(track_colour(12)) * 255, colours.track_colour(12))
    assert np.allclose(track_colours([2, 12]), [track_colour(2), track_colour(12)])
    one_missing = poses.copy()
    one_missing[2, :, :3] = np.nan
    lines2, labels2 = skeleton_lines(one_missing, ids, bones)
    assert lines2.num_segments == len(bones) and [lab.text for lab in labels2] == ["7"]


def test_bones_follow_the_joint_names_of_the_file():
    names = tuple(reversed(SK.joints))
    bones = bones_of(SK.name, names)
    nose, neck = names.index("nose"), names.index("neck")
    assert any({a, b} == {nose, neck} for a, b in bones)
    assert bones_of("no-such-skeleton", names).shape == (0, 2)


def test_smpl_frame_index_maps_session_frames_to_track_rows():
    assert smpl_frame_index(5, 10, 4) is None
    assert smpl_frame_index(5, 10, 5) == 0
    assert smpl_frame_index(5, 10, 14) == 9
    assert smpl_frame_index(5, 10, 15) is None


def _standin_model():
    from fitting.body_model import load_body_model

    return load_body_model(None, "neutral", say=None)  # no MOCAP_BODY_MODELS: the stand-in


def test_fitted_bodies_are_posed_on_their_session_frames(tmp_path):
    import torch

    folder, kp, ids = _session(tmp_path / "s", T=20)
    model = _standin_model()
    rng = np.random.default_rng(0)
    n = 10
    poses = rng.normal(0, 0.15, (n, 72))
    trans = np.stack([np.linspace(0, 0.9, n), np.zeros(n), np.full(n, 0.9)], 1)
    betas = rng.normal(0, 0.5, 10)
    track = SmplTrack(poses=poses, trans=trans, betas=betas, gender="neutral", fps=30.0,
                      body_model=model.arrays.source, body_model_standin=True, track_id=5, first_frame=6,
                      t_ns=np.arange(6, 16) * 33_333_333, valid=np.ones(n, bool))
    write_smpl_track(folder / "smpl" / "track_5.npz", track)
    (folder / "smpl" / "track_9.npz").write_bytes(b"not an npz")
    notes = []
    scene = load_session_scene(folder, say=notes.append)
    assert [b.track_id for b in scene.bodies] == [5]
    assert any("track_9" in n for n in notes)  # the broken file is named, the rest still loads
    assert scene.frame(5).meshes == () and scene.frame(16).meshes == ()
    for frame in (6, 11, 15):
        (mesh,) = scene.frame(frame).meshes
        k = frame - 6
        with torch.no_grad():
            ref = model.vertices(torch.as_tensor(betas[None]), torch.as_tensor(poses[k:k + 1]),
                                 torch.as_tensor(trans[k:k + 1]))[0].numpy()
        assert np.abs(mesh.vertices - ref).max() < 1e-4  # numpy skinning agrees with smplx
        assert mesh.faces.shape[1] == 3 and mesh.faces.max() < len(mesh.vertices)
        assert np.allclose(mesh.colour, 0.75 * np.array(track_colour(5)) + 0.25)
    # posed_vertices batches frames
    both = posed_vertices(model.arrays, betas, poses[:2], trans[:2])
    assert both.shape == (2, model.arrays.num_vertices, 3)
    assert np.allclose(both[1], scene.frame(7).meshes[0].vertices)
    assert load_session_scene(folder, bodies=False).bodies == ()


def test_a_session_loads_with_or_without_its_rig_and_the_busiest_frame_is_the_default(tmp_path):
    folder, kp, ids = _session(tmp_path / "s", T=10, people=3)
    data = Poses3D(kp, np.where(np.arange(10)[:, None] == 7, ids, np.array([4, -1, -1], np.int32)),
                   np.arange(10) * 33_333_333, 30.0, SK.name, SK.joints)
    write_poses3d(folder / "poses3d.npz", data)
    scene = load_session_scene(folder)
    assert scene.rig is not None and len(scene.frustums) == 4
    assert scene.busiest_frame() == 7 and scene.frame(7).num_people == 3 and scene.frame(0).num_people == 1
    assert np.isclose(scene.time_s(3), 0.1)
    with pytest.raises(ViewerError, match=r"frame 10 is out of range.*0\.\.9"):
        scene.frame(10)
    (folder / "session.toml").unlink()
    assert load_session_scene(folder).rig is None


def test_a_folder_without_poses_says_what_to_run(tmp_path):
    with pytest.raises(ViewerError, match="no such session folder"):
        load_session_scene(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ViewerError, match="no poses3d.npz.*mocap reconstruct"):
        load_session_scene(tmp_path / "empty")
