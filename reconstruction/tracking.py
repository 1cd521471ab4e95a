"""Identities over time: a constant-velocity tracker that turns per-frame 3D people into tracks.

Each frame, every live track predicts where its joints are now: its reference pose (the joints it
last observed, and the predictions it carried for joints it did not) moved by the track's body
velocity times the time since it was last matched. The body velocity is the median displacement of
the joints seen in both of the track's last two matched frames, divided by the time between them:
per-joint velocities from 2 cm noise at 30 fps carry about 1 m/s of noise, and limb swing is not
constant anyway, while the median over the body is steadier, ignores a few wild joints, and is what a
person's motion is. Successive measurements are blended with an exponential time constant of 0.1 s,
so a frame-to-frame measurement counts for about a quarter and one across an occlusion for nearly all.
Only the horizontal velocity is extrapolated at full length: people stay on the floor (z is up), so a
predicted vertical motion fades within about 0.1 s (a jump's rise does not lift an occluded track).

The cost of giving detection g to track q is the mean distance (metres) over the joints both have;
pairs further apart than the gate (or with no joint in common) cannot match. The gate is
``max_distance``, widened by ``gate_growth`` per second a confirmed track has gone unseen, since its
prediction drifts. Matching is a cascade of assignments (Hungarian,
``scipy.optimize.linear_sum_assignment``, in which a track may stay unmatched at the price of its
gate, so one good match is never traded for two poor ones), each on the detections the earlier ones
left, lost tracks taken from the most recently seen to the longest lost (as in DeepSORT):

1. confirmed tracks seen in the previous frame;
2. lost confirmed tracks, within ``max_distance`` of their prediction;
3. tentative tracks;
4. lost confirmed tracks, within their grown gates.

So neither a lost track nor a new candidate steals a followed person's detection; a lost person who
reappears near their prediction gets their id back before a young track can claim them; a lost
track whose gate has merely grown does not take a newcomer whom a young track already follows; and
a track lost long ago (its person may have left) does not take a person from the track that lost
them more recently.

A detection nobody takes starts a tentative track; ``min_hits`` consecutive matches confirm it and
give it the next id (ids count up from 0 and are never reused). A tentative track that misses one
frame is dropped; a confirmed track keeps predicting while unmatched (a short occlusion keeps its id
when the person reappears near the prediction) and ends once unmatched for more than
``max_missed_s``. A lost track's re-acquisition is provisional: unless the track is matched again in
the next frame, it is undone and the track's motion state restored, so a one-frame ghost pose near
an occluded person does not drag the prediction away (``update`` has already reported that frame's
id; ``track_sequence`` drops the pose). The velocity's change between matches is capped at
``max_accel`` and its size at ``max_speed``.

``Tracker`` is the stateful object of the reconstruction: live and offline both feed it frame by
frame. ``track_sequence`` runs it over a whole recording and lays the result out one slot per track.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

_NS = 1e-9
_UNMATCHABLE = 1e6  # cost standing in for "cannot match" inside the assignment
_VELOCITY_TAU_S = 0.1  # time constant of the body velocity's smoothing
_VERTICAL_TAU_S = 0.1  # time constant over which a predicted vertical motion dies out


class TrackingError(ValueError):
    """Poses of the wrong shape, times that do not increase, or tracker settings out of range."""


@dataclass(frozen=True)
class TrackerParams:
    """How close a detection must be to a track's prediction, and how tracks start and end."""

    max_distance: float = 0.5  # m, mean joint distance for a match
    min_hits: int = 3  # consecutive matched frames before a track is confirmed (gets an id)
    max_missed_s: float = 1.0  # a track unmatched this long ends
    max_speed: float = 5.0  # m/s, cap on the body speed a track extrapolates with
    max_accel: float = 10.0  # m/s^2, cap on how fast a track's velocity may change between matches
    gate_growth: float = 1.0  # m/s: a confirmed track's gate widens by this per second unseen (its prediction drifts)

    def __post_init__(self) -> None:
        if not (self.max_distance > 0 and self.min_hits >= 1 and self.max_missed_s >= 0 and self.max_speed > 0
                and self.max_accel > 0 and self.gate_growth >= 0):
            raise TrackingError(
                f"TrackerParams: need max_distance > 0, min_hits >= 1, max_missed_s >= 0, max_speed > 0, "
                f"max_accel > 0, gate_growth >= 0; got {self}"
            )


def _present(poses: np.ndarray) -> np.ndarray:
    """bool [..., J]: joints with finite coordinates and a positive score."""
    return np.isfinite(poses[..., :3]).all(-1) & (poses[..., 3] > 0)


def _pose_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean distance [Qa, Qb] (metres) over the joints both poses have; inf where they share none."""
    both = _present(a)[:, None] & _present(b)[None]
    d = np.linalg.norm(a[:, None, :, :3] - b[None, :, :, :3], axis=-1)
    n = both.sum(-1)
    total = np.where(both, d, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.inf)


def _assign(cost: np.ndarray, gate: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the cheapest matching of cost [Q, G] in which a row may also stay unmatched
    at the price of its ``gate`` (so pairs beyond the gate never match, and one good match is not traded
    for two poor ones, as a plain rectangular assignment maximising the number of pairs would do)."""
    Q, G = cost.shape
    if Q == 0 or G == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gate = np.broadcast_to(np.asarray(gate, np.float64), (Q,))
    if Q == 1 or G == 1:  # one track or one pose: the best pair within its gate, if any (same optimum)
        saving = np.where(cost <= gate[:, None], cost - gate[:, None], np.inf)
        q, g = divmod(int(saving.argmin()), G)
        ok = np.isfinite(saving[q, g])
        return np.array([q] if ok else [], np.int64), np.array([g] if ok else [], np.int64)
    aug = np.full((Q + G, G + Q), _UNMATCHABLE)
    aug[:Q, :G] = np.where(cost <= gate[:, None], cost, _UNMATCHABLE)
    aug[np.arange(Q), G + np.arange(Q)] = gate  # row q left unmatched
    aug[Q + np.arange(G), np.arange(G)] = 0.0  # column g left unmatched
    aug[Q:, G:] = 0.0
    rows, cols = linear_sum_assignment(aug)
    keep = (rows < Q) & (cols < G)
    return rows[keep], cols[keep]


def _median_over_joints(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-coordinate median [Q, 3] of values [Q, J, 3] over the joints in mask [Q, J] (0 where none)."""
    ordered = np.sort(np.where(mask[..., None], values, np.inf), axis=1)  # masked-out joints sort last
    n = mask.sum(1)[:, None, None]
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0), axis=1)[:, 0]
    hi = np.take_along_axis(ordered, np.maximum(n // 2, 0), axis=1)[:, 0]
    return np.where(n[:, 0] > 0, 0.5 * (lo + hi), 0.0)


def _clip_norm(v: np.ndarray, limit) -> np.ndarray:
    """Vectors [..., 3] shortened to at most ``limit`` (broadcast) long."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v * np.minimum(1.0, limit / np.maximum(norm, 1e-12))


class Tracker:
    """Identities over time, frame by frame (the one stateful object: feed frames in time order).

    ``update(t_ns, poses [G, J, 4])`` returns each pose's track id (-1 while its track is tentative,
    or for an empty pose); ``predict(t_ns)`` gives every live track's predicted pose, for the
    association of the next frame. Track state lives in arrays over tracks (rows), so a frame costs a
    few vectorised operations and one or two small assignments.
    """

    # Per-track state a provisional re-acquisition may have to undo.
    _MOTION = ("pos", "score", "observed", "seen_ns", "vel", "t_last")

    def __init__(self, params: TrackerParams = TrackerParams(), fps: float = 30.0):
        if fps <= 0:
            raise TrackingError(f"Tracker: fps must be positive, got {fps}")
        self.params = params
        self.fps = float(fps)
        self._num_joints: int | None = None
        self._t_prev: int | None = None
        self._next_id = 0
        self._next_key = 0
        self._key_to_id: dict[int, int] = {}
        self._tracks = self._empty_tracks(0)

    @staticmethod
    def _empty_tracks(num_joints: int) -> dict[str, np.ndarray]:
        """Per-track arrays, one row per live track (rows stay in order of creation)."""
        J = num_joints
        tracks = {
            "pos": np.zeros((0, J, 3)),  # reference pose at the last match: observed joints, carried predictions
            "score": np.zeros((0, J), np.float32),  # last observed score of each joint
            "observed": np.zeros((0, J), bool),  # joints observed at the last match
            "seen_ns": np.zeros((0, J), np.int64),  # when each joint was last observed
            "vel": np.zeros((0, 3)),  # body velocity, m/s
            "t_last": np.zeros(0, np.int64),  # last matched time
            "hits": np.zeros(0, np.int64),  # matches in a row
            "ids": np.zeros(0, np.int32),  # -1 while tentative
            "keys": np.zeros(0, np.int64),  # serial of every track, tentative ones included (increasing)
            "provisional": np.zeros(0, bool),  # re-acquired after a miss, not yet seen again
        }
        tracks.update({"before_" + k: tracks[k] for k in Tracker._MOTION})  # state before that re-acquisition
        return tracks

    @property
    def track_ids(self) -> np.ndarray:
        """int32 [Q]: ids of the live tracks in ``predict``'s row order (-1: tentative)."""
        return self._tracks["ids"].copy()

    def ids_of(self, keys: np.ndarray) -> np.ndarray:
        """The confirmed id of each track key int32 [...] (-1: the track was never confirmed), so frames a track
        had before its confirmation can carry its id once it is known."""
        keys = np.asarray(keys, np.int64)
        return np.array([self._key_to_id.get(int(k), -1) for k in keys.ravel()], np.int32).reshape(keys.shape)

    def predict(self, t_ns: int, confirmed_only: bool = False) -> np.ndarray:
        """Constant-velocity predictions float32 [Q, J, 4] of every live track (confirmed and tentative,
        rows as in ``track_ids``; only confirmed ones with ``confirmed_only``) at ``t_ns``. The score
        channel is each joint's last observed score (0 and NaN where the track has no estimate)."""
        out = self._prediction(int(t_ns)).astype(np.float32)
        return out[self._tracks["ids"] >= 0] if confirmed_only else out

    def _prediction(self, t_ns: int) -> np.ndarray:
        """predict() for every live track, in float64."""
        tr = self._tracks
        dt = (t_ns - tr["t_last"]) * _NS
        # Horizontal motion continues; vertical motion (z is up) dies out within about _VERTICAL_TAU_S,
        # since bodies stay on the floor: a jump's rise must not lift the prediction through an occlusion.
        reach = np.stack([dt, dt, _VERTICAL_TAU_S * (1.0 - np.exp(-dt / _VERTICAL_TAU_S))], axis=-1)
        xyz = tr["pos"] + (tr["vel"] * reach)[:, None, :]
        score = np.where(np.isfinite(xyz).all(-1), tr["score"], 0.0)
        return np.concatenate([xyz, score[..., None]], axis=-1)

    def update(self, t_ns: int, poses: np.ndarray) -> np.ndarray:
        """Match this frame's poses [G, J, 4] to the tracks; returns int32 [G] track ids (-1: not confirmed)."""
        return self.step(t_ns, poses)[1]

    def step(self, t_ns: int, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``update`` with what offline layouts need: (track key [G] of each pose (-1: empty pose; keys name
        tentative tracks too, see ``ids_of``), id [G], keys whose match in the previous frame was undone)."""
        t_ns = int(t_ns)
        poses = self._check(t_ns, poses)
        p, tr = self.params, self._tracks
        keys = np.full(poses.shape[0], -1, np.int64)
        # Confirmed tracks unmatched for too long end; tentative ones never survive a miss (see below).
        self._keep((t_ns - tr["t_last"]) * _NS <= p.max_missed_s)
        tr = self._tracks
        present = _present(poses)
        valid = np.flatnonzero(present.any(-1))
        pred = self._prediction(t_ns)
        cost = _pose_distances(pred, poses[valid])
        # Matching cascade, each stage on the detections the earlier ones left (see the module notes).
        confirmed = tr["ids"] >= 0
        t_prev = self._t_prev if self._t_prev is not None else t_ns
        lost = confirmed & (tr["t_last"] < t_prev)
        by_age = [lost & (tr["t_last"] == t) for t in np.unique(tr["t_last"][lost])[::-1]]
        unseen_s = np.maximum((t_ns - tr["t_last"]) * _NS - 1.0 / self.fps, 0.0)
        base = np.full(tr["ids"].size, p.max_distance)
        grown = base + p.gate_growth * unseen_s
        stages = [(confirmed & ~lost, base)] + [(m, base) for m in by_age] + [(~confirmed, base)]
        stages += [(m, grown) for m in by_age]
        rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        free = np.ones(valid.size, bool)
        for stage, gate in stages:
            if not stage.any():
                continue
            stage_rows, stage_cols = np.flatnonzero(stage), np.flatnonzero(free)
            r, c = _assign(cost[stage_rows][:, stage_cols], gate[stage_rows])
            rows.append(stage_rows[r])
            cols.append(stage_cols[c])
            free[stage_cols[c]] = False
        rows = np.concatenate(rows)
        dets = valid[np.concatenate(cols)]
        matched = np.zeros(tr["ids"].size, bool)
        matched[rows] = True
        undone = self._settle_provisional(matched)
        self._absorb(t_ns, rows, poses[dets], present[dets], pred[rows, :, :3])
        keys[dets] = tr["keys"][rows]
        # Tentative tracks that missed this frame are dropped (min_hits means consecutive matches).
        self._keep(matched | (tr["ids"] >= 0))
        new = valid[keys[valid] < 0]
        keys[new] = self._start(t_ns, poses[new], present[new])
        self._confirm()
        ids = np.full(keys.shape, -1, np.int32)
        has = keys >= 0
        ids[has] = self._tracks["ids"][np.searchsorted(self._tracks["keys"], keys[has])]
        self._t_prev = t_ns
        return keys, ids, undone

    def _check(self, t_ns: int, poses: np.ndarray) -> np.ndarray:
        poses = np.asarray(poses, np.float64)
        if poses.size == 0:
            return np.zeros((0, self._num_joints or 0, 4))
        if poses.ndim != 3 or poses.shape[-1] != 4:
            raise TrackingError(f"Tracker.update: poses must be [G, J, 4] (x, y, z, score), got shape {poses.shape}")
        if self._num_joints is None:
            self._num_joints = poses.shape[1]
            self._tracks = self._empty_tracks(self._num_joints)
        elif poses.shape[1] != self._num_joints:
            raise TrackingError(
                f"Tracker.update: poses have {poses.shape[1]} joints but earlier frames had {self._num_joints}; "
                f"use one Tracker per skeleton layout"
            )
        if self._t_prev is not None and t_ns <= self._t_prev:
            raise TrackingError(
                f"Tracker.update: time {t_ns} ns does not come after the previous frame ({self._t_prev} ns); "
                f"feed frames in increasing time order"
            )
        return poses

    def _keep(self, mask: np.ndarray) -> None:
        if not mask.all():  # most frames keep every track: no copies then
            self._tracks = {k: v[mask] for k, v in self._tracks.items()}

    def _settle_provisional(self, matched: np.ndarray) -> np.ndarray:
        """A confirmed track re-acquired after a miss must be matched again in the next frame: a one-frame
        match (typically a ghost pose near an occluded person) is undone, restoring the track's motion
        state from before it. Returns the keys of the tracks whose last match was undone."""
        tr = self._tracks
        undo = tr["provisional"] & ~matched
        for k in self._MOTION:
            tr[k][undo] = tr["before_" + k][undo]
        tr["provisional"][:] = False
        return tr["keys"][undo]

    def _absorb(self, t_ns: int, rows: np.ndarray, poses: np.ndarray, present: np.ndarray, pred: np.ndarray) -> None:
        """Matched tracks take the observed joints; the others keep their prediction for the next match."""
        tr, p = self._tracks, self.params
        if rows.size == 0:
            return
        t_prev = t_ns if self._t_prev is None else self._t_prev
        reacquired = (tr["ids"][rows] >= 0) & (tr["t_last"][rows] < t_prev)
        for k in self._MOTION:
            tr["before_" + k][rows[reacquired]] = tr[k][rows[reacquired]]
        tr["provisional"][rows[reacquired]] = True
        xyz = poses[..., :3]
        both = present & tr["observed"][rows]
        n = both.sum(-1)
        dt = (t_ns - tr["t_last"][rows]) * _NS
        disp = _median_over_joints(xyz - tr["pos"][rows], both)
        vel = tr["vel"][rows]
        # A track's first velocity is taken as measured; later ones are blended in with weight
        # 1 - exp(-dt / tau): one frame apart they are noisy and count for little, across a gap a lot.
        # Bodies cannot accelerate without limit, so the change is capped at max_accel * dt.
        first = (tr["hits"][rows] <= 1)[:, None]
        weight = np.where(first, 1.0, 1.0 - np.exp(-dt / _VELOCITY_TAU_S)[:, None])
        change = np.where((n > 0)[:, None], weight * (disp / dt[:, None] - vel), 0.0)
        change = np.where(first, change, _clip_norm(change, p.max_accel * dt[:, None]))
        seen = np.where(present, t_ns, tr["seen_ns"][rows])
        stale = (t_ns - seen) * _NS > p.max_missed_s
        pos = np.where(present[..., None], xyz, pred)
        pos[stale] = np.nan
        tr["pos"][rows] = pos
        tr["score"][rows] = np.where(present, poses[..., 3], np.where(stale, 0, tr["score"][rows]))
        tr["observed"][rows] = present
        tr["seen_ns"][rows] = seen
        tr["vel"][rows] = _clip_norm(vel + change, p.max_speed)
        tr["t_last"][rows] = t_ns
        tr["hits"][rows] += 1

    def _start(self, t_ns: int, poses: np.ndarray, present: np.ndarray) -> np.ndarray:
        """New tentative tracks for unmatched poses; returns their keys."""
        n = poses.shape[0]
        keys = np.arange(self._next_key, self._next_key + n, dtype=np.int64)
        if n == 0:
            return keys
        self._next_key += n
        new = {
            "pos": np.where(present[..., None], poses[..., :3], np.nan),
            "score": np.where(present, poses[..., 3], 0).astype(np.float32),
            "observed": present,
            "seen_ns": np.full(present.shape, t_ns, np.int64),
            "vel": np.zeros((n, 3)),
            "t_last": np.full(n, t_ns, np.int64),
            "hits": np.ones(n, np.int64),
            "ids": np.full(n, -1, np.int32),
            "keys": keys,
            "provisional": np.zeros(n, bool),
        }
        new.update({"before_" + k: new[k] for k in self._MOTION})
        self._tracks = {k: np.concatenate([v, new[k]]) for k, v in self._tracks.items()}
        return keys

    def _confirm(self) -> None:
        """Tentative tracks with ``min_hits`` consecutive matches get the next ids."""
        tr = self._tracks
        for row in np.flatnonzero((tr["ids"] < 0) & (tr["hits"] >= self.params.min_hits)):
            tr["ids"][row] = self._next_id
            self._key_to_id[int(tr["keys"][row])] = self._next_id
            self._next_id += 1


def track_sequence(
    poses: list[np.ndarray],
    t_ns: np.ndarray,
    params: TrackerParams = TrackerParams(),
    fps: float = 30.0,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Track a recording's per-frame people (poses[t]: [G_t, J, 4]): -> poses [T, P, J, 4], ids int32 [T, P].

    Slot p holds confirmed track p (ids are 0..P-1) for its whole life, from its first to its last
    matched frame: where it was matched the slot has that frame's pose, where it was alive but unseen
    (a short occlusion) the slot keeps the id with an empty pose (NaN, score 0) for ``smooth_tracks``
    to fill. A track's tentative frames before confirmation are back-filled with its id, so no observed
    data is lost; poses whose tracks never got confirmed are dropped. Empty slots elsewhere: -1, NaN/0.
    """
    t_ns = np.asarray(t_ns, np.int64)
    if t_ns.ndim != 1 or t_ns.size != len(poses):
        raise TrackingError(
            f"track_sequence: {len(poses)} frames of poses but t_ns has shape {t_ns.shape}; pass one time per frame"
        )
    tracker = Tracker(params, fps)
    frame_keys = []
    for t, frame in enumerate(poses):
        keys, _, undone = tracker.step(int(t_ns[t]), frame)
        if undone.size:  # one-frame re-acquisitions the tracker took back: not that track's pose
            frame_keys[-1][np.isin(frame_keys[-1], undone)] = -1
        frame_keys.append(keys)
        if progress is not None:
            progress(t + 1, len(poses))
    T, P = len(poses), tracker._next_id
    J = tracker._num_joints or 0
    out = np.full((T, P, J, 4), np.nan, np.float32)
    out[..., 3] = 0
    track_ids = np.full((T, P), -1, np.int32)
    key_to_id = tracker._key_to_id
    first = np.full(P, T, np.int64)
    last = np.full(P, -1, np.int64)
    for t, keys in enumerate(frame_keys):
        for g in np.flatnonzero(keys >= 0):
            slot = key_to_id.get(int(keys[g]))
            if slot is not None:
                out[t, slot] = poses[t][g]
                first[slot] = min(first[slot], t)
                last[slot] = t
    frames = np.arange(T)[:, None]
    alive = (frames >= first[None]) & (frames <= last[None])
    track_ids[alive] = np.broadcast_to(np.arange(P, dtype=np.int32), (T, P))[alive]
    missing = ~_present(out)
    out[missing] = np.nan
    out[..., 3][missing] = 0
    return out, track_ids
