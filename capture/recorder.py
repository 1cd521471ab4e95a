"""The recorder: frames in, a session folder out (DESIGN.md, "Session folder").

    recorder = Recorder("sessions/take1", rig, duration_s=10)
    for msg in frames:                      # FrameMessages, from the wire or any source
        recorder.add(msg, time.monotonic_ns())
        if recorder.done:
            break
    recorder.close()                        # writes session.toml and report/capture_stats.json

What it writes, as frames come:

- ``video/<camera>/<camera>_<NNNN>.mkv`` and ``video/<camera>.csv`` (``capture.segment_writer``): every frame
  received before the end, segment by segment; a crash loses at most each camera's open segment;
- ``sync.csv``: the FrameSets of a ``TimestampSync`` (or the syncer given), appended as they are emitted;

and at ``close()``: ``truth/`` when simulated cameras sent their truth (``capture.session_writer``),
``report/capture_stats.json`` (sync statistics, per-camera frames, drops by seq gaps, bytes) and
``session.toml`` (``rigs.session_file``: name, fps, start, simulated, the ``record`` stage, the rig snapshot).
Nothing already written is rewritten, and a folder that already holds a recording is refused.

``duration_s`` counts from the first complete FrameSet: frames before it are written too, frames at or after
``first complete set + duration`` (less half a frame period, so the last instant is whole) are not. ``done``
turns True once every camera has passed the end, or a sync deadline after the first one did.

Errors: a folder that cannot take the recording raises ``RecordingError`` from the constructor, before anything
is written. An OSError while recording (disk full, permissions, a removed drive) closes every open segment and
what can still be written (sync.csv, stats, session.toml), then raises ``RecordingError`` naming the folder and
the cause; every closed segment stays readable.

``estimate_bytes_per_hour`` and ``check_disk`` are for the check before a recording starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from capture.protocol import FORMATS, FrameMessage
from capture.segment_writer import SegmentWriter
from capture.session_writer import (
    RecordingError,
    TruthCollector,
    describe_os_error,
    prepare_session_folder,
    write_capture_stats,
)
from capture.sync import FrameRef, FrameSet, SyncCsvWriter, TimestampSync
from rigs.camera import Rig
from rigs.session_file import SessionInfo, StageRecord, write_session_toml

__all__ = ["Recorder", "RecordingError", "check_disk", "estimate_bytes_per_hour", "format_bytes"]

_log = logging.getLogger(__name__)
CSV_BYTES_PER_FRAME = 40  # a video/<camera>.csv row
CONTAINER_BYTES_PER_FRAME = 32  # Matroska block and cue overhead per packet
SENSOR_NOISE_SIGMA = 3.0  # grey levels of noise added to a render for cameras that are not simulated


# How long the recorder's syncer waits for a set's last camera. Live reconstruction uses ~2 frame periods;
# the soak showed frames delayed past that by >100 ms scheduling hiccups on a busy 2-core machine, which
# split their sets in sync.csv although every frame was recorded.
RECORDING_DEADLINE_NS = 500_000_000

class Recorder:
    """Writes a session folder from FrameMessages: segmented video per camera, sync.csv, truth, stats.

    ``cameras``: the rig cameras recorded (default all, in rig order). ``fps``: the rate (default the rig's).
    ``segment_s``: seconds per video segment. ``duration_s``: stop after this long from the first complete
    set (None: until ``close``). ``sync``: a syncer to use instead of ``TimestampSync(cameras, fps,
    tolerance_ns, deadline_ns, offsets_ns)`` (e.g. an ``IndexSync`` for hardware-triggered rigs).
    ``raw_codec``, ``quality``, ``backend``, ``idle_close_s``: see ``SegmentWriter``. ``name``, ``notes``,
    ``command``: for session.toml (name defaults to the folder's name). ``truth_skeleton``: the layout of
    ``truth/poses3d.npz``.
    """

    def __init__(self, folder: str | os.PathLike, rig: Rig, cameras: Sequence[str] | None = None,
                 fps: float | None = None, segment_s: float = 60.0, duration_s: float | None = None, *,
                 sync=None, tolerance_ns: int | None = None, deadline_ns: int | None = None,
                 offsets_ns: Mapping[str, int] | None = None, raw_codec: str = "ffv1", quality: int = 90,
                 backend: str = "auto", idle_close_s: float = 2.0, name: str | None = None, notes: str = "",
                 command: str = "", truth_skeleton: str = "body25"):
        cams = tuple(rig.names if cameras is None else cameras)
        unknown = [c for c in cams if c not in rig.names]
        if unknown:
            raise ValueError(f"recorder: camera(s) {', '.join(unknown)} not in rig {rig.name!r} "
                             f"({', '.join(rig.names)})")
        fps = fps if fps is not None else rig.subset(cams).fps
        if not (fps and np.isfinite(fps) and fps > 0):
            raise ValueError(f"recorder: no frame rate: pass fps= (the rig's cameras declare none), got {fps!r}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"recorder: duration_s must be positive seconds or None, got {duration_s!r}")
        if not segment_s > 0:
            raise ValueError(f"recorder: segment_s must be positive seconds, got {segment_s!r}")
        if sync is None:
            if deadline_ns is None:
                # a recording wants complete sets more than low latency: wait out scheduling hiccups
                deadline_ns = RECORDING_DEADLINE_NS
            sync = TimestampSync(cams, fps, tolerance_ns=tolerance_ns, deadline_ns=deadline_ns,
                                 offsets_ns=offsets_ns)
        elif tuple(sync.cameras) != cams:
            raise ValueError(f"recorder: the syncer's cameras {sync.cameras} are not the recorded {cams}")
        self.folder = prepare_session_folder(folder)
        self.rig = rig.subset(cams) if cams != rig.names else rig
        self.cameras = cams
        self.fps = float(fps)
        self.segment_s = float(segment_s)
        self.duration_s = duration_s
        self.sync = sync
        self.name = name or self.folder.resolve().name
        self.notes = notes
        self.command = command
        self.truth_skeleton = truth_skeleton
        self.truth = TruthCollector()
        self.start_ns: int | None = None  # wall clock at the first frame
        self.first_complete: FrameSet | None = None
        self.end_ns: int | None = None  # first complete set + duration, offset-corrected rig clock
        self.after_end = dict.fromkeys(cams, 0)  # frames not written: at or after the end
        self.ignored = 0  # frames of cameras not recorded
        self.error: RecordingError | None = None
        self.truth_error: str | None = None
        self._cutoff: int | None = None
        self._past_end: set[str] = set()
        self._past_end_now: int | None = None
        self._done = False
        self._closed = False
        self._last_set: FrameSet | None = None
        self._writers: dict[str, SegmentWriter] = {}
        self._sync_csv: SyncCsvWriter | None = None
        try:
            for c in cams:
                self._writers[c] = SegmentWriter(self.folder, c, segment_s, fps=self.fps, raw_codec=raw_codec,
                                                 quality=quality, backend=backend, idle_close_s=idle_close_s)
            self._sync_csv = SyncCsvWriter(self.folder / "sync.csv", cams)
            self._write_provisional_session_toml()
        except OSError as exc:
            self._abort_writers()
            raise RecordingError(self.folder, f"cannot start: {describe_os_error(exc)}") from exc

    def _write_provisional_session_toml(self) -> None:
        """session.toml at the start (rig snapshot, rate, cameras), so a session whose recorder was killed
        still says what it is; ``close`` completes it with the stage record and the final notes."""
        notes = ("recording in progress or interrupted: if this note remains, the recorder did not finish; "
                 "closed video segments and the CSVs are complete" + (f"\n{self.notes}" if self.notes else ""))
        info = SessionInfo(self.name, self.fps, time.time_ns(), simulated=bool(self.rig.simulated), notes=notes)
        write_session_toml(self.folder, info, self.rig)

    # --- feeding -------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the duration has passed (never without ``duration_s``)."""
        return self._done

    @property
    def closed(self) -> bool:
        return self._closed

    def add(self, msg: FrameMessage, now_ns: int) -> list[FrameSet]:
        """Write one frame and feed it to the syncer; returns the FrameSets emitted (already in sync.csv).

        Frames of cameras not recorded are counted and ignored; frames past the end are counted, not written.
        Raises RecordingError when writing fails (the recording is then stopped and closed).
        """
        self._check_open()
        camera = msg.camera
        writer = self._writers.get(camera)
        if writer is None:
            self.ignored += 1
            return []
        if self.start_ns is None:
            self.start_ns = time.time_ns()
        if self._cutoff is not None and msg.t_ns - self.sync.offsets_ns[camera] >= self._cutoff:
            self.after_end[camera] += 1
            self._past_end.add(camera)
            if self._past_end_now is None:
                self._past_end_now = now_ns
            return self.poll(now_ns)
        try:
            writer.write(msg, now_ns)
            sets = self.sync.push(FrameRef(camera, msg.seq, msg.t_ns, msg.truth), now_ns)
            self._emit(sets)
        except OSError as exc:
            self._fail(exc)
        self._update_done(now_ns)
        return sets

    def poll(self, now_ns: int) -> list[FrameSet]:
        """Call when idle: emits sets whose deadline passed, closes segments of cameras gone quiet."""
        self._check_open()
        try:
            sets = self.sync.poll(now_ns)
            self._emit(sets)
            for w in self._writers.values():
                w.poll(now_ns)
        except OSError as exc:
            self._fail(exc)
        self._update_done(now_ns)
        return sets

    def close(self) -> Path:
        """Emit the open sets, close every segment and file, write truth/, the stats and session.toml.

        Returns session.toml's path. Safe to call twice; after a failure it does nothing more."""
        if self._closed:
            return self.folder / "session.toml"
        self._closed = True
        first_error: OSError | None = None
        try:
            self._emit(self.sync.flush())
        except OSError as exc:
            first_error = exc
        for w in self._writers.values():
            try:
                w.close()
            except OSError as exc:
                first_error = first_error or exc
                w.abort()
        try:
            self._sync_csv.close()
        except OSError as exc:
            first_error = first_error or exc
        try:
            path = self._finish(first_error)
        except OSError as exc:
            first_error = first_error or exc
        if first_error is not None:
            self.error = RecordingError(self.folder, f"closing the recording failed: "
                                                     f"{describe_os_error(first_error)}")
            raise self.error from first_error
        return path

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        if not self._closed:
            self.close()

    # --- reading -------------------------------------------------------------------------------
    def writer(self, camera: str) -> SegmentWriter:
        return self._writers[camera]

    def stats(self) -> dict:
        """Everything report/capture_stats.json holds (plain Python)."""
        duration = None
        if self.first_complete is not None and self._last_set is not None:
            duration = (self._last_set.t_ns - self.first_complete.t_ns) / 1e9 + 1.0 / self.fps
        return {
            "name": self.name,
            "cameras": list(self.cameras),
            "fps": self.fps,
            "segment_s": self.segment_s,
            "duration_s_requested": self.duration_s,
            "duration_s_recorded": duration,
            "first_complete_set": None if self.first_complete is None else self.first_complete.index,
            "first_complete_t_ns": None if self.first_complete is None else self.first_complete.t_ns,
            "end_t_ns": self.end_ns,
            "done": self._done,
            "ignored_frames": self.ignored,
            "error": None if self.error is None else str(self.error),
            "sync": self.sync.stats.summary(),
            "cameras_written": {c: {**w.summary(), "frames_after_end": self.after_end[c]}
                                for c, w in self._writers.items()},
            "bytes_on_disk": sum(w.bytes_on_disk() for w in self._writers.values()),
            "truth": self.truth.summary() if self.truth.any else None,
        }

    # --- internals -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.error is not None:
            raise RecordingError(self.folder, f"the recording has stopped ({self.error.cause})")
        if self._closed:
            raise RecordingError(self.folder, "the recording is closed")

    def _emit(self, sets: list[FrameSet]) -> None:
        if not sets:
            return
        self._sync_csv.write(sets)
        for fs in sets:
            self.truth.add_set(fs)
            if self.first_complete is None and fs.complete:
                self.first_complete = fs
                if self.duration_s is not None:
                    self.end_ns = fs.t_ns + round(self.duration_s * 1e9)
                    self._cutoff = self.end_ns - round(0.5e9 / self.fps)
        self._last_set = sets[-1]

    def _update_done(self, now_ns: int) -> None:
        if self._done or self._past_end_now is None:
            return
        if len(self._past_end) == len(self.cameras) or now_ns - self._past_end_now >= self.sync.deadline_ns:
            self._done = True

    def _abort_writers(self) -> None:
        for w in self._writers.values():
            w.abort()
        if self._sync_csv is not None:
            try:
                self._sync_csv.close()
            except OSError:
                pass

    def _fail(self, exc: OSError) -> None:
        """Stop on a write error: close each open segment (properly where possible), write what still can be."""
        self._closed = True
        self.error = RecordingError(self.folder, f"recording stopped: {describe_os_error(exc)}; the closed "
                                                 f"segments, video/*.csv and sync.csv keep what was written")
        for w in self._writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - that segment is lost; the others must still be closed
                w.abort()
        try:
            self._emit(self.sync.flush())
        except OSError:
            pass
        self._abort_writers()
        try:
            self._finish(exc)
        except Exception as later:  # noqa: BLE001 - the disk may be full: the first error is the one to report
            _log.warning("recording to %s: could not write the session record after the error: %s",
                         self.folder, later)
        raise self.error from exc

    def _finish(self, error: BaseException | None) -> Path:
        outputs = ["video", "sync.csv"]
        if self.truth.any:
            try:
                self.truth.write(self.folder, self.truth_skeleton)
                outputs.append("truth")
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad truth must not cost the recording its record
                _log.warning("recording to %s: could not write truth/: %s", self.folder, exc)
                self.truth_error = f"{type(exc).__name__}: {exc}"
        stats = self.stats()
        if error is not None and stats["error"] is None:
            stats["error"] = describe_os_error(error)
        if self.truth_error:
            stats["truth_error"] = self.truth_error
        write_capture_stats(self.folder, stats)
        outputs.append("report/capture_stats.json")
        notes = self.notes
        if self.error is not None:
            notes = (notes + "\n" if notes else "") + str(self.error)
        info = SessionInfo(self.name, self.fps, self.start_ns if self.start_ns is not None else time.time_ns(),
                           simulated=bool(self.rig.simulated or self.truth.any), notes=notes,
                           stages=(StageRecord("record", self.command, time.time_ns(), tuple(outputs)),))
        return write_session_toml(self.folder, info, self.rig)


# --- disk ------------------------------------------------------------------------------------------

def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def _frame_bytes(camera, fmt: str, quality: int, seed: int, people: int, cache: dict) -> int:
    """Bytes of one stored frame of ``camera``: a rendered simulated frame's JPEG size, or the raw size."""
    if fmt != "jpeg":
        return camera.width * camera.height * FORMATS[fmt]  # FFV1 usually halves this: an upper bound
    from rigs.sim.performers import simulate_performers
    from rigs.sim.render import RenderParams, render_view

    fps = float(camera.fps or 30.0)
    if fps not in cache:
        cache[fps] = simulate_performers(people, 2.0, fps, seed)
    performers = cache[fps]
    image = render_view(camera, performers, performers.num_frames // 2, RenderParams(seed=seed))
    if camera.source.strip() != "sim":  # real sensors are noisy: their JPEGs are bigger than a flat render's
        noise = np.random.default_rng(seed).normal(0.0, SENSOR_NOISE_SIGMA, image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"camera {camera.name!r}: JPEG encoding failed")
    return len(buf)


def estimate_bytes_per_hour(rig: Rig, fmt: str = "jpeg", quality: int = 90, cameras: Sequence[str] | None = None,
                            *, seed: int = 0, people: int = 2) -> int:
    """Disk bytes one hour of recording takes: per camera, one frame's size x fps x 3600, plus the CSV rows
    and container overhead. JPEG sizes are measured on a rendered simulated frame of the camera (with sensor
    noise added for cameras that are not simulated); raw formats count the raw size (FFV1 stores less)."""
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    cache: dict = {}
    total = 0.0
    for name in cameras or rig.names:
        cam = rig[name]
        fps = float(cam.fps or rig.fps or 30.0)
        if not cam.fps:
            cam = cam.replace(fps=fps)
        per_frame = _frame_bytes(cam, fmt, quality, seed, people, cache)
        total += (per_frame + CSV_BYTES_PER_FRAME + CONTAINER_BYTES_PER_FRAME) * fps * 3600
    return int(total)


def check_disk(folder: str | os.PathLike, bytes_needed: int) -> str | None:
    """A warning when the disk holding ``folder`` (or its nearest existing parent) has less free space than
    ``bytes_needed``; None when it fits."""
    where = Path(folder).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if bytes_needed <= free:
        return None
    return (f"{folder}: the recording needs about {format_bytes(bytes_needed)} but the disk at {where} has only "
            f"{format_bytes(free)} free: it fills up after about {100 * free / bytes_needed:.0f}% of the requested "
            f"duration; free some space, record to another disk, or shorten --duration")
