import pytest

from rigs.formats import load_rig
from rigs.session_file import SessionInfo, StageRecord, read_session_info, write_session_toml


def test_session_toml_round_trips_and_is_also_a_rig_file(tmp_path):
    rig = load_rig("studio-4")
    info = SessionInfo("walk_01", 30.0, 1_700_000_000_000_000_000, simulated=True, notes="two people",
                       stages=(StageRecord("record", "mocap record ...", 1_700_000_010_000_000_000,
                                           ("video/", "sync.csv")),))
    path = write_session_toml(tmp_path, info, rig)
    assert read_session_info(tmp_path) == info
    assert load_rig(path) == rig  # the rig snapshot reads back through the ordinary rig loader


def test_a_folder_without_session_toml_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a session folder"):
        read_session_info(tmp_path)
