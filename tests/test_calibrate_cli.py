"""`mocap calibrate ...` end to end on rendered images and videos of the simulated studio: a printed board,
a lens from board images, the rig from a board carried around (world from the board on the floor), the
rig from the people in view, a bumped camera refined; and the one-line errors for bad input."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.rig_comparison import floor_frame_errors, relative_pose_errors
from calibration.world_frame import board_world
from mocap.cli import main
from rigs.board import Board
from rigs.camera import Rig
from rigs.formats import load_rig, save_rig
from rigs.rotations import rotvec_to_matrix
from rigs.sim.board import SimulatedBoard, board_on_floor
from rigs.sim.board_motion import board_in_front_of, board_waved
from rigs.sim.render import RenderParams, render_view

BOARD = SimulatedBoard()  # ChArUco 5x7, 80 mm squares, DICT_5X5_100: the lens board
SPEC = BOARD.spec.spec_text()
BIG = SimulatedBoard(cols=5, rows=7, square=0.15, marker=0.11)  # an A0 print: seen on the floor from 4 m
BIG_SPEC = BIG.spec.spec_text()
PARAMS = RenderParams(stamp=False)
CALISCOPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mprib+caliscope" / "tests" / "sessions" \
    / "charuco_calibration"


def _rotation_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(Ra @ Rb.T) - 1) / 2, -1, 1))))


def _pose_errors(got: Rig, want: Rig) -> tuple[float, float]:
    """Worst rotation error (deg) and camera position error (m) over the cameras."""
    rot = max(_rotation_deg(a.R, b.R) for a, b in zip(got, want, strict=True))
    pos = float(np.max(np.linalg.norm(got.centers - want.centers, axis=1)))
    return rot, pos


def _unplaced(rig: Rig) -> Rig:
    """The rig's intrinsics with every camera at the origin: what extrinsics calibration starts from."""
    return rig.replace(cameras=tuple(c.with_extrinsics(np.eye(3), np.zeros(3)) for c in rig))


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate")
    rig = load_rig("studio-4")
    images = root / "cam0_board"
    images.mkdir()
    for i, pose in enumerate(board_in_front_of(rig[0], BOARD, 24, seed=3)):
        cv2.imwrite(str(images / f"board_{i:03d}.png"), render_view(rig[0], None, i, PARAMS, pose))
    poses = board_waved(BIG, 150, floor_frames=5, seed=1)
    videos = []
    for cam in rig:
        path = root / f"{cam.name}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (cam.width, cam.height))
        for k, pose in enumerate(poses):
            writer.write(render_view(cam, None, k, PARAMS, pose))
        writer.release()
        videos.append(f"{cam.name}={path}")
    unplaced = save_rig(_unplaced(rig), root / "unplaced.toml")
    return {"root": root, "rig": rig, "images": images, "videos": videos, "unplaced": unplaced}


def test_board_writes_a_printable_pdf_and_png(tmp_path, capsys):
    assert main(["calibrate", "board", "--board", SPEC, "--out", str(tmp_path / "board.pdf")]) == 0
    assert (tmp_path / "board.pdf").read_bytes()[:5] == b"%PDF-"
    assert "80 mm" in capsys.readouterr().out
    assert main(["calibrate", "board", "--board", SPEC, "--out", str(tmp_path / "board.png"), "--dpi", "100"]) == 0
    assert cv2.imread(str(tmp_path / "board.png")) is not None


def test_intrinsics_from_rendered_images(studio, tmp_path, capsys):
    out = tmp_path / "cam0.toml"
    assert main(["calibrate", "intrinsics", "--board", SPEC, "--images", str(studio["images"]), "--camera", "cam0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RMS reprojection error" in printed
    cam, truth = load_rig(out)["cam0"], studio["rig"]["cam0"]
    assert cam.K[0, 0] == pytest.approx(truth.K[0, 0], rel=0.005)
    assert cam.K[1, 1] == pytest.approx(truth.K[1, 1], rel=0.005)
    assert np.abs(cam.K[:2, 2] - truth.K[:2, 2]).max() < 2.0
    assert load_rig(out).board == BOARD.spec
    report = tmp_path / "cam0-report"
    assert (report / "intrinsics_cam0.png").is_file() and (report / "summary.txt").is_file()


def test_intrinsics_update_one_camera_of_a_rig(studio, tmp_path):
    out = tmp_path / "rig.toml"
    assert main(["calibrate", "intrinsics", "--board", SPEC, "--images", str(studio["images"]), "--camera", "cam0",
                 "--rig", "studio-4", "--out", str(out)]) == 0
    rig = load_rig(out)
    assert rig.names == studio["rig"].names
    assert np.allclose(rig["cam0"].R, studio["rig"]["cam0"].R) and rig["cam1"] == studio["rig"]["cam1"]


def test_extrinsics_from_board_videos_with_the_board_on_the_floor(studio, tmp_path, capsys):
    out = tmp_path / "placed.toml"
    args = ["calibrate", "extrinsics", "--board", BIG_SPEC, "--rig", str(studio["unplaced"]), "--videos",
            *studio["videos"], "--world", "board", "--floor-frame", "0", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "board on the floor" in printed
    floor = board_on_floor(BIG)
    want = board_world(BIG.spec, floor.R, floor.t).apply_rig(studio["rig"])
    got = load_rig(out)
    rot, pos = relative_pose_errors(got, want)  # the calibration: the target
    assert rot.max() < 0.1 and pos.max() < 0.005, (rot, pos)
    # the world frame comes from one view of the board on the floor, 4-5 m from 720p cameras
    rot, pos = _pose_errors(got, want)
    assert rot < 0.15 and pos < 0.012, (rot, pos)
    assert (tmp_path / "placed-report" / "reprojection.png").is_file()


def test_extrinsics_without_a_floor_frame_says_which_frames_exist(studio, tmp_path, capsys):
    args = ["calibrate", "extrinsics", "--board", BIG_SPEC, "--rig", str(studio["unplaced"]), "--videos",
            *studio["videos"], "--world", "board", "--step", "10", "--out", str(tmp_path / "x.toml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--floor-frame" in err and "frames from" in err and err.count("\n") == 1
    assert main([*args[:7], *studio["videos"][:2], *args[11:]]) == 2
    err = capsys.readouterr().err
    assert "no video for cam2, cam3" in err and err.count("\n") == 1


def test_people_self_calibration_from_simulated_keypoints(tmp_path, capsys):
    kp = tmp_path / "kp"
    assert main(["sim", "keypoints", "--rig", "studio-4", "--people", "1", "--seconds", "8", "--out", str(kp)]) == 0
    height = float(np.load(kp / "truth" / "smpl24.npz")["heights"][0])
    truth = load_rig("studio-4")
    unplaced = save_rig(_unplaced(truth), tmp_path / "unplaced.toml")
    out = tmp_path / "people.toml"
    assert main(["calibrate", "people", "--rig", str(unplaced), "--keypoints", str(kp), "--person-height",
                 f"{height:.4f}", "--out", str(out)]) == 0
    got = load_rig(out)
    rot, pos = relative_pose_errors(got, truth)  # the calibration: the target
    assert rot.max() < 0.5 and pos.max() < 0.02, (rot, pos)
    # the floor and the scale fix the world up to a turn about Z and a shift along the floor
    rot, pos = floor_frame_errors(got, truth)
    assert rot.max() < 0.5 and pos.max() < 0.03, (rot, pos)
    assert abs(got.centers[:, 2] - truth.centers[:, 2]).max() < 0.03


def test_refine_recovers_a_bumped_camera(tmp_path):
    kp = tmp_path / "kp"
    assert main(["sim", "keypoints", "--rig", "studio-4", "--people", "1", "--seconds", "6", "--out", str(kp)]) == 0
    truth = load_rig("studio-4")
    cam = truth["cam2"]
    bump = rotvec_to_matrix(np.radians([2.0, -2.0, 1.0]))
    bumped = truth.with_camera(cam.with_extrinsics(bump @ cam.R, bump @ cam.t + np.array([0.05, 0.0, -0.03])))
    rig = save_rig(bumped, tmp_path / "bumped.toml")
    out = tmp_path / "refined.toml"
    assert main(["calibrate", "refine", "--rig", str(rig), "--keypoints", str(kp), "--out", str(out)]) == 0
    rot, pos = _pose_errors(load_rig(out), truth)
    assert rot < 0.5 and pos < 0.02, (rot, pos)


def test_no_board_in_the_images_is_one_line_naming_what_was_seen(tmp_path, capsys):
    rig = load_rig("studio-4")
    folder = tmp_path / "empty"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"img_{i}.png"), render_view(rig[0], None, i, PARAMS))
    assert main(["calibrate", "intrinsics", "--board", SPEC, "--images", str(folder), "--camera", "cam0",
                 "--out", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err
    assert "not found in 3 images" in err and err.count("\n") == 1


def test_a_spec_that_does_not_match_the_print_says_so(studio, tmp_path, capsys):
    wrong = Board("charuco", 5, 7, 0.08, 0.06, "DICT_4X4_50").spec_text()
    assert main(["calibrate", "intrinsics", "--board", wrong, "--images", str(studio["images"]), "--camera", "cam0",
                 "--out", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err
    assert "DICT_5X5" in err and err.count("\n") == 1


def test_board_spec_in_millimetres_is_refused_with_the_conversion(tmp_path, capsys):
    assert main(["calibrate", "board", "--board", "checkerboard:9x6:25", "--out", str(tmp_path / "b.pdf")]) == 2
    assert "25 mm is 0.025 m" in capsys.readouterr().err



@pytest.mark.skipif(not CALISCOPE.is_dir(), reason="../shared/data is absent: caliscope's ChArUco videos are needed")
def test_caliscope_videos_give_caliscope_poses(tmp_path, capsys):
    """Real webcams: the inverted 4x5 ChArUco videos with caliscope's intrinsics give caliscope's camera poses
    within 2 cm and 1 deg (relative to the first camera; measured 0.5 deg, 1.1 cm at worst)."""
    ref = load_rig(CALISCOPE / "camera_array.toml")
    videos = [f"{c.name}={CALISCOPE / 'calibration' / 'extrinsic' / f'{c.name}.mp4'}" for c in ref]
    out = tmp_path / "caliscope.toml"
    assert main(["calibrate", "extrinsics", "--board", str(CALISCOPE / "charuco.toml"), "--rig",
                 str(save_rig(_unplaced(ref), tmp_path / "unplaced.toml")), "--videos", *videos,
                 "--out", str(out)]) == 0
    rot, pos = relative_pose_errors(load_rig(out), ref)
    assert rot.max() < 1.0 and pos.max() < 0.02, (rot, pos)


def test_extrinsics_from_a_recorded_session(tmp_path, capsys):
    """A session as `mocap record` leaves it (JPEG segments, sync.csv) of the board carried around: the frame
    key is the sync set, so --floor-frame 0 is the first FrameSet."""
    from capture.protocol import frame_from_image
    from capture.recorder import Recorder

    truth = load_rig("studio-4")
    period = round(1e9 / 30)
    recorder = Recorder(tmp_path / "board_session", truth, segment_s=2.0)
    for k, pose in enumerate(board_waved(BIG, 150, floor_frames=5, seed=1)):
        for c, cam in enumerate(truth):
            t = 1_000_000_000 + k * period + 200_000 * c
            image = render_view(cam, None, k, PARAMS, pose)
            recorder.add(frame_from_image(cam.name, k, t, image, quality=95), t + 2_000_000)
    recorder.close()
    unplaced = save_rig(_unplaced(truth), tmp_path / "unplaced.toml")
    out = tmp_path / "from_session.toml"
    assert main(["calibrate", "extrinsics", "--board", BIG_SPEC, "--rig", str(unplaced), "--session",
                 str(tmp_path / "board_session"), "--world", "board", "--floor-frame", "0", "--out", str(out)]) == 0
    floor = board_on_floor(BIG)
    want = board_world(BIG.spec, floor.R, floor.t).apply_rig(truth)
    rot, pos = relative_pose_errors(load_rig(out), want)
    assert rot.max() < 0.1 and pos.max() < 0.005, (rot, pos)


def test_extrinsics_are_deterministic(studio, tmp_path):
    """The same input gives the same rig, bit for bit."""
    texts = []
    for run in range(2):
        out = tmp_path / f"run{run}.toml"
        assert main(["calibrate", "extrinsics", "--board", BIG_SPEC, "--rig", str(studio["unplaced"]), "--videos",
                     *studio["videos"], "--step", "2", "--out", str(out)]) == 0
        texts.append(out.read_text())
    assert texts[0] == texts[1]


def test_extrinsics_with_the_world_from_peoples_feet(studio, tmp_path, capsys):
    """--world people: the board places the cameras, a person walking sets the floor (z = 0, Z up)."""
    kp = tmp_path / "kp"
    assert main(["sim", "keypoints", "--rig", "studio-4", "--people", "1", "--seconds", "8", "--out", str(kp)]) == 0
    out = tmp_path / "floor.toml"
    assert main(["calibrate", "extrinsics", "--board", BIG_SPEC, "--rig", str(studio["unplaced"]), "--videos",
                 *studio["videos"], "--step", "2", "--world", "people", "--keypoints", str(kp), "--out", str(out)]) == 0
    assert "floor under the feet" in capsys.readouterr().out
    got, truth = load_rig(out), studio["rig"]
    assert got.up == "z"
    assert np.abs(got.centers[:, 2] - truth.centers[:, 2]).max() < 0.03
    rot, pos = floor_frame_errors(got, truth)
    assert rot.max() < 0.5 and pos.max() < 0.03, (rot, pos)
