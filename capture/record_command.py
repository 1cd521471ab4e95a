"""``mocap record``: record a session folder from a rig's camera nodes (DESIGN.md, "Session folder").

    mocap record --rig studio-4 --out sessions/take1 --duration 60
    mocap record --rig lab.toml --out sessions/take2 --connect cam0=tcp://10.0.0.5:5550 cam1=tcp://10.0.0.6:5550

Before anything starts, the output folder is checked (``prepare_session_folder``: created, writable, not
already a recording) and the disk need is estimated (``estimate_bytes_per_hour``) for the requested duration
(one hour when none): the estimate is printed, with a warning when the disk cannot hold it.

Without ``--connect`` the command starts one ``mocap node camera`` process per camera on this host
(``capture.supervisor.NodeSupervisor``, as ``mocap capture`` does; a crashed node is restarted and reported).
With ``--connect`` it subscribes to running nodes: each ``CAMERA=ENDPOINT``, or a plain ``ENDPOINT`` whose
cameras are learned from the topics (only the rig's cameras are recorded; others are counted and ignored).
``--base-port P`` starts camera i's node on ``tcp://127.0.0.1:<P + i>`` (as ``mocap capture --base-port``). Node
logs go to ``report/nodes/<camera>.log`` in the session. A rig with CURVE keys beside it (``mocap keys``) is
subscribed to with this host's client keys, as its nodes require.

Frames go into a ``capture.recorder.Recorder``: segmented video per camera, ``video/<camera>.csv``,
``sync.csv``, ``truth/`` for simulated cameras, ``report/capture_stats.json`` and ``session.toml``. A status line
every second shows each camera's rate, frames and drops (seq gaps), the FrameSets and the disk rate.
``--duration`` counts from the first complete FrameSet. SIGINT/SIGTERM finish cleanly (a second one is not
caught): the recorder is closed so every segment is finalised, then the nodes are stopped. A write error (disk
full) stops the recording with its message and exit code 1, keeping what was written. Argument and folder
errors exit 2 before anything is recorded. A summary ends the run.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

# capture.session_writer is light; the recorder, the wire and the video writers pull in OpenCV and PyAV, so they
# are imported where used: building the `mocap` parser (every command) stays quick.
from capture.session_writer import RecordingError, prepare_session_folder
from capture.stop_signals import StopOnSignals

if TYPE_CHECKING:
    from capture.recorder import Recorder
    from capture.subscriber import FrameSubscriber

__all__ = ["RecordResult", "RecordSetupError", "add_record_parser", "parse_connect", "record_session",
           "run_record"]

STATUS_INTERVAL_S = 1.0
POLL_INTERVAL_NS = 100_000_000  # recorder.poll (sync deadlines, idle segments) at least this often
SUPERVISOR_POLL_NS = 250_000_000
SILENT_S = 2.0  # a camera without frames this long is shown as silent
NO_SET_WARNING_S = 15.0  # warn once when no complete FrameSet came this long after the start


class RecordSetupError(ValueError):
    """A recording that cannot start: a bad argument, an unusable output folder, an unknown camera."""


# --- the command line --------------------------------------------------------------------------------------

def add_record_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``record`` verb to the mocap verbs; it sets ``func=run_record`` (args -> exit code)."""
    p = verbs.add_parser(
        "record", help="record a session folder from the rig's camera nodes",
        description="Record a session folder: per-camera segmented video, per-frame timestamps, sync.csv, "
                    "session.toml (and truth/ for simulated cameras). Without --connect the camera nodes are "
                    "started and supervised on this host. --duration counts from the first complete FrameSet; "
                    "SIGINT/SIGTERM stop the recording cleanly. Exit codes: 0 recorded, 1 the recording failed "
                    "(e.g. disk full; what was written is kept), 2 bad arguments or output folder.")
    p.add_argument("--rig", required=True, help="rig file or preset (e.g. studio-4)")
    p.add_argument("--out", required=True, metavar="SESSION", help="session folder to create (must not hold a "
                                                                   "recording already)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds to record from the first complete FrameSet (default: until SIGINT/SIGTERM)")
    p.add_argument("--connect", nargs="+", action="extend", metavar="ENDPOINT",
                   help="subscribe to running nodes instead of starting them: CAMERA=ENDPOINT or ENDPOINT "
                        "(cameras learned from the topics), e.g. cam0=tcp://10.0.0.5:5550")
    p.add_argument("--base-port", type=int, metavar="P",
                   help="start camera i's node on tcp://127.0.0.1:<P + i> instead of the rig's endpoint (several "
                        "recordings on one host, tests); not with --connect")
    p.add_argument("--segment", type=float, default=60.0, metavar="S",
                   help="seconds per video segment (default 60); a crash loses at most the open segment")
    p.add_argument("--cameras", metavar="A,B", help="record only these rig cameras (default all)")
    p.add_argument("--sync", choices=("timestamp", "index"), default="timestamp",
                   help="group frames into FrameSets by capture timestamp (default), or by frame index for "
                        "hardware-triggered rigs")
    p.add_argument("--seed", type=int, default=0, help="simulated cameras: the scene's seed (default 0)")
    p.add_argument("--people", type=int, default=2, help="simulated cameras: performers (default 2)")
    p.add_argument("--format", dest="fmt", choices=("jpeg", "bgr8"), default="jpeg",
                   help="pixel format the started nodes send (default jpeg, stored as received)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 of the started nodes (default 90)")
    p.add_argument("--raw-codec", choices=("ffv1", "mjpeg"), default="ffv1",  # capture.segment_writer.RAW_CODECS
                   help="how raw (bgr8) frames are stored: ffv1 lossless (slow) or mjpeg at --quality")
    p.add_argument("--notes", default="", help="notes for session.toml")
    p.set_defaults(func=run_record)
    return p


def run_record(args: argparse.Namespace, *, stop: threading.Event | None = None, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """``mocap record``: exit code 0 (recorded), 1 (the recording failed), 2 (bad arguments or folder)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        plan = _plan(args)
    except (RecordSetupError, RecordingError) as exc:
        print(f"mocap: error: {exc}", file=err, flush=True)
        return 2
    except (KeyError, ValueError) as exc:  # a rig that cannot be read, an unknown camera
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mocap: error: {msg}", file=err, flush=True)
        return 2
    result = record_session(**plan, stop=stop, out=out, err=err)
    return result.exit_code


@dataclass
class _Connect:
    endpoints: dict[str, str]  # label (camera, or the endpoint itself) -> endpoint
    named: dict[str, str]  # camera -> endpoint, for the CAMERA=ENDPOINT entries
    plain: list[str]  # plain endpoints: cameras from the topics


def parse_connect(entries: Sequence[str], rig_names: Sequence[str]) -> _Connect:
    """``--connect`` entries: ``CAMERA=ENDPOINT`` (CAMERA in the rig) or a plain ``ENDPOINT``."""
    named: dict[str, str] = {}
    plain: list[str] = []
    for entry in entries:
        head, eq, tail = entry.partition("=")
        if eq and "://" not in head:
            camera, endpoint = head.strip(), tail.strip()
            if camera not in rig_names:
                raise RecordSetupError(f"--connect {entry}: camera {camera!r} is not in the rig "
                                       f"({', '.join(rig_names)})")
            if camera in named and named[camera] != endpoint:
                raise RecordSetupError(f"--connect: camera {camera!r} is given twice ({named[camera]}, {endpoint})")
            named[camera] = endpoint
        else:
            endpoint = entry.strip()
            plain.append(endpoint)
        if "://" not in endpoint or endpoint.endswith("://"):
            raise RecordSetupError(f"--connect {entry}: {endpoint!r} is not a ZeroMQ endpoint; expected "
                                   f"CAMERA=tcp://HOST:PORT or tcp://HOST:PORT")
    endpoints = {**named, **{e: e for e in plain}}
    return _Connect(endpoints, named, plain)


def _plan(args: argparse.Namespace) -> dict:
    """Validate the arguments, load the rig, check the folder; the keyword arguments of record_session."""
    from rigs.formats import load_rig

    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise RecordSetupError(f"--duration {args.duration:g}: expected a positive number of seconds")
    if not (math.isfinite(args.segment) and args.segment > 0):
        raise RecordSetupError(f"--segment {args.segment:g}: expected a positive number of seconds")
    if not 1 <= args.quality <= 100:
        raise RecordSetupError(f"--quality {args.quality}: expected 1..100")
    if args.people < 0:
        raise RecordSetupError(f"--people {args.people}: expected 0 or more")
    rig = load_rig(args.rig)
    if args.base_port is not None:
        if args.connect:
            raise RecordSetupError("--base-port moves the nodes this command starts; with --connect it starts none")
        if not 1 <= args.base_port <= 65535 - len(rig) + 1:
            raise RecordSetupError(f"--base-port {args.base_port}: expected a port such that every camera's fits "
                                   f"in 1..65535")
        rig = rig.replace(cameras=tuple(c.replace(endpoint=f"tcp://127.0.0.1:{args.base_port + i}")
                                        for i, c in enumerate(rig)))
    cameras: tuple[str, ...] | None = None
    if args.cameras is not None:
        cameras = tuple(dict.fromkeys(c.strip() for c in args.cameras.split(",") if c.strip()))
        unknown = [c for c in cameras if c not in rig.names]
        if not cameras or unknown:
            raise RecordSetupError(f"--cameras {args.cameras}: {', '.join(unknown) or 'no camera named'}; the "
                                   f"rig's cameras: {', '.join(rig.names)}")
    connect = None
    if args.connect:
        connect = parse_connect(args.connect, rig.names)
        if cameras is None and connect.named and not connect.plain:
            cameras = tuple(c for c in rig.names if c in connect.named)  # rig order
        outside = [c for c in connect.named if cameras is not None and c not in cameras]
        if outside:
            raise RecordSetupError(f"--connect names {', '.join(outside)}, which --cameras leaves out")
    cameras = cameras or rig.names
    if not rig.subset(cameras).fps:
        raise RecordSetupError(f"rig {rig.name!r}: the cameras declare no fps; give them one in the rig file")
    curve = _curve_keys(args.rig)
    folder = prepare_session_folder(args.out)
    return dict(rig=rig, rig_source=str(args.rig), curve=curve, folder=folder, cameras=cameras,
                duration_s=args.duration, connect=connect, segment_s=args.segment, seed=args.seed,
                people=args.people, fmt=args.fmt, quality=args.quality, raw_codec=args.raw_codec,
                notes=args.notes, command=_command_line(args), sync=args.sync)


def _curve_keys(rig_source: str):
    """The rig's CURVE keys (None: CURVE off, or capture.curve_keys absent); nodes load the same ones."""
    try:
        from capture.curve_keys import load_keys
    except ImportError:
        return None
    return load_keys(rig_source)


def _command_line(args: argparse.Namespace) -> str:
    words = ["mocap", "record", "--rig", str(args.rig), "--out", str(args.out)]
    if args.duration is not None:
        words += ["--duration", f"{args.duration:g}"]
    if args.connect:
        words += ["--connect", *args.connect]
    if args.cameras:
        words += ["--cameras", args.cameras]
    if args.base_port is not None:
        words += ["--base-port", str(args.base_port)]
    for flag, value, default in (("--segment", args.segment, 60.0), ("--seed", args.seed, 0),
                                 ("--people", args.people, 2), ("--format", args.fmt, "jpeg"),
                                 ("--quality", args.quality, 90), ("--raw-codec", args.raw_codec, "ffv1")):
        if value != default:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


# --- the recording -----------------------------------------------------------------------------------------

@dataclass
class RecordResult:
    """What a recording did: its exit code, why it stopped, the recorder's stats and the counts around it."""

    exit_code: int
    reason: str
    folder: Path
    stats: dict | None = None
    error: str | None = None
    ignored: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    restarts: int = 0


class _Status:
    """The per-second status line: rate, frames and drops per camera, FrameSets, disk rate."""

    def __init__(self, recorder: Recorder, subscriber: FrameSubscriber, err: TextIO, start_ns: int):
        self.recorder = recorder
        self.sub = subscriber
        self.err = err
        self.start_ns = start_ns
        self.window = Counter()  # frames per camera since the last line
        self.last_frame_ns: dict[str, int] = {}
        self.last_ns = start_ns
        self.last_bytes = 0
        self.warned_no_set = False
        self._closed_bytes = 0  # closed segments never change: each is measured once
        self._closed_counted = dict.fromkeys(recorder.cameras, 0)

    def count(self, camera: str, now_ns: int) -> None:
        self.window[camera] += 1
        self.last_frame_ns[camera] = now_ns

    def line(self, now_ns: int) -> str:
        rec = self.recorder
        dt = max(1e-9, (now_ns - self.last_ns) / 1e9)
        parts = []
        if rec.first_complete is None:
            parts.append("waiting for the first complete FrameSet")
        else:
            last = max((rec.writer(c).last_t_ns or 0) for c in rec.cameras)
            elapsed = max(0.0, (last - rec.first_complete.t_ns) / 1e9)
            parts.append(f"{elapsed:5.1f}" + (f"/{rec.duration_s:g} s" if rec.duration_s else " s"))
        for c in rec.cameras:
            w = rec.writer(c)
            seen = self.last_frame_ns.get(c)
            text = f"{c} {self.window[c] / dt:4.1f} fps {w.frames} fr {w.dropped} drop"
            if seen is None:
                text = f"{c} no frames yet"
            elif (now_ns - seen) / 1e9 >= SILENT_S:
                text += f" SILENT {(now_ns - seen) / 1e9:.0f} s"
            beat = self.sub.last_heartbeat.get(c)
            if beat is not None and beat.status != "ok":
                text += f" [{beat.status[:40]}]"
            parts.append(text)
        st = rec.sync.stats
        parts.append(f"sets {st.complete} complete {st.partial} partial")
        size = self._disk_bytes()
        parts.append(f"{(size - self.last_bytes) / dt / 1e6:.1f} MB/s")
        if self.sub.rejects.total:
            parts.append(f"rejected {self.sub.rejects.total}")
        self.window.clear()
        self.last_ns, self.last_bytes = now_ns, size
        return "record: " + " | ".join(parts)

    def _disk_bytes(self) -> int:
        """Bytes of every segment so far: closed ones measured once, the open ones now."""
        total = 0
        for c in self.recorder.cameras:
            w = self.recorder.writer(c)
            for path in w.closed_segments[self._closed_counted[c]:]:
                self._closed_bytes += _size(path)
            self._closed_counted[c] = len(w.closed_segments)
            if w.open_segment is not None:
                total += _size(w.open_segment)
        return total + self._closed_bytes

    def maybe_warn_no_set(self, now_ns: int) -> None:
        if self.warned_no_set or self.recorder.first_complete is not None:
            return
        if (now_ns - self.start_ns) / 1e9 < NO_SET_WARNING_S:
            return
        self.warned_no_set = True
        missing = [c for c in self.recorder.cameras if c not in self.last_frame_ns]
        why = f"no frames from {', '.join(missing)}" if missing else "the cameras' timestamps do not line up"
        print(f"mocap: warning: no complete FrameSet after {NO_SET_WARNING_S:g} s ({why}); --duration starts "
              f"counting at the first one. Still recording; stop with Ctrl-C.", file=self.err, flush=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _estimate(rig, cameras, folder: Path, duration_s, fmt, quality, seed, people, connect, out, err) -> None:
    """Print the disk estimate; warn when the disk cannot hold the requested duration (one hour when none)."""
    from capture.recorder import check_disk, estimate_bytes_per_hour, format_bytes

    per_hour = estimate_bytes_per_hour(rig, fmt, quality, cameras, seed=seed, people=people)
    seconds = duration_s if duration_s is not None else 3600.0
    needed = int(math.ceil(per_hour * seconds / 3600.0))
    what = f"{len(cameras)} camera(s), {fmt}" + (f" q{quality}" if fmt == "jpeg" else "")
    assumed = " (assuming the nodes send that)" if connect is not None else ""
    span = f"the requested {seconds:g} s" if duration_s is not None else "one hour (no --duration)"
    print(f"disk estimate: {format_bytes(per_hour)} per hour ({what}{assumed}): {format_bytes(needed)} for {span}",
          file=out, flush=True)
    warning = check_disk(folder, needed)
    if warning:
        print(f"mocap: warning: NOT ENOUGH DISK SPACE: {warning}", file=err, flush=True)


def record_session(*, rig, folder: str | Path, cameras: Sequence[str] | None = None, rig_source: str | None = None,
                   curve=None, duration_s: float | None = None, connect: _Connect | None = None,
                   segment_s: float = 60.0, seed: int = 0, people: int = 2, fmt: str = "jpeg", quality: int = 90,
                   raw_codec: str = "ffv1", notes: str = "", command: str = "", sync: str = "timestamp",
                   stop: threading.Event | None = None,
                   out: TextIO | None = None, err: TextIO | None = None,
                   status_interval_s: float = STATUS_INTERVAL_S) -> RecordResult:
    """Record ``folder`` from the rig's nodes (started here unless ``connect``) until the duration or ``stop``.

    ``stop`` (default a new Event) is also set by SIGINT/SIGTERM when called from the main thread. Prints the
    disk estimate and the summary on ``out``, status lines and warnings on ``err``."""
    from capture.recorder import RECORDING_DEADLINE_NS, Recorder
    from capture.subscriber import FrameSubscriber

    out = out or sys.stdout
    err = err or sys.stderr
    stop = stop or threading.Event()
    folder = Path(folder)
    cameras = tuple(cameras or rig.names)
    cam_set = set(cameras)
    sub_rig = rig.subset(cameras)
    _estimate(rig, cameras, folder, duration_s, fmt, quality, seed, people, connect, out, err)

    supervisor = None
    subscriber = None
    recorder: Recorder | None = None
    ignored: Counter[str] = Counter()
    result = RecordResult(0, "", folder)
    with StopOnSignals(stop) as signals:
        try:
            if connect is None:
                from capture.supervisor import NodeSupervisor, node_specs

                specs = node_specs(rig, rig_source or rig.name, fmt=fmt, quality=quality, seed=seed, people=people,
                                   cameras=list(cameras), python=sys.executable)
                endpoints = {s.camera: s.endpoint for s in specs}
                subscriber = FrameSubscriber(endpoints, cameras=cameras, fps=sub_rig.fps, curve=curve,
                                             name="mocap record")
                supervisor = NodeSupervisor(specs, log_dir=folder / "report" / "nodes")
                supervisor.start()
                pids = supervisor.pids
                where = ", ".join(f"{s.camera} {s.endpoint} ({f'pid {pids[s.camera]}' if s.local else 'remote'})"
                                  for s in specs)
                print(f"record: camera nodes: {where}; their logs in {folder / 'report' / 'nodes'}",
                      file=err, flush=True)
            else:
                subscriber = FrameSubscriber(connect.endpoints, cameras=cameras, everything=bool(connect.plain),
                                             fps=sub_rig.fps, curve=curve, name="mocap record")
                print(f"record: subscribed to {', '.join(dict.fromkeys(connect.endpoints.values()))}",
                      file=err, flush=True)
            offsets = {c.name: c.clock_offset_ns for c in sub_rig if c.clock_offset_ns}
            syncer = None
            if sync == "index":  # hardware-triggered: frame i of every camera is the same instant
                from capture.sync import IndexSync

                syncer = IndexSync(sub_rig.names, fps=sub_rig.fps, offsets_ns=offsets or None,
                                   deadline_ns=RECORDING_DEADLINE_NS)
            recorder = Recorder(folder, rig, cameras, segment_s=segment_s, duration_s=duration_s,
                                offsets_ns=offsets or None, raw_codec=raw_codec, quality=quality, notes=notes,
                                command=command, sync=syncer)
            result.reason = _loop(recorder, subscriber, supervisor, stop, cam_set, ignored, err,
                                  status_interval_s)
            if signals.received:
                result.reason = f"stopped by {signals.received}"
            recorder.close()
        except RecordingError as exc:
            result.exit_code, result.error = 1, str(exc)
            result.reason = result.reason or "the recording failed"
            print(f"mocap: error: {exc}", file=err, flush=True)
        except Exception as exc:
            if recorder is not None:  # a bug: finalise what was written, then let it be seen
                _close_quietly(recorder, err)
                raise
            result.exit_code, result.error = 1, f"{type(exc).__name__}: {exc}"
            result.reason = "the recording could not start"
            print(f"mocap: error: the recording could not start: {exc}", file=err, flush=True)
        except BaseException:  # a second Ctrl-C while finishing: keep what was written
            if recorder is not None:
                _close_quietly(recorder, err)
            raise
        finally:
            if subscriber is not None:
                result.rejected = subscriber.rejects.total
                subscriber.close()
            if supervisor is not None:
                result.restarts = _restarts(supervisor)
                supervisor.stop()
    result.ignored = dict(ignored)
    if recorder is not None:
        result.stats = recorder.stats()
        _summary(result, recorder, out)
    return result


def _close_quietly(recorder: Recorder, err: TextIO) -> None:
    if recorder.closed:
        return
    try:
        recorder.close()
    except RecordingError as exc:
        print(f"mocap: error: {exc}", file=err, flush=True)


def _restarts(supervisor) -> int:
    restarts = getattr(supervisor, "restarts", 0)
    if isinstance(restarts, dict):
        return int(sum(restarts.values()))
    return int(restarts or 0)


def _loop(recorder: Recorder, sub: FrameSubscriber, supervisor, stop: threading.Event, cam_set: set[str],
          ignored: Counter, err: TextIO, status_interval_s: float) -> str:
    """Receive and record until the duration is reached or ``stop`` is set; returns why it stopped."""
    from capture.protocol import FrameMessage

    now = time.monotonic_ns()
    status = _Status(recorder, sub, err, now)
    interval_ns = round(status_interval_s * 1e9)
    next_status = now + interval_ns
    next_poll = now + POLL_INTERVAL_NS
    next_supervise = now + SUPERVISOR_POLL_NS
    while not stop.is_set():
        msg = sub.recv(timeout_ms=50)
        now = time.monotonic_ns()
        if isinstance(msg, FrameMessage):
            if msg.camera in cam_set:
                recorder.add(msg, now)
                status.count(msg.camera, now)
            else:
                ignored[msg.camera] += 1
                if ignored[msg.camera] == 1:
                    print(f"mocap: warning: frames from camera {msg.camera!r} are ignored: it is not among the "
                          f"recorded cameras ({', '.join(recorder.cameras)})", file=err, flush=True)
        if msg is None or now >= next_poll:
            recorder.poll(now)
            next_poll = now + POLL_INTERVAL_NS
        if recorder.done:
            return "duration reached"
        if supervisor is not None and now >= next_supervise and not stop.is_set():
            for line in supervisor.poll():
                print(f"record: {line}", file=err, flush=True)
            next_supervise = now + SUPERVISOR_POLL_NS
        if now >= next_status:
            print(status.line(now), file=err, flush=True)
            status.maybe_warn_no_set(now)
            next_status += interval_ns * max(1, (now - next_status) // interval_ns + 1)
    return "stopped"


def _summary(result: RecordResult, recorder: Recorder, out: TextIO) -> None:
    from capture.recorder import format_bytes

    stats = result.stats or recorder.stats()
    sync = stats["sync"]
    duration = stats["duration_s_recorded"]
    lines = [f"record: {result.reason}" + (f" ({result.error})" if result.error else "")]
    lines.append(f"duration: {duration:.2f} s from the first complete FrameSet" if duration is not None
                 else "duration: no complete FrameSet was recorded")
    lines.append(f"{'camera':<12} {'frames':>7} {'dropped':>8} {'restarts':>8} {'segments':>8} {'after end':>9}")
    for c in recorder.cameras:
        w = stats["cameras_written"][c]
        lines.append(f"{c:<12} {w['frames']:>7} {w['dropped']:>8} {w['seq_resets']:>8} {w['segments']:>8} "
                     f"{w['frames_after_end']:>9}")
    lines.append(f"FrameSets: {sync['sets']} ({sync['complete']} complete, {sync['partial']} partial)")
    lines.append(f"bytes written: {format_bytes(stats['bytes_on_disk'])}")
    extra = []
    if result.ignored:
        extra.append("ignored frames of other cameras: "
                     + ", ".join(f"{c} {n}" for c, n in sorted(result.ignored.items())))
    if result.rejected:
        extra.append(f"rejected messages: {result.rejected}")
    if result.restarts:
        extra.append(f"node restarts: {result.restarts}")
    lines.extend(extra)
    lines.append(f"session: {recorder.folder.resolve()}")
    print("\n".join(lines), file=out, flush=True)
