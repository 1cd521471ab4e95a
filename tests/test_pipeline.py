"""The per-frame reconstruction (reconstruction.pipeline), the simulated frame detector and the live node's
per-FrameSet path, on the simulated studios: accuracy against the simulation's truth, identities, the offline
layout, smoothing, bad input, and that the node publishes what the offline reconstruction computes."""

from __future__ import annotations

import logging
import threading
import time
from types import MappingProxyType

import numpy as np
import pytest
import zmq

from capture.protocol import FrameMessage, Heartbeat, decode
from capture.sync import FrameRef, FrameSet
from reconstruction.metrics import evaluate
from reconstruction.pipeline import (
    FrameReconstructor,
    ReconstructionError,
    ReconstructionParams,
    layout_tracks,
    reconstruct,
)
from reconstruction.recon_node import ReconNode, ReconNodeError
from reconstruction.simulated_frame_detector import SimulatedFrameDetector, SimulatedTruthError, has_truth
from rigs.formats import load_rig
from rigs.poses3d_file import Poses3D
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import keypoints3d, simulate_performers
from rigs.skeletons import get_skeleton

FPS = 30.0
SKELETON = "body25"


def _scene(rig_name: str, people: int, seconds: float, seed: int = 0, **detector):
    rig = load_rig(rig_name)
    perf = simulate_performers(people, seconds, FPS, seed)
    det = simulate_detections(rig, perf, SKELETON, SimulatedDetectorParams(seed=seed, **detector))
    sk = get_skeleton(SKELETON)
    truth = Poses3D(keypoints3d(perf, sk), np.broadcast_to(np.arange(people, dtype=np.int32), (perf.num_frames,
                                                                                                people)),
                    perf.t_ns, FPS, sk.name, sk.joints)
    return rig, perf, det, truth


@pytest.fixture(scope="module")
def studio8_four():
    """The issue's target scene: studio-8, 4 people, 2 px noise, 10 % gross outliers, occlusion on."""
    rig, perf, det, truth = _scene("studio-8", 4, 5.0, gross_outlier_rate=0.1)
    assert det.params.occlusion and det.params.pixel_noise_px == 2.0
    raw = reconstruct(rig, det.keypoints2d, perf.t_ns, SKELETON, FPS, filter="none")
    smooth = reconstruct(rig, det.keypoints2d, perf.t_ns, SKELETON, FPS)
    return rig, det, truth, raw, smooth


def test_studio8_four_people_with_outliers_within_15_mm(studio8_four):
    _, _, truth, raw, smooth = studio8_four
    for rec, limit in ((smooth, 15.0), (raw, 15.0)):
        ev = evaluate(rec.poses3d, truth)
        assert ev.mpjpe_mm <= limit, f"MPJPE {ev.mpjpe_mm:.1f} mm"
        assert ev.completeness >= 0.99  # offline keeps a track's frames from before its confirmation
        assert ev.identity_switches == 0 and ev.false_positives == 0
    assert evaluate(smooth.poses3d, truth).mpjpe_mm < evaluate(raw.poses3d, truth).mpjpe_mm  # smoothing helps
    assert raw.stats.tracks == 4 and raw.stats.max_people == 4


@pytest.mark.parametrize(("rig_name", "people"), [("studio-4", 2), ("studio-4", 3), ("studio-8", 2)])
def test_studio_scenes_accuracy_and_identities(rig_name, people):
    rig, perf, det, truth = _scene(rig_name, people, 3.0, seed=people)
    rec = reconstruct(rig, det.keypoints2d, perf.t_ns, SKELETON, FPS)
    ev = evaluate(rec.poses3d, truth)
    assert ev.mpjpe_mm <= 15.0, f"{rig_name}, {people} people: MPJPE {ev.mpjpe_mm:.1f} mm"
    assert ev.completeness >= 0.95
    assert ev.identity_switches == 0
    assert rec.stats.tracks == people


def test_offline_output_layout_and_extras(studio8_four):
    rig, det, _, raw, _ = studio8_four
    p = raw.poses3d
    C, T = len(rig), det.keypoints2d.shape[1]
    J = get_skeleton(SKELETON).num_joints
    P = p.poses.shape[1]
    assert p.poses.dtype == np.float32 and p.poses.shape == (T, P, J, 4)
    assert p.track_ids.dtype == np.int32 and p.track_ids.shape == (T, P)
    assert p.skeleton == "body25" and p.joint_names == get_skeleton("body25").joints and p.fps == FPS
    errors, inliers = p.extras["reprojection_errors"], p.extras["inlier_views"]
    assert errors.dtype == np.float32 and errors.shape == (T, P, C, J)
    assert inliers.dtype == bool and inliers.shape == (T, P, C, J)
    assert tuple(p.extras["camera_names"]) == rig.names
    # one slot per track, ids ascending; a joint is present only where >= 2 views were used
    ids = [np.unique(p.track_ids[:, s][p.track_ids[:, s] >= 0]) for s in range(P)]
    assert all(len(i) == 1 for i in ids) and [int(i[0]) for i in ids] == sorted(int(i[0]) for i in ids)
    present = p.poses[..., 3] > 0
    assert (inliers.sum(2)[present] >= 2).all() and not inliers.any(2)[~present].any()
    assert np.isnan(p.poses[..., :3][~present]).all()
    assert np.nanmedian(errors[inliers]) < 3.0  # 2 px noise
    # the median reprojection per camera in the stats is over the inlier views
    for c, name in enumerate(rig.names):
        assert raw.stats.median_reprojection_px[name] == pytest.approx(np.median(errors[:, :, c][inliers[:, :, c]]))


def test_smoothing_keeps_tracks_and_presence(studio8_four):
    _, _, _, raw, smooth = studio8_four
    assert np.array_equal(raw.poses3d.track_ids, smooth.poses3d.track_ids)
    assert np.array_equal(raw.poses3d.t_ns, smooth.poses3d.t_ns)
    raw_present, smooth_present = raw.poses3d.poses[..., 3] > 0, smooth.poses3d.poses[..., 3] > 0
    assert (smooth_present | ~raw_present).all()  # smoothing may fill short gaps, never drops a joint
    both = raw_present & smooth_present
    moved = np.linalg.norm(raw.poses3d.poses[..., :3] - smooth.poses3d.poses[..., :3], axis=-1)[both]
    assert 0 < np.median(moved) < 0.01


def test_offline_is_the_live_steps_laid_out(studio8_four):
    """reconstruct(filter="none") is FrameReconstructor.step frame by frame: what the node publishes."""
    rig, det, _, raw, _ = studio8_four
    rec = FrameReconstructor(rig, SKELETON, FPS)
    kp = det.keypoints2d
    t_ns = raw.poses3d.t_ns
    for t in range(kp.shape[1]):
        result = rec.step(int(t_ns[t]), kp[:, t])
        assert result.poses.dtype == np.float32 and result.track_ids.dtype == np.int32
        G = len(result.poses)
        assert result.errors.shape == (G, len(rig), 25) and result.inliers.shape == (G, len(rig), 25)
        for pose, tid in zip(result.poses[result.confirmed], result.track_ids[result.confirmed], strict=True):
            slot = np.flatnonzero(raw.poses3d.track_ids[t] == tid)
            assert len(slot) == 1
            assert np.array_equal(raw.poses3d.poses[t, slot[0]], pose, equal_nan=True)
    assert rec.frames == kp.shape[1] and set(rec.timings) == {"associate", "triangulate", "track", "bones"}


def test_bone_check_removes_a_thrown_joint():
    """A joint moved far off in every view after the bone lengths are known is removed, not triangulated."""
    rig, perf, det, truth = _scene("studio-4", 1, 2.0, seed=3, false_detection_rate=0.0, gross_outlier_rate=0.0,
                                   miss_rate=0.0, swap_rate=0.0)
    T = det.keypoints2d.shape[1]
    sk = get_skeleton(SKELETON)
    wrist = sk.index("right_wrist")
    thrown = truth.poses[:, 0, wrist, :3].astype(np.float64) + np.array([0.0, 0.0, 0.6])  # 60 cm up
    kp = det.keypoints2d.copy()
    late = np.arange(T) >= T - 10
    pixels = rig.project(thrown)  # [C, T, 2]
    person = det.truth_person == 0  # [C, T, S]
    for c in range(len(rig)):
        for t in np.flatnonzero(late):
            s = np.flatnonzero(person[c, t])
            if len(s) and kp[c, t, s[0], wrist, 2] > 0:
                kp[c, t, s[0], wrist, :2] = pixels[c, t]
    checked = reconstruct(rig, kp, perf.t_ns, SKELETON, FPS, filter="none")
    unchecked = reconstruct(rig, kp, perf.t_ns, SKELETON, FPS, filter="none",
                            params=ReconstructionParams(bone_tolerance=None))
    wrist_checked = checked.poses3d.poses[late, 0, wrist, 3] > 0
    wrist_unchecked = unchecked.poses3d.poses[late, 0, wrist, 3] > 0
    assert wrist_unchecked.all() and not wrist_checked.any()
    elbow = sk.index("right_elbow")
    assert (checked.poses3d.poses[late, 0, elbow, 3] > 0).all()  # its neighbour stays


def test_empty_frames_and_nobody():
    rig = load_rig("studio-4")
    rec = FrameReconstructor(rig, SKELETON, FPS)
    empty = np.full((len(rig), 3, 25, 3), np.nan, np.float32)
    empty[..., 2] = 0
    result = rec.step(0, empty)
    assert result.poses.shape == (0, 25, 4) and result.track_ids.shape == (0,)
    assert result.errors.shape == (0, 4, 25) and result.inliers.shape == (0, 4, 25)
    out = reconstruct(rig, np.stack([empty] * 4, 1), np.arange(4) * 33_333_333, SKELETON, FPS)
    assert out.poses3d.poses.shape == (4, 0, 25, 4) and out.stats.tracks == 0
    assert out.stats.frames_with_people == 0.0


def test_layout_keeps_a_track_alive_through_a_gap():
    from reconstruction.pipeline import FrameResult

    J, C = 2, 2
    pose = np.ones((1, J, 4), np.float32)

    def frame(tid):
        ids = np.array([tid] if tid is not None else [], np.int32)
        n = len(ids)
        return FrameResult(pose[:n], ids, np.zeros((n, C, J), np.float32), np.ones((n, C, J), bool))

    results = [frame(-1), frame(7), frame(None), frame(7), frame(None)]
    poses, ids, errors, inliers = layout_tracks(results, C, J)
    assert ids.tolist() == [[-1], [7], [7], [7], [-1]]  # alive from first to last match; -1 elsewhere
    assert (poses[[1, 3], 0, :, 3] == 1).all() and (poses[[0, 2, 4], 0, :, 3] == 0).all()
    assert inliers[2].sum() == 0 and np.isnan(errors[2]).all()


@pytest.mark.parametrize(("call", "match"), [
    (lambda rig, kp, t: reconstruct(rig, kp[:3], t, SKELETON, FPS), r"C=4"),
    (lambda rig, kp, t: reconstruct(rig, kp[..., :17, :], t, SKELETON, FPS), r"J=25"),
    (lambda rig, kp, t: reconstruct(rig, kp, t[::-1], SKELETON, FPS), "increase"),
    (lambda rig, kp, t: reconstruct(rig, kp, t[:2], SKELETON, FPS), "one time per frame"),
    (lambda rig, kp, t: reconstruct(rig, kp, t, SKELETON, FPS, filter="kalman"), "butterworth, one-euro, none"),
    (lambda rig, kp, t: FrameReconstructor(rig, SKELETON, 0.0), "positive frame rate"),
    (lambda rig, kp, t: FrameReconstructor(rig, SKELETON, FPS).step(0, kp[:, 0, :, :, :2]), r"\[C=4, P, J=25, 3\]"),
    (lambda rig, kp, t: ReconstructionParams(min_views=1), "at least 2 views"),
    (lambda rig, kp, t: ReconstructionParams(threshold_px=-1), "threshold_px"),
    (lambda rig, kp, t: ReconstructionParams(bone_tolerance=0), "None to skip"),
])
def test_bad_input_says_what_to_fix(call, match):
    rig = load_rig("studio-4")
    kp = np.full((4, 3, 2, 25, 3), np.nan, np.float32)
    with pytest.raises(ReconstructionError, match=match):
        call(rig, kp, np.arange(3, dtype=np.int64) * 33_333_333)


# --- the simulated frame detector --------------------------------------------------------------------------

def _truth(sim_frame: int, people: int = 2, seconds: float = 2.0, seed: int = 5) -> dict:
    return {"frame": sim_frame, "sim_frame": sim_frame, "t_sim_ns": round(sim_frame * 1e9 / FPS), "people": people,
            "seed": seed, "seconds": seconds, "fps": FPS}


def test_simulated_frame_detector_is_the_simulated_detector_of_that_frame():
    rig = load_rig("studio-4")
    detector = SimulatedFrameDetector(rig)
    perf = simulate_performers(2, 2.0, FPS, 5)  # what capture.sources.simulated builds from the truth
    expected = simulate_detections(rig, perf, "body25", SimulatedDetectorParams(seed=5)).keypoints2d
    assert detector.detections(_truth(0)) is detector.detections(_truth(9))  # simulated once per simulation
    assert np.array_equal(detector.frameset([_truth(7)] * 4), expected[:, 7], equal_nan=True)
    # each camera answers from its own truth; a camera without a frame reports nobody
    mixed = detector.frameset([_truth(7), None, _truth(8), _truth(7)])
    assert np.array_equal(mixed[2], expected[2, 8], equal_nan=True)
    assert np.isnan(mixed[1, ..., :2]).all() and (mixed[1, ..., 2] == 0).all()
    assert detector.name == "SIMULATED detector"


def test_simulated_frame_detector_rejects_bad_truth():
    detector = SimulatedFrameDetector(load_rig("studio-4"))
    assert has_truth(_truth(0)) and not has_truth(None) and not has_truth({"frame": 3})
    with pytest.raises(SimulatedTruthError, match="sim_frame"):
        detector.frameset([{"frame": 3}] + [None] * 3)
    with pytest.raises(SimulatedTruthError, match="outside the simulation"):
        detector.frameset([_truth(999)] * 4)
    with pytest.raises(SimulatedTruthError, match="people >= 1"):
        detector.frameset([{**_truth(0), "people": 0}] * 4)
    with pytest.raises(SimulatedTruthError, match="carries a simulated truth"):
        detector.frameset([None] * 4)
    with pytest.raises(ValueError, match="one per camera"):
        detector.frameset([_truth(0)])


# --- the live node's per-FrameSet path -----------------------------------------------------------------------

def _frameset(rig, index: int, truths) -> FrameSet:
    t_ns = 1_000_000_000 + round(index * 1e9 / FPS)
    frames = {c: None if h is None else FrameRef(c, index, t_ns, h) for c, h in zip(rig.names, truths, strict=True)}
    return FrameSet(index, t_ns, MappingProxyType(frames))


def test_node_publishes_what_the_offline_reconstruction_computes():
    rig = load_rig("studio-4")
    node = ReconNode(rig, {"x": "tcp://127.0.0.1:1"})
    T = 20
    messages = [node.handle(_frameset(rig, i, [_truth(i)] * 4)) for i in range(T)]
    kp = np.stack([node.detector.frameset([_truth(i)] * 4) for i in range(T)], 1)
    t_ns = np.array([m.t_ns for m in messages])
    offline = reconstruct(rig, kp, t_ns, SKELETON, FPS, filter="none").poses3d
    for t, msg in enumerate(messages):
        assert msg.topic == b"pose3d.recon" and msg.seq == t and msg.skeleton == "body25"
        assert (msg.track_ids >= 0).all()  # confirmed people only
        present = (offline.poses[t, :, :, 3] > 0).any(-1)
        offline_ids = offline.track_ids[t][present].tolist()
        # offline back-fills a track's first frames (before confirmation), which the live node cannot know yet
        assert sorted(msg.track_ids.tolist()) == (sorted(offline_ids) if t >= 2 else [])
        for pose, tid in zip(msg.poses, msg.track_ids, strict=True):
            assert np.array_equal(offline.poses[t, list(offline.track_ids[t]).index(tid)], pose, equal_nan=True)
    assert len(messages[0].track_ids) == 0 and len(messages[-1].track_ids) == 2  # confirmed after 3 frames
    assert (offline.poses[0, :, :, 3] > 0).any(-1).sum() == 2  # offline keeps the frames before confirmation
    assert node.stats.reconstructed == T


def test_node_skips_real_frames_with_one_clear_line(caplog):
    rig = load_rig("studio-4")
    node = ReconNode(rig, {"x": "tcp://127.0.0.1:1"})
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            assert node.handle(_frameset(rig, i, [None, {}, {}, None])) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("no 2D detector runs on real frames yet" in line for line in lines)
    assert node.stats.without_truth == 3 and node.stats.reconstructed == 0
    assert node.handle(_frameset(rig, 3, [{**_truth(0), "sim_frame": -4}] * 4)) is None
    assert node.stats.bad_truth == 1


def test_node_rejects_bad_settings():
    rig = load_rig("studio-4")
    with pytest.raises(ReconNodeError, match="one-euro"):
        ReconNode(rig, {"x": "tcp://127.0.0.1:1"}, filter="butterworth")
    with pytest.raises(ReconNodeError, match="not in rig"):
        ReconNode(rig, {"x": "tcp://127.0.0.1:1"}, cameras=["cam9"])
    with pytest.raises(ReconNodeError, match="node name"):
        ReconNode(rig, {"x": "tcp://127.0.0.1:1"}, name=" ")


def test_node_over_sockets_until_the_cameras_end():
    """Frames with truth in over a PUB socket, pose3d out: one message per FrameSet; exits at the end."""
    rig = load_rig("studio-4")
    ctx = zmq.Context()
    cams = ctx.socket(zmq.PUB)
    port = cams.bind_to_random_port("tcp://127.0.0.1")
    node = ReconNode(rig, {"all": f"tcp://127.0.0.1:{port}"}, everything=True, pub_endpoint="tcp://127.0.0.1:*",
                     filter="one-euro", exit_at_end=True, context=ctx)
    result = {}
    runner = threading.Thread(target=lambda: result.update(stats=node.run()), daemon=True)
    runner.start()
    assert node.ready.wait(5)
    out = ctx.socket(zmq.SUB)
    out.setsockopt(zmq.SUBSCRIBE, b"pose3d.")
    out.connect(node.endpoint)
    time.sleep(0.5)  # both subscriptions reach their publishers
    T = 12
    t0 = 5_000_000_000
    for i in range(T):
        for c in rig.names:
            msg = FrameMessage(c, i, t0 + round(i * 1e9 / FPS), 4, 4, "gray8", bytes(16), _truth(i))
            cams.send_multipart(msg.encode())
    for c in rig.names:
        cams.send_multipart(Heartbeat(c, T - 1, t0, 30.0, "ended").encode())
    runner.join(20)
    assert not runner.is_alive(), "the node did not exit after every camera ended"
    got = []
    while out.poll(500):
        got.append(decode(out.recv_multipart()))
    out.close(0)
    cams.close(0)
    ctx.term()
    stats = result["stats"]
    assert stats.frames == 4 * T and stats.sets == T and stats.published == T and not stats.late
    assert [m.seq for m in got] == list(range(T)) and all(m.node == "recon" for m in got)
    assert len(got[-1].track_ids) == 2 and np.isfinite(got[-1].poses[..., :3]).any()


def test_batched_run_gives_what_step_gives_frame_by_frame():
    """run() triangulates consecutive one-person frames in one call; the results are those of step()."""
    rig = load_rig("studio-8")
    perf = simulate_performers(1, 4.0, FPS, seed=11)
    params = SimulatedDetectorParams(pixel_noise_px=2.0, gross_outlier_rate=0.1, false_detection_rate=0.1, seed=11)
    kp = simulate_detections(rig, perf, SKELETON, params).keypoints2d
    batched = FrameReconstructor(rig, SKELETON, FPS).run(perf.t_ns, kp)
    one_by_one = FrameReconstructor(rig, SKELETON, FPS)
    for t, got in enumerate(batched):
        want = one_by_one.step(int(perf.t_ns[t]), kp[:, t])
        assert np.array_equal(got.poses, want.poses, equal_nan=True), t
        assert np.array_equal(got.track_ids, want.track_ids) and np.array_equal(got.inliers, want.inliers), t
