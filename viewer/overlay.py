"""Overlays: a session's reconstructed 3D skeletons reprojected onto one camera's recorded video, with that
camera's 2D detections beside them, so calibration and reconstruction errors show at a glance.

    stats = write_overlay(Path("sessions/take1"), "cam0", Path("overlay_cam0.mp4"))

Each recorded frame of the camera (``capture.session_reader.SessionVideo``) is matched to a row of
``poses3d.npz``: through ``sync.csv`` (the camera's seq -> its FrameSet's t_ns, which is the poses' t_ns), else
by t_ns within half a frame, else (a video whose clock the poses do not share) by frame order. The skeletons
are projected with the session's rig (``session.toml``) and drawn, farthest first, as bones (lines) and
joints (dots) in the colour of their track id (``viewer.colours``), the id by the head; the detections of
``keypoints2d/<camera>.npz`` of the same FrameSet as small hollow white circles; a legend line gives the
frame number (the poses3d row, as the viewer numbers them), the time from the session's first pose and what
the marks mean. The output is mp4v at the session's rate, one frame per recorded frame (frames without a
pose keep the legend).

``OverlayStats.median_px``: the median distance between the reprojected joints and the joints of the detection
matched to each person in the same frame (Hungarian on the mean joint distance, gated at 5 % of the image
diagonal): a quick reprojection check of the reconstruction in this camera.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from viewer.colours import track_colour

LEGEND = "reprojected 3D (lines) / 2D detections (circles)"
_HEAD_JOINTS = ("head_top", "head", "nose")  # the first one the skeleton has anchors the id label
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions for lines and dots
_GATE = 0.05  # a detection matches a person when their mean joint distance is under this part of the diagonal


class OverlayError(ValueError):
    """A session, camera or output an overlay cannot be made of; the message says what to do."""


@dataclass(frozen=True)
class OverlayStats:
    """What one overlay run did and the reprojection check it made."""

    path: Path
    camera: str
    frames_written: int
    frames_without_3d: int  # frames on which no skeleton was drawn (no pose row matched, or nobody in it)
    median_px: float  # median reprojected-joint to matched-detection distance; NaN when nothing was compared
    joints_compared: int
    matched_by: str  # "sync.csv", "t_ns" or "frame order"
    fps: float
    seconds: float  # drawing and encoding, from the first frame read to the last written

    def lines(self) -> list[str]:
        """The summary the command prints and the report page shows."""
        check = (f"{self.median_px:.2f} px median over {self.joints_compared} joints" if self.joints_compared
                 else "no detections to compare with")
        rate = self.frames_written / self.seconds if self.seconds > 0 else float("nan")
        return [f"overlay of camera {self.camera}: {self.path}",
                f"frames: {self.frames_written} written at {self.fps:g} fps, {self.frames_without_3d} without 3D; "
                f"video matched to poses3d by {self.matched_by}",
                f"reprojection check (reprojected 3D joints vs this camera's 2D detections): {check}",
                f"speed: {rate:.1f} frames/s ({self.seconds:.1f} s)"]


def write_overlay(session: Path, camera: str, out_mp4: Path, *, detections: bool = True, rig=None,
                  progress: Callable[[int, int], None] | None = None) -> OverlayStats:
    """Draw the reprojected 3D skeletons (and the 2D detections) on ``camera``'s recorded video of ``session``
    into ``out_mp4`` (mp4v); ``rig`` overrides the session's (the one the poses were reconstructed with)."""
    from capture.session_reader import SessionVideo, decode_frame
    from rigs.poses3d_file import read_poses3d
    from rigs.skeletons import get_skeleton

    session, out_mp4 = Path(session), Path(out_mp4)
    if not (session / "poses3d.npz").is_file():
        what = "does not exist" if not session.exists() else "has no poses3d.npz"
        raise OverlayError(f"{session} {what}: nothing to overlay; reconstruct it first (mocap reconstruct "
                           f"{session})")
    poses3d = read_poses3d(session / "poses3d.npz")
    with SessionVideo(session) as video:
        rig = rig if rig is not None else video.rig
        if rig is None:
            raise OverlayError(f"{session}/session.toml is missing or unreadable: the overlay needs the rig the "
                               f"poses were reconstructed with")
        if camera not in rig.names:
            raise OverlayError(f"{session}: no camera {camera!r}; its cameras are {', '.join(rig.names)}")
        has_csv = (session / "video" / f"{camera}.csv").is_file()  # (asked first: index() warns when it is not)
        index = video.index(camera) if has_csv and camera in video.cameras else None
        if index is None or len(index) == 0:
            with_video = [c for c in video.cameras if (session / "video" / f"{c}.csv").is_file()]
            raise OverlayError(f"{session} has no recorded video of camera {camera!r} (video/{camera}.csv missing "
                               f"or empty); cameras with video: {', '.join(with_video) or 'none'}")
        cam = rig[camera]
        fps = float(video.fps or poses3d.fps or 30.0)
        rows, matched_by = _pose_rows(video, camera, index, poses3d, fps)
        kp_rows, kp = _detections(session, camera, index, rows, poses3d) if detections else (None, None)
        pixels = cam.project(poses3d.poses[..., :3].astype(np.float64))  # [T, P, J, 2]
        z = poses3d.poses[..., :3].astype(np.float64) @ cam.R[2] + cam.t[2]  # depth of each joint [T, P, J]
        depth = np.where(np.isfinite(z), z, 0).sum(-1) / np.maximum(np.isfinite(z).sum(-1), 1)  # people far to near
        seen = (poses3d.poses[..., 3] > 0) & np.isfinite(pixels).all(-1)
        bones = np.array(get_skeleton(poses3d.skeleton).bones, np.int64).reshape(-1, 2)
        head = next((poses3d.joint_names.index(n) for n in _HEAD_JOINTS if n in poses3d.joint_names), None)
        t0 = int(poses3d.t_ns[0]) if poses3d.num_frames else int(index.t_ns[0])
        position = {(s, t): n for n, (s, t) in enumerate(zip(index.seq.tolist(), index.t_ns.tolist(), strict=True))}

        out_mp4.parent.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        writer = None
        written = without = 0
        distances: list[np.ndarray] = []
        try:
            for k, frame in enumerate(video.iter_frames(camera)):
                image = decode_frame(frame.data)
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else np.ascontiguousarray(image)
                h, w = image.shape[:2]
                if writer is None:
                    writer = _open_writer(out_mp4, fps, w, h)
                scale = np.array([w / cam.width, h / cam.height])  # a video stored at another size than the rig's
                i = int(rows[position[(frame.seq, frame.t_ns)]])
                style = _Style.for_size(w, h)
                drawn = False
                dets = None
                if kp is not None and i >= 0 and kp_rows[i] >= 0:
                    dets = kp[kp_rows[i]].copy()
                    dets[..., :2] *= scale
                    _draw_detections(image, dets, style)
                if i >= 0:
                    px = pixels[i] * scale
                    ok = seen[i] & (np.abs(px - [w / 2, h / 2]) < [1.5 * w, 1.5 * h]).all(-1)
                    drawn = _draw_people(image, px, ok, poses3d.track_ids[i], depth[i], bones, head, style)
                    if dets is not None:
                        distances.append(_matched_distances(px, ok, poses3d.track_ids[i], dets, np.hypot(w, h)))
                label = (f"frame {i}  {(int(poses3d.t_ns[i]) - t0) / 1e9:.2f} s" if i >= 0
                         else f"video frame {k}  {(frame.t_ns - t0) / 1e9:.2f} s  (no 3D)")
                _draw_legend(image, f"{camera}  {label}", style)
                writer.write(image)
                written += 1
                without += not drawn
                if progress is not None:
                    progress(written, len(index))
        finally:
            if writer is not None:
                writer.release()
    if written == 0:
        raise OverlayError(f"{session}: no frame of camera {camera!r} could be read (see the warnings); the "
                           f"video is damaged")
    d = np.concatenate(distances) if distances else np.zeros(0)
    return OverlayStats(out_mp4, camera, written, without, float(np.median(d)) if d.size else float("nan"),
                        int(d.size), matched_by, fps, time.perf_counter() - t_start)


# --- matching frames -----------------------------------------------------------------------------------------

def _pose_rows(video, camera: str, index, poses3d, fps: float) -> tuple[np.ndarray, str]:
    """The poses3d row of every indexed frame (-1: none) and how they were matched."""
    T = poses3d.num_frames
    by_t = _lookup(poses3d.t_ns)
    if (video.folder / "sync.csv").is_file():
        sets, t_sets, seqs, cams = video.sync()
        if camera in cams:
            col = seqs[:, cams.index(camera)]
            have = col >= 0
            set_t = dict(zip(col[have].tolist(), t_sets[have].tolist(), strict=True))
            rows = np.array([by_t(set_t.get(int(s), -1)) for s in index.seq], np.int64)
            if (rows >= 0).any() or T == 0:
                return rows, "sync.csv"
    if T:
        j = np.searchsorted(poses3d.t_ns, index.t_ns)
        lo, hi = np.clip(j - 1, 0, T - 1), np.clip(j, 0, T - 1)
        near = np.where(np.abs(poses3d.t_ns[lo] - index.t_ns) <= np.abs(poses3d.t_ns[hi] - index.t_ns), lo, hi)
        close = np.abs(poses3d.t_ns[near] - index.t_ns) <= 0.5e9 / fps
        if close.any():
            return np.where(close, near, -1), "t_ns"
    order = np.arange(len(index))
    return np.where(order < T, order, -1), "frame order"


def _lookup(t_ns: np.ndarray) -> Callable[[int], int]:
    table = {int(t): i for i, t in enumerate(t_ns.tolist())}
    return lambda t: table.get(int(t), -1)


def _detections(session: Path, camera: str, index, rows: np.ndarray, poses3d):
    """(keypoints row of every poses3d row, -1 none; keypoints [N, S, J, 3]) or (None, None) without a file."""
    from rigs.keypoint_files import read_keypoints_npz

    path = session / "keypoints2d" / f"{camera}.npz"
    if not path.is_file():
        return None, None
    seq = read_keypoints_npz(path)
    if seq.keypoints.shape[2] != len(poses3d.joint_names):
        return None, None  # another layout than the poses': nothing to compare joint by joint
    by_t = _lookup(seq.t_ns) if seq.t_ns is not None else (lambda t: -1)
    kp_rows = np.array([by_t(t) for t in poses3d.t_ns.tolist()], np.int64)
    if not (kp_rows >= 0).any() and seq.num_frames == poses3d.num_frames:
        kp_rows = np.arange(poses3d.num_frames)  # same rows, times not shared
    kp = seq.keypoints.astype(np.float64)
    kp[kp[..., 2] <= 0, :2] = np.nan
    return kp_rows, kp


def _matched_distances(px: np.ndarray, ok: np.ndarray, ids: np.ndarray, dets: np.ndarray,
                       diagonal: float) -> np.ndarray:
    """Joint distances (px) between each drawn person and the detection matched to it (Hungarian, gated)."""
    from scipy.optimize import linear_sum_assignment

    people = np.flatnonzero(ok.any(-1) & (ids >= 0))
    if people.size == 0 or dets.shape[0] == 0:
        return np.zeros(0)
    a = np.where(ok[people, :, None], px[people], np.nan)  # [P, J, 2]
    d = np.linalg.norm(a[:, None] - dets[None, ..., :2], axis=-1)  # [P, S, J]
    valid = np.isfinite(d)
    count = valid.sum(-1)
    with np.errstate(invalid="ignore"):
        mean = np.where(count > 0, np.where(valid, d, 0).sum(-1) / np.maximum(count, 1), np.inf)
    cost = np.where(np.isfinite(mean), mean, 1e12)
    r, c = linear_sum_assignment(cost)
    keep = mean[r, c] < _GATE * diagonal
    return d[r[keep], c[keep]][valid[r[keep], c[keep]]]


# --- drawing -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Style:
    thickness: int
    dot: int
    circle: int
    font: float
    text: int  # stroke of the id labels

    @staticmethod
    def for_size(w: int, h: int) -> _Style:
        t = max(2, round(min(w, h) / 300))
        return _Style(t, t + 1, 2 * t + 2, max(0.35, min(w, h) / 1000), max(1, t // 2))


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * (1 << _SHIFT))), int(round(p[1] * (1 << _SHIFT)))


def _bgr(track_id: int) -> tuple[int, int, int]:
    r, g, b = track_colour(track_id)
    return b, g, r


def _draw_detections(image: np.ndarray, dets: np.ndarray, style: _Style) -> None:
    """Every detected joint as a small hollow white circle."""
    for p in dets[..., :2][np.isfinite(dets[..., :2]).all(-1)]:
        cv2.circle(image, _fixed(p), style.circle << _SHIFT, (255, 255, 255), 1, cv2.LINE_AA, _SHIFT)


def _draw_people(image: np.ndarray, px: np.ndarray, ok: np.ndarray, ids: np.ndarray, depth: np.ndarray,
                 bones: np.ndarray, head: int | None, style: _Style) -> bool:
    """Bones, joints and the id of every person seen in this frame, farthest first; True when any was drawn."""
    drawn = False
    people = np.flatnonzero(ok.any(-1))
    for p in people[np.argsort(-np.nan_to_num(depth[people]), kind="stable")]:
        colour = _bgr(int(ids[p]))
        both = ok[p, bones[:, 0]] & ok[p, bones[:, 1]]
        for a, b in bones[both]:
            cv2.line(image, _fixed(px[p, a]), _fixed(px[p, b]), colour, style.thickness, cv2.LINE_AA, _SHIFT)
        for q in px[p][ok[p]]:
            cv2.circle(image, _fixed(q), style.dot << _SHIFT, colour, -1, cv2.LINE_AA, _SHIFT)
        anchor = px[p, head] if head is not None and ok[p, head] else px[p][ok[p]][np.argmin(px[p][ok[p]][:, 1])]
        text = f"id {int(ids[p])}" if ids[p] >= 0 else "?"
        font = 1.3 * style.font
        tw = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, style.text)[0][0]
        org = (int(anchor[0] - tw / 2), int(anchor[1] - 2 * style.circle))
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), style.text + 2, cv2.LINE_AA)
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, colour, style.text, cv2.LINE_AA)
        drawn = True
    return drawn


def _draw_legend(image: np.ndarray, head: str, style: _Style) -> None:
    """The frame line and what the marks mean, on a dark band at the bottom (two lines when one is too wide)."""
    h, w = image.shape[:2]
    one = f"{head}  |  {LEGEND}"
    size = cv2.getTextSize(one, cv2.FONT_HERSHEY_SIMPLEX, style.font, 1)[0]
    lines = [one] if size[0] <= w - 8 else [head, LEGEND]
    line_h = size[1] + 6
    top = h - line_h * len(lines) - 4
    band = image[max(top, 0):]
    band[:] = (band * 0.45).astype(np.uint8)
    for n, text in enumerate(lines):
        cv2.putText(image, text, (4, top + line_h * (n + 1)), cv2.FONT_HERSHEY_SIMPLEX, style.font,
                    (255, 255, 255), 1, cv2.LINE_AA)


def _open_writer(path: Path, fps: float, w: int, h: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OverlayError(f"{path}: OpenCV cannot write an mp4v video there; check the folder is writable and "
                           f"the name ends in .mp4")
    return writer
