"""Tests for rigs/keypoint_files.py: OpenPose JSON folders (real Pose2Sim data), COCO results, our npz."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rigs.keypoint_files import (
    KeypointFileError,
    Keypoints2DSequence,
    frame_number,
    normalized_camera_name,
    read_coco_results,
    read_keypoints_dir,
    read_keypoints_npz,
    read_openpose_folder,
    write_coco_results,
    write_keypoints_npz,
    write_openpose_folder,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
POSE = (DATA / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session/S00_P00_SingleParticipant"
        / "S00_P00_T01_BalancingTrial/pose")


def _real_folder(cam: str) -> Path:
    folder = POSE / f"{cam}_json"
    if not folder.is_dir():
        pytest.skip(f"../shared/data is absent: {folder} not found")
    return folder


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _random_keypoints(rng, t=4, p=3, j=17, empty=0.3) -> np.ndarray:
    kp = np.empty((t, p, j, 3), dtype=np.float32)
    kp[..., :2] = rng.uniform(0, 1920, (t, p, j, 2))
    kp[..., 2] = rng.uniform(0.01, 1, (t, p, j))
    missing = rng.random((t, p, j)) < empty
    kp[missing, :2], kp[missing, 2] = np.nan, 0
    return kp


@pytest.mark.parametrize("name, number", [("cam01.0042.json", 42), ("frame_000012_keypoints.json", 12),
                                          ("video7_000000000003_keypoints.json", 3), ("/a/b1/c.0.json", 0)])
def test_frame_number_is_the_last_digit_run(name, number):
    assert frame_number(name) == number


def test_frame_number_needs_digits():
    with pytest.raises(KeypointFileError, match="no frame number"):
        frame_number("keypoints.json")


def test_read_real_pose2sim_body25b_folder():
    folder = _real_folder("cam01")
    seq = read_openpose_folder(folder, skeleton="BODY_25B")
    assert seq.skeleton == "body25b" and seq.t_ns is None
    assert seq.keypoints.shape == (100, 3, 25, 3) and seq.keypoints.dtype == np.float32
    assert np.array_equal(seq.frame_indices, np.arange(100))
    first = json.loads((folder / "cam01.0000.json").read_text())["people"]
    for p, person in enumerate(first):
        raw = np.array(person["pose_keypoints_2d"], dtype=np.float32).reshape(25, 3)
        missing = raw[:, 2] == 0
        assert np.array_equal(seq.keypoints[0, p][~missing], raw[~missing])
        assert np.isnan(seq.keypoints[0, p][missing, :2]).all()
        assert (seq.keypoints[0, p][missing, 2] == 0).all()
    # frames with two people have an empty third slot: NaN coordinates and score 0
    people = np.array([len(json.loads(f.read_text())["people"]) for f in sorted(folder.glob("*.json"))])
    slot3 = seq.keypoints[people == 2, 2]
    assert len(slot3) and np.isnan(slot3[..., :2]).all() and (slot3[..., 2] == 0).all()
    assert not np.isnan(seq.keypoints[people == 3, 2, :, 2]).any()
    # a missing joint never keeps its 0, 0 coordinates
    assert not ((seq.keypoints[..., 0] == 0) & (seq.keypoints[..., 1] == 0)).any()


def test_real_folder_without_a_name_is_body25_by_default():
    assert read_openpose_folder(_real_folder("cam03")).skeleton == "body25"


@pytest.mark.parametrize("cam", ["cam01", "cam03"])
def test_real_folder_round_trips_through_openpose_json(cam, tmp_path):
    seq = read_openpose_folder(_real_folder(cam), skeleton="body25b")
    paths = write_openpose_folder(tmp_path / cam, seq.keypoints, seq.frame_indices, prefix=f"{cam}.",
                                  digits=4, suffix="")
    assert [p.name for p in paths[:2]] == [f"{cam}.0000.json", f"{cam}.0001.json"]
    back = read_openpose_folder(tmp_path / cam, skeleton="body25b")
    assert _same(back.keypoints, seq.keypoints)
    assert np.array_equal(back.frame_indices, seq.frame_indices) and back.skeleton == "body25b"
    # the files we write are OpenPose files: same people count and 0,0,0 for missing joints
    orig = json.loads((_real_folder(cam) / f"{cam}.0005.json").read_text())["people"]
    ours = json.loads((tmp_path / cam / f"{cam}.0005.json").read_text())["people"]
    assert len(ours) == len(orig)
    assert np.allclose([p["pose_keypoints_2d"] for p in ours], [p["pose_keypoints_2d"] for p in orig],
                       atol=1e-3)


def test_default_names_are_openpose_names_and_frames_are_sorted_numerically(tmp_path):
    kp = _random_keypoints(np.random.default_rng(0), t=3)
    paths = write_openpose_folder(tmp_path, kp, [100, 2, 30])
    assert paths[0].name == "000000000100_keypoints.json"
    back = read_openpose_folder(tmp_path)
    assert np.array_equal(back.frame_indices, [2, 30, 100])
    assert _same(back.keypoints, kp[[1, 2, 0]])


def test_write_leaves_out_trailing_empty_people_only(tmp_path):
    kp = _random_keypoints(np.random.default_rng(1), t=2, p=3, empty=0)
    kp[0, 0] = kp[0, 2] = np.nan
    kp[0, 0, :, 2] = kp[0, 2, :, 2] = 0
    write_openpose_folder(tmp_path, kp)
    people = json.loads((tmp_path / "000000000000_keypoints.json").read_text())["people"]
    assert len(people) == 2 and set(people[0]["pose_keypoints_2d"]) == {0}
    assert _same(read_openpose_folder(tmp_path).keypoints, kp)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([15, 17, 18, 24, 25, 26, 33]))
def test_openpose_and_coco_round_trip_random_keypoints(seed, joints):
    import tempfile
    kp = _random_keypoints(np.random.default_rng(seed), j=joints)
    kp[:, -1] = np.nan  # the last slot is empty in every frame...
    kp[:, -1, :, 2] = 0
    kp[2, -1] = _random_keypoints(np.random.default_rng(seed + 1), t=1, p=1, j=joints)[0, 0]  # ...but one
    with tempfile.TemporaryDirectory() as tmp:
        write_openpose_folder(Path(tmp) / "op", kp, np.arange(4) * 10)
        back = read_openpose_folder(Path(tmp) / "op")
        assert _same(back.keypoints, kp) and np.array_equal(back.frame_indices, np.arange(4) * 10)
        write_coco_results(Path(tmp) / "coco.json", kp, np.arange(4) * 10)
        back = read_coco_results(Path(tmp) / "coco.json")
        assert _same(back.keypoints, kp) and np.array_equal(back.frame_indices, np.arange(4) * 10)


def test_malformed_json_names_the_file(tmp_path):
    write_openpose_folder(tmp_path, _random_keypoints(np.random.default_rng(2), t=3))
    bad = tmp_path / "000000000001_keypoints.json"
    bad.write_text('{"version": 1.3, "people": [{"pose_keypoints_2d": [1, 2')
    with pytest.raises(KeypointFileError, match="000000000001_keypoints.json: not a readable OpenPose JSON"):
        read_openpose_folder(tmp_path)
    bad.write_text('{"version": 1.3, "people": [{"pose_keypoints_2d": [1, 2, 0.5, 4]}]}')
    with pytest.raises(KeypointFileError, match="000000000001_keypoints.json: person 0"):
        read_openpose_folder(tmp_path)
    bad.write_text('{"version": 1.3}')
    with pytest.raises(KeypointFileError, match="000000000001_keypoints.json: no 'people' list"):
        read_openpose_folder(tmp_path)


def test_folder_problems(tmp_path):
    with pytest.raises(KeypointFileError, match="not a folder"):
        read_openpose_folder(tmp_path / "nope")
    with pytest.raises(KeypointFileError, match="no .json files"):
        read_openpose_folder(tmp_path)
    (tmp_path / "a_1.json").write_text('{"people": []}')
    (tmp_path / "b_01.json").write_text('{"people": []}')
    with pytest.raises(KeypointFileError, match="frame number 1"):
        read_openpose_folder(tmp_path)
    (tmp_path / "b_01.json").unlink()
    with pytest.raises(KeypointFileError, match="--skeleton NAME"):
        read_openpose_folder(tmp_path)
    empty = read_openpose_folder(tmp_path, skeleton="coco17")
    assert empty.keypoints.shape == (1, 0, 17, 3)
    (tmp_path / "a_2.json").write_text('{"people": [{"pose_keypoints_2d": [1, 2, 1, 1, 2, 1]}]}')
    with pytest.raises(KeypointFileError, match="--skeleton NAME"):
        read_openpose_folder(tmp_path)


def test_mixed_joint_counts_and_wrong_skeleton(tmp_path):
    write_openpose_folder(tmp_path, _random_keypoints(np.random.default_rng(3), t=2, j=17))
    with pytest.raises(KeypointFileError, match="has 25 joints but the keypoints have 17"):
        read_openpose_folder(tmp_path, skeleton="body25")
    write_openpose_folder(tmp_path, _random_keypoints(np.random.default_rng(3), t=1, j=25), [7])
    with pytest.raises(KeypointFileError, match="mixes skeleton formats"):
        read_openpose_folder(tmp_path)


def test_coco_results_group_by_image_and_keep_file_order(tmp_path):
    dets = [
        {"image_id": 5, "category_id": 1, "keypoints": [1, 2, 0.9] * 17, "score": 0.9},
        {"image_id": 3, "category_id": 1, "keypoints": [3, 4, 0.8] * 17, "score": 0.8},
        {"image_id": 5, "category_id": 1, "keypoints": [5, 6, 0.7] * 16 + [0, 0, 0], "score": 0.7},
        {"image_id": 5, "category_id": 2, "keypoints": [9, 9, 1.0] * 17, "score": 1.0},  # not a person
    ]
    (tmp_path / "r.json").write_text(json.dumps(dets))
    seq = read_coco_results(tmp_path / "r.json")
    assert seq.skeleton == "coco17" and np.array_equal(seq.frame_indices, [3, 5])
    assert seq.keypoints.shape == (2, 2, 17, 3)
    assert (seq.keypoints[0, 0, :, 0] == 3).all() and np.isnan(seq.keypoints[0, 1]).any()
    assert (seq.keypoints[1, 0, :, 0] == 1).all() and (seq.keypoints[1, 1, :16, 0] == 5).all()
    assert np.isnan(seq.keypoints[1, 1, 16, :2]).all() and seq.keypoints[1, 1, 16, 2] == 0
    assert read_coco_results(tmp_path / "r.json", skeleton="h36m17").skeleton == "h36m17"


def test_coco_dataset_dict_takes_frames_from_file_names(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "cam2/frame_000040.jpg"},
                      {"id": 2, "file_name": "frame_000041.jpg"},
                      {"id": 9, "file_name": "frame_000039.jpg"}],
           "annotations": [{"image_id": 2, "category_id": 1, "keypoints": [1, 2, 2] * 17},
                           {"image_id": 1, "category_id": 1, "keypoints": [3, 4, 1] * 17}],
           "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "d.json").write_text(json.dumps(doc))
    seq = read_coco_results(tmp_path / "d.json")
    assert np.array_equal(seq.frame_indices, [39, 40, 41])  # image 9 has no person but is a frame
    assert seq.keypoints.shape == (3, 1, 17, 3) and np.isnan(seq.keypoints[0]).any()
    assert (seq.keypoints[1, 0, :, 0] == 3).all() and (seq.keypoints[2, 0, :, 0] == 1).all()


def test_coco_problems_name_the_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("[{")
    with pytest.raises(KeypointFileError, match="bad.json: not a readable COCO JSON"):
        read_coco_results(p)
    p.write_text(json.dumps([{"image_id": 1, "keypoints": [1, 2]}]))
    with pytest.raises(KeypointFileError, match="bad.json: detection 0 keypoints"):
        read_coco_results(p)
    p.write_text(json.dumps([{"keypoints": [1, 2, 3]}]))
    with pytest.raises(KeypointFileError, match="bad.json: detection 0 lacks"):
        read_coco_results(p)
    p.write_text(json.dumps({"info": {}}))
    with pytest.raises(KeypointFileError, match="bad.json: .*'annotations'"):
        read_coco_results(p)


def test_coco_written_score_is_the_mean_joint_score(tmp_path):
    kp = _random_keypoints(np.random.default_rng(4), t=1, p=1)
    write_coco_results(tmp_path / "c.json", kp, [12])
    (det,) = json.loads((tmp_path / "c.json").read_text())
    assert det["image_id"] == 12 and det["category_id"] == 1
    s = kp[0, 0, :, 2]
    assert det["score"] == pytest.approx(s[s > 0].mean(), rel=1e-6)


def test_npz_round_trip(tmp_path):
    kp = _random_keypoints(np.random.default_rng(5), j=25)
    t_ns = np.arange(4, dtype=np.int64) * 16_666_667 + 10**18
    write_keypoints_npz(tmp_path / "keypoints2d" / "cam1.npz", kp, t_ns, "BODY-25")
    seq = read_keypoints_npz(tmp_path / "keypoints2d" / "cam1.npz")
    assert _same(seq.keypoints, kp) and np.array_equal(seq.t_ns, t_ns) and seq.t_ns.dtype == np.int64
    assert seq.skeleton == "body25" and np.array_equal(seq.frame_indices, np.arange(4))
    with np.load(tmp_path / "keypoints2d" / "cam1.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"keypoints", "t_ns", "skeleton"} and npz["keypoints"].dtype == np.float32
    write_keypoints_npz(tmp_path / "c.npz", kp, t_ns, "body25", frame_indices=[3, 4, 8, 9])
    assert np.array_equal(read_keypoints_npz(tmp_path / "c.npz").frame_indices, [3, 4, 8, 9])


def test_npz_problems(tmp_path):
    kp = _random_keypoints(np.random.default_rng(6))
    with pytest.raises(ValueError, match="t_ns must be"):
        write_keypoints_npz(tmp_path / "a.npz", kp, np.arange(3), "coco17")
    np.savez(tmp_path / "b.npz", keypoints=kp, skeleton=np.array("coco17"))
    with pytest.raises(KeypointFileError, match="b.npz: missing t_ns"):
        read_keypoints_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", keypoints=kp, t_ns=np.arange(4), skeleton=np.array("body25"))
    with pytest.raises(KeypointFileError, match="c.npz: .*has 25 joints"):
        read_keypoints_npz(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(KeypointFileError, match="d.npz: not a readable"):
        read_keypoints_npz(tmp_path / "d.npz")


def test_sequence_record_is_read_only_and_validated():
    kp = _random_keypoints(np.random.default_rng(7))
    seq = Keypoints2DSequence(kp, np.arange(4), "coco17")
    with pytest.raises(ValueError):
        seq.keypoints[0, 0, 0, 0] = 1
    kp[0, 0, 0, 0] = 1  # the caller's array stays writable and is not shared
    assert seq.keypoints[0, 0, 0, 0] != 1
    with pytest.raises(KeypointFileError, match=r"\[T, P, J, 3\]"):
        Keypoints2DSequence(kp[0], np.arange(3), "coco17")
    with pytest.raises(KeypointFileError, match="frame_indices"):
        Keypoints2DSequence(kp, np.arange(3), "coco17")


# ---------------------------------------------------------------- read_keypoints_dir: every camera of a rig

QUALISYS = DATA / "perfanalytics+pose2sim/Pose2Sim/S00_Demo_Session/S00_Calibration/Calib_qualisys.toml"


@pytest.mark.parametrize("name, norm", [("cam01_json", "cam01"), ("cam_01", "cam01"), ("Cam-01", "cam01"),
                                        ("left view", "leftview"), ("cam3", "cam3")])
def test_camera_names_are_matched_loosely(name, norm):
    assert normalized_camera_name(name) == norm


def test_read_real_pose2sim_pose_folder_for_the_qualisys_rig():
    """Pose2Sim's ``camXX_json`` folders belong to the calibration's cameras ``cam_XX``."""
    _real_folder("cam01")
    from rigs.formats import load_rig

    names = load_rig(QUALISYS).names
    assert names == ("cam_01", "cam_02", "cam_03", "cam_04")
    kp = read_keypoints_dir(POSE, names, "openpose", "body25b")
    assert list(kp) == list(names)
    assert {s.skeleton for s in kp.values()} == {"body25b"}
    assert kp["cam_01"].keypoints.shape == (100, 3, 25, 3) and kp["cam_04"].keypoints.shape == (100, 1, 25, 3)
    assert _same(kp["cam_03"].keypoints, read_openpose_folder(POSE / "cam03_json", "body25b").keypoints)


def _openpose_dirs(root, names, t=2):
    rng = np.random.default_rng(0)
    for name in names:
        write_openpose_folder(root / name, _random_keypoints(rng, t=t, p=1, j=25), prefix=f"{name}_", digits=6)


def test_openpose_dir_matches_by_sorted_order_with_a_warning(tmp_path):
    _openpose_dirs(tmp_path, ["left_json", "right_json"])
    (tmp_path / "truth").mkdir()  # folders without JSON files are not cameras
    (tmp_path / "truth" / "poses3d.npz").write_bytes(b"")
    with pytest.warns(UserWarning, match="sorted order: camA <- left_json, camB <- right_json"):
        kp = read_keypoints_dir(tmp_path, ["camB", "camA"])
    assert _same(kp["camA"].keypoints, read_openpose_folder(tmp_path / "left_json").keypoints)
    assert _same(kp["camB"].keypoints, read_openpose_folder(tmp_path / "right_json").keypoints)


def test_openpose_dir_names_what_is_missing(tmp_path):
    _openpose_dirs(tmp_path, ["cam0", "cam1"])
    with pytest.raises(KeypointFileError, match=r"no openpose keypoints for camera\(s\) cam7; found cam0, cam1; "
                                                r"expected one sub-folder of OpenPose JSON files per camera"):
        read_keypoints_dir(tmp_path, ["cam0", "cam1", "cam7"])
    with pytest.raises(KeypointFileError, match="not a folder"):
        read_keypoints_dir(tmp_path / "nowhere", ["cam0"])
    with pytest.raises(KeypointFileError, match="unknown keypoint format 'bvh'"):
        read_keypoints_dir(tmp_path, ["cam0"], "bvh")
    _openpose_dirs(tmp_path, ["cam_0"])
    with pytest.raises(KeypointFileError, match="cam0, cam_0 all match camera 'cam0'"):
        read_keypoints_dir(tmp_path, ["cam0", "cam1"])


def test_npz_dir_reads_keypoints2d_subfolder_or_the_folder_itself(tmp_path):
    rng = np.random.default_rng(3)
    kp = {n: _random_keypoints(rng, t=3, p=2, j=17) for n in ("cam0", "cam1")}
    for n, arr in kp.items():
        write_keypoints_npz(tmp_path / "session" / "keypoints2d" / f"{n}.npz", arr, np.arange(3), "coco17")
        write_keypoints_npz(tmp_path / "flat" / f"{n}.npz", arr, np.arange(3), "coco17")
    for where in ("session", "flat"):
        out = read_keypoints_dir(tmp_path / where, ["cam1", "cam0"], "npz")
        assert list(out) == ["cam1", "cam0"]
        assert all(_same(out[n].keypoints, kp[n]) for n in kp)
    with pytest.raises(KeypointFileError, match="holds coco17 keypoints, not h36m17"):
        read_keypoints_dir(tmp_path / "flat", ["cam0", "cam1"], "npz", skeleton="h36m17")


def test_coco_dir_reads_one_results_file_per_camera(tmp_path):
    rng = np.random.default_rng(4)
    kp = {n: _random_keypoints(rng, t=3, p=1, j=17, empty=0.0) for n in ("cam_0", "cam_1")}
    for n, arr in kp.items():
        write_coco_results(tmp_path / f"{n.replace('_', '')}.json", arr)
    out = read_keypoints_dir(tmp_path, ["cam_0", "cam_1"], "coco")
    assert all(_same(out[n].keypoints, kp[n]) for n in kp)
