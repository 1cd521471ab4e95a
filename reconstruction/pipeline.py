"""3D people from 2D keypoints, one frame at a time: the one code path of the live node and the offline command.

Per frame (``FrameReconstructor.step``), given every camera's detections ``[C, P, J, 3]``:

1. predict: the tracker's constant-velocity prediction of its live tracks at this frame's time;
2. associate (``reconstruction.association``): group detections across views into people, with the
   predictions as a prior so people keep their grouping from frame to frame; views whose left and right
   the detector swapped are put right when gathered (the skeleton says which joints pair up);
3. gather each group's detections and triangulate all groups at once with ``rigs.triangulate.triangulate_robust``
   (per joint, the largest set of views that agree within ``threshold_px``; outlying views are left out):
   joints whose views association already found in epipolar agreement start from those views instead of
   searching every pair again; groups with fewer than ``min_joints`` joints are dropped (a wrong grouping or
   a ghost);
4. track (``reconstruction.tracking.Tracker``): match the groups to tracks, which get an id once confirmed
   (the tracker sees the triangulated poses before the bone check);
5. bone check (optional): once a confirmed track has ``bone_min_frames`` frames, its bone lengths are the
   robust median of its last ``bone_window_s`` seconds (``reconstruction.bone_lengths``) and joints on bones
   off by more than ``bone_tolerance`` are removed (set missing).

The live node (``reconstruction.recon_node``) publishes each step's confirmed people as they come. The offline
``reconstruct`` runs the same steps over a sequence, lays the confirmed tracks out one slot per track id
(``[T, P, J, 4]``; a slot keeps its id, with an empty pose, where its track was alive but unseen) and then,
offline only, smooths each track (``reconstruction.filters.smooth_tracks``: zero-phase Butterworth by default,
``filter="none"`` to keep the raw per-frame poses the node publishes). People that are never confirmed (fewer
than the tracker's ``min_hits`` frames) and the frames before a track is confirmed are not in the output.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from reconstruction.association import associate, gather, gather_inliers
from reconstruction.bone_lengths import estimate_bone_lengths, reject_bad_bones
from reconstruction.tracking import Tracker, TrackerParams
from rigs.camera import Rig
from rigs.poses3d_file import Poses3D
from rigs.skeletons import get_skeleton
from rigs.triangulate import triangulate_robust

FILTERS = ("butterworth", "one-euro", "none")
STAGES = ("associate", "triangulate", "track", "bones")


class ReconstructionError(ValueError):
    """Input the reconstruction cannot use (shapes, parameters); the message says what and how to fix it."""


@dataclass(frozen=True)
class ReconstructionParams:
    """Every knob of the per-frame reconstruction."""

    association_px: float = 25.0  # association: how far (px) a view may be from the others' rays
    min_score: float = 0.2  # association: keypoints below this score do not vote
    threshold_px: float = 15.0  # triangulation: a view within this reprojection error is an inlier
    keypoint_min_score: float = 0.0  # triangulation: keypoints at or below this score are not used
    min_views: int = 2  # views needed to associate a person and to triangulate a joint
    min_joints: int = 5  # a group with fewer triangulated joints is dropped
    bone_tolerance: float | None = 0.25  # relative bone-length error that removes a joint; None: no check
    bone_window_s: float = 3.0  # bone lengths: the robust median over this much of the track's past
    bone_min_frames: int = 15  # frames a track needs before its bones are checked
    tracker: TrackerParams = field(default_factory=TrackerParams)

    def __post_init__(self) -> None:
        for name in ("association_px", "threshold_px", "bone_window_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ReconstructionError(f"ReconstructionParams.{name}: {value!r}; expected a positive number")
        if self.min_views < 2:
            raise ReconstructionError(f"ReconstructionParams.min_views: {self.min_views}; at least 2 views are "
                                      f"needed to triangulate")
        if self.min_joints < 1 or self.bone_min_frames < 1:
            raise ReconstructionError(f"ReconstructionParams: min_joints {self.min_joints} and bone_min_frames "
                                      f"{self.bone_min_frames} must be at least 1")
        if self.bone_tolerance is not None and not self.bone_tolerance > 0:
            raise ReconstructionError(f"ReconstructionParams.bone_tolerance: {self.bone_tolerance!r}; expected a "
                                      f"positive fraction, or None to skip the bone check")


@dataclass(frozen=True, eq=False)
class FrameResult:
    """One frame's people: every triangulated group, confirmed or not."""

    poses: np.ndarray  # float32 [G, J, 4] triangulated people this frame
    track_ids: np.ndarray  # int32 [G] (-1: not confirmed yet)
    errors: np.ndarray  # float32 [G, C, J] reprojection error px (NaN: not seen)
    inliers: np.ndarray  # bool [G, C, J] the views each joint was triangulated from
    track_keys: np.ndarray | None = None  # int64 [G] the tracker's key of each group's track (tentative too)
    undone_keys: np.ndarray | None = None  # int64 [K] keys whose match in the previous frame the tracker undid

    @property
    def confirmed(self) -> np.ndarray:
        """bool [G]: groups that belong to a confirmed track (the people the node publishes)."""
        return self.track_ids >= 0


class _BoneCheck:
    """Per confirmed track, a window of its recent poses and the bone lengths estimated from it."""

    def __init__(self, bones: np.ndarray, window: int, min_frames: int, tolerance: float, forget_ns: int):
        self.bones = bones
        self.window, self.min_frames, self.tolerance, self.forget_ns = window, min_frames, tolerance, forget_ns
        self._history: dict[int, np.ndarray] = {}  # track id -> [window, J, 4] ring of poses
        self._count: dict[int, int] = {}
        self._lengths: dict[int, np.ndarray] = {}
        self._last_ns: dict[int, int] = {}

    def __call__(self, t_ns: int, poses: np.ndarray, track_ids: np.ndarray) -> np.ndarray:
        """poses [G, J, 4] with joints on implausible bones removed (confirmed tracks with enough history)."""
        out = poses
        checked = [g for g, tid in enumerate(track_ids.tolist()) if tid in self._lengths]
        if checked:
            out = poses.copy()
            for g in checked:
                out[g] = reject_bad_bones(poses[g], self.bones, self._lengths[int(track_ids[g])], self.tolerance)
        for g, tid in enumerate(track_ids.tolist()):
            if tid >= 0:
                self._remember(tid, t_ns, out[g])
        for tid in [k for k, last in self._last_ns.items() if t_ns - last > self.forget_ns]:
            for table in (self._history, self._count, self._lengths, self._last_ns):
                table.pop(tid, None)
        return out

    def _remember(self, tid: int, t_ns: int, pose: np.ndarray) -> None:
        ring = self._history.get(tid)
        if ring is None:
            ring = self._history[tid] = np.full((self.window, *pose.shape), np.nan, np.float32)
            ring[..., 3] = 0.0
            self._count[tid] = 0
        n = self._count[tid]
        ring[n % self.window] = pose
        self._count[tid] = n + 1
        self._last_ns[tid] = t_ns
        if n + 1 >= self.min_frames and (n + 1 - self.min_frames) % self.min_frames == 0:
            self._lengths[tid] = estimate_bone_lengths(ring[: min(n + 1, self.window)], self.bones)


class FrameReconstructor:
    """associate -> triangulate_robust -> Tracker -> (bone check), one frame at a time; live and offline alike.

    The one stateful object of the reconstruction (it owns the tracker): feed it the frames in time order.
    ``timings`` holds the seconds spent per stage (``STAGES``) over the frames stepped, ``frames`` their count.
    """

    def __init__(self, rig: Rig, skeleton: str, fps: float, params: ReconstructionParams = ReconstructionParams()):
        if not (np.isfinite(fps) and fps > 0):
            raise ReconstructionError(f"fps {fps!r}: expected a positive frame rate")
        self.rig = rig
        self.skeleton = get_skeleton(skeleton)
        self.fps = float(fps)
        self.params = params
        self.tracker = Tracker(params.tracker, fps=self.fps)
        self.timings = dict.fromkeys(STAGES, 0.0)
        self.frames = 0
        self._bones = None
        if params.bone_tolerance is not None and self.skeleton.bones:
            window = max(params.bone_min_frames, round(params.bone_window_s * self.fps))
            forget_ns = round(2e9 * params.tracker.max_missed_s) + 1
            self._bones = _BoneCheck(np.asarray(self.skeleton.bones, np.int64), window, params.bone_min_frames,
                                     params.bone_tolerance, forget_ns)

    def step(self, t_ns: int, keypoints2d: np.ndarray) -> FrameResult:
        """Reconstruct one frame from every camera's detections [C, P, J, 3] (empty slots NaN, score 0)."""
        kp = self._checked(keypoints2d)
        t0 = time.perf_counter()
        grouped, seed = self._single(kp), None
        if grouped is None:
            grouped, seed = self._associate(int(t_ns), kp)
        t1 = time.perf_counter()
        tri = self._triangulate(grouped, seed)
        self.timings["associate"] += t1 - t0
        self.timings["triangulate"] += time.perf_counter() - t1
        return self._finish(int(t_ns), *tri)

    def run(self, t_ns: np.ndarray, keypoints2d: np.ndarray,
            progress: Callable[[int, int], None] | None = None) -> list[FrameResult]:
        """``step`` over frames [C, T, P, J, 3], with the triangulation of the frames between two that need the
        tracks (association's prior) done in one call: the same results, for a fraction of the per-call cost."""
        T = keypoints2d.shape[1]
        results: list[FrameResult | None] = [None] * T
        pending: list[tuple[int, np.ndarray, np.ndarray | None]] = []

        def flush() -> None:
            if not pending:
                return
            t0 = time.perf_counter()
            seeds = None
            if any(s is not None for _, _, s in pending):
                seeds = np.concatenate([np.zeros(g.shape[:3], bool) if s is None else s for _, g, s in pending], 1)
            tri = self._triangulate(np.concatenate([g for _, g, _ in pending], axis=1), seeds)
            self.timings["triangulate"] += time.perf_counter() - t0
            start = 0
            for t, g, _ in pending:
                n = g.shape[1]
                results[t] = self._finish(int(t_ns[t]), *(a[start:start + n] for a in tri))
                start += n
                if progress is not None:
                    progress(t + 1, T)
            pending.clear()

        for t in range(T):
            kp = self._checked(keypoints2d[:, t])
            t0 = time.perf_counter()
            grouped, seed = self._single(kp), None
            self.timings["associate"] += time.perf_counter() - t0
            if grouped is None:  # several people in some view: association needs the tracks up to date
                flush()
                t0 = time.perf_counter()
                grouped, seed = self._associate(int(t_ns[t]), kp)
                self.timings["associate"] += time.perf_counter() - t0
            pending.append((t, grouped, seed))
        flush()
        return results

    def _single(self, kp: np.ndarray) -> np.ndarray | None:
        """One person in view (no camera reports more than one detection): the group of every camera's
        detection [C, 1 or 0, J, 3], with no association to run; None when some camera sees several."""
        present = ((kp[..., 2] > 0) & np.isfinite(kp[..., 0])).any(-1)  # [C, P]
        if (present.sum(1) > 1).any():
            return None
        C, J = kp.shape[0], kp.shape[2]
        if present.any(1).sum() < self.params.min_views:
            return np.zeros((C, 0, J, 3), np.float32)
        slot = present.argmax(1)
        grouped = kp[np.arange(C), slot][:, None].copy()
        grouped[~present.any(1)] = np.array([np.nan, np.nan, 0.0], np.float32)
        return grouped

    def _associate(self, t_ns: int, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Several people in some view: cross-view groups [C, G, J, 3] (the tracks' predictions as prior) and
        the views of each joint that agree epipolarly [C, G, J]."""
        p = self.params
        prior = self.tracker.predict(t_ns)
        assoc = associate(self.rig, kp, prior=prior if len(prior) else None, threshold_px=p.association_px,
                          min_score=p.min_score, min_views=p.min_views, skeleton=self.skeleton)
        grouped = gather(kp, assoc.groups, assoc.flipped, self.skeleton)  # swapped views put right
        return grouped, gather_inliers(assoc, self.skeleton)

    def _triangulate(self, grouped: np.ndarray, seed: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Groups [C, G, J, 3] (and views known to agree [C, G, J]) -> poses [G, J, 4], errors [G, C, J],
        inliers [G, C, J]."""
        p = self.params
        C, G, J = grouped.shape[:3]
        if not G:
            return np.zeros((0, J, 4), np.float32), np.zeros((0, C, J), np.float32), np.zeros((0, C, J), bool)
        res = triangulate_robust(self.rig, grouped, threshold_px=p.threshold_px, min_views=p.min_views,
                                 min_score=p.keypoint_min_score, seed_inliers=seed)
        poses = np.asarray(res.points, np.float32)
        errors = np.moveaxis(np.asarray(res.errors, np.float32), 0, 1)
        inliers = np.moveaxis(np.asarray(res.inliers, bool), 0, 1)
        return poses, errors, inliers

    def _finish(self, t_ns: int, poses: np.ndarray, errors: np.ndarray, inliers: np.ndarray) -> FrameResult:
        """Drop groups with too few joints, track, check bones: the frame's result."""
        keep = (poses[..., 3] > 0).sum(-1) >= self.params.min_joints
        poses, errors, inliers = poses[keep], errors[keep], inliers[keep]
        t0 = time.perf_counter()
        keys, ids, undone = self.tracker.step(t_ns, poses)
        ids = np.asarray(ids, np.int32)
        t1 = time.perf_counter()
        if self._bones is not None:
            checked = self._bones(t_ns, poses, ids)
            inliers = inliers & (checked[..., 3] > 0)[:, None, :]
            poses = checked
        self.timings["track"] += t1 - t0
        self.timings["bones"] += time.perf_counter() - t1
        self.frames += 1
        return FrameResult(poses, ids, errors, inliers, np.asarray(keys, np.int64), np.asarray(undone, np.int64))

    def _checked(self, keypoints2d: np.ndarray) -> np.ndarray:
        kp = np.asarray(keypoints2d, np.float32)
        C, J = len(self.rig), self.skeleton.num_joints
        if kp.ndim != 4 or kp.shape[0] != C or kp.shape[2] != J or kp.shape[3] != 3:
            raise ReconstructionError(f"keypoints: expected [C={C}, P, J={J}, 3] (the rig's cameras, "
                                      f"{self.skeleton.name} joints), got {kp.shape}")
        return kp


@dataclass(frozen=True)
class ReconstructionStats:
    """What a reconstruction found, for the report."""

    frames: int
    tracks: int
    max_people: int  # most confirmed people in one frame
    frames_with_people: float  # fraction of frames with at least one confirmed person
    joints_reconstructed: float  # fraction of the joints of confirmed people-frames that were triangulated
    unconfirmed: int  # people-frames triangulated but never output (their track was not confirmed yet)
    median_reprojection_px: dict[str, float]  # per camera, over the views each joint was triangulated from
    seconds: float  # wall time of the per-frame steps
    stage_ms: dict[str, float]  # mean milliseconds per frame of each stage

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """``poses3d`` (extras: ``reprojection_errors`` float32 [T, P, C, J] px, ``inlier_views`` bool
    [T, P, C, J], ``camera_names``) and the statistics of the run."""

    poses3d: Poses3D
    stats: ReconstructionStats


def backfill_ids(results: list[FrameResult], tracker) -> list[FrameResult]:
    """Offline only: each group's final track id, so a track's frames before its confirmation (tentative in the
    live output) carry its id once it is known; groups the tracker took back from a track become unconfirmed.
    Nothing a camera saw is dropped for want of an id."""
    out = []
    for t, r in enumerate(results):
        keys = r.track_keys.copy()
        nxt = results[t + 1].undone_keys if t + 1 < len(results) else None
        if nxt is not None and nxt.size:
            keys[np.isin(keys, nxt)] = -1
        ids = np.where(keys >= 0, tracker.ids_of(keys), -1).astype(np.int32)
        out.append(dataclasses.replace(r, track_ids=ids))
    return out


def layout_tracks(results: list[FrameResult], num_cameras: int, num_joints: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame results -> one slot per confirmed track id (ascending): poses [T, P, J, 4], track_ids [T, P],
    reprojection errors [T, P, C, J] and inlier views [T, P, C, J].

    As ``tracking.track_sequence`` lays them out: a slot keeps its id from the track's first to its last
    matched frame, with an empty pose (NaN, score 0) where the track was alive but unseen, for
    ``filters.smooth_tracks`` to fill; -1 elsewhere."""
    ids = [r.track_ids[r.confirmed] for r in results]
    tracks = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int32)
    T, P = len(results), len(tracks)
    poses = np.full((T, P, num_joints, 4), np.nan, np.float32)
    poses[..., 3] = 0.0
    track_ids = np.full((T, P), -1, np.int32)
    errors = np.full((T, P, num_cameras, num_joints), np.nan, np.float32)
    inliers = np.zeros((T, P, num_cameras, num_joints), bool)
    for t, r in enumerate(results):
        ok = r.confirmed
        slots = np.searchsorted(tracks, r.track_ids[ok])
        poses[t, slots] = r.poses[ok]
        track_ids[t, slots] = r.track_ids[ok]
        errors[t, slots] = r.errors[ok]
        inliers[t, slots] = r.inliers[ok]
    seen = track_ids >= 0
    frames = np.arange(T)[:, None]
    first = np.where(seen, frames, T).min(0, initial=T)
    last = np.where(seen, frames, -1).max(0, initial=-1)
    alive = (frames >= first[None]) & (frames <= last[None])
    track_ids[alive] = np.broadcast_to(tracks.astype(np.int32), (T, P))[alive]
    return poses, track_ids, errors, inliers


def _stats(rig: Rig, results: list[FrameResult], poses: np.ndarray, track_ids: np.ndarray, errors: np.ndarray,
           inliers: np.ndarray, rec: FrameReconstructor) -> ReconstructionStats:
    present = track_ids >= 0  # [T, P]
    T = len(results)
    joints = poses[..., 3] > 0  # [T, P, J]
    total = int(present.sum()) * poses.shape[2]
    per_camera = {}
    for c, name in enumerate(rig.names):
        used = errors[:, :, c][inliers[:, :, c]]
        per_camera[name] = float(np.median(used)) if used.size else float("nan")
    seconds = float(sum(rec.timings.values()))
    frames = max(rec.frames, 1)
    return ReconstructionStats(
        frames=T, tracks=int(np.unique(track_ids[present]).size), max_people=int(present.sum(1).max(initial=0)),
        frames_with_people=float(present.any(1).mean()) if T else 0.0,
        joints_reconstructed=float(joints[present].sum() / total) if total else 0.0,
        unconfirmed=int(sum(int((~r.confirmed).sum()) for r in results)), median_reprojection_px=per_camera,
        seconds=seconds, stage_ms={k: 1e3 * v / frames for k, v in rec.timings.items()})


def reconstruct(rig: Rig, keypoints2d: np.ndarray, t_ns: np.ndarray, skeleton: str, fps: float, *,
                filter: str = "butterworth", params: ReconstructionParams = ReconstructionParams(),
                progress: Callable[[int, int], None] | None = None) -> Reconstruction:
    """Tracked 3D people from a sequence of detections [C, T, P, J, 3] at times t_ns [T]: ``FrameReconstructor``
    frame by frame, then (offline only) each track smoothed with ``filter`` (``FILTERS``)."""
    if filter not in FILTERS:
        raise ReconstructionError(f"filter {filter!r}: expected one of {', '.join(FILTERS)}")
    kp = np.asarray(keypoints2d, np.float32)
    times = np.asarray(t_ns, np.int64)
    sk = get_skeleton(skeleton)
    if kp.ndim != 5 or kp.shape[0] != len(rig) or kp.shape[-1] != 3 or kp.shape[3] != sk.num_joints:
        raise ReconstructionError(f"keypoints: expected [C={len(rig)}, T, P, J={sk.num_joints}, 3] (the rig's "
                                  f"cameras, {sk.name} joints), got {kp.shape}")
    if times.shape != kp.shape[1:2]:
        raise ReconstructionError(f"t_ns: expected [{kp.shape[1]}] (one time per frame), got {times.shape}")
    if times.size > 1 and not (np.diff(times) > 0).all():
        raise ReconstructionError("t_ns: frame times must increase strictly; sort the frames by time")
    rec = FrameReconstructor(rig, sk.name, fps, params)
    results = rec.run(times, kp, progress)
    results = backfill_ids(results, rec.tracker)
    poses, track_ids, errors, inliers = layout_tracks(results, len(rig), sk.num_joints)
    stats = _stats(rig, results, poses, track_ids, errors, inliers, rec)
    if filter != "none" and poses.shape[1]:
        from reconstruction.filters import smooth_tracks  # scipy.signal: only the offline path pays for it

        poses = np.asarray(smooth_tracks(poses, track_ids, fps, method=filter), np.float32)
    extras = {"reprojection_errors": errors, "inlier_views": inliers, "camera_names": np.array(rig.names)}
    return Reconstruction(Poses3D(poses, track_ids, times, fps, sk.name, sk.joints, extras), stats)
