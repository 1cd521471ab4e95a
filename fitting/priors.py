"""Priors of the body fit: shape, pose (L2 + anatomical joint limits) and the SMPLify GMM pose prior.

All pose quantities are in SMPL's local joint frames (canonical frame: x left, y up, z forward), so they
hold for the real SMPL files and the stand-in alike.

* **Shape**: ``sum(betas**2)``: betas are unit-variance PCA coefficients, so this is their Gaussian
  negative log likelihood up to a factor of 2.
* **Pose L2**: ``sum(theta**2)`` over the 23 body joints' axis-angle vectors (not the global orientation).
* **Bend limits** (SMPLify, Bogo et al. 2016, eq. 5): elbows and knees must not bend backwards. SMPLify
  penalises ``exp(s * theta_i)`` on the axis-angle component ``theta_i`` that bends the joint (left elbow
  +y, right elbow -y, knees -x: the hyper-extension direction). We keep its exponential tail inside the
  anatomical range but let it grow only quadratically beyond the limit, so no single frame can blow the
  loss up: ``soft_hinge(x) = (tau * softplus(x / tau))**2`` with ``x = s * theta_i - limit``, which is about
  ``tau**2 exp(2 x / tau)`` for x << 0 (inside) and ``x**2`` for x >> 0 (beyond).
* **Twist limits**: the forearm cannot pronate/supinate, nor the shin rotate about its own axis, by more
  than about 90 and 30 degrees at the elbow and knee. A local rotation ``R`` splits into ``swing @ twist``
  with the twist about the bone axis ``u`` (the rest direction elbow->wrist, knee->ankle); its angle is
  ``2 atan2(u . vee(R - R^T), 1 + tr R)`` (from the quaternion (w, v): ``vee(R - R^T) = 4 w v`` and
  ``1 + tr R = 4 w**2``), which is smooth and needs no quaternion. The same soft hinge keeps
  ``|twist| <= limit``.
* **GMM** (``GMMPrior``): SMPLify's mixture of Gaussians over the 69 body pose components (``gmm_08``:
  ``means`` [K, 69], ``covars`` [K, 69, 69], ``weights`` [K]), scored as the max-mixture negative log
  likelihood ``min_k 0.5 (x - mu_k)^T Sigma_k^-1 (x - mu_k) - log(w_k / sqrt((2 pi)^D det Sigma_k))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rigs.skeletons import get_skeleton

_SMPL = get_skeleton("smpl24").joints
_J = {n: i for i, n in enumerate(_SMPL)}

BEND_LIMITS: tuple[tuple[str, int, float], ...] = (
    ("left_elbow", 1, 1.0),
    ("right_elbow", 1, -1.0),
    ("left_knee", 0, -1.0),
    ("right_knee", 0, -1.0),
)
"""(joint, axis-angle component, sign s): ``s * theta[component]`` > 0 bends the joint backwards."""

TWIST_JOINTS: tuple[tuple[str, str], ...] = (
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
    ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"),
)
"""(joint, child): the twist of the joint's local rotation about the rest bone joint -> child; the
columns of ``FitResult.twist_deg`` in this order (left forearm, right forearm, left shin, right shin)."""

TWIST_LIMITS_DEG = np.array([90.0, 90.0, 30.0, 30.0])
HYPEREXTENSION_LIMIT_DEG = 5.0


class PriorFileError(ValueError):
    """A pose prior file that is missing, unreadable or not in SMPLify's GMM layout."""


def soft_hinge(x: torch.Tensor, tau: float) -> torch.Tensor:
    """``(tau * softplus(x / tau))**2``: ~ ``tau**2 exp(2x/tau)`` below 0, ~ ``x**2`` above."""
    return (tau * F.softplus(x / tau)) ** 2


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """Sum of squared betas (the Gaussian shape prior), a scalar."""
    return (betas**2).sum()


def pose_l2(body_pose: torch.Tensor) -> torch.Tensor:
    """Per-frame sum of squared axis-angle components [B] of the body joints (pose [B, 23, 3] or [B, 69])."""
    return (body_pose.reshape(body_pose.shape[0], -1) ** 2).sum(-1)


def bend_limit_penalty(pose: torch.Tensor, tau: float = 0.1,
                       limit_deg: float = HYPEREXTENSION_LIMIT_DEG) -> torch.Tensor:
    """Elbow/knee hyper-extension penalty [B] from axis-angle pose [B, 24, 3] (global orientation first)."""
    idx = torch.tensor([_J[n] for n, _, _ in BEND_LIMITS], device=pose.device)
    comp = torch.tensor([c for _, c, _ in BEND_LIMITS], device=pose.device)
    sign = torch.tensor([s for _, _, s in BEND_LIMITS], device=pose.device, dtype=pose.dtype)
    theta = pose[:, idx, comp]  # [B, 4]
    return soft_hinge(sign * theta - np.radians(limit_deg), tau).sum(-1)


def twist_axes(rest_joints: np.ndarray) -> np.ndarray:
    """Unit bone axes [4, 3] (``TWIST_JOINTS`` order) from rest joints [24, 3] in SMPL's canonical frame."""
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    d = np.stack([rest_joints[_J[c]] - rest_joints[_J[j]] for j, c in TWIST_JOINTS])
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def twist_joint_indices() -> list[int]:
    """SMPL joint indices of ``TWIST_JOINTS`` (elbows, knees)."""
    return [_J[j] for j, _ in TWIST_JOINTS]


def twist_angles(R: torch.Tensor | np.ndarray, axes: torch.Tensor | np.ndarray):
    """Twist angles (radians, in [-pi, pi]) [...] of local rotations R [..., 3, 3] about unit axes [..., 3]."""
    xp = torch if isinstance(R, torch.Tensor) else np
    if xp is torch:
        axes = torch.as_tensor(axes, dtype=R.dtype, device=R.device)
    vee = xp.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    trace = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    num = (vee * axes).sum(-1)
    if xp is torch:
        return 2 * torch.atan2(num, 1 + trace)
    return 2 * np.arctan2(num, 1 + trace)


def twist_limit_penalty(twist: torch.Tensor, limits_deg=TWIST_LIMITS_DEG, tau: float = 0.1) -> torch.Tensor:
    """Penalty [B] keeping |twist| [B, 4] (radians) within the limits (degrees, ``TWIST_JOINTS`` order)."""
    lim = torch.as_tensor(np.radians(np.asarray(limits_deg, float)), dtype=twist.dtype, device=twist.device)
    return (soft_hinge(twist - lim, tau) + soft_hinge(-twist - lim, tau)).sum(-1)


# --- GMM pose prior ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class GMMTensors:
    """A GMM prior's terms as tensors on one device: means [K, D], precisions [K, D, D], and the
    per-component constant ``-log(w_k) + 0.5 log det Sigma_k + 0.5 D log(2 pi)`` [K]."""

    means: torch.Tensor
    precisions: torch.Tensor
    constants: torch.Tensor

    def nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Max-mixture negative log likelihood [B] of body poses [B, 69] (or [B, 23, 3])."""
        x = body_pose.reshape(body_pose.shape[0], -1)
        d = x[:, None, :] - self.means[None]  # [B, K, D]
        quad = torch.einsum("bki,kij,bkj->bk", d, self.precisions, d)
        return (0.5 * quad + self.constants[None]).min(-1).values


@dataclass(frozen=True, eq=False)
class GMMPrior:
    """SMPLify's Gaussian mixture pose prior over the 69 body pose components (axis-angle, SMPL frames)."""

    means: np.ndarray  # [K, 69]
    covars: np.ndarray  # [K, 69, 69]
    weights: np.ndarray  # [K]
    source: str = ""

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=np.float64)
        covars = np.asarray(self.covars, dtype=np.float64)
        weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        where = f"pose prior {self.source or '(arrays)'}"
        if means.ndim != 2 or means.shape[1] != 69:
            raise PriorFileError(f"{where}: means must be [K, 69] (SMPL body pose), got {means.shape}")
        K = means.shape[0]
        if covars.shape != (K, 69, 69) or weights.shape != (K,):
            raise PriorFileError(f"{where}: expected covars [{K}, 69, 69] and weights [{K}], got "
                                 f"{covars.shape} and {weights.shape}")
        if not (np.isfinite(means).all() and np.isfinite(covars).all() and (weights > 0).all()):
            raise PriorFileError(f"{where}: non-finite values or non-positive weights")
        for name, arr in (("means", means), ("covars", covars), ("weights", weights)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @classmethod
    def load(cls, path: str | Path) -> GMMPrior:
        """Read a ``gmm_08``-style prior: ``.npz`` with means/covars/weights, or SMPLify's ``.pkl``."""
        path = Path(path)
        if not path.is_file():
            raise PriorFileError(f"--pose-prior {path}: no such file; pass SMPLify's gmm_08.pkl (from "
                                 f"https://smplify.is.tue.mpg.de) or an .npz with means, covars, weights")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}
            elif path.suffix == ".pkl":
                data = _load_pickle(path)
            else:
                raise PriorFileError(f"--pose-prior {path}: unknown file type {path.suffix!r}; expected .npz or .pkl")
        except PriorFileError:
            raise
        except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear message
            raise PriorFileError(f"--pose-prior {path}: cannot read it ({type(err).__name__}: {err})") from err
        missing = [k for k in ("means", "covars", "weights") if k not in data]
        if missing:
            raise PriorFileError(f"--pose-prior {path}: missing {', '.join(missing)}; a GMM pose prior has "
                                 f"means [K, 69], covars [K, 69, 69] and weights [K]")
        return cls(np.asarray(data["means"]), np.asarray(data["covars"]), np.asarray(data["weights"]), str(path))

    def tensors(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> GMMTensors:
        """The prior's terms on ``device`` (computed in float64, then cast)."""
        precisions = np.linalg.inv(self.covars)
        precisions = 0.5 * (precisions + precisions.transpose(0, 2, 1))
        _, logdet = np.linalg.slogdet(self.covars)
        D = self.means.shape[1]
        constants = -np.log(self.weights) + 0.5 * logdet + 0.5 * D * np.log(2 * np.pi)
        arrays = (self.means, precisions, constants)
        return GMMTensors(*(torch.tensor(np.array(a), dtype=dtype, device=device) for a in arrays))

    def nll(self, body_pose) -> np.ndarray:
        """Max-mixture negative log likelihood [B] of body poses [B, 69] (numpy convenience)."""
        x = torch.as_tensor(np.asarray(body_pose, dtype=np.float64).reshape(-1, 69))
        return self.tensors("cpu", torch.float64).nll(x).numpy()


def _load_pickle(path: Path) -> dict:
    """SMPLify's pickled GMM (a Python 2 dict of arrays, sometimes chumpy) through the chumpy-free reader."""
    from fitting.smpl_pickle import read_smpl_pickle

    return read_smpl_pickle(path)
