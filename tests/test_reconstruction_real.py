"""The reconstruction pipeline on real recordings, against what their authors computed from the same 2D:
Pose2Sim's BODY_25B JSON (a background person in two views) against Pose2Sim's reference TRC, caliscope's
MediaPipe landmarks against caliscope's triangulation, and mmpose's Shelf detections (people found,
reprojection). Figures are printed for the record."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from reconstruction.metrics import evaluate
from reconstruction.pipeline import FrameReconstructor, ReconstructionParams, reconstruct
from rigs.caliscope_csv import caliscope_keypoints, holistic_to_mediapipe33, read_caliscope_xy, read_caliscope_xyz
from rigs.formats import load_rig
from rigs.keypoint_files import read_keypoints_dir, stack_cameras
from rigs.poses3d_file import Poses3D
from rigs.skeletons import get_skeleton
from rigs.trc_file import read_trc, trc_to_poses3d
from rigs.triangulate import reprojection_errors

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSE2SIM = SHARED / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session"
TRIAL = POSE2SIM / "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
CALISCOPE = SHARED / "mprib+caliscope/tests/sessions/4_cam_recording"
SHELF = SHARED / "open-mmlab+mmpose/tests/data/shelf"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent: the real recordings are there")


def _main_track(poses3d: Poses3D) -> np.ndarray:
    """[T, J, 4] of the track seen in most frames."""
    ids, counts = np.unique(poses3d.track_ids[poses3d.track_ids >= 0], return_counts=True)
    main = ids[np.argmax(counts)]
    out = np.full(poses3d.poses.shape[:1] + poses3d.poses.shape[2:], np.nan, np.float32)
    out[..., 3] = 0
    frames, slots = np.nonzero(poses3d.track_ids == main)
    out[frames] = poses3d.poses[frames, slots]
    return out


@needs_shared
def test_pose2sim_balancing_trial_matches_pose2sim_reference(capsys):
    rig = load_rig(POSE2SIM / "S00_Calibration/Calib_qualisys.toml")
    seqs = read_keypoints_dir(TRIAL / "pose", rig.names, "openpose", "body25b")
    kp, frames, t_ns, skeleton = stack_cameras([seqs[n] for n in rig.names], 60.0)
    # this calibration reprojects the subject at 11-22 px: associate with a wider band
    params = ReconstructionParams(association_px=50.0, threshold_px=30.0)
    rec = reconstruct(rig, kp, t_ns, skeleton, 60.0, filter="none", params=params)
    subject = _main_track(rec.poses3d)
    reference = trc_to_poses3d(read_trc(TRIAL / "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc"))
    ours = Poses3D(subject[:, None], np.zeros((len(frames), 1), np.int32), reference.t_ns[: len(frames)], 60.0,
                   skeleton, get_skeleton(skeleton).joints)
    result = evaluate(ours, reference, frames="index")
    # the subject is one track through the 100 frames; the background person never joins it
    assert np.isfinite(subject[..., 0]).any(axis=-1).mean() > 0.95
    errors = result.errors[np.isfinite(result.errors)]
    median_cm = 100 * float(np.median(errors))
    # our reprojection against the reference's, on the same detections (the subject's views)
    ref_world = np.full((len(frames), len(ours.joint_names), 4), np.nan, np.float32)
    ref_world[..., 3] = 0
    ref_names = list(reference.joint_names)
    for j, name in enumerate(ours.joint_names):
        if name in ref_names:
            ref_world[:, j] = reference.poses[: len(frames), 0, ref_names.index(name)]
    subject_2d = np.take_along_axis(kp, _subject_slots(rig, kp, subject)[..., None, None, None], axis=2)[:, :, 0]
    ours_px = np.nanmedian(reprojection_errors(rig, subject, subject_2d), axis=(1, 2))
    ref_px = np.nanmedian(reprojection_errors(rig, ref_world, subject_2d), axis=(1, 2))
    with capsys.disabled():
        print(f"\nPose2Sim BalancingTrial: median {median_cm:.2f} cm from Pose2Sim's TRC over "
              f"{errors.size} joint-frames; median reprojection per camera ours "
              + ", ".join(f"{v:.1f}" for v in ours_px) + " px, Pose2Sim's " + ", ".join(f"{v:.1f}" for v in ref_px)
              + " px")
    assert median_cm < 2.0


def _subject_slots(rig, kp: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """[C, T] slot of the detection nearest the subject's projection in each view."""
    proj = rig.project(subject[..., :3])  # [C, T, J, 2]
    dist = np.linalg.norm(kp[..., :2] - proj[:, :, None], axis=-1)  # [C, T, P, J]
    seen = np.isfinite(dist)
    d = np.where(seen, dist, 0).sum(-1) / np.maximum(seen.sum(-1), 1)  # [C, T, P] mean over joints seen
    d[~seen.any(-1)] = np.inf
    return np.argmin(d, axis=-1)


@needs_shared
def test_caliscope_holistic_matches_caliscope_triangulation(capsys):
    rig = load_rig(CALISCOPE / "camera_array.toml")
    folder = CALISCOPE / "recordings/recording_1/HOLISTIC"
    seqs = caliscope_keypoints(read_caliscope_xy(folder / "xy_HOLISTIC.csv"))
    kp, frames, t_ns, skeleton = stack_cameras([seqs[n] for n in rig.names], 30.0)
    rec = reconstruct(rig, kp, t_ns, skeleton, 30.0, filter="none",
                      params=ReconstructionParams(association_px=50.0, threshold_px=30.0))
    ours = _main_track(rec.poses3d)[..., :3]
    xyz = read_caliscope_xyz(folder / "xyz_HOLISTIC.csv")
    theirs = holistic_to_mediapipe33(xyz.points, xyz.point_ids, scored=False)
    rows = np.searchsorted(frames, xyz.sync_index)
    ok = (rows < len(frames)) & (frames[np.minimum(rows, len(frames) - 1)] == xyz.sync_index)
    d = np.linalg.norm(ours[rows[ok]] - theirs[ok], axis=-1)
    d = d[np.isfinite(d)]
    with capsys.disabled():
        print(f"\ncaliscope HOLISTIC: {d.size} landmark-frames, median {100 * np.median(d):.2f} cm, 90th percentile "
              f"{100 * np.percentile(d, 90):.2f} cm from caliscope's xyz")
    assert d.size > 1000 and np.median(d) < 0.02


@needs_shared
def test_shelf_detections_find_the_people(capsys):
    import numpy._core.multiarray as multiarray

    rig = load_rig(SHELF / "calibration_shelf.json")
    sys.modules.setdefault("numpy.core.multiarray", multiarray)
    with open(SHELF / "pred_shelf_maskrcnn_hrnet_coco.pkl", "rb") as f:
        preds = pickle.load(f)  # noqa: S301 - a fixture of numpy arrays and dicts from mmpose's tests
    T, C = 3, len(rig)
    P = max(len(preds[f"{c}_{t}"]) for c in range(C) for t in range(T))
    kp = np.full((C, T, P, 17, 3), np.nan, np.float32)
    kp[..., 2] = 0
    for c in range(C):
        for t in range(T):
            for p, person in enumerate(preds[f"{c}_{t}"]):
                kp[c, t, p] = person["pred"]
    # mmpose's three frames are not consecutive: each is reconstructed on its own (no tracking across them)
    results = [FrameReconstructor(rig, "coco17", 25.0).step(0, kp[:, t]) for t in range(T)]
    people = [len(r.poses) for r in results]
    err = np.concatenate([r.errors[r.inliers] for r in results])
    with capsys.disabled():
        print(f"\nShelf (mmpose detections, 3 frames): people per frame {people}, median reprojection of the "
              f"inlier views {np.median(err):.1f} px")
    assert min(people) >= 3 and np.median(err) < 20
