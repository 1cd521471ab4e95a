"""Accuracy of 3D poses against ground truth: the metric definitions every benchmark and `mocap eval` use.

All functions take poses ``[..., J, 3|4]`` in metres (a 4th channel is a score: a joint is present where its
coordinates are finite and, when there is a score, the score is > 0) and work on whole arrays at once.

- **MPJPE** (mean per-joint position error): mean Euclidean distance over the joints present in both.
- **PA-MPJPE**: MPJPE after aligning each predicted pose to its truth with the similarity transform
  (rotation, translation and one scale per pose) that minimises the squared error over the joints both have
  (Procrustes / Umeyama 1991; the Human3.6M "protocol 2" of Martinez et al. 2017).
- **PCK@d** (percentage of correct keypoints, 3D, as in MPI-INF-3DHP, Mehta et al. 2017, which uses 150 mm):
  a truth joint is correct when the predicted joint lies within d metres (25, 50 and 100 mm by default).
- **PCP** (percentage of correct parts, Belagiannis et al. 2014 on Shelf/Campus): a limb is correct when the
  mean of its two endpoint errors is <= alpha x its true length, alpha = 0.5. This is the variant of
  VoxelPose's Shelf/Campus evaluation (``(error_start + error_end) / 2 <= 0.5 * limb_length``), not the
  stricter original that needs both endpoints within the bound. ``pcp_limbs`` names the ten Shelf limbs:
  upper and lower arms and legs, head (neck to head top) and torso (mid hip to neck).
- **PDJ** (percentage of detected joints, Toshev & Szegedy 2014): a joint is detected when its error is
  < fraction x the torso diameter, the distance from the left shoulder to the right hip of the truth.
- **AP@d** (VoxelPose, Tu et al. 2020, on CMU Panoptic): every predicted person, with a score, is paired with
  the truth person of its frame nearest by MPJPE; over all frames, predictions in descending score order
  are true positives when that distance is < d and that truth person was not already taken by a
  higher-scored prediction (then it is a false positive, as in VoxelPose's ``_eval_list_to_ap``).
  AP is the area under the precision-recall curve with precision made monotonic (all-point
  interpolation), at d = 25, 50, ..., 150 mm.
- **Identity switches** (CLEAR MOT, Bernardin & Stiefelhagen 2008): the times a truth person is matched to
  a different track than the last track it was matched to.

Missing predictions: joint-level metrics with a "hit" (PCK, PCP, PDJ) return 1 (hit), 0 (miss) or NaN
(the truth lacks the joint or limb: not counted) per item, so a missing prediction is a miss; MPJPE and
PA-MPJPE only average joints present in both (completeness says how many were missing). ``evaluate``
matches people per frame (``match_people``: Hungarian on MPJPE) and computes all of these per joint and
overall.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from rigs.poses3d_file import Poses3D

PCK_THRESHOLDS = (0.025, 0.05, 0.1)
AP_THRESHOLDS = (0.025, 0.05, 0.075, 0.1, 0.125, 0.15)
MATCH_DISTANCE = 0.5  # m: the largest MPJPE at which a prediction and a truth person are the same person


class EvalError(ValueError):
    """Predictions and truth that cannot be compared (no joint names or frames in common)."""


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


@contextmanager
def _empty_means_are_nan() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' warnings: an empty mean is NaN here by design."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def present(poses: np.ndarray) -> np.ndarray:
    """bool [..., J]: joints with finite coordinates (and a score > 0 when poses have a 4th channel)."""
    poses = np.asarray(poses)
    ok = np.isfinite(poses[..., :3]).all(-1)
    if poses.shape[-1] == 4:
        ok &= poses[..., 3] > 0
    return ok


def joint_distances(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Euclidean distance (m) per joint [..., J] of poses [..., J, 3|4]; NaN where either lacks the joint."""
    ok = present(pred) & present(truth)
    d = np.linalg.norm(np.asarray(pred, np.float64)[..., :3] - np.asarray(truth, np.float64)[..., :3], axis=-1)
    return np.where(ok, d, np.nan)


def joint_errors(pred: np.ndarray, truth: np.ndarray) -> PoseErrors:
    """Compare matched poses [..., J, 3|4]; a joint counts where truth exists (score > 0, finite)."""
    truth_ok, pred_ok = present(truth), present(pred)
    d = joint_distances(pred, truth)
    return PoseErrors(errors=d[truth_ok & pred_ok], missing=int((truth_ok & ~pred_ok).sum()),
                      total=int(truth_ok.sum()))


def mpjpe(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-joint position error in millimetres over joints present in both."""
    return joint_errors(pred, truth).mpjpe_mm


def procrustes_align(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """pred [..., J, 3|4] moved onto truth by the least-squares similarity (R, t, one scale) of each pose,
    fitted on the joints both have -> [..., J, 3] (NaN where pred lacks a joint or fewer than 3 are shared)."""
    pred_xyz = np.asarray(pred, np.float64)[..., :3]
    truth_xyz = np.asarray(truth, np.float64)[..., :3]
    w = (present(pred) & present(truth)).astype(np.float64)[..., None]  # [..., J, 1]
    n = w.sum(-2, keepdims=True)  # [..., 1, 1]
    safe_n = np.maximum(n, 1)
    p0, t0 = np.where(w > 0, pred_xyz, 0), np.where(w > 0, truth_xyz, 0)
    mp, mt = p0.sum(-2, keepdims=True) / safe_n, t0.sum(-2, keepdims=True) / safe_n
    pc, tc = (p0 - mp) * w, (t0 - mt) * w
    H = np.einsum("...ji,...jk->...ik", pc, tc)  # sum of p t^T
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("...ji,...kj->...ik", Vt, U)))  # det(V U^T): no reflections
    D = np.ones(S.shape)
    D[..., -1] = np.where(d == 0, 1.0, d)
    R = np.einsum("...ji,...j,...kj->...ik", Vt, D, U)  # V diag(D) U^T
    var = (pc ** 2).sum((-2, -1))
    scale = (S * D).sum(-1) / np.where(var > 0, var, 1)
    aligned = scale[..., None, None] * np.einsum("...ij,...kj->...ki", R, pred_xyz - mp) + mt
    enough = (n[..., 0, 0] >= 3) & (var > 0)
    return np.where(enough[..., None, None] & present(pred)[..., None], aligned, np.nan)


def pa_mpjpe(pred: np.ndarray, truth: np.ndarray) -> float:
    """MPJPE in millimetres after ``procrustes_align`` of each pose [..., J, 3|4]."""
    d = joint_distances(procrustes_align(pred, truth), truth)
    return float(np.nanmean(d) * 1000) if np.isfinite(d).any() else float("nan")


def _misses_as_inf(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """joint_distances with +inf where truth has the joint and pred does not (a miss), NaN where truth lacks it."""
    d = joint_distances(pred, truth)
    return np.where(present(truth) & ~present(pred), np.inf, d)


def _hits(ok: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """1.0 / 0.0 where counted, NaN elsewhere."""
    return np.where(counted, ok.astype(np.float64), np.nan)


def pck(pred: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = PCK_THRESHOLDS) -> np.ndarray:
    """Hits [K, ..., J]: 1 where the joint is within thresholds[k] metres, 0 where farther or not predicted,
    NaN where the truth lacks it. ``np.nanmean`` over the axes wanted gives PCK per joint or overall."""
    d = _misses_as_inf(pred, truth)
    thr = np.asarray(thresholds, np.float64).reshape((-1,) + (1,) * d.ndim)
    with np.errstate(invalid="ignore"):
        return _hits(d <= thr, ~np.isnan(d))


def pcp(pred: np.ndarray, truth: np.ndarray, limbs: Sequence[tuple[int, int]], alpha: float = 0.5) -> np.ndarray:
    """Hits [..., L]: limb (a, b) correct when (error_a + error_b) / 2 <= alpha x its true length (VoxelPose's
    Shelf/Campus PCP); a missing predicted endpoint is a miss; NaN where the truth lacks an endpoint."""
    limbs = np.asarray(limbs, np.int64).reshape(-1, 2)
    a, b = limbs[:, 0], limbs[:, 1]
    d = _misses_as_inf(pred, truth)
    t = np.asarray(truth, np.float64)[..., :3]
    length = np.linalg.norm(t[..., a, :] - t[..., b, :], axis=-1)
    ok = present(truth)
    with np.errstate(invalid="ignore"):
        return _hits((d[..., a] + d[..., b]) / 2 <= alpha * length, ok[..., a] & ok[..., b])


def pdj(pred: np.ndarray, truth: np.ndarray, torso: tuple[int, int], fraction: float = 0.2) -> np.ndarray:
    """Hits [..., J]: joint detected when its error < fraction x the torso diameter |truth[a] - truth[b]|
    (torso = (left shoulder, right hip) indices); NaN where the truth lacks the joint or the torso."""
    d = _misses_as_inf(pred, truth)
    t = np.asarray(truth, np.float64)[..., :3]
    diameter = np.linalg.norm(t[..., torso[0], :] - t[..., torso[1], :], axis=-1)[..., None]
    with np.errstate(invalid="ignore"):
        return _hits(d < fraction * diameter, present(truth) & np.isfinite(diameter))


def pose_distances(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """MPJPE (m) of every pair: pred [..., P, J, C], truth [..., Q, J, C] -> [..., P, Q], over the joints each
    pair shares; NaN where a pair shares none."""
    d = joint_distances(np.asarray(pred)[..., :, None, :, :], np.asarray(truth)[..., None, :, :, :])
    n = np.isfinite(d).sum(-1)
    return np.where(n > 0, np.nansum(d, -1) / np.maximum(n, 1), np.nan)


def match_people(pred: np.ndarray, truth: np.ndarray, max_distance: float = MATCH_DISTANCE) -> np.ndarray:
    """One-to-one pairs int64 [K, 2] (pred slot, truth slot) of one frame's people pred [P, J, C] and truth
    [Q, J, C]: Hungarian assignment minimising MPJPE over shared joints; pairs farther than max_distance
    (m) or sharing no joint are left out. Sorted by truth slot."""
    return _assign(pose_distances(pred, truth), max_distance)


def _assign(D: np.ndarray, max_distance: float) -> np.ndarray:
    """Hungarian pairs [K, 2] of a distance matrix [P, Q] (NaN: not allowed), within max_distance."""
    if D.size == 0:
        return np.zeros((0, 2), np.int64)
    finite = np.isfinite(D)
    cost = np.where(finite, D, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = finite[rows, cols] & (D[rows, cols] <= max_distance)
    pairs = np.stack([rows[keep], cols[keep]], 1).astype(np.int64)
    return pairs[np.argsort(pairs[:, 1], kind="stable")]


def identity_switches(track_ids: np.ndarray, truth_ids: np.ndarray) -> int:
    """CLEAR-MOT identity switches of matched pairs given as parallel arrays [T, P]: track_ids[t, p] was
    matched to truth person truth_ids[t, p] (-1 in either: no pair). Counts each time a truth person's track
    differs from the track it was last matched to (frames without a match do not reset it)."""
    track_ids, truth_ids = np.asarray(track_ids), np.asarray(truth_ids)
    if track_ids.shape != truth_ids.shape:
        raise EvalError(f"identity_switches: track_ids {track_ids.shape} and truth_ids {truth_ids.shape} "
                        f"must have the same shape")
    t = np.broadcast_to(np.arange(track_ids.shape[0]).reshape((-1,) + (1,) * (track_ids.ndim - 1)),
                        track_ids.shape)
    both = (track_ids >= 0) & (truth_ids >= 0)
    tr, gt, tt = track_ids[both], truth_ids[both], t[both]
    order = np.lexsort((tt, gt))
    tr, gt = tr[order], gt[order]
    return int(((gt[1:] == gt[:-1]) & (tr[1:] != tr[:-1])).sum())


@dataclass(frozen=True, eq=False)
class AveragePrecision:
    """VoxelPose-style AP and recall at each MPJPE threshold (metres)."""

    thresholds: np.ndarray  # [K] m
    ap: np.ndarray  # [K]
    recall: np.ndarray  # [K]: fraction of truth people found at each threshold
    predictions: int
    truth_people: int


def _padded(people: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Per-frame people as one array [T, P, ...] padded with NaN (a list of [P_t, ...] arrays or an array)."""
    if isinstance(people, np.ndarray):
        return people.astype(np.float64)
    frames = [np.asarray(p, np.float64) for p in people]
    if not frames:
        return np.zeros((0, 0))
    inner = next((f.shape[1:] for f in frames if f.ndim >= 2 and f.shape[0]), None) or frames[0].shape[1:]
    out = np.full((len(frames), max(len(f) for f in frames)) + tuple(inner), np.nan)
    for t, f in enumerate(frames):
        out[t, : len(f)] = f
    return out


def average_precision(pred_poses: np.ndarray | Sequence[np.ndarray], pred_scores: np.ndarray | Sequence[np.ndarray],
                      truth: np.ndarray | Sequence[np.ndarray],
                      thresholds: Sequence[float] = AP_THRESHOLDS) -> AveragePrecision:
    """AP over a sequence, as VoxelPose computes it on Panoptic (see the module docstring).

    pred_poses [T, P, J, 3|4] (or a list of [P_t, J, C]), pred_scores [T, P] (one score per person),
    truth [T, Q, J, 3|4]; empty slots are all-missing. MPJPE uses the joints both poses have."""
    pred, truth_a = _padded(pred_poses), _padded(truth)
    scores = _padded(pred_scores)
    if pred.shape[0] != truth_a.shape[0] or scores.shape[:2] != pred.shape[:2]:
        raise EvalError(f"average_precision: {pred.shape[0]} predicted frames with scores {scores.shape[:2]} "
                        f"and {truth_a.shape[0]} truth frames; give one entry per frame for each")
    thr = np.asarray(thresholds, np.float64)
    if truth_a.shape[0] == 0:
        return AveragePrecision(thr, np.full(len(thr), np.nan), np.full(len(thr), np.nan), 0, 0)
    truth_here = present(truth_a).any(-1)  # [T, Q]
    pred_here = present(pred).any(-1)  # [T, P]
    n_truth = int(truth_here.sum())
    D = pose_distances(pred, truth_a) if pred.size and truth_a.size else np.full(pred.shape[:2] + (0,), np.nan)
    D = np.where(truth_here[:, None, :] & np.isfinite(D), D, np.inf)
    Q = D.shape[-1]
    nearest = D.argmin(-1) if Q else np.zeros(pred.shape[:2], np.int64)
    dist = D.min(-1) if Q else np.full(pred.shape[:2], np.inf)
    t_idx = np.broadcast_to(np.arange(pred.shape[0])[:, None], pred.shape[:2])
    gt_id, dist, score = (t_idx * max(Q, 1) + nearest)[pred_here], dist[pred_here], scores[pred_here]
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    gt_id, dist = gt_id[order], dist[order]
    n = len(order)
    ap, recall = np.zeros(len(thr)), np.zeros(len(thr))
    for k, d in enumerate(thr):  # K <= a handful of thresholds
        tp = np.zeros(n)
        cand = np.flatnonzero(dist < d)
        _, first = np.unique(gt_id[cand], return_index=True)  # the highest-scored claim of each truth person
        tp[cand[first]] = 1
        tps = np.cumsum(tp)
        rec = tps / n_truth if n_truth else np.zeros(n)
        prec = tps / np.arange(1, n + 1) if n else np.zeros(0)
        prec = np.maximum.accumulate(prec[::-1])[::-1]  # monotonic envelope
        r = np.concatenate([[0.0], rec, [1.0]])
        p = np.concatenate([[0.0], prec, [0.0]])
        step = np.flatnonzero(r[1:] != r[:-1])
        ap[k] = np.sum((r[step + 1] - r[step]) * p[step + 1])
        recall[k] = rec[-1] if n else 0.0
    if not n_truth:
        ap[:], recall[:] = np.nan, np.nan
    return AveragePrecision(thr, ap, recall, n, n_truth)


# --- limbs by joint name ---------------------------------------------------------------------------------

_PCP_LIMBS = (
    ("left_upper_arm", "left_shoulder", "left_elbow"), ("right_upper_arm", "right_shoulder", "right_elbow"),
    ("left_lower_arm", "left_elbow", "left_wrist"), ("right_lower_arm", "right_elbow", "right_wrist"),
    ("left_upper_leg", "left_hip", "left_knee"), ("right_upper_leg", "right_hip", "right_knee"),
    ("left_lower_leg", "left_knee", "left_ankle"), ("right_lower_leg", "right_knee", "right_ankle"),
    ("head", "neck", "head_top"), ("torso", "mid_hip", "neck"),
)


def with_mid_hip(poses: np.ndarray, joint_names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Poses [..., J, C] with a ``mid_hip`` joint (the mean of the hips, Shelf's torso bottom) appended when
    they have both hips and no mid_hip of their own; else returned as they are."""
    names = tuple(joint_names)
    if "mid_hip" in names or not {"left_hip", "right_hip"} <= set(names):
        return np.asarray(poses), names
    poses = np.asarray(poses)
    left, right = poses[..., names.index("left_hip"), :], poses[..., names.index("right_hip"), :]
    mid = (left.astype(np.float64) + right) / 2
    if poses.shape[-1] == 4:
        both = present(left) & present(right)
        mid[..., 3] = np.where(both, np.minimum(left[..., 3], right[..., 3]), 0)
    return np.concatenate([poses, mid[..., None, :].astype(poses.dtype)], -2), names + ("mid_hip",)


def pcp_limbs(joint_names: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """The Shelf/Campus PCP limbs these joints have: (limb names, index pairs int64 [L, 2])."""
    where = {n: i for i, n in enumerate(joint_names)}
    found = [(name, where[a], where[b]) for name, a, b in _PCP_LIMBS if a in where and b in where]
    return tuple(f[0] for f in found), np.array([f[1:] for f in found], np.int64).reshape(-1, 2)


# --- evaluating a whole sequence ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EvalResult:
    """Every metric of a predicted sequence against its truth, per compared frame, truth person and joint.

    ``errors`` holds metres where both have the joint, +inf where the truth has it and the prediction does
    not (an unmatched person or a missing joint: a miss), NaN where the truth lacks it. Summaries in mm."""

    joint_names: tuple[str, ...]
    t_ns: np.ndarray  # int64 [N]: truth time of each compared frame
    pred_frames: np.ndarray  # int64 [N]
    truth_frames: np.ndarray  # int64 [N]
    frames_matched_by: str  # "t_ns" or "index"
    errors: np.ndarray  # float64 [N, Q, J] m (+inf miss, NaN not in truth)
    pa_errors: np.ndarray  # float64 [N, Q, J] m after Procrustes per matched pose (NaN elsewhere)
    matched: np.ndarray  # int64 [N, Q]: the predicted slot matched to each truth slot, -1 none
    truth_ids: np.ndarray  # int32 [N, Q]
    limb_names: tuple[str, ...]
    pcp_hits: np.ndarray  # [N, Q, L] 1 / 0 / NaN
    pdj_hits: np.ndarray | None  # [N, Q, J] 1 / 0 / NaN; None without shoulders and hips
    ap: AveragePrecision
    identity_switches: int
    false_positives: int  # predicted people matched to no truth person
    truth_frames_total: int
    pred_frames_total: int

    @property
    def num_frames(self) -> int:
        return len(self.t_ns)

    def _mean_mm(self, e: np.ndarray, axis=None) -> np.ndarray | float:
        e = np.where(np.isfinite(e), e, np.nan)
        with _empty_means_are_nan():
            out = np.nanmean(e, axis=axis) * 1000
        return float(out) if axis is None else out

    @property
    def mpjpe_mm(self) -> float:
        return self._mean_mm(self.errors)

    @property
    def mpjpe_per_joint_mm(self) -> np.ndarray:
        return self._mean_mm(self.errors, (0, 1))

    @property
    def pa_mpjpe_mm(self) -> float:
        return self._mean_mm(self.pa_errors)

    @property
    def pa_mpjpe_per_joint_mm(self) -> np.ndarray:
        return self._mean_mm(self.pa_errors, (0, 1))

    @property
    def mpjpe_over_time_mm(self) -> np.ndarray:
        """[N]: MPJPE of each compared frame over every matched person."""
        return self._mean_mm(self.errors, (1, 2))

    @property
    def completeness(self) -> float:
        """Fraction of truth joints with a predicted joint."""
        counted = ~np.isnan(self.errors)
        return float(np.isfinite(self.errors).sum() / counted.sum()) if counted.any() else float("nan")

    def pck(self, thresholds: Sequence[float] = PCK_THRESHOLDS, per_joint: bool = False) -> np.ndarray:
        """PCK at each threshold (m) [K], or [K, J] per joint; misses count as wrong."""
        counted = ~np.isnan(self.errors)
        with np.errstate(invalid="ignore", divide="ignore"):
            hits = np.asarray(thresholds, np.float64).reshape(-1, 1, 1, 1) >= self.errors  # NaN, inf: False
            if per_joint:
                return hits.sum((1, 2)) / counted.sum((0, 1))
            return hits.sum((1, 2, 3)) / counted.sum()

    @property
    def pcp(self) -> float:
        return _rate(self.pcp_hits)

    @property
    def pcp_per_limb(self) -> np.ndarray:
        return _rate(self.pcp_hits, (0, 1))

    @property
    def pdj(self) -> float:
        return float("nan") if self.pdj_hits is None else _rate(self.pdj_hits)

    @property
    def pdj_per_joint(self) -> np.ndarray:
        return np.full(len(self.joint_names), np.nan) if self.pdj_hits is None else _rate(self.pdj_hits, (0, 1))

    def summary(self) -> dict[str, float]:
        """The headline numbers, by name (mm, fractions, counts)."""
        out = {"frames": float(self.num_frames), "mpjpe_mm": self.mpjpe_mm, "pa_mpjpe_mm": self.pa_mpjpe_mm,
               "completeness": self.completeness}
        for thr, v in zip(PCK_THRESHOLDS, self.pck(PCK_THRESHOLDS), strict=True):
            out[f"pck@{thr * 1000:g}mm"] = float(v)
        out["pcp"] = self.pcp
        out["pdj@0.2"] = self.pdj
        for thr, v in zip(self.ap.thresholds, self.ap.ap, strict=True):
            out[f"ap@{thr * 1000:g}mm"] = float(v)
        out["identity_switches"] = float(self.identity_switches)
        out["false_positives"] = float(self.false_positives)
        return out


def _rate(hits: np.ndarray, axis=None) -> np.ndarray | float:
    """Mean of 1/0 hits ignoring NaN (NaN where nothing was counted)."""
    with _empty_means_are_nan():
        out = np.nanmean(hits, axis=axis)
    return float(out) if axis is None else out


def match_frames(pred_t_ns: np.ndarray, truth_t_ns: np.ndarray, tolerance_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred frame [K], truth frame [K]) index pairs whose times differ by at most tolerance_ns: each truth frame
    takes its nearest predicted frame, and a predicted frame goes to the nearest truth frame that took it."""
    pred_t, truth_t = np.asarray(pred_t_ns, np.int64), np.asarray(truth_t_ns, np.int64)
    if not len(pred_t) or not len(truth_t):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(pred_t, kind="stable")
    sorted_t = pred_t[order]
    right = np.clip(np.searchsorted(sorted_t, truth_t), 0, len(sorted_t) - 1)
    left = np.clip(right - 1, 0, len(sorted_t) - 1)
    pick = np.where(np.abs(sorted_t[left] - truth_t) <= np.abs(sorted_t[right] - truth_t), left, right)
    gap = np.abs(sorted_t[pick] - truth_t)
    ok = np.flatnonzero(gap <= tolerance_ns)
    ok = ok[np.argsort(gap[ok], kind="stable")]
    _, first = np.unique(pick[ok], return_index=True)  # one truth frame per predicted frame: the nearest
    truth_idx = np.sort(ok[first])
    return order[pick[truth_idx]], truth_idx


def _common_joints(pred: Poses3D, truth: Poses3D, joints: Sequence[str] | None) -> tuple[str, ...]:
    if joints is None:
        names = tuple(n for n in truth.joint_names if n in pred.joint_names)
        if not names:
            raise EvalError(f"the prediction's joints ({', '.join(pred.joint_names[:6])}, ...) and the truth's "
                            f"({', '.join(truth.joint_names[:6])}, ...) share no name; convert one to the "
                            f"other's skeleton or give the joint names to compare")
        return names
    lacking = [n for n in joints if n not in pred.joint_names or n not in truth.joint_names]
    if lacking:
        raise EvalError(f"joint(s) {', '.join(lacking)} are not in both the prediction ({pred.skeleton}) and "
                        f"the truth ({truth.skeleton}); choose among "
                        f"{', '.join(n for n in truth.joint_names if n in pred.joint_names)}")
    return tuple(joints)


def evaluate(pred: Poses3D, truth: Poses3D, joints: Sequence[str] | None = None, *, frames: str = "auto",
             max_distance: float = MATCH_DISTANCE, ap_thresholds: Sequence[float] = AP_THRESHOLDS) -> EvalResult:
    """Every metric of pred against truth.

    Joints are compared by name (the shared names in the truth's order, or ``joints``), so skeletons that
    differ compare on the joints they share. Frames (``frames``): "t_ns" pairs frames whose times are within
    half a truth frame; "index" pairs frame k with frame k; "auto" uses t_ns when any pair so, else index.
    Each compared frame's people are matched one-to-one (``match_people``, within max_distance m). Unmatched
    truth people and missing joints are misses for PCK, PCP, PDJ and AP; MPJPE and PA-MPJPE exclude them.
    """
    if frames not in ("auto", "t_ns", "index"):
        raise EvalError(f"frames={frames!r}: use 'auto', 't_ns' or 'index'")
    names = _common_joints(pred, truth, joints)
    pj = [pred.joint_names.index(n) for n in names]
    tj = [truth.joint_names.index(n) for n in names]
    by = "index"
    pf = tf = np.zeros(0, np.int64)
    if frames != "index":
        tol = int(0.5e9 / truth.fps) if truth.fps > 0 else 0
        pf, tf = match_frames(pred.t_ns, truth.t_ns, tol)
        by = "t_ns"
    if frames == "index" or (frames == "auto" and not len(pf)):
        n = min(pred.num_frames, truth.num_frames)
        pf, tf, by = np.arange(n), np.arange(n), "index"
    if not len(pf):
        raise EvalError(f"no predicted frame lies within half a frame of a truth frame (prediction "
                        f"{pred.num_frames} frames, truth {truth.num_frames}); compare by index (frames='index')")
    P = pred.poses[pf][:, :, pj]  # [N, P, J, 4]
    T = truth.poses[tf][:, :, tj]  # [N, Q, J, 4]
    N, Q = T.shape[:2]
    D = pose_distances(P, T)  # [N, P, Q]: NaN for empty slots
    pred_here, truth_here = present(P).any(-1), present(T).any(-1)
    matched = np.full((N, Q), -1, np.int64)
    for i in np.flatnonzero(pred_here.any(-1) & truth_here.any(-1)):  # one assignment per frame
        pairs = _assign(D[i], max_distance)
        matched[i, pairs[:, 1]] = pairs[:, 0]
    slot = np.maximum(matched, 0)
    M = np.take_along_axis(P, slot[:, :, None, None], 1)  # the matched prediction of each truth slot
    M = np.where((matched >= 0)[:, :, None, None], M, np.nan)
    errors = _misses_as_inf(M, T)
    pa = joint_distances(procrustes_align(M, T), T)
    M_ext, ext_names = with_mid_hip(M, names)
    T_ext, _ = with_mid_hip(T, names)
    limb_names, limbs = pcp_limbs(ext_names)
    pcp_hits = pcp(M_ext, T_ext, limbs)
    torso = (names.index("left_shoulder"), names.index("right_hip")) if {"left_shoulder", "right_hip"} <= set(
        names) else None
    pdj_hits = pdj(M, T, torso) if torso else None
    scores = np.where(present(P), P[..., 3], np.nan)
    with _empty_means_are_nan():
        person_score = np.nanmean(scores, -1)
    ap = average_precision(P, person_score, T, ap_thresholds)
    truth_ids = truth.track_ids[tf]
    track_of_truth = np.where(matched >= 0, np.take_along_axis(pred.track_ids[pf], slot, 1), -1)
    switches = identity_switches(track_of_truth, np.where(truth_here, truth_ids, -1))
    matched_count = int((matched >= 0).sum())
    return EvalResult(
        joint_names=names, t_ns=truth.t_ns[tf], pred_frames=pf.astype(np.int64), truth_frames=tf.astype(np.int64),
        frames_matched_by=by, errors=errors, pa_errors=pa, matched=matched, truth_ids=truth_ids,
        limb_names=limb_names, pcp_hits=pcp_hits, pdj_hits=pdj_hits, ap=ap, identity_switches=switches,
        false_positives=int(pred_here.sum()) - matched_count, truth_frames_total=truth.num_frames,
        pred_frames_total=pred.num_frames)
