"""What a calibration leaves for people to look at: a summary text, the camera layout and the
per-camera reprojection error as plots, in a report folder beside the rig file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rigs.camera import Rig
from rigs.layout_plot import plot_layout


def report_folder(rig_path: str | Path) -> Path:
    """Where the report of the rig written to ``rig_path`` goes: ``<stem>-report/`` beside it."""
    rig_path = Path(rig_path)
    return rig_path.with_name(f"{rig_path.stem}-report")


def plot_camera_rms(camera_rms: Mapping[str, float], path: str | Path, title: str,
                    warn_px: float = 1.0) -> Path:
    """A bar per camera of its reprojection RMS (px), those above ``warn_px`` in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(camera_rms)
    values = [camera_rms[n] for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.2), dpi=100)
    colours = ["tab:red" if v > warn_px else "tab:blue" for v in values]
    ax.bar(names, values, color=colours)
    ax.axhline(warn_px, color="grey", lw=0.8, ls="--")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("reprojection RMS (px)")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=45 if len(names) > 6 else 0)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(folder: str | Path, rig: Rig, title: str, lines: Sequence[str],
                 camera_rms: Mapping[str, float] | None = None, warnings: Sequence[str] = ()) -> Path:
    """summary.txt (title, lines, warnings), layout.png and, given per-camera RMS, reprojection.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = [title, "=" * len(title), *lines]
    if warnings:
        text += ["", "Warnings:", *(f"- {w}" for w in warnings)]
    (folder / "summary.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    plot_layout(rig, folder / "layout.png")
    if camera_rms:
        plot_camera_rms(camera_rms, folder / "reprojection.png", title)
    return folder
