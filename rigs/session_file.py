"""`session.toml`: the record at the top of a session folder (rig snapshot, rate, start, notes, stages run).

It lives in `rigs/` because every stage reads it (the rig snapshot) and the recorder writes it.

The file is a valid mocap rig file too (its `[rig]` and `[[camera]]` tables are the rig snapshot), so
`--rig sessions/x/session.toml` works wherever a rig is taken.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from rigs.camera import Rig
from rigs.formats import mocap_toml


@dataclass(frozen=True)
class StageRecord:
    """One stage that ran on the session: what, when, with which command, and what it wrote."""

    name: str
    command: str
    finished_ns: int
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionInfo:
    """What session.toml says besides the rig."""

    name: str
    fps: float
    start_ns: int
    simulated: bool = False
    notes: str = ""
    stages: tuple[StageRecord, ...] = field(default_factory=tuple)


def write_session_toml(folder: str | Path, info: SessionInfo, rig: Rig) -> Path:
    """Write session.toml in folder: the session table, the stages that ran, then the rig snapshot."""
    path = Path(folder) / "session.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {
        "session": {
            "name": info.name,
            "fps": float(info.fps),
            "start_ns": int(info.start_ns),
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(info.start_ns / 1e9)),
            "simulated": info.simulated,
            "notes": info.notes,
        },
        "stage": [
            {"name": s.name, "command": s.command, "finished_ns": s.finished_ns, "outputs": list(s.outputs)}
            for s in info.stages
        ],
    }
    path.write_text("# mocap session record\n" + tomli_w.dumps(head) + "\n" + mocap_toml.to_text(rig))
    return path


def read_session_info(folder: str | Path) -> SessionInfo:
    """Read the session table and stage list of a session folder's session.toml."""
    path = Path(folder) / "session.toml"
    if not path.exists():
        raise FileNotFoundError(f"{folder}: not a session folder (no session.toml)")
    with path.open("rb") as f:
        data = tomllib.load(f)
    s = data.get("session", {})
    stages = tuple(StageRecord(d["name"], d.get("command", ""), int(d.get("finished_ns", 0)),
                               tuple(d.get("outputs", ()))) for d in data.get("stage", ()))
    return SessionInfo(s.get("name", Path(folder).name), float(s.get("fps", 0.0)), int(s.get("start_ns", 0)),
                       bool(s.get("simulated", False)), s.get("notes", ""), stages)
