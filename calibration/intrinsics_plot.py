"""A picture of a lens calibration: where the corners were, how well each view fits, what the lens does.

Four panels: (a) the image frame with the 6 x 6 coverage grid shaded by corner count, the corners of each
used view in its own colour and those of dropped views in grey; (b) each view's RMS reprojection error,
dropped views (error under the final lens, pose by PnP) hatched; (c) the distortion field, arrows from
where an ideal pinhole camera would put a pixel to where the lens puts it (lengths to scale, colour by
size); (d) board orientations as the normal's (x, y) components: the distance from the centre is the
sine of the tilt, rings at 20 and 45 deg.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calibration.coverage import FINE_CELLS, coverage_grid

if TYPE_CHECKING:
    from calibration.intrinsics import IntrinsicsResult

_ARROWS = 13  # grid points along the long side of the distortion field


def plot_intrinsics(result: IntrinsicsResult, path: str | Path) -> Path:
    """Write the calibration figure of ``result`` to ``path`` (PNG, PDF or SVG by suffix); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cam = result.camera
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    _coverage_panel(axes[0, 0], result)
    _rms_panel(axes[0, 1], result)
    _distortion_panel(axes[1, 0], result)
    _tilt_panel(axes[1, 1], result)
    std = result.std
    fx, fy = cam.focal
    fig.suptitle(f"{cam.name}: {cam.model} {cam.width}x{cam.height}, RMS {result.rms:.3f} px over {len(result.used)} "
                 f"views ({len(result.dropped)} dropped)\n"
                 f"fx {fx:.1f}±{std.get('fx', np.nan):.1f}  fy {fy:.1f}±{std.get('fy', np.nan):.1f}  "
                 f"cx {cam.K[0, 2]:.1f}±{std.get('cx', np.nan):.1f}  "
                 f"cy {cam.K[1, 2]:.1f}±{std.get('cy', np.nan):.1f} px"
                 f"  dist " + " ".join(f"{d:+.4f}" for d in cam.dist), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _frame(ax, cam) -> None:
    ax.set_xlim(-0.5, cam.width - 0.5)
    ax.set_ylim(cam.height - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")


def _coverage_panel(ax, result: IntrinsicsResult) -> None:
    cam = result.camera
    grid = coverage_grid(result.used, cam.size, FINE_CELLS)
    ax.imshow(grid > 0, cmap="Greens", vmin=0, vmax=3, alpha=0.6, interpolation="nearest",
              extent=(-0.5, cam.width - 0.5, cam.height - 0.5, -0.5))
    for x in np.linspace(-0.5, cam.width - 0.5, 4)[1:-1]:
        ax.axvline(x, color="0.6", lw=0.8, ls="--")
    for y in np.linspace(-0.5, cam.height - 0.5, 4)[1:-1]:
        ax.axhline(y, color="0.6", lw=0.8, ls="--")
    if result.dropped:
        gone = np.concatenate([np.asarray(v.corners, float).reshape(-1, 2) for v, _ in result.dropped])
        ax.scatter(gone[:, 0], gone[:, 1], s=3, c="0.7", marker="x", lw=0.5, label="dropped views")
    colours = _view_colours(len(result.used))
    for v, c in zip(result.used, colours, strict=True):
        ax.scatter(v.corners[:, 0], v.corners[:, 1], s=4, color=c, lw=0)
    covered = float((grid > 0).mean())
    ax.set_title(f"(a) corners of {len(result.used)} used views; {covered:.0%} of the {FINE_CELLS}x{FINE_CELLS} "
                 f"cells covered (green)")
    _frame(ax, cam)
    if result.dropped:
        ax.legend(loc="upper right", fontsize=8)


def _view_colours(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, max(n, 1))][:n]


def _rms_panel(ax, result: IntrinsicsResult) -> None:
    used = np.asarray(result.view_rms, float)
    dropped = result.dropped_rms if result.dropped_rms is not None else np.full(len(result.dropped), np.nan)
    measured = [(v, why, r) for (v, why), r in zip(result.dropped, dropped, strict=True) if np.isfinite(r)]
    measured = [m for m in measured if not m[1].startswith("not selected")] or measured
    measured = sorted(measured, key=lambda m: -m[2])[:40]
    x = np.arange(len(used))
    ax.bar(x, used, color=_view_colours(len(used)), label="used")
    if measured:
        xd = len(used) + 1 + np.arange(len(measured))
        ax.bar(xd, [m[2] for m in measured], color="0.75", hatch="//", edgecolor="tab:red", label="dropped")
    ax.axhline(np.median(used), color="k", lw=0.8, ls="--", label=f"median {np.median(used):.2f} px")
    labels = [_short(v) for v in result.used] + ([""] + [_short(m[0]) for m in measured] if measured else [])
    ticks = list(x) + ([len(used)] + list(len(used) + 1 + np.arange(len(measured))) if measured else [])
    if len(ticks) <= 60:
        ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
    ax.set_ylabel("RMS reprojection error (px)")
    ax.set_title("(b) per-view error (dropped: under the final lens)")
    if measured and max(m[2] for m in measured) > 10 * max(used.max(), 1e-3):
        ax.set_yscale("log")
    ax.legend(fontsize=8)


def _short(view) -> str:
    source = getattr(view, "source", "") or ""
    return Path(source).name[-18:] if source else str(view.frame)


def _distortion_panel(ax, result: IntrinsicsResult) -> None:
    from rigs import projection

    cam = result.camera
    nx = _ARROWS if cam.width >= cam.height else max(3, round(_ARROWS * cam.width / cam.height))
    ny = max(3, round(nx * cam.height / cam.width))
    u, v = np.meshgrid(np.linspace(0, cam.width - 1, nx), np.linspace(0, cam.height - 1, ny))
    px = np.stack([u, v], -1)
    ideal = projection.normalized_to_pixels(cam.undistort(px), cam.K)
    shift = px - ideal
    size = np.linalg.norm(shift, axis=-1)
    finite = np.isfinite(size)
    shift = np.where(finite[..., None], shift, 0.0)
    largest = float(np.nanmax(size)) if finite.any() else 0.0
    spacing = cam.width / max(nx - 1, 1)
    magnify = _nice(0.8 * spacing / largest) if 0 < largest < 0.8 * spacing else 1.0
    q = ax.quiver(ideal[..., 0][finite], ideal[..., 1][finite], magnify * shift[..., 0][finite],
                  magnify * shift[..., 1][finite], size[finite], angles="xy", scale_units="xy", scale=1,
                  cmap="viridis", width=0.004)
    ax.figure.colorbar(q, ax=ax, label="pixel shift by the lens (px)", shrink=0.8)
    ax.plot(cam.K[0, 2], cam.K[1, 2], "r+", ms=12, label="principal point")
    scale = f", arrows x{magnify:g}" if magnify != 1 else ""
    ax.set_title(f"(c) distortion: ideal pinhole -> lens (max {largest:.1f} px{scale})")
    _frame(ax, cam)
    ax.legend(loc="upper right", fontsize=8)


def _nice(x: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above x (at least 1)."""
    if x <= 1:
        return 1.0
    k = 10 ** np.floor(np.log10(x))
    return float(max(m * k for m in (1, 2, 5) if m * k <= x))


def _tilt_panel(ax, result: IntrinsicsResult) -> None:
    n = result.normals
    ring = np.linspace(0, 2 * np.pi, 181)
    for deg in (20, 45):
        r = np.sin(np.radians(deg))
        ax.plot(r * np.cos(ring), r * np.sin(ring), color="0.6", lw=0.8, ls="--")
        ax.text(r * 0.71, r * 0.71, f"{deg} deg", fontsize=8, color="0.4")
    if n is not None and len(n):
        ax.scatter(n[:, 0], n[:, 1], c=_view_colours(len(n)), s=25)
        tilt = np.degrees(np.arccos(np.clip(np.abs(n[:, 2]), 0, 1)))
        ax.set_title(f"(d) board tilt per view (max {tilt.max():.0f} deg, median {np.median(tilt):.0f} deg)")
    else:
        ax.set_title("(d) board tilt per view")
    ax.axhline(0, color="0.85", lw=0.8)
    ax.axvline(0, color="0.85", lw=0.8)
    ax.set_xlim(-1, 1)
    ax.set_ylim(1, -1)
    ax.set_aspect("equal")
    ax.set_xlabel("normal x (turned left/right)")
    ax.set_ylabel("normal y (tipped up/down)")
    if result.advice:
        ax.text(-0.97, 0.97, "\n".join(_wrap(a) for a in result.advice[:4]), fontsize=7, va="bottom", ha="left",
                color="tab:red")


def _wrap(text: str, width: int = 70) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
