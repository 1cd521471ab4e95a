"""The optional multi-view 2D term of the body fit: the model's keypoints reprojected into every camera.

For each camera c, frame t and joint j the model keypoint X_tj (``keypoint_maps``) is projected with the
camera's own lens model (``rigs.projection.project``: OpenCV pinhole or fisheye, on torch tensors) and
compared with the detection x_ctj of score s_ctj:

    E_2d = mean_c  sum_tj  w_j s_ctj rho(|pi_c(X_tj) - x_ctj|),   rho(r) = sigma^2 r^2 / (sigma^2 + r^2)

(Geman-McClure on pixels, ``w_j`` the keypoint map's weight). Missing detections (NaN, score 0) weigh
nothing. A model point at or behind a camera is swapped, for that camera only, for a fixed point 1 m in
front of it before projecting (and weighs nothing), so neither the loss nor its gradient sees a NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rigs import projection
from rigs.camera import Rig


class ObservationError(ValueError):
    """2D observations that do not match the rig or the skeleton."""


@dataclass(frozen=True, eq=False)
class MultiViewObservations:
    """One track's 2D keypoints in every camera of ``rig``: [C, T, J, 3] (x, y, score; NaN/0 missing),
    cameras in the rig's order, frames and joints as the track's 3D keypoints."""

    rig: Rig
    keypoints2d: np.ndarray

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints2d, dtype=np.float64)
        if kp.ndim != 4 or kp.shape[-1] != 3 or kp.shape[0] != len(self.rig):
            raise ObservationError(f"keypoints2d of shape {kp.shape}: expected [C={len(self.rig)}, T, J, 3] "
                                   f"(one block per camera of rig {self.rig.name!r})")
        kp = kp.copy()
        kp.setflags(write=False)
        object.__setattr__(self, "keypoints2d", kp)

    def tensors(self, kmap, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
                ) -> ReprojectionTerm:
        """The term on ``device`` for keypoint map ``kmap`` (its weights multiply the scores)."""
        kp = self.keypoints2d
        if kp.shape[2] != kmap.num_joints:
            raise ObservationError(f"keypoints2d have {kp.shape[2]} joints but skeleton {kmap.skeleton!r} "
                                   f"has {kmap.num_joints}")
        ok = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
        w = np.where(ok, kp[..., 2], 0.0) * np.asarray(kmap.weights)[None, None]
        tt = {"dtype": dtype, "device": device}
        return ReprojectionTerm(
            K=torch.as_tensor(np.stack([c.K for c in self.rig]), **tt),
            dist=tuple(torch.tensor(np.array(c.dist, float), **tt) for c in self.rig),
            R=torch.as_tensor(np.stack([c.R for c in self.rig]), **tt),
            t=torch.as_tensor(np.stack([c.t for c in self.rig]), **tt),
            centers=torch.as_tensor(self.rig.centers, **tt),
            models=tuple(c.model for c in self.rig),
            observed=torch.as_tensor(np.nan_to_num(kp[..., :2]), **tt),
            weight=torch.as_tensor(w, **tt),
        )


@dataclass(frozen=True, eq=False)
class ReprojectionTerm:
    """The 2D term's tensors: cameras (K, dist, R, t [C, ...]) and detections [C, T, J, 2] with weights."""

    K: torch.Tensor
    dist: tuple[torch.Tensor, ...]
    R: torch.Tensor
    t: torch.Tensor
    centers: torch.Tensor
    models: tuple[str, ...]
    observed: torch.Tensor
    weight: torch.Tensor

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model points [T, J, 3] -> (pixels [C, T, J, 2], in_front [C, T, J]); points at or behind a
        camera are replaced by a point in front of it (their pixels are meaningless, in_front False)."""
        pixels, front = [], []
        for c in range(len(self.models)):
            depth = points @ self.R[c, 2] + self.t[c, 2]
            ok = depth > 1e-3
            safe = torch.where(ok[..., None], points, (self.centers[c] + self.R[c, 2]).expand_as(points))
            pixels.append(projection.project(safe, self.K[c], self.dist[c], self.R[c], self.t[c], self.models[c]))
            front.append(ok)
        return torch.stack(pixels), torch.stack(front)

    def residuals(self, points: torch.Tensor) -> torch.Tensor:
        """Pixel distances [C, T, J] of the projected points from the detections (NaN where none)."""
        pixels, front = self.project(points)
        r = torch.linalg.vector_norm(pixels - self.observed, dim=-1)
        return torch.where((self.weight > 0) & front, r, torch.full_like(r, float("nan")))

    def loss(self, points: torch.Tensor, sigma_px: float, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over frames and joints, mean over cameras, of the weighted Geman-McClure pixel residual;
        ``mask`` [T or 1, J] multiplies the weights."""
        pixels, front = self.project(points)
        r2 = ((pixels - self.observed) ** 2).sum(-1)
        w = self.weight * front
        if mask is not None:
            w = w * mask
        s2 = sigma_px**2
        return (w * s2 * r2 / (s2 + r2)).sum() / len(self.models)
