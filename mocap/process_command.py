"""``mocap process SESSION``: run what a recorded (or keypoint-imported) session still needs, in order:

    reconstruct  keypoints2d/ (or a simulated session's frames) and the rig  -> poses3d.npz
    fit          poses3d.npz                                                -> smpl/track_<id>.npz
    export       smpl/ and poses3d.npz                                      -> export/
    overlay      poses3d.npz and one camera's video (+ its keypoints2d)     -> report/overlay_<camera>.mp4
    report       everything in report/ and export/                          -> report/index.html

A stage is skipped as current when its outputs exist and none is older than the newest of its inputs
(file times; the report page when every other stage was current too), and for reconstruct when the rig is
the one it last ran with: ``session.toml`` is rewritten
by every stage that records itself, so the rig's geometry is compared (a fingerprint kept in
``report/process.json``), not the file's time. A stage's outputs are the files its last run through
``process`` wrote (also in ``report/process.json``), else what its folder holds. ``--force`` runs every stage.

The stages run in this process through the same functions as their commands (``mocap reconstruct``, ``fit``,
``export``, ``overlay``) with their default options. A failed stage is reported with its reason and the
stages that do not depend on it still run; the report page is always written. The exit status is 1 when
some stage failed, else 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

STAGES = ("reconstruct", "fit", "export", "overlay", "report")
DEPENDS = {"reconstruct": (), "fit": ("reconstruct",), "export": ("reconstruct", "fit"),
           "overlay": ("reconstruct",), "report": ()}
RAN, CURRENT = "ran", "current, skipped"
STATE_FILE = "report/process.json"


class ProcessError(ValueError):
    """A session `mocap process` cannot start on; the message says what to do."""


@dataclass
class StageResult:
    """How one stage went: ``status`` is "ran", "current, skipped", "failed: <reason>" or "skipped: <why>"."""

    name: str
    status: str
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        """The stage's outputs can be used by the stages after it."""
        return self.status in (RAN, CURRENT)


def add_process_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``process`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser("process", help="run what a session still needs: reconstruct, fit, export, overlay, "
                                         "report page",
                         description="Run the stages SESSION still needs (reconstruct, fit, export, overlay, "
                                     "report/index.html), skipping those whose outputs are newer than their inputs.")
    p.add_argument("session", metavar="SESSION", help="a recorded or keypoint-imported session folder")
    p.add_argument("--rig", help="reconstruct (and overlay) with this rig file or preset instead of session.toml's")
    p.add_argument("--force", action="store_true", help="run every stage, current or not")
    p.add_argument("--camera", metavar="NAME", help="camera of the overlay (default: the first with video)")
    p.set_defaults(func=run_process)
    return p


def run_process(args: argparse.Namespace, console: Console) -> int:
    """``mocap process``: run the stages, print the table; 1 when some stage failed."""
    results = process_session(Path(args.session), console, rig=args.rig, force=args.force, camera=args.camera)
    return 1 if any(r.status.startswith("failed") for r in results) else 0


def process_session(session: Path, console: Console, *, rig: str | None = None, force: bool = False,
                    camera: str | None = None) -> list[StageResult]:
    """Run every stage the session needs (see the module doc), print the table of what happened; the results."""
    session = Path(session)
    if not (session / "session.toml").is_file():
        what = "does not exist" if not session.exists() else "has no session.toml"
        raise ProcessError(f"{session} {what}: give a session folder (mocap record --out, or mocap reconstruct "
                           f"--keypoints DIR --out SESSION for keypoint files)")
    run = _Run(session, console, rig, force, camera)
    for name in STAGES:
        missing = [d for d in DEPENDS[name] if not run.results[d].ok]
        if missing:  # named by the stage that failed, not by those skipped because of it
            failed = [d for d in missing if run.results[d].status.startswith("failed")] or missing
            run.results[name] = StageResult(name, f"skipped: {' and '.join(failed)} did not succeed")
            continue
        run.results[name] = run.stage(name)
        console.print(f"process: {name}: {run.results[name].status}", markup=False)
    results = [run.results[n] for n in STAGES]
    run.save_state(results)
    _print_table(console, session, results)
    return results


class _Run:
    """One `mocap process` run: the session, the options, the state kept between runs, each stage's result."""

    def __init__(self, session: Path, console: Console, rig: str | None, force: bool, camera: str | None):
        self.session, self.console, self.rig_arg, self.force, self.camera_arg = session, console, rig, force, camera
        self.results: dict[str, StageResult] = {}
        self.state = _read_state(session / STATE_FILE)
        self.camera: str | None = None
        self._rig = None

    # --- the stages ----------------------------------------------------------------------------------------
    def stage(self, name: str) -> StageResult:
        """Run one stage unless it is current; any error becomes a "failed" result (MOCAP_DEBUG=1: raised)."""
        t0 = time.perf_counter()
        try:
            inputs, outputs = getattr(self, f"_{name}_files")()
            if not self.force and self._current(name, inputs, outputs):
                return StageResult(name, CURRENT, time.perf_counter() - t0)
            watch = self._outputs_to_watch(name)
            before = _stats(watch)
            note = getattr(self, f"_{name}_run")() or ""
            self.state.setdefault("outputs", {})[name] = _changed(self.session, watch, before)
            return StageResult(name, RAN, time.perf_counter() - t0, note)
        except _Skip as skip:
            return StageResult(name, f"skipped: {skip}", time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - one stage failing must not stop the others
            if os.environ.get("MOCAP_DEBUG"):
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if isinstance(exc, KeyError) and exc.args:
                reason = str(exc.args[0])
            return StageResult(name, f"failed: {reason}", time.perf_counter() - t0)

    def _current(self, name: str, inputs: list[Path], outputs: list[Path]) -> bool:
        if not outputs or not all(p.is_file() for p in outputs):
            return False
        if name == "reconstruct" and not self._same_rig():
            return False
        if name == "report" and any(r.status != CURRENT for r in self.results.values()):
            return False  # the page shows this run's table: what ran or failed
        newest = max((p.stat().st_mtime_ns for p in inputs if p.is_file()), default=None)
        return newest is None or min(p.stat().st_mtime_ns for p in outputs) >= newest

    def _recorded(self, name: str) -> list[Path] | None:
        """The outputs the stage's last run through `process` wrote, when it has one."""
        paths = self.state.get("outputs", {}).get(name)
        return [self.session / p for p in paths] if paths else None

    def _outputs_to_watch(self, name: str) -> list[Path]:
        """Where a stage writes: its files are those that are new or changed after it ran."""
        s = self.session
        if name == "fit":
            return [s / "smpl"]
        if name == "export":
            return [s / "export"]
        return self._default_outputs(name)

    def _default_outputs(self, name: str) -> list[Path]:
        """A stage's outputs by where it writes (for stages that have not run through `process` yet)."""
        s = self.session
        if name == "fit":
            return sorted((s / "smpl").glob("track_*.npz"))
        if name == "export":
            return sorted(p for p in (s / "export").glob("*") if p.is_file())
        if name == "overlay":
            return [self._overlay_path(), self._overlay_path().with_suffix(".txt")] if self.camera else []
        return [s / "poses3d.npz"] if name == "reconstruct" else [s / "report" / "index.html"]

    def _outputs(self, name: str) -> list[Path]:
        recorded = self._recorded(name)
        return recorded if recorded is not None else self._default_outputs(name)

    # reconstruct
    def _reconstruct_files(self) -> tuple[list[Path], list[Path]]:
        s = self.session
        if (s / "keypoints2d").is_dir():
            inputs = sorted((s / "keypoints2d").glob("*.npz"))
        else:  # a simulated recording: the detector runs on its frames' truth
            inputs = [s / "sync.csv", s / "truth" / "poses3d.npz"]
        if self.rig_arg and Path(self.rig_arg).exists():
            inputs.append(Path(self.rig_arg))
        return inputs, [s / "poses3d.npz"]

    def _reconstruct_run(self) -> str:
        from mocap.reconstruct_command import add_reconstruct_parser, run_reconstruct

        argv = ["reconstruct", str(self.session)] + ["--rig", self.rig_arg] * bool(self.rig_arg)
        argv += ["--force"] * (self.session / "poses3d.npz").exists()
        run_reconstruct(_cli_args(add_reconstruct_parser, argv), self.console)
        self.state["rig"] = _rig_fingerprint(self.rig())
        return ""

    def _same_rig(self) -> bool:
        """The rig is the one reconstruct last ran with (first seen: the session's own, unless --rig differs)."""
        now = _rig_fingerprint(self.rig())
        if "rig" not in self.state:
            if self.rig_arg:
                from rigs.formats import load_rig

                if _rig_fingerprint(load_rig(self.session / "session.toml")) != now:
                    return False
            self.state["rig"] = now
        return self.state["rig"] == now

    def rig(self):
        if self._rig is None:
            from rigs.formats import load_rig

            self._rig = load_rig(self.rig_arg or self.session / "session.toml")
        return self._rig

    # fit
    def _fit_files(self) -> tuple[list[Path], list[Path]]:
        return [self.session / "poses3d.npz"], self._outputs("fit")

    def _fit_run(self) -> str:
        from mocap.fit_command import add_fit_parser, run_fit

        argv = ["fit", str(self.session)] + ["--force"] * any((self.session / "smpl").glob("track_*.npz"))
        code = run_fit(_cli_args(add_fit_parser, argv), self.console)
        return "some tracks were not fitted (see the fit table)" if code else ""

    # export
    def _export_files(self) -> tuple[list[Path], list[Path]]:
        return self._outputs("fit") + [self.session / "poses3d.npz"], self._outputs("export")

    def _export_run(self) -> str:
        from mocap.export_command import add_export_parser, run_export

        code = run_export(_cli_args(add_export_parser, ["export", str(self.session)]), self.console)
        return "some exports failed (see the export table)" if code else ""

    # overlay
    def _overlay_files(self) -> tuple[list[Path], list[Path]]:
        self.camera = self._overlay_camera()
        s, c = self.session, self.camera
        inputs = [s / "poses3d.npz", s / "video" / f"{c}.csv", s / "keypoints2d" / f"{c}.npz"]
        inputs += sorted((s / "video" / c).glob("*"))
        if self.rig_arg and Path(self.rig_arg).exists():
            inputs.append(Path(self.rig_arg))
        return inputs, [self._overlay_path(), self._overlay_path().with_suffix(".txt")]

    def _overlay_camera(self) -> str:
        if self.camera_arg:
            return self.camera_arg
        from rigs.formats import load_rig

        names = load_rig(self.session / "session.toml").names
        for name in names:
            csv = self.session / "video" / f"{name}.csv"
            if csv.is_file() and len(csv.read_text().splitlines()) > 1:
                return name
        raise _Skip("the session has no recorded video")

    def _overlay_path(self) -> Path:
        from mocap.overlay_command import default_overlay_path

        return default_overlay_path(self.session, self.camera)

    def _overlay_run(self) -> str:
        from mocap.progress_bar import progress_bar
        from viewer.overlay import write_overlay

        out = self._overlay_path()
        rig = self.rig() if self.rig_arg else None
        with progress_bar(self.console, f"overlay {self.camera}") as progress:
            stats = write_overlay(self.session, self.camera, out, rig=rig, progress=progress)
        out.with_suffix(".txt").write_text("\n".join(stats.lines()) + "\n")
        _still(out, out.with_suffix(".png"))
        for line in stats.lines():
            self.console.print(line, markup=False)
        return f"{stats.frames_written} frames, reprojection check {stats.median_px:.2f} px"

    # report
    def _report_files(self) -> tuple[list[Path], list[Path]]:
        s, page = self.session, self.session / "report" / "index.html"
        inputs = [p for p in _stats([s / "report", s / "export"]) if p not in (page, s / STATE_FILE)]
        return inputs, [page]

    def _report_run(self) -> str:
        from mocap.report_page import write_report_page

        rows = [(r.name, r.status + (f" ({r.note})" if r.note else ""), f"{r.seconds:.1f} s")
                for r in self.results.values()]
        rows.append(("report", RAN, ""))
        path = write_report_page(self.session, rows)
        self.console.print(f"report: {path}", markup=False)
        return ""

    def save_state(self, results: list[StageResult]) -> None:
        """Keep the rig fingerprint and each stage's outputs for the next run, with this run's table."""
        self.state["last_run"] = {r.name: {"status": r.status, "seconds": round(r.seconds, 3), "note": r.note}
                                  for r in results}
        self.state["finished_ns"] = time.time_ns()
        path = self.session / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.state, indent=1) + "\n")


class _Skip(Exception):
    """A stage with nothing to do here (not a failure): the reason is shown."""


def _cli_args(add_parser: Callable, argv: list[str]) -> argparse.Namespace:
    """The Namespace the `mocap` command would build for argv: every option with its default."""
    parser = argparse.ArgumentParser(prog="mocap")
    add_parser(parser.add_subparsers(dest="verb"))
    return parser.parse_args(argv)


def _rig_fingerprint(rig) -> str:
    """A hash of the rig's geometry: names, models, sizes, K, dist, R, t."""
    h = hashlib.sha256()
    for cam in rig:
        h.update(f"{cam.name}|{cam.model}|{cam.width}|{cam.height}|".encode())
        for a in (cam.K, cam.dist, cam.R, cam.t):
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
    return h.hexdigest()[:20]


def _stats(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    """(mtime_ns, size) of every file at or under paths."""
    files = [q for p in paths for q in ([p] if p.is_file() else p.rglob("*") if p.is_dir() else [])]
    return {f: (f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file()}


def _changed(session: Path, paths: list[Path], before: dict[Path, tuple[int, int]]) -> list[str]:
    """The files at or under paths that are new or changed since ``before``, relative to the session."""
    return sorted(str(f.relative_to(session)) for f, st in _stats(paths).items() if before.get(f) != st)


def _read_state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _still(video: Path, png: Path) -> None:
    """The overlay's middle frame as a PNG, for the report page."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) // 2, 0))
        ok, image = cap.read()
    finally:
        cap.release()
    if ok:
        cv2.imwrite(str(png), image)


def _print_table(console: Console, session: Path, results: list[StageResult]) -> None:
    table = Table(title=f"mocap process: {session}")
    for col in ("stage", "status", "time", "note"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, r.status, f"{r.seconds:.1f} s" if r.status in (RAN, CURRENT) or r.seconds else "",
                      r.note)
    console.print(table)
