"""Plots of 3D error against ground truth: per joint, and over time per person."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_errors(pred: np.ndarray, truth: np.ndarray, joint_names: tuple[str, ...], fps: float,
                path: str | Path, title: str) -> Path:
    """Write a PNG: mean error per joint (bars) and per-frame MPJPE per person, both in mm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.isfinite(pred[..., :3]).all(-1) & (pred[..., 3] > 0) & (truth[..., 3] > 0)
    err = np.where(ok, np.linalg.norm(pred[..., :3] - truth[..., :3], axis=-1), np.nan) * 1000  # [T, P, J]
    with np.errstate(all="ignore"):
        per_joint = np.nanmean(err, axis=(0, 1))
        per_frame = np.nanmean(err, axis=2)  # [T, P]
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 7), dpi=100)
    a.bar(np.arange(len(joint_names)), np.nan_to_num(per_joint), color="tab:blue")
    a.set_xticks(np.arange(len(joint_names)), joint_names, rotation=70, fontsize=7)
    a.set_ylabel("mean error (mm)")
    a.set_title(title)
    t = np.arange(err.shape[0]) / fps
    for p in range(err.shape[1]):
        b.plot(t, per_frame[:, p], lw=0.8, label=f"person {p}")
    b.set_xlabel("time (s)")
    b.set_ylabel("MPJPE (mm)")
    b.legend(fontsize=8)
    b.grid(True, lw=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
