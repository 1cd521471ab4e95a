"""Which body points a camera cannot see because another person's body is in the way.

The line of sight from a camera centre to a point is tested against the capsules (``body.body_capsules``)
of every OTHER person: the point is occluded when that segment passes within a capsule's radius of its
axis. Self-occlusion (an arm behind one's own torso) is ignored: detectors usually still place those
joints. People are first culled by a bounding sphere, then the survivors are tested capsule by capsule.
"""

from __future__ import annotations

import numpy as np


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance [...] from points p [..., 3] to segments a-b [..., 3] (broadcast)."""
    ab = b - a
    t = np.clip(np.sum((p - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(a + t[..., None] * ab - p, axis=-1)


def segment_segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Shortest distance [...] between segments p0-p1 and q0-q1 ([..., 3], broadcast); degenerate
    segments (points) are handled (Ericson, Real-Time Collision Detection, 5.1.9)."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.sum(d1 * d1, -1)
    e = np.sum(d2 * d2, -1)
    f = np.sum(d2 * r, -1)
    c = np.sum(d1 * r, -1)
    b = np.sum(d1 * d2, -1)
    denom = a * e - b * b
    eps = 1e-12
    a_safe, e_safe = np.maximum(a, eps), np.maximum(e, eps)
    s = np.where(denom > eps, np.clip((b * f - c * e) / np.maximum(denom, eps), 0.0, 1.0), 0.0)
    t = (b * s + f) / e_safe
    s = np.where(
        t < 0, np.clip(-c / a_safe, 0.0, 1.0), np.where(t > 1, np.clip((b - c) / a_safe, 0.0, 1.0), s)
    )
    t = np.clip(t, 0.0, 1.0)
    # degenerate segments: q a point (closest s on p to it), p a point (closest t on q), both points
    s = np.where(e <= eps, np.clip(-c / a_safe, 0.0, 1.0), s)
    t = np.where(e <= eps, 0.0, t)
    t = np.where(a <= eps, np.clip(f / e_safe, 0.0, 1.0), t)
    s = np.where(a <= eps, 0.0, s)
    closest_p = p0 + s[..., None] * d1
    closest_q = q0 + t[..., None] * d2
    return np.linalg.norm(closest_p - closest_q, axis=-1)


def occluded_by_others(
    origins: np.ndarray,
    points: np.ndarray,
    cap_a: np.ndarray,
    cap_b: np.ndarray,
    radius: np.ndarray,
    block_frames: int = 64,
) -> np.ndarray:
    """Occlusion mask [C, T, P, J]: is point j of person p at frame t hidden from camera c by any other
    person's body? origins [C, 3] camera centres, points [T, P, J, 3], capsules [T, P, K, 3] and radii
    [P, K] (or [T, P, K]). NaN points are never occluded. Vectorised in blocks of frames.

    Three stages, each on the survivors of the last: the line of sight against each other person's
    bounding sphere, against each capsule's bounding cone as seen from the camera, then exactly."""
    C = origins.shape[0]
    T, P, J, _ = points.shape
    radius = np.broadcast_to(radius, cap_a.shape[:-1])
    out = np.zeros((C, T, P, J), dtype=bool)
    if P < 2:
        return out
    others = ~np.eye(P, dtype=bool)  # [P, Q]
    for t0 in range(0, T, block_frames):
        sl = slice(t0, min(T, t0 + block_frames))
        a, b, r, x = cap_a[sl], cap_b[sl], radius[sl], points[sl]  # [B, Q, K(, 3)], [B, P, J, 3]
        # 1. people: bounding sphere of each person
        ends = np.concatenate([a, b], axis=-2)
        centre = 0.5 * (ends.min(axis=-2) + ends.max(axis=-2))  # [B, Q, 3]
        reach = np.maximum(
            np.linalg.norm(a - centre[..., None, :], axis=-1),
            np.linalg.norm(b - centre[..., None, :], axis=-1),
        )
        bound = (reach + r).max(axis=-1)  # [B, Q]
        o = origins[:, None, None, None, None, :]  # [C, 1, 1, 1, 1, 3]
        near = (
            point_segment_distance(centre[None, :, None, None], o, x[None, :, :, :, None])
            < bound[None, :, None, None]
        )
        near &= others[None, None, :, None, :] & np.isfinite(x).all(-1)[None, :, :, :, None]
        c, bt, p, j, q = np.nonzero(near)
        if c.size == 0:
            continue
        # 2. capsules: the cone from the camera around each capsule's bounding sphere, nearer than the point
        mid = 0.5 * (a + b)  # [B, Q, K, 3]
        sphere = 0.5 * np.linalg.norm(b - a, axis=-1) + r  # [B, Q, K]
        to_mid = mid[None] - origins[:, None, None, None]  # [C, B, Q, K, 3]
        dist = np.linalg.norm(to_mid, axis=-1)
        sin = np.clip(sphere[None] / np.maximum(dist, 1e-9), 0.0, 1.0)
        cos_cone = np.where(dist > sphere[None], np.sqrt(1.0 - sin**2), -1.0)
        ray = x[bt, p, j] - origins[c]  # [M, 3]
        ray_len = np.linalg.norm(ray, axis=-1)
        cos = np.einsum("mi,mki->mk", ray / ray_len[:, None], to_mid[c, bt, q]) / dist[c, bt, q]
        m, k = np.nonzero((cos >= cos_cone[c, bt, q]) & (dist[c, bt, q] - sphere[bt, q] < ray_len[:, None]))
        if m.size == 0:
            continue
        # 3. exact: the line of sight passes within the capsule's radius of its axis
        d = segment_segment_distance(
            origins[c[m]], x[bt[m], p[m], j[m]], a[bt[m], q[m], k], b[bt[m], q[m], k]
        )
        hit = m[d < r[bt[m], q[m], k]]
        out[c[hit], bt[hit] + t0, p[hit], j[hit]] = True
    return out
