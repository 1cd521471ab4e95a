"""Shared harness of the capture benchmarks (``bench_capture.py``, ``soak_capture.py``).

A run is real processes on loopback, as ``mocap record`` runs them:

- one ``mocap node camera`` process per camera (started and supervised by ``capture.supervisor.NodeSupervisor``),
  publishing simulated frames genlocked on the rig's monotonic clock;
- one subscriber process (``capture_harness.py subscribe``): a ``FrameSubscriber`` feeding a real ``Recorder``
  (TimestampSync, segmented video, CSVs, sync.csv) in a temporary folder, the loop of ``mocap record``.

Both are instrumented, without changing what they run:

- a node runs as ``capture_harness.py node STATS -- <mocap node camera args>``: the mocap command line itself
  (``mocap.cli.main``), with ``capture.sources.open_source`` wrapped so the simulated camera's own drops are
  seen (it skips grid frames when it falls behind: their grid indices go to STATS) and the ``CameraNode`` kept
  so its ``frames_sent`` can be read. STATS is a small JSON file rewritten every 0.5 s and at exit.
- the subscriber writes a JSON status every ``--interval`` s (atomically): per camera frames received, the grid
  frames missing between consecutive received frames (the frame's ``truth["frame"]``, the simulated camera's
  grid index: a seq gap, located on the grid), heartbeat fps and status, the time it is behind; FrameSets
  complete/partial; a histogram of the latency from each set's capture time (header ``t_ns``, monotonic
  clock) to the moment the syncer emitted it, in the subscriber.

So a frame missing at the subscriber is a camera-side drop when its node skipped that grid frame (the node was
too slow to render and encode in time), and a transport drop otherwise (published but never received, e.g.
past a ZeroMQ high-water mark). The orchestrating process (``Capture``) reads those files and ``/proc`` (CPU
ticks and RSS of each process, the subscriber's bytes written) and is itself not measured.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HERE = Path(__file__).resolve()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Latency histogram: log-spaced bins 1 % wide from 0.1 ms to about 1000 s (percentiles to 1 %).
SLOW_ADD_MS = 25.0  # Recorder.add calls at least this long are noted (time since start, ms, camera, closed a segment)
LAT_MIN_MS = 0.1
LAT_RATIO = 1.01
LAT_BINS = int(math.ceil(math.log(1e7) / math.log(LAT_RATIO))) + 1


def lat_bin(ms: float) -> int:
    if ms <= LAT_MIN_MS:
        return 0
    return min(LAT_BINS - 1, int(math.log(ms / LAT_MIN_MS) / math.log(LAT_RATIO)))


def hist_percentile(hist, q: float) -> float | None:
    """The q-th percentile (0..100) in ms of a latency histogram (bin centre), None when empty."""
    total = sum(hist)
    if total <= 0:
        return None
    target = q / 100 * total
    acc = 0
    for k, n in enumerate(hist):
        acc += n
        if acc >= target and n:
            return LAT_MIN_MS * LAT_RATIO ** (k + 0.5)
    return LAT_MIN_MS * LAT_RATIO ** (LAT_BINS - 0.5)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# -- the instrumented node ----------------------------------------------------------------------------------------

def node_main(argv: list[str]) -> int:
    """``capture_harness.py node STATS -- <args of mocap node camera>``: mocap's own command, instrumented."""
    stats_path = Path(argv[0])
    rest = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    import capture.camera_node as camera_node
    import capture.sources as sources

    state = {"reads": 0, "dropped": 0, "skips": [], "node": None}
    real_open = sources.open_source
    real_init = camera_node.CameraNode.__init__

    class Spy:
        """The opened source, unchanged, with its skipped grid frames noted."""

        def __init__(self, src):
            self._src = src

        def __getattr__(self, name):
            return getattr(self._src, name)

        def read(self):
            before = getattr(self._src, "dropped", 0) or 0
            frame = self._src.read()
            after = getattr(self._src, "dropped", 0) or 0
            if after > before and isinstance(frame.truth, dict) and "frame" in frame.truth:
                state["skips"].append((int(frame.truth["frame"]) - (after - before), after - before))
            state["reads"] += 1
            state["dropped"] = after
            return frame

    def open_source(*a, **k):
        return Spy(real_open(*a, **k))

    def init(self, *a, **k):
        real_init(self, *a, **k)
        state["node"] = self

    sources.open_source = open_source
    camera_node.CameraNode.__init__ = init

    def dump(final: bool = False) -> None:
        node = state["node"]
        write_json_atomic(stats_path, {
            "pid": os.getpid(), "t_ns": time.monotonic_ns(), "final": final, "reads": state["reads"],
            "dropped": state["dropped"], "skips": list(state["skips"]),
            "frames_sent": None if node is None else node.frames_sent,
            "last_seq": None if node is None else node.last_seq, "status": None if node is None else node.status})

    halt = threading.Event()

    def dumper() -> None:
        while not halt.wait(0.5):
            with contextlib.suppress(Exception):
                dump()

    threading.Thread(target=dumper, daemon=True, name="bench-stats").start()
    from mocap.cli import main

    try:
        return main(["node", "camera", *rest])
    finally:
        halt.set()
        dump(final=True)


# -- the subscriber: sync + recording -----------------------------------------------------------------------------

def subscribe_main(argv: list[str]) -> int:
    """``capture_harness.py subscribe --rig RIG --out FOLDER --status FILE``: record until SIGTERM."""
    import argparse

    p = argparse.ArgumentParser(prog="capture_harness.py subscribe")
    p.add_argument("--rig", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--status", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--segment-s", type=float, default=60.0)
    p.add_argument("--raw-codec", default="ffv1")
    args = p.parse_args(argv)

    from capture.protocol import FrameMessage, Heartbeat
    from capture.record_command import POLL_INTERVAL_NS
    from capture.recorder import Recorder
    from capture.subscriber import FrameSubscriber
    from rigs.formats import load_rig

    rig = load_rig(args.rig)
    cams = rig.names
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sub = FrameSubscriber({c.name: c.endpoint for c in rig}, fps=rig.fps, name="bench subscriber")
    rec = Recorder(args.out, rig, segment_s=args.segment_s, raw_codec=args.raw_codec, command="bench")
    status_path = Path(args.status)
    received = dict.fromkeys(cams, 0)
    bytes_in = dict.fromkeys(cams, 0)
    last_i: dict[str, int | None] = dict.fromkeys(cams)
    last_t = dict.fromkeys(cams, 0)
    first_t: dict[str, int | None] = dict.fromkeys(cams)
    gaps: dict[str, list] = {c: [] for c in cams}
    backwards = dict.fromkeys(cams, 0)
    hb_n = dict.fromkeys(cams, 0)
    hb_sum = dict.fromkeys(cams, 0.0)
    hb_status = dict.fromkeys(cams, "")
    hb_fps = dict.fromkeys(cams, 0.0)
    hist = [0] * LAT_BINS
    node_hist = [0] * LAT_BINS  # per frame: header sent_ns - t_ns (render, encode, the node's queue)
    wire_hist = [0] * LAT_BINS  # per frame: received - sent_ns (ZeroMQ queues on both sides, TCP, decode)
    busy = {"recv_s": 0.0, "add_s": 0.0, "idle": 0}  # time in sub.recv (mostly waiting) and in rec.add
    lat_max = [0.0]
    sets = {"complete": 0, "partial": 0}
    interval_ns = round(args.interval * 1e9)

    def on_sets(fss, now_ns):
        for fs in fss:
            ms = (now_ns - fs.t_ns) / 1e6
            hist[lat_bin(ms)] += 1
            lat_max[0] = max(lat_max[0], ms)
            sets["complete" if fs.complete else "partial"] += 1

    def status(final: bool = False) -> None:
        now = time.monotonic_ns()
        write_json_atomic(status_path, {
            "pid": os.getpid(), "t_ns": now, "final": final, "cameras": list(cams),
            "received": received, "bytes_in": bytes_in, "first_t_ns": first_t,
            "gaps": gaps, "missing": {c: sum(n for _, n in gaps[c]) for c in cams}, "backwards": backwards,
            "behind_s": {c: (now - last_t[c]) / 1e9 if last_t[c] else None for c in cams},
            "hb_n": hb_n, "hb_sum": hb_sum, "hb_status": hb_status, "hb_fps": hb_fps,
            "lat_hist": hist, "lat_max_ms": lat_max[0], "sets": sets, "node_hist": node_hist,
            "wire_hist": wire_hist, "busy": busy,
            "writer_frames": {c: rec.writer(c).frames for c in cams},
            "writer_dropped": {c: rec.writer(c).dropped for c in cams},
            "segments_closed": {c: len(rec.writer(c).closed_segments) for c in cams},
            "sync_dropped": {c: int(v) for c, v in zip(cams, rec.sync.stats.dropped, strict=True)},
            "sync_late": {c: int(v) for c, v in zip(cams, rec.sync.stats.late, strict=True)},
            "rejected": sub.rejects.total, "slow_adds": slow})

    now = t_begin = time.monotonic_ns()
    slow = {"n": 0, "events": []}
    next_status = now
    next_poll = now + POLL_INTERVAL_NS
    try:
        while not stop.is_set():
            t_recv = time.monotonic_ns()
            msg = sub.recv(timeout_ms=50)
            now = time.monotonic_ns()
            busy["recv_s"] += (now - t_recv) / 1e9
            if msg is None:
                busy["idle"] += 1
            if isinstance(msg, FrameMessage) and msg.camera in received:
                c = msg.camera
                received[c] += 1
                bytes_in[c] += len(msg.payload)
                if first_t[c] is None:
                    first_t[c] = msg.t_ns
                last_t[c] = msg.t_ns
                i = msg.truth.get("frame") if isinstance(msg.truth, dict) else None
                if i is not None:
                    prev = last_i[c]
                    if prev is not None and i > prev + 1:
                        gaps[c].append((prev + 1, i - prev - 1))
                    elif prev is not None and i <= prev:
                        backwards[c] += 1
                    last_i[c] = i
                if msg.sent_ns is not None:
                    node_hist[lat_bin((msg.sent_ns - msg.t_ns) / 1e6)] += 1
                    wire_hist[lat_bin((now - msg.sent_ns) / 1e6)] += 1
                closed_before = len(rec.writer(c).closed_segments)
                fss = rec.add(msg, now)
                took = (time.monotonic_ns() - now) / 1e6
                busy["add_s"] += took / 1e3
                if took >= SLOW_ADD_MS:
                    slow["n"] += 1
                    if len(slow["events"]) < 500:
                        slow["events"].append((round((now - t_begin) / 1e9, 2), round(took, 1), c,
                                               len(rec.writer(c).closed_segments) > closed_before))
                on_sets(fss, now)
            elif isinstance(msg, Heartbeat) and msg.camera in received:
                hb_n[msg.camera] += 1
                hb_sum[msg.camera] += msg.fps
                hb_fps[msg.camera] = msg.fps
                hb_status[msg.camera] = msg.status
            if msg is None or now >= next_poll:
                on_sets(rec.poll(now), now)
                next_poll = now + POLL_INTERVAL_NS
            if now >= next_status:
                status()
                next_status = now + interval_ns
    finally:
        sub.close()
        try:
            rec.close()
        finally:
            status(final=True)
    return 0


# -- /proc ---------------------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process in seconds (its threads included)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def schedstat(pid: int, tid: int | None = None) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for a CPU) of one thread (default the main thread)."""
    try:
        f = Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()
        return int(f[0]), int(f[1])
    except (OSError, ValueError, IndexError):
        return None


def machine_busy_s() -> float:
    """CPU-seconds all CPUs of the machine spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wchar(pid: int) -> int | None:
    """Bytes the process passed to write() and friends (all files: segments, CSVs, status)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, f)).st_size
    return total


def free_ports(n: int) -> list[int]:
    """n TCP ports free on 127.0.0.1 now (held together while chosen, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# -- the orchestrator ---------------------------------------------------------------------------------------------

@dataclass
class Snapshot:
    """One look at a running capture: the subscriber's status, node stats, and /proc of every process."""

    wall: float  # time.monotonic() of the orchestrator
    sub: dict
    nodes: dict[str, dict | None]
    cpu: dict[str, float | None]  # process label -> CPU seconds
    rss: dict[str, float | None]
    sub_wchar: int | None
    folder_bytes: int
    disk_free: int
    sched: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # main thread of each process
    machine_busy: float = 0.0  # CPU-seconds the whole machine has been busy (all processes)


@dataclass
class Capture:
    """N simulated camera node processes and one recording subscriber process; see the module docstring.

    ``preset``: the rig preset (studio-4 is 1280x720, studio-8 1920x1080, 30 fps); ``cameras`` the first N of
    it; ``size`` an optional (width, height) the cameras are resized to. Use as a context manager."""

    preset: str
    cameras: int
    fmt: str = "jpeg"
    size: tuple[int, int] | None = None
    quality: int = 90
    segment_s: float = 60.0
    raw_codec: str = "ffv1"
    workdir: Path | None = None
    tmp: Path = field(init=False)
    rig: object = field(init=False)

    def __enter__(self) -> Capture:
        self.supervisor = None
        self.sub_proc = None
        self._sub_log = None
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        from capture.supervisor import NodeSpec, NodeSupervisor, node_specs
        from rigs.formats import load_rig, save_rig

        self.tmp = Path(tempfile.mkdtemp(prefix="mocap-bench-", dir=self.workdir))
        base = load_rig(self.preset)
        cams = list(base)[: self.cameras]
        ports = free_ports(len(cams))
        cams = [(c.resized(*self.size) if self.size else c).replace(endpoint=f"tcp://127.0.0.1:{p}")
                for c, p in zip(cams, ports, strict=True)]
        self.rig = base.replace(cameras=tuple(cams), name=f"bench-{len(cams)}x{cams[0].height}p")
        rig_path = save_rig(self.rig, self.tmp / "rig.toml")
        self.session = self.tmp / "session"
        self.status_path = self.tmp / "subscriber.json"
        self._sub_log = open(self.tmp / "subscriber.log", "wb")  # noqa: SIM115 - closed in __exit__
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                             if p))
        self.sub_proc = subprocess.Popen(
            [sys.executable, str(HERE), "subscribe", "--rig", str(rig_path), "--out", str(self.session),
             "--status", str(self.status_path), "--segment-s", str(self.segment_s), "--raw-codec", self.raw_codec],
            stdout=self._sub_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        specs = []
        self.node_stats = {}
        for s in node_specs(self.rig, str(rig_path), fmt=self.fmt, quality=self.quality, python=sys.executable):
            stats = self.tmp / f"node-{s.camera}.json"
            self.node_stats[s.camera] = stats
            args = list(s.command[s.command.index("camera") + 1:])  # after `python -m mocap node camera`
            specs.append(NodeSpec(s.camera, s.endpoint, (sys.executable, str(HERE), "node", str(stats), "--", *args),
                                  True))
        self.supervisor = NodeSupervisor(specs, log_dir=self.tmp / "nodes")
        self.supervisor.start()

    @property
    def names(self) -> tuple[str, ...]:
        return self.rig.names

    def pids(self) -> dict[str, int]:
        out = {c: p for c, p in self.supervisor.pids.items() if p is not None}
        if self.sub_proc.poll() is None:
            out["subscriber"] = self.sub_proc.pid
        return out

    def status(self) -> dict | None:
        return read_json(self.status_path)

    def wait_for_frames(self, timeout_s: float = 90.0) -> None:
        """Until every camera has delivered a frame to the subscriber."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            st = self.status()
            if st and all(st["received"][c] > 0 for c in self.names):
                return
            time.sleep(0.5)
        raise RuntimeError(f"no frames from every camera after {timeout_s:g} s; logs in {self.tmp}")

    def renice_nodes(self, nice: int) -> None:
        """Lower the priority of every node (the subscriber keeps its own): each thread's nice, and the nice of
        the node's autogroup, since with ``sched_autogroup`` (on here) every session - and NodeSupervisor starts
        each node in its own - is scheduled as one unit, fairly against the others, whatever its threads' nice."""
        for pid in self.supervisor.pids.values():
            if pid is None:
                continue
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/autogroup").write_text(str(nice))
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, int(tid), nice)

    def held_mb(self) -> tuple[float, float]:
        """(RSS of every process, RSS of the subscriber) in MB now."""
        rss = {k: rss_mb(p) or 0.0 for k, p in self.pids().items()}
        return sum(rss.values()), rss.get("subscriber", 0.0)

    def check_alive(self) -> None:
        if self.sub_proc.poll() is not None:
            raise RuntimeError(f"the subscriber exited ({self.sub_proc.returncode}); see {self.tmp}/subscriber.log")
        events = self.supervisor.poll()
        if events:
            print("capture: " + "; ".join(events), file=sys.stderr, flush=True)

    def snapshot(self, after: Snapshot | None = None, timeout_s: float = 30.0) -> Snapshot:
        """/proc and the status files now; with ``after``, once the subscriber wrote a newer status than it."""
        if after is not None:
            deadline = time.monotonic() + timeout_s
            while ((self.status() or {}).get("t_ns", 0) <= after.sub.get("t_ns", 0)
                   and time.monotonic() < deadline):
                time.sleep(0.1)
        pids = self.pids()
        return Snapshot(time.monotonic(), self.status() or {}, {c: read_json(p) for c, p in self.node_stats.items()},
                        {k: cpu_seconds(p) for k, p in pids.items()}, {k: rss_mb(p) for k, p in pids.items()},
                        wchar(self.sub_proc.pid), folder_bytes(self.session) if self.session.exists() else 0,
                        shutil.disk_usage(self.tmp).free, {k: schedstat(p) for k, p in pids.items()},
                        machine_busy_s())

    def prune_segments(self, keep: int) -> int:
        """Delete each camera's closed segments but the last ``keep`` (the newest file is the open one)."""
        removed = 0
        for c in self.names:
            files = sorted((self.session / "video" / c).glob(f"{c}_[0-9][0-9][0-9][0-9].*"))
            for f in files[: max(0, len(files) - 1 - keep)]:
                with contextlib.suppress(OSError):
                    f.unlink()
                    removed += 1
        return removed

    def stop(self) -> dict:
        """Stop the nodes, then the subscriber (which closes the recording); the final node stats."""
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.sub_proc is not None and self.sub_proc.poll() is None:
            self.sub_proc.send_signal(signal.SIGTERM)
            try:
                self.sub_proc.wait(60)
            except subprocess.TimeoutExpired:
                self.sub_proc.kill()
                self.sub_proc.wait()
        return {c: read_json(p) for c, p in getattr(self, "node_stats", {}).items()}

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            if self._sub_log is not None:
                self._sub_log.close()
            if hasattr(self, "tmp") and not os.environ.get("MOCAP_BENCH_KEEP"):
                shutil.rmtree(self.tmp, ignore_errors=True)


# -- comparing two snapshots ---------------------------------------------------------------------------------------

def classify_missing(gaps: list, skips: list) -> tuple[int, int]:
    """(camera-side, transport): grid frames missing at the subscriber that the node skipped, and the rest."""
    skipped = sorted((int(s), int(s) + int(n)) for s, n in skips)
    cam = 0
    total = 0
    for start, n in gaps:
        start, end = int(start), int(start) + int(n)
        total += end - start
        for a, b in skipped:
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                cam += hi - lo
    return cam, total - cam


@dataclass
class Window:
    """What happened between two snapshots of one capture."""

    seconds: float
    fps: dict[str, float]
    missing: dict[str, int]
    camera_side: dict[str, int]
    transport: dict[str, int]
    node_skipped: dict[str, int]  # grid frames each node skipped during the window (its own count)
    hb_fps: dict[str, float | None]
    hb_status: dict[str, str]
    lat_p50: float | None
    lat_p99: float | None
    lat_max: float | None
    sets: int
    complete: int
    cpu_pct: dict[str, float]
    rss: dict[str, float]
    disk_mb_s: float | None
    folder_mb_s: float
    behind_s: dict[str, float | None]
    in_mb_s: float
    rejected: int
    node_fps: dict[str, float | None]  # frames each node published per second (its frames_sent)
    node_p50: float | None = None  # ms from capture (t_ns) to the node's send (sent_ns)
    node_p99: float | None = None
    wire_p50: float | None = None  # ms from the node's send to the subscriber's recv
    wire_p99: float | None = None
    recv_wait_frac: float | None = None  # share of the subscriber's wall time spent in recv (waiting)
    add_frac: float | None = None  # share spent in Recorder.add
    runq: dict[str, float] = field(default_factory=dict)  # share of the window each main thread waited for a CPU
    oncpu: dict[str, float] = field(default_factory=dict)  # share of the window each main thread ran
    other_cores: float = 0.0  # CPU the rest of the machine used during the window (not these processes)
    late: int = 0  # frames the syncer counted late (their set had gone out without them): still recorded
    growth_mb_s: float = 0.0  # RSS of all processes, change per second over the window (set by the caller)
    peak_mb: float = 0.0  # the most all processes held at once (set by the caller)


def window(a: Snapshot, b: Snapshot, final_nodes: dict | None = None, fps: float = 30.0) -> Window:
    sa, sb = a.sub, b.sub
    dt = (sb["t_ns"] - sa["t_ns"]) / 1e9
    cams = sb["cameras"]
    nodes = final_nodes or b.nodes
    fps_c, missing, cam_side, transport, skipped, hb = {}, {}, {}, {}, {}, {}
    for c in cams:
        fps_c[c] = (sb["received"][c] - sa["received"][c]) / dt
        new_gaps = sb["gaps"][c][len(sa["gaps"][c]):]
        skips = (nodes.get(c) or {}).get("skips", [])
        cs, tr = classify_missing(new_gaps, skips)
        missing[c], cam_side[c], transport[c] = cs + tr, cs, tr
        lo, hi = sa["t_ns"] * fps / 1e9, sb["t_ns"] * fps / 1e9  # grid indices in the window
        skipped[c] = sum(max(0, min(s + n, hi) - max(s, lo)) for s, n in skips if s < hi and s + n > lo)
        skipped[c] = int(round(skipped[c]))
        n_hb = sb["hb_n"][c] - sa["hb_n"][c]
        hb[c] = (sb["hb_sum"][c] - sa["hb_sum"][c]) / n_hb if n_hb else None
    late = sum(sb.get("sync_late", {}).get(c, 0) - sa.get("sync_late", {}).get(c, 0) for c in cams)
    node_fps = {}
    for c in cams:
        na, nb = a.nodes.get(c) or {}, b.nodes.get(c) or {}
        ok = na.get("frames_sent") is not None and nb.get("frames_sent") is not None and nb["t_ns"] > na["t_ns"]
        node_fps[c] = (nb["frames_sent"] - na["frames_sent"]) / ((nb["t_ns"] - na["t_ns"]) / 1e9) if ok else None
    hist = [y - x for x, y in zip(sa["lat_hist"], sb["lat_hist"], strict=True)]
    sets = sum(sb["sets"].values()) - sum(sa["sets"].values())
    complete = sb["sets"]["complete"] - sa["sets"]["complete"]
    wall = b.wall - a.wall
    cpu = {k: 100 * (b.cpu[k] - a.cpu[k]) / wall for k in b.cpu
           if b.cpu.get(k) is not None and a.cpu.get(k) is not None}
    disk = None
    if a.sub_wchar is not None and b.sub_wchar is not None:
        disk = (b.sub_wchar - a.sub_wchar) / wall / 1e6
    bytes_in = sum(sb["bytes_in"][c] - sa["bytes_in"][c] for c in cams)
    extra = {"runq": {}, "oncpu": {},
             "other_cores": max(0.0, (b.machine_busy - a.machine_busy) / wall - sum(cpu.values()) / 100)}
    for k, x in b.sched.items():
        y = a.sched.get(k)
        if x and y:
            extra["oncpu"][k] = (x[0] - y[0]) / 1e9 / wall
            extra["runq"][k] = (x[1] - y[1]) / 1e9 / wall
    if "node_hist" in sb and "node_hist" in sa:
        nh = [y - x for x, y in zip(sa["node_hist"], sb["node_hist"], strict=True)]
        wh = [y - x for x, y in zip(sa["wire_hist"], sb["wire_hist"], strict=True)]
        extra |= {"node_p50": hist_percentile(nh, 50), "node_p99": hist_percentile(nh, 99),
                 "wire_p50": hist_percentile(wh, 50), "wire_p99": hist_percentile(wh, 99),
                 "recv_wait_frac": (sb["busy"]["recv_s"] - sa["busy"]["recv_s"]) / dt,
                 "add_frac": (sb["busy"]["add_s"] - sa["busy"]["add_s"]) / dt}
    return Window(dt, fps_c, missing, cam_side, transport, skipped, hb, sb["hb_status"],
                  hist_percentile(hist, 50), hist_percentile(hist, 99), hist_percentile(hist, 100), sets, complete, cpu,
                  {k: v for k, v in b.rss.items() if v is not None}, disk,
                  (b.folder_bytes - a.folder_bytes) / wall / 1e6, sb["behind_s"], bytes_in / dt / 1e6,
                  sb.get("rejected", 0) - sa.get("rejected", 0), node_fps, late=late, **extra)


if __name__ == "__main__":
    verb, rest = sys.argv[1], sys.argv[2:]
    if verb == "node":
        sys.exit(node_main(rest))
    if verb == "subscribe":
        sys.exit(subscribe_main(rest))
    sys.exit(f"capture_harness.py: unknown verb {verb!r} (node, subscribe)")
