"""The simulated 2D detector: what a keypoint detector would report per camera, from simulated people.

Ground-truth keypoints are projected into each camera; joints outside the image or behind another
person (``occlusion``) are dropped, the rest get Gaussian pixel noise, random misses and a score.
Like a real detector it sometimes swaps a person's left and right limbs, reports ghost people, and
lists people in no particular order; the truth of each slot is kept alongside. Self-occlusion is not
modelled (detectors usually still place those joints). All randomness comes from ``params.seed``:
every random array is drawn at full size in a fixed order, so changing one rate leaves the others'
draws unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs.camera import Rig
from rigs.sim.occlusion import occluded_by_others
from rigs.sim.performers import SimulatedPerformers, keypoints3d
from rigs.skeletons import Skeleton, get_skeleton


@dataclass(frozen=True)
class SimulatedDetectorParams:
    """Every knob of the simulated detector. Rates are probabilities per joint, per person-view, or
    (false detections) the expected number of ghost people per camera and frame."""

    pixel_noise_px: float = 2.0  # std of the noise on each pixel coordinate
    miss_rate: float = 0.02  # a visible joint not reported
    swap_rate: float = 0.01  # a detected person's left/right joints swapped in one view
    false_detection_rate: float = 0.02  # ghost people per camera-frame (Poisson mean)
    max_ghosts: int = 2  # at most this many ghosts per camera-frame
    occlusion: bool = True  # drop joints hidden behind other people
    occluded_keep_rate: float = 0.1  # an occluded joint still reported (guessed)...
    occluded_noise_px: float = 8.0  # ...with this much more noise...
    occluded_score_range: tuple[float, float] = (0.15, 0.45)  # ...and a low score
    score_range: tuple[float, float] = (0.5, 0.95)  # visible joints; noisier ones score lower
    ghost_score_range: tuple[float, float] = (0.2, 0.6)
    min_visible_joints: int = 3  # fewer joints in view: the person is not detected
    gross_outlier_rate: float = 0.0  # a reported joint moved to a random pixel of the image (score kept)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("miss_rate", "swap_rate", "occluded_keep_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"SimulatedDetectorParams.{name} must be in [0, 1], got {getattr(self, name)}"
                )
        for name in ("pixel_noise_px", "false_detection_rate", "occluded_noise_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"SimulatedDetectorParams.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class SimulatedDetections:
    """Simulated detector output for every camera of a rig.

    ``keypoints2d`` float32 [C, T, P', J, 3] (x, y, score; missing = NaN and 0), P' = people + max ghosts;
    detections are packed first in a random order, empty slots after. ``truth_person`` int32
    [C, T, P'] is the performer index of each slot (-1 for ghosts and empty slots), ``ghost`` and
    ``swapped`` bool [C, T, P'] flag ghost people and left/right swaps. ``visible`` and ``occluded``
    bool [C, T, P, J] are per performer (truth order): in the image and unoccluded / hidden by others.
    """

    keypoints2d: np.ndarray
    truth_person: np.ndarray
    ghost: np.ndarray
    swapped: np.ndarray
    visible: np.ndarray
    occluded: np.ndarray
    camera_names: tuple[str, ...]
    skeleton: str
    joint_names: tuple[str, ...]
    t_ns: np.ndarray
    fps: float
    params: SimulatedDetectorParams
    name: str = "simulated detector"

    def for_camera(self, camera: str) -> np.ndarray:
        """Keypoints [T, P', J, 3] of one camera by name."""
        return self.keypoints2d[self.camera_names.index(camera)]


def _scores(
    rng_uniform: np.ndarray, noise_norm: np.ndarray, sigma: float, lo: float, hi: float
) -> np.ndarray:
    """Scores in [lo, hi]: half random, half lowered by how far the noise moved the joint."""
    badness = 0.5 * rng_uniform + 0.5 * np.clip(noise_norm / (3.0 * max(sigma, 1e-9)), 0.0, 1.0)
    return hi - (hi - lo) * badness


def _ghost_points(
    performers: SimulatedPerformers, xyz: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Random 3D poses [*shape, J, 3]: a random person's pose at a random frame, turned by a random yaw
    and put at a random place around the real people."""
    T, P = xyz.shape[:2]
    src_t = rng.integers(0, T, size=shape)
    src_p = rng.integers(0, P, size=shape)
    yaw = rng.uniform(-np.pi, np.pi, size=shape)
    roots = performers.root_translation[..., :2]
    lo, hi = roots.reshape(-1, 2).min(0) - 1.0, roots.reshape(-1, 2).max(0) + 1.0
    place = rng.uniform(lo, hi, size=shape + (2,))
    pose = xyz[src_t, src_p]  # [*shape, J, 3]
    centred = pose[..., :2] - performers.root_translation[src_t, src_p, None, :2]
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    xy = np.stack([c * centred[..., 0] - s * centred[..., 1], s * centred[..., 0] + c * centred[..., 1]], -1)
    return np.concatenate([xy + place[..., None, :], pose[..., 2:]], axis=-1)


def simulate_detections(
    rig: Rig,
    performers: SimulatedPerformers,
    skeleton: str | Skeleton = "body25",
    params: SimulatedDetectorParams = SimulatedDetectorParams(),
) -> SimulatedDetections:
    """What a 2D keypoint detector would report in every camera of ``rig`` for the simulated people."""
    sk = get_skeleton(skeleton)
    rng = np.random.default_rng(params.seed)
    xyz = keypoints3d(performers, sk)[..., :3].astype(np.float64)  # [T, P, J, 3]
    T, P, J = xyz.shape[:3]
    C, G = len(rig), params.max_ghosts
    shape = (C, T, P, J)

    # every random draw, full size, fixed order
    noise = rng.normal(size=shape + (2,))
    occluded_noise = rng.normal(size=shape + (2,))
    u_miss, u_keep, u_score = rng.random(shape), rng.random(shape), rng.random(shape)
    u_swap = rng.random((C, T, P))
    n_ghosts = np.minimum(rng.poisson(params.false_detection_rate, size=(C, T)), G)
    ghost_xyz = _ghost_points(performers, xyz, (C, T, G), rng)  # [C, T, G, J, 3]
    ghost_noise = rng.normal(size=(C, T, G, J, 2))
    u_ghost_miss, u_ghost_score = rng.random((C, T, G, J)), rng.random((C, T, G, J))
    order_keys = rng.random((C, T, P + G))

    pixels = rig.project(xyz)  # [C, T, P, J, 2]
    ghost_pixels = np.stack([cam.project(ghost_xyz[c]) for c, cam in enumerate(rig)])
    in_image = np.stack([cam.in_image(pixels[c]) for c, cam in enumerate(rig)]) & np.isfinite(pixels).all(-1)
    ghost_in = np.stack([cam.in_image(ghost_pixels[c]) for c, cam in enumerate(rig)])
    ghost_in &= np.isfinite(ghost_pixels).all(-1)

    if params.occlusion:
        a, b, r = performers.capsules()
        occluded = occluded_by_others(rig.centers, xyz, a, b, r) & in_image
    else:
        occluded = np.zeros(shape, dtype=bool)
    visible = in_image & ~occluded
    detected = visible.sum(-1) >= params.min_visible_joints  # [C, T, P]
    sigma = params.pixel_noise_px
    kept_visible = visible & (u_miss >= params.miss_rate)
    kept_occluded = occluded & (u_keep < params.occluded_keep_rate)
    noise_vis = sigma * noise
    noise_occ = np.hypot(sigma, params.occluded_noise_px) * occluded_noise
    xy = pixels + np.where(kept_occluded[..., None], noise_occ, noise_vis)
    score = np.where(
        kept_occluded,
        _scores(
            u_score,
            np.linalg.norm(noise_occ, axis=-1),
            np.hypot(sigma, params.occluded_noise_px),
            *params.occluded_score_range,
        ),
        _scores(u_score, np.linalg.norm(noise_vis, axis=-1), sigma, *params.score_range),
    )
    keep = (kept_visible | kept_occluded) & detected[..., None]
    real = np.concatenate([xy, score[..., None]], axis=-1)
    real = np.where(keep[..., None], real, np.array([np.nan, np.nan, 0.0]))
    swapped = detected & (u_swap < params.swap_rate) & bool(sk.left_right)
    real = np.where(swapped[..., None, None], real[..., sk.flip_indices(), :], real)
    if params.gross_outlier_rate > 0:  # drawn from their own stream: the draws above stay as they were
        orng = np.random.default_rng((params.seed, 1))
        bad = keep & (orng.random(shape) < params.gross_outlier_rate)
        size = np.array([[c.width, c.height] for c in rig], float)[:, None, None, None, :]
        anywhere = orng.random(shape + (2,)) * size
        real[..., :2] = np.where(bad[..., None], anywhere, real[..., :2])

    ghost_keep = ghost_in & (u_ghost_miss >= params.miss_rate)
    ghost_present = (np.arange(G) < n_ghosts[..., None]) & (ghost_keep.sum(-1) >= params.min_visible_joints)
    ghost_keep &= ghost_present[..., None]
    gxy = ghost_pixels + sigma * ghost_noise
    gscore = _scores(
        u_ghost_score, np.linalg.norm(sigma * ghost_noise, axis=-1), sigma, *params.ghost_score_range
    )
    ghosts = np.where(
        ghost_keep[..., None], np.concatenate([gxy, gscore[..., None]], -1), np.array([np.nan, np.nan, 0.0])
    )

    slots = np.concatenate([real, ghosts], axis=2)  # [C, T, P+G, J, 3]
    present = np.concatenate([detected & keep.any(-1), ghost_present], axis=2)
    truth = np.concatenate([np.broadcast_to(np.arange(P), (C, T, P)), np.full((C, T, G), -1)], axis=2)
    is_ghost = np.concatenate([np.zeros((C, T, P), bool), np.ones((C, T, G), bool)], axis=2)
    is_swapped = np.concatenate([swapped, np.zeros((C, T, G), bool)], axis=2)
    order = np.argsort(order_keys + 2.0 * ~present, axis=-1, kind="stable")  # detections first, shuffled

    def take(arr: np.ndarray) -> np.ndarray:
        return np.take_along_axis(arr, order, axis=2)

    present_sorted = take(present)
    slots = np.take_along_axis(slots, order[..., None, None], axis=2)
    slots = np.where(present_sorted[..., None, None], slots, np.array([np.nan, np.nan, 0.0]))
    return SimulatedDetections(
        keypoints2d=slots.astype(np.float32),
        truth_person=np.where(present_sorted, take(truth), -1).astype(np.int32),
        ghost=take(is_ghost) & present_sorted,
        swapped=take(is_swapped) & present_sorted,
        visible=visible,
        occluded=occluded,
        camera_names=rig.names,
        skeleton=sk.name,
        joint_names=sk.joints,
        t_ns=performers.t_ns,
        fps=performers.fps,
        params=params,
    )
