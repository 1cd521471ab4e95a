"""Bone-length consistency: a person's bones keep their length, so a joint that makes them all wrong is wrong.

The bones are the skeleton's drawing tree, ``rigs.skeletons.get_skeleton(name).bones`` ((parent, child)
joint indices; e.g. shoulder-elbow, elbow-wrist, hip-knee). ``estimate_bone_lengths`` takes a track's
robust length of each bone: the median over the frames where both ends were seen. ``reject_bad_bones``
then judges each frame: a bone is off when its length differs from the estimate by more than
``tolerance`` of it (and by more than ``min_tolerance`` metres, so that short bones such as eye-nose
are not judged by the noise of the triangulation). A joint is rejected (NaN, score 0) when

- it has two or more judged bones and all of them are off (an elbow thrown 30 cm breaks both the
  upper arm and the forearm), or
- it has a single judged bone, that bone is off, and the joint at its other end is not itself
  rejected by the first rule (a wrist thrown away breaks only the forearm; but when the elbow is the
  culprit, the wrist beside it stays).

Everything is vectorised over frames and people through a bone-joint incidence matrix.
"""

from __future__ import annotations

import numpy as np


class BoneLengthError(ValueError):
    """Bones that do not fit the poses, or lengths that do not fit the bones."""


def _bones(bones, num_joints: int) -> np.ndarray:
    b = np.asarray(bones, np.int64).reshape(-1, 2)
    if b.size and (b.min() < 0 or b.max() >= num_joints):
        raise BoneLengthError(
            f"bones name joints outside 0..{num_joints - 1}; pass the bones of the poses' own skeleton "
            f"(rigs.skeletons.get_skeleton(name).bones)"
        )
    return b


def _bone_lengths(poses: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Length [..., B] of every bone, NaN where either end is missing."""
    poses = np.asarray(poses)
    if poses.ndim < 2 or poses.shape[-1] != 4:
        raise BoneLengthError(f"expected 3D poses [..., J, 4] (x, y, z, score), got shape {poses.shape}")
    xyz = np.asarray(poses[..., :3], np.float64)
    present = np.isfinite(xyz).all(-1) & (poses[..., 3] > 0)
    length = np.linalg.norm(xyz[..., bones[:, 0], :] - xyz[..., bones[:, 1], :], axis=-1)
    return np.where(present[..., bones[:, 0]] & present[..., bones[:, 1]], length, np.nan)


def estimate_bone_lengths(poses: np.ndarray, bones) -> np.ndarray:
    """Robust length float32 [B] of each bone over a track's poses [T, J, 4] (any leading shape): the median
    over the frames where both ends were seen; NaN for a bone never seen whole."""
    bones = _bones(bones, np.shape(poses)[-2])
    lengths = _bone_lengths(poses, bones).reshape(-1, len(bones))
    seen = np.isfinite(lengths).any(0)
    out = np.full(len(bones), np.nan, np.float32)
    out[seen] = np.nanmedian(lengths[:, seen], axis=0)
    return out


def reject_bad_bones(
    poses: np.ndarray, bones, lengths: np.ndarray, tolerance: float = 0.25, *, min_tolerance: float = 0.05
) -> np.ndarray:
    """Copy of poses [..., J, 4] with the joints that make impossible bones (relative error above
    ``tolerance`` and absolute above ``min_tolerance`` m, see the module notes) set to NaN, score 0.
    ``lengths`` [B], or [..., B] broadcasting against the poses' leading axes (e.g. [P, B] per person)."""
    if not (tolerance > 0 and min_tolerance >= 0):
        raise BoneLengthError(f"need tolerance > 0 and min_tolerance >= 0; got {tolerance}, {min_tolerance}")
    poses = np.asarray(poses)
    J = poses.shape[-2] if poses.ndim >= 2 else 0
    bones = _bones(bones, J)
    lengths = np.asarray(lengths, np.float64)
    measured = _bone_lengths(poses, bones)
    if lengths.ndim == 0 or lengths.shape[-1] != len(bones) or lengths.ndim > measured.ndim or any(
        a not in (1, b) for a, b in zip(lengths.shape[::-1], measured.shape[::-1], strict=False)
    ):
        raise BoneLengthError(
            f"lengths of shape {lengths.shape} do not fit {len(bones)} bones of poses {poses.shape}; estimate "
            f"them with estimate_bone_lengths(poses, bones) ([B], or [..., B] per person)"
        )
    judged = np.isfinite(measured) & np.isfinite(lengths) & (lengths > 0)
    off = judged & (np.abs(measured - lengths) > np.maximum(tolerance * lengths, min_tolerance))
    incidence = np.zeros((len(bones), J))
    incidence[np.arange(len(bones)), bones[:, 0]] = 1
    incidence[np.arange(len(bones)), bones[:, 1]] = 1
    n_judged = judged @ incidence
    n_off = off @ incidence
    culprit = (n_judged >= 2) & (n_off == n_judged)
    explained = off & (culprit[..., bones[:, 0]] | culprit[..., bones[:, 1]])
    lone = (n_judged == 1) & (n_off == 1) & ((explained @ incidence) == 0)
    reject = culprit | lone
    out = np.array(poses, copy=True)
    out[reject] = np.nan
    out[..., 3][reject] = 0
    return out
