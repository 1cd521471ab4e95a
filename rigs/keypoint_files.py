"""2D keypoint files: OpenPose JSON folders, COCO results JSON, and our ``keypoints2d/<camera>.npz``.

``read_keypoints_dir`` reads one such file or folder per camera of a rig from a folder holding them all,
matching entries to camera names loosely (``cam01_json`` is camera ``cam_01``).

Every reader returns a ``Keypoints2DSequence``: keypoints ``float32 [T, P, J, 3]`` = (x, y, score),
people padded to the most seen in any frame, missing joints and empty slots as NaN coordinates with
score 0 (the formats' own 0, 0, 0 becomes that on reading and goes back to 0, 0, 0 on writing).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigs.skeletons import SkeletonError, get_skeleton, infer_skeleton


class KeypointFileError(ValueError):
    """A keypoint file or folder that cannot be read, naming the file, the problem and the fix."""


@dataclass(frozen=True, eq=False)
class Keypoints2DSequence:
    """2D keypoints of one camera over time: [T, P, J, 3], the frame number of each row, the skeleton."""

    keypoints: np.ndarray            # float32 [T, P, J, 3]
    frame_indices: np.ndarray        # int64 [T]
    skeleton: str                    # canonical skeleton name (rigs.skeletons)
    t_ns: np.ndarray | None = None   # int64 [T] when known

    def __post_init__(self) -> None:
        kp = np.array(self.keypoints, dtype=np.float32)  # a copy: freezing it must not freeze the caller's
        if kp.ndim != 4 or kp.shape[-1] != 3:
            raise KeypointFileError(f"keypoints must be [T, P, J, 3], got shape {kp.shape}")
        frames = np.array(self.frame_indices, dtype=np.int64)
        if frames.shape != kp.shape[:1]:
            raise KeypointFileError(f"frame_indices must be [T={kp.shape[0]}], got shape {frames.shape}")
        t_ns = None if self.t_ns is None else np.array(self.t_ns, dtype=np.int64)
        if t_ns is not None and t_ns.shape != kp.shape[:1]:
            raise KeypointFileError(f"t_ns must be [T={kp.shape[0]}], got shape {t_ns.shape}")
        skeleton = infer_skeleton(kp.shape[2], self.skeleton).name
        for name, value in (("keypoints", kp), ("frame_indices", frames), ("t_ns", t_ns)):
            if value is not None:
                value.setflags(write=False)
                object.__setattr__(self, name, value)
        object.__setattr__(self, "skeleton", skeleton)

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]


_DIGITS = re.compile(r"\d+")


def frame_number(file_name: str) -> int:
    """The frame number in a file name: its last run of digits (``cam01.0042.json`` -> 42)."""
    runs = _DIGITS.findall(Path(file_name).name)
    if not runs:
        raise KeypointFileError(f"{file_name}: no frame number in the file name; name frames like "
                                f"'<name>_000012_keypoints.json' or '<name>.0012.json'")
    return int(runs[-1])


def _missing_to_nan(kp: np.ndarray) -> np.ndarray:
    """Joints with score <= 0 or non-finite values -> NaN coordinates and score 0 (in place, returned)."""
    missing = ~(kp[..., 2] > 0) | ~np.isfinite(kp).all(axis=-1)
    kp[missing, :2] = np.nan
    kp[missing, 2] = 0
    return kp


def _nan_to_zeros(kp: np.ndarray) -> np.ndarray:
    """Missing joints -> 0, 0, 0, as OpenPose and COCO write them (a copy)."""
    out = np.array(kp, dtype=np.float32)
    missing = ~(out[..., 2] > 0) | ~np.isfinite(out).all(axis=-1)
    out[missing] = 0
    return out


def _skeleton_for(num_joints: int | None, skeleton: str | None, where: Path) -> tuple[str, int]:
    """(canonical name, joint count) from the joints seen (None: no person anywhere) and the user's name."""
    if num_joints is None and skeleton is None:
        raise KeypointFileError(f"{where}: no person anywhere, so the number of joints is unknown; "
                                f"pass skeleton=NAME (--skeleton NAME)")
    try:
        found = get_skeleton(skeleton) if num_joints is None else infer_skeleton(num_joints, skeleton)
    except SkeletonError as err:
        raise KeypointFileError(f"{where}: {err}") from None
    return found.name, found.num_joints


def _floats(values: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back to the same float32."""
    return [float(v) for v in values.astype(np.float32).astype(str)]


# ---------------------------------------------------------------- OpenPose JSON


def _read_openpose_people(path: Path) -> list[np.ndarray]:
    """The ``pose_keypoints_2d`` of every person in one OpenPose JSON file, each [J, 3]."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KeypointFileError(f"{path}: not a readable OpenPose JSON file ({err}); re-export the frame "
                                f"or remove the file") from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        raise KeypointFileError(f"{path}: no 'people' list; this is not an OpenPose keypoints file")
    out = []
    for i, person in enumerate(people):
        values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        try:
            arr = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            arr = np.zeros((0, 0))
        if arr.ndim != 1 or arr.size % 3 or arr.size == 0:
            raise KeypointFileError(f"{path}: person {i} has no 'pose_keypoints_2d' list of x, y, score "
                                    f"triplets; the file is damaged or not an OpenPose body file")
        out.append(arr.reshape(-1, 3))
    return out


def read_openpose_folder(folder: str | Path, skeleton: str | None = None) -> Keypoints2DSequence:
    """All OpenPose JSON frames of one camera folder, sorted by the frame number in the file names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KeypointFileError(f"{folder}: not a folder; pass the folder of one camera's "
                                f"OpenPose JSON files")
    files = list(folder.glob("*.json"))
    if not files:
        raise KeypointFileError(f"{folder}: no .json files; pass the folder OpenPose wrote (--write_json)")
    numbers = [frame_number(f.name) for f in files]
    order = np.argsort(numbers, kind="stable")
    files, numbers = [files[i] for i in order], [numbers[i] for i in order]
    dup = [n for a, n in zip(numbers, numbers[1:], strict=False) if a == n]
    if dup:
        raise KeypointFileError(f"{folder}: several files have frame number {dup[0]}; keep one camera's "
                                f"frames per folder")
    people = [_read_openpose_people(f) for f in files]
    counts = {p.shape[0] for frame in people for p in frame}
    if len(counts) > 1:
        bad = next(f for f, frame in zip(files, people, strict=True)
                   for p in frame if p.shape[0] != min(counts))
        raise KeypointFileError(f"{bad}: people with {sorted(counts)} joints in one folder; the folder "
                                f"mixes skeleton formats")
    name, num_joints = _skeleton_for(counts.pop() if counts else None, skeleton, folder)
    max_people = max(len(frame) for frame in people)
    kp = np.zeros((len(files), max_people, num_joints, 3), dtype=np.float32)
    for t, frame in enumerate(people):
        if frame:
            kp[t, : len(frame)] = np.stack(frame)
    return Keypoints2DSequence(_missing_to_nan(kp), np.asarray(numbers, dtype=np.int64), name)


def write_openpose_folder(folder: str | Path, keypoints: np.ndarray, frame_indices: np.ndarray | None = None,
                          prefix: str = "", digits: int = 12, suffix: str = "_keypoints") -> list[Path]:
    """One OpenPose JSON per frame, named ``{prefix}{frame:0{digits}d}{suffix}.json``; returns the paths.

    Missing joints are written as 0, 0, 0; trailing empty person slots are left out of each frame.
    """
    folder = Path(folder)
    kp = np.asarray(keypoints)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise KeypointFileError(f"write_openpose_folder: keypoints must be [T, P, J, 3], got {kp.shape}")
    frames = np.arange(kp.shape[0]) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
    if frames.shape != kp.shape[:1]:
        raise KeypointFileError(f"write_openpose_folder: {frames.shape[0]} frame indices for "
                                f"{kp.shape[0]} frames")
    if _DIGITS.search(suffix):
        raise KeypointFileError(f"write_openpose_folder: suffix {suffix!r} has digits, so the frame number "
                                f"could not be read back from the file names")
    folder.mkdir(parents=True, exist_ok=True)
    zeros = _nan_to_zeros(kp)
    present = zeros[..., 2].max(axis=-1, initial=0) > 0            # [T, P]
    paths = []
    for t, frame in enumerate(frames):
        n = int(np.flatnonzero(present[t])[-1]) + 1 if present[t].any() else 0
        people = [{"person_id": [-1], "pose_keypoints_2d": _floats(zeros[t, p].ravel()),
                   "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
                   "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
                   "hand_right_keypoints_3d": []} for p in range(n)]
        path = folder / f"{prefix}{int(frame):0{digits}d}{suffix}.json"
        path.write_text(json.dumps({"version": 1.3, "people": people}))
        paths.append(path)
    return paths


# ---------------------------------------------------------------- COCO results JSON


def read_coco_results(path: str | Path, skeleton: str | None = None) -> Keypoints2DSequence:
    """COCO keypoint results (a list of detections) or a COCO dict with ``annotations`` and ``images``.

    Frames are the image ids, or the last digit run of each image's ``file_name`` when the file lists
    its ``images``; people keep the file's order within a frame. Only ``category_id`` 1 (person) is read.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KeypointFileError(f"{path}: not a readable COCO JSON file ({err})") from None
    images = None
    if isinstance(doc, dict):
        if not isinstance(doc.get("annotations"), list):
            raise KeypointFileError(f"{path}: a JSON object without an 'annotations' list; expected COCO "
                                    f"results (a list of detections) or a COCO dataset file")
        images, doc = doc.get("images"), doc["annotations"]
    if not isinstance(doc, list):
        raise KeypointFileError(f"{path}: expected a list of detections with image_id and keypoints")
    id_to_frame: dict[int, int] = {}
    if images is not None:
        try:
            id_to_frame = {int(im["id"]): frame_number(im["file_name"]) for im in images}
        except (KeyError, TypeError, ValueError) as err:
            raise KeypointFileError(f"{path}: 'images' entries need 'id' and 'file_name' ({err})") from None
    by_frame: dict[int, list[np.ndarray]] = {f: [] for f in id_to_frame.values()}
    for i, det in enumerate(doc):
        try:
            if int(det.get("category_id", 1)) != 1:
                continue
            image_id = int(det["image_id"])
            arr = np.asarray(det["keypoints"], dtype=np.float32)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise KeypointFileError(f"{path}: detection {i} lacks a numeric image_id or keypoints "
                                    f"({err})") from None
        if arr.ndim != 1 or arr.size % 3 or arr.size == 0:
            raise KeypointFileError(f"{path}: detection {i} keypoints are not x, y, score triplets")
        if id_to_frame and image_id not in id_to_frame:
            raise KeypointFileError(f"{path}: detection {i} refers to image_id {image_id}, "
                                    f"which 'images' lacks")
        by_frame.setdefault(id_to_frame.get(image_id, image_id), []).append(arr.reshape(-1, 3))
    counts = {p.shape[0] for ps in by_frame.values() for p in ps}
    if len(counts) > 1:
        raise KeypointFileError(f"{path}: detections with {sorted(counts)} keypoints; one file, one skeleton")
    name, num_joints = _skeleton_for(counts.pop() if counts else None, skeleton, path)
    frames = np.array(sorted(by_frame), dtype=np.int64)
    max_people = max((len(ps) for ps in by_frame.values()), default=0)
    kp = np.zeros((len(frames), max_people, num_joints, 3), dtype=np.float32)
    for t, frame in enumerate(frames):
        ps = by_frame[int(frame)]
        if ps:
            kp[t, : len(ps)] = np.stack(ps)
    return Keypoints2DSequence(_missing_to_nan(kp), frames, name)


def write_coco_results(path: str | Path, keypoints: np.ndarray,
                       frame_indices: np.ndarray | None = None) -> Path:
    """COCO keypoint results: one detection per non-empty person slot, ``image_id`` = frame number,
    ``score`` = mean score of the detected joints. Empty slots are left out."""
    path = Path(path)
    kp = np.asarray(keypoints)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise KeypointFileError(f"write_coco_results: keypoints must be [T, P, J, 3], got {kp.shape}")
    frames = np.arange(kp.shape[0]) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
    if frames.shape != kp.shape[:1]:
        raise KeypointFileError(f"write_coco_results: {frames.shape[0]} frame indices for "
                                f"{kp.shape[0]} frames")
    zeros = _nan_to_zeros(kp)
    scores = zeros[..., 2]
    detected = scores > 0
    mean = np.divide(scores.sum(-1), detected.sum(-1), out=np.zeros(scores.shape[:2]), where=detected.any(-1))
    results = [{"image_id": int(frames[t]), "category_id": 1, "keypoints": _floats(zeros[t, p].ravel()),
                "score": float(np.float32(mean[t, p]))}
               for t, p in zip(*np.nonzero(detected.any(-1)), strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


# ---------------------------------------------------------------- our npz


def read_keypoints_npz(path: str | Path) -> Keypoints2DSequence:
    """A ``keypoints2d/<camera>.npz``: ``keypoints`` [T, P, J, 3], ``t_ns`` [T], ``skeleton``,
    optionally ``frame_indices`` [T] (default 0..T-1)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise KeypointFileError(f"{path}: not a readable keypoints npz ({err})") from None
    missing = [k for k in ("keypoints", "t_ns", "skeleton") if k not in data]
    if missing:
        raise KeypointFileError(f"{path}: missing {', '.join(missing)}; a keypoints2d npz holds keypoints, "
                                f"t_ns and skeleton (write it with write_keypoints_npz)")
    kp = data["keypoints"]
    frames = data.get("frame_indices")
    if frames is None and kp.ndim >= 1:
        frames = np.arange(kp.shape[0])
    try:
        return Keypoints2DSequence(kp, frames, str(data["skeleton"]), data["t_ns"])
    except (KeypointFileError, SkeletonError) as err:
        raise KeypointFileError(f"{path}: {err}") from None


def write_keypoints_npz(path: str | Path, keypoints: np.ndarray, t_ns: np.ndarray, skeleton: str,
                        frame_indices: np.ndarray | None = None) -> Path:
    """Write a ``keypoints2d/<camera>.npz`` (validated first, skeleton stored by canonical name)."""
    path = Path(path)
    frames = np.arange(np.shape(keypoints)[0]) if frame_indices is None else frame_indices
    seq = Keypoints2DSequence(keypoints, frames, skeleton, t_ns)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"keypoints": seq.keypoints, "t_ns": seq.t_ns, "skeleton": np.array(seq.skeleton)}
    if frame_indices is not None:
        arrays["frame_indices"] = seq.frame_indices
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


# ---------------------------------------------------------------- one folder, every camera

KEYPOINT_FORMATS = ("openpose", "npz", "coco")
_LAYOUTS = {
    "openpose": "one sub-folder of OpenPose JSON files per camera, named after it ('<camera>/' or '<camera>_json/')",
    "npz": "'keypoints2d/<camera>.npz' or '<camera>.npz' per camera",
    "coco": "one COCO results file '<camera>.json' per camera",
}


def normalized_camera_name(name: str) -> str:
    """A camera or file name reduced for matching: lowercase, without '_json' and non-alphanumerics
    (``cam01_json``, ``Cam_01`` and ``cam-01`` are all ``cam01``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("_json", ""))


def _entries(folder: Path, fmt: str) -> dict[str, Path]:
    """The per-camera entries of a keypoints folder in format fmt, by their stem (folder or file name)."""
    if fmt == "openpose":
        return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and any(p.glob("*.json"))}
    if fmt == "npz":
        inner = folder / "keypoints2d"
        where = inner if inner.is_dir() and any(inner.glob("*.npz")) else folder
        return {p.stem: p for p in sorted(where.glob("*.npz"))}
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


def _match_cameras(entries: dict[str, Path], camera_names: Sequence[str], folder: Path,
                   fmt: str) -> dict[str, Path]:
    """Camera name -> entry, by normalised name, else by sorted order when the counts agree (warned)."""
    by_norm: dict[str, list[str]] = {}
    for stem in entries:
        by_norm.setdefault(normalized_camera_name(stem), []).append(stem)
    found = ", ".join(entries) or "nothing"
    matched = {}
    for cam in camera_names:
        stems = by_norm.get(normalized_camera_name(cam), [])
        if len(stems) > 1:
            raise KeypointFileError(f"{folder}: {', '.join(stems)} all match camera {cam!r}; keep one {fmt} entry "
                                    f"per camera ({_LAYOUTS[fmt]})")
        if stems:
            matched[cam] = entries[stems[0]]
    if len(matched) == len(camera_names):
        return matched
    if len(entries) == len(camera_names) and camera_names:
        pairs = dict(zip(sorted(camera_names), sorted(entries), strict=True))
        warnings.warn(f"{folder}: the {fmt} entries ({found}) do not match the rig's camera names "
                      f"({', '.join(camera_names)}); matched them in sorted order: "
                      + ", ".join(f"{c} <- {e}" for c, e in pairs.items()), stacklevel=3)
        return {cam: entries[pairs[cam]] for cam in camera_names}
    lacking = [c for c in camera_names if c not in matched]
    raise KeypointFileError(f"{folder}: no {fmt} keypoints for camera(s) {', '.join(lacking)}; found {found}; "
                            f"expected {_LAYOUTS[fmt]}")


def read_keypoints_dir(folder: str | Path, camera_names: Sequence[str], fmt: str = "openpose",
                       skeleton: str | None = None) -> dict[str, Keypoints2DSequence]:
    """Every camera's 2D keypoints from one folder (layouts: ``_LAYOUTS``), keyed by the rig's camera names.

    Entries match cameras by ``normalized_camera_name``; when none match but there are as many entries as
    cameras, they are matched in sorted order with a warning. ``skeleton`` names the layout where the
    joint count alone does not (BODY_25B has 25 points like BODY_25).
    """
    folder = Path(folder)
    if fmt not in KEYPOINT_FORMATS:
        raise KeypointFileError(f"unknown keypoint format {fmt!r}; use one of {', '.join(KEYPOINT_FORMATS)}")
    if not folder.is_dir():
        raise KeypointFileError(f"{folder}: not a folder; pass the folder holding {_LAYOUTS[fmt]}")
    entries = _entries(folder, fmt)
    matched = _match_cameras(entries, list(camera_names), folder, fmt)
    out = {}
    for cam, path in matched.items():
        if fmt == "openpose":
            out[cam] = read_openpose_folder(path, skeleton)
        elif fmt == "coco":
            out[cam] = read_coco_results(path, skeleton)
        else:
            seq = read_keypoints_npz(path)
            if skeleton is not None and get_skeleton(skeleton).name != seq.skeleton:
                raise KeypointFileError(f"{path}: holds {seq.skeleton} keypoints, not {get_skeleton(skeleton).name}; "
                                        f"drop --skeleton or name the skeleton the file was written with")
            out[cam] = seq
    return out


def stack_cameras(seqs: Sequence[Keypoints2DSequence], fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Per-camera ``Keypoints2DSequence`` (rig order) -> keypoints [C, T, P, J, 3] over the union of their frame
    numbers (a camera without a frame reports nobody there), frame numbers [T], t_ns [T] (the files' own
    times when every camera has them, else frame / fps) and the skeleton."""
    skeletons = {s.skeleton for s in seqs}
    if len(skeletons) != 1:
        raise KeypointFileError(f"the cameras' keypoints are in different layouts "
                                      f"({', '.join(sorted(skeletons))}); give every camera the same skeleton")
    skeleton = skeletons.pop()
    frames = np.unique(np.concatenate([s.frame_indices for s in seqs]))
    C, T = len(seqs), len(frames)
    P, J = max(s.keypoints.shape[1] for s in seqs), seqs[0].keypoints.shape[2]
    kp = np.full((C, T, max(P, 1), J, 3), np.nan, np.float32)
    kp[..., 2] = 0.0
    with_times = all(s.t_ns is not None for s in seqs)
    t_ns = np.full(T, np.iinfo(np.int64).min, np.int64)
    for c, s in enumerate(seqs):
        if len(np.unique(s.frame_indices)) != len(s.frame_indices):
            raise KeypointFileError(f"camera {c}: frame numbers repeat in its keypoint files; keep one file "
                                          f"per frame")
        rows = np.searchsorted(frames, s.frame_indices)
        kp[c, rows, : s.keypoints.shape[1]] = s.keypoints
        if with_times:
            t_ns[rows] = np.maximum(t_ns[rows], s.t_ns)
    if not with_times:
        t_ns = np.round(frames * (1e9 / fps)).astype(np.int64)
    if T > 1 and not (np.diff(t_ns) > 0).all():
        raise KeypointFileError("the keypoint files' times do not increase with their frame numbers; "
                                      "rewrite them with increasing t_ns")
    return kp, frames.astype(np.int64), t_ns, skeleton
