"""The fit report under ``SESSION/report/fit/``: what was fitted with which body model, the per-joint error of
the model's keypoints against the input, a per-frame error plot per track, and one rendered frame per track
(the posed mesh with the input keypoints) to look at.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fitting.fit_session import SkippedTrack, TrackFit


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def joint_error_table(fits: list[TrackFit], joint_names: tuple[str, ...]) -> list[tuple[str, float, float, int]]:
    """(joint, mean mm, median mm, frames) over every fitted track, joints the input reported."""
    errs = [np.asarray(f.result.joint_error_mm, np.float64) for f in fits]
    rows = []
    for j, name in enumerate(joint_names):
        e = np.concatenate([x[:, j] for x in errs]) if errs else np.zeros(0)
        e = e[np.isfinite(e)]
        if e.size:
            rows.append((name, float(e.mean()), float(np.median(e)), int(e.size)))
    return rows


def summary_lines(fits: list[TrackFit], skipped: list[SkippedTrack], model, skeleton: str, device: str,
                  joint_names: tuple[str, ...]) -> list[str]:
    """The report's summary: body model, per-track error, jumps, twists, skipped tracks."""
    a = model.arrays
    lines = ["mocap fit",
             f"body model: {a.source} ({a.gender}, {a.num_betas} shape parameters)"
             + ("  -- the STAND-IN body model, not SMPL: shapes and meshes are the project's own" if a.is_standin
                else ""),
             f"input: poses3d.npz, skeleton {skeleton}; device {device}", ""]
    for f in fits:
        r, T = f.result, f.input.keypoints.shape[0]
        e = np.asarray(r.joint_error_mm)
        e = e[np.isfinite(e)]
        twist = np.nanmax(np.abs(r.twist_deg), axis=0) if np.size(r.twist_deg) else np.zeros(4)
        lines.append(f"track {f.input.track_id}: {T} frames from frame {f.input.first_frame}, fitted in "
                     f"{f.seconds:.1f} s ({T / max(f.seconds, 1e-9):.0f} frames/s); keypoint error mean "
                     f"{e.mean():.1f} mm, median {np.median(e):.1f} mm" if e.size else
                     f"track {f.input.track_id}: {T} frames; no keypoint error (no input joints)")
        lines.append(f"  largest twist (deg): forearms {twist[0]:.0f}/{twist[1]:.0f}, shins {twist[2]:.0f}/"
                     f"{twist[3]:.0f} (left/right)")
        jumps = [int(j) for j in np.asarray(r.jumps).ravel()]
        lines.append(f"  jumps between frames: {len(jumps)}"
                     + (f" at frames {', '.join(str(f.input.first_frame + j) for j in jumps[:20])}"
                        + (" ..." if len(jumps) > 20 else "") + " (check these: the fit changes abruptly there)"
                        if jumps else ""))
    for s in skipped:
        lines.append(f"track {s.track_id}: NOT FITTED: {s.reason}")
    table = joint_error_table(fits, joint_names)
    if table:
        lines += ["", "per-joint error of the model's keypoints vs the input (mm):",
                  f"{'joint':<18}{'mean':>8}{'median':>8}{'frames':>8}"]
        lines += [f"{n:<18}{m:>8.1f}{md:>8.1f}{k:>8d}" for n, m, md, k in table]
    return lines


def plot_frame_errors(fits: list[TrackFit], path: Path) -> Path:
    """PNG: mean keypoint error per frame of every track, jumps marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for f in fits:
        e = np.asarray(f.result.joint_error_mm, np.float64)
        with np.errstate(all="ignore"):
            per_frame = np.nanmean(np.where(np.isfinite(e), e, np.nan), axis=1)
        x = f.input.first_frame + np.arange(len(per_frame))
        line, = ax.plot(x, per_frame, lw=0.8, label=f"track {f.input.track_id}")
        jumps = np.asarray(f.result.jumps, int).ravel()
        if jumps.size:
            ax.plot(x[jumps], per_frame[jumps], "x", color=line.get_color(), ms=6)
    ax.set_xlabel("frame")
    ax.set_ylabel("mean keypoint error (mm)")
    ax.set_title("fit error per frame (x: a jump between frames)")
    if fits:
        ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_frame(model, fit: TrackFit, frame: int, path: Path, title: str = "") -> Path:
    """PNG: the fitted mesh at one frame of the track, front and side views, with the input keypoints."""
    import torch
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    plt = _pyplot()
    r = fit.result
    dev = model.device
    with torch.no_grad():
        verts = model.vertices(torch.as_tensor(np.asarray(r.betas)[None], dtype=torch.float32, device=dev),
                               torch.as_tensor(np.asarray(r.poses[frame:frame + 1]).reshape(1, 24, 3),
                                               dtype=torch.float32, device=dev),
                               torch.as_tensor(np.asarray(r.trans[frame:frame + 1]), dtype=torch.float32,
                                               device=dev))[0].cpu().numpy()
    faces = np.asarray(model.arrays.faces)
    kp = fit.input.keypoints[frame]
    kp = kp[kp[:, 3] > 0, :3]
    centre = verts.mean(0)
    half = 0.55 * max(np.ptp(verts, 0).max(), 1.0)
    fig = plt.figure(figsize=(9, 5))
    for k, (azim, name) in enumerate(((0, "front (+X)"), (90, "side (+Y)"))):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        tris = verts[faces]
        shade = np.abs(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]))
        shade = 0.35 + 0.6 * shade[:, 0 if azim == 0 else 1] / (np.linalg.norm(shade, axis=1) + 1e-12)
        coll = Poly3DCollection(tris, facecolors=plt.cm.Greys(1 - shade * 0.6), edgecolors="none", alpha=0.55)
        ax.add_collection3d(coll)
        if kp.size:
            ax.scatter(kp[:, 0], kp[:, 1], kp[:, 2], c="tab:red", s=10, depthshade=False, label="input keypoints")
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=5, azim=azim)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
    fig.suptitle(title or f"track {fit.input.track_id}, frame {fit.input.first_frame + frame}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_fit_report(folder: Path, fits: list[TrackFit], skipped: list[SkippedTrack], model, skeleton: str,
                     device: str, joint_names: tuple[str, ...]) -> list[Path]:
    """Write summary.txt, joint_errors.json, errors.png and frame_track_<id>.png; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = summary_lines(fits, skipped, model, skeleton, device, joint_names)
    paths = [folder / "summary.txt"]
    paths[0].write_text("\n".join(lines) + "\n")
    table = joint_error_table(fits, joint_names)
    paths.append(folder / "joint_errors.json")
    paths[-1].write_text(json.dumps({
        "body_model": model.arrays.source, "standin": bool(model.arrays.is_standin),
        "joints": {n: {"mean_mm": m, "median_mm": md, "frames": k} for n, m, md, k in table},
        "tracks": {str(f.input.track_id): {"frames": int(f.input.keypoints.shape[0]),
                                           "first_frame": f.input.first_frame,
                                           "jumps": [int(j) for j in np.asarray(f.result.jumps).ravel()],
                                           "seconds": f.seconds} for f in fits},
        "skipped": {str(s.track_id): s.reason for s in skipped}}, indent=1))
    paths.append(plot_frame_errors(fits, folder / "errors.png"))
    for f in fits:
        seen = (f.input.keypoints[..., 3] > 0).sum(-1)
        frame = int(np.argmax(seen >= seen.max()))  # the first frame that shows the most joints
        paths.append(render_frame(model, f, frame, folder / f"frame_track_{f.input.track_id}.png"))
    return paths
