import numpy as np
import pytest
import torch

from fitting.keypoint_maps import keypoint_map
from fitting.reprojection_term import MultiViewObservations, ObservationError
from fitting.simulated_bodies import simulate_bodies
from fitting.smplify import FitParams, fit_sequence, fitted_keypoints
from rigs.formats import load_rig

FPS = 30


@pytest.fixture(scope="module")
def scene(standin):
    rig = load_rig("studio-4")
    person = simulate_bodies(standin, 1, 3.0, FPS, seed=5, area=(2.0, 2.0))
    truth = person.keypoints("body25")[:, 0]  # [T, J, 4]
    pixels = rig.project(truth[..., :3])  # [C, T, J, 2]
    kp2d = np.concatenate([pixels, np.ones(pixels.shape[:-1] + (1,))], axis=-1)
    kp2d[~np.isfinite(pixels).all(-1)] = (np.nan, np.nan, 0.0)
    return rig, truth, MultiViewObservations(rig, kp2d)


def test_the_term_is_zero_at_the_truth_and_grows_away_from_it(standin, scene):
    rig, truth, views = scene
    term = views.tensors(keypoint_map("body25", standin.arrays), "cpu", torch.float64)
    points = torch.as_tensor(truth[..., :3])
    assert float(term.loss(points, 30.0)) < 1e-12
    assert np.nanmax(term.residuals(points).numpy()) < 1e-6
    moved = points + torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)
    px = np.nanmedian(term.residuals(moved).numpy())
    assert 1.0 < px < 30.0  # 1 cm is a few pixels in this studio
    assert float(term.loss(moved, 30.0)) > 1.0


def test_points_behind_a_camera_weigh_nothing_and_give_finite_gradients(standin, scene):
    rig, truth, views = scene
    term = views.tensors(keypoint_map("body25", standin.arrays), "cpu", torch.float64)
    points = torch.as_tensor(truth[..., :3]).clone()
    cam = rig[0]
    behind = torch.as_tensor(cam.center - 0.5 * cam.viewing_direction)
    points[0, 0] = behind  # the nose of frame 0 behind camera 0
    points.requires_grad_(True)
    loss = term.loss(points, 30.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(points.grad).all()
    assert np.isnan(term.residuals(points.detach())[0, 0, 0].item())


def test_observations_must_match_the_rig_and_skeleton(standin, scene):
    rig, _, views = scene
    with pytest.raises(ObservationError, match=r"\[C=4, T, J, 3\]"):
        MultiViewObservations(rig, views.keypoints2d[:3])
    with pytest.raises(ObservationError, match="joints"):
        MultiViewObservations(rig, views.keypoints2d).tensors(keypoint_map("coco17", standin.arrays))


def test_the_fit_with_exact_2d_is_at_least_as_good(standin, scene):
    rig, truth, views = scene
    noisy = truth.copy()
    noisy[..., :3] += np.random.default_rng(3).normal(0, 0.015, noisy[..., :3].shape)
    params = FitParams(fps=FPS)
    without = fit_sequence(standin, noisy, "body25", params)
    with_2d = fit_sequence(standin, noisy, "body25", params, views=views)
    err = [np.linalg.norm(fitted_keypoints(standin, r) - truth[..., :3], axis=-1).mean() * 1000
           for r in (without, with_2d)]
    print(f"\n15 mm 3D noise: MPJPE {err[0]:.2f} mm without the 2D term, {err[1]:.2f} mm with exact 2D "
          f"({with_2d.seconds:.1f} s)")
    assert err[1] <= err[0] + 0.1
    assert err[1] < 8.0
