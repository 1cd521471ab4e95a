"""Multi-camera extrinsics from a board moved through the capture volume.

Each camera keeps the intrinsics the rig gives it. Every detection is turned into a board pose in its camera
(``board_poses``: IPPE then Levenberg-Marquardt); the frames two cameras share give their relative pose, and
a maximum spanning tree over the robustly averaged pairs places every camera in the first camera's frame
(``pose_graph``). Each frame the board was seen in by two or more cameras becomes one rigid board pose in the
world, started from the camera that saw most of its corners. A sparse bundle adjustment (``bundle_adjust``,
soft-L1 loss with ``F_SCALE`` px) then refines all camera and board poses (and the intrinsics on request)
against every corner; corners that robust solution misses by more than ``max(OUTLIER_FLOOR, OUTLIER_FACTOR *
median)`` pixels are dropped and a last pass runs on the rest.
``refine_extrinsics`` runs the same adjustment from camera poses already known (a previous calibration).

The world is the first camera of the rig (``R = I``, ``t = 0``) and the unit is the board's (metres); putting
the floor at z = 0 is a separate step (``calibration.world_frame``). The board never has to be seen by all
cameras at once, only by overlapping pairs that chain every camera to the first. The same views in the same
order give the same rig bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from calibration.board_poses import BoardPoses, board_poses
from calibration.bundle_adjust import BoardObservations, BundleResult, bundle_adjust
from calibration.errors import CalibrationError
from calibration.pose_graph import camera_graph
from rigs.board import Board
from rigs.camera import Rig

if TYPE_CHECKING:
    from calibration.board_detection import BoardView

F_SCALE = 1.0  # px: the soft-L1 loss is quadratic below about this residual
OUTLIER_FACTOR = 4.0  # corners further than this many median residuals are dropped before the second pass
OUTLIER_FLOOR = 2.0  # px: ... but never closer than this
MAX_NFEV = 100  # residual evaluations per bundle-adjustment pass
PASS = 2 * MAX_NFEV  # progress steps of one bundle_adjust call (a rough start takes two solver runs)


@dataclass(frozen=True, eq=False)
class ExtrinsicsResult:
    """The calibrated rig (world = its first camera), the final adjustment and how the cameras connected."""

    rig: Rig
    bundle: BundleResult
    frames: np.ndarray  # [K] frame key of each board pose of the adjustment
    camera_rms: dict[str, float]  # px, inlier corners
    connections: dict[tuple[str, str], int]  # board views shared per camera pair
    warnings: tuple[str, ...]  # poorly connected cameras, rejected views, dropped corners


def calibrate_extrinsics(rig: Rig, views: Sequence[BoardView], board: Board, *, refine_intrinsics: bool = False,
                         progress: Callable[[int, int], None] | None = None) -> ExtrinsicsResult:
    """Every camera's pose from board views (world = the rig's first camera), intrinsics from the rig."""
    views = list(views)
    _check_views(rig, views)
    total = len(views) + 2 * PASS
    poses = board_poses(rig, views, board, progress=_stage(progress, 0, total))
    warnings = _rejections(rig, views, poses.reasons, poses.ok)
    used = np.flatnonzero(poses.ok)
    cam = np.array([rig.index(views[i].camera) for i in used], np.int64)
    frame = np.array([views[i].frame for i in used])
    graph = camera_graph(rig.names, cam, frame, poses.R[used], poses.t[used])
    start = rig.replace(cameras=tuple(c.with_extrinsics(R, t) for c, R, t in zip(rig, graph.R, graph.t,
                                                                                     strict=True)))
    result = _adjust(start, views, board, poses, refine_intrinsics, progress, len(views), total)
    return dataclasses.replace(result, warnings=tuple(warnings + list(graph.warnings)) + result.warnings)


def refine_extrinsics(rig: Rig, views: Sequence[BoardView], board: Board, *, refine_intrinsics: bool = False,
                      poses: BoardPoses | None = None,
                      progress: Callable[[int, int], None] | None = None) -> ExtrinsicsResult:
    """Refine a rig whose camera poses are roughly known (a previous calibration, a survey) against board
    views; the first camera keeps its pose. ``poses``: the views' board poses when already computed."""
    views = list(views)
    _check_views(rig, views)
    total = (0 if poses is not None else len(views)) + 2 * PASS
    warnings = []
    if poses is None:
        poses = board_poses(rig, views, board, progress=_stage(progress, 0, total))
        warnings = _rejections(rig, views, poses.reasons, poses.ok)
    result = _adjust(rig, views, board, poses, refine_intrinsics, progress, total - 2 * PASS, total)
    return dataclasses.replace(result, warnings=tuple(warnings) + result.warnings)


def _stage(progress, offset: int, total: int):
    """progress(done, n) of one stage as progress(offset + done, total) of the whole."""
    return None if progress is None else (lambda done, _n: progress(offset + done, total))


def _adjust(rig: Rig, views: list, board: Board, poses: BoardPoses, refine_intrinsics: bool, progress,
            offset: int, total: int) -> ExtrinsicsResult:
    """Board poses in the world from the rig's cameras, then the two bundle-adjustment passes."""
    used = np.flatnonzero(poses.ok)
    cam = np.array([rig.index(views[i].camera) for i in used], np.int64)
    frame = np.array([views[i].frame for i in used])
    # one board pose per frame seen by two or more cameras (by one too when the intrinsics are refined)
    keys, slot, per_frame = np.unique(frame, return_inverse=True, return_counts=True)
    wanted = per_frame >= (1 if refine_intrinsics else 2)
    if not wanted.any():
        raise CalibrationError("no frame shows the board in two cameras at once; capture the board where "
                               "neighbouring cameras see it at the same time")
    pose_of = np.full(len(keys), -1)
    pose_of[wanted] = np.arange(int(wanted.sum()))
    n_corners = np.array([views[i].ids.size for i in used])
    rank = np.lexsort((poses.rms[used], -n_corners, slot))  # per frame: most corners, then lowest error
    best = rank[np.r_[True, slot[rank][1:] != slot[rank][:-1]]]  # best view of each frame, frame order
    best = best[wanted[slot[best]]]
    Rc = np.stack([c.R for c in rig])[cam[best]]
    tc = np.stack([c.t for c in rig])[cam[best]]
    board_R = np.einsum("nji,njk->nik", Rc, poses.R[used[best]])
    board_t = np.einsum("nji,nj->ni", Rc, poses.t[used[best]] - tc)

    keep = wanted[slot]
    obs = BoardObservations(
        camera=np.repeat(cam[keep], n_corners[keep]),
        pose=np.repeat(pose_of[slot[keep]], n_corners[keep]),
        corner=np.concatenate([views[i].ids for i in used[keep]]).astype(np.int64),
        pixels=np.concatenate([np.asarray(views[i].corners, float).reshape(-1, 2) for i in used[keep]]))
    corners = board.corner_points()
    result = bundle_adjust(rig, board_points=corners, board_R=board_R, board_t=board_t, board_obs=obs,
                           refine_intrinsics=refine_intrinsics, loss="soft_l1", f_scale=F_SCALE, max_nfev=MAX_NFEV,
                           progress=_stage(progress, offset, total))
    norm = np.linalg.norm(result.board_residuals, axis=1)
    limit = max(OUTLIER_FLOOR, OUTLIER_FACTOR * float(np.median(norm)))
    inlier = norm <= limit
    warnings = [f"camera {name} has no board corners in the adjustment; its pose is left as it was"
                for c, name in enumerate(rig.names) if not (obs.camera == c).any()]
    if not inlier.all():
        warnings.append(f"dropped {int((~inlier).sum())} of {norm.size} corners as outliers (more than "
                        f"{limit:.2f} px from the robust adjustment)")
        kept = BoardObservations(obs.camera[inlier], obs.pose[inlier], obs.corner[inlier], obs.pixels[inlier])
        result = bundle_adjust(result.rig, board_points=corners, board_R=result.board_R, board_t=result.board_t,
                               board_obs=kept, refine_intrinsics=refine_intrinsics, loss="soft_l1",
                               f_scale=F_SCALE, max_nfev=MAX_NFEV, progress=_stage(progress, offset + PASS, total))
    if progress is not None:
        progress(total, total)
    return ExtrinsicsResult(rig=result.rig, bundle=result, frames=keys[wanted], camera_rms=result.camera_rms,
                            connections=_connections(rig.names, cam, frame), warnings=tuple(warnings))


def _connections(names, cam: np.ndarray, frame: np.ndarray) -> dict[tuple[str, str], int]:
    """Board views shared per camera pair (pairs sharing none left out)."""
    _, slot = np.unique(frame, return_inverse=True)
    seen = np.zeros((slot.max() + 1 if slot.size else 0, len(names)), bool)
    seen[slot, cam] = True
    shared = seen.T.astype(np.int64) @ seen.astype(np.int64)
    return {(names[a], names[b]): int(shared[a, b]) for a in range(len(names)) for b in range(a + 1, len(names))
            if shared[a, b]}


def _check_views(rig: Rig, views: list) -> None:
    """CalibrationError for no views, views of cameras the rig lacks, or views of another image size."""
    if not views:
        raise CalibrationError("no board views to calibrate from: detect the board in each camera's frames "
                               "first (at least a few frames per pair of neighbouring cameras)")
    unknown = sorted({v.camera for v in views} - set(rig.names))
    if unknown:
        raise CalibrationError(f"board views name camera{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}, "
                               f"which rig {rig.name!r} does not have (it has {', '.join(rig.names)}); "
                               f"name the views after the rig's cameras or add the camera to the rig")
    for v in views:
        size = tuple(getattr(v, "image_size", ()) or ())
        cam = rig[v.camera]
        if size and size != cam.size:
            raise CalibrationError(f"camera {cam.name}: board view {v.source or v.frame} is {size[0]}x{size[1]} "
                                   f"but the rig's intrinsics are for {cam.width}x{cam.height}; calibrate the "
                                   f"intrinsics at this size or detect on full-size frames")


def _rejections(rig: Rig, views: list, reasons: Sequence[str], ok: np.ndarray) -> list[str]:
    """Warnings about rejected views; CalibrationError when a camera has views but none usable."""
    out = []
    for name in rig.names:
        mine = [i for i, v in enumerate(views) if v.camera == name]
        bad = Counter(reasons[i] for i in mine if not ok[i])
        if mine and not any(ok[i] for i in mine):
            summary = "; ".join(f"{n} x {r}" for r, n in bad.most_common(3))
            raise CalibrationError(f"camera {name}: none of its {len(mine)} board views gives a board pose "
                                   f"({summary}); check its intrinsics and the board spec, or capture the "
                                   f"board closer and less oblique")
        if bad:
            out.append(f"camera {name}: {sum(bad.values())} of {len(mine)} board views rejected ("
                       + "; ".join(f"{n} x {r}" for r, n in bad.most_common(3)) + ")")
    return out
