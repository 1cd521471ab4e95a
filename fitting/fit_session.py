"""Fit the body model to every track of a session's ``poses3d.npz``: per-track inputs, the fits, the files.

A track's input runs from its first to its last frame (a slot of ``poses3d`` keeps the track's id through
short occlusions, with empty poses there); ``fitting.smplify.fit_sequence`` fits it as one sequence with one
shape. Tracks that cannot be fitted are skipped with a reason (no 3D keypoints at all, fewer frames than
``min_frames``, too few joints ever seen) and the others are still fitted: one bad track never costs a
session its bodies.

With the rig and the session's ``keypoints2d/`` (``views_for_track``) the fit can add the multi-view 2D term:
each camera's detection of the track in each frame is the one lying closest to the track's reprojected
3D keypoints (within ``threshold_px`` median), since ``poses3d`` does not keep detection slots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rigs.camera import Rig
from rigs.poses3d_file import Poses3D

MIN_FRAMES = 5  # a shorter track is usually a ghost; its fit would say nothing
MIN_JOINTS = 6  # joints a track must report in at least one frame to pin a body


class FitInputError(ValueError):
    """A session or track that cannot be fitted; the message says what is wrong and what to do."""


@dataclass(frozen=True, eq=False)
class TrackInput:
    """One track's 3D keypoints from its first to its last frame."""

    track_id: int
    first_frame: int  # index into the session's poses3d frames
    keypoints: np.ndarray  # [T, J, 4] (NaN and score 0 where the track was unseen)
    t_ns: np.ndarray  # int64 [T]


@dataclass(frozen=True)
class SkippedTrack:
    """A track left unfitted, and why (one line a person can act on)."""

    track_id: int
    reason: str


@dataclass(frozen=True, eq=False)
class TrackFit:
    """A fitted track: its input, the fit and how long it took."""

    input: TrackInput
    result: object  # fitting.smplify.FitResult
    seconds: float


def track_inputs(poses3d: Poses3D, *, min_frames: int = MIN_FRAMES, tracks: list[int] | None = None
                 ) -> tuple[list[TrackInput], list[SkippedTrack]]:
    """Every track of ``poses3d`` (or the ids in ``tracks``) as a fitting input, or skipped with a reason."""
    ids = sorted(int(i) for i in np.unique(poses3d.track_ids[poses3d.track_ids >= 0]))
    if tracks is not None:
        unknown = sorted(set(tracks) - set(ids))
        if unknown:
            raise FitInputError(f"--track {', '.join(map(str, unknown))}: no such track in poses3d.npz "
                                f"(tracks: {', '.join(map(str, ids)) or 'none'})")
        ids = [i for i in ids if i in tracks]
    inputs, skipped = [], []
    for tid in ids:
        frames, poses = poses3d.track(tid)
        first, last = int(frames.min()), int(frames.max())
        kp = np.full((last - first + 1, poses.shape[1], 4), np.nan)
        kp[..., 3] = 0.0
        kp[frames - first] = poses
        seen = (kp[..., 3] > 0) & np.isfinite(kp[..., :3]).all(-1)
        kp[~seen] = np.array([np.nan, np.nan, np.nan, 0.0])
        frames_seen = int(seen.any(-1).sum())
        if frames_seen == 0:
            skipped.append(SkippedTrack(tid, "no 3D keypoints at all (every frame is empty or NaN): nothing to fit"))
        elif frames_seen < min_frames:
            skipped.append(SkippedTrack(tid, f"seen in {frames_seen} frame{'s' * (frames_seen != 1)}, fewer than "
                                             f"{min_frames}: usually a ghost; pass --min-frames {frames_seen} to "
                                             f"fit it anyway"))
        elif seen.any(0).sum() < MIN_JOINTS:
            skipped.append(SkippedTrack(tid, f"only {int(seen.any(0).sum())} joints ever seen (at least "
                                             f"{MIN_JOINTS} are needed to pin a body)"))
        else:
            inputs.append(TrackInput(tid, first, kp, poses3d.t_ns[first:last + 1].copy()))
    return inputs, skipped


def views_for_track(rig: Rig, keypoints2d: np.ndarray, t_ns: np.ndarray, track: TrackInput,
                    threshold_px: float = 30.0) -> np.ndarray:
    """Each camera's detection of the track per frame [C, T, J, 3] (NaN, score 0: none), from the session's
    detections [C, T_all, P, J, 3] at times t_ns [T_all]: the detection nearest the reprojected 3D pose."""
    C, _, P, J, _ = keypoints2d.shape
    T = track.keypoints.shape[0]
    out = np.full((C, T, J, 3), np.nan)
    out[..., 2] = 0.0
    index = {int(t): i for i, t in enumerate(np.asarray(t_ns, np.int64))}
    rows = np.array([index.get(int(t), -1) for t in track.t_ns])
    have = np.flatnonzero(rows >= 0)
    if not have.size or P == 0:
        return out
    pts = track.keypoints[have, :, :3]  # [T', J, 3]
    proj = rig.project(pts)  # [C, T', J, 2]
    det = keypoints2d[:, rows[have]]  # [C, T', P, J, 3]
    ok = (det[..., 2] > 0) & np.isfinite(det[..., :2]).all(-1) & np.isfinite(proj).all(-1)[:, :, None]
    dist = np.where(ok, np.linalg.norm(det[..., :2] - proj[:, :, None], axis=-1), np.nan)  # [C, T', P, J]
    enough = (np.isfinite(dist).sum(-1) >= 4)
    with np.errstate(all="ignore"):
        med = np.where(enough, np.nanmedian(np.where(enough[..., None], dist, 0.0), axis=-1), np.inf)
    best = med.argmin(-1)  # [C, T']
    good = np.take_along_axis(med, best[..., None], -1)[..., 0] < threshold_px
    chosen = np.take_along_axis(det, best[..., None, None, None], 2)[:, :, 0]  # [C, T', J, 3]
    out[:, have] = np.where(good[..., None, None], chosen, out[:, have])
    return out


def fit_tracks(model, inputs: list[TrackInput], skeleton: str, params=None, *, pose_prior=None,
               views: Callable[[TrackInput], object] | None = None,
               progress: Callable[[int, int], None] | None = None
               ) -> tuple[list[TrackFit], list[SkippedTrack]]:
    """Fit each track (``fitting.smplify.fit_sequence``); a track whose fit fails is skipped with the reason."""
    from fitting.smplify import FitParams, fit_sequence

    params = params or FitParams()
    fits, skipped = [], []
    for k, track in enumerate(inputs):
        t0 = time.perf_counter()
        try:
            result = fit_sequence(model, track.keypoints, skeleton, params, pose_prior=pose_prior,
                                  views=views(track) if views is not None else None)
        except (ValueError, RuntimeError) as err:
            skipped.append(SkippedTrack(track.track_id, f"the fit failed: {err}"))
        else:
            fits.append(TrackFit(track, result, time.perf_counter() - t0))
        if progress is not None:
            progress(k + 1, len(inputs))
    return fits, skipped


def smpl_track(fit: TrackFit, model, fps: float):
    """The fitted track as the ``smpl/track_<id>.npz`` record (``rigs.smpl_file.SmplTrack``)."""
    from rigs.smpl_file import SmplTrack

    res, a = fit.result, model.arrays
    valid = (fit.input.keypoints[..., 3] > 0).any(-1)
    return SmplTrack(poses=np.asarray(res.poses, np.float64), trans=np.asarray(res.trans, np.float64),
                     betas=np.asarray(res.betas, np.float64), gender=a.gender, fps=float(fps), body_model=a.source,
                     body_model_standin=bool(a.is_standin), track_id=fit.input.track_id,
                     first_frame=fit.input.first_frame, t_ns=fit.input.t_ns, valid=valid)
