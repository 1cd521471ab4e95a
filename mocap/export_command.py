"""``mocap export SESSION``: a session's bodies and keypoints as files other tools open.

    mocap export SESSION [--bvh] [--smpl] [--trc] [--c3d] [--units m|cm] [--up y|z] [--fps N] [--body-model DIR]

Writes under ``SESSION/export/``, per track id:

- ``track_<id>.bvh``  the fitted body (``smpl/track_<id>.npz``) on its own skeleton (``fitting.export_bvh``);
- ``track_<id>.npz``  the fitted body as an AMASS-style SMPL npz (``fitting.export_smpl``);
- ``track_<id>.trc``  the track's 3D keypoints from ``poses3d.npz`` for OpenSim (``fitting.export_markers``);
- ``track_<id>.c3d``  the same keypoints for Vicon-style tools;
- ``track_<id>.json`` the sidecar: for every file written, the first frame (session frame index, frame number
  and time), frames, fps, units, up axis, and for the body files the body model used and whether it is the
  stand-in (a BVH cannot hold comments, so this is where that is said).

No format flag: every format the session has the input for. Defaults per format when ``--up``/``--units`` are
not given: BVH Y up in metres (Blender, MotionBuilder), SMPL npz Z up (AMASS's own) and always metres, TRC
Y up in metres (OpenSim/Pose2Sim), C3D Z up in millimetres (Vicon). ``--fps`` resamples every file (slerp for
rotations, linear for positions) from the track's first frame.

The body files need the body model the track was fitted with, for the fitted shape's skeleton: the stand-in
when the track file says so, else ``--body-model DIR``, else the model file named in the track file, else
``$MOCAP_BODY_MODELS`` (``fitting.body_model.load_body_model``). A track file that cannot be read or exported
is reported and the others are still written; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

FORMATS = ("bvh", "smpl", "trc", "c3d")
EXTENSIONS = {"bvh": "bvh", "smpl": "npz", "trc": "trc", "c3d": "c3d"}
DEFAULT_UP = {"bvh": "y", "smpl": "z", "trc": "y", "c3d": "z"}
DEFAULT_UNITS = {"bvh": "m", "smpl": "m", "trc": "m", "c3d": "mm"}
STANDIN_NOTE = "fitted with the mocap STAND-IN body model (simulated, not SMPL)"
_TRACK_FILE = re.compile(r"track_(\d+)\.npz")


class ExportError(ValueError):
    """A session or option `mocap export` cannot use; the message says what to do."""


@dataclass
class Written:
    """One file written: what the table and the sidecar say about it."""

    track_id: int
    fmt: str
    path: Path
    info: dict = field(default_factory=dict)


def add_export_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``export`` to the mocap verbs; it sets ``func(args, console) -> exit code``."""
    p = verbs.add_parser("export", help="write a session's bodies and keypoints as BVH, SMPL npz, TRC and C3D",
                         description="Write SESSION/export/track_<id>.{bvh,npz,trc,c3d} and a track_<id>.json "
                                     "sidecar from SESSION/smpl/ (mocap fit) and SESSION/poses3d.npz (mocap "
                                     "reconstruct). No format flag: every format the session has the input for.")
    p.add_argument("session", help="the session folder")
    p.add_argument("--bvh", action="store_true", help="the fitted bodies as BVH (needs smpl/)")
    p.add_argument("--smpl", action="store_true", help="the fitted bodies as AMASS-style SMPL npz (needs smpl/)")
    p.add_argument("--trc", action="store_true", help="the 3D keypoints as TRC for OpenSim (needs poses3d.npz)")
    p.add_argument("--c3d", action="store_true", help="the 3D keypoints as C3D (needs poses3d.npz)")
    p.add_argument("--units", choices=("m", "cm"), help="length units of BVH, TRC and C3D (default: m; C3D mm); "
                                                        "the SMPL npz always stays in metres")
    p.add_argument("--up", choices=("y", "z"), help="up axis of every file (default: y for BVH and TRC, "
                                                    "z for SMPL npz (AMASS) and C3D)")
    p.add_argument("--fps", type=float, help="resample to this frame rate (default: the session's)")
    p.add_argument("--body-model", metavar="DIR", help="folder with the SMPL model files the tracks were fitted "
                                                       "with (default: the file named in each track, else "
                                                       "$MOCAP_BODY_MODELS)")
    p.set_defaults(func=run_export)
    return p


def _requested(args: argparse.Namespace, folder: Path, smpl_files: list[Path], has_poses3d: bool) -> list[str]:
    """The formats to write; an error naming the missing input and the command that makes it."""
    asked = [f for f in FORMATS if getattr(args, f)]
    if not asked:
        formats = (["bvh", "smpl"] if smpl_files else []) + (["trc", "c3d"] if has_poses3d else [])
        if not formats:
            raise ExportError(f"{folder}: nothing to export: no smpl/track_*.npz and no poses3d.npz; run "
                              f"`mocap reconstruct {folder}` then `mocap fit {folder}` first")
        return formats
    if {"bvh", "smpl"} & set(asked) and not smpl_files:
        what = "no smpl/ folder" if not (folder / "smpl").is_dir() else "no track_*.npz in smpl/"
        raise ExportError(f"{folder}: {what} to export as {'/'.join(f.upper() for f in asked if f in ('bvh', 'smpl'))}"
                          f"; run `mocap fit {folder}` first")
    if {"trc", "c3d"} & set(asked) and not has_poses3d:
        raise ExportError(f"{folder}: no poses3d.npz to export as "
                          f"{'/'.join(f.upper() for f in asked if f in ('trc', 'c3d'))}; run "
                          f"`mocap reconstruct {folder}` first")
    return asked


def _session(path: Path) -> Path:
    if not path.is_dir():
        raise ExportError(f"{path}: not a session folder (no such folder); give the folder `mocap record`, "
                          f"`mocap sim` or `mocap reconstruct` wrote")
    if not any((path / n).exists() for n in ("session.toml", "poses3d.npz", "smpl")):
        raise ExportError(f"{path}: not a session folder (no session.toml, poses3d.npz or smpl/ in it)")
    return path


def _smpl_files(folder: Path) -> list[tuple[int, Path]]:
    """(track id, file) of every smpl/track_<id>.npz, by id."""
    found = [(int(m.group(1)), p) for p in (folder / "smpl").glob("track_*.npz")
             if (m := _TRACK_FILE.fullmatch(p.name))]
    return sorted(found)


class _Models:
    """Body models loaded once per run: the stand-in per gender, real models per (source, gender)."""

    def __init__(self, body_model_dir: str | None):
        self.dir = body_model_dir
        self.cache: dict[tuple, object] = {}

    def arrays_for(self, track):
        """The BodyModelArrays the track was fitted with (ExportError when it is not to be had here)."""
        from fitting.body_model import find_model_file, load_body_model, standin_dir

        if track.body_model_standin:
            key = ("standin", track.gender)
            if key not in self.cache:
                if find_model_file(standin_dir(), track.gender) is None:
                    from fitting.standin_model import write_standin

                    write_standin(standin_dir(), genders=(track.gender,))
                self.cache[key] = load_body_model(standin_dir(), track.gender, say=None).arrays
            return self.cache[key]
        recorded = Path(track.body_model)
        where = self.dir or (str(recorded) if recorded.is_file() else None)
        key = ("smpl", where, track.gender)
        if key not in self.cache:
            missing = ExportError(f"fitted with the SMPL model {track.body_model}, which is not here; pass "
                                  f"--body-model DIR (the folder holding SMPL_{track.gender.upper()}.pkl) or set "
                                  f"MOCAP_BODY_MODELS")
            if where is None and not os.environ.get("MOCAP_BODY_MODELS"):
                raise missing  # load_body_model would only offer the stand-in
            arrays = load_body_model(where, track.gender, say=None).arrays
            if arrays.is_standin:
                raise missing
            self.cache[key] = arrays
        return self.cache[key]


def _body_files(folder: Path, out: Path, track_id: int, path: Path, formats: list[str], args, models: _Models,
                t0_ns: int | None) -> list[Written]:
    """BVH and/or SMPL npz of one smpl/track file."""
    from fitting.export_bvh import end_sites_from_model, smpl_to_bvh
    from fitting.export_smpl import write_smpl_export
    from rigs.bvh import write_bvh
    from rigs.smpl_file import read_smpl_track, resample_smpl_track

    track = read_smpl_track(path)
    arrays = models.arrays_for(track)
    rest = arrays.rest_joints(track.betas)
    common = {"source": str(path.relative_to(folder)), "body_model": arrays.source,
              "body_model_standin": bool(arrays.is_standin)}
    if arrays.source != track.body_model:
        common["fitted_with"] = track.body_model
    if arrays.is_standin:
        common["note"] = STANDIN_NOTE
    timed = track if args.fps is None else resample_smpl_track(track, args.fps)
    first = {"first_frame": track.first_frame, "first_t_ns": int(track.t_ns[0]),
             "first_time_s": (int(track.t_ns[0]) - t0_ns) / 1e9 if t0_ns is not None
             else track.first_frame / track.fps,
             "frames": timed.num_frames, "fps": timed.fps}
    written = []
    if "bvh" in formats:
        up, units = args.up or DEFAULT_UP["bvh"], args.units or DEFAULT_UNITS["bvh"]
        motion = smpl_to_bvh(timed, rest, up=up, units=units,
                             end_sites=end_sites_from_model(arrays, track.betas, rest))
        dst = write_bvh(out / f"track_{track_id}.bvh", motion)
        written.append(Written(track_id, "bvh", dst, {**first, "units": units, "up": up, "euler_order": "ZXY",
                                                      "frame_time": motion.frame_time, **common}))
    if "smpl" in formats:
        up = args.up or DEFAULT_UP["smpl"]
        dst = write_smpl_export(out / f"track_{track_id}.npz", timed, rest, up=up)
        written.append(Written(track_id, "smpl", dst, {**first, "units": "m", "up": up, **common}))
    return written


def _marker_files(folder: Path, out: Path, poses3d, track_id: int, formats: list[str], args) -> list[Written]:
    """TRC and/or C3D of one poses3d track."""
    from fitting.export_markers import marker_track, resample_markers, write_track_c3d, write_track_trc

    track = marker_track(poses3d, track_id)
    if args.fps is not None:
        track = resample_markers(track, args.fps)
    first = {"first_frame": track.first_frame, "first_frame_number": int(track.frame_numbers[0]),
             "first_t_ns": int(track.t_ns[0]), "first_time_s": float(track.times[0]),
             "frames": track.num_frames, "fps": track.fps, "source": "poses3d.npz",
             "skeleton": poses3d.skeleton, "markers": list(track.names)}
    written = []
    if "trc" in formats:
        up, units = args.up or DEFAULT_UP["trc"], args.units or DEFAULT_UNITS["trc"]
        dst = write_track_trc(out / f"track_{track_id}.trc", track, up=up, units=units)
        written.append(Written(track_id, "trc", dst, {**first, "units": units, "up": up}))
    if "c3d" in formats:
        up, units = args.up or DEFAULT_UP["c3d"], args.units or DEFAULT_UNITS["c3d"]
        dst = write_track_c3d(out / f"track_{track_id}.c3d", track, up=up, units=units)
        written.append(Written(track_id, "c3d", dst, {**first, "units": units, "up": up}))
    return written


def _write_sidecars(out: Path, written: list[Written]) -> list[Path]:
    """track_<id>.json per track: the entries of this run's files over those of earlier runs."""
    paths = []
    for tid in sorted({w.track_id for w in written}):
        path = out / f"track_{tid}.json"
        try:
            old = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            old = {}
        files = old.get("files", {}) if isinstance(old.get("files"), dict) else {}
        for w in written:
            if w.track_id == tid:
                files[w.fmt] = {"file": w.path.name, **w.info}
        body = [f for k, f in files.items() if k in ("bvh", "smpl")]
        doc = {"track_id": tid, "files": files}
        if body:
            doc["body_model"] = body[-1]["body_model"]
            doc["body_model_standin"] = any(f.get("body_model_standin") for f in body)
            if doc["body_model_standin"]:
                doc["note"] = STANDIN_NOTE
        path.write_text(json.dumps(doc, indent=2) + "\n")
        paths.append(path)
    return paths


def run_export(args: argparse.Namespace, console: Console) -> int:
    """``mocap export``: write the files, print what was written; 1 when some track could not be exported."""
    from fitting.body_model import BodyModelError
    from fitting.export_smpl import units_note
    from rigs.poses3d_file import Poses3DFileError, read_poses3d

    folder = _session(Path(args.session))
    if args.fps is not None and not (np.isfinite(args.fps) and args.fps > 0):
        raise ExportError(f"--fps {args.fps}: give a positive frame rate")
    smpl_files = _smpl_files(folder)
    has_poses3d = (folder / "poses3d.npz").is_file()
    formats = _requested(args, folder, smpl_files, has_poses3d)
    out = folder / "export"
    out.mkdir(exist_ok=True)
    poses3d = None
    if has_poses3d:
        try:
            poses3d = read_poses3d(folder / "poses3d.npz")
        except (Poses3DFileError, OSError, ValueError) as err:
            if {"trc", "c3d"} & set(formats):
                raise ExportError(f"{folder / 'poses3d.npz'}: {err}") from None
    t0_ns = int(poses3d.t_ns[0]) if poses3d is not None and poses3d.num_frames else None

    written: list[Written] = []
    failures: list[str] = []
    body_formats = [f for f in formats if f in ("bvh", "smpl")]
    if body_formats:
        if "smpl" in body_formats and units_note(args.units or "m"):
            console.print(f"note: {units_note(args.units)}", markup=False)
        models = _Models(args.body_model)
        for tid, path in smpl_files:
            try:
                written += _body_files(folder, out, tid, path, body_formats, args, models, t0_ns)
            except (BodyModelError, ValueError, OSError) as err:
                failures.append(str(err) if str(path) in str(err) else f"{path.relative_to(folder)}: {err}")
    marker_formats = [f for f in formats if f in ("trc", "c3d")]
    if marker_formats and poses3d is not None:
        from fitting.export_markers import track_ids

        ids = track_ids(poses3d)
        if not ids:
            failures.append("poses3d.npz: no tracks (nobody was tracked): no TRC/C3D written")
        for tid in ids:
            try:
                written += _marker_files(folder, out, poses3d, tid, marker_formats, args)
            except (ValueError, OSError, RuntimeError) as err:
                failures.append(f"poses3d.npz track {tid}: {err}")
    sidecars = _write_sidecars(out, written)
    _print_table(console, folder, written, sidecars)
    for line in failures:
        console.print(f"failed: {line}", markup=False)
    if failures:
        console.print(f"{len(failures)} export(s) failed; the other files were written", markup=False)
    return 1 if failures else 0


def _print_table(console: Console, folder: Path, written: list[Written], sidecars: list[Path]) -> None:
    standin = any(w.info.get("body_model_standin") for w in written)
    table = Table(title=f"mocap export: {folder}" + (" (STAND-IN body model)" if standin else ""))
    for col in ("track", "file", "frames", "fps", "first frame", "units", "up", "note"):
        table.add_column(col)
    for w in written:
        i = w.info
        note = "stand-in body model" if i.get("body_model_standin") else ""
        if "fitted_with" in i:
            note = (note + "; " if note else "") + f"fitted with {i['fitted_with']}"
        table.add_row(str(w.track_id), str(w.path.relative_to(folder)), str(i["frames"]), f"{i['fps']:g}",
                      str(i["first_frame"]), i["units"], i["up"], note)
    console.print(table)
    if sidecars:
        console.print(f"sidecars (first frame, units, axes, body model): "
                      f"{', '.join(str(p.relative_to(folder)) for p in sidecars)}", markup=False)
    if standin:
        console.print(f"note: the body files were {STANDIN_NOTE}; install the SMPL files and re-run `mocap fit` "
                      f"for real SMPL bodies", markup=False)
