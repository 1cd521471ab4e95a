"""A top view of a rig: where each camera stands and where it looks, for checking a layout at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rigs.camera import Rig


def _fov_edges(cam, depth: float) -> np.ndarray:
    """[2, 3] world points on the rays through the left and right edges of the middle image row."""
    mid = (cam.height - 1) / 2
    xy = cam.undistort(np.array([[0.0, mid], [cam.width - 1.0, mid]]))
    pts_cam = np.c_[xy, np.ones(2)] * depth
    return (pts_cam - cam.t) @ cam.R  # R^T (p - t)


def plot_layout(rig: Rig, path: str | Path, frustum_depth: float = 1.0) -> Path:
    """Write a top-view PNG (x right, y up on the page): camera positions, optical axes, horizontal fields of view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    centers = rig.centers
    span = max(np.ptp(centers[:, :2], axis=0).max(), 1.0)
    depth = frustum_depth * span / 2.5
    for cam in rig:
        c = cam.center
        edges = _fov_edges(cam, depth)
        wedge = np.vstack([c, edges])
        ax.fill(wedge[:, 0], wedge[:, 1], color="tab:blue", alpha=0.12, lw=0.7, ec="0.5")
        d = cam.viewing_direction
        ax.annotate("", xy=(c[0] + d[0] * depth * 1.3, c[1] + d[1] * depth * 1.3), xytext=(c[0], c[1]),
                    arrowprops={"arrowstyle": "->", "color": "tab:red"})
        ax.plot(c[0], c[1], "o", color="tab:blue")
        ax.annotate(f"{cam.name}\nz={c[2]:.2f} m", (c[0], c[1]), textcoords="offset points", xytext=(6, 6),
                    fontsize=8)
    ax.plot(0, 0, "k+", ms=12)
    ax.set_aspect("equal")
    ax.grid(True, lw=0.3)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    sim = " (simulated)" if rig.simulated else ""
    ax.set_title(f"{rig.name}{sim}: {len(rig)} cameras, top view")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
