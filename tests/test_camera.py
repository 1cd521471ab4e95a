"""Tests for rigs/camera.py and rigs/projection.py: validation, projection and undistortion against OpenCV,
numpy and torch alike, camera operations, and the shipped preset rigs."""

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from rigs.camera import Camera, Rig, RigError, look_at
from rigs.formats import load_rig

CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)


def camera(name="cam0", **changes) -> Camera:
    fields = dict(name=name, width=1280, height=720, K=np.array([[900.0, 0, 640], [0, 905, 360], [0, 0, 1]]),
                  dist=np.zeros(5), R=np.eye(3), t=np.zeros(3))
    fields.update(changes)
    return Camera(**fields)


def random_camera(rng: np.random.Generator, n_dist: int, model: str = "pinhole",
                  skew: bool = False) -> Camera:
    """A random but physically plausible camera: moderate distortion, principal point near the centre.

    No skew by default: cv2.projectPoints ignores K[0, 1] (cv2.fisheye takes it as a separate alpha).
    """
    w, h = 1920, 1080
    f = rng.uniform(800, 2000)
    K = np.array([[f, rng.uniform(-2, 2) if skew else 0.0, w / 2 + rng.normal(0, 30)],
                  [0, f * rng.uniform(0.95, 1.05), h / 2 + rng.normal(0, 30)], [0, 0, 1]])
    if model == "fisheye":
        dist = rng.uniform(-0.05, 0.05, 4)
    else:
        scale = np.array([0.2, 0.05, 0.002, 0.002, 0.01, 0.1, 0.02, 0.005])[:n_dist]
        dist = rng.uniform(-1, 1, n_dist) * scale
    R = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
    return Camera("c", w, h, K, dist, R, rng.normal(0, 2, 3), model=model)


def points_in_view(cam: Camera, rng: np.random.Generator, n: int = 200) -> np.ndarray:
    """World points inside the camera's view (normalised coordinates within +-0.5, depth 1-10 m)."""
    xy = rng.uniform(-0.5, 0.5, (n, 2))
    z = rng.uniform(1, 10, (n, 1))
    p_cam = np.hstack([xy * z, z])
    return (p_cam - cam.t) @ cam.R  # R^T (p - t)


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"width": 0}, "width"), ({"height": -720}, "height"), ({"width": 1280.5}, "width"),
    ({"K": np.eye(2)}, "K"), ({"K": np.diag([-900.0, 900, 1])}, "K"),
    ({"K": [[900, 0, 640], [1, 900, 360], [0, 0, 1]]}, "K"),
    ({"K": [[900, 0, 640], [0, 900, 360], [0, 0, 2]]}, "K"),
    ({"K": [[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]]}, "K"),
    ({"dist": np.zeros(3)}, "dist"), ({"dist": np.zeros(5), "model": "fisheye"}, "dist"),
    ({"R": np.eye(3) * 2}, "R"), ({"R": np.diag([1.0, 1, -1])}, "R"), ({"R": np.eye(4)}, "R"),
    ({"t": np.zeros(2)}, "t"), ({"t": ["a", "b", "c"]}, "t"), ({"model": "orthographic"}, "model"),
    ({"fps": -30.0}, "fps"), ({"fps": float("inf")}, "fps"),
])
def test_camera_validation_names_the_camera_and_the_field(changes, field):
    with pytest.raises(RigError) as err:
        camera("left_cam", **changes)
    assert str(err.value).startswith(f"camera 'left_cam': {field}:"), str(err.value)


def test_camera_names_must_be_non_empty_strings():
    for bad in ("", "   ", None, 3):
        with pytest.raises(RigError, match="camera name: expected a non-empty string"):
            camera(bad)


def test_camera_normalises_and_freezes_its_fields():
    cam = camera(width=1280.0, fps=30, dist=[[0.1], [0.0], [0.0], [0.0]])
    assert cam.width == 1280 and isinstance(cam.width, int) and cam.fps == 30.0
    assert cam.dist.shape == (4,)
    with pytest.raises(ValueError):
        cam.K[0, 0] = 1.0
    with pytest.raises(AttributeError):
        cam.width = 10


def test_equality_is_exact_and_isclose_has_a_tolerance():
    a = camera()
    b = a.replace(t=np.array([0.0, 0.0, 1e-12]))
    assert a == camera() and a != b
    assert a.isclose(b, atol=1e-9) and not a.isclose(b, atol=0)
    assert not a.isclose(a.renamed("other")) and not a.isclose(a.replace(dist=np.zeros(4)))


@pytest.mark.parametrize("kwargs, message", [
    ({"cameras": ()}, "has no cameras"),
    ({"cameras": (camera("a"), camera("b"), camera("a"))}, "camera names must be unique, repeated: a"),
    ({"cameras": (camera(),), "units": "mm"}, "units: rigs are in metres"),
    ({"cameras": (camera(),), "up": "north"}, "up: expected one of x, y, z"),
    ({"cameras": (camera(),), "clock": "gps"}, "clock: expected one of monotonic, ptp, ntp"),
    ({"cameras": ("cam0",)}, "cameras must be Camera records"),
])
def test_rig_validation(kwargs, message):
    with pytest.raises(RigError, match=message):
        Rig(name="lab", **kwargs)


def test_rig_lookup_and_stacks():
    rig = Rig((camera("a"), camera("b", t=np.array([1.0, 0, 0]))), name="lab")
    assert rig["b"] is rig[1] and rig.index("b") == 1 and rig.names == ("a", "b")
    with pytest.raises(KeyError, match="rig 'lab' has no camera 'c'; it has a, b"):
        rig["c"]
    assert rig.projection_matrices.shape == (2, 3, 4)
    np.testing.assert_allclose(rig.centers[1], [-1, 0, 0])


# --- projection and undistortion against OpenCV ------------------------------------------------------

@pytest.mark.parametrize("n_dist", [4, 5, 8])
def test_projection_matches_cv2_project_points(n_dist):
    rng = np.random.default_rng(n_dist)
    worst = 0.0
    for _ in range(100):
        cam = random_camera(rng, n_dist)
        X = points_in_view(cam, rng)
        ours = cam.project(X)
        ref, _ = cv2.projectPoints(X, cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist)
        worst = max(worst, np.abs(ours - ref[:, 0]).max())
    assert worst < 1e-6


@pytest.mark.parametrize("n_dist", [4, 5, 8])
def test_undistortion_matches_cv2_undistort_points(n_dist):
    rng = np.random.default_rng(10 + n_dist)
    worst = 0.0
    for _ in range(100):
        cam = random_camera(rng, n_dist)
        pixels = cam.project(points_in_view(cam, rng))
        ours = cam.undistort(pixels)
        ref = cv2.undistortPoints(pixels[:, None], cam.K, cam.dist, R=np.eye(3), P=cam.K,
                                  criteria=CRITERIA)[:, 0]
        ours_px = ours @ cam.K[:2, :2].T + cam.K[:2, 2]
        worst = max(worst, np.abs(ours_px - ref).max())
    assert worst < 1e-6


@pytest.mark.parametrize("model, n_dist", [("pinhole", 8), ("fisheye", 4)])
def test_undistortion_inverts_projection_with_skew(model, n_dist):
    rng = np.random.default_rng(3)
    cam = random_camera(rng, n_dist, model, skew=True)
    assert cam.K[0, 1] != 0
    X = points_in_view(cam, rng)
    x_cam = X @ cam.R.T + cam.t
    np.testing.assert_allclose(cam.undistort(cam.project(X)), x_cam[:, :2] / x_cam[:, 2:], atol=1e-10)


def test_fisheye_matches_cv2_fisheye_with_skew_as_alpha():
    """cv2.fisheye.projectPoints takes skew as alpha = K[0, 1] / fx; its undistortPoints has none."""
    rng = np.random.default_rng(4)
    for _ in range(100):
        cam = random_camera(rng, 4, model="fisheye", skew=True)
        X = points_in_view(cam, rng)
        ours = cam.project(X)
        alpha = cam.K[0, 1] / cam.K[0, 0]
        ref, _ = cv2.fisheye.projectPoints(X[:, None], cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist,
                                           alpha=alpha)
        np.testing.assert_allclose(ours, ref[:, 0], atol=1e-6)
        K = cam.K.copy()
        K[0, 1] = 0.0
        plain = cam.replace(K=K)
        px = plain.project(X)  # cv2.fisheye.undistortPoints has no skew term
        und = cv2.fisheye.undistortPoints(px[:, None], plain.K, plain.dist, R=np.eye(3), P=plain.K,
                                          criteria=CRITERIA)[:, 0]
        np.testing.assert_allclose(plain.undistort(px) @ plain.K[:2, :2].T + plain.K[:2, 2], und, atol=1e-6)


@pytest.mark.parametrize("model, n_dist", [("pinhole", 8), ("pinhole", 5), ("fisheye", 4)])
def test_torch_tensors_give_the_numpy_numbers(model, n_dist):
    rng = np.random.default_rng(5)
    cam = random_camera(rng, n_dist, model)
    X = points_in_view(cam, rng).reshape(10, 20, 3)
    X[0, 0] = cam.center - cam.viewing_direction  # one point behind the camera
    ours_np = cam.project(X)
    ours_t = cam.project(torch.from_numpy(X))
    assert isinstance(ours_t, torch.Tensor) and ours_t.shape == (10, 20, 2) and ours_t.dtype == torch.float64
    np.testing.assert_allclose(ours_t.numpy(), ours_np, atol=1e-12, equal_nan=True)
    px = np.nan_to_num(ours_np, nan=100.0)
    np.testing.assert_allclose(cam.undistort(torch.from_numpy(px)).numpy(), cam.undistort(px), atol=1e-12)


def test_points_behind_the_camera_project_to_nan():
    cam = camera()
    X = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0], [0.5, 0.0, 0.0]])
    px = cam.project(X)
    np.testing.assert_allclose(px[0], [640, 360])
    assert np.isnan(px[1:]).all()


# --- operations returning cameras ---------------------------------------------------------------

def test_transformed_keeps_every_projection():
    rng = np.random.default_rng(6)
    cam = random_camera(rng, 5)
    X = points_in_view(cam, rng)
    R_w = Rotation.random(random_state=7).as_matrix()
    t_w, s = np.array([0.3, -2.0, 1.1]), 1.7
    moved = cam.transformed(R_w, t_w, s)
    X_new = s * X @ R_w.T + t_w
    np.testing.assert_allclose(moved.project(X_new), cam.project(X), atol=1e-9)
    np.testing.assert_allclose(moved.center, s * R_w @ cam.center + t_w, atol=1e-12)
    rig = Rig((cam, cam.renamed("d")), name="r").transformed(R_w, t_w, s)
    assert rig[0].isclose(moved.renamed(cam.name), atol=0)


def test_resized_scales_pixels_about_pixel_centres():
    rng = np.random.default_rng(8)
    cam = random_camera(rng, 5)
    half = cam.resized(960, 540)
    X = points_in_view(cam, rng)
    np.testing.assert_allclose(half.project(X), (cam.project(X) + 0.5) * 0.5 - 0.5, atol=1e-9)
    assert half.size == (960, 540) and half.resized(1920, 1080).isclose(cam, atol=1e-9)


def test_look_at_puts_the_target_at_the_image_centre():
    cam = look_at("c", eye=[3.0, -2.0, 2.5], target=[0.2, 0.1, 1.0], width=1280, height=720, hfov_deg=70)
    np.testing.assert_allclose(cam.project(np.array([0.2, 0.1, 1.0])), [639.5, 359.5], atol=1e-9)
    np.testing.assert_allclose(cam.center, [3.0, -2.0, 2.5], atol=1e-12)
    up = cam.project(np.array([0.2, 0.1, 1.5]))
    assert up[1] < 359.5  # world up is image up
    np.testing.assert_allclose(cam.K[0, 0], 640 / np.tan(np.radians(35)))
    with pytest.raises(RigError, match="parallel to 'up'"):
        look_at("c", eye=[0, 0, 3.0], target=[0, 0, 0.0], width=640, height=480, hfov_deg=60)


# --- presets ----------------------------------------------------------------------------------------

def test_studio_4_preset():
    rig = load_rig("studio-4")
    assert rig.name == "studio-4" and rig.simulated and len(rig) == 4
    assert all(c.size == (1280, 720) and c.fps == 30.0 and c.source == "sim" for c in rig)
    corners = sorted(map(tuple, np.round(rig.centers, 6)))
    assert corners == sorted((x, y, 2.5) for x in (-3.0, 3.0) for y in (-3.0, 3.0))
    np.testing.assert_allclose(rig.project(np.array([0.0, 0.0, 1.0])), [[639.5, 359.5]] * 4, atol=1e-3)


def test_studio_8_preset():
    rig = load_rig("studio-8")
    assert rig.name == "studio-8" and rig.simulated and len(rig) == 8
    assert all(c.size == (1920, 1080) and c.fps == 30.0 for c in rig)
    np.testing.assert_allclose(np.linalg.norm(rig.centers[:, :2], axis=1), 4.0, atol=1e-6)
    assert sorted(set(np.round(rig.centers[:, 2], 6))) == [1.6, 2.5]
    np.testing.assert_allclose(rig.project(np.array([0.0, 0.0, 1.0])), [[959.5, 539.5]] * 8, atol=1e-3)
