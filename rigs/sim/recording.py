"""Writing what the simulated detector saw, with the simulation's ground truth beside it.

Layout under ``out_dir``:
  ``<camera>/<camera>_<frame:06d>_keypoints.json``  OpenPose JSON per frame (fmt="openpose"), or
  ``keypoints2d/<camera>.npz``                      our keypoints2d npz (fmt="npz");
  ``truth/poses3d.npz``      ground truth in the poses3d layout, the detector's skeleton, track id = person;
  ``truth/smpl24.npz``       the same for the SMPL-24 joints, plus rotations, root, heights, landmarks;
  ``truth/detections.npz``   per camera-frame-slot truth: person index (-1 none), ghost, swapped;
  ``SIMULATED.txt``          what this is: seed, detector parameters, people, activities.
Every folder written gets a ``SIMULATED.txt``, and every npz a ``simulated`` entry, so nothing here is
mistaken for a recording of real people.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rigs.camera import Rig
from rigs.keypoint_files import write_keypoints_npz, write_openpose_folder
from rigs.poses3d_file import Poses3D, write_poses3d
from rigs.sim.detector import SimulatedDetections
from rigs.sim.performers import SimulatedPerformers, keypoints3d
from rigs.skeletons import get_skeleton

FORMATS = ("openpose", "npz")


def describe_simulation(rig: Rig, performers: SimulatedPerformers, detections: SimulatedDetections) -> str:
    """A plain-text account of a simulated keypoint recording: what it is and how to reproduce it."""
    lines = [
        "SIMULATED DATA: no real camera or person was recorded.",
        "2D keypoints are from the simulated detector (rigs.sim.detector) looking at simulated performers",
        "(rigs.sim.performers); truth/ holds the simulation's ground truth.",
        f"rig: {rig.name} ({len(rig)} cameras: {', '.join(rig.names)})",
        f"performers: {performers.num_people} people, {performers.num_frames} frames at "
        f"{performers.fps:g} fps, seed {performers.seed}; motion: {performers.source}",
        f"heights (m): {', '.join(f'{h:.3f}' for h in performers.heights)}",
        f"detector: {detections.name}, skeleton {detections.skeleton}",
        "detector parameters: "
        + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(detections.params).items()),
    ]
    for p, acts in enumerate(performers.activities):
        if acts:
            lines.append(
                f"person {p} activities: " + ", ".join(f"{a.kind} {a.start:.2f}-{a.end:.2f} s" for a in acts)
            )
    return "\n".join(lines) + "\n"


def _mark(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "SIMULATED.txt"
    path.write_text(text)
    return path


def write_simulated_keypoints(
    out_dir: str | Path,
    rig: Rig,
    performers: SimulatedPerformers,
    detections: SimulatedDetections,
    skeleton: str | None = None,
    fmt: str = "openpose",
) -> list[Path]:
    """Write the simulated detections per camera (OpenPose JSON folders or keypoints2d npz), the ground
    truth under ``truth/`` and a ``SIMULATED.txt``; returns the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown keypoint format {fmt!r}; use one of {', '.join(FORMATS)}")
    sk = get_skeleton(skeleton or detections.skeleton)
    if sk.name != detections.skeleton:
        raise ValueError(
            f"the detections are in {detections.skeleton!r}, not {sk.name!r}; simulate them "
            f"with skeleton={sk.name!r}"
        )
    if tuple(detections.camera_names) != rig.names:
        raise ValueError(f"the detections are for cameras {detections.camera_names}, the rig has {rig.names}")
    out = Path(out_dir)
    text = describe_simulation(rig, performers, detections)
    written = [_mark(out, text)]
    T = performers.num_frames
    frames = np.arange(T, dtype=np.int64)
    for c, cam in enumerate(rig.names):
        kp = detections.keypoints2d[c]
        if fmt == "openpose":
            written.append(_mark(out / cam, text))
            written += write_openpose_folder(out / cam, kp, frames, prefix=f"{cam}_", digits=6)
        else:
            written.append(
                write_keypoints_npz(out / "keypoints2d" / f"{cam}.npz", kp, performers.t_ns, sk.name)
            )
    if fmt == "npz":
        written.append(_mark(out / "keypoints2d", text))
    truth = out / "truth"
    written.append(_mark(truth, text))
    P = performers.num_people
    ids = np.broadcast_to(np.arange(P, dtype=np.int32), (T, P))
    marker = {"simulated": np.str_(text)}
    written.append(
        write_poses3d(
            truth / "poses3d.npz",
            Poses3D(
                keypoints3d(performers, sk),
                ids,
                performers.t_ns,
                performers.fps,
                sk.name,
                sk.joints,
                {**marker, "heights": performers.heights},
            ),
        )
    )
    written.append(
        write_poses3d(
            truth / "smpl24.npz",
            Poses3D(
                keypoints3d(performers, "smpl24"),
                ids,
                performers.t_ns,
                performers.fps,
                "smpl24",
                get_skeleton("smpl24").joints,
                {
                    **marker,
                    "heights": performers.heights,
                    "girths": performers.girths,
                    "local_rotations": performers.local_rotations.astype(np.float32),
                    "root_translation": performers.root_translation.astype(np.float32),
                    "landmarks": performers.landmarks.astype(np.float32),
                    "landmark_names": np.array(performers.landmark_names),
                    "seed": np.int64(performers.seed),
                },
            ),
        )
    )
    path = truth / "detections.npz"
    np.savez_compressed(
        path,
        truth_person=detections.truth_person,
        ghost=detections.ghost,
        swapped=detections.swapped,
        visible=detections.visible,
        occluded=detections.occluded,
        camera_names=np.array(detections.camera_names),
        t_ns=detections.t_ns,
        **marker,
    )
    written.append(path)
    return written
