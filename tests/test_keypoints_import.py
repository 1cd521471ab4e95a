"""`mocap keypoints import`: an external detector's per-video-frame output lined up with a recorded session's
FrameSets (a small real recording: two cameras, one dropping a frame, seqs that differ from set indices)."""

import argparse
import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from capture.protocol import frame_from_image
from capture.recorder import Recorder
from capture.sync import read_sync_csv
from mocap.keypoints_import import KeypointImportError, add_keypoints_parser, import_keypoints
from rigs.formats import load_rig
from rigs.keypoint_files import read_keypoints_npz, write_coco_results, write_openpose_folder

FPS = 30.0
PERIOD = round(1e9 / FPS)
T0 = 5_000_000_000
N = 8
SEQ0 = {"cam0": 0, "cam1": 100}
DROPPED = {"cam1": {3}}  # cam1 has no frame in set 3: 7 video frames


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    rig = load_rig("studio-4")
    rig = rig.subset(rig.names[:2])
    rig = rig.replace(cameras=tuple(c.resized(64, 48) for c in rig.cameras))
    folder = tmp_path_factory.mktemp("session") / "take"
    recorder = Recorder(folder, rig, segment_s=0.1)  # several segments per camera
    for i in range(N):
        for c, cam in enumerate(rig.names):
            if i in DROPPED.get(cam, ()):
                continue
            t = T0 + i * PERIOD + 1_000_000 * c
            recorder.add(frame_from_image(cam, SEQ0[cam] + i, t, np.full((48, 64, 3), 100, np.uint8)), t + 2_000_000)
    recorder.close()
    return folder


def detections(camera: str, instants: list[int]) -> np.ndarray:
    """One person per frame whose x encodes the instant it was filmed: x = 10 * instant + camera number."""
    kp = np.zeros((len(instants), 1, 25, 3), np.float32)
    kp[:, 0, :, 0] = 10 * np.asarray(instants, np.float32)[:, None] + int(camera[-1])
    kp[:, 0, :, 1] = 20
    kp[:, 0, :, 2] = 0.9
    return kp


def instants(camera: str) -> list[int]:
    return [i for i in range(N) if i not in DROPPED.get(camera, ())]


def openpose_dir(root: Path, first: int = 0) -> Path:
    for cam in SEQ0:
        frames = np.arange(len(instants(cam))) + first
        write_openpose_folder(root / f"{cam}_json", detections(cam, instants(cam)), frames, prefix=f"{cam}_")
    return root


def test_openpose_frames_land_on_their_framesets(session, tmp_path):
    done = import_keypoints(session, openpose_dir(tmp_path / "op"), "openpose", force=True)
    sets, set_t, _, _ = read_sync_csv(session / "sync.csv")
    assert len(sets) == N
    for cam in SEQ0:
        seq = read_keypoints_npz(session / "keypoints2d" / f"{cam}.npz")
        assert seq.skeleton == "body25" and seq.keypoints.shape == (N, 1, 25, 3)
        np.testing.assert_array_equal(seq.t_ns, set_t)
        np.testing.assert_array_equal(seq.frame_indices, sets)
        x = seq.keypoints[:, 0, 0, 0]
        for s in range(N):
            if s in DROPPED.get(cam, ()):
                assert np.isnan(x[s]) and seq.keypoints[s, 0, 0, 2] == 0  # no frame of cam1 in set 3
            else:
                assert x[s] == 10 * s + int(cam[-1])
    assert done.video_frames == {"cam0": 8, "cam1": 7} and done.detector_frames == {"cam0": 8, "cam1": 7}
    assert "FrameSets of sync.csv" in (session / "keypoints2d" / "IMPORTED.txt").read_text()


def test_counts_that_do_not_match_the_videos_are_refused(session, tmp_path):
    root = openpose_dir(tmp_path / "op")
    next(iter(sorted((root / "cam1_json").glob("*.json")))).unlink()
    with pytest.raises(KeypointImportError, match=r"^cam1: 6 keypoint frames but the session has 7 video frames: "
                                                  r"were they made from this session's videos\?"):
        import_keypoints(session, root, "openpose", force=True)
    shifted = openpose_dir(tmp_path / "one", first=1)  # a tool that counts from 1
    with pytest.raises(KeypointImportError, match=r"frame 8 is not a recorded frame.*--first-frame"):
        import_keypoints(session, shifted, "openpose", force=True)
    import_keypoints(session, shifted, "openpose", first_frame=1, force=True)


def test_existing_keypoints_are_kept_without_force(session, tmp_path):
    import_keypoints(session, openpose_dir(tmp_path / "op"), "openpose", force=True)
    with pytest.raises(KeypointImportError, match=r"keypoints2d already holds cam0.npz, cam1.npz; pass --force"):
        import_keypoints(session, openpose_dir(tmp_path / "op"), "openpose")


def test_coco_results_list_only_frames_with_people(session, tmp_path):
    root = tmp_path / "coco"
    for cam in SEQ0:
        inst = instants(cam)
        keep = [k for k in range(len(inst)) if k % 2 == 0]  # nobody detected in odd frames
        write_coco_results(root / f"{cam}.json", detections(cam, [inst[k] for k in keep]), np.array(keep))
    import_keypoints(session, root, "coco", skeleton="body25", force=True)
    seq = read_keypoints_npz(session / "keypoints2d" / "cam1.npz")
    x = seq.keypoints[:, 0, 0, 0]
    # cam1's video frames 0..6 are instants 0, 1, 2, 4, 5, 6, 7; frames 0, 2, 4, 6 have people
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(x)), [0, 2, 5, 7])
    np.testing.assert_array_equal(x[[0, 2, 5, 7]], [1, 21, 51, 71])
    write_coco_results(root / "cam1.json", detections("cam1", [7]), np.array([7]))  # cam1 has 7 frames: 0..6
    with pytest.raises(KeypointImportError, match="frame 7 is not a recorded frame"):
        import_keypoints(session, root, "coco", skeleton="body25", force=True)


def test_the_cli_verb(session, tmp_path):
    parser = argparse.ArgumentParser(prog="mocap")
    add_keypoints_parser(parser.add_subparsers(dest="verb"))
    root = openpose_dir(tmp_path / "op")
    args = parser.parse_args(["keypoints", "import", str(session), "--from", str(root), "--format", "openpose",
                              "--force"])
    out = io.StringIO()
    assert args.func(args, Console(file=out, width=150)) == 0
    text = out.getvalue()
    assert "cam1" in text and "body25" in text and "mocap reconstruct" in text
    with pytest.raises(KeypointImportError, match="no sync.csv"):
        import_keypoints(_without_sync(session, tmp_path), root, "openpose")


def _without_sync(session: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "nosync"
    shutil.copytree(session, copy)
    (copy / "sync.csv").unlink()
    return copy
