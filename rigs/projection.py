"""Projection and undistortion for OpenCV's camera models, in numpy and torch alike.

A world point X goes to the camera frame as ``x_cam = R @ X + t`` (x right, y down, z forward), is
divided by depth to normalised coordinates (x, y), distorted, then mapped to pixels by K. Two lens
models are supported, matching OpenCV exactly:

* ``pinhole``: the rational radial + tangential model of ``cv2.projectPoints`` with
  ``dist = (k1, k2, p1, p2[, k3[, k4, k5, k6]])``;
* ``fisheye``: the equidistant Kannala-Brandt model of ``cv2.fisheye`` with ``dist = (k1, k2, k3, k4)``.

Undistortion inverts the lens by Newton's method, so it converges where OpenCV's fixed-point loop
(5 iterations by default) stops early; with a tight ``criteria`` the two agree to 1e-9.

Every function accepts numpy arrays or torch tensors (any leading batch shape) and returns the same
kind, so the maths is written once and runs on CPU or CUDA.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # np.ndarray or torch.Tensor

_NEWTON_STEPS = 20


def _xp(x: Array):
    """The array namespace (numpy or torch) that x belongs to."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _like(value: Array, ref: Array) -> Array:
    """value converted to the array kind, dtype and device of ref."""
    xp = _xp(ref)
    if xp is np:
        return np.asarray(value, dtype=ref.dtype)
    if not isinstance(value, xp.Tensor):
        value = np.array(value)  # a writable copy: torch will not wrap read-only arrays
    return xp.as_tensor(value, dtype=ref.dtype, device=ref.device)


def _pad_dist(dist: Array, n: int, ref: Array) -> Array:
    """Distortion coefficients padded with zeros to length n (OpenCV's convention)."""
    d = _like(dist, ref).reshape(-1)
    if d.shape[0] > n:
        raise ValueError(f"distortion has {d.shape[0]} coefficients, at most {n} are supported")
    xp = _xp(ref)
    if d.shape[0] == n:
        return d
    zeros = xp.zeros_like(d[:1]).repeat(n - d.shape[0]) if xp is not np else np.zeros(n - d.shape[0], d.dtype)
    return xp.concatenate([d, zeros])


# --- pinhole (rational) model ------------------------------------------------------------------

def rational_terms(x: Array, y: Array, d: Array):
    """OpenCV's rational model at normalised (x, y) with coefficients d[0..7] (each a scalar or an array
    broadcasting with x): distorted (xd, yd) and the terms derivatives need (r2, num, den, a = num/den)."""
    k1, k2, p1, p2, k3, k4, k5, k6 = (d[i] for i in range(8))
    r2 = x * x + y * y
    num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    a = num / den
    xd = x * a + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * a + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd, r2, num, den, a


def distort_pinhole(xy: Array, dist: Array) -> Array:
    """Normalised undistorted coordinates [..., 2] -> distorted ones, OpenCV rational model."""
    d = _pad_dist(dist, 8, xy)
    if not bool((d != 0).any()):  # no distortion
        return xy
    xd, yd, *_ = rational_terms(xy[..., 0], xy[..., 1], d)
    return _xp(xy).stack([xd, yd], -1)


def undistort_pinhole(xy_d: Array, dist: Array, steps: int = _NEWTON_STEPS) -> Array:
    """Distorted normalised coordinates [..., 2] -> undistorted ones, by Newton's method."""
    xp = _xp(xy_d)
    d = _pad_dist(dist, 8, xy_d)
    k1, k2, p1, p2, k3, k4, k5, k6 = (d[i] for i in range(8))
    if not bool((d != 0).any()):  # no distortion: nothing to invert
        return xy_d
    xt, yt = xy_d[..., 0], xy_d[..., 1]
    x, y = xt, yt
    for _ in range(steps):
        xd, yd, r2, num, den, a = rational_terms(x, y, d)
        dnum = k1 + r2 * (2 * k2 + 3 * k3 * r2)
        dden = k4 + r2 * (2 * k5 + 3 * k6 * r2)
        da = (dnum * den - num * dden) / (den * den)  # d a / d r2
        j00 = a + 2 * x * x * da + 2 * p1 * y + 6 * p2 * x
        j01 = 2 * x * y * da + 2 * p1 * x + 2 * p2 * y
        j10 = 2 * x * y * da + 2 * p1 * x + 2 * p2 * y
        j11 = a + 2 * y * y * da + 6 * p1 * y + 2 * p2 * x
        ex, ey = xd - xt, yd - yt
        det = j00 * j11 - j01 * j10
        x = x - (j11 * ex - j01 * ey) / det
        y = y - (-j10 * ex + j00 * ey) / det
        if xp is np and not (np.abs(ex) + np.abs(ey) > 1e-15).any():
            break  # converged everywhere (numpy only: a torch check would force a device sync)
    return xp.stack([x, y], -1)


# --- fisheye (equidistant Kannala-Brandt) model --------------------------------------------------

def distort_fisheye(xy: Array, dist: Array) -> Array:
    """Normalised undistorted coordinates [..., 2] -> distorted ones, cv2.fisheye model."""
    xp = _xp(xy)
    k1, k2, k3, k4 = (v for v in _pad_dist(dist, 4, xy))
    r = xp.sqrt(xy[..., 0] ** 2 + xy[..., 1] ** 2)
    theta = xp.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    safe_r = xp.where(r > 1e-12, r, xp.ones_like(r))
    scale = xp.where(r > 1e-12, theta_d / safe_r, xp.ones_like(r))
    return xy * scale[..., None]


def undistort_fisheye(xy_d: Array, dist: Array, steps: int = _NEWTON_STEPS) -> Array:
    """Distorted normalised coordinates [..., 2] -> undistorted ones, cv2.fisheye model."""
    xp = _xp(xy_d)
    k1, k2, k3, k4 = (v for v in _pad_dist(dist, 4, xy_d))
    theta_d = xp.sqrt(xy_d[..., 0] ** 2 + xy_d[..., 1] ** 2)
    theta = theta_d
    for _ in range(steps):
        t2 = theta * theta
        f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
        df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + 9 * t2 * k4)))
        theta = theta - f / df
    safe = xp.where(theta_d > 1e-12, theta_d, xp.ones_like(theta_d))
    scale = xp.where(theta_d > 1e-12, xp.tan(theta) / safe, xp.ones_like(theta_d))
    return xy_d * scale[..., None]


# --- full camera ---------------------------------------------------------------------------------

def to_camera_frame(points: Array, R: Array, t: Array) -> Array:
    """World points [..., 3] -> camera-frame points [..., 3] (x_cam = R @ x + t)."""
    R = _like(R, points)
    t = _like(t, points)
    return points @ R.T + t


def project(points: Array, K: Array, dist: Array, R: Array, t: Array, model: str = "pinhole") -> Array:
    """World points [..., 3] -> pixels [..., 2], as cv2.projectPoints / cv2.fisheye.projectPoints.

    Points behind the camera (z <= 0) project to NaN rather than to a mirrored pixel.
    """
    xp = _xp(points)
    pc = to_camera_frame(points, R, t)
    z = pc[..., 2:3]
    nan = float("nan")
    z_safe = xp.where(z > 0, z, xp.full_like(z, nan))
    xy = pc[..., :2] / z_safe
    return normalized_to_pixels(distort(xy, dist, model), K)


def project_pinholes(points: np.ndarray, K: np.ndarray, dist: np.ndarray, R: np.ndarray, t: np.ndarray
                     ) -> np.ndarray:
    """World points [..., 3] -> pixels [C, ..., 2] in C pinhole cameras at once (K [C, 3, 3], dist [C, n<=8],
    R [C, 3, 3], t [C, 3]): ``project`` for a whole rig in one numpy pass, which saves its per-camera call
    overhead on the few points of a frame. NaN behind a camera."""
    C = K.shape[0]
    pc = points.reshape(-1, 3) @ R.transpose(0, 2, 1) + t[:, None]  # [C, N, 3]
    z = np.where(pc[..., 2] > 0, pc[..., 2], np.nan)
    x, y = pc[..., 0] / z, pc[..., 1] / z
    if dist.any():
        d = np.zeros((C, 8))
        d[:, : dist.shape[1]] = dist
        x, y, *_ = rational_terms(x, y, d.T[:, :, None])
    u = K[:, 0, 0, None] * x + K[:, 0, 1, None] * y + K[:, 0, 2, None]
    v = K[:, 1, 1, None] * y + K[:, 1, 2, None]
    return np.stack([u, v], -1).reshape(C, *points.shape[:-1], 2)


def distort(xy: Array, dist: Array, model: str = "pinhole") -> Array:
    """Apply the lens model to normalised coordinates [..., 2]."""
    return distort_fisheye(xy, dist) if model == "fisheye" else distort_pinhole(xy, dist)


def normalized_to_pixels(xy: Array, K: Array) -> Array:
    """Distorted normalised coordinates [..., 2] -> pixels through K (skew included)."""
    K = _like(K, xy)
    u = K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2]
    v = K[1, 1] * xy[..., 1] + K[1, 2]
    return _xp(xy).stack([u, v], -1)


def pixels_to_normalized(pixels: Array, K: Array) -> Array:
    """Pixels [..., 2] -> distorted normalised coordinates (inverse of K, skew included)."""
    K = _like(K, pixels)
    y = (pixels[..., 1] - K[1, 2]) / K[1, 1]
    x = (pixels[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return _xp(pixels).stack([x, y], -1)


def undistort(pixels: Array, K: Array, dist: Array, model: str = "pinhole") -> Array:
    """Pixels [..., 2] -> undistorted normalised image coordinates [..., 2] (rays (x, y, 1)).

    Agrees with ``cv2.undistortPoints(pixels, K, dist)`` (and ``cv2.fisheye.undistortPoints``).
    """
    xy_d = pixels_to_normalized(pixels, K)
    return undistort_fisheye(xy_d, dist) if model == "fisheye" else undistort_pinhole(xy_d, dist)


def rays(pixels: Array, K: Array, dist: Array, R: Array, t: Array, model: str = "pinhole"):
    """Pixels [..., 2] -> (origin [3], unit directions [..., 3]) of the viewing rays in the world frame."""
    xp = _xp(pixels)
    xy = undistort(pixels, K, dist, model)
    ones = xp.ones_like(xy[..., :1])
    d_cam = xp.concatenate([xy, ones], -1)
    R = _like(R, pixels)
    t = _like(t, pixels)
    d_world = d_cam @ R  # R.T @ d for row vectors
    norm = xp.sqrt((d_world * d_world).sum(-1))[..., None]
    origin = -(R.T @ t)
    return origin, d_world / norm
