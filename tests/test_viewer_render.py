"""viewer/render.py: headless pictures whose skeleton pixels are where the rig's projection puts the joints,
labels drawn at their anchors, videos with one frame per session frame, fitted bodies drawn, clear errors.

Rendering runs in this process through the process's one shared OffscreenRenderer (``shared_renderer``)."""

import cv2
import numpy as np
import pytest

from rigs.formats import load_rig
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.session_file import SessionInfo, write_session_toml
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton
from rigs.smpl_file import SmplTrack, write_smpl_track
from viewer.render import (
    label_pixels,
    orbit_camera,
    project,
    render_frame,
    render_scene_snapshot,
    render_snapshot,
    render_video,
    shared_renderer,
    view_camera,
)
from viewer.scene import BACKGROUND, FRUSTUM_COLOUR, ViewerError, load_session_scene, track_colour

SK = get_skeleton("body25")
T = 6
SIZE = (640, 360)  # half of studio-4's 1280x720


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A simulated 2-person session: poses3d from the simulation's keypoints, the studio-4 rig in session.toml."""
    folder = tmp_path_factory.mktemp("viewer") / "s"
    rig = load_rig("studio-4")
    perf = simulate_performers(2, T / 30, 30.0, seed=4)
    kp = keypoints3d(perf, SK)
    ids = np.tile(np.array([0, 3], np.int32), (T, 1))
    write_poses3d(folder / "poses3d.npz", Poses3D(kp, ids, perf.t_ns, 30.0, SK.name, SK.joints))
    write_session_toml(folder, SessionInfo("sim", 30.0, 0, simulated=True), rig)
    return folder, rig, kp, ids


def _rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img[..., ::-1].astype(int)


def _mask(img, colour, tol=12):
    return np.all(np.abs(img - np.asarray(colour) * 255) <= tol, axis=-1)


def test_snapshot_from_a_rig_camera_draws_skeletons_where_the_projection_says(session, tmp_path):
    folder, rig, kp, ids = session
    frame, cam_name = 3, "cam1"
    out = render_snapshot(folder, tmp_path / "cam1.png", frame=frame, camera=cam_name, size=SIZE)
    img = _rgb(out)
    assert img.shape == (SIZE[1], SIZE[0], 3)
    ci = rig.index(cam_name)
    sx, sy = SIZE[0] / rig[ci].width, SIZE[1] / rig[ci].height
    bones = np.array(SK.bones)
    near_all, track_pixels = [], 0
    bone_canvas = np.zeros(img.shape[:2], np.uint8)
    for p, tid in enumerate(ids[frame]):
        uv = rig.project(kp[frame, p, :, :3])[ci]
        uv = np.stack([(uv[:, 0] + 0.5) * sx - 0.5, (uv[:, 1] + 0.5) * sy - 0.5], 1)
        inside = (uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] < SIZE[0]) & (uv[:, 1] < SIZE[1])
        assert inside.sum() >= 20  # the person is in view: the check below means something
        mask = _mask(img, track_colour(int(tid)))
        track_pixels += mask.sum()
        dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
        px = np.round(uv[inside]).astype(int)
        near_all.append(dist[px[:, 1], px[:, 0]] <= 4)
        for a, b in bones:
            cv2.line(bone_canvas, tuple(np.round(uv[a]).astype(int)), tuple(np.round(uv[b]).astype(int)), 255, 1)
    near = np.concatenate(near_all)
    assert near.mean() >= 0.9, f"only {near.mean():.0%} of the projected joints have skeleton pixels within 4 px"
    # ... and the skeleton pixels are on the projected bones or in the id labels, nowhere else
    scene = load_session_scene(folder)
    view = view_camera(scene, cam_name, size=SIZE)
    labels = label_pixels(view, scene.frame(frame).labels)
    assert len(labels) == 2
    label_zone = np.zeros(img.shape[:2], bool)
    for _, (u, v) in labels:
        label_zone[max(v - 25, 0):v + 6, max(u - 45, 0):u + 45] = True
    off_bone = cv2.distanceTransform((bone_canvas == 0).astype(np.uint8), cv2.DIST_L2, 5) > 8
    stray = 0
    for tid in ids[frame]:
        stray += (_mask(img, track_colour(int(tid))) & off_bone & ~label_zone).sum()
    assert stray <= 0.01 * track_pixels, f"{stray} skeleton-coloured pixels away from every projected bone"
    # the rest is background (the floor grid and the other cameras' frustums take a little)
    assert _mask(img, BACKGROUND, tol=3).mean() > 0.75


def test_labels_are_drawn_at_their_anchors_seen_by_the_same_camera(session, tmp_path):
    folder, rig, kp, ids = session
    scene = load_session_scene(folder)
    view = view_camera(scene, "cam0", size=SIZE)
    renderer = shared_renderer(SIZE)
    renderer.show_scene(scene)
    renderer.show_frame(scene.frame(2))
    plain = cv2.cvtColor(renderer.render(view), cv2.COLOR_RGB2BGR).astype(int)
    labelled = render_frame(scene, 2, view, renderer).astype(int)
    changed = np.any(np.abs(labelled - plain) > 40, axis=-1)
    boxes = [(0, 0, 40, 330)]  # the header: frame number and time
    anchors = label_pixels(view, scene.camera_labels + scene.frame(2).labels)
    kinds = {lab.kind for lab, _ in anchors if lab.text != "cam0"}
    assert kinds == {"camera", "track"}  # other cameras' names and both ids are in view
    for lab, (u, v) in anchors:
        if lab.text == "cam0":
            continue
        box = (max(v - 30, 0), max(u - 50, 0), v + 8, u + 50)
        assert changed[box[0]:box[2], box[1]:box[3]].sum() > 20, f"label {lab.text!r} not drawn at {u, v}"
        boxes.append(box)
    assert changed[0:40, 0:330].sum() > 100  # the header
    outside = changed.copy()
    for y0, x0, y1, x1 in boxes:
        outside[y0:y1, x0:x1] = False
    assert outside.sum() == 0  # the text is only where its anchors are
    # track ids are in their track's colour, camera names in the frustums' colour
    for lab, (u, v) in anchors:
        if lab.text == "cam0":
            continue
        box = labelled[max(v - 30, 0):v + 8, max(u - 50, 0):u + 50][..., ::-1]
        colour = FRUSTUM_COLOUR if lab.kind == "camera" else track_colour(int(lab.text))
        assert _mask(box, colour, tol=20).sum() > 5


def test_default_and_orbit_views_frame_the_people(session, tmp_path):
    folder, rig, kp, ids = session
    scene = load_session_scene(folder)
    a = _rgb(render_snapshot(folder, tmp_path / "default.png", size=SIZE))
    for azimuth in (0.0, 120.0):
        cam = orbit_camera(scene, azimuth, SIZE)
        uv, front = project(cam, scene.people_points())
        assert front.all()
        assert (uv >= 0).all() and (uv[:, 0] < SIZE[0]).all() and (uv[:, 1] < SIZE[1]).all()
        centre = cam.center - scene.people_centre()
        assert np.isclose(np.degrees(np.arctan2(centre[1], centre[0])), azimuth, atol=1e-6)
    b = _rgb(render_snapshot(folder, tmp_path / "orbit.png", orbit_deg=120.0, size=SIZE))
    for img in (a, b):
        assert _mask(img, track_colour(0)).sum() > 100 and _mask(img, track_colour(3)).sum() > 100
    assert np.abs(a - b).mean() > 5


def test_video_has_one_frame_per_session_frame(session, tmp_path):
    folder, *_ = session
    seen = []
    out = render_video(folder, tmp_path / "play.mp4", orbit_deg=45.0, size=(320, 180),
                       progress=lambda d, t: seen.append((d, t)))
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    assert round(cap.get(cv2.CAP_PROP_FPS)) == 30
    frames = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (180, 320, 3)
        frames += 1
    cap.release()
    assert frames == T and seen[-1] == (T, T)


def test_fitted_bodies_are_drawn(session, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path_factory.getbasetemp() / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)
    import shutil

    from fitting.body_model import load_body_model

    folder, rig, kp, ids = session
    copy = tmp_path / "with_bodies"
    shutil.copytree(folder, copy)
    arrays = load_body_model(None, "neutral", say=None).arrays
    pelvis = kp[:, 0, SK.index("mid_hip"), :3].astype(np.float64)
    rest_pelvis = arrays.rest_joints(np.zeros(10))[0]
    poses = np.zeros((T, 72))
    poses[:, :3] = [1.2092, 1.2092, 1.2092]  # SMPL's Y-up, +Z-facing rest frame turned into the Z-up world
    write_smpl_track(copy / "smpl" / "track_0.npz", SmplTrack(
        poses=poses, trans=pelvis - rest_pelvis, betas=np.zeros(10), gender="neutral", fps=30.0,
        body_model=arrays.source, body_model_standin=True, track_id=0, first_frame=0,
        t_ns=np.arange(T) * 33_333_333, valid=np.ones(T, bool)))
    with_bodies = load_session_scene(copy)
    assert len(with_bodies.bodies) == 1
    a = _rgb(render_scene_snapshot(with_bodies, tmp_path / "bodies.png", frame=2, camera="cam2", size=SIZE))
    b = _rgb(render_snapshot(folder, tmp_path / "bones.png", frame=2, camera="cam2", size=SIZE))
    changed = np.any(np.abs(a - b) > 30, axis=-1)
    changed[:40] = False  # the header names the session, which differs
    assert changed.sum() > 800  # a body covers far more than its bones
    ys, xs = np.nonzero(changed)
    cam = view_camera(with_bodies, "cam2", size=SIZE)
    uv, _ = project(cam, pelvis[2][None])
    assert np.hypot(xs.mean() - uv[0, 0], ys.mean() - uv[0, 1]) < 40  # ... around the person it belongs to


def test_errors_name_the_problem_and_the_fix(session, tmp_path):
    folder, *_ = session
    with pytest.raises(ViewerError, match="no camera 'camX'.*cam0, cam1, cam2, cam3"):
        render_snapshot(folder, tmp_path / "x.png", camera="camX", size=SIZE)
    with pytest.raises(ViewerError, match=r"frame 99 is out of range.*0\.\.5"):
        render_snapshot(folder, tmp_path / "x.png", frame=99, size=SIZE)
    with pytest.raises(ViewerError, match="not both"):
        render_snapshot(folder, tmp_path / "x.png", camera="cam0", orbit_deg=10.0, size=SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ViewerError, match="no poses3d.npz"):
        render_snapshot(tmp_path / "empty", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
