"""Triangulation: 3D points from their 2D detections in several calibrated views.

Geometry. A camera with extrinsics ``[R | t]`` (world->camera) sees a world point X at the
undistorted normalised image coordinates ``(x, y) = (X_c / Z_c, Y_c / Z_c)`` where
``(X_c, Y_c, Z_c) = R X + t``. Writing ``P = [R | t]`` (3x4) and ``X_h = (X, 1)``, each view gives
two equations linear in X::

    (x P[2] - P[0]) . X_h = Z_c (x - x_hat) = 0        (y P[2] - P[1]) . X_h = Z_c (y - y_hat) = 0

where ``x_hat`` is where X actually projects. Stacking the rows of all views into A, the direct
linear transform (DLT) minimises ``sum_views w (A_v X_h)^2`` through the 4x4 normal system
``M = A^T W A``. We work on undistorted normalised coordinates, never on pixels: the lens is
removed first (``rigs.projection.undistort``) and ``P = [R | t]`` has unit-scale rows, which keeps
M well conditioned.

A raw row's residual is the image error scaled by the depth Z_c, so the plain DLT lets far views
count more than near ones. We therefore solve, then reweight every view by ``1 / Z_c^2`` (depth of
the current estimate) and solve again ("iterations"): each row then measures the error in the
normalised image plane, and with the focal length folded into the weights (``triangulate`` does)
in pixels, so the confidence weights compare like with like. Two solvers share M: the default
fixes ``X_h[3] = 1`` and solves the 3x3 system ``M[:3, :3] X = -M[:3, 3]`` in closed form (exact
least squares of the stated cost, invariant to where the world origin is); ``homogeneous=True``
takes the eigenvector of M's smallest eigenvalue, the textbook DLT of ``cv2.triangulatePoints``.

Robust triangulation seeks, per point, the largest set of views that agree with one 3D point to
within a pixel threshold. Every pair of views is a hypothesis (exhaustively for few cameras,
RANSAC-sampled pairs for many); a pair is triangulated for all points at once, reprojected into
every camera, and scored by how many views fall within the threshold (ties: smallest total
error). The winner's inliers are re-triangulated, the inliers checked once more against that
point, and the point triangulated from them a last time.

Arrays follow DESIGN.md: 2D keypoints ``[..., 3]`` = (x, y, score), 3D ``[..., 4]`` = (x, y, z,
score); a missing view has score 0 and/or NaN coordinates. Functions take numpy arrays or torch
tensors (any leading batch shape) and return the same kind; the maths is written once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from rigs import projection
from rigs.camera import Rig

Array = Any  # np.ndarray or torch.Tensor

_DEGENERATE = 1e-12  # relative determinant below which the views do not fix a point


@dataclass(frozen=True)
class RobustResult:
    """Robust triangulation: points [..., 4] (x, y, z, score), per-view inlier mask and errors."""

    points: Array  # [..., 4] (x, y, z, mean score of the inlier views); NaN and score 0 when not found
    inliers: Array  # bool [C, ...]: the views the point was triangulated from
    errors: Array  # [C, ...] reprojection error (px) of every detection against the final point; NaN: none


# --- array-namespace helpers ----------------------------------------------------------------------

def _xp(x: Array):
    """numpy or torch, whichever x belongs to."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _like(value, ref: Array, dtype=None) -> Array:
    """value as an array of ref's kind and device (and ref's dtype unless dtype is given)."""
    xp = _xp(ref)
    if xp is np:
        return np.asarray(value, dtype=ref.dtype if dtype is None else dtype)
    if not isinstance(value, xp.Tensor):
        value = np.array(value)  # writable copy: torch will not wrap read-only arrays
    return xp.as_tensor(value, dtype=ref.dtype if dtype is None else dtype, device=ref.device)


def _to_float64(x: Array, device=None) -> Array:
    """x as float64 numpy, or as a float64 torch tensor (on device) when x is a tensor or device is set."""
    if device is None and _xp(x) is np:
        return np.asarray(x, dtype=np.float64)
    import torch

    return torch.as_tensor(np.array(x) if _xp(x) is np else x, dtype=torch.float64, device=device)


def _cast(x: Array, ref_dtype) -> Array:
    """x converted to the floating dtype of the input (float32 keypoints give float32 points)."""
    if _xp(x) is np:
        return x.astype(ref_dtype if np.issubdtype(ref_dtype, np.floating) else np.float64, copy=False)
    return x.to(ref_dtype if getattr(ref_dtype, "is_floating_point", False) else x.dtype)


# --- the linear solver ----------------------------------------------------------------------------

def _normal_entries(xy: Array, w: Array, Rt: Array) -> dict[tuple[int, int], Array]:
    """The 10 distinct entries M[a, b] (a <= b) [...] of M = A^T W A, from views xy [V, ..., 2],
    weights w [V, ...] and Rt [V, ..., 3, 4]; summed over views elementwise (no small matmuls)."""
    x, y = xy[..., 0], xy[..., 1]
    r0 = [x * Rt[..., 2, k] - Rt[..., 0, k] for k in range(4)]  # [V, ...] each
    r1 = [y * Rt[..., 2, k] - Rt[..., 1, k] for k in range(4)]
    w0 = [w * r for r in r0]
    w1 = [w * r for r in r1]
    return {(a, b): (w0[a] * r0[b] + w1[a] * r1[b]).sum(0) for a in range(4) for b in range(a, 4)}


def _solve(m: dict[tuple[int, int], Array], homogeneous: bool) -> Array:
    """The point [..., 3] minimising X_h^T M X_h: X_h = (X, 1) in closed form, or M's null vector."""
    xp = _xp(m[0, 0])
    if homogeneous:
        M = xp.stack([xp.stack([m[min(a, b), max(a, b)] for b in range(4)], -1) for a in range(4)], -2)
        _, vecs = xp.linalg.eigh(M)
        v = vecs[..., :, 0]
        return v[..., :3] / v[..., 3:4]
    m00, m01, m02, m11, m12, m22 = m[0, 0], m[0, 1], m[0, 2], m[1, 1], m[1, 2], m[2, 2]
    b0, b1, b2 = -m[0, 3], -m[1, 3], -m[2, 3]
    a00, a01, a02 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11  # adjugate
    a11, a12, a22 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
    det = m00 * a00 + m01 * a01 + m02 * a02
    frob2 = m00 * m00 + m11 * m11 + m22 * m22 + 2 * (m01 * m01 + m02 * m02 + m12 * m12)
    ok = det > _DEGENERATE * frob2 ** 1.5  # scale-free test: the views do not fix a point
    safe = xp.where(ok, det, xp.ones_like(det))
    X = xp.stack([a00 * b0 + a01 * b1 + a02 * b2, a01 * b0 + a11 * b1 + a12 * b2,
                  a02 * b0 + a12 * b1 + a22 * b2], -1) / safe[..., None]
    return xp.where(ok[..., None], X, xp.full_like(X, float("nan")))


def _dlt(xy: Array, w: Array, Rt: Array, iterations: int, homogeneous: bool) -> Array:
    """Weighted DLT on clean inputs (no NaN; w = 0 for missing views) with depth reweighting."""
    xp = _xp(xy)
    X = _solve(_normal_entries(xy, w, Rt), homogeneous)
    for _ in range(iterations):
        z = Rt[..., 2, 0] * X[..., 0] + Rt[..., 2, 1] * X[..., 1] + Rt[..., 2, 2] * X[..., 2] + Rt[..., 2, 3]
        z2 = z * z  # depth of the estimate in every view [V, ...]
        good = xp.isfinite(z2) & (z2 > 1e-12)
        wz = xp.where(good, w / xp.where(good, z2, xp.ones_like(z2)), xp.zeros_like(w))
        X = _solve(_normal_entries(xy, wz, Rt), homogeneous)
    return X


def _expand_rt(Rt: Array, ndim: int) -> Array:
    """Rt [C, 3, 4] reshaped to [C, 1, ..., 1, 3, 4] to broadcast against [C, ...] with ndim dims."""
    if Rt.ndim == 3:
        return Rt.reshape(Rt.shape[0], *(1,) * (ndim - 1), 3, 4)
    return Rt


def triangulate_dlt(points_norm: Array, weights: Array | None, Rt: Array, *, iterations: int = 1,
                    homogeneous: bool = False) -> Array:
    """Weighted DLT: undistorted normalised points [C, ..., 2] and weights [C, ...] -> points [..., 3].

    Rt [C, 3, 4] are the extrinsics [R | t] (or [C, ..., 3, 4], one per point). A view with weight 0
    (or NaN), or NaN coordinates, is missing; a point seen by fewer than 2 views, or by views whose
    rays cannot fix it, is NaN. ``iterations`` depth-reweighting passes turn the algebraic cost into
    the normalised image error; ``iterations=0, homogeneous=True`` is exactly ``cv2.triangulatePoints``.
    """
    xp = _xp(points_norm)
    xy = points_norm
    w = xp.ones_like(xy[..., 0]) if weights is None else _like(weights, xy)
    Rt = _expand_rt(_like(Rt, xy), xy.ndim - 1)
    valid = xp.isfinite(xy).all(-1) & xp.isfinite(w) & (w > 0)
    xy = xp.where(valid[..., None], xy, xp.zeros_like(xy))
    w = xp.where(valid, w, xp.zeros_like(w))
    X = _dlt(xy, w, Rt, iterations, homogeneous)
    enough = valid.sum(0) >= 2
    found = enough & xp.isfinite(X).all(-1)
    return xp.where(found[..., None], X, xp.full_like(X, float("nan")))


# --- rig helpers ----------------------------------------------------------------------------------

def _rig_arrays(rig: Rig, ref: Array) -> tuple[Array, Array]:
    """Extrinsics [C, 3, 4] and squared focal lengths fx*fy [C] of the rig, like ref."""
    Rt = np.stack([np.hstack([c.R, c.t[:, None]]) for c in rig])
    f2 = np.array([c.K[0, 0] * c.K[1, 1] for c in rig])
    return _like(Rt, ref), _like(f2, ref)


def _observations(rig: Rig, keypoints2d: Array, min_score: float) -> tuple[Array, Array, Array]:
    """Split [C, ..., 3] detections into pixels [C, ..., 2], scores [C, ...] and a validity mask."""
    if keypoints2d.shape[0] != len(rig) or keypoints2d.shape[-1] != 3:
        raise ValueError(f"keypoints2d: expected [C={len(rig)}, ..., 3] (x, y, score), got "
                         f"{tuple(keypoints2d.shape)}")
    xp = _xp(keypoints2d)
    pix, score = keypoints2d[..., :2], keypoints2d[..., 2]
    valid = xp.isfinite(pix).all(-1) & xp.isfinite(score) & (score > 0) & (score >= min_score)
    return pix, xp.where(valid, score, xp.zeros_like(score)), valid


def _undistort_all(rig: Rig, pixels: Array, valid: Array) -> Array:
    """Pixels [C, ..., 2] -> normalised undistorted coordinates [C, ..., 2], 0 where not valid."""
    xp = _xp(pixels)
    safe = xp.where(valid[..., None], pixels, xp.zeros_like(pixels))
    xy = xp.stack([projection.undistort(safe[i], c.K, c.dist, c.model) for i, c in enumerate(rig)])
    return xp.where(valid[..., None], xy, xp.zeros_like(xy))


def _project_all(rig: Rig, points: Array) -> Array:
    """World points [..., 3] -> pixels [C, ..., 2] in every camera (NaN behind a camera)."""
    xp = _xp(points)
    if xp is np:
        return rig.project(points)
    return xp.stack([projection.project(points, c.K, c.dist, c.R, c.t, c.model) for c in rig])


def _pixel_errors(rig: Rig, points: Array, pixels: Array, valid: Array) -> Array:
    """Distance (px) [C, ...] between points [..., 3] reprojected and pixels [C, ..., 2]; NaN if invalid."""
    xp = _xp(points)
    d = _project_all(rig, points) - pixels
    err = xp.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1])
    return xp.where(valid, err, xp.full_like(err, float("nan")))


# --- public API over a rig ------------------------------------------------------------------------

def triangulate(rig: Rig, keypoints2d: Array, *, min_score: float = 0.0, iterations: int = 1) -> Array:
    """Pixels with scores [C, ..., 3] -> points [..., 4] (x, y, z, mean score of the views used).

    Every detection with a positive score >= min_score is used, weighted by its score; the lens is
    undistorted per camera first. Points seen by fewer than 2 views get NaN and score 0.
    """
    kp = _to_float64(keypoints2d)
    pix, score, valid = _observations(rig, kp, min_score)
    xy = _undistort_all(rig, pix, valid)
    Rt, f2 = _rig_arrays(rig, kp)
    w = score * f2.reshape(-1, *(1,) * (score.ndim - 1))  # focal^2: residuals in pixels
    X = triangulate_dlt(xy, w, Rt, iterations=iterations)
    return _cast(_with_score(X, score, valid), keypoints2d.dtype)


def _with_score(X: Array, score: Array, used: Array) -> Array:
    """Points [..., 3] + mean score of the used views -> [..., 4]; NaN and score 0 where X is NaN."""
    xp = _xp(X)
    n = used.sum(0)
    mean = xp.where(used, score, xp.zeros_like(score)).sum(0) / xp.where(n > 0, n, xp.ones_like(n))
    found = xp.isfinite(X).all(-1)
    return xp.concatenate([X, xp.where(found, mean, xp.zeros_like(mean))[..., None]], -1)


def reprojection_errors(rig: Rig, points3d: Array, keypoints2d: Array) -> Array:
    """Reprojection error (px) [C, ...] of points [..., 3|4] against detections [C, ..., 3].

    NaN where a view has no detection (score 0 or NaN pixels) or the point is NaN.
    """
    kp = _to_float64(keypoints2d)
    pts = _like(points3d, kp)[..., :3]
    pix, _, valid = _observations(rig, kp, 0.0)
    return _cast(_pixel_errors(rig, pts, pix, valid), keypoints2d.dtype)


def ransac_samples(confidence: float, inlier_ratio: float, sample_size: int = 2) -> int:
    """Samples needed to draw one all-inlier sample with the given confidence: log(1-p)/log(1-w^s)."""
    p_good = inlier_ratio ** sample_size
    if p_good >= 1:
        return 1
    return max(1, math.ceil(math.log(1 - confidence) / math.log(1 - p_good)))


def _pair_hypotheses(valid: Array, max_exhaustive: int, n_samples: int, seed: int) -> Iterator[tuple]:
    """Pairs of views to try: every pair (ints) for few cameras, else per-point random valid pairs."""
    C = valid.shape[0]
    if C <= max_exhaustive:
        yield from combinations(range(C), 2)
        return
    xp = _xp(valid)
    rng = np.random.default_rng(seed)
    for _ in range(n_samples):
        keys = _like(rng.random(tuple(valid.shape)), valid, dtype=xp.float32 if xp is not np else np.float32)
        keys = xp.where(valid, keys, xp.full_like(keys, -1.0))
        order = xp.argsort(keys, 0)  # the two largest keys: a uniform random pair of valid views
        yield order[-1], order[-2]


def _take_view(a: Array, index, columns: Array) -> Array:
    """View `index` of a [C, N, ...]: a fixed camera (int) or one camera per point (array [N])."""
    return a[index] if isinstance(index, int) else a[index, columns]


def triangulate_robust(rig: Rig, keypoints2d: Array, *, threshold_px: float = 15.0, min_views: int = 2,
                       min_score: float = 0.0, max_exhaustive: int = 8, confidence: float = 0.99,
                       inlier_ratio: float = 0.5, seed: int = 0, iterations: int = 1,
                       device=None, seed_inliers: Array | None = None) -> RobustResult:
    """Outlier-robust triangulation of detections [C, ..., 3]: the largest consistent set of views per point.

    Consensus over pair hypotheses (all pairs when C <= max_exhaustive, else ``ransac_samples``
    random pairs per point, seeded), scored by views within threshold_px (ties: least total error),
    then re-triangulated from the inliers. Points with fewer than min_views inliers are NaN, score 0.
    ``seed_inliers`` (bool [C, ...]): views already known to agree (association's epipolar consensus); points
    with at least min_views of them start from those and skip the search. With ``device`` (or tensor input)
    it runs in torch and returns tensors.
    """
    kp = _to_float64(keypoints2d, device)
    xp = _xp(kp)
    C, batch = kp.shape[0], tuple(kp.shape[1:-1])
    flat = kp.reshape(C, -1, 3)
    pix, score, valid = _observations(rig, flat, min_score)
    N = flat.shape[1]
    xy = _undistort_all(rig, pix, valid)
    Rt, f2 = _rig_arrays(rig, flat)
    w = score * f2[:, None]
    columns = xp.arange(N) if xp is np else xp.arange(N, device=kp.device)

    seeded = None
    if seed_inliers is not None:
        seed_mask = _like(seed_inliers, valid, dtype=bool if xp is np else xp.bool).reshape(C, -1) & valid
        seeded = seed_mask.sum(0) >= min_views
    if xp is np and C <= max_exhaustive:
        if seeded is None:
            best_count, best_inliers = _best_pairs_batched(rig, xy, w, Rt, pix, valid, threshold_px)
        else:
            best_inliers = seed_mask.copy()
            best_count = seed_mask.sum(0).astype(np.float64)
            search = np.flatnonzero(~seeded)
            if search.size:
                count, inl = _best_pairs_batched(rig, xy[:, search], w[:, search], Rt, pix[:, search],
                                                 valid[:, search], threshold_px)
                best_count[search], best_inliers[:, search] = count, inl
        return _finish_robust(rig, keypoints2d, device, xy, w, Rt, pix, score, valid, best_count, best_inliers,
                              min_views, threshold_px, iterations, batch)
    best_count = xp.full_like(score[0], -1.0)
    best_error = xp.full_like(score[0], float("inf"))
    best_inliers = xp.zeros_like(valid)
    n_samples = ransac_samples(confidence, inlier_ratio)
    for i, j in _pair_hypotheses(valid, max_exhaustive, n_samples, seed):
        pair_xy = xp.stack([_take_view(xy, i, columns), _take_view(xy, j, columns)])
        pair_w = xp.stack([_take_view(w, i, columns), _take_view(w, j, columns)])
        pair_Rt = _expand_rt(xp.stack([Rt[i], Rt[j]]), 2)
        X = _dlt(pair_xy, pair_w, pair_Rt, 0, False)
        err = _pixel_errors(rig, X, pix, valid)
        inl = valid & (err < threshold_px)  # NaN compares false
        count = inl.sum(0).to(score.dtype) if xp is not np else inl.sum(0).astype(score.dtype)
        total = xp.where(inl, err, xp.zeros_like(err)).sum(0)
        count = xp.where(_take_view(valid, i, columns) & _take_view(valid, j, columns), count,
                         xp.full_like(count, -1.0))
        better = (count > best_count) | ((count == best_count) & (total < best_error))
        best_count = xp.where(better, count, best_count)
        best_error = xp.where(better, total, best_error)
        best_inliers = xp.where(better[None], inl, best_inliers)
    if seeded is not None:
        best_inliers = xp.where(seeded[None], seed_mask, best_inliers)
        best_count = xp.where(seeded, seed_mask.sum(0).to(best_count.dtype) if xp is not np
                              else seed_mask.sum(0).astype(best_count.dtype), best_count)
    return _finish_robust(rig, keypoints2d, device, xy, w, Rt, pix, score, valid, best_count, best_inliers,
                          min_views, threshold_px, iterations, batch)


_PAIR_CHUNK = 200_000  # pair hypotheses x points evaluated at once by the batched search


def _best_pairs_batched(rig: Rig, xy, w, Rt, pix, valid, threshold_px: float):
    """Every pair of views at once (numpy): (inlier count of the best pair [N], its inliers [C, N]); the
    best pair has the most inliers, ties going to the least total error, then to the first pair."""
    C, N = valid.shape
    pairs = np.array(list(combinations(range(C), 2)))  # [H, 2]
    best_count = np.full(N, -1.0)
    best_inliers = np.zeros_like(valid)
    step = max(1, _PAIR_CHUNK // len(pairs))
    for lo in range(0, N, step):
        sl = slice(lo, lo + step)
        X = _dlt(xy[pairs.T, sl], w[pairs.T, sl], Rt[pairs.T][:, :, None], 0, False)  # [H, n, 3]
        err = _pixel_errors(rig, X, pix[:, None, sl], valid[:, None, sl])  # [C, H, n]
        inl = valid[:, None, sl] & (err < threshold_px)
        count = inl.sum(0).astype(np.float64)
        total = np.where(inl, err, 0.0).sum(0)
        count = np.where(valid[pairs[:, 0], sl] & valid[pairs[:, 1], sl], count, -1.0)
        top = count.max(0)
        best = np.argmin(np.where(count == top, total, np.inf), axis=0)  # first of the least total error
        cols = np.arange(count.shape[1])
        best_count[sl] = top
        best_inliers[:, sl] = inl[:, best, cols]
    return best_count, best_inliers


def _finish_robust(rig, keypoints2d, device, xy, w, Rt, pix, score, valid, best_count, best_inliers,
                   min_views: int, threshold_px: float, iterations: int, batch: tuple) -> RobustResult:
    """From the best pair's inliers: re-triangulate, re-check every view once, and package the result."""
    xp = _xp(xy)
    C = valid.shape[0]
    inliers = best_inliers & (best_count >= min_views)[None]
    X = _dlt(xy, xp.where(inliers, w, xp.zeros_like(w)), Rt[:, None], iterations, False)
    recheck = valid & (_pixel_errors(rig, X, pix, valid) < threshold_px)
    inliers = xp.where((recheck.sum(0) >= min_views)[None], recheck, inliers)
    X = _dlt(xy, xp.where(inliers, w, xp.zeros_like(w)), Rt[:, None], iterations, False)
    found = (inliers.sum(0) >= min_views) & xp.isfinite(X).all(-1)
    X = xp.where(found[..., None], X, xp.full_like(X, float("nan")))
    inliers = inliers & found[None]
    errors = _pixel_errors(rig, X, pix, valid)
    errors = xp.where(valid, errors, xp.full_like(errors, float("nan")))

    points = _with_score(X, score, inliers)
    out_dtype = keypoints2d.dtype if device is None or _xp(keypoints2d) is not np else None
    if out_dtype is None:  # numpy in, torch out: float32 when the keypoints were float32
        import torch

        out_dtype = torch.float32 if keypoints2d.dtype == np.float32 else torch.float64
    return RobustResult(points=_cast(points.reshape(*batch, 4), out_dtype),
                        inliers=inliers.reshape(C, *batch),
                        errors=_cast(errors.reshape(C, *batch), out_dtype))
