"""`mocap keypoints import SESSION --from DIR --format openpose|coco`: 2D keypoints made by any external detector
(OpenPose, RTMPose, MMPose, ...) on a recorded session's videos, brought into its ``keypoints2d/`` aligned to
its FrameSets, so a real recording can be reconstructed today (``mocap reconstruct SESSION``).

Input: DIR holds one entry per camera, matched to the session's cameras by name
(``rigs.keypoint_files.read_keypoints_dir``): an OpenPose JSON folder per camera, or a COCO results file per
camera. A detector numbers the frames of the video it was given: frame k is the k-th frame of the camera's
recording, counting over all its segments in recording order (the order ``SessionVideo.iter_frames`` yields
them, i.e. the rows of ``video/<camera>.csv``), from 0 (``--first-frame 1`` for tools that count from 1).
So frame k has the seq and t_ns of the k-th row of ``video/<camera>.csv``.

Checks: a frame number beyond the camera's recorded frames is an error; an OpenPose folder (one JSON per frame,
people or not) must have exactly one file per recorded frame, or the keypoints were not made from this
session's videos. COCO results list only frames with detections, so missing frames there mean nobody seen.

Output, one ``keypoints2d/<camera>.npz`` per camera (``rigs.keypoint_files.write_keypoints_npz``):
``keypoints`` float32 [S, P, J, 3], one row per FrameSet of ``sync.csv`` (S sets; row s holds the detections
of the camera's frame in set s; a camera missing from a set, or a frame without detections, gets an empty row:
NaN coordinates, score 0); P = the most people any camera saw in a frame (the same in every file);
``t_ns`` [S] the FrameSet times (the same in every file); ``frame_indices`` [S] the set indices; ``skeleton``.
``keypoints2d/IMPORTED.txt`` says where they came from. Existing ``keypoints2d/`` files are kept unless
``--force``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from capture.session_reader import SessionError, SessionVideo
from rigs.keypoint_files import Keypoints2DSequence, read_keypoints_dir, write_keypoints_npz

IMPORT_FORMATS = ("openpose", "coco")


class KeypointImportError(ValueError):
    """Keypoints that do not fit the session: counts, frame numbers, layouts; says what to check."""


@dataclass(frozen=True, eq=False)
class ImportedKeypoints:
    """The keypoints of every camera on the session's FrameSets, as written to keypoints2d/."""

    keypoints: dict[str, np.ndarray]  # camera -> float32 [S, P, J, 3]
    set_index: np.ndarray  # int64 [S]
    t_ns: np.ndarray  # int64 [S]
    skeleton: str
    detector_frames: dict[str, int]  # camera -> keypoint frames read
    video_frames: dict[str, int]  # camera -> recorded frames
    paths: tuple[Path, ...]


def video_order(video: SessionVideo, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """(seq [N], t_ns [N]) of the camera's recorded frames in recording order: what a detector numbers 0..N-1."""
    ix = video.index(camera)
    order = np.lexsort((ix.frame_in_segment, ix.segment))
    return ix.seq[order], ix.t_ns[order]


def frames_to_sets(frame_seq: np.ndarray, frame_t: np.ndarray, set_seq: np.ndarray, set_t: np.ndarray) -> np.ndarray:
    """For each FrameSet, the camera's video frame in it: int64 [S] (-1: the camera has no frame in the set).

    set_seq [S] is the camera's seq per set (-1 none). A seq recorded twice (a camera restarted) goes to the
    frame nearest the set's time."""
    order = np.lexsort((frame_t, frame_seq))
    seqs = frame_seq[order]
    lo = np.searchsorted(seqs, set_seq, "left")
    hi = np.searchsorted(seqs, set_seq, "right")
    found = (set_seq >= 0) & (hi > lo)
    out = np.where(found, order[np.minimum(lo, len(order) - 1)] if len(order) else -1, -1)
    for s in np.flatnonzero(found & (hi - lo > 1)):  # rare: repeated seqs
        candidates = order[lo[s]:hi[s]]
        out[s] = candidates[np.argmin(np.abs(frame_t[candidates] - set_t[s]))]
    return out.astype(np.int64)


def check_frames(camera: str, seq: Keypoints2DSequence, n_video: int, first_frame: int, every_frame: bool
                 ) -> np.ndarray:
    """The 0-based video frame of each keypoint row [T]; KeypointImportError when they cannot be this camera's."""
    k = seq.frame_indices - first_frame
    where = f"{camera}: {seq.num_frames} keypoint frames but the session has {n_video} video frames"
    if every_frame and seq.num_frames != n_video:
        raise KeypointImportError(f"{where}: were they made from this session's videos? (one file per frame "
                                  f"of video/{camera}/, all segments in order)")
    if len(k) and (k.min() < 0 or k.max() >= n_video):
        bad = int(k.min() if k.min() < 0 else k.max()) + first_frame
        raise KeypointImportError(f"{where}, numbered {int(seq.frame_indices.min())}..{int(seq.frame_indices.max())}"
                                  f" (frame {bad} is not a recorded frame): were they made from this session's "
                                  f"videos? (frames count from {first_frame}; see --first-frame)")
    return k


def align_camera(seq: Keypoints2DSequence, k: np.ndarray, frame_of_set: np.ndarray, people: int) -> np.ndarray:
    """Keypoint rows at video frames k [T] -> one row per FrameSet [S, people, J, 3] (empty where none)."""
    J = seq.keypoints.shape[2]
    out = np.full((len(frame_of_set), people, J, 3), np.nan, np.float32)
    out[..., 2] = 0
    row_of_frame = np.full(int(max(frame_of_set.max(initial=-1), k.max(initial=-1))) + 2, -1, np.int64)
    row_of_frame[k] = np.arange(len(k))
    rows = row_of_frame[frame_of_set]  # frame -1 reads the last (always -1) entry
    has = rows >= 0
    out[has, : seq.keypoints.shape[1]] = seq.keypoints[rows[has]]
    return out


def import_keypoints(session: str | Path, source: str | Path, fmt: str = "openpose", skeleton: str | None = None,
                     *, first_frame: int = 0, force: bool = False) -> ImportedKeypoints:
    """Read DIR's keypoints for every camera of the session, align them to its FrameSets, write keypoints2d/."""
    folder = Path(session)
    if fmt not in IMPORT_FORMATS:
        raise KeypointImportError(f"--format {fmt}: use one of {', '.join(IMPORT_FORMATS)}")
    with SessionVideo(folder) as video:
        try:
            sets, set_t, set_seqs, sync_cams = video.sync()
        except SessionError:
            raise KeypointImportError(f"{folder}: no sync.csv, so there are no FrameSets to align keypoints to; "
                                      f"give a session recorded with `mocap record`") from None
        cameras = video.cameras
        out_dir = folder / "keypoints2d"
        existing = [c for c in cameras if (out_dir / f"{c}.npz").exists()]
        if existing and not force:
            raise KeypointImportError(f"{out_dir} already holds {', '.join(f'{c}.npz' for c in existing)}; pass "
                                      f"--force to replace them")
        seqs = read_keypoints_dir(source, cameras, fmt, skeleton)
        layouts = {s.skeleton for s in seqs.values()}
        if len(layouts) > 1:
            raise KeypointImportError(f"{source}: the cameras' keypoints are in different layouts "
                                      f"({', '.join(sorted(layouts))}); export every camera with one skeleton")
        people = max(1, max(s.keypoints.shape[1] for s in seqs.values()))
        result, n_video = {}, {}
        for cam in cameras:
            frame_seq, frame_t = video_order(video, cam)
            n_video[cam] = len(frame_seq)
            k = check_frames(cam, seqs[cam], len(frame_seq), first_frame, every_frame=fmt == "openpose")
            column = sync_cams.index(cam) if cam in sync_cams else None
            set_seq = set_seqs[:, column] if column is not None else np.full(len(sets), -1, np.int64)
            result[cam] = align_camera(seqs[cam], k, frames_to_sets(frame_seq, frame_t, set_seq, set_t), people)
    name = layouts.pop()
    paths = tuple(write_keypoints_npz(out_dir / f"{cam}.npz", kp, set_t, name, sets) for cam, kp in result.items())
    (out_dir / "IMPORTED.txt").write_text(
        f"2D keypoints imported from {Path(source).resolve()} ({fmt}, {name}) on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} by `mocap keypoints import`.\n"
        f"Rows are the FrameSets of sync.csv ({len(sets)}); t_ns are the set times, frame_indices the set "
        f"indices. Detector frame k = the k-th recorded frame of the camera (from {first_frame}).\n")
    return ImportedKeypoints(result, sets.astype(np.int64), set_t.astype(np.int64), name,
                             {c: seqs[c].num_frames for c in cameras}, n_video, paths)


def add_keypoints_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``keypoints import`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    kp = verbs.add_parser("keypoints", help="2D keypoints of a session: import an external detector's output")
    acts = kp.add_subparsers(dest="keypoints_verb", metavar="ACTION", required=True)
    p = acts.add_parser("import", help="bring OpenPose/COCO keypoints made on a session's videos into its "
                                       "keypoints2d/, aligned to its FrameSets",
                        description="Import 2D keypoints that a detector (OpenPose, RTMPose, MMPose, ...) made on "
                                    "this session's recorded videos into SESSION/keypoints2d/, one row per "
                                    "FrameSet, so `mocap reconstruct SESSION` can run.")
    p.add_argument("session", help="the recorded session folder (mocap record --out)")
    p.add_argument("--from", dest="source", required=True,
                   help="folder with one entry per camera: OpenPose JSON folders or COCO results files")
    p.add_argument("--format", dest="fmt", choices=IMPORT_FORMATS, default="openpose",
                   help="openpose (a JSON folder per camera) or coco (a results .json per camera)")
    p.add_argument("--skeleton", help="keypoint layout when the count is ambiguous (e.g. body25b)")
    p.add_argument("--first-frame", type=int, default=0,
                   help="the number the detector gave the first recorded frame (default 0)")
    p.add_argument("--force", action="store_true", help="replace keypoints2d/ files already there")
    p.set_defaults(func=run_keypoints_import)
    return p


def run_keypoints_import(args: argparse.Namespace, console: Console) -> int:
    """``mocap keypoints import``: import, then print a table per camera; exit code 0."""
    done = import_keypoints(args.session, args.source, args.fmt, args.skeleton, first_frame=args.first_frame,
                            force=args.force)
    table = Table(title=f"{args.session}/keypoints2d: {done.skeleton}, {len(done.set_index)} FrameSets")
    for col in ("camera", "keypoint frames", "video frames", "sets with people", "people slots"):
        table.add_column(col, justify="left" if col == "camera" else "right")
    for cam, kp in done.keypoints.items():
        with_people = int((kp[..., 2] > 0).any((1, 2)).sum())
        table.add_row(cam, str(done.detector_frames[cam]), str(done.video_frames[cam]), str(with_people),
                      str(kp.shape[1]))
    console.print(table)
    console.print(f"wrote {len(done.paths)} files under {Path(args.session) / 'keypoints2d'}; next: "
                  f"mocap reconstruct {args.session}", markup=False)
    return 0
