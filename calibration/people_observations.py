"""The people in view as a calibration target: which detections correspond across cameras.

A joint of a person at one instant is a 3D point every camera that detects it sees, so two cameras'
detections of the same person in the same frame are point correspondences, and pooling them over
time gives thousands of them spread through the capture volume. The difficulty is knowing which
detected person is which across cameras. The rules, in order:

1. Candidates (per camera and frame). A detected person is a candidate when at least ``min_joints``
   joints have a score >= ``min_confidence``; only those joints are used. A candidate whose image
   extent (the diagonal of its confident joints' bounding box) is under ``background_ratio`` times
   the largest candidate's in the same image is background (a person far behind the subject, such
   as an experimenter) and is dropped. A camera-frame with more than ``max_people`` candidates left
   is too crowded to pair reliably and is skipped.
2. Putative pairs (per camera pair). In a frame where both cameras have candidates, every pairing of
   a candidate in one with a candidate in the other contributes its shared confident joints. With
   one person in view this is the unambiguous correspondence; with several, the wrong pairings
   are outliers that the robust essential-matrix estimate (``calibration.epipolar``) rejects, since
   two people moving independently never satisfy one epipolar geometry.
3. Matching (per camera pair and frame). With the pair's relative pose, a pairing is accepted when
   at least ``min_matched_joints`` of its joints, and at least half of them, are epipolar inliers, and
   it is unambiguous: each of its two people is the other's best pairing, and no other pairing of
   either comes within ``ambiguity_ratio`` of its inlier count (two people on the same epipolar line
   cannot be told apart by one pair of cameras). So only unambiguous detections give correspondences:
   with one person in view, every frame; with several, the pairings the geometry singles out (until a
   general association stage exists, this is the calibration's own).
4. Tracks (per frame). Accepted pairings link (camera, person) nodes; each connected group is one
   person seen by several cameras. A group holding two people of the same camera is contradictory
   and dropped. Each (frame, group, joint) is one 3D point, so a point triangulated from some
   cameras is shared with every other camera that saw it: this is what lets a camera with no view in
   common with the first pair join through the others.

Everything is vectorised over frames, people and joints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from calibration.errors import CalibrationError
from rigs.camera import Rig
from rigs.keypoint_files import Keypoints2DSequence


@dataclass(frozen=True, eq=False)
class PeopleCandidates:
    """Per camera, frame and person slot, the confident joints of the people usable for calibration.

    Arrays are [C, T, P, J, ...] over the rig's cameras, the union of the cameras' frames and the most
    person slots any camera has; joints that are not confident, and people that are not candidates,
    are NaN (pixels, normalised) and 0 (scores).
    """

    camera_names: tuple[str, ...]
    skeleton: str
    frames: np.ndarray       # int64 [T] frame keys
    pixels: np.ndarray       # float64 [C, T, P, J, 2]
    normalized: np.ndarray   # float64 [C, T, P, J, 2] undistorted normalised coordinates
    scores: np.ndarray       # float64 [C, T, P, J]

    @property
    def confident(self) -> np.ndarray:
        """bool [C, T, P, J]: the joint is used."""
        return self.scores > 0

    @property
    def candidate(self) -> np.ndarray:
        """bool [C, T, P]: the person slot holds a candidate."""
        return self.confident.any(-1)


@dataclass(frozen=True, eq=False)
class PairCorrespondences:
    """Putative correspondences of one camera pair: every pairing of candidates in shared frames."""

    a: int
    b: int
    xa: np.ndarray      # float64 [M, 2] normalised coordinates in camera a
    xb: np.ndarray      # float64 [M, 2] in camera b
    frame: np.ndarray   # int64 [M] frame row (index into PeopleCandidates.frames)
    person_a: np.ndarray  # int64 [M] person slot in camera a
    person_b: np.ndarray  # int64 [M] person slot in camera b
    joint: np.ndarray   # int64 [M]

    def __len__(self) -> int:
        return len(self.xa)


@dataclass(frozen=True, eq=False)
class PeopleObservations:
    """3D points (frame, person group, joint) and what every camera saw of them.

    ``pixels``/``normalized`` [C, N, 2] are NaN and ``scores`` [C, N] 0 where a camera does not see a
    point. ``group`` numbers the people seen in each frame (0, 1, ... per frame), so the points of one
    person at one instant are those with the same (frame, group).
    """

    camera_names: tuple[str, ...]
    skeleton: str
    frames: np.ndarray       # int64 [T] frame keys
    frame: np.ndarray        # int64 [N] frame row of each point
    group: np.ndarray        # int64 [N] person group within the frame
    joint: np.ndarray        # int64 [N]
    pixels: np.ndarray       # float64 [C, N, 2]
    normalized: np.ndarray   # float64 [C, N, 2]
    scores: np.ndarray       # float64 [C, N]

    @property
    def num_points(self) -> int:
        return len(self.frame)

    @property
    def seen(self) -> np.ndarray:
        """bool [C, N]: camera c sees point n."""
        return self.scores > 0

    def keypoints(self) -> np.ndarray:
        """Detections [C, N, 3] (x, y, score) in the layout ``rigs.triangulate`` takes."""
        return np.concatenate([self.pixels, self.scores[..., None]], axis=-1)

    def _instance_keys(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Unique (frame, group) keys, each point's instance index, and the number of group slots."""
        slots = int(self.group.max(initial=0)) + 1
        uniq, inst = np.unique(self.frame * slots + self.group, return_inverse=True)
        return uniq, inst, slots

    def instances(self, values: np.ndarray, num_joints: int) -> np.ndarray:
        """Per-point values [N, ...] laid out as [M, J, ...] people instances, one per (frame, group) in
        frame order (NaN where absent)."""
        uniq, inst, _ = self._instance_keys()
        out = np.full((len(uniq), num_joints) + values.shape[1:], np.nan)
        out[inst, self.joint] = values
        return out

    def instance_frames(self) -> np.ndarray:
        """Frame row [M] of each instance of ``instances``."""
        uniq, _, slots = self._instance_keys()
        return uniq // slots


def _check_skeletons(keypoints: Mapping[str, Keypoints2DSequence], names: Sequence[str]) -> str:
    """The one skeleton every camera's keypoints use."""
    skeletons = {name: keypoints[name].skeleton for name in names}
    joints = {name: keypoints[name].keypoints.shape[2] for name in names}
    if len(set(skeletons.values())) > 1 or len(set(joints.values())) > 1:
        seen = ", ".join(f"{n}: {s} ({joints[n]} joints)" for n, s in skeletons.items())
        raise CalibrationError(f"the cameras' keypoints use different skeletons ({seen}); detect every view "
                               f"with the same model")
    return next(iter(skeletons.values()))


def people_candidates(rig: Rig, keypoints: Mapping[str, Keypoints2DSequence], *, min_confidence: float = 0.5,
                      min_joints: int = 6, background_ratio: float = 0.4, max_people: int = 3) -> PeopleCandidates:
    """The candidate people of every camera and frame (rule 1 of the module docstring), undistorted."""
    missing = [n for n in rig.names if n not in keypoints]
    if missing:
        raise CalibrationError(f"no keypoints for camera(s) {', '.join(missing)} (keypoints were given for "
                               f"{', '.join(keypoints) or 'none'}); detect people in every camera's video")
    skeleton = _check_skeletons(keypoints, rig.names)
    frames = np.unique(np.concatenate([keypoints[n].frame_indices for n in rig.names]))
    P = max(keypoints[n].keypoints.shape[1] for n in rig.names)
    J = keypoints[rig.names[0]].keypoints.shape[2]
    C, T = len(rig), len(frames)
    kp = np.full((C, T, max(P, 1), J, 3), np.nan)
    kp[..., 2] = 0
    for c, name in enumerate(rig.names):
        seq = keypoints[name]
        rows = np.searchsorted(frames, seq.frame_indices)
        kp[c, rows, : seq.keypoints.shape[1]] = seq.keypoints
    score = np.nan_to_num(kp[..., 2])
    confident = (score >= min_confidence) & (score > 0) & np.isfinite(kp[..., :2]).all(-1)
    candidate = confident.sum(-1) >= min_joints
    xy = np.where(confident[..., None], kp[..., :2], np.nan)
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanmin(np.where(candidate[..., None, None], xy, np.inf), -2), np.nanmax(
            np.where(candidate[..., None, None], xy, -np.inf), -2)
    extent = np.where(candidate, np.linalg.norm(hi - lo, axis=-1), 0.0)  # [C, T, P]
    candidate &= extent >= background_ratio * extent.max(-1, keepdims=True)
    candidate &= (candidate.sum(-1) <= max_people)[..., None]
    used = confident & candidate[..., None]
    pixels = np.where(used[..., None], kp[..., :2], np.nan)
    normalized = np.stack([cam.undistort(np.nan_to_num(pixels[c])) for c, cam in enumerate(rig)])
    normalized = np.where(used[..., None], normalized, np.nan)
    return PeopleCandidates(rig.names, skeleton, frames, pixels, normalized, np.where(used, score, 0.0))


def pair_correspondences(cands: PeopleCandidates, a: int, b: int) -> PairCorrespondences:
    """Every pairing of a candidate in camera a with one in camera b in the same frame, joint by joint
    (rule 2): the putative correspondences the robust epipolar estimate sorts out."""
    ca, cb = cands.confident[a], cands.confident[b]                     # [T, P, J]
    both = ca[:, :, None, :] & cb[:, None, :, :]                        # [T, Pa, Pb, J]
    t, pa, pb, j = np.nonzero(both)
    return PairCorrespondences(a, b, cands.normalized[a, t, pa, j], cands.normalized[b, t, pb, j],
                               t.astype(np.int64), pa.astype(np.int64), pb.astype(np.int64), j.astype(np.int64))


def match_people(pair: PairCorrespondences, inliers: np.ndarray, shape: tuple[int, int], *,
                 min_matched_joints: int = 5, ambiguity_ratio: float = 0.8) -> np.ndarray:
    """Accepted pairings bool [T, P, P] (frame, person in a, person in b) of one camera pair from the
    epipolar inlier flags [M] of its putative correspondences (rule 3)."""
    T, P = shape
    count = np.zeros((T, P, P))
    total = np.zeros((T, P, P))
    np.add.at(count, (pair.frame, pair.person_a, pair.person_b), inliers.astype(float))
    np.add.at(total, (pair.frame, pair.person_a, pair.person_b), 1.0)
    score = np.where((count >= min_matched_joints) & (count >= 0.5 * total), count, 0.0)
    best_b, clear_a = _best_and_clear(score, 2, ambiguity_ratio)       # [T, Pa]
    best_a, clear_b = _best_and_clear(score, 1, ambiguity_ratio)       # [T, Pb]
    pa, pb = np.arange(P)[None, :, None], np.arange(P)[None, None, :]
    mutual = (best_b[:, :, None] == pb) & (best_a[:, None, :] == pa)
    return mutual & clear_a[:, :, None] & clear_b[:, None, :] & (score > 0)


def _best_and_clear(score: np.ndarray, axis: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of the best pairing along axis, and whether it is clear: positive, and the runner-up
    under ``ratio`` times it."""
    ordered = np.sort(score, axis=axis)
    best = np.take(ordered, -1, axis=axis)
    second = np.take(ordered, -2, axis=axis) if score.shape[axis] > 1 else np.zeros_like(best)
    return score.argmax(axis), (best > 0) & (second < ratio * best)


def _components(edges: np.ndarray) -> np.ndarray:
    """Connected-component labels [T, V] (smallest node index) of per-frame graphs given by bool
    adjacency [T, V, V], by repeated min-label propagation."""
    T, V, _ = edges.shape
    adj = edges | edges.transpose(0, 2, 1) | np.eye(V, dtype=bool)[None]
    labels = np.broadcast_to(np.arange(V), (T, V)).copy()
    for _ in range(V):
        new = np.where(adj, labels[:, None, :], V).min(-1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def people_observations(cands: PeopleCandidates, matches: Mapping[tuple[int, int], np.ndarray]) -> PeopleObservations:
    """Group the matched people of every frame across cameras into 3D points (rule 4).

    ``matches[(a, b)]`` is the bool [T, P, P] of ``match_people`` for the camera pairs whose relative
    pose is known; pairs left out give no links.
    """
    C, T, P, J = cands.scores.shape
    V = C * P
    edges = np.zeros((T, V, V), dtype=bool)
    for (a, b), m in matches.items():
        edges[:, a * P:(a + 1) * P, b * P:(b + 1) * P] |= m
    labels = _components(edges)                                         # [T, V]
    node_cam = np.repeat(np.arange(C), P)
    size = np.zeros((T, V), dtype=np.int64)
    np.add.at(size, (np.repeat(np.arange(T), V), labels.ravel()), 1)
    per_cam = np.zeros((T, V, C), dtype=np.int64)
    np.add.at(per_cam, (np.repeat(np.arange(T), V), labels.ravel(), np.tile(node_cam, T)), 1)
    good_root = (size >= 2) & (per_cam.max(-1) <= 1)                    # [T, V] roots of usable groups
    t_idx, root = np.nonzero(good_root)
    group = np.zeros(len(t_idx), dtype=np.int64)
    if len(t_idx):
        starts = np.r_[0, np.flatnonzero(np.diff(t_idx)) + 1]
        group = np.arange(len(t_idx)) - np.repeat(starts, np.diff(np.r_[starts, len(t_idx)]))
    G = len(t_idx)
    node_of = np.full((G, C), -1, dtype=np.int64)                       # person slot of camera c in group g
    member = labels[t_idx] == root[:, None]                             # [G, V]
    g_i, v_i = np.nonzero(member)
    node_of[g_i, node_cam[v_i]] = v_i % P
    # points: (group, joint), with each camera's detection of that joint where the camera is in the group
    has = node_of >= 0                                                  # [G, C]
    slot = np.where(has, node_of, 0)
    frame_rows = t_idx[:, None]                                         # [G, 1]
    cam_idx = np.arange(C)[None, :]
    pix = cands.pixels[cam_idx, frame_rows, slot]                       # [G, C, J, 2]
    nrm = cands.normalized[cam_idx, frame_rows, slot]
    scr = np.where(has[..., None], cands.scores[cam_idx, frame_rows, slot], 0.0)  # [G, C, J]
    pix = np.where(scr[..., None] > 0, pix, np.nan)
    nrm = np.where(scr[..., None] > 0, nrm, np.nan)
    keep = (scr > 0).sum(1) >= 2                                        # [G, J]: seen by two cameras
    g, j = np.nonzero(keep)
    return PeopleObservations(
        camera_names=cands.camera_names, skeleton=cands.skeleton, frames=cands.frames,
        frame=t_idx[g].astype(np.int64), group=group[g], joint=j.astype(np.int64),
        pixels=pix[g, :, j].transpose(1, 0, 2), normalized=nrm[g, :, j].transpose(1, 0, 2),
        scores=scr[g, :, j].T)
