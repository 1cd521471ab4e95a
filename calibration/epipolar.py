"""Relative pose of two cameras from point correspondences: essential matrix, cheirality, refinement.

Geometry. Two calibrated cameras see a point at undistorted normalised coordinates ``x_a``, ``x_b``
(rays ``(x, y, 1)``). With camera b's pose relative to camera a, ``x_b ~ R x_a + t``, the rays and the
baseline are coplanar: ``x_b^T E x_a = 0`` with the essential matrix ``E = [t]_x R``. E fixes t only up
to scale (|t| = 1 here), and decomposes into four (R, t) candidates; the cheirality test keeps the one
that puts the triangulated points in front of both cameras.

Estimation. Detected joints carry outliers (swapped limbs, wrong people, detector failures), so E is
found robustly by OpenCV's USAC MAGSAC++ and, as a second opinion, USAC's GC-RANSAC with local
optimisation (plain RANSAC where USAC is missing), on undistorted normalised points scaled by the
focal length (K = diag(f, f, 1): the normalised geometry at pixel scale, so the threshold is in
pixels; MAGSAC++ fails on raw normalised coordinates). A minimal-sample E is only as good as its five
points: with the narrow view of a person a few metres away, its rotation can be off by degrees. So
(R, t) is then refined on the inliers by minimising the Sampson distance (the first-order geometric
distance of a correspondence to satisfying the epipolar constraint) with a robust loss, the inliers
are re-selected against the refined pose, and the estimator whose refined pose has more inliers wins.

Quality. ``num_inliers`` counts correspondences within the threshold that triangulate in front of
both cameras; the median parallax (the angle between the two rays at the triangulated point) says
whether the baseline is long enough, relative to the distance, to fix the translation direction. A
pair that sees its points under a tiny parallax is nearly a pure rotation: E and t are then
meaningless, and the pair is refused with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares

from calibration.errors import CalibrationError
from rigs.rotations import matrix_to_rotvec, rotvec_to_matrix
from rigs.triangulate import triangulate_dlt

MIN_POINTS = 15  # fewer correspondences than this do not fix E robustly (5-point samples plus support)
_USAC = getattr(cv2, "USAC_MAGSAC", None)


@dataclass(frozen=True, eq=False)
class RelativePose:
    """Camera b relative to camera a (``x_b = R @ x_a + t``, |t| = 1) and how well the points fix it."""

    R: np.ndarray               # [3, 3]
    t: np.ndarray               # [3], unit length
    inliers: np.ndarray         # bool [N]: within the threshold and in front of both cameras
    num_inliers: int
    median_parallax_deg: float  # median angle between the two rays at the inlier points
    median_error_px: float      # median Sampson distance of the inliers, in pixels (normalised * focal)
    method: str                 # "USAC_MAGSAC" or "RANSAC"

    @property
    def score(self) -> float:
        """Ranks pairs for initialisation: inliers, discounted when the parallax is under 10 degrees."""
        return self.num_inliers * min(1.0, self.median_parallax_deg / 10.0)


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix [v]_x [..., 3, 3] of vectors [..., 3]."""
    v = np.asarray(v, float)
    z = np.zeros_like(v[..., 0])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def sampson_distance(E: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Signed Sampson distance [N] (normalised units) of correspondences xa, xb [N, 2] to ``x_b^T E x_a = 0``."""
    ha = np.concatenate([xa, np.ones_like(xa[:, :1])], 1)
    hb = np.concatenate([xb, np.ones_like(xb[:, :1])], 1)
    Ea = ha @ E.T          # E x_a, [N, 3]
    Eb = hb @ E            # E^T x_b
    num = np.einsum("ni,ni->n", hb, Ea)
    den = Ea[:, 0] ** 2 + Ea[:, 1] ** 2 + Eb[:, 0] ** 2 + Eb[:, 1] ** 2
    return num / np.sqrt(np.maximum(den, 1e-300))


def two_view_points(R: np.ndarray, t: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Points [N, 3] in camera a's frame triangulated from normalised xa, xb [N, 2] (camera b = [R | t])."""
    Rt = np.stack([np.hstack([np.eye(3), np.zeros((3, 1))]), np.hstack([R, np.reshape(t, (3, 1))])])
    return triangulate_dlt(np.stack([xa, xb]), None, Rt, iterations=1)


def parallax_deg(R: np.ndarray, t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Angle [N] (degrees) between the rays from camera a (origin) and camera b (centre -R^T t) to X [N, 3]."""
    cb = -np.asarray(R).T @ np.asarray(t)
    ra, rb = X, X - cb
    cos = np.einsum("ni,ni->n", ra, rb) / (np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _in_front(R: np.ndarray, t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Points [N, 3] (camera a frame) in front of both cameras; NaN points are not."""
    za = X[:, 2]
    zb = X @ R[2] + t[2]
    return np.isfinite(X).all(1) & (za > 0) & (zb > 0)


def _essential_candidates(xa: np.ndarray, xb: np.ndarray, focal: float, threshold_px: float,
                          prob: float) -> list[tuple[np.ndarray, str]]:
    """Essential matrices (3x3) from robust estimators, with their names: USAC MAGSAC++ and USAC's
    GC-RANSAC with local optimisation where this OpenCV has USAC, else RANSAC.

    The points go in at pixel scale (normalised coordinates times ``focal`` with K = diag(f, f, 1), the
    same geometry): OpenCV's MAGSAC++ misbehaves on normalised coordinates with a tiny threshold (on
    people with two people in view it settled on wrong models with a third fewer inliers).
    """
    K = np.diag([focal, focal, 1.0])
    pa, pb = xa * focal, xb * focal
    methods = [(m, n) for m, n in ((_USAC, "USAC_MAGSAC"), (getattr(cv2, "USAC_ACCURATE", None), "USAC_ACCURATE"))
               if m is not None] or [(cv2.RANSAC, "RANSAC")]
    out = []
    for method, name in methods:
        try:
            E, _ = cv2.findEssentialMat(pa, pb, K, method=method, prob=prob, threshold=threshold_px)
        except cv2.error:
            continue
        if E is not None and E.shape[0] >= 3:
            out.append((E[:3], name))  # several solutions stacked: the first has the most support
    if not out:
        raise CalibrationError("OpenCV found no essential matrix: the correspondences do not constrain the "
                               "relative pose (too few, or all on a line)")
    return out


def _unit_tangent_basis(t: np.ndarray) -> np.ndarray:
    """Two unit vectors [2, 3] orthogonal to unit t: the directions t may move in on the sphere."""
    a = np.eye(3)[np.argmin(np.abs(t))]
    u = np.cross(t, a)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(t, u)])


def refine_relative_pose(R: np.ndarray, t: np.ndarray, xa: np.ndarray, xb: np.ndarray,
                         scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, unit t) minimising the robust (soft-L1, ``scale`` normalised units) Sampson distance of xa, xb [N, 2]."""
    r0, t0 = matrix_to_rotvec(R), np.asarray(t, float) / np.linalg.norm(t)
    basis = _unit_tangent_basis(t0)

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tt = t0 + p[3:] @ basis
        return rotvec_to_matrix(r0 + p[:3]), tt / np.linalg.norm(tt)

    def residuals(p: np.ndarray) -> np.ndarray:
        Rp, tp = unpack(p)
        return sampson_distance(skew(tp) @ Rp, xa, xb) / scale

    sol = least_squares(residuals, np.zeros(5), loss="soft_l1", f_scale=1.0, max_nfev=50, x_scale="jac")
    return unpack(sol.x)


def _distances(R: np.ndarray, t: np.ndarray, xa: np.ndarray, xb: np.ndarray,
               ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|Sampson distance| [N] (inf where not ok) and two-view points [N, 3] (NaN where not ok)."""
    X = np.full((len(xa), 3), np.nan)
    X[ok] = two_view_points(R, t, xa[ok], xb[ok])
    dist = np.full(len(xa), np.inf)
    dist[ok] = np.abs(sampson_distance(skew(t) @ R, xa[ok], xb[ok]))
    return dist, X


def relative_pose(xa: np.ndarray, xb: np.ndarray, *, threshold_px: float = 4.0, focal: float = 1000.0,
                  prob: float = 0.9999, min_points: int = MIN_POINTS, min_parallax_deg: float = 1.0,
                  seed: int = 0) -> RelativePose:
    """Pose of camera b relative to camera a from normalised correspondences xa, xb [N, 2] (robust E,
    cheirality, Sampson refinement). ``focal`` (px) turns ``threshold_px`` into normalised units.

    Raises CalibrationError saying why when the points cannot fix the pose (too few, too few inliers,
    tiny parallax).
    """
    xa = np.ascontiguousarray(xa, dtype=np.float64).reshape(-1, 2)
    xb = np.ascontiguousarray(xb, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(xa).all(1) & np.isfinite(xb).all(1)
    n = int(ok.sum())
    if n < min_points:
        raise CalibrationError(f"{n} shared confident points (need at least {min_points})")
    threshold = threshold_px / focal
    cv2.setRNGSeed(seed)  # RANSAC draws from OpenCV's global generator; USAC seeds itself
    best = None
    for E, method in _essential_candidates(xa[ok], xb[ok], focal, threshold_px, prob):
        _, R, t, _, _ = cv2.recoverPose(E, xa[ok], xb[ok], np.eye(3), distanceThresh=1e3)
        t = t.ravel()
        for widen in (3.0, 1.5):  # refine on the inliers of the current pose, then re-select them
            dist, X = _distances(R, t, xa, xb, ok)
            support = np.isfinite(dist) & (dist < widen * threshold) & _in_front(R, t, X)
            if support.sum() >= min_points:
                R, t = refine_relative_pose(R, t, xa[support], xb[support], threshold)
        # the refined pose chooses the inliers: small Sampson distance and in front of both cameras
        dist, X = _distances(R, t, xa, xb, ok)
        inliers = ok & (dist < threshold) & _in_front(R, t, X)
        if best is None or inliers.sum() > best[3].sum():
            best = (R, t, method, inliers, dist, X)
    R, t, method, inliers, dist, X = best
    k = int(inliers.sum())
    if k < min_points:
        raise CalibrationError(f"only {k} of {n} shared points agree with one relative pose "
                               f"(within {threshold_px:g} px; need {min_points})")
    parallax = float(np.median(parallax_deg(R, t, X[inliers])))
    if parallax < min_parallax_deg:
        raise CalibrationError(f"the rays meet at a median {parallax:.2f} degrees (need {min_parallax_deg:g}): "
                               f"the cameras are too close together for the distance to the people")
    return RelativePose(R=R, t=t, inliers=inliers, num_inliers=k, median_parallax_deg=parallax,
                        median_error_px=float(np.median(dist[inliers]) * focal), method=method)
