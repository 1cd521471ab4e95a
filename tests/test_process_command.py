"""`mocap process`: on a recorded simulated session (studio-4 at 320x180, 1 person, 2 s) every stage runs and the
report page links only files that exist; a second run finds every stage current; a newer poses3d.npz re-runs
fit, export and overlay but not reconstruct; a failing stage is reported and the stages that do not need it
still run; a session that cannot be reconstructed still gets its report page."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from capture.protocol import frame_from_image
from capture.recorder import Recorder
from capture.sources import SimulatedCameraSource
from mocap.process_command import CURRENT, RAN, STAGES, _Run, process_session
from rigs.formats import load_rig, save_rig

FPS = 30.0


@pytest.fixture(autouse=True)
def _standin(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MOCAP_STANDIN_DIR", str(tmp_path_factory.getbasetemp() / "standin"))
    monkeypatch.delenv("MOCAP_BODY_MODELS", raising=False)


def _mocap(*argv) -> tuple[int, str, str]:
    from mocap import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _record(folder: Path, frames: int, people: int = 1) -> Path:
    """What `mocap record` leaves from studio-4's simulated cameras (at 320x180): rendered frames with their truth."""
    rig = load_rig("studio-4")
    rig = rig.replace(cameras=tuple(c.resized(320, 180) for c in rig.cameras))
    sources = {c.name: SimulatedCameraSource(c, pace=False, seed=1, people=people, seconds=frames / FPS)
               for c in rig.cameras}
    recorder = Recorder(folder, rig, segment_s=1.0)
    t0, period = 5_000_000_000, round(1e9 / FPS)
    for i in range(frames):
        for cam in rig.names:
            t = t0 + i * period
            recorder.add(frame_from_image(cam, i, t, sources[cam].read().image, truth=sources[cam].truth(i)),
                         t + 1_000_000)
    recorder.close()
    return folder


def _statuses(session: Path) -> dict[str, str]:
    state = json.loads((session / "report" / "process.json").read_text())
    return {k: v["status"] for k, v in state["last_run"].items()}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def _links(page: Path) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


def _mtimes(session: Path) -> dict[str, int]:
    files = [session / "poses3d.npz", *(session / "smpl").glob("*"), *(session / "export").glob("*"),
             session / "report" / "overlay_cam0.mp4", session / "report" / "index.html"]
    return {str(p.relative_to(session)): p.stat().st_mtime_ns for p in files}


def _touch(path: Path) -> int:
    now = time.time_ns()
    os.utime(path, ns=(now, now))
    return now


def test_runs_every_stage_then_only_what_is_stale(tmp_path, monkeypatch):
    session = _record(tmp_path / "take", frames=60)
    code, out, err = _mocap("process", session)
    assert code == 0, err
    assert _statuses(session) == dict.fromkeys(STAGES, RAN)
    assert "mocap process" in out and "reprojection check" in out
    assert (session / "poses3d.npz").is_file() and list((session / "smpl").glob("track_*.npz"))
    assert {p.suffix for p in (session / "export").iterdir()} >= {".bvh", ".npz", ".trc", ".c3d", ".json"}
    report = session / "report"
    assert (report / "overlay_cam0.mp4").stat().st_size > 10_000
    links = _links(report / "index.html")
    missing = [link for link in links if not (report / link).exists()]
    assert links and not missing, missing
    assert {(report / link).resolve() for link in links} >= {p.resolve() for p in report.rglob("*.png")}
    assert {p.name for p in (session / "export").iterdir()} <= {Path(link).name for link in links}
    assert "overlay_cam0.mp4" in links and "reconstruction_summary.txt" in links and "fit/summary.txt" in links
    page = (report / "index.html").read_text()
    assert "<img" in page and "KB" in page and "mocap reconstruct" in page

    # a second run: everything is current and nothing is rewritten
    before = _mtimes(session)
    results = process_session(session, Console(file=io.StringIO()))
    assert [r.status for r in results] == [CURRENT] * len(STAGES)
    assert _mtimes(session) == before

    # another rig makes reconstruct stale (checked without running it)
    rig = load_rig(session / "session.toml")
    cam = rig["cam1"]
    save_rig(rig.with_camera(cam.with_extrinsics(cam.R, cam.t + [0.01, 0, 0])), tmp_path / "moved.toml")
    for rig_arg, current in ((None, True), (str(tmp_path / "moved.toml"), False)):
        run = _Run(session, Console(file=io.StringIO()), rig_arg, False, None)
        assert run._current("reconstruct", *run._reconstruct_files()) is current

    # a newer poses3d.npz: fit, export, overlay and the page run again, reconstruct does not. The fit is the
    # slow stage (tens of seconds here): its second run is counted and rewrites the first run's files.
    import mocap.fit_command

    fits = []

    def refit(args, console) -> int:
        fits.append(args)
        for path in Path(args.session, "smpl").glob("track_*.npz"):
            path.write_bytes(path.read_bytes())
        return 0

    with monkeypatch.context() as patched:
        patched.setattr(mocap.fit_command, "run_fit", refit)
        touched = _touch(session / "poses3d.npz")
        results = {r.name: r for r in process_session(session, Console(file=io.StringIO()))}
    assert results["reconstruct"].status == CURRENT
    assert all(results[s].status == RAN for s in ("fit", "export", "overlay", "report")), results
    assert len(fits) == 1 and fits[0].force and fits[0].gender == "neutral"  # the CLI's defaults, --force
    after = _mtimes(session)
    assert after["poses3d.npz"] == touched
    assert all(after[k] > before[k] for k in after if k != "poses3d.npz")

    # a failing stage: fit cannot load its body model; export (needs fit) is skipped, overlay and the page run
    monkeypatch.setenv("MOCAP_BODY_MODELS", str(tmp_path / "no-such-folder"))
    _touch(session / "poses3d.npz")
    code, out, err = _mocap("process", session)
    assert code == 1, err
    status = _statuses(session)
    assert status["reconstruct"] == CURRENT and status["fit"].startswith("failed: body model directory")
    assert status["export"] == "skipped: fit did not succeed"
    assert status["overlay"] == RAN and status["report"] == RAN
    assert "failed: body model directory" in out
    assert "failed: body model directory" in (report / "index.html").read_text()
    assert all((report / link).exists() for link in _links(report / "index.html"))


def test_a_session_that_cannot_be_reconstructed_still_gets_its_page(tmp_path):
    session = _record(tmp_path / "real", frames=10)
    shutil.rmtree(session / "truth")  # not simulated any more: no keypoints to reconstruct from
    code, out, err = _mocap("process", session, "--camera", "cam2")
    assert code == 1, err
    status = _statuses(session)
    assert status["reconstruct"].startswith("failed:") and "mocap keypoints import" in status["reconstruct"]
    assert all(status[s] == "skipped: reconstruct did not succeed" for s in ("fit", "export", "overlay")), status
    assert status["report"] == RAN
    page = session / "report" / "index.html"
    assert "failed:" in page.read_text() and all((page.parent / link).exists() for link in _links(page))


def test_not_a_session(tmp_path):
    code, _, err = _mocap("process", tmp_path / "nothing")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
