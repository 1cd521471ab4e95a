"""Multi-person association across views: which detections in which cameras are the same person, one frame.

Method, on one frame ``keypoints2d [C, P, J, 3]`` whose detections (slots reporting a joint) are the nodes:

1. **Pairwise geometric affinity.** Every joint is undistorted once per camera and turned into its viewing
   ray in the world, in Plücker form (direction d, moment m = c x d). Two rays from different cameras are
   coplanar exactly when ``d1 . m2 + d2 . m1 = 0``; that reciprocal product equals the epipolar residual
   ``x_b^T E_ab x_a``, so one batched matrix product per joint gives it for every pair of detections at
   once. Divided by the length of the epipolar line in each image and scaled by the focal length, it is
   the symmetric point-to-epipolar-line distance in pixels. A joint's affinity is ``1 - d / threshold_px``
   clipped to [0, 1] (a gross outlier joint costs only its share), and a pair's affinity is the mean over
   the joints both report with score >= min_score, weighted by ``sqrt(score_a * score_b)``; pairs sharing
   fewer than ``MIN_SHARED_JOINTS`` joints carry no evidence either way. Knowing the skeleton, the pair is
   also compared with one side's left and right joints swapped (detectors do that), keeping the better.
2. **Consistent clustering over all views (correlation clustering).** An edge weighs ``affinity -
   SAME_PERSON_AFFINITY`` (positive: same person); two detections of one camera can never be together.
   The partition maximising the total weight inside groups is approximated by greedy additive edge
   contraction (repeatedly merge the two groups whose summed cross weight is largest and positive: a
   detection joins a group only if it agrees with its members on balance, never through a chain of
   pairwise matches), then refined by single-detection moves (to another group, or alone) while one
   raises the total. A partition is cycle-consistent by construction.
3. **Temporal prior.** ``prior [Q, J, 4]`` (the tracker's predicted poses) is projected into every camera
   and each detection scored against each track by reprojection affinity (``1 - d / (PRIOR_SCALE *
   threshold_px)``, same weighting). Two detections matching the same track gain weight, two matching
   different tracks lose it (``PRIOR_WEIGHT``): this breaks the ties of people standing close, whose joints
   can lie on each other's epipolar lines (two views cannot tell them apart at all when they stand along
   the baseline). A wrong prior (a track that ended, a prediction gone astray) matches no detection and
   changes nothing, or adds bounded weight that the views' mutual geometry outvotes.
4. **Validation by triangulation.** The members of a group are first made to agree on left and right (a
   guess from the pairwise flips), and a member's joint counts as an inlier when it lies within
   ``threshold_px`` of the epipolar lines of the same joint in at least half of the other members (so a
   gross outlier joint or a swapped limb cannot pull the point). The group is triangulated from the inliers
   (score-weighted DLT); each member is taken the way round (as is, or swapped) that reprojects better, and a
   member whose median joint reprojection error exceeds ``threshold_px`` is split off (the worst of a group
   first, then again): views that agree pairwise but not jointly cannot stay. ``Association.flipped`` says
   which views are swapped relative to their group (``gather`` can swap them back). Groups seen by fewer
   than ``min_views`` cameras are dropped: a ghost detection, or a person seen by one camera only, ends
   alone and goes.

Cost: a handful of array operations over [J, N, N] (N detections in all cameras) and a loop of at most N
merges over an N x N matrix; about 1-2 ms for 8 cameras x 4 people on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rigs.camera import Rig
from rigs.skeletons import Skeleton, get_skeleton
from rigs.triangulate import triangulate_dlt

MIN_SHARED_JOINTS = 4  # joints two detections must both report for their affinity to count
SAME_PERSON_AFFINITY = 0.4  # pair affinity at which "same person" and "different people" weigh equally
PRIOR_SCALE = 2.0  # a predicted pose is trusted to threshold_px * PRIOR_SCALE (its own error adds up)
PRIOR_WEIGHT = 0.5  # weight of two detections matching the same track (or two tracks), relative to geometry
_CONFLICT = -1e6  # weight of two detections that may never share a group (same camera)
_MAX_SPLITS = 3  # rounds of splitting off inconsistent members
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-12)


class AssociationInputError(ValueError):
    """Keypoints, prior or settings that association cannot use, saying what is wrong and how to fix it."""


@dataclass(frozen=True, eq=False)
class Association:
    """Person groups across cameras for one frame: each row one person, each column one camera."""

    groups: np.ndarray  # int32 [G, C]: the detection slot of each camera in person-group g (-1: none)
    affinity: np.ndarray  # float32 [G]: mean pairwise affinity inside the group (0..1)
    flipped: np.ndarray | None = None  # bool [G, C]: that view's left/right joints are swapped relative to the group
    inliers: np.ndarray | None = None  # bool [G, C, J]: the member's joints (its own order) that agree with the
    #                                    others' epipolar lines: a consensus to seed the triangulation with


@dataclass(frozen=True, eq=False)
class _Nodes:
    """The detections of one frame as graph nodes: camera, slot, pixels, normalised coords, joint weights."""

    cam: np.ndarray  # int [N]
    slot: np.ndarray  # int [N]
    pixels: np.ndarray  # [N, J, 2] (0 where not valid)
    xy: np.ndarray  # [N, J, 2] undistorted normalised coordinates (0 where not valid)
    weight: np.ndarray  # [N, J] score, 0 where not valid (missing, NaN or below min_score)


def _check_inputs(rig: Rig, keypoints2d: np.ndarray, prior: np.ndarray | None, threshold_px: float,
                  min_views: int) -> None:
    """Raise AssociationInputError naming the first unusable argument."""
    kp = np.asarray(keypoints2d)
    if kp.ndim != 4 or kp.shape[0] != len(rig) or kp.shape[-1] != 3:
        raise AssociationInputError(
            f"keypoints2d: expected one frame [C={len(rig)}, P, J, 3] (x, y, score) for the rig's {len(rig)} "
            f"cameras, got shape {kp.shape}; pass keypoints2d[:, t] for frame t of a sequence")
    if prior is not None:
        pr = np.asarray(prior)
        if pr.ndim != 3 or pr.shape[1:] != (kp.shape[2], 4):
            raise AssociationInputError(
                f"prior: expected predicted poses [Q, J={kp.shape[2]}, 4] (x, y, z, score), got shape {pr.shape}; "
                f"pass None when there are no live tracks")
    if not threshold_px > 0:
        raise AssociationInputError(f"threshold_px: expected a positive distance in pixels, got {threshold_px}")
    if min_views < 1:
        raise AssociationInputError(f"min_views: expected at least 1 camera per person, got {min_views}")


def _flip_indices(skeleton: str | Skeleton | None, num_joints: int) -> np.ndarray | None:
    """The skeleton's left/right permutation, None without a skeleton; a joint count mismatch is an error."""
    if skeleton is None:
        return None
    sk = get_skeleton(skeleton)
    if sk.num_joints != num_joints:
        raise AssociationInputError(f"skeleton: {sk.name!r} has {sk.num_joints} joints but the keypoints have "
                                    f"{num_joints}; pass the skeleton the keypoints were detected in")
    return sk.flip_indices()


def _nodes(rig: Rig, keypoints2d: np.ndarray, min_score: float) -> _Nodes:
    """Every detection reporting at least one joint, undistorted once per camera."""
    kp = np.asarray(keypoints2d, dtype=np.float64)
    pixels, score = kp[..., :2], kp[..., 2]
    valid = np.isfinite(pixels).all(-1) & np.isfinite(score) & (score > 0) & (score >= min_score)
    pixels = np.where(valid[..., None], pixels, 0.0)
    xy = np.where(valid[..., None], _undistort(rig, pixels), 0.0)
    cam, slot = np.nonzero(valid.any(-1))
    return _Nodes(cam=cam, slot=slot, pixels=pixels[cam, slot], xy=xy[cam, slot],
                  weight=np.where(valid, score, 0.0)[cam, slot])


def _undistort(rig: Rig, pixels: np.ndarray) -> np.ndarray:
    """Pixels [C, ...] -> undistorted normalised coordinates [C, ...]: in closed form for every camera at once,
    then the lens inverted where there is one (OpenCV's iteration for pinhole lenses, to 1e-12: fast and the
    same as the camera model's own inverse; the camera's for fisheye)."""
    K = np.stack([c.K for c in rig]).reshape(len(rig), *(1,) * (pixels.ndim - 2), 3, 3)
    y = (pixels[..., 1] - K[..., 1, 2]) / K[..., 1, 1]
    xy = np.stack([(pixels[..., 0] - K[..., 0, 2] - K[..., 0, 1] * y) / K[..., 0, 0], y], -1)
    for i, cam in enumerate(rig):
        if not np.any(cam.dist):
            continue
        if cam.model == "pinhole":
            xy[i] = cv2.undistortPoints(pixels[i].reshape(-1, 1, 2), cam.K, cam.dist,
                                        criteria=_UNDISTORT_CRITERIA).reshape(pixels[i].shape)
        else:
            xy[i] = cam.undistort(pixels[i])
    return xy


@dataclass(frozen=True, eq=False)
class _RigArrays:
    """The rig's geometry as stacked arrays, built once per call: rotations, centres, focal lengths."""

    R: np.ndarray  # [C, 3, 3] world -> camera
    t: np.ndarray  # [C, 3]
    centers: np.ndarray  # [C, 3] in the world
    focal: np.ndarray  # [C] sqrt(fx fy), pixels

    @classmethod
    def of(cls, rig: Rig) -> _RigArrays:
        R = np.stack([c.R for c in rig])
        t = np.stack([c.t for c in rig])
        return cls(R=R, t=t, centers=-np.einsum("cji,cj->ci", R, t),
                   focal=np.array([np.sqrt(c.K[0, 0] * c.K[1, 1]) for c in rig]))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis, broadcasting (np.cross costs more on small arrays)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)


def _pixels_per_residual(geo: _RigArrays, d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """[N, J, C]: the pixel distance to the epipolar line, in camera b, of the ray (d, m) [N, J, 3] per unit
    of reciprocal product: focal_b / |first two coefficients of the line|. The line is R_b n, n = m - c_b x d
    the normal of the epipolar plane, so its length is sqrt(|n|^2 - (z_b . n)^2), expanded into products."""
    c, z = geo.centers, geo.R[:, 2]  # centres and optical axes [C, 3]
    n2 = ((m * m).sum(-1)[..., None] - 2 * _cross(d, m) @ c.T
          + (d * d).sum(-1)[..., None] * (c * c).sum(-1) - (d @ c.T) ** 2)
    nz = m @ z.T - d @ _cross(z, c).T
    return geo.focal / np.sqrt(np.maximum(n2 - nz * nz, 1e-24))


def _weighted_affinity(joint_aff: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over the last axis of joint affinities weighted by w (both [..., J]); NaN where fewer than
    MIN_SHARED_JOINTS joints have weight."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (joint_aff * w).sum(-1) / w.sum(-1)
    return np.where((w > 0).sum(-1) >= MIN_SHARED_JOINTS, mean, np.nan)


@dataclass(frozen=True, eq=False)
class _PairEvidence:
    """What every pair of detections says about being one person."""

    affinity: np.ndarray  # [N, N] 0..1, NaN: same camera or too few joints in common
    flipped: np.ndarray  # bool [N, N]: the pair agrees better with one side's left and right swapped
    agree: np.ndarray  # bool [V, N, N, J]: joint k of n within threshold of the epipolar line of m's joint
    #                    k (V = 0) or of its left/right counterpart (V = 1, with a skeleton)


def _pair_affinities(geo: _RigArrays, nodes: _Nodes, threshold_px: float, flip: np.ndarray | None) -> _PairEvidence:
    """Affinity of every pair of detections in different cameras from symmetric epipolar distances."""
    N, J = nodes.weight.shape
    h = np.concatenate([nodes.xy, np.ones_like(nodes.xy[..., :1])], -1)  # [N, J, 3]
    d = h @ geo.R[nodes.cam]  # ray directions R^T (x, y, 1) in the world
    m = _cross(geo.centers[nodes.cam][:, None], d)  # ray moments c x d
    plucker = np.concatenate([d, m], -1).transpose(1, 0, 2)  # [J, N, 6]
    dual = np.concatenate([m, d], -1).transpose(1, 2, 0)  # [J, 6, N]
    i, j = np.nonzero(np.triu(nodes.cam[:, None] != nodes.cam[None, :], 1))  # pairs in different cameras
    scale = _pixels_per_residual(geo, d, m) * (0.5 / threshold_px)  # [N, J, C]
    to_j = scale[i, :, nodes.cam[j]]  # [K, J]: half the pixels per unit residual, line of i's joint in j's image
    to_i = scale[j, :, nodes.cam[i]]  # [K, J]: the same for j's joint in i's image
    sw = np.sqrt(nodes.weight)
    seen = (nodes.weight > 0).astype(np.float64)
    perms = [np.arange(J)] + ([] if flip is None else [flip])
    affs = []
    agree = np.zeros((len(perms), N, N, J), bool)
    for v, perm in enumerate(perms):  # joint k of i against joint perm[k] of j
        residual = np.abs((plucker @ dual[perm])[:, i, j]).T  # [K, J] reciprocal products of the rays
        dist = residual * (to_j + to_i[:, perm])  # in units of threshold_px
        w = sw[i] * sw[j][:, perm]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = (np.clip(1.0 - dist, 0.0, 1.0) * w).sum(1) / (sw @ sw[:, perm].T)[i, j]
        affs.append(np.where((seen @ seen[:, perm].T)[i, j] >= MIN_SHARED_JOINTS, mean, np.nan))
        agree[v, i, j] = ok = (dist < 1.0) & (w > 0)
        agree[v, j, i] = ok[:, perm]  # perm is its own inverse
    best = np.fmax(affs[0], affs[-1])
    aff = np.full((N, N), np.nan)
    aff[i, j] = aff[j, i] = best
    flipped = np.zeros((N, N), bool)
    flipped[i, j] = flipped[j, i] = (affs[-1] > affs[0]) | (np.isnan(affs[0]) & np.isfinite(affs[-1]))
    return _PairEvidence(affinity=aff, flipped=flipped, agree=agree)


def _prior_affinities(rig: Rig, nodes: _Nodes, prior: np.ndarray, threshold_px: float,
                      flip: np.ndarray | None) -> np.ndarray:
    """Affinity [Q, N] of every predicted pose to every detection from reprojection distances (NaN: fewer
    than MIN_SHARED_JOINTS joints in common), the better of as-is and left/right swapped."""
    pts = np.where(prior[..., 3:4] > 0, prior[..., :3], np.nan)
    proj = rig.project(pts)[nodes.cam]  # [N, Q, J, 2]
    score = np.where(np.isfinite(proj).all(-1), np.clip(prior[None, ..., 3], 0.0, None), 0.0)  # [N, Q, J]
    best = np.full(proj.shape[:2], np.nan)
    for perm in [np.arange(prior.shape[1])] + ([] if flip is None else [flip]):
        dist = np.linalg.norm(proj - nodes.pixels[:, None, perm], axis=-1)
        joint_aff = np.clip(1.0 - dist / (PRIOR_SCALE * threshold_px), 0.0, 1.0)
        w = np.sqrt(score * nodes.weight[:, None, perm])
        best = np.fmax(best, _weighted_affinity(joint_aff, w))
    return best.T


def _track_agreement(link: np.ndarray) -> np.ndarray:
    """[N, N] from track-detection affinities link [Q, N] (0..1, NaN: no evidence): how much two detections
    match the same track (up to +1) rather than two different tracks (down to -1); 0 when either matches none.
    Affinities up to 0.5 count as no match, so that only a clear match to a track says anything."""
    link = np.clip(2.0 * np.nan_to_num(link) - 1.0, 0.0, 1.0)
    same = link.T @ link
    return 2 * same - np.outer(link.sum(0), link.sum(0))


def _contract(W: np.ndarray) -> np.ndarray:
    """Greedy additive edge contraction on symmetric weights W [N, N]: cluster labels [N] (node ids)."""
    N = W.shape[0]
    W = W.copy()
    np.fill_diagonal(W, _CONFLICT)
    label = np.arange(N)
    for _ in range(N - 1):
        i, j = divmod(int(W.argmax()), N)
        if W[i, j] <= 0:
            break
        W[i] += W[j]
        W[:, i] = W[i]
        W[i, i] = _CONFLICT
        W[j] = _CONFLICT
        W[:, j] = _CONFLICT
        np.maximum(W, _CONFLICT * N, out=W)  # forbidden stays forbidden without growing without bound
        label[label == j] = i
    return label


def _refine(W: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Single-node moves (to another cluster, or alone) while one raises the total weight inside clusters."""
    N = W.shape[0]
    W = W.copy()
    np.fill_diagonal(W, 0.0)
    label = label.copy()
    rows = np.arange(N)
    for _ in range(2 * N):
        member = label[:, None] == rows[None, :]  # [N, K]: node n in cluster k (cluster ids are node ids)
        used = member.any(0)
        to_cluster = W @ member  # [N, K]: summed weight between node n and cluster k
        own = to_cluster[rows, label]
        gain = np.where(used[None, :], to_cluster - own[:, None], -np.inf)
        gain[rows, label] = np.where(member.sum(0)[label] > 1, -own, -np.inf)  # own cluster's column: go alone
        n, k = divmod(int(gain.argmax()), N)
        if gain[n, k] <= 1e-9:
            break
        label[n] = k if k != label[n] else int(np.flatnonzero(~used)[0])
    return label


def _member_flips(groups: np.ndarray, pairs: _PairEvidence) -> np.ndarray:
    """A first guess [G, C] of which members of groups [G, C] (node ids, -1 none) have left and right swapped
    relative to their group: the pairwise flip relation to the member that agrees best with the others."""
    node = np.clip(groups, 0, None)
    pair = (groups[:, :, None] >= 0) & (groups[:, None, :] >= 0)
    a = np.where(pair, pairs.affinity[node[:, :, None], node[:, None, :]], np.nan)  # [G, C, C]
    rel = pairs.flipped[node[:, :, None], node[:, None, :]] & pair & np.isfinite(a)
    anchor = np.argmax(np.nan_to_num(a).sum(2) - rel.sum(2) - 1e3 * (groups < 0), axis=1)  # [G]
    return rel[np.arange(len(groups)), anchor] & (groups >= 0)


def _inlier_joints(nodes: _Nodes, groups: np.ndarray, flips: np.ndarray, pairs: _PairEvidence,
                   flip: np.ndarray | None) -> np.ndarray:
    """bool [G, C, J] (each member's own joint order): the joints that lie on the epipolar lines of the same
    joint in at least half (and at least one) of the other members that report it, given the flips."""
    node = np.clip(groups, 0, None)
    member = groups >= 0
    both = member[:, :, None] & member[:, None, :]
    relative = flips[:, :, None] ^ flips[:, None, :]  # [G, C, C]
    sees = nodes.weight[node] > 0  # [G, C, J]
    agree = pairs.agree[0][node[:, :, None], node[:, None, :]]  # [G, C, C, J]
    reports = sees[:, :, None] & sees[:, None, :]
    if flip is not None:
        agree = np.where(relative[..., None], pairs.agree[1][node[:, :, None], node[:, None, :]], agree)
        reports = np.where(relative[..., None], sees[:, :, None] & sees[:, None, :, flip], reports)
    votes = (agree & both[..., None]).sum(2)
    others = (reports & both[..., None]).sum(2)
    return sees & member[..., None] & (votes >= 1) & (2 * votes >= others)


def _group_errors(geo: _RigArrays, nodes: _Nodes, groups: np.ndarray, flips: np.ndarray, inliers: np.ndarray,
                  flip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Reprojection errors (px) [C, G, J] of the members of groups [G, C] (node ids) against the group
    triangulated (score-weighted DLT) from their inlier joints [G, C, J] with the guessed flips, each member
    taken the way round (as is, or left/right swapped) that fits it better; and those flips [G, C]."""
    Rt = np.concatenate([geo.R, geo.t[:, :, None]], -1)
    node = np.clip(groups.T, 0, None)  # [C, G]
    weight = np.where((groups.T >= 0)[..., None], nodes.weight[node], 0.0) * (geo.focal ** 2)[:, None, None]
    sides = [(nodes.xy[node], weight)]  # [C, G, J, 2], [C, G, J]
    use = inliers.transpose(1, 0, 2)
    if flip is not None:
        sides.append((sides[0][0][:, :, flip], weight[:, :, flip]))
        use = np.where(flips.T[..., None], use[:, :, flip], use)
    flips = flips.T
    obs = np.where(flips[..., None, None], sides[-1][0], sides[0][0])
    X = triangulate_dlt(obs, np.where(use, np.where(flips[..., None], sides[-1][1], weight), 0.0), Rt,
                        iterations=0)  # [G, J, 3]
    cam_pts = np.einsum("cij,gkj->cgki", geo.R, X) + geo.t[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = cam_pts[..., :2] / cam_pts[..., 2:3]
    errs = [np.where(w > 0, geo.focal[:, None, None] * np.linalg.norm(proj - o, axis=-1), np.nan) for o, w in sides]
    if flip is None:
        return errs[0], flips.T
    fit = [_median_last(e) for e in errs]
    flips = np.where(np.isfinite(fit[0]) & np.isfinite(fit[1]), fit[1] < fit[0], flips)
    return np.where(flips[..., None], errs[1], errs[0]), flips.T & (groups >= 0)


def _median_last(x: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are); np.nanmedian without its overhead."""
    s = np.sort(x, -1)  # NaN sort last
    n = np.isfinite(x).sum(-1)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[..., None], -1)[..., 0]
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def _consistent_members(geo: _RigArrays, nodes: _Nodes, groups: np.ndarray, pairs: _PairEvidence,
                        flip: np.ndarray | None, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Groups [G, C] (node ids) with the members that do not fit their group's triangulation split off (-1),
    the worst of a group first, and the members' left/right flips [G, C] (never more than half of a group)."""
    groups = groups.copy()
    flips = _member_flips(groups, pairs) if flip is not None else np.zeros(groups.shape, bool)
    for _ in range(_MAX_SPLITS):
        check = np.flatnonzero((groups >= 0).sum(1) >= 2)
        if not len(check):
            break
        inliers = _inlier_joints(nodes, groups[check], flips[check], pairs, flip)
        err, flips[check] = _group_errors(geo, nodes, groups[check], flips[check], inliers, flip)
        member_err = np.nan_to_num(_median_last(err), nan=-np.inf)  # [C, G']
        worst = member_err.argmax(0)
        bad = member_err[worst, np.arange(len(check))] > threshold_px
        if not bad.any():
            break
        groups[check[bad], worst[bad]] = -1
    flips &= groups >= 0
    most = 2 * flips.sum(1) > (groups >= 0).sum(1)  # flip the few, not the many: views mostly report right
    return groups, flips ^ (most[:, None] & (groups >= 0))


def _group_affinity(aff: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mean pairwise affinity [G] inside each group of node ids [G, C], over pairs with evidence (0: none)."""
    node = np.clip(groups, 0, None)
    a = aff[node[:, :, None], node[:, None, :]]  # [G, C, C]
    both = (groups[:, :, None] >= 0) & (groups[:, None, :] >= 0) & np.isfinite(a)
    n = both.sum((1, 2))
    return np.where(n > 0, np.where(both, a, 0.0).sum((1, 2)) / np.maximum(n, 1), 0.0).astype(np.float32)


def associate(rig: Rig, keypoints2d: np.ndarray, *, prior: np.ndarray | None = None, threshold_px: float = 25.0,
              min_score: float = 0.2, min_views: int = 2, skeleton: str | Skeleton | None = None) -> Association:
    """Group one frame's detections [C, P, J, 3] into people across cameras (see the module docstring).

    ``prior`` [Q, J, 4]: predicted 3D poses of live tracks, used as extra evidence. ``skeleton``: the
    keypoint layout, which lets detections with left and right swapped match (``flipped`` says which).
    Groups are ordered by the number of cameras, most first; people seen by fewer than ``min_views``
    cameras are left out.
    """
    _check_inputs(rig, keypoints2d, prior, threshold_px, min_views)
    C, J = len(rig), np.shape(keypoints2d)[2]
    flip = _flip_indices(skeleton, J)
    nodes = _nodes(rig, keypoints2d, min_score)
    N = len(nodes.cam)
    if N == 0:
        return Association(groups=np.zeros((0, C), np.int32), affinity=np.zeros(0, np.float32),
                           flipped=np.zeros((0, C), bool), inliers=np.zeros((0, C, J), bool))
    geo = _RigArrays.of(rig)
    pairs = _pair_affinities(geo, nodes, threshold_px, flip)
    aff = pairs.affinity
    W = np.nan_to_num(aff - SAME_PERSON_AFFINITY, nan=0.0)
    if prior is not None and len(prior):
        W += PRIOR_WEIGHT * _track_agreement(_prior_affinities(
            rig, nodes, np.asarray(prior, np.float64), threshold_px, flip))
    W[nodes.cam[:, None] == nodes.cam[None, :]] = _CONFLICT
    label = _refine(W, _contract(W))

    _, member_of = np.unique(label, return_inverse=True)
    groups = np.full((member_of.max(initial=-1) + 1, C), -1, np.int64)
    groups[member_of, nodes.cam] = np.arange(N)
    groups, flips = _consistent_members(geo, nodes, groups, pairs, flip, threshold_px)

    views = (groups >= 0).sum(1)
    order = np.argsort(-views, kind="stable")
    order = order[views[order] >= min_views]
    groups, flips = groups[order], flips[order] & (groups[order] >= 0)
    inliers = _inlier_joints(nodes, groups, flips, pairs, flip)
    slots = np.where(groups >= 0, nodes.slot[np.clip(groups, 0, None)], -1)
    return Association(groups=slots.astype(np.int32), affinity=_group_affinity(aff, groups), flipped=flips,
                       inliers=inliers)


def gather(keypoints2d: np.ndarray, groups: np.ndarray, flipped: np.ndarray | None = None,
           skeleton: str | Skeleton | None = None) -> np.ndarray:
    """Detections [C, P, J, 3] regrouped by person: [C, G, J, 3], NaN and score 0 where a group has no slot.

    With ``flipped`` [G, C] and the ``skeleton``, the views marked swapped get their left and right back.
    """
    kp = np.asarray(keypoints2d)
    groups = np.asarray(groups)
    if kp.ndim != 4 or groups.ndim != 2 or groups.shape[1] != kp.shape[0]:
        raise AssociationInputError(f"gather: expected keypoints2d [C, P, J, 3] and groups [G, C] with the same C, "
                                    f"got shapes {kp.shape} and {groups.shape}")
    C, P, J, _ = kp.shape
    empty = np.array([np.nan, np.nan, 0.0], dtype=kp.dtype)
    slot = groups.T  # [C, G]
    if P == 0:
        return np.broadcast_to(empty, (C, groups.shape[0], J, 3)).copy()
    out = kp[np.arange(C)[:, None], np.clip(slot, 0, None)]
    if flipped is not None and skeleton is not None:
        out = np.where(np.asarray(flipped).T[..., None, None], out[:, :, _flip_indices(skeleton, J)], out)
    return np.where((slot >= 0)[..., None, None], out, empty)


def gather_inliers(assoc: Association, skeleton: str | Skeleton | None = None) -> np.ndarray:
    """``assoc.inliers`` laid out like ``gather``'s output: bool [C, G, J], swapped views put right."""
    inl = assoc.inliers.transpose(1, 0, 2)  # [C, G, J]
    if assoc.flipped is not None and skeleton is not None:
        inl = np.where(assoc.flipped.T[..., None], inl[:, :, _flip_indices(skeleton, inl.shape[2])], inl)
    return inl & (assoc.groups.T >= 0)[..., None]
