import functools
import time

import cv2
import numpy as np
import pytest

from rigs.camera import look_at
from rigs.formats import load_rig
from rigs.sim.board import SimulatedBoard, SimulatedBoardPose, board_held, board_on_floor, board_truth
from rigs.sim.performers import performers_from_rotations, simulate_performers
from rigs.sim.render import (
    PERSON_COLORS,
    RenderParams,
    floor_line_points,
    render_frames,
    render_view,
    stamp_box,
)

QUIET = RenderParams(noise=0.0)
DISTORTED = np.array([-0.25, 0.08, 0.001, -0.001, 0.0])


@pytest.fixture(scope="module")
def rig():
    return load_rig("rigs/presets/studio-4.toml")


def t_pose_people(xy, heights=1.75, yaw=0.0):
    """Simulated people standing in a T-pose at floor positions xy [P, 2], facing yaw from +X."""
    xy = np.asarray(xy, float)
    rot = np.tile(np.eye(3), (1, len(xy), 24, 1, 1))
    c, s = np.cos(yaw), np.sin(yaw)
    rot[:, :, 0] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    return performers_from_rotations(rot, xy[None], heights, fps=30.0)


def hue(bgr) -> float:
    return float(cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2HSV)[0, 0, 0])


def hue_sat(img, px):
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    u, v = np.round(px).astype(int)
    return float(hsv[v, u, 0]), float(hsv[v, u, 1])


def hue_close(h, ref, tol=6.0):
    d = abs(h - ref)
    return min(d, 180 - d) <= tol


def test_image_matches_camera_size_and_dtype(rig):
    perf = simulate_performers(2, 1.0, 30, seed=3)
    for cam in (rig[0], rig[1].resized(640, 360)):
        img = render_view(cam, perf, 5)
        assert img.shape == (cam.height, cam.width, 3) and img.dtype == np.uint8


def test_torso_has_the_person_colour(rig):
    perf = t_pose_people([[-1.0, 1.0], [1.0, -1.0], [1.0, 1.2]])
    spine = perf.joint_names.index("spine2")
    for cam in rig:
        img = render_view(cam, perf, 0, QUIET)
        for p in range(perf.num_people):
            h, s = hue_sat(img, cam.project(perf.joints[0, p, spine]))
            assert s > 120 and hue_close(h, hue(PERSON_COLORS[p])), (cam.name, p, h, s)
    floor_h, floor_s = hue_sat(render_view(rig[0], None, 0, QUIET), (640, 600))
    assert floor_s < 40


def _mask(img, empty):
    return np.abs(img.astype(int) - empty.astype(int)).sum(-1) > 30


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_person_hides_the_one_behind(near_first):
    cam = look_at("side", (-6.0, 0.0, 1.2), (0.0, 0.0, 1.0), 640, 480, 60.0)
    near, far = [-1.5, 0.0], [1.5, 0.0]
    order = [near, far] if near_first else [far, near]
    both = render_view(cam, t_pose_people(order), 0, QUIET)
    empty = render_view(cam, None, 0, QUIET)
    m_near = _mask(render_view(cam, t_pose_people([near]), 0, QUIET), empty)
    m_far = _mask(render_view(cam, t_pose_people([far]), 0, QUIET), empty)
    overlap = m_near & m_far
    assert overlap.sum() > 0.5 * m_far.sum()  # the far person is mostly behind the near one
    hsv = cv2.cvtColor(both, cv2.COLOR_BGR2HSV).astype(float)
    h_near, h_far = (hue(PERSON_COLORS[order.index(x)]) for x in (near, far))

    def share(mask, h_ref):
        d = np.abs(hsv[..., 0][mask] - h_ref)
        return np.mean((np.minimum(d, 180 - d) <= 8) & (hsv[..., 1][mask] > 100))

    core = cv2.erode(overlap.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert share(core, h_near) > 0.97 and share(core, h_far) < 0.01
    only_far = cv2.erode((m_far & ~m_near).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert only_far.sum() > 20 and share(only_far, h_far) > 0.9


@pytest.mark.parametrize("dist", [np.zeros(5), DISTORTED], ids=["pinhole", "distorted"])
def test_floor_lines_land_where_projection_says(rig, dist):
    cam = rig[0].with_intrinsics(rig[0].K, dist)
    params = RenderParams(noise=0.0, stamp=False)
    img = render_view(cam, None, 0, params).astype(int)
    along_y, along_x = floor_line_points(params)
    pts = np.concatenate([along_y[3][::7], along_y[9][::11], along_x[4][::9], along_x[12][::5]])
    px = cam.project(pts)
    px = px[cam.in_image(px)]
    assert len(px) > 30
    dark_tile = np.mean(params.floor_colors[0])
    line = np.mean(params.line_color)
    u, v = np.round(px).astype(int).T
    assert np.all(img[v, u].mean(-1) < (dark_tile + line) / 2)
    # tile centres are not on lines
    centres = np.array([[x, y, 0.0] for x in (-0.75, 0.25, 1.25) for y in (-1.25, 0.75)])
    cu, cv_ = np.round(cam.project(centres)).astype(int).T
    assert np.all(img[cv_, cu].mean(-1) > dark_tile - 5)


def test_deterministic_with_a_seed(rig):
    perf = simulate_performers(2, 1.0, 30, seed=4)
    a = render_view(rig[2], perf, 10, RenderParams(seed=7, noise=3.0))
    b = render_view(rig[2], perf, 10, RenderParams(seed=7, noise=3.0))
    c = render_view(rig[2], perf, 10, RenderParams(seed=8, noise=3.0))
    d = render_view(rig[2], perf, 11, RenderParams(seed=7, noise=3.0))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a[200:], d[200:])
    assert 1.0 < np.abs(a.astype(int) - render_view(rig[2], perf, 10, QUIET).astype(int)).mean() < 6.0


def test_simulated_stamp(rig):
    cam = rig[0]
    stamped = render_view(cam, None, 3, QUIET)
    bare = render_view(cam, None, 3, RenderParams(noise=0.0, stamp=False))
    x0, y0, x1, y1 = stamp_box(cam)
    box = stamped[y0:y1, x0:x1].astype(int)
    assert np.any(box != bare[y0:y1, x0:x1])
    assert (box.min(-1) > 200).sum() > 50 and (box.max(-1) < 30).sum() > 200  # white text on black
    assert np.array_equal(stamped[y1 + 2:], bare[y1 + 2:])


def facing_pose(spec, cam, centre, tilt=0.3):
    """A board centred at ``centre``, facing the camera, turned by ``tilt`` rad about its vertical."""
    c, s = np.cos(tilt), np.sin(tilt)
    turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    R = cam.R.T @ turn
    w, h = spec.size
    return SimulatedBoardPose(spec, R, np.asarray(centre, float) - R @ [w / 2, h / 2, 0])


def detect(spec, img):
    corners, ids, _, _ = cv2.aruco.CharucoDetector(spec.cv_board()).detectBoard(img)
    if ids is None:
        return np.zeros(0, int), np.zeros((0, 2))
    return np.ravel(ids), np.asarray(corners).reshape(-1, 2)


def check_detection(spec, cam, pose, img, min_share=0.8):
    ids, px = board_truth(cam, pose)
    assert len(ids) == (spec.cols - 1) * (spec.rows - 1)
    found, corners = detect(spec, img)
    assert len(found) >= min_share * len(ids), (len(found), len(ids))
    truth = dict(zip(ids.tolist(), px, strict=True))
    err = np.array([np.linalg.norm(c - truth[i]) for i, c in zip(found.tolist(), corners, strict=True)])
    assert err.max() < 1.0, err.max()
    return err


@pytest.mark.parametrize("dist", [np.zeros(5), DISTORTED], ids=["pinhole", "distorted"])
@pytest.mark.parametrize("inverted", [False, True])
def test_charuco_board_is_detected_at_its_true_corners(dist, inverted):
    cam = look_at("c", (0.0, -2.2, 1.5), (0.3, 0.0, 1.2), 1280, 720, 70.0, dist=dist)
    spec = SimulatedBoard(cols=7, rows=5, square=0.06, marker=0.045, inverted=inverted)
    pose = facing_pose(spec, cam, (0.3, 0.0, 1.2))
    img = render_view(cam, None, 0, RenderParams(seed=1), board=pose)
    if inverted:
        assert len(detect(spec, img)[0]) < len(board_truth(cam, pose)[0]) // 2
        img = 255 - img
    err = check_detection(spec, cam, pose, img)
    print(f"charuco {'inverted' if inverted else 'normal'} dist={dist.any()}: max err {err.max():.3f} px, "
          f"mean {err.mean():.3f} px")


def test_board_held_by_a_performer_and_lying_on_the_floor(rig):
    perf = t_pose_people([[0.0, 0.0]], yaw=np.pi)  # facing -X, towards the camera
    cam = look_at("front", (-3.0, 0.0, 1.5), (0.0, 0.0, 1.1), 1280, 720, 60.0)
    spec = SimulatedBoard(cols=5, rows=7, square=0.07, marker=0.05)
    held = board_held(spec, perf, 0, 0)
    assert np.dot(held.face_normal, [-1, 0, 0]) > 0.99 and held.center[0] < -0.2
    check_detection(spec, cam, held, render_view(cam, perf, 0, RenderParams(), board=held))
    behind = look_at("behind", (3.0, 0.0, 1.5), (0.0, 0.0, 1.1), 1280, 720, 60.0)
    assert len(board_truth(behind, held)[0]) == 0
    # lying on the floor of the demo studio, seen by all four cameras from about 4.9 m: squares of
    # 0.2 m come out at about 20-30 px, near what OpenCV's detector needs
    floor = board_on_floor(SimulatedBoard(6, 4, 0.2, 0.15), (0.0, 0.0), 0.3)
    frames = list(render_frames(rig, None, [0], RenderParams(), board=floor))
    for cam, img in zip(rig, frames[0].images, strict=True):
        check_detection(floor.board, cam, floor, img, min_share=0.8)


def test_render_frames_with_a_held_board(rig):
    perf = simulate_performers(2, 1.0, 30, seed=5)
    spec = SimulatedBoard()
    out = list(render_frames(rig.subset(["cam0", "cam1"]), perf, [0, 4], RenderParams(),
                             board=functools.partial(board_held, spec, perf, 1)))
    assert [f.frame for f in out] == [0, 4] and out[1].t_ns == perf.t_ns[4]
    assert out[0].names == ("cam0", "cam1") and len(out[0].images) == 2
    assert not np.allclose(out[0].board.t, out[1].board.t)


def test_render_speed(rig):
    perf = simulate_performers(2, 2.0, 30, seed=6)
    cam = rig[0]
    render_view(cam, perf, 0)  # builds the cached studio
    times = []
    for f in range(30):
        t0 = time.perf_counter()
        render_view(cam, perf, f)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * np.median(times)
    print(f"render_view 1280x720, 2 people: median {ms:.2f} ms/frame, max {1e3 * max(times):.2f} ms")
    assert ms < 200
