"""Accuracy of 3D poses against ground truth: MPJPE and friends, ignoring missing joints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PoseErrors:
    """Per-joint errors (metres) of every compared joint, with summary statistics."""

    errors: np.ndarray  # [N] metres, one per joint present in both
    missing: int  # ground-truth joints with no estimate
    total: int  # ground-truth joints compared

    @property
    def mpjpe_mm(self) -> float:
        return float(np.mean(self.errors) * 1000) if self.errors.size else float("nan")

    @property
    def median_mm(self) -> float:
        return float(np.median(self.errors) * 1000) if self.errors.size else float("nan")

    @property
    def p95_mm(self) -> float:
        return float(np.percentile(self.errors, 95) * 1000) if self.errors.size else float("nan")

    @property
    def completeness(self) -> float:
        """Fraction of ground-truth joints that were reconstructed."""
        return 1.0 - self.missing / self.total if self.total else float("nan")


def joint_errors(pred: np.ndarray, truth: np.ndarray) -> PoseErrors:
    """Compare matched poses [..., J, 3|4]; a joint counts where truth exists (score > 0, finite)."""
    pred_xyz = np.asarray(pred, np.float64)[..., :3]
    truth_xyz = np.asarray(truth, np.float64)[..., :3]
    truth_ok = np.isfinite(truth_xyz).all(-1)
    if truth.shape[-1] == 4:
        truth_ok &= truth[..., 3] > 0
    pred_ok = np.isfinite(pred_xyz).all(-1)
    if pred.shape[-1] == 4:
        pred_ok &= pred[..., 3] > 0
    both = truth_ok & pred_ok
    err = np.linalg.norm(pred_xyz[both] - truth_xyz[both], axis=-1)
    return PoseErrors(errors=err, missing=int((truth_ok & ~pred_ok).sum()), total=int(truth_ok.sum()))


def mpjpe(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-joint position error in millimetres over joints present in both."""
    return joint_errors(pred, truth).mpjpe_mm
