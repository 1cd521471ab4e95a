"""Initial camera poses from the board poses that pairs of cameras saw at the same instant.

When cameras a and b both see the board at one frame, their board poses ``T_a = [R_a | t_a]`` and ``T_b``
(board -> camera) give b's frame in a's: ``T_ab = T_a T_b^-1``, i.e. ``R_ab = R_a R_b^T`` and ``t_ab = t_a -
R_ab t_b`` (``x_a = R_ab x_b + t_ab``). Every shared frame is one noisy estimate; a planar board's pose can
flip (IPPE's mirror solution) or a corner can be misdetected, so the estimates are averaged robustly: the
rotations by their geodesic L1 median (Weiszfeld's algorithm on SO(3), started at the medoid), then those
within ``max(2 deg, 3 sigma)`` of it (sigma from the median absolute angle) are averaged in the chordal L2
sense (the SVD projection of their sum); the translations, recomputed with the averaged rotation, by their
geometric median and the mean of those within ``3 sigma``.

The cameras form a graph whose edges are the pairs with shared views, weighted by the inliers of the average.
A maximum spanning tree rooted at the first camera (Prim's algorithm, ties to the lower index) chains the
relative poses outward, so each camera is reached through its best-supported links; the world is the first
camera's frame (``R = I``, ``t = 0``). A camera with no shared view, or a group of cameras cut off from the
first one, cannot be placed: that raises ``CalibrationError`` saying which board views would join it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from calibration.errors import CalibrationError

MIN_SHARED = 5  # fewer shared board views than this between a camera and its best neighbour: a warning
_MIN_ANGLE = np.radians(2.0)  # rad: rotation estimates this close to the median are always inliers
_WEISZFELD_STEPS = 30
_MEDOID_CANDIDATES = 256
_MAD = 1.4826  # median absolute deviation -> standard deviation (normal noise)


@dataclass(frozen=True, eq=False)
class PoseGraph:
    """Initial world -> camera poses (world = the first camera) and how the cameras are connected."""

    R: np.ndarray  # [C, 3, 3]
    t: np.ndarray  # [C, 3]
    connections: dict[tuple[str, str], int]  # shared board views per camera pair (pairs sharing none left out)
    tree: tuple[tuple[str, str], ...]  # (parent, child) links the poses were chained along
    warnings: tuple[str, ...]


def _project_to_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation nearest (Frobenius) to a 3x3 matrix."""
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    return U @ D @ Vt


def average_rotations(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust mean of rotations [N, 3, 3]: the chordal L2 mean of those near their geodesic median; and the
    inlier mask [N]."""
    R = np.asarray(R, float).reshape(-1, 3, 3)
    n = len(R)
    if n == 0:
        raise ValueError("average_rotations needs at least one rotation")
    rots = Rotation.from_matrix(R)
    # medoid: the estimate (of at most _MEDOID_CANDIDATES, evenly spread) with the smallest summed geodesic
    # distance to all; trace(R_a^T R_b) is the dot product of the flattened matrices
    flat = R.reshape(n, 9)
    cand = np.unique(np.linspace(0, n - 1, min(n, _MEDOID_CANDIDATES)).astype(int))
    cos = np.clip((flat[cand] @ flat.T - 1) / 2, -1, 1)
    median = rots[int(cand[np.argmin(np.arccos(cos).sum(1))])]
    for _ in range(_WEISZFELD_STEPS):
        v = (median.inv() * rots).as_rotvec()  # log(M^T R_i)
        d = np.linalg.norm(v, axis=1)
        w = 1 / np.maximum(d, 1e-12)
        step = (v * w[:, None]).sum(0) / w.sum()
        median = median * Rotation.from_rotvec(step)
        if np.linalg.norm(step) < 1e-12:
            break
    angle = np.linalg.norm((median.inv() * rots).as_rotvec(), axis=1)
    inliers = angle <= max(_MIN_ANGLE, 3 * _MAD * float(np.median(angle)))
    return _project_to_rotation(R[inliers].sum(0)), inliers


def average_translations(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust mean of translations [N, 3]: the mean of those within 3 sigma of their geometric median; and the
    inlier mask [N]."""
    t = np.asarray(t, float).reshape(-1, 3)
    median = np.median(t, axis=0)
    for _ in range(_WEISZFELD_STEPS):
        d = np.linalg.norm(t - median, axis=1)
        w = 1 / np.maximum(d, 1e-12)
        new = (t * w[:, None]).sum(0) / w.sum()
        if np.linalg.norm(new - median) < 1e-12:
            median = new
            break
        median = new
    d = np.linalg.norm(t - median, axis=1)
    floor = 1e-3 + 0.01 * np.linalg.norm(median)  # identical estimates (noiseless) are all inliers
    inliers = d <= max(floor, 3 * _MAD * float(np.median(d)))
    return t[inliers].mean(0), inliers


def relative_pose(R_a: np.ndarray, t_a: np.ndarray, R_b: np.ndarray, t_b: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Robust camera b -> camera a pose from board poses [N, 3, 3], [N, 3] both cameras saw at the same
    instants: (R_ab, t_ab, number of inlier views)."""
    R_ab = np.einsum("nij,nkj->nik", R_a, R_b)
    R_mean, rot_in = average_rotations(R_ab)
    t_ab = t_a - np.einsum("ij,nj->ni", R_mean, t_b)
    t_mean, t_in = average_translations(t_ab[rot_in])
    return R_mean, t_mean, int(t_in.sum())


def camera_graph(names: Sequence[str], camera: np.ndarray, frame: np.ndarray, R: np.ndarray, t: np.ndarray,
                 *, min_shared: int = MIN_SHARED) -> PoseGraph:
    """Initial world -> camera poses of every camera (world = ``names[0]``) from board views: view i is
    camera index ``camera[i]`` seeing the board at pose (R[i], t[i]) (board -> camera) at time key
    ``frame[i]``."""
    C = len(names)
    camera = np.asarray(camera, np.int64)
    frames, slot = np.unique(np.asarray(frame), return_inverse=True)
    table = np.full((len(frames), C), -1)
    table[slot[::-1], camera[::-1]] = np.arange(len(camera))[::-1]  # first view of a camera at a frame wins
    shared = np.zeros((C, C), int)
    pose = {}
    for a in range(C):
        for b in range(a + 1, C):
            both = (table[:, a] >= 0) & (table[:, b] >= 0)
            shared[a, b] = shared[b, a] = int(both.sum())
            if both.any():
                va, vb = table[both, a], table[both, b]
                pose[a, b] = relative_pose(R[va], t[va], R[vb], t[vb])
    seen = np.bincount(camera, minlength=C)
    _check_connected(names, shared, seen)

    weight = np.zeros((C, C), int)
    for (a, b), (_, _, n) in pose.items():
        weight[a, b] = weight[b, a] = n
    Rw = np.zeros((C, 3, 3))
    tw = np.zeros((C, 3))
    Rw[0] = np.eye(3)
    placed = np.zeros(C, bool)
    placed[0] = True
    tree = []
    while not placed.all():
        cand = np.where(placed[:, None] & ~placed[None, :], weight, -1)
        parent, child = np.unravel_index(int(np.argmax(cand)), cand.shape)
        if parent < child:
            R_pc, t_pc, _ = pose[parent, child]  # child -> parent
            Rw[child] = R_pc.T @ Rw[parent]
            tw[child] = R_pc.T @ (tw[parent] - t_pc)
        else:
            R_cp, t_cp, _ = pose[child, parent]  # parent -> child
            Rw[child] = R_cp @ Rw[parent]
            tw[child] = R_cp @ tw[parent] + t_cp
        placed[child] = True
        tree.append((names[parent], names[child]))

    warnings = []
    for c in range(C):
        best = int(np.argmax(weight[c]))
        if weight[c, best] < min_shared:
            warnings.append(f"camera {names[c]} shares only {weight[c, best]} consistent board view"
                            f"{'s' if weight[c, best] != 1 else ''} with {names[best]} (its best link; "
                            f"{min_shared} or more recommended): capture more frames with the board seen by "
                            f"{names[c]} and a neighbour at the same time")
    connections = {(names[a], names[b]): int(shared[a, b]) for a in range(C) for b in range(a + 1, C)
                   if shared[a, b]}
    return PoseGraph(Rw, tw, connections, tuple(tree), tuple(warnings))


def _check_connected(names: Sequence[str], shared: np.ndarray, seen: np.ndarray) -> None:
    """CalibrationError when a camera has no shared view, or a group is cut off from the first camera."""
    C = len(names)
    for c in range(C):
        if shared[c].sum() == 0 and C > 1:
            others = ", ".join(n for i, n in enumerate(names) if i != c)
            saw = (f"saw the board in {seen[c]} usable view{'s' if seen[c] != 1 else ''} but never at the same "
                   f"time as another camera" if seen[c] else "has no usable board view")
            raise CalibrationError(f"camera {names[c]} {saw}, so it cannot be placed: move the board so it is "
                                   f"seen by {names[c]} and one of {others} at the same time")
    reached = np.zeros(C, bool)
    reached[0] = True
    frontier = [0]
    while frontier:
        c = frontier.pop()
        nxt = np.flatnonzero((shared[c] > 0) & ~reached)
        reached[nxt] = True
        frontier.extend(nxt.tolist())
    if not reached.all():
        cut = ", ".join(names[i] for i in np.flatnonzero(~reached))
        main = ", ".join(names[i] for i in np.flatnonzero(reached))
        raise CalibrationError(f"cameras {cut} share board views only among themselves, never with {main}, so "
                               f"the two groups cannot be placed in one frame: move the board so it is seen by "
                               f"one of {cut} and one of {main} at the same time")
