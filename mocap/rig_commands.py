"""`mocap rig show` and `mocap rig convert`: look at a calibration, and move it between formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from rigs.camera import Rig
from rigs.formats import load_rig, save_rig
from rigs.layout_plot import plot_layout


def camera_table(rig: Rig) -> Table:
    """One row per camera: size, focal, lens, position and where it looks."""
    sim = " [bold yellow](simulated)[/]" if rig.simulated else ""
    table = Table(title=f"rig {rig.name}{sim}: {len(rig)} cameras, world frame {rig.up}-up, clock {rig.clock}")
    for col in ("camera", "size", "fps", "focal (px)", "lens", "position (m)", "looks towards", "az/el (deg)"):
        table.add_column(col, justify="left" if col in ("camera", "lens") else "right")
    for cam in rig:
        c, d = cam.center, cam.viewing_direction
        az = np.degrees(np.arctan2(d[1], d[0]))
        el = np.degrees(np.arcsin(np.clip(d[2], -1, 1)))
        fx, fy = cam.focal
        table.add_row(
            cam.name,
            f"{cam.width}x{cam.height}",
            f"{cam.fps:g}" if cam.fps else "-",
            f"{fx:.1f}, {fy:.1f}",
            f"{cam.model}, {cam.dist.size} coeffs",
            f"{c[0]:+.3f} {c[1]:+.3f} {c[2]:+.3f}",
            f"{d[0]:+.2f} {d[1]:+.2f} {d[2]:+.2f}",
            f"{az:+.0f} / {el:+.0f}",
        )
    return table


def rig_show(rig_source: str, fmt: str | None, plot: str | None, console: Console) -> int:
    """Print the camera table of any rig file or preset; optionally write the top-view layout plot."""
    rig = load_rig(rig_source, fmt)
    console.print(camera_table(rig))
    if rig.description:
        console.print(rig.description)
    if plot:
        console.print(f"layout plot written to {plot_layout(rig, plot)}")
    return 0


def rig_convert(src: str, dst: str, from_fmt: str | None, to_fmt: str | None, console: Console) -> int:
    """Read a rig in one format and write it in another (mocap's rig.toml unless --to says otherwise)."""
    rig = load_rig(src, from_fmt)
    out = save_rig(rig, Path(dst), to_fmt or "mocap")
    console.print(f"wrote {len(rig)} cameras of rig {rig.name!r} to {out} ({to_fmt or 'mocap'} format)")
    return 0
