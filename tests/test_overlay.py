"""viewer.overlay and `mocap overlay`: on a recorded simulated session (4 cameras at 320x180, 2 people, 2 s,
reconstructed with `mocap reconstruct`): one output frame per recorded frame, skeleton pixels of the track's
colour where the rig projects the joints, frames matched through sync.csv, the reprojection check, errors."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.protocol import frame_from_image
from capture.recorder import Recorder
from capture.session_reader import SessionVideo
from capture.sources import SimulatedCameraSource
from capture.sync import read_sync_csv
from rigs.formats import load_rig
from rigs.poses3d_file import Poses3D, read_poses3d, write_poses3d
from rigs.skeletons import get_skeleton
from viewer.colours import PALETTE, track_colour
from viewer.overlay import OverlayError, write_overlay

FPS = 30.0
N = 60
DROPPED = {"cam2": {10, 11, 12}}  # frames cam2's node never sent


def _mocap(*argv) -> tuple[int, str, str]:
    from mocap import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def record_simulated_session(folder: Path, people: int = 2, frames: int = N, dropped=None) -> Path:
    """What `mocap record` leaves from studio-4's simulated cameras (at 320x180): rendered frames with their truth."""
    rig = load_rig("studio-4")
    rig = rig.replace(cameras=tuple(c.resized(320, 180) for c in rig.cameras))
    sources = {c.name: SimulatedCameraSource(c, pace=False, seed=0, people=people, seconds=frames / FPS)
               for c in rig.cameras}
    recorder = Recorder(folder, rig, segment_s=1.0)
    t0, period = 5_000_000_000, round(1e9 / FPS)
    for i in range(frames):
        for c, cam in enumerate(rig.names):
            frame = sources[cam].read()
            if i in (dropped or {}).get(cam, ()):
                continue
            t = t0 + i * period + 1_000_000 * c
            recorder.add(frame_from_image(cam, i, t, frame.image, truth=frame.truth), t + 2_000_000)
    recorder.close()
    return folder


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    folder = record_simulated_session(tmp_path_factory.mktemp("overlay") / "take", dropped=DROPPED)
    code, _, err = _mocap("reconstruct", folder)
    assert code == 0, err
    return folder


@pytest.fixture
def copy(session, tmp_path) -> Path:
    dst = tmp_path / "take"
    shutil.copytree(session, dst)
    return dst


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    cap.release()
    return frames


def _colour_near(image: np.ndarray, uv: np.ndarray, bgr: tuple[int, int, int], tol: float = 60.0) -> np.ndarray:
    """For each pixel position: is a pixel within 1 px of it within ``tol`` (RGB distance) of the colour?"""
    h, w = image.shape[:2]
    hits = np.zeros(len(uv), bool)
    for n, (u, v) in enumerate(np.rint(uv).astype(int)):
        patch = image[max(v - 1, 0): v + 2, max(u - 1, 0): u + 2].reshape(-1, 3).astype(float)
        hits[n] = patch.size and (np.linalg.norm(patch - bgr, axis=1) < tol).any()
    return hits


def _segment_distance(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Distance of each point [N, 2] to the nearest of the segments [B, 2, 2] (NaN segments ignored)."""
    a, b = segments[None, :, 0], segments[None, :, 1]
    ab, ap = b - a, points[:, None] - a
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0, 1)
    d = np.linalg.norm(ap - t[..., None] * ab, axis=-1)
    return np.nanmin(np.where(np.isfinite(d), d, np.inf), axis=1)


def test_palette_is_fixed_and_indexed_by_id():
    assert len(PALETTE) == 10 and len(set(PALETTE)) == 10
    assert track_colour(0) == PALETTE[0] and track_colour(13) == PALETTE[3] and track_colour(-1) not in PALETTE
    assert all(0 <= c <= 255 and isinstance(c, int) for rgb in PALETTE for c in rgb)


def test_one_frame_per_recorded_frame_and_skeletons_where_the_projection_says(session, tmp_path):
    out = tmp_path / "cam2.mp4"
    seen = []
    stats = write_overlay(session, "cam2", out, progress=lambda done, total: seen.append((done, total)))
    frames = _frames(out)
    assert stats.frames_written == len(frames) == N - len(DROPPED["cam2"])
    assert stats.frames_without_3d == 0 and stats.matched_by == "sync.csv"
    assert seen[-1] == (len(frames), len(frames))
    assert frames[0].shape == (180, 320, 3)

    # the recorded frame of cam2 where the two people stand farthest apart in its image
    poses = read_poses3d(session / "poses3d.npz")
    cam = load_rig(session / "session.toml")["cam2"]
    sets, t_sets, seqs, cams = read_sync_csv(session / "sync.csv")
    recorded = [i for i in range(N) if i not in DROPPED["cam2"]]
    centres = np.nanmean(cam.project(poses.poses[..., :3].astype(float)), axis=2)  # [T, P, 2]
    seq = recorded[int(np.argmax(np.linalg.norm(centres[recorded, 0] - centres[recorded, 1], axis=-1)))]
    row = int(np.flatnonzero(poses.t_ns == t_sets[np.flatnonzero(seqs[:, cams.index("cam2")] == seq)[0]])[0])
    assert row == seq  # sync.csv: cam2's frame seq is in FrameSet seq
    with SessionVideo(session) as video:
        original = video.frame("cam2", seq)
    overlay = frames[recorded.index(seq)]
    bones = np.array(get_skeleton(poses.skeleton).bones)
    slots = np.flatnonzero(poses.track_ids[row] >= 0)
    uvs = cam.project(poses.poses[row, :, :, :3].astype(float))  # [P, J, 2]
    checked = 0
    for slot in slots:
        p, uv = poses.poses[row, slot], uvs[slot]
        others = [uvs[o][bones] for o in slots if o != slot]  # [B, 2, 2] segments of the other people
        clear = np.all([_segment_distance(uv, seg) > 6 for seg in others], axis=0)  # not under someone else
        inside = (p[:, 3] > 0) & clear & (uv[:, 0] > 3) & (uv[:, 0] < 316) & (uv[:, 1] > 3) & (uv[:, 1] < 150)
        colour = track_colour(int(poses.track_ids[row, slot]))[::-1]
        drawn = _colour_near(overlay, uv[inside], colour)
        before = _colour_near(original, uv[inside], colour)
        assert inside.sum() >= 10
        assert drawn.mean() > 0.8, f"track {poses.track_ids[row, slot]}: {drawn.mean():.2f} of its joints drawn"
        assert before.mean() < 0.3  # the colour is the overlay's, not the video's
        checked += 1
    assert checked == 2
    # the legend band at the bottom is darkened
    assert overlay[-6:, :, :].mean() < original[-6:, :, :].mean()


def test_reprojection_check_measures_the_rig(session, tmp_path):
    stats = write_overlay(session, "cam0", tmp_path / "a.mp4")
    assert stats.joints_compared > 500 and 0 < stats.median_px < 5
    assert any("reprojection check" in line and f"{stats.median_px:.2f} px" in line for line in stats.lines())
    rig = load_rig(session / "session.toml")
    cam = rig["cam0"]
    moved = rig.with_camera(cam.with_extrinsics(cam.R, cam.t + [0.3, 0.0, 0.0]))  # 30 cm off: ~10 px here
    off = write_overlay(session, "cam0", tmp_path / "b.mp4", rig=moved)
    assert off.median_px > stats.median_px + 5
    bare = write_overlay(session, "cam0", tmp_path / "c.mp4", detections=False)
    assert bare.joints_compared == 0 and np.isnan(bare.median_px)


def test_frames_without_poses_still_written(copy, tmp_path):
    p = read_poses3d(copy / "poses3d.npz")
    write_poses3d(copy / "poses3d.npz", Poses3D(p.poses[15:], p.track_ids[15:], p.t_ns[15:], p.fps, p.skeleton,
                                                p.joint_names))
    stats = write_overlay(copy, "cam1", tmp_path / "o.mp4")
    assert stats.frames_written == N and stats.frames_without_3d == 15
    frames = _frames(tmp_path / "o.mp4")
    with SessionVideo(copy) as video:
        first = video.frame("cam1", 0)
    top = slice(0, 140)  # above the legend: frame 0 has no skeleton drawn, so it is the video as recorded
    assert np.abs(frames[0][top].astype(int) - first[top]).mean() < 4


def test_each_video_frame_shows_its_own_pose_row(copy, tmp_path):
    """Only row 30 keeps its people: only cam2's frame seq 30 (its 28th, after 3 dropped) shows a skeleton."""
    p = read_poses3d(copy / "poses3d.npz")
    poses, ids = np.full_like(p.poses, np.nan), np.full_like(p.track_ids, -1)
    poses[..., 3] = 0
    poses[30], ids[30] = p.poses[30], p.track_ids[30]
    write_poses3d(copy / "poses3d.npz", Poses3D(poses, ids, p.t_ns, p.fps, p.skeleton, p.joint_names))
    stats = write_overlay(copy, "cam2", tmp_path / "o.mp4", detections=False)
    assert stats.frames_without_3d == stats.frames_written - 1
    frames = _frames(tmp_path / "o.mp4")
    colours = [track_colour(int(i))[::-1] for i in p.track_ids[30] if i >= 0]

    def coloured(image: np.ndarray) -> int:
        return int(sum((np.linalg.norm(image[:140].astype(float) - c, axis=-1) < 40).sum() for c in colours))

    k = 30 - len(DROPPED["cam2"])
    assert coloured(frames[k]) > 100
    assert coloured(frames[k - 1]) < 10 and coloured(frames[k + 1]) < 10


def test_command_writes_the_default_path_and_prints_the_check(copy):
    code, out, err = _mocap("overlay", copy, "--camera", "cam3")
    assert code == 0, err
    path = copy / "report" / "overlay_cam3.mp4"
    assert path.is_file() and len(_frames(path)) == N
    assert "reprojection check" in out and "60 written" in out
    code, out, err = _mocap("overlay", copy, "--camera", "cam3", "--out", copy / "x.mp4", "--no-detections")
    assert code == 0 and "no detections to compare with" in out, err


@pytest.mark.parametrize("damage, camera, message", [
    (None, "cam9", "no camera 'cam9'; its cameras are cam0, cam1, cam2, cam3"),
    ("poses3d", "cam0", "has no poses3d.npz: nothing to overlay; reconstruct it first"),
    ("video", "cam3", "no recorded video of camera 'cam3'"),
])
def test_errors(copy, damage, camera, message):
    if damage == "poses3d":
        (copy / "poses3d.npz").unlink()
    if damage == "video":
        (copy / "video" / "cam3.csv").unlink()
        shutil.rmtree(copy / "video" / "cam3")
    with pytest.raises(OverlayError, match=message):
        write_overlay(copy, camera, copy / "o.mp4")
    code, _, err = _mocap("overlay", copy, "--camera", camera)
    assert code == 2 and message.split(";")[0] in err and len(err.strip().splitlines()) == 1, err
    if damage == "video":
        assert "cameras with video: cam0, cam1, cam2" in err
