"""SMPLify for sequences of 3D keypoints: one body shape and per-frame pose and translation for a track.

The fit minimises, over all frames at once (torch, CPU or CUDA):

    E = E_data + E_2d + w_shape |b|^2 + w_pose sum|theta|^2 + w_bend E_bend + w_twist E_twist + w_gmm E_gmm
        + w_accel sum huber(|d2 joint|) + w_rot sum |d2 R|^2 + w_trans sum |d2 transl|^2

* ``E_data``: Geman-McClure ``rho(r) = s^2 r^2 / (s^2 + r^2)`` (s = ``sigma_m``) of the distance between
  each input keypoint and the model's version of it (``keypoint_maps``: joints and surface landmarks
  of the body model), weighted by the input score and the map's per-joint weight; averaged over frames.
* ``E_2d`` (optional, ``views``): the same robust term on pixels in every camera (``reprojection_term``).
* priors (``priors``): Gaussian shape prior, pose L2, SMPLify's elbow/knee bend limits, forearm and shin
  twist limits (swing-twist about the bone axis), and SMPLify's GMM when ``pose_prior`` is given.
* temporal terms: second differences (accelerations) of the 24 model joints, of every joint's rotation
  matrix and of the translation. Constant velocities cost nothing. The joints' term is a pseudo-Huber
  ``2 s (sqrt(s^2 + r^2) - s)`` (s = ``accel_scale_m``): quadratic for the jitter of noisy input, linear
  for the real, brief accelerations of a jump or a swing, so those are smoothed less. The rotations'
  term stops a nearly straight arm's twist (which the keypoints hardly see) from flipping between
  frames. Weights are given for 30 fps and scaled by (fps/30)^4, so that as a low-pass filter the
  terms cut off at the same frequency at any frame rate.

Parameters: one ``betas`` [B] per track; per frame the global orientation as a rotation vector *about an
initial rotation* ``R0_t`` (``R_t = R0_t exp(delta_t)``, so a person turning round never crosses the pi
wrap of a rotation vector), the 23 body rotations as rotation vectors (SMPL's own parameters, on which
the joint limits and the GMM are defined), and the translation (smplx's ``transl``: the pelvis at
``J_0(b) + transl``). Rotations go to ``BodyModel.points`` as matrices.

Initialisation: betas from the input's bone lengths (a small Gauss-Newton fit of the rest-pose keypoint
distances, which are linear in b up to the norm), per-frame ``R0`` and translation from a weighted
Procrustes (Kabsch) fit of the rest-pose torso keypoints (hips, shoulders, ...) to the observed ones,
interpolated (slerp / linear) across frames without torso; upper arms, forearms, thighs and shins
pointed along the observed bones (``initial_limbs``: a bent elbow or knee as a pure hinge flexion), the
rest of the body at rest. Without the limb initialisation arms start in the T-pose, 60 cm from where
they hang, where the robust term has almost no gradient.

Stages (L-BFGS with a strong-Wolfe line search, each for at most its iteration budget or until the loss
stops falling): 1. ``torso``: orientation and translation on the torso keypoints; 2. ``coarse``: + body
pose on every keypoint, with a wide robust scale (``sigma_coarse_m``, nearly least squares) so that
far-off joints still pull; 3. ``pose``: the same at ``sigma_m``; 4. ``all``: + betas.

Frames with no keypoint at all are fitted from the temporal terms only (``valid`` False): a gap is
interpolated, the ends extrapolated smoothly. A frame whose keypoints jump away from both neighbours
(an outlier spike, e.g. a wrong association) is dropped from the data term (``valid`` False too).
``jumps`` lists frames where the input or the fit moves implausibly from the previous frame: the
median keypoint displacement faster than ``jump_speed_mps``, or any joint's global rotation turning
more than ``jump_deg`` (at 30 fps; scaled by 30/fps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from fitting.keypoint_maps import keypoint_map, model_keypoints
from fitting.priors import (
    GMMPrior,
    bend_limit_penalty,
    pose_l2,
    shape_prior,
    twist_angles,
    twist_axes,
    twist_joint_indices,
    twist_limit_penalty,
)
from rigs.skeletons import get_skeleton

_SMPL = get_skeleton("smpl24")
SMPL_PARENTS = np.array(_SMPL.parents, dtype=np.int64)
TORSO_NAMES = frozenset({
    "pelvis", "left_hip", "right_hip", "mid_hip", "spine", "spine1", "spine2", "spine3", "thorax",
    "neck", "left_collar", "right_collar", "left_shoulder", "right_shoulder",
})
BONE_PAIRS = (
    ("left_hip", "left_knee"), ("right_hip", "right_knee"), ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("left_hip", "right_hip"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
)
"""Keypoint pairs whose distance hardly changes with pose: they set the initial betas."""


class FitError(ValueError):
    """Input that cannot be fitted (wrong shape, no keypoints at all); the message says what to do."""


@dataclass(frozen=True)
class FitParams:
    """Every knob of the fit. Weights of temporal terms are for 30 fps (rescaled for ``fps``)."""

    fps: float = 30.0
    device: str = "cpu"
    cpu_threads: int = 1  # torch threads of a CPU fit (0: leave torch's setting)
    dtype: str = "float32"
    sigma_m: float = 0.10  # Geman-McClure scale of the 3D keypoint term (metres)
    sigma_coarse_m: float = 1.0  # ...in the first stages, so that far-off limbs still feel the data
    w_shape: float = 1e-4
    w_pose: float = 1e-4
    w_bend: float = 1.0
    w_twist: float = 1.0
    w_gmm: float = 1e-4  # only with a pose_prior
    w_accel: float = 1.0  # second differences of the 24 joints, per joint, at 30 fps
    w_rot: float = 1e-2  # second differences of every joint's rotation matrix (Frobenius), at 30 fps
    w_trans: float = 1.0  # second differences of the translation, at 30 fps
    accel_scale_m: float = 0.02  # joint second differences (m, at 30 fps) beyond which their cost grows linearly
    w_reprojection: float = 1e-4  # the multi-view 2D term, mean over cameras (pixels^2; 1 px ~ 5 mm at 4 m)
    sigma_px: float = 30.0  # Geman-McClure scale of the 2D term (pixels)
    iters_torso: int = 30
    iters_coarse: int = 30
    iters_pose: int = 150
    iters_all: int = 100
    chunk: int = 10  # L-BFGS iterations between progress reports and convergence checks
    rel_tol: float = 1e-6  # a chunk that lowers the loss by less than this fraction ends the stage
    history_size: int = 20
    init_betas: bool = True
    jump_deg: float = 45.0  # one frame's rotation of any joint at 30 fps that counts as a jump
    jump_speed_mps: float = 7.5  # median keypoint speed that counts as a jump (0.25 m per frame at 30 fps)


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted track: SMPL parameters per frame (world frame, Z up) and how well they fit."""

    betas: np.ndarray  # [B]
    poses: np.ndarray  # [T, 72] axis-angle, global orientation first
    trans: np.ndarray  # [T, 3] smplx transl
    joint_error_mm: np.ndarray  # [T, J] model keypoint vs input (NaN where the input is missing)
    jumps: np.ndarray  # int [K] frames where the input or the fit jumps from the previous frame
    twist_deg: np.ndarray  # [T, 4] left/right forearm, left/right shin twist (priors.TWIST_JOINTS)
    valid: np.ndarray  # bool [T] frames fitted from observations (False: interpolated / held)
    skeleton: str = ""
    seconds: float = 0.0
    losses: tuple[tuple[str, int, float], ...] = ()  # (stage, L-BFGS iterations, final loss)

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    def mpjpe_mm(self) -> float:
        """Mean keypoint error (mm) over observed keypoints."""
        return float(np.nanmean(self.joint_error_mm)) if np.isfinite(self.joint_error_mm).any() else float("nan")

    def rotations(self) -> np.ndarray:
        """Local joint rotations [T, 24, 3, 3] (global orientation first)."""
        return Rotation.from_rotvec(np.array(self.poses).reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3)

    def global_rotations(self) -> np.ndarray:
        """Every joint's rotation in the world [T, 24, 3, 3]."""
        return global_rotations(self.rotations())


# --- rotations ------------------------------------------------------------------------------------

def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rotation vectors [..., 3] -> matrices [..., 3, 3] (Rodrigues), smooth and finite at zero."""
    th2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    small = th2 < 1e-6
    safe = torch.where(small, torch.ones_like(th2), th2)
    th = safe.sqrt()
    a = torch.where(small, 1 - th2 / 6, torch.sin(th) / th)
    b = torch.where(small, 0.5 - th2 / 24, (1 - torch.cos(th)) / safe)
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a * K + b * (K @ K)


def geodesic_deg(R1, R2) -> np.ndarray:
    """Angle (degrees) of the rotation between R1 and R2 [..., 3, 3], i.e. of R1^T R2."""
    M = np.swapaxes(np.asarray(R1, float), -1, -2) @ np.asarray(R2, float)
    vee = np.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1)
    s = 0.5 * np.linalg.norm(vee, axis=-1)
    c = 0.5 * (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1)
    return np.degrees(np.arctan2(s, c))


def global_rotations(local: np.ndarray) -> np.ndarray:
    """Local rotations [..., 24, 3, 3] -> global ones along SMPL's kinematic tree."""
    local = np.asarray(local, float)
    G = np.empty_like(local)
    G[..., 0, :, :] = local[..., 0, :, :]
    for j in range(1, 24):
        G[..., j, :, :] = G[..., SMPL_PARENTS[j], :, :] @ local[..., j, :, :]
    return G


# --- initialisation ---------------------------------------------------------------------------------

def _kabsch(P: np.ndarray, Q: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame the rotation R [T, 3, 3] and offset c [T, 3] minimising sum w |R P + c - Q|^2 for model
    points P [N, 3], observations Q [T, N, 3], weights w [T, N]; ok [T] where the fit is determined."""
    W = w.sum(-1)
    ok = (W > 0) & ((w > 0).sum(-1) >= 3)
    Wd = np.where(ok, W, 1.0)
    Q0 = np.nan_to_num(Q)
    p_bar = (w[..., None] * P[None]).sum(1) / Wd[:, None]
    q_bar = (w[..., None] * Q0).sum(1) / Wd[:, None]
    H = np.einsum("tn,tni,tnj->tij", w, P[None] - p_bar[:, None], Q0 - q_bar[:, None])
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.transpose(0, 2, 1) @ U.transpose(0, 2, 1)))
    D = np.zeros((len(w), 3, 3))
    D[:, 0, 0] = D[:, 1, 1] = 1.0
    D[:, 2, 2] = np.where(d == 0, 1.0, d)
    R = Vt.transpose(0, 2, 1) @ D @ U.transpose(0, 2, 1)
    ok &= S[:, 1] > 1e-6 * np.maximum(S[:, 0], 1e-12)  # not all on a line
    c = q_bar - np.einsum("tij,tj->ti", R, p_bar)
    return R, c, ok


def _fill_rotations(R: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rotations [T, 3, 3] where ``ok``; slerp between them, held at the ends."""
    idx = np.flatnonzero(ok)
    if len(idx) == len(R):
        return R
    if len(idx) == 1:
        return np.repeat(R[idx], len(R), 0)
    t = np.clip(np.arange(len(R)), idx[0], idx[-1])
    return Slerp(idx, Rotation.from_matrix(R[idx]))(t).as_matrix()


def _fill_linear(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Values [T, D] where ``ok``; linear between them, held at the ends."""
    idx = np.flatnonzero(ok)
    t = np.arange(len(x))
    return np.stack([np.interp(t, idx, x[idx, d]) for d in range(x.shape[1])], -1)


LIMBS = (
    ("left_shoulder", "left_elbow", "left_wrist", (0.0, -1.0, 0.0)),
    ("right_shoulder", "right_elbow", "right_wrist", (0.0, 1.0, 0.0)),
    ("left_hip", "left_knee", "left_ankle", (1.0, 0.0, 0.0)),
    ("right_hip", "right_knee", "right_ankle", (1.0, 0.0, 0.0)),
)
"""(upper joint, hinge joint, end, hinge axis in SMPL's canonical frame: flexion is a positive turn about it)."""


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 1e-12, n, 1.0)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations [T, 3, 3] taking unit vectors a [T, 3] onto unit vectors b [T, 3] (not opposite)."""
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    K = np.zeros(a.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    f = (1.0 / np.maximum(1.0 + c, 1e-9))[..., None, None]
    return np.eye(3) + K + f * (K @ K)


def initial_limbs(R0: np.ndarray, kp: np.ndarray, names: tuple[str, ...], rest_joints: np.ndarray,
                  min_bend_deg: float = 15.0) -> np.ndarray:
    """Body pose [T, 23, 3] (axis-angle) pointing the upper arms, forearms, thighs and shins along the
    observed bones, the rest of the body at rest (its parents' frames are the root's, ``R0`` [T, 3, 3]).
    A bent limb (more than ``min_bend_deg``) turns its upper bone so that the elbow or knee is a pure
    hinge flexion; a straight one gets the smallest swing of each bone."""
    T = kp.shape[0]
    local = np.tile(np.eye(3), (T, 24, 1, 1))
    where = {n: i for i, n in enumerate(names)}
    J = {n: i for i, n in enumerate(_SMPL.joints)}
    for upper, mid, end, hinge in LIMBS:
        if not all(n in where for n in (upper, mid, end)):
            continue
        p = kp[:, [where[upper], where[mid], where[end]]]  # [T, 3, 4]
        ok = (p[..., 3] > 0).all(-1) & np.isfinite(p[..., :3]).all((-1, -2))
        if not ok.any():
            continue
        u = _unit(p[ok, 1, :3] - p[ok, 0, :3])
        v = _unit(p[ok, 2, :3] - p[ok, 1, :3])
        a = _unit(rest_joints[J[mid]] - rest_joints[J[upper]])
        h = _unit(np.asarray(hinge) - np.dot(hinge, a) * a)
        Gp = R0[ok]
        bend = np.arccos(np.clip((u * v).sum(-1), -1.0, 1.0))
        # straight: smallest swings
        G_swing = _rotation_between(Gp @ a, u) @ Gp
        b = _unit(np.einsum("tji,tj->ti", G_swing, v))
        R_mid_swing = _rotation_between(np.broadcast_to(a, b.shape), b)
        # bent: the hinge axis along u x v
        n = _unit(np.cross(u, v))
        world = np.stack([u, n, np.cross(u, n)], -1)
        rest = np.stack([a, h, np.cross(a, h)], -1)
        G_hinge = world @ rest.T
        R_mid_hinge = Rotation.from_rotvec(bend[:, None] * h).as_matrix()
        bent = (bend > np.radians(min_bend_deg))[:, None, None]
        G = np.where(bent, G_hinge, G_swing)
        local[ok, J[upper]] = np.swapaxes(Gp, -1, -2) @ G
        local[ok, J[mid]] = np.where(bent, R_mid_hinge, R_mid_swing)
    return Rotation.from_matrix(local[:, 1:].reshape(-1, 3, 3)).as_rotvec().reshape(T, 23, 3)


def _rest_keypoints(model, betas: np.ndarray, comb: np.ndarray) -> np.ndarray:
    """The model's keypoints [J, 3] in the rest pose with transl 0 (SMPL canonical frame)."""
    with torch.no_grad():
        j, lm = model.points(torch.as_tensor(betas[None], dtype=model.dtype, device=model.device),
                             torch.zeros(1, 24, 3, dtype=model.dtype, device=model.device))
        pts = torch.cat([j, lm], 1)[0].double().cpu().numpy()
    return comb @ pts


def initial_betas(model, kp: np.ndarray, skeleton, comb: np.ndarray, reg: float = 1e-4,
                  iterations: int = 15) -> np.ndarray:
    """Betas [B] whose rest-pose bone lengths (``BONE_PAIRS`` present in the skeleton) match the median
    observed ones: Gauss-Newton on ``sum (|d_b(betas)| - L_b)^2 + reg |betas|^2`` (d linear in betas)."""
    arrays = model.arrays
    B = arrays.num_betas
    names = get_skeleton(skeleton).joints
    pairs = [(names.index(a), names.index(b)) for a, b in BONE_PAIRS if a in names and b in names]
    lengths, use = [], []
    for a, b in pairs:
        d = np.linalg.norm(kp[:, a, :3] - kp[:, b, :3], axis=-1)
        d = d[np.isfinite(d) & (kp[:, a, 3] > 0) & (kp[:, b, 3] > 0)]
        if d.size:
            lengths.append(np.median(d))
            use.append((a, b))
    if len(use) < 3:
        return np.zeros(B)
    lm = arrays.landmark_vertex_ids
    pts0 = np.concatenate([arrays.joint_template, arrays.v_template[lm]])  # [24 + L, 3]
    dirs = np.concatenate([arrays.joint_shapedirs, arrays.shapedirs[lm]])  # [24 + L, 3, B]
    K0 = comb @ pts0
    KD = np.einsum("jk,kdb->jdb", comb, dirs)
    a_idx, b_idx = np.array([a for a, _ in use]), np.array([b for _, b in use])
    d0, D = K0[b_idx] - K0[a_idx], KD[b_idx] - KD[a_idx]  # [n, 3], [n, 3, B]
    L = np.array(lengths)
    beta = np.zeros(B)
    for _ in range(iterations):
        d = d0 + D @ beta
        n = np.linalg.norm(d, axis=-1)
        r = n - L
        Jm = np.einsum("nd,ndb->nb", d / n[:, None], D)
        H = Jm.T @ Jm + reg * np.eye(B)
        beta = beta - np.linalg.solve(H, Jm.T @ r + reg * beta)
    return np.clip(beta, -3.0, 3.0)


def _input_jumps(kp: np.ndarray, have: np.ndarray, speed: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(jump frames, spike frames) of the input: the median keypoint displacement since the previous
    observed frame (per frame of the gap) above speed/fps is a jump; a jump away from the previous frame
    followed by a jump back to where it was is a spike (reported once, at the odd frame)."""
    xyz = np.where((kp[..., 3] > 0)[..., None], kp[..., :3], np.nan)
    thr = speed / fps
    frames = np.flatnonzero(have)

    def step(a: int, b: int) -> float:
        d = np.linalg.norm(xyz[a] - xyz[b], axis=-1)
        d = d[np.isfinite(d)]
        return float(np.median(d)) / abs(a - b) if d.size else 0.0

    jumped = [False] + [step(frames[i], frames[i - 1]) > thr for i in range(1, len(frames))]
    jumps, spikes = [], []
    i = 1
    while i < len(frames):
        if jumped[i]:
            jumps.append(frames[i])
            if i + 1 < len(frames) and jumped[i + 1] and step(frames[i + 1], frames[i - 1]) <= thr:
                spikes.append(frames[i])
                i += 1  # the return to the track is no jump of its own
        i += 1
    return np.array(jumps, np.int64), np.array(spikes, np.int64)


def _pseudo_huber(r2: torch.Tensor, scale: float) -> torch.Tensor:
    """``2 s (sqrt(s^2 + r^2) - s)``: ``r^2`` for small residuals, ``2 s |r|`` for large ones."""
    return 2 * scale * (torch.sqrt(scale**2 + r2) - scale)


# --- the fit ------------------------------------------------------------------------------------------

def fit_sequence(model, keypoints3d: np.ndarray, skeleton: str, params: FitParams = FitParams(), *,
                 views=None, pose_prior: GMMPrior | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> FitResult:
    """Fit one track's 3D keypoints [T, J, 4] (NaN, score 0: missing) in ``skeleton`` with ``model``
    (``BodyModel``); ``views`` adds the multi-view 2D term, ``pose_prior`` SMPLify's GMM.
    ``progress(stage, iterations done, budget)`` is called between chunks of iterations.

    On the CPU the fit runs on ``params.cpu_threads`` torch threads (restored afterwards): its thousands of
    small tensor ops lose more to thread hand-offs than they gain (a minute of one person: 18 s on one
    thread, 54 s on two, on this project's 2-core machine)."""
    if torch.device(params.device).type != "cpu" or params.cpu_threads <= 0:
        return _fit_sequence(model, keypoints3d, skeleton, params, views, pose_prior, progress)
    before = torch.get_num_threads()
    torch.set_num_threads(params.cpu_threads)
    try:
        return _fit_sequence(model, keypoints3d, skeleton, params, views, pose_prior, progress)
    finally:
        torch.set_num_threads(before)


def _fit_sequence(model, keypoints3d: np.ndarray, skeleton: str, params: FitParams, views,
                  pose_prior: GMMPrior | None, progress: Callable[[str, int, int], None] | None) -> FitResult:
    """``fit_sequence`` itself."""
    t_start = time.perf_counter()
    sk = get_skeleton(skeleton)
    kp = np.array(keypoints3d, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (sk.num_joints, 4):
        raise FitError(f"keypoints3d of shape {kp.shape}: expected [T, {sk.num_joints}, 4] for skeleton "
                       f"{sk.name!r} (x, y, z, score); pass the skeleton the keypoints were made with")
    T = kp.shape[0]
    if T < 1:
        raise FitError("an empty track (0 frames): nothing to fit")
    seen = (kp[..., 3] > 0) & np.isfinite(kp[..., :3]).all(-1)
    kp[~seen] = (np.nan, np.nan, np.nan, 0.0)
    have = seen.any(-1)
    if not have.any():
        raise FitError("no 3D keypoints in any frame of this track (all NaN or score 0): nothing to fit")
    if views is not None and views.keypoints2d.shape[1] != T:
        raise FitError(f"views: 2D keypoints for {views.keypoints2d.shape[1]} frames but the track has {T}; "
                       "pass each camera's detections of this track for the same frames")
    device = torch.device(params.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FitError(f"device {params.device!r}: torch.cuda is not available here; fit on device='cpu'")
    dtype = {"float32": torch.float32, "float64": torch.float64}[params.dtype]
    if model.device != device or model.dtype != dtype:
        model = type(model)(model.arrays, device, dtype)
    kmap = keypoint_map(sk.name, model.arrays)
    comb_np = kmap.combination
    comb = kmap.tensor(device, dtype)
    fps = float(params.fps)
    jumps_in, spikes = _input_jumps(kp, have, params.jump_speed_mps, fps)
    data_frames = have.copy()
    data_frames[spikes] = False

    # per-keypoint weights: score x map weight, none on dropped frames
    w_np = np.where(seen & data_frames[:, None], kp[..., 3], 0.0) * kmap.weights[None]
    torso = np.array([n in TORSO_NAMES for n in sk.joints])

    # --- initialisation
    betas0 = initial_betas(model, kp, sk.name, comb_np) if params.init_betas else np.zeros(model.num_betas)
    rest = _rest_keypoints(model, betas0, comb_np)  # [J, 3]
    pelvis0 = model.arrays.rest_joints(betas0)[0]
    w_torso = np.where(torso[None], w_np, 0.0)
    R0, c, ok = _kabsch(rest - pelvis0, kp[..., :3], w_torso)
    if not ok.any():  # no torso anywhere: fall back to every keypoint
        R0, c, ok = _kabsch(rest - pelvis0, kp[..., :3], w_np)
        if not ok.any():
            raise FitError(f"too few keypoints to place the body in any frame (need at least 3 non-collinear "
                           f"{sk.name} joints seen together); is this track a ghost?")
    R0 = _fill_rotations(R0, ok)
    transl0 = _fill_linear(c, ok) - pelvis0
    body0 = initial_limbs(R0, kp, sk.joints, model.arrays.rest_joints(betas0))

    # --- tensors
    tt = {"dtype": dtype, "device": device}
    target = torch.as_tensor(np.nan_to_num(kp[..., :3]), **tt)
    weight = torch.as_tensor(w_np, **tt)
    R0_t = torch.as_tensor(R0, **tt)
    betas = torch.tensor(betas0[None], **tt, requires_grad=True)
    delta = torch.zeros(T, 3, **tt, requires_grad=True)
    body = torch.tensor(body0, **tt, requires_grad=True)
    transl = torch.tensor(transl0, **tt, requires_grad=True)
    axes = torch.as_tensor(twist_axes(model.arrays.rest_joints(np.zeros(model.num_betas))), **tt)
    tw_idx = twist_joint_indices()
    gmm = pose_prior.tensors(device, dtype) if pose_prior is not None else None
    obs2d = views.tensors(kmap, device, dtype) if views is not None else None
    # temporal weights: a Tikhonov filter's cutoff stays put in Hz when second differences are weighted
    # by (fps/30)^4
    w_accel = params.w_accel * (fps / 30.0) ** 4
    w_trans = params.w_trans * (fps / 30.0) ** 4
    w_rot = params.w_rot * (fps / 30.0) ** 4
    accel_scale = params.accel_scale_m * (30.0 / fps) ** 2
    n_frames = float(T)
    w_sum_frames = float(max(data_frames.sum(), 1))

    def rotations() -> torch.Tensor:
        g = R0_t @ axis_angle_to_matrix(delta)
        return torch.cat([g[:, None], axis_angle_to_matrix(body)], 1)  # [T, 24, 3, 3]

    def loss_terms(mask: torch.Tensor | None, with_pose: bool, sigma: float) -> torch.Tensor:
        rot = rotations()
        joints, landmarks = model.points(betas, rot, transl)
        pred = model_keypoints(joints, landmarks, comb)
        r2 = ((pred - target) ** 2).sum(-1)
        w = weight if mask is None else weight * mask
        data = (w * sigma**2 * r2 / (sigma**2 + r2)).sum() / w_sum_frames
        loss = data + params.w_shape * shape_prior(betas)
        if obs2d is not None:
            loss = loss + params.w_reprojection * obs2d.loss(pred, params.sigma_px, mask) / w_sum_frames
        if with_pose:
            aa = torch.cat([delta[:, None], body], 1)
            prior = params.w_pose * pose_l2(body) + params.w_bend * bend_limit_penalty(aa)
            tw = twist_angles(rot[:, tw_idx], axes)
            prior = prior + params.w_twist * twist_limit_penalty(tw)
            if gmm is not None:
                prior = prior + params.w_gmm * gmm.nll(body)
            loss = loss + prior.sum() / n_frames
        if T >= 3:
            acc2 = ((joints[2:] - 2 * joints[1:-1] + joints[:-2]) ** 2).sum(-1)
            loss = loss + w_accel * _pseudo_huber(acc2, accel_scale).sum() / n_frames
            acc_t = transl[2:] - 2 * transl[1:-1] + transl[:-2]
            loss = loss + w_trans * (acc_t**2).sum() / n_frames
        if T >= 3:
            acc_r = rot[2:] - 2 * rot[1:-1] + rot[:-2]
            loss = loss + w_rot * (acc_r**2).sum() / n_frames
        return loss

    losses: list[tuple[str, int, float]] = []
    torso_mask = torch.as_tensor(torso[None].astype(np.float64), **tt)
    coarse = max(params.sigma_coarse_m, params.sigma_m)
    stages = (
        ("torso", [delta, transl], torso_mask, False, coarse, params.iters_torso),
        ("coarse", [delta, transl, body], None, True, coarse, params.iters_coarse),
        ("pose", [delta, transl, body], None, True, params.sigma_m, params.iters_pose),
        ("all", [delta, transl, body, betas], None, True, params.sigma_m, params.iters_all),
    )
    for name, variables, mask, with_pose, sigma, budget in stages:
        if budget <= 0:
            continue
        opt = torch.optim.LBFGS(variables, lr=1.0, max_iter=params.chunk, history_size=params.history_size,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure(mask=mask, with_pose=with_pose, sigma=sigma, opt=opt):
            opt.zero_grad(set_to_none=True)
            value = loss_terms(mask, with_pose, sigma)
            value.backward()
            return value

        done, last = 0, None
        while done < budget:
            value = float(opt.step(closure).detach())
            if not np.isfinite(value):
                raise FitError(f"the fit diverged in its {name} stage (loss {value}); check the keypoints' units "
                               "(metres) and skeleton")
            done += params.chunk
            if progress is not None:
                progress(name, min(done, budget), budget)
            if last is not None and last - value <= params.rel_tol * max(abs(last), 1e-30):
                break
            last = value
        losses.append((name, done, value))

    # --- results
    with torch.no_grad():
        rot = rotations()
        joints, landmarks = model.points(betas, rot, transl)
        pred = model_keypoints(joints, landmarks, comb).double().cpu().numpy()
        rot_np = rot.double().cpu().numpy()
        twist = np.degrees(twist_angles(rot_np[:, tw_idx], axes.double().cpu().numpy()))
        joints_np = joints.double().cpu().numpy()
    err = np.linalg.norm(pred - kp[..., :3], axis=-1) * 1000.0
    err[~seen] = np.nan
    poses = Rotation.from_matrix(rot_np.reshape(-1, 3, 3)).as_rotvec().reshape(T, 72)
    jumps = np.union1d(jumps_in, _fit_jumps(rot_np, joints_np, params))
    return FitResult(betas=betas.detach().double().cpu().numpy()[0], poses=poses,
                     trans=transl.detach().double().cpu().numpy(), joint_error_mm=err,
                     jumps=jumps.astype(np.int64), twist_deg=twist, valid=data_frames, skeleton=sk.name,
                     seconds=time.perf_counter() - t_start, losses=tuple(losses))


def _fit_jumps(rot: np.ndarray, joints: np.ndarray, params: FitParams) -> np.ndarray:
    """Frames where any joint's global rotation turns more than ``jump_deg`` (at 30 fps) or the joints'
    median displacement exceeds ``jump_speed_mps`` since the previous frame."""
    if rot.shape[0] < 2:
        return np.zeros(0, np.int64)
    G = global_rotations(rot)
    turn = geodesic_deg(G[:-1], G[1:]).max(-1)  # [T-1]
    move = np.median(np.linalg.norm(joints[1:] - joints[:-1], axis=-1), axis=-1)
    bad = (turn > params.jump_deg * 30.0 / params.fps) | (move > params.jump_speed_mps / params.fps)
    return np.flatnonzero(bad) + 1


def fitted_keypoints(model, result: FitResult, skeleton: str | None = None) -> np.ndarray:
    """The fitted body's keypoints [T, J, 3] (float64) in ``skeleton`` (default: the one fitted)."""
    kmap = keypoint_map(skeleton or result.skeleton, model.arrays)
    exact = type(model)(model.arrays, "cpu", torch.float64)
    with torch.no_grad():
        joints, landmarks = exact.points(torch.as_tensor(result.betas[None]),
                                         torch.as_tensor(result.poses.reshape(-1, 24, 3)),
                                         torch.as_tensor(result.trans))
        return model_keypoints(joints, landmarks, kmap).numpy()
