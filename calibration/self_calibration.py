"""Camera poses from the people in view: self-calibration with known intrinsics.

The people walking through the capture volume are the calibration target (``people_observations``).
From their joints seen by pairs of cameras:

1. Pairs. For every camera pair, the pooled correspondences give a robust essential matrix and the
   relative pose (``epipolar``); its inliers decide which person is which across the two cameras,
   and linking those decisions over all pairs turns each (frame, person, joint) into one 3D point
   shared by every camera that saw it.
2. Initial rig, built incrementally. The best pair (most inliers, discounted under 10 degrees of
   parallax) starts the rig: the first camera at the origin, the second at its relative pose, baseline
   1. Their shared points are triangulated (outlier-robust, ``rigs.triangulate.triangulate_robust``).
   Then, repeatedly, the camera that sees the most triangulated points is placed by PnP with RANSAC
   on normalised coordinates (identity camera matrix) and the points are triangulated again. PnP
   against points already triangulated keeps one scale throughout, and a camera that shares no view
   with the first pair still joins through the cameras it does share views with.
3. Joint bundle adjustment of every camera pose and every 3D joint with a robust loss
   (``bundle_adjust``, the first camera of the start pair fixed), after dropping the observations
   that robust triangulation found inconsistent; then the points are re-triangulated and the
   adjustment runs once more, as the first pass's inlier choice was made with the rough rig.
4. Metric scale from the person's stated height (``metric_scale``: the median leg, trunk and head
   segments over all instances) or from a known distance between two cameras. The people of every
   frame (not only those adjusted) are matched and triangulated with the adjusted rig for this, and
   only joints seen consistently by three cameras or more are measured (a two-view point cannot be
   checked).
5. World frame: the floor is a plane fitted robustly to the feet on the ground (``floor_from_feet``),
   Z up towards the cameras, origin under the feet (``world_frame.floor_world``); or, without the
   floor, the first camera's frame.

``refine_from_people`` re-runs steps 1 (association only) and 3 from an existing calibration, for
instance after a camera was bumped, and keeps that calibration's world frame and scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import combinations

import cv2
import numpy as np

from calibration.bundle_adjust import PointObservations, bundle_adjust
from calibration.epipolar import RelativePose, relative_pose, sampson_distance, skew
from calibration.errors import CalibrationError
from calibration.metric_scale import (
    foot_points,
    person_height,
    scale_from_distance,
    scale_from_height,
)
from calibration.people_observations import (
    PairCorrespondences,
    PeopleCandidates,
    PeopleObservations,
    match_people,
    pair_correspondences,
    people_candidates,
    people_observations,
)
from calibration.world_frame import WorldTransform, first_camera_world, floor_world
from rigs.camera import Rig
from rigs.keypoint_files import Keypoints2DSequence
from rigs.rotations import matrix_to_rotvec, rotvec_to_matrix
from rigs.skeletons import get_skeleton
from rigs.triangulate import triangulate_robust

Progress = Callable[[int, int], None] | None

DEFAULT_HEIGHT = 1.70   # m, assumed when neither a height nor a distance is given (with a warning)
MIN_PNP_POINTS = 12     # triangulated points a camera must see to be placed by PnP
WEAK_OBSERVATIONS = 150  # a camera held by fewer inlier observations than this gets a warning
MIN_FLOOR_SPREAD = 0.2  # m: the feet's spread (std) across their narrowest direction needed to fix the floor
MEASURE_FRAMES = 3000   # frames used (in runs of 3) to measure the people and find the floor
MIN_CONTACTS = 30       # foot-on-the-floor positions needed to fit the floor
MAX_FRAME_GAP = 3       # frames apart that still count as neighbours for measuring a foot on the floor
FLOOR_TILT_WARNING = 0.2  # deg: a floor tilt uncertainty above this gets a warning


@dataclass(frozen=True, eq=False)
class SelfCalibrationResult:
    """The calibrated rig (intrinsics as given), the 3D joints it was adjusted with, and how it went."""

    rig: Rig
    points: np.ndarray                          # [P, 3] world joints used in the adjustment (metres)
    camera_rms: dict[str, float]                # px, per camera, inlier observations
    pair_inliers: dict[tuple[str, str], int]    # epipolar inliers per camera pair that gave a pose
    scale: float                                # metres per unit applied
    warnings: tuple[str, ...]
    height: float = float("nan")                # measured height of the people in view (m)


# --- pairs and association ------------------------------------------------------------------------

def _pair_focal(rig: Rig, a: int, b: int) -> float:
    """Mean focal length (px) of two cameras: turns pixel thresholds into normalised units."""
    return float(np.mean([np.sqrt(rig[i].K[0, 0] * rig[i].K[1, 1]) for i in (a, b)]))


def _pairwise_poses(rig: Rig, cands: PeopleCandidates, threshold_px: float, progress: Progress, done: int,
                    total: int) -> tuple[dict, dict, dict]:
    """Relative pose of every camera pair with enough correspondences: (poses, correspondences, reasons)."""
    poses: dict[tuple[int, int], RelativePose] = {}
    corr: dict[tuple[int, int], PairCorrespondences] = {}
    reasons: dict[tuple[int, int], str] = {}
    for a, b in combinations(range(len(rig)), 2):
        pair = pair_correspondences(cands, a, b)
        corr[a, b] = pair
        try:
            poses[a, b] = relative_pose(pair.xa, pair.xb, threshold_px=threshold_px, focal=_pair_focal(rig, a, b))
        except CalibrationError as err:
            reasons[a, b] = str(err)
        done += 1
        if progress is not None:
            progress(done, total)
    return poses, corr, reasons


def _matches_from_poses(cands: PeopleCandidates, poses: Mapping, corr: Mapping) -> dict:
    """Accepted person pairings [T, P, P] per camera pair from the pairs' epipolar inliers."""
    shape = cands.scores.shape[1:3]
    return {ab: match_people(corr[ab], pose.inliers, shape) for ab, pose in poses.items()}


def _matches_from_rig(rig: Rig, cands: PeopleCandidates, threshold_px: float) -> dict:
    """Accepted person pairings per camera pair from a calibrated rig's own epipolar geometry."""
    out = {}
    shape = cands.scores.shape[1:3]
    for a, b in combinations(range(len(rig)), 2):
        pair = pair_correspondences(cands, a, b)
        if not len(pair):
            continue
        R = rig[b].R @ rig[a].R.T
        t = rig[b].t - R @ rig[a].t
        E = skew(t / max(np.linalg.norm(t), 1e-12)) @ R   # unit baseline: distances in normalised units
        inl = np.abs(sampson_distance(E, pair.xa, pair.xb)) < threshold_px / _pair_focal(rig, a, b)
        out[a, b] = match_people(pair, inl, shape)
    return out


def _subsample(cands: PeopleCandidates, max_frames: int | None, run: int = 1) -> PeopleCandidates:
    """At most max_frames frames, in evenly spaced runs of ``run`` consecutive frames (consecutive frames
    add little to an adjustment, the body barely moves; the floor wants neighbours, see floor_from_feet)."""
    T = len(cands.frames)
    if max_frames is None or T <= max_frames:
        return cands
    starts = np.unique(np.linspace(0, T - run, max(1, max_frames // run)).round().astype(int))
    rows = np.unique((starts[:, None] + np.arange(run)).ravel())
    return PeopleCandidates(cands.camera_names, cands.skeleton, cands.frames[rows], cands.pixels[:, rows],
                            cands.normalized[:, rows], cands.scores[:, rows])


# --- triangulation, resection, adjustment -----------------------------------------------------------

def _triangulate(rig: Rig, obs: PeopleObservations, cams: np.ndarray,
                 threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 3] (NaN: fewer than 2 consistent views) from the cameras ``cams`` (indices) and the
    inlier views bool [C, N] (False for the other cameras)."""
    kp = obs.keypoints()
    res = triangulate_robust(rig.subset([rig.names[c] for c in cams]), kp[cams], threshold_px=threshold_px)
    inliers = np.zeros(obs.seen.shape, dtype=bool)
    inliers[cams] = np.asarray(res.inliers)
    return np.asarray(res.points[:, :3], dtype=np.float64), inliers


def _resection(X: np.ndarray, xy: np.ndarray, threshold: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Pose (R, t) of a camera from points X [K, 3] seen at normalised xy [K, 2]: PnP with RANSAC, then
    Levenberg-Marquardt on the inliers. Returns R, t and the number of inliers."""
    cv2.setRNGSeed(seed)
    ok, rvec, tvec, inl = cv2.solvePnPRansac(X, xy, np.eye(3), None, iterationsCount=2000,
                                             reprojectionError=threshold, confidence=0.9999,
                                             flags=cv2.SOLVEPNP_EPNP)
    if not ok or inl is None or len(inl) < MIN_PNP_POINTS:
        return np.eye(3), np.zeros(3), 0 if inl is None else len(inl)
    inl = inl.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(X[inl], xy[inl], np.eye(3), None, rvec, tvec)
    return rotvec_to_matrix(rvec.ravel()), tvec.ravel(), len(inl)


def _adjust(rig: Rig, obs: PeopleObservations, fixed: int, threshold_px: float,
            rounds: int = 2) -> tuple[Rig, np.ndarray, np.ndarray, dict[str, float]]:
    """Robust triangulation then joint bundle adjustment, ``rounds`` times: (rig, points [N, 3] NaN where
    not used, inlier views [C, N], per-camera RMS)."""
    cams = np.arange(len(rig))
    rms: dict[str, float] = {}
    for _ in range(rounds):
        X, inliers = _triangulate(rig, obs, cams, threshold_px)
        used = np.isfinite(X).all(1) & (inliers.sum(0) >= 2)
        cam_i, pt_i = np.nonzero(inliers & used[None])
        if len(pt_i) == 0:
            raise CalibrationError("no joint is seen consistently by two cameras after triangulation; the "
                                   "detections do not agree with one rig")
        ids, compact = np.unique(pt_i, return_inverse=True)
        point_obs = PointObservations(camera=cam_i, point=compact, pixels=obs.pixels[cam_i, pt_i])
        result = bundle_adjust(rig, points=X[ids], point_obs=point_obs, fixed_cameras=(fixed,),
                               loss="soft_l1", f_scale=max(1.0, threshold_px / 4))
        rig, rms = result.rig, result.camera_rms
    X, inliers = _triangulate(rig, obs, cams, threshold_px)
    return rig, X, inliers, rms


# --- the incremental build -----------------------------------------------------------------------------

def _unreachable_message(rig: Rig, missing: list[int], corr: Mapping, reasons: Mapping) -> str:
    """Why the cameras ``missing`` could not be placed, and what to record."""
    parts = []
    for c in missing:
        tries = [(len(corr[min(c, o), max(c, o)]), o) for o in range(len(rig)) if o != c]
        n, other = max(tries)
        name, oname = rig.names[c], rig.names[other]
        if n == 0:
            parts.append(f"{name} shares confident detections with no other camera: have someone walk where "
                         f"{name} and another camera both see them")
        else:
            why = reasons.get((min(c, other), max(c, other)), "its points do not connect to the placed cameras")
            parts.append(f"{name} is best connected to {oname} ({why}): record more of people walking where "
                         f"{name} and the other cameras see them together")
    return "cannot place camera(s) " + ", ".join(rig.names[c] for c in missing) + ": " + "; ".join(parts)


def _initial_rig(rig: Rig, obs: PeopleObservations, poses: Mapping, corr: Mapping, reasons: Mapping,
                 threshold_px: float, progress: Progress, done: int, total: int) -> tuple[Rig, int, list[str]]:
    """Every camera placed (first camera of the best pair at the origin): (rig, that camera, warnings)."""
    if not poses:
        best = max(corr, key=lambda ab: len(corr[ab]))
        raise CalibrationError(f"no camera pair gives a relative pose: best pair {rig.names[best[0]]}-"
                               f"{rig.names[best[1]]}: {reasons.get(best, 'no shared detections')}; record "
                               f"people walking through the views of several cameras at once")
    a, b = max(poses, key=lambda ab: poses[ab].score)
    cams = {a: (np.eye(3), np.zeros(3)), b: (poses[a, b].R, poses[a, b].t)}
    warnings = []
    while True:
        placed = np.array(sorted(cams))
        work = rig.replace(cameras=tuple(cam.with_extrinsics(*cams.get(i, (np.eye(3), np.zeros(3))))
                                         for i, cam in enumerate(rig)))
        X, _ = _triangulate(work, obs, placed, threshold_px)
        done += 1
        if progress is not None:
            progress(done, total)
        if len(cams) == len(rig):
            return work, a, warnings
        known = np.isfinite(X).all(1)
        counts = {c: int((known & obs.seen[c]).sum()) for c in range(len(rig)) if c not in cams}
        c = max(counts, key=counts.get)
        sel = known & obs.seen[c]
        R, t, n = (np.eye(3), np.zeros(3), 0) if counts[c] < MIN_PNP_POINTS else _resection(
            X[sel], obs.normalized[c, sel], threshold_px / np.sqrt(rig[c].K[0, 0] * rig[c].K[1, 1]))
        if n < MIN_PNP_POINTS:
            missing = [m for m in range(len(rig)) if m not in cams]
            raise CalibrationError(_unreachable_message(rig, missing, corr, reasons))
        if n < 3 * MIN_PNP_POINTS:
            warnings.append(f"{rig.names[c]} was placed from only {n} points seen by the other cameras; record "
                            f"more where it overlaps them")
        cams[c] = (R, t)


# --- public API -------------------------------------------------------------------------------------------

def _measured_people(obs: PeopleObservations, X: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """People instances [M, J, 3] for measuring (height, feet): points with at least 3 consistent views
    when the rig has 3 cameras or more (a 2-view point cannot be checked, and its rare gross errors would
    sink the floor), all triangulated points when those are too few to measure a body."""
    J = get_skeleton(obs.skeleton).num_joints
    checked = np.where((inliers.sum(0) >= min(3, inliers.shape[0]))[:, None], X, np.nan)
    people = obs.instances(checked, J)
    try:
        person_height(people, obs.skeleton)
    except CalibrationError:
        return obs.instances(X, J)
    return people


def _check_scale_args(rig: Rig, person_height_m: float | None, distance: tuple[str, str, float] | None) -> None:
    """Refuse contradictory or unusable scale arguments before any work is done."""
    if person_height_m is not None and distance is not None:
        raise CalibrationError("give either the person's height or a distance between two cameras, not both")
    if distance is not None:
        for n in distance[:2]:
            if n not in rig.names:
                raise CalibrationError(f"distance: the rig has no camera {n!r}; its cameras are "
                                       f"{', '.join(rig.names)}")
        if distance[0] == distance[1]:
            raise CalibrationError(f"distance: name two different cameras, not {distance[0]!r} twice")


def _metric_scale(rig: Rig, people: np.ndarray, skeleton: str, person_height_m: float | None,
                  distance: tuple[str, str, float] | None) -> tuple[float, float, list[str]]:
    """Metres per unit from the stated height or camera distance, the people's height (m), warnings."""
    warnings = []
    _check_scale_args(rig, person_height_m, distance)
    if distance is not None:
        cam_a, cam_b, metres = distance
        scale = scale_from_distance(rig.centers, rig.index(cam_a), rig.index(cam_b), metres)
    else:
        if person_height_m is None:
            person_height_m = DEFAULT_HEIGHT
            warnings.append(f"no person height or camera distance given: the scale assumes people "
                            f"{DEFAULT_HEIGHT:.2f} m tall; give --person-height or --distance for a true scale")
        scale = scale_from_height(people, skeleton, person_height_m)
    return scale, scale * person_height(people, skeleton), warnings


def _contact_points(people: np.ndarray, frames: np.ndarray, feet: np.ndarray, offset: np.ndarray,
                    first: WorldTransform) -> tuple[np.ndarray, np.ndarray]:
    """Each instance's foot point on the floor, measured without selection bias: (points [K, 3], offsets [K]).

    The contact joint is the instance's lowest foot point over the first floor (the foot on the ground),
    among instances whose sole points (heels and toes; ankles where there are none) were all triangulated:
    with one missing, the lowest found might be a raised one. Taking the chosen point's own position would
    favour points whose noise happens to push them down, and more so where the cameras see the feet less
    sharply, which tilts the floor; so the same joint is measured in the same person in the frames just
    before and after (at most ``MAX_FRAME_GAP`` apart, linked by the body's centroid within 0.3 m; a foot
    on the ground does not move), whose noise had no say in the choice. Instances with no neighbour are
    left out. ``frames`` [M] are the instances' frame numbers, sorted.
    """
    M = len(people)
    above = first.apply(feet)[..., 2] - offset
    sole = offset < offset.max() if (offset < offset.max()).any() else np.ones(len(offset), bool)
    complete = np.isfinite(above[:, sole]).all(1)
    low = np.where(np.isfinite(above), above, np.inf).argmin(1)
    seen = np.isfinite(people).all(-1)
    centroid = np.where(seen[..., None], people, 0.0).sum(1) / np.maximum(seen.sum(1), 1)[:, None]  # [M, 3]
    keys = np.unique(frames)
    row = np.searchsorted(keys, frames)
    most = int(np.bincount(row).max(initial=0))                                   # people in one frame
    measured, count = np.zeros((M, 3)), np.zeros(M)
    for step in (-1, 1):
        near = np.clip(row + step, 0, len(keys) - 1)
        near_ok = (row + step >= 0) & (row + step < len(keys)) & (np.abs(keys[near] - frames) <= MAX_FRAME_GAP)
        first_of = np.searchsorted(frames, keys[near])                             # first instance of that frame
        best, best_d = np.full(M, -1), np.full(M, np.inf)
        for k in range(most):
            cand = np.minimum(first_of + k, M - 1)
            ok = near_ok & (first_of + k < M) & (frames[cand] == keys[near])
            d = np.where(ok, np.linalg.norm(centroid[cand] - centroid, axis=1), np.inf)
            best, best_d = np.where(d < best_d, cand, best), np.minimum(d, best_d)
        point = feet[np.maximum(best, 0), low]
        linked = (best_d < 0.3) & np.isfinite(point).all(1)
        measured[linked] += point[linked]
        count[linked] += 1
    ok = (count > 0) & complete
    return measured[ok] / count[ok, None], offset[low[ok]]


def _lowered(points: np.ndarray, offset: np.ndarray, floor: WorldTransform) -> np.ndarray:
    """Points [..., 3] moved down (along the floor's normal) by how high they sit above it [...]."""
    return points - np.asarray(offset)[..., None] * floor.R[2] / floor.scale


def floor_from_feet(people: np.ndarray, frames: np.ndarray, skeleton: str, height_m: float,
                    rig: Rig) -> tuple[WorldTransform, float]:
    """The floor frame from people instances [M, J, 3] (metres) in frames [M] (frame numbers, sorted), and
    the 1-sigma uncertainty of its tilt (degrees).

    Every foot joint is first lowered by its standing height above the floor (ankles 0.039 H, heels and
    toes 0.01 H) along the normal of a rough plane through them all, and a plane fitted through those; the
    floor is then fitted to the feet on the ground only (``_contact_points``: a swinging foot would tilt
    the plane towards where people walk), lowered the same way. Lowering each point before the fit keeps
    the mix of ankles, heels and toes from tilting the plane.

    Raises CalibrationError when the feet stay in too small an area to fix the floor's tilt.
    """
    feet, offset = foot_points(people, skeleton, height_m)          # [M, F, 3], [F]
    M, F = feet.shape[:2]
    offsets = np.broadcast_to(offset, (M, F))
    rough = floor_world(feet.reshape(-1, 3), rig, offsets.reshape(-1))
    first = floor_world(_lowered(feet, offsets, rough).reshape(-1, 3), rig)
    contact, contact_offset = _contact_points(people, np.asarray(frames), feet, offset, first)
    if len(contact) < MIN_CONTACTS:
        raise CalibrationError(f"floor: only {len(contact)} foot-on-the-floor positions were seen in consecutive "
                               f"frames (need {MIN_CONTACTS}); record people walking around the capture area")
    on_floor = first.apply(contact)[:, :2]
    spread = np.sqrt(np.linalg.eigvalsh(np.cov(on_floor.T)))
    if spread[0] < MIN_FLOOR_SPREAD:
        raise CalibrationError(f"floor: the feet stay within {2 * spread[0]:.2f} x {2 * spread[1]:.2f} m, too "
                               f"small to fix the floor's tilt; record people walking around the capture area "
                               f"(not in place or along one line), or keep the camera frame (--world camera)")
    floor = floor_world(_lowered(contact, contact_offset, first), rig, threshold=0.03)
    z = floor.apply(_lowered(contact, contact_offset, first))[:, 2]
    z = z[np.abs(z) < 0.03]
    tilt_sigma = np.degrees(np.std(z) / (np.sqrt(max(len(z), 1)) * spread[0]))
    return floor, float(tilt_sigma)


def _weak_cameras(rig: Rig, inliers: np.ndarray) -> list[str]:
    counts = inliers.sum(1)
    return [f"{name} is held by only {int(n)} consistent joint observations; record more of people in its view "
            f"and another camera's" for name, n in zip(rig.names, counts, strict=True) if n < WEAK_OBSERVATIONS]


def _connection_warnings(rig: Rig, inliers: np.ndarray, poses: Mapping, corr: Mapping, reasons: Mapping) -> list[str]:
    """Weakly held cameras, cameras hanging on one pair, and pairs that share detections but gave no pose."""
    return (_weak_cameras(rig, inliers) + _single_link_cameras(rig, poses)
            + [f"{rig.names[a]}-{rig.names[b]}: no relative pose ({why})" for (a, b), why in reasons.items()
               if len(corr[a, b]) > 0])


def _single_link_cameras(rig: Rig, poses: Mapping) -> list[str]:
    """Warnings for cameras whose only relative pose is with one other camera (their placement rests on it)."""
    if len(rig) < 3:
        return []
    links: dict[int, list[int]] = {c: [] for c in range(len(rig))}
    for a, b in poses:
        links[a].append(b)
        links[b].append(a)
    return [f"{rig.names[c]} has a relative pose with {rig.names[o[0]]} only; record people where it also "
            f"overlaps other cameras" for c, o in links.items() if len(o) == 1]


def _pair_names(rig: Rig, poses: Mapping) -> dict[tuple[str, str], int]:
    return {(rig.names[a], rig.names[b]): p.num_inliers for (a, b), p in poses.items()}


def _world_frame(rig: Rig, cands: PeopleCandidates, person_height_m: float | None,
                 distance: tuple[str, str, float] | None, floor: bool,
                 threshold_px: float) -> tuple[WorldTransform, float, list[str]]:
    """From the adjusted rig's frame to metres and the floor frame (or the first camera's): the transform,
    the people's height (m) and warnings. The people of every frame in ``cands`` are matched and
    triangulated with the adjusted rig for this (cheap, and more than the adjustment used)."""
    obs = people_observations(cands, _matches_from_rig(rig, cands, threshold_px))
    X, inliers = _triangulate(rig, obs, np.arange(len(rig)), threshold_px)
    people = _measured_people(obs, X, inliers)
    scale, height, warnings = _metric_scale(rig, people, obs.skeleton, person_height_m, distance)
    T = WorldTransform(np.eye(3), np.zeros(3), scale, "metres")
    if not floor:
        return T.then(first_camera_world(T.apply_rig(rig))), height, warnings
    F, tilt = floor_from_feet(T.apply(people), obs.frames[obs.instance_frames()], obs.skeleton, height,
                              T.apply_rig(rig))
    if tilt > FLOOR_TILT_WARNING:
        warnings.append(f"the floor's tilt is uncertain by about {tilt:.2f} deg; record people walking over more "
                        f"of the floor")
    return T.then(F), height, warnings


def self_calibrate(rig: Rig, keypoints: Mapping[str, Keypoints2DSequence], *, person_height: float | None = None,
                   distance: tuple[str, str, float] | None = None, min_confidence: float = 0.5,
                   floor: bool = True, threshold_px: float = 8.0, max_frames: int | None = 400,
                   progress: Progress = None) -> SelfCalibrationResult:
    """Camera poses from the people in view (the rig's intrinsics are kept): epipolar pairs, incremental
    build, joint bundle adjustment, metric scale (height or camera distance), floor at z = 0 with ``floor``.

    ``threshold_px`` is the inlier threshold for detections (keypoints are noisier than board corners);
    ``max_frames`` caps the frames used (evenly spaced) to bound the adjustment's size.
    """
    if len(rig) < 2:
        raise CalibrationError(f"self-calibration needs at least 2 cameras; the rig has {len(rig)}")
    _check_scale_args(rig, person_height, distance)
    every = people_candidates(rig, keypoints, min_confidence=min_confidence)
    cands = _subsample(every, max_frames)
    every = _subsample(every, MEASURE_FRAMES, run=3)
    n_pairs = len(rig) * (len(rig) - 1) // 2
    total = n_pairs + len(rig) - 1 + 2
    poses, corr, reasons = _pairwise_poses(rig, cands, threshold_px, progress, 0, total)
    obs = people_observations(cands, _matches_from_poses(cands, poses, corr))
    work, anchor, warnings = _initial_rig(rig, obs, poses, corr, reasons, threshold_px, progress, n_pairs, total)
    work, X, inliers, _ = _adjust(work, obs, anchor, threshold_px)
    if progress is not None:
        progress(total - 1, total)
    T, height, more = _world_frame(work, every, person_height, distance, floor, threshold_px)
    out = T.apply_rig(work).replace(up="z" if floor else "-y")
    X = T.apply(X)
    rms = _rms(out, obs, X, inliers)
    if progress is not None:
        progress(total, total)
    warnings += more + _connection_warnings(rig, inliers, poses, corr, reasons)
    used = np.isfinite(X).all(1)
    return SelfCalibrationResult(rig=out, points=X[used], camera_rms=rms, pair_inliers=_pair_names(rig, poses),
                                 scale=T.scale, warnings=tuple(warnings), height=height)


def _rms(rig: Rig, obs: PeopleObservations, X: np.ndarray, inliers: np.ndarray) -> dict[str, float]:
    """Reprojection RMS (px) per camera over its inlier observations."""
    out = {}
    for c, cam in enumerate(rig):
        sel = inliers[c] & np.isfinite(X).all(1)
        err = np.linalg.norm(cam.project(X[sel]) - obs.pixels[c, sel], axis=-1)
        out[cam.name] = float(np.sqrt(np.mean(err ** 2))) if len(err) else float("nan")
    return out


def _frame_fit(new: Rig, old: Rig, keep: np.ndarray) -> WorldTransform:
    """The similarity x_old = s R x_new + t that best puts the kept cameras of ``new`` on ``old``: R from
    their orientations (the chordal mean of R_old^T R_new, sharper than centres a few metres apart), then
    s and t by least squares on their centres (s = 1 with one camera)."""
    M = sum(old[c].R.T @ new[c].R for c in np.flatnonzero(keep))
    U, _, Vt = np.linalg.svd(M)
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    a, b = new.centers[keep] @ R.T, old.centers[keep]
    da, db = a - a.mean(0), b - b.mean(0)
    s = float((da * db).sum() / (da * da).sum()) if keep.sum() >= 2 else 1.0
    return WorldTransform(R, b.mean(0) - s * a.mean(0), s, "the input calibration")


def keep_world_frame(new: Rig, old: Rig, moved_m: float = 0.01,
                     moved_deg: float = 0.2) -> tuple[WorldTransform, np.ndarray]:
    """The similarity that puts ``new``'s cameras back where ``old`` has them, fitted to the cameras that did
    not move: the camera furthest off (relative to ``moved_m`` and ``moved_deg``) is dropped while it is
    beyond either and two stay. Returns the transform and the mask of cameras it was fitted to."""
    keep = np.ones(len(new), dtype=bool)
    while True:
        T = _frame_fit(new, old, keep)
        moved = T.apply_rig(new)
        off_m = np.linalg.norm(moved.centers - old.centers, axis=1) / moved_m
        off_deg = np.array([_angle(a.R @ b.R.T) for a, b in zip(moved, old, strict=True)]) / moved_deg
        worst = int(np.argmax(np.where(keep, np.maximum(off_m, off_deg), -1)))
        if max(off_m[worst], off_deg[worst]) <= 1 or keep.sum() <= 2:
            return T, keep
        keep[worst] = False


def _angle(R: np.ndarray) -> float:
    """Rotation angle (degrees) of a rotation matrix."""
    return float(np.degrees(np.linalg.norm(matrix_to_rotvec(R))))


def refine_from_people(rig: Rig, keypoints: Mapping[str, Keypoints2DSequence], *, min_confidence: float = 0.5,
                       threshold_px: float = 8.0, anchor: int = 0, max_frames: int | None = 400,
                       progress: Progress = None) -> SelfCalibrationResult:
    """Joint bundle adjustment of every camera pose from an existing calibration, e.g. to fix a bumped
    camera; the result keeps the input's world frame and scale (fitted to the cameras that did not move).

    People are matched across cameras by freshly estimated pair geometry (so a moved camera does not
    spoil it), triangulated robustly with the input rig (a moved camera is outvoted), every camera is
    re-placed by PnP against those points, and camera poses and points are adjusted together with camera
    ``anchor`` held (the adjustment's gauge; the world frame is fitted afterwards whichever camera moved).
    """
    if len(rig) < 2:
        raise CalibrationError(f"refining needs at least 2 cameras; the rig has {len(rig)}")
    cands = _subsample(people_candidates(rig, keypoints, min_confidence=min_confidence), max_frames)
    n_pairs = len(rig) * (len(rig) - 1) // 2
    total = n_pairs + len(rig) + 2
    poses, corr, reasons = _pairwise_poses(rig, cands, threshold_px, progress, 0, total)
    obs = people_observations(cands, _matches_from_poses(cands, poses, corr))
    X, _ = _triangulate(rig, obs, np.arange(len(rig)), 2 * threshold_px)
    known = np.isfinite(X).all(1)
    work = rig
    for c, cam in enumerate(rig):
        sel = known & obs.seen[c]
        if sel.sum() >= MIN_PNP_POINTS:
            R, t, n = _resection(X[sel], obs.normalized[c, sel], threshold_px / np.sqrt(cam.K[0, 0] * cam.K[1, 1]))
            if n >= MIN_PNP_POINTS:
                work = work.with_camera(cam.with_extrinsics(R, t))
        if progress is not None:
            progress(n_pairs + c + 1, total)
    work, X, inliers, _ = _adjust(work, obs, anchor, threshold_px)
    T, fitted = keep_world_frame(work, rig)
    out = T.apply_rig(work).replace(up=rig.up)
    X = T.apply(X)
    warnings = _connection_warnings(rig, inliers, poses, corr, reasons)
    for before, after in zip(rig, out, strict=True):
        moved = np.linalg.norm(after.center - before.center)
        turned = _angle(after.R @ before.R.T)
        if moved > 0.01 or turned > 0.2:
            warnings.append(f"{before.name} moved by {moved * 100:.1f} cm and turned by {turned:.2f} deg from the "
                            f"input calibration")
    if not fitted.all():
        warnings.append("the world frame was kept on " + ", ".join(n for n, k in zip(rig.names, fitted, strict=True)
                                                                    if k))
    if progress is not None:
        progress(total, total)
    used = np.isfinite(X).all(1)
    people = _measured_people(obs, X, inliers)
    try:
        height = person_height(people, obs.skeleton)
    except CalibrationError:
        height = float("nan")
    return SelfCalibrationResult(rig=out, points=X[used], camera_rms=_rms(out, obs, X, inliers),
                                 pair_inliers=_pair_names(rig, poses), scale=T.scale, warnings=tuple(warnings),
                                 height=height)


def floor_from_people(rig: Rig, keypoints: Mapping[str, Keypoints2DSequence], *, person_height_m: float | None = None,
                      min_confidence: float = 0.5, threshold_px: float = 8.0,
                      max_frames: int | None = 400) -> WorldTransform:
    """The floor frame (z = 0 under the people's feet, Z up) of a calibrated metric rig, from the people in
    view: matched across cameras by the rig's own epipolar geometry and triangulated robustly."""
    cands = _subsample(people_candidates(rig, keypoints, min_confidence=min_confidence), max_frames, run=3)
    obs = people_observations(cands, _matches_from_rig(rig, cands, threshold_px))
    X, inliers = _triangulate(rig, obs, np.arange(len(rig)), threshold_px)
    people = _measured_people(obs, X, inliers)
    height = person_height(people, obs.skeleton) if person_height_m is None else person_height_m
    return floor_from_feet(people, obs.frames[obs.instance_frames()], obs.skeleton, height, rig)[0]
