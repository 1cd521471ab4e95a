"""Tests for rigs/formats: every format read from real files, written, read back, converted and detected,
and every kind of bad file refused with a message naming the file, the camera and the field."""

import json
import shutil
import tomllib
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tomli_w
from scipy.spatial.transform import Rotation

from rigs.camera import Camera, Rig, RigError
from rigs.formats import (
    FORMATS,
    WRITABLE,
    caliscope,
    canonical_format,
    detect_format,
    image_size,
    load_rig,
    mocap_toml,
    opencv_yaml,
    panoptic,
    pose2sim,
    preset_names,
    qualisys,
    save_rig,
    shelf,
)
from rigs.rotations import matrix_to_rotvec, rotvec_to_matrix

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PRESETS = Path(__file__).resolve().parents[1] / "rigs" / "presets"
P2S = "perfanalytics+pose2sim/Pose2Sim"
MMPOSE = "open-mmlab+mmpose/tests/data"
CALISCOPE = "mprib+caliscope/tests/sessions"
ANIPOSE = "lambdaloop+aniposelib/tests/data"
ANIPOSE_7 = ("cam088", "cam091", "cam581", "cam592", "cam593", "cam712", "cam746")
CAMS_0_3 = ("cam_0", "cam_1", "cam_2", "cam_3")

# file: (format, camera count, the first names, image size of every camera)
REAL = {
    f"{P2S}/Demo_SinglePerson/calibration/Calib_scene.toml":
        ("pose2sim", 4, ("int_cam01_img", "int_cam02_img", "int_cam03_img", "int_cam04_img"), (1088, 1920)),
    f"{P2S}/S00_Demo_Session/S00_Calibration/Calib_qualisys.toml":
        ("pose2sim", 4, ("cam_01", "cam_02", "cam_03", "cam_04"), (1088, 1920)),
    f"{ANIPOSE}/calib/7cam-allen-mouse/calibration.toml": ("pose2sim", 7, ANIPOSE_7, (1440, 1080)),
    f"{ANIPOSE}/calib/12cam-allen-mouse/calibration.toml":
        ("pose2sim", 12, ("cam088", "cam091", "cam574", "cam581"), (1440, 1080)),
    f"{ANIPOSE}/calib_motobs_7cam.toml": ("pose2sim", 7, ANIPOSE_7, (1440, 1080)),
    f"{MMPOSE}/panoptic_body3d/160906_band1/calibration_160906_band1.json":
        ("panoptic", 520, ("01_01", "01_02", "01_03"), None),
    f"{MMPOSE}/shelf/calibration_shelf.json": ("shelf", 5, ("0", "1", "2", "3", "4"), (1032, 776)),
    f"{MMPOSE}/campus/calibration_campus.json": ("shelf", 3, ("0", "1", "2"), (360, 288)),
    "AlvinYH+Faster-VoxelPose/demo/calibration.json": ("shelf", 5, ("0", "1", "2", "3", "4"), (1920, 1080)),
    f"{CALISCOPE}/4_cam_recording/camera_array.toml": ("caliscope", 4, CAMS_0_3, (1280, 720)),
    f"{CALISCOPE}/charuco_calibration/camera_array.toml": ("caliscope", 4, CAMS_0_3, (1280, 720)),
    f"{CALISCOPE}/post_optimization/camera_array.toml": ("caliscope", 4, CAMS_0_3, (1280, 720)),
    f"{CALISCOPE}/4_cam_recording/config.toml": ("caliscope", 4, CAMS_0_3, (1280, 720)),
    f"{P2S}/Demo_SinglePerson/calibration/Calib.qca.txt":
        ("qualisys", 4, ("cam01", "cam02", "cam03", "cam04"), (1088, 1920)),
}
MM_FILES = {f for f, (fmt, *_) in REAL.items() if f.startswith(ANIPOSE)}  # anipose mouse rigs are in mm
NO_SIZE = {f for f, (fmt, *_) in REAL.items() if fmt == "shelf"}  # sizes guessed, with a warning


def data(rel: str) -> Path:
    path = DATA / rel
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent: the real calibration files come from there")
    return path


def quiet_load(path) -> Rig:
    """load_rig, silencing the warnings some files are known to raise (tested where they matter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_rig(path)


def read_real(rel: str) -> Rig:
    return quiet_load(data(rel))


def random_rig(seed: int = 0, n: int = 4, dist_len: int = 5, model: str = "pinhole", names=None,
               skew: bool = False, **rig_fields) -> Rig:
    """A rig of random cameras with full-precision floats (nothing a format could get right by rounding)."""
    rng = np.random.default_rng(seed)
    cams = []
    for i in range(n):
        w, h = [(1920, 1080), (1280, 720), (640, 480), (1088, 1920)][i % 4]
        f = rng.uniform(500, 2000)
        K = np.array([[f, rng.uniform(-1, 1) if skew else 0.0, w / 2 + rng.normal(0, 20)],
                      [0.0, f * rng.uniform(0.98, 1.02), h / 2 + rng.normal(0, 20)], [0.0, 0.0, 1.0]])
        dist = rng.normal(0, 0.05, dist_len)
        R = Rotation.random(random_state=seed * 100 + i).as_matrix()
        t = rng.normal(0, 3, 3)
        cams.append(Camera(names[i] if names else f"cam{i}", w, h, K, dist, R, t, model=model))
    return Rig(tuple(cams), **rig_fields)


def assert_same_cameras(a: Rig, b: Rig, atol: float = 1e-12, dist_len: int | None = None) -> None:
    """Same names, sizes, models, dist lengths, and K, dist, R, t within atol (dist compared padded)."""
    assert a.names == b.names
    for x, y in zip(a, b, strict=True):
        assert (x.width, x.height, x.model) == (y.width, y.height, y.model)
        assert y.dist.size == (x.dist.size if dist_len is None else dist_len)
        n = max(x.dist.size, y.dist.size)
        np.testing.assert_allclose(np.pad(y.dist, (0, n - y.dist.size)), np.pad(x.dist, (0, n - x.dist.size)),
                                   rtol=0, atol=atol)
        for field in ("K", "R", "t"):
            np.testing.assert_allclose(getattr(y, field), getattr(x, field), rtol=0, atol=atol, err_msg=field)


def write(rig: Rig, dest: Path, fmt: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return save_rig(rig, dest, fmt)


SUFFIX = {"opencv": "", "panoptic": ".json", "shelf": ".json"}


def dest_for(tmp_path: Path, fmt: str, name: str = "rig") -> Path:
    return tmp_path / f"{name}{SUFFIX.get(fmt, '.toml')}"


# --- the registry ----------------------------------------------------------------------------------

def test_formats_and_aliases():
    assert FORMATS == ("mocap", "pose2sim", "opencv", "panoptic", "shelf", "caliscope", "qualisys")
    assert WRITABLE == ("mocap", "pose2sim", "opencv", "panoptic", "shelf", "caliscope")
    assert canonical_format("anipose") == "pose2sim"
    assert canonical_format("Panoptic") == "panoptic"
    with pytest.raises(RigError, match="unknown rig format 'vicon'.*mocap, pose2sim, opencv"):
        canonical_format("vicon")


def test_presets_load_by_name_and_unknown_names_list_them():
    assert preset_names() == ("studio-4", "studio-8")
    assert len(load_rig("studio-4")) == 4 and load_rig("studio-4").simulated
    assert load_rig("studio-8") == mocap_toml.read(PRESETS / "studio-8.toml")
    with pytest.raises(RigError) as err:
        load_rig("studio-5")
    assert str(err.value) == "no such rig file or preset: studio-5 (presets: studio-4, studio-8)"


@pytest.mark.parametrize("name", ["studio-4", "studio-8"])
def test_presets_are_written_by_our_writer_and_say_simulated(name):
    path = PRESETS / f"{name}.toml"
    text = path.read_text()
    rig = load_rig(name)
    assert mocap_toml.to_text(rig) == text
    assert "SIMULATED" in text.splitlines()[0]
    assert "K = [\n    [" in text and "endpoint = \"tcp://127.0.0.1:555" in text
    assert all(c.endpoint.startswith("tcp://127.0.0.1:") for c in rig)


# --- real files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", sorted(REAL))
def test_real_files_load_with_their_cameras(rel):
    fmt, count, first, size = REAL[rel]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rig = load_rig(data(rel))
    assert detect_format(data(rel)) == fmt
    assert len(rig) == count
    assert rig.names[:len(first)] == first
    if size is not None:
        assert {c.size for c in rig} == {size}
    warned = " ".join(str(w.message) for w in caught)
    assert ("not in metres" in warned) == (rel in MM_FILES)
    assert ("guessed" in warned) == (rel in NO_SIZE)


def centre_distances(rig: Rig) -> np.ndarray:
    return np.linalg.norm(rig.centers, axis=1)


def test_pose2sim_demo_cameras_stand_a_few_metres_away_with_four_coefficients():
    for rel in list(REAL)[:2]:
        rig = read_real(rel)
        assert np.all((centre_distances(rig) > 2) & (centre_distances(rig) < 6))
        assert all(c.dist.size == 4 and c.model == "pinhole" for c in rig)
        assert np.all(rig.centers[:, 2] > 1.5)  # Z-up world, cameras 1.7-2.1 m high


def test_anipose_millimetres_are_read_as_metres_with_a_warning_or_scaled_on_request():
    rel = f"{ANIPOSE}/calib/7cam-allen-mouse/calibration.toml"
    with pytest.warns(UserWarning, match="scale=0.001"):
        as_is = pose2sim.read(data(rel))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = pose2sim.read(data(rel), scale=0.001)
    np.testing.assert_allclose(scaled.centers, as_is.centers / 1000, atol=1e-12)
    assert np.all(centre_distances(scaled) < 2)
    assert as_is[1].t[2] == tomllib.loads(data(rel).read_text())["cam_1"]["translation"][2]


def test_panoptic_reads_every_camera_type_in_centimetres():
    rel = f"{MMPOSE}/panoptic_body3d/160906_band1/calibration_160906_band1.json"
    rig = read_real(rel)
    raw = json.loads(data(rel).read_text())["cameras"]
    assert rig.name == "160906_calib_norm" and rig.up == "-y"
    hd = panoptic.read(data(rel), types=["hd"])
    assert len(hd) == 31 and {c.size for c in hd} == {(1920, 1080)}
    assert len(panoptic.read(data(rel), types=["vga"])) == 479
    assert len(panoptic.read(data(rel), types=["kinect-color"])) == 10
    d = centre_distances(hd)
    assert np.all((d > 1) & (d < 10))
    assert np.all(-hd.centers[:, 1] > 0.5)  # up is -y: the cameras hang above the floor
    t_cm = next(c["t"] for c in raw if c["name"] == "00_03")
    np.testing.assert_allclose(rig["00_03"].t, np.ravel(t_cm) / 100)
    for cam in raw:  # the writer's names -> type/panel/node rule holds for all 520 real cameras
        assert panoptic.panel_node_type(cam["name"]) == {k: cam[k] for k in ("type", "panel", "node")}
    with pytest.raises(RigError, match="no camera of type thermal; this file has hd, kinect-color, vga"):
        panoptic.read(data(rel), types=["thermal"])


@pytest.mark.parametrize("rel, far", [(f"{MMPOSE}/shelf/calibration_shelf.json", 10),
                                      (f"{MMPOSE}/campus/calibration_campus.json", 15)])
def test_shelf_and_campus_cameras_stand_around_a_z_up_scene(rel, far):
    rig = read_real(rel)
    d = centre_distances(rig)
    assert np.all((d > 1) & (d < far))
    assert np.all((rig.centers[:, 2] > 0.5) & (rig.centers[:, 2] < 3.5))  # camera heights, Z-up
    raw = json.loads(data(rel).read_text())
    np.testing.assert_allclose(rig.centers[0] * 1000, np.ravel(raw["0"]["T"]), atol=1e-2)


def test_shelf_size_from_argument_or_from_keys_without_warning(tmp_path):
    rel = f"{MMPOSE}/shelf/calibration_shelf.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rig = shelf.read(data(rel), size=(1000, 700))
    assert {c.size for c in rig} == {(1000, 700)}
    raw = json.loads(data(rel).read_text())
    for cam in raw.values():
        cam.update(width=1032, height=776)
    (tmp_path / "sized.json").write_text(json.dumps(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {c.size for c in load_rig(tmp_path / "sized.json")} == {(1032, 776)}


def test_voxelpose_demo_is_panoptic_hd_cameras_turned_z_up():
    demo = read_real("AlvinYH+Faster-VoxelPose/demo/calibration.json")
    pan = read_real(f"{MMPOSE}/panoptic_body3d/160906_band1/calibration_160906_band1.json")
    M = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # VoxelPose's world turn
    turned = pan.subset(["00_03", "00_06", "00_12", "00_13", "00_23"]).transformed(M.T, np.zeros(3))
    for d, p in zip(demo, turned, strict=True):
        assert d.isclose(p.renamed(d.name), atol=1e-9)
        assert d.size == p.size


def test_caliscope_sessions_and_the_legacy_config_agree():
    for session in ("4_cam_recording", "post_optimization"):
        new = read_real(f"{CALISCOPE}/{session}/camera_array.toml")
        old = caliscope.read(data(f"{CALISCOPE}/{session}/config.toml"))
        assert new.name == session
        assert_same_cameras(new, old, atol=0)
    rig = read_real(f"{CALISCOPE}/charuco_calibration/camera_array.toml")
    assert all(c.dist.size == 5 for c in rig)
    d = np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1)
    assert 0.3 < d[d > 0].min() and d.max() < 3  # webcams around a desk


def test_qualisys_matches_pose2sims_own_conversion_of_the_same_cameras():
    ours = qualisys.read(data(f"{P2S}/Demo_SinglePerson/calibration/Calib.qca.txt"))
    ref = read_real(f"{P2S}/S00_Demo_Session/S00_Calibration/Calib_qualisys.toml")
    assert ours.names == ("cam01", "cam02", "cam03", "cam04")
    for q, p in zip(ours, ref, strict=True):
        assert q.size == p.size == (1088, 1920)
        np.testing.assert_allclose(q.K, p.K, atol=1e-3)
        np.testing.assert_allclose(q.R, p.R, atol=1e-6)
        np.testing.assert_allclose(q.t, p.t, atol=1e-6)
        # the one documented difference: Pose2Sim divides the distortion by 64, we keep it raw
        np.testing.assert_allclose(q.dist[:4] / 64, p.dist, atol=1e-12)
        assert q.dist.size == 5
    raw = (DATA / f"{P2S}/Demo_SinglePerson/calibration/Calib.qca.txt").read_text()
    assert 'radialDistortion1="-0.046183"' in raw and ours[0].dist[0] == -0.046183


def test_qualisys_is_read_only_and_picks_video_cameras(tmp_path):
    rig = read_real(f"{P2S}/Demo_SinglePerson/calibration/Calib.qca.txt")
    with pytest.raises(RigError, match="qualisys files can be read but not written"):
        save_rig(rig, tmp_path / "x.qca.txt", "qualisys")
    text = data(f"{P2S}/Demo_SinglePerson/calibration/Calib.qca.txt").read_text()
    marker = text.replace('model="none" point-count="999999999" serial="cam02"',
                          'model="Oqus 7+" point-count="999999999" serial="cam02"')
    (tmp_path / "mixed.qca.txt").write_text(marker)
    assert qualisys.read(tmp_path / "mixed.qca.txt").names == ("cam01", "cam03", "cam04")
    assert len(qualisys.read(tmp_path / "mixed.qca.txt", video_only=False)) == 4


# --- round trips ----------------------------------------------------------------------------------

def test_mocap_round_trip_is_exact_for_every_field(tmp_path):
    cams = [*random_rig(1, dist_len=8), *random_rig(2, n=2, dist_len=4, model="fisheye", names=["f0", "f1"]),
            *random_rig(3, n=1, dist_len=0, names=["plain"], skew=True)]
    cams[0] = cams[0].replace(fps=59.94, source="rtsp://10.0.0.2/stream", endpoint="tcp://10.0.0.2:5550")
    rig = Rig(tuple(cams), name="lab \"A\"\tnew", up="-y", clock="ptp", simulated=True,
              description="two\nlines")
    path = save_rig(rig, tmp_path / "sub" / "rig.toml")
    assert path == tmp_path / "sub" / "rig.toml"
    back = load_rig(path)
    assert back == rig  # exact: names, sizes, fps, sources, endpoints, every float bit for bit
    text = path.read_text()
    assert tomllib.loads(text) == mocap_toml.to_dict(rig)
    assert "R = [\n    [" in text and text.count("\n    [") == 3 * 2 * len(rig)  # K and R: 3 rows each


@pytest.mark.parametrize("fmt", ["pose2sim", "opencv"])
@pytest.mark.parametrize("dist_len", [0, 4, 5, 8])
def test_pose2sim_and_opencv_keep_any_distortion_length(tmp_path, fmt, dist_len):
    rig = random_rig(dist_len, dist_len=dist_len)
    back = load_rig(write(rig, dest_for(tmp_path, fmt), fmt))
    assert_same_cameras(rig, back)


@pytest.mark.parametrize("fmt", ["panoptic", "shelf", "caliscope"])
def test_five_coefficient_formats_round_trip_and_pad_shorter_lenses(tmp_path, fmt):
    rig = random_rig(7, names=list(CAMS_0_3))
    assert_same_cameras(rig, load_rig(write(rig, dest_for(tmp_path, fmt), fmt)))
    short = random_rig(8, dist_len=4, names=list(CAMS_0_3))
    back = load_rig(write(short, dest_for(tmp_path, fmt, "short"), fmt))
    assert_same_cameras(short, back, dist_len=5)  # the same lens, written with k3 = 0
    X = np.random.default_rng(0).normal(0, 1, (50, 3))
    np.testing.assert_allclose(back.project(X), short.project(X), atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("fmt", ["mocap", "pose2sim", "caliscope"])
def test_fisheye_survives_the_formats_that_have_it(tmp_path, fmt):
    rig = random_rig(4, dist_len=4, model="fisheye", names=list(CAMS_0_3))
    assert_same_cameras(rig, load_rig(write(rig, dest_for(tmp_path, fmt), fmt)))


@pytest.mark.parametrize("rel", sorted(f for f, (fmt, *_) in REAL.items() if fmt in WRITABLE))
def test_real_files_survive_being_written_in_their_own_format(tmp_path, rel):
    fmt = REAL[rel][0]
    rig = read_real(rel)
    again = quiet_load(write(rig, dest_for(tmp_path, fmt), fmt))
    atol = 0 if fmt == "caliscope" else 1e-12
    assert_same_cameras(rig, again, atol=atol)
    if fmt == "panoptic":
        assert again.name == rig.name and again.up == "-y"


def test_conversion_chain_through_every_writable_format_keeps_the_cameras(tmp_path):
    rig = random_rig(11, names=list(CAMS_0_3))
    current = rig
    for i, fmt in enumerate(["mocap", "pose2sim", "opencv", "panoptic", "shelf", "caliscope", "mocap"]):
        current = load_rig(write(current, dest_for(tmp_path, fmt, f"step{i}"), fmt))
        assert detect_format(dest_for(tmp_path, fmt, f"step{i}")) == fmt
    assert_same_cameras(rig, current, atol=1e-9)


def test_foreign_formats_say_which_settings_they_drop(tmp_path):
    rig = load_rig("studio-4")
    with pytest.warns(UserWarning, match="not written: rig simulated, rig description, camera fps, camera "
                                         "source, camera endpoint"):
        save_rig(rig, tmp_path / "calib.toml", "pose2sim")
    plain = random_rig(3, names=list(CAMS_0_3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fmt in WRITABLE:
            save_rig(plain, dest_for(tmp_path, fmt, "plain"), fmt)


@pytest.mark.parametrize("fmt, field, rig", [
    ("shelf", "model", random_rig(1, dist_len=4, model="fisheye")),
    ("panoptic", "model", random_rig(1, dist_len=4, model="fisheye")),
    ("opencv", "model", random_rig(1, dist_len=4, model="fisheye")),
    ("shelf", "K", random_rig(1, skew=True)),
    ("shelf", "dist", random_rig(1, dist_len=8)),
    ("panoptic", "dist", random_rig(1, dist_len=8)),
    ("caliscope", "dist", random_rig(1, dist_len=8)),
])
def test_what_a_format_cannot_carry_is_refused_not_dropped(tmp_path, fmt, field, rig):
    dest = dest_for(tmp_path, fmt)
    with pytest.raises(RigError) as err:
        save_rig(rig, dest, fmt)
    assert str(dest) in str(err.value) and "'cam0'" in str(err.value) and f": {field}:" in str(err.value)
    assert not dest.exists()


def test_writer_name_rules(tmp_path):
    with pytest.raises(RigError, match=r"camera 'cam 0': name: .*letters, digits"):
        save_rig(random_rig(1, names=["cam 0", "b", "c", "d"]), tmp_path / "yml", "opencv")
    with pytest.raises(RigError, match="camera 'metadata': name: this name is reserved"):
        save_rig(random_rig(1, names=["metadata", "b", "c", "d"]), tmp_path / "c.toml", "pose2sim")
    assert caliscope.cam_ids(random_rig(1, names=["cam088", "cam091", "x3", "side7"])) == [88, 91, 3, 7]
    assert caliscope.cam_ids(random_rig(1, names=["left", "right", "c2", "d3"])) == [0, 1, 2, 3]
    with pytest.warns(UserWarning, match="left -> cam_0, right -> cam_1"):
        save_rig(random_rig(1, names=["left", "right", "cam_2", "cam_3"]), tmp_path / "a.toml", "caliscope")
    assert load_rig(tmp_path / "a.toml").names == CAMS_0_3


def test_save_rig_refuses_folders_for_single_file_formats(tmp_path):
    with pytest.raises(RigError, match="is a folder"):
        save_rig(random_rig(), tmp_path, "mocap")
    (tmp_path / "f").write_text("x")
    with pytest.raises(RigError, match="this is a file"):
        save_rig(random_rig(), tmp_path / "f", "opencv")


# --- detection ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", WRITABLE)
def test_detection_reads_the_content_not_the_extension(tmp_path, fmt):
    rig = random_rig(5, names=list(CAMS_0_3))
    written = write(rig, dest_for(tmp_path, fmt), fmt)
    disguised = tmp_path / "x.dat"
    (shutil.copytree if fmt == "opencv" else shutil.copy)(written, disguised)
    assert detect_format(disguised) == fmt
    assert_same_cameras(rig, load_rig(disguised), atol=1e-12)


def test_detection_of_real_files_under_another_name(tmp_path):
    for i, (rel, (fmt, *_)) in enumerate(REAL.items()):
        disguised = tmp_path / f"x{i}.dat"
        shutil.copy(data(rel), disguised)
        assert detect_format(disguised) == fmt, rel


def test_opencv_detected_from_either_file_of_the_pair(tmp_path):
    folder = write(random_rig(), tmp_path / "calib", "opencv")
    assert detect_format(folder / "intri.yml") == detect_format(folder / "extri.yml") == "opencv"
    assert_same_cameras(load_rig(folder / "extri.yml"), load_rig(folder))
    shutil.copy(folder / "intri.yml", tmp_path / "cam_intri.yml")
    shutil.copy(folder / "extri.yml", tmp_path / "cam_extri.yml")
    assert load_rig(tmp_path / "cam_intri.yml").names == ("cam0", "cam1", "cam2", "cam3")


@pytest.mark.parametrize("content, hint", [
    ("", ""), ("hello world\n", "not valid TOML"), ("[section]\nkey = 1\n", ""),
    ('{"a": [1, 2', "not valid JSON"),
    ("[1, 2, 3]", ""), ('{"cameras": [{"name": "a"}]}', ""), ("<svg><g/></svg>", "XML, but not"),
    ("<calibration><cameras>", "not valid XML"), ("%YAML:1.0\n---\nK_a: !!opencv-matrix\n", "OpenCV YAML"),
])
def test_not_a_rig_file_is_refused_listing_the_formats(tmp_path, content, hint):
    path = tmp_path / "notes.toml"
    path.write_text(content)
    with pytest.raises(RigError) as err:
        load_rig(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not a rig file") and hint in msg
    assert all(f"{fmt}:" in msg for fmt in FORMATS)


def test_binary_files_missing_paths_and_bare_folders(tmp_path):
    (tmp_path / "img.bin").write_bytes(bytes(range(256)))
    with pytest.raises(RigError, match="not a rig file in any known format \\(not a text file\\)"):
        load_rig(tmp_path / "img.bin")
    with pytest.raises(RigError, match="no such rig file or preset: .*nothing.toml \\(presets: studio-4"):
        load_rig(tmp_path / "nothing.toml")
    with pytest.raises(RigError, match="a folder is a rig only when it holds EasyMocap's intri.yml"):
        load_rig(tmp_path)
    with pytest.raises(RigError, match="no such rig file or folder"):
        detect_format(tmp_path / "nothing.toml")


# --- bad files: the message names the file, the camera and the field --------------------------------

def toml_file(tmp_path, data_: dict) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(data_))
    return path


def json_file(tmp_path, data_) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data_))
    return path


def good(tmp_path, fmt):
    """A written file of the format, parsed back to plain data (to break one field of)."""
    path = write(random_rig(9, names=list(CAMS_0_3)), dest_for(tmp_path, fmt, "good"), fmt)
    return tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())


def mocap_bad(tmp_path, change):
    d = good(tmp_path, "mocap")
    change(d["camera"][1])
    return toml_file(tmp_path, d)


def pose2sim_bad(tmp_path, change):
    d = good(tmp_path, "pose2sim")
    change(d["cam_1"])
    return toml_file(tmp_path, d)


def caliscope_bad(tmp_path, change):
    d = good(tmp_path, "caliscope")
    change(d["cameras"]["1"])
    return toml_file(tmp_path, d)


def panoptic_bad(tmp_path, change):
    d = good(tmp_path, "panoptic")
    change(d["cameras"][1])
    return json_file(tmp_path, d)


def shelf_bad(tmp_path, change):
    d = good(tmp_path, "shelf")
    change(d["cam_1"])
    return json_file(tmp_path, d)


def delete(key):
    return lambda cam: cam.pop(key)


def set_to(key, value):
    return lambda cam: cam.__setitem__(key, value)


def scale_matrix(key, s):
    return lambda cam: cam.__setitem__(key, (np.array(cam[key]) * s).tolist())


def negate_focal(key):
    def change(cam):
        cam[key][0][0] = -abs(cam[key][0][0])
    return change


BAD = [  # (maker, change, field named in the message)
    (mocap_bad, delete("K"), "K"), (mocap_bad, set_to("K", [[1.0, 0.0], [0.0, 1.0]]), "K"),
    (mocap_bad, scale_matrix("R", 2), "R"), (mocap_bad, negate_focal("K"), "K"),
    (mocap_bad, delete("width"), "width"), (mocap_bad, set_to("t", [1.0, 2.0]), "t"),
    (mocap_bad, set_to("dist", [0.1, 0.2, 0.3]), "dist"),
    (mocap_bad, set_to("model", "orthographic"), "model"),
    (mocap_bad, set_to("fps", "thirty"), "fps"),
    (pose2sim_bad, delete("matrix"), "matrix"), (pose2sim_bad, set_to("rotation", [[1.0, 0, 0]]), "rotation"),
    (pose2sim_bad, negate_focal("matrix"), "K"), (pose2sim_bad, set_to("size", [1920.5, 1080]), "size"),
    (pose2sim_bad, delete("translation"), "translation"),
    (caliscope_bad, delete("distortions"), "distortions"),
    (caliscope_bad, scale_matrix("rotation", 2), "rotation"),
    (caliscope_bad, negate_focal("matrix"), "K"), (caliscope_bad, set_to("size", [1280]), "size"),
    (panoptic_bad, delete("K"), "K"), (panoptic_bad, set_to("t", [[1.0], [2.0]]), "t"),
    (panoptic_bad, scale_matrix("R", 2), "R"), (panoptic_bad, negate_focal("K"), "K"),
    (panoptic_bad, delete("resolution"), "resolution"),
    (shelf_bad, delete("fx"), "fx"), (shelf_bad, set_to("T", [[1.0], [2.0]]), "T"),
    (shelf_bad, scale_matrix("R", 2), "R"), (shelf_bad, set_to("fx", -1000.0), "K"),
    (shelf_bad, set_to("k", [[0.1]]), "k"), (shelf_bad, set_to("cy", "middle"), "cy"),
]


@pytest.mark.parametrize("maker, change, field", BAD)
def test_bad_fields_are_reported_with_file_camera_and_field(tmp_path, maker, change, field):
    path = maker(tmp_path, change)
    with pytest.raises(RigError) as err:
        load_rig(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    assert "'cam_1'" in msg and f"{field}:" in msg, msg


def test_duplicate_camera_names_are_refused_in_every_format_that_has_names(tmp_path):
    makers = [(mocap_bad, "name"), (pose2sim_bad, "name"), (panoptic_bad, "name")]
    for maker, key in makers:
        path = maker(tmp_path, set_to(key, "cam_2"))
        with pytest.raises(RigError, match=rf"^{path}: .*camera names must be unique, repeated: cam_2"):
            load_rig(path)
    path = caliscope_bad(tmp_path, set_to("cam_id", 2))
    with pytest.raises(RigError, match="camera names must be unique, repeated: cam_2"):
        load_rig(path)


def test_rig_level_errors_name_the_file(tmp_path):
    d = good(tmp_path, "mocap")
    d["rig"]["units"] = "mm"
    with pytest.raises(RigError, match=r"bad.toml: rig .*units: rigs are in metres"):
        load_rig(toml_file(tmp_path, d))
    d = good(tmp_path, "mocap")
    del d["camera"][2]["name"]
    with pytest.raises(RigError, match=r"bad.toml: camera '#3': name: missing"):
        load_rig(toml_file(tmp_path, d))
    d = good(tmp_path, "mocap")
    d["camera"][0]["focal"] = 1000
    with pytest.warns(UserWarning, match=r"camera 'cam_0': unknown field\(s\) focal ignored"):
        load_rig(toml_file(tmp_path, d))


def rewrite_yml(path: Path, key: str, change) -> None:
    """Rewrite an OpenCV YAML file with one matrix changed (every other node kept)."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    root = fs.root()
    names = [root.getNode("names").at(i).string() for i in range(root.getNode("names").size())]
    mats = {k: root.getNode(k).mat() for k in root.keys() if k != "names"}
    fs.release()
    mats[key] = change(mats[key])
    out = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    out.startWriteStruct("names", cv2.FileNode_SEQ)
    for n in names:
        out.write("", n)
    out.endWriteStruct()
    for k, m in mats.items():
        out.write(k, m)
    out.release()


def test_bad_opencv_files(tmp_path):
    folder = write(random_rig(9, names=list(CAMS_0_3)), tmp_path / "calib", "opencv")
    intri = (folder / "intri.yml").read_text()
    (folder / "intri.yml").write_text(intri.replace("K_cam_1:", "Kx_cam_1:"))
    with pytest.raises(RigError, match=rf"^{folder / 'intri.yml'}: camera 'cam_1': K_cam_1: missing"):
        load_rig(folder)
    (folder / "intri.yml").write_text(intri)
    extri = (folder / "extri.yml").read_text()
    rewrite_yml(folder / "extri.yml", "Rot_cam_2", lambda rot: rot @ rotvec_to_matrix([0.01, 0, 0]))
    with pytest.raises(RigError, match=r"extri.yml: camera 'cam_2': Rot_cam_2: disagrees with R_cam_2"):
        load_rig(folder)
    (folder / "extri.yml").write_text(extri.replace("T_cam_3:", "Tx_cam_3:"))
    with pytest.raises(RigError, match=r"extri.yml: camera 'cam_3': T_cam_3: missing"):
        load_rig(folder)
    (folder / "extri.yml").write_text(extri.replace("names:", "names_:", 1))
    with pytest.raises(RigError, match=r"extri.yml: names: missing"):
        load_rig(folder)


def test_bad_qualisys_files(tmp_path):
    text = data(f"{P2S}/Demo_SinglePerson/calibration/Calib.qca.txt").read_text()
    bad = tmp_path / "bad.qca.txt"
    bad.write_text(text.replace('focalLengthU="107118.695313"', 'focalLengthU="-107118.695313"'))
    with pytest.raises(RigError, match=rf"^{bad}: camera 'cam02': K: focal lengths must be positive"):
        load_rig(bad)
    bad.write_text(text.replace('r11="-0.740641130147863"', 'r11="0.740641130147863"'))
    with pytest.raises(RigError, match=rf"^{bad}: camera 'cam03': transform.r11..r33: not a rotation"):
        load_rig(bad)
    start = text.index('<fov_video bottom="1919"', text.index('serial="cam04"'))
    bad.write_text(text[:start] + text[text.index("/>", start) + 2:])
    with pytest.raises(RigError, match=rf"^{bad}: camera 'cam04': fov_video: missing"):
        load_rig(bad)


# --- format specifics -----------------------------------------------------------------------------

EASYMOCAP_INTRI = """%YAML:1.0\r
---\r
names:\r
  - "01"\r
  - "02"\r
K_01: !!opencv-matrix\r
  rows: 3\r
  cols: 3\r
  dt: d\r
  data: [1000.000000, 0.000000, 959.500000, 0.000000, 1000.000000, 539.500000, 0.000000, 0.000000, 1.000000]\r
dist_01: !!opencv-matrix\r
  rows: 1\r
  cols: 5\r
  dt: d\r
  data: [-0.100000, 0.010000, 0.000000, 0.000000, 0.000000]\r
K_02: !!opencv-matrix\r
  rows: 3\r
  cols: 3\r
  dt: d\r
  data: [1100.000000, 0.000000, 950.000000, 0.000000, 1100.000000, 530.000000, 0.000000, 0.000000, 1.000000]\r
dist_02: !!opencv-matrix\r
  rows: 1\r
  cols: 5\r
  dt: d\r
  data: [0.000000, 0.000000, 0.000000, 0.000000, 0.000000]\r
"""


def easymocap_extri(rig: Rig) -> str:
    """extri.yml as EasyMocap's own writer formats it (6 decimals, CRLF)."""
    out = ["%YAML:1.0", "---", "names:", '  - "01"', '  - "02"']
    for name, cam in zip(("01", "02"), rig, strict=True):
        for key, m in ((f"R_{name}", matrix_to_rotvec(cam.R)[:, None]), (f"Rot_{name}", cam.R),
                       (f"T_{name}", cam.t[:, None])):
            out += [f"{key}: !!opencv-matrix", f"  rows: {m.shape[0]}", f"  cols: {m.shape[1]}", "  dt: d",
                    "  data: [" + ", ".join(f"{v:.6f}" for v in m.ravel()) + "]"]
    return "\r\n".join(out) + "\r\n"


def test_easymocap_files_as_easymocap_writes_them(tmp_path):
    rig = random_rig(12, n=2)
    (tmp_path / "intri.yml").write_text(EASYMOCAP_INTRI)
    (tmp_path / "extri.yml").write_text(easymocap_extri(rig))
    with pytest.warns(UserWarning, match="guessed 1920x1080 from the principal points"):
        back = load_rig(tmp_path)
    assert back.names == ("01", "02") and back.name == tmp_path.name
    assert {c.size for c in opencv_yaml.read(tmp_path, size=(1280, 720))} == {(1280, 720)}
    np.testing.assert_allclose(back["01"].K[0], [1000, 0, 959.5])
    np.testing.assert_allclose(back["01"].dist, [-0.1, 0.01, 0, 0, 0])
    for a, b in zip(rig, back, strict=True):
        np.testing.assert_allclose(b.R, a.R, atol=2e-6)  # R from the 6-decimal Rodrigues vector
        np.testing.assert_allclose(b.t, a.t, atol=1e-6)


def test_caliscope_skips_uncalibrated_and_keeps_ignored_cameras(tmp_path):
    d = good(tmp_path, "caliscope")
    d["cameras"]["2"]["ignore"] = True
    for key in ("rotation", "translation"):
        del d["cameras"]["3"][key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rig = load_rig(toml_file(tmp_path, d))
    assert rig.names == ("cam_0", "cam_1", "cam_2")
    messages = " | ".join(str(w.message) for w in caught)
    assert "skipped: cam_3" in messages and "ignore = true in caliscope, kept: cam_2" in messages
    d["cameras"]["1"]["rotation"] = matrix_to_rotvec(np.array(d["cameras"]["1"]["rotation"])).tolist()
    d["cameras"]["2"]["ignore"] = False
    with pytest.warns(UserWarning, match="skipped: cam_3"):
        rvec_rig = caliscope.read(toml_file(tmp_path, d))
    np.testing.assert_allclose(rvec_rig["cam_1"].R, rig["cam_1"].R, atol=1e-12)  # older files: Rodrigues


def test_pose2sim_names_come_from_the_name_field_else_the_section(tmp_path):
    d = good(tmp_path, "pose2sim")
    del d["cam_2"]["name"]
    d["cam_1"]["name"] = "left"
    d["cam_1"].pop("fisheye")  # absent means pinhole
    rig = load_rig(toml_file(tmp_path, d))
    assert rig.names == ("cam_0", "left", "cam_2", "cam_3") and rig["left"].model == "pinhole"


def test_image_size_guess_falls_back_to_twice_the_principal_point():
    assert image_size.guess([[959.5, 539.5], [940, 560]]) == [(1920, 1080)] * 2
    assert image_size.guess([[100.0, 900.0]]) == [(200, 1800)]


def test_clock_offset_round_trips_in_rig_toml_and_is_named_when_bad(tmp_path):
    rig = load_rig("studio-4")
    rig = rig.with_camera(rig["cam2"].replace(clock_offset_ns=-37_000_000))
    back = load_rig(save_rig(rig, tmp_path / "rig.toml"))
    assert back["cam2"].clock_offset_ns == -37_000_000 and back["cam0"].clock_offset_ns == 0
    assert back == rig
    text = (tmp_path / "rig.toml").read_text().replace("clock_offset_ns = -37000000", 'clock_offset_ns = "soon"')
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(RigError, match=r"bad\.toml.*cam2.*clock_offset_ns"):
        load_rig(tmp_path / "bad.toml")
    with pytest.warns(UserWarning, match="clock_offset_ns"):
        save_rig(rig, tmp_path / "calib.toml", "pose2sim")
