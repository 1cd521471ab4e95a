"""Capture benchmark: N simulated camera node processes into one subscriber process doing sync and recording.

For each configuration (4 x 720p JPEG, 4 x 720p raw bgr8, 8 x 1080p JPEG, 8 x 1080p raw bgr8, all at 30 fps)
it starts one ``mocap node camera`` process per camera (supervised by ``NodeSupervisor``, simulated cameras
genlocked on the monotonic clock) and one subscriber process running the loop of ``mocap record``: a
``FrameSubscriber`` into a real ``Recorder`` (TimestampSync, segmented Matroska video, CSVs, sync.csv) writing to
a temporary folder, deleted afterwards. After the cameras all deliver and a warm-up, it measures a window of
``--seconds``: fps per camera, frames dropped (grid frames missing at the subscriber, i.e. seq gaps), split
into camera-side drops (the node skipped the frame: too slow to render and encode it in time) and transport
drops (published, never received), latency from capture time to the FrameSet being emitted, complete sets,
CPU and RSS of every process from /proc, and the subscriber's bytes written per second. The instrumentation
is in ``capture_harness.py``.

Before the runs it times the per-frame costs in this process, one thread, nothing else running: rendering a
simulated frame, JPEG encoding it, and the recorder writing it (JPEG passthrough, raw to FFV1).

    .venv/bin/python benchmarks/bench_capture.py [--seconds 20] [--warmup 5] [--only 4x720p-jpeg ...] [--docs]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture_harness import Capture, Window, window  # noqa: E402
from docs_section import machine_line, write_section  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
FPS = 30.0


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    preset: str
    cameras: int
    fmt: str
    nice: int = 0  # the nodes' threads reniced by this once they deliver (the subscriber then goes first)


CONFIGS = (
    Config("4x720p-jpeg", "4 x 720p JPEG", "studio-4", 4, "jpeg"),
    Config("4x720p-raw", "4 x 720p raw bgr8", "studio-4", 4, "bgr8"),
    Config("8x1080p-jpeg", "8 x 1080p JPEG", "studio-8", 8, "jpeg"),
    Config("8x1080p-raw", "8 x 1080p raw bgr8", "studio-8", 8, "bgr8"),
    Config("8x1080p-jpeg-nice", "8 x 1080p JPEG, nodes at nice 10", "studio-8", 8, "jpeg", 10),
)


@dataclass
class Result:
    config: Config
    w: Window | None
    cut_short: str = ""
    error: str = ""
    sub_rss_max: float = 0.0
    first_frames_s: float = 0.0

    @property
    def nodes(self) -> list[str]:
        return [c for c in self.w.fps] if self.w else []


# -- per-frame costs -------------------------------------------------------------------------------------------

def _cpu_ms(fn, n: int) -> float:
    """Median CPU ms (process time: every thread) of fn(k), k = 0..n-1."""
    times = []
    for k in range(n):
        t0 = time.process_time()
        fn(k)
        times.append(time.process_time() - t0)
    return 1000 * statistics.median(times)


def _costs_of(preset: str, reps: int) -> dict[str, float]:
    from capture.protocol import FrameMessage, frame_from_image
    from capture.segment_writer import SegmentWriter
    from capture.sources.simulated import SimulatedCameraSource
    from rigs.formats import load_rig

    cam = load_rig(preset)["cam0"]
    src = SimulatedCameraSource(cam, pace=False)
    frames = deque((src.read() for _ in range(10)), maxlen=8)  # warm caches; the last 8 kept, as a node keeps none
    render = _cpu_ms(lambda k: frames.append(src.read()), reps)
    img = frames[-1].image
    jpeg = _cpu_ms(lambda k: frame_from_image(cam.name, k, k, img, "jpeg", 90), reps)
    j = frame_from_image(cam.name, 0, 0, img, "jpeg", 90)
    raw_mb = len(frame_from_image(cam.name, 0, 0, img, "bgr8").payload) / 1e6
    imgs = [f.image for f in frames]
    with tempfile.TemporaryDirectory() as d:
        wj = SegmentWriter(Path(d) / "j", cam.name, fps=FPS)
        wj.write(j)
        rec_jpeg = _cpu_ms(lambda k: wj.write(FrameMessage(j.camera, k + 1, (k + 1) * 33_333_333, j.width, j.height,
                                                           j.format, j.payload)), reps)
        wj.close()
        wr = SegmentWriter(Path(d) / "r", cam.name, fps=FPS)
        n_raw = 12
        rec_raw = _cpu_ms(lambda k: wr.write(frame_from_image(cam.name, k, k * 33_333_333, imgs[k % len(imgs)],
                                                              "bgr8")), n_raw)
        wr.close()
        ffv1_kb = wr.bytes_on_disk() / n_raw / 1e3
    return {"render": render, "jpeg": jpeg, "jpeg_kb": len(j.payload) / 1e3, "raw_mb": raw_mb,
            "rec_jpeg": rec_jpeg, "rec_ffv1": rec_raw, "ffv1_kb": ffv1_kb}


def frame_costs(reps: int = 30) -> dict[str, dict[str, float]]:
    """CPU ms per frame and sizes, 720p and 1080p: render, JPEG q90, the recorder writing JPEG / raw to FFV1."""
    return {"720p": _costs_of("studio-4", reps), "1080p": _costs_of("studio-8", reps)}


# -- one configuration -----------------------------------------------------------------------------------------

def run_config(cfg: Config, seconds: float, warmup: float, mem_limit_mb: float) -> Result:
    """Start the capture, wait for every camera, warm up, measure ``seconds``; end early past the memory guard.

    The guard (all processes' RSS) is checked every 0.5 s from the start: raw frames queue in ZeroMQ (node send
    queues, the subscriber's receive queue) when the recorder cannot keep up. When it trips before the window,
    the window is whatever was measured since the first point reached (all cameras delivering, or the start)."""
    t0 = time.monotonic()
    print(f"== {cfg.label}: starting {cfg.cameras} nodes and the subscriber", flush=True)
    with Capture(cfg.preset, cfg.cameras, cfg.fmt) as cap:
        state = {"cut": "", "sub_max": 0.0, "peak": 0.0}

        def guard() -> bool:
            cap.check_alive()
            held, sub = cap.held_mb()
            state["sub_max"] = max(state["sub_max"], sub)
            state["peak"] = max(state["peak"], held)
            if held > mem_limit_mb and not state["cut"]:
                state["cut"] = (f"cut short {time.monotonic() - t0:.1f} s after the start: the processes held "
                                f"{held / 1024:.1f} GB (subscriber {sub / 1024:.1f} GB), over the "
                                f"{mem_limit_mb / 1024:.0f} GB guard")
            return bool(state["cut"])

        def wait(until: float, done=lambda: False) -> bool:
            """Sleep until ``until`` or ``done()``; False when the guard tripped."""
            while time.monotonic() < until and not done():
                if guard():
                    return False
                time.sleep(0.5)
            return not guard()

        def everyone() -> bool:
            st = cap.status()
            return bool(st) and all(st["received"][c] > 0 for c in cap.names)

        wait(time.monotonic() + 30, lambda: cap.status() is not None)
        start = cap.snapshot()
        a = start
        first = float("nan")
        if wait(time.monotonic() + 120, everyone):
            if not everyone():
                return Result(cfg, None, error=f"not every camera delivered within 120 s (see {cap.tmp})")
            first = time.monotonic() - t0
            if cfg.nice:
                cap.renice_nodes(cfg.nice)
            a = cap.snapshot()
            if wait(time.monotonic() + warmup):
                a = cap.snapshot()
                wait(a.wall + seconds)
        b = cap.snapshot(after=a, timeout_s=2.0 if state["cut"] else 30.0)
        state["sub_max"] = max(state["sub_max"], b.rss.get("subscriber") or 0.0)
        final = cap.stop()
        if b.sub.get("t_ns", 0) <= a.sub.get("t_ns", 0):
            return Result(cfg, None, error="the subscriber wrote no status during the window (starved)",
                          cut_short=state["cut"])
        w = window(a, b, final, FPS)
        w.growth_mb_s = (sum(v for v in b.rss.values() if v) - sum(v for v in a.rss.values() if v)) / (b.wall - a.wall)
        w.peak_mb = state["peak"]
    r = Result(cfg, w, state["cut"], sub_rss_max=state["sub_max"], first_frames_s=first)
    print_result(r)
    return r


def print_result(r: Result) -> None:
    w = r.w
    print(f"   fps {fmt_fps(r)}  dropped {sum(w.missing.values())} (camera {sum(w.camera_side.values())}, transport "
          f"{sum(w.transport.values())})  latency p50 {fmt_ms(w.lat_p50)} p99 {fmt_ms(w.lat_p99)} ms  "
          f"CPU {sum(w.cpu_pct.values()):.0f} %  {r.cut_short}", flush=True)


# -- formatting ------------------------------------------------------------------------------------------------

def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def fmt_fps(r: Result) -> str:
    vals = list(r.w.fps.values())
    return f"{statistics.median(vals):.1f} ({min(vals):.1f})"


def node_keys(w: Window) -> list[str]:
    return [k for k in w.fps]


def mean_max(vals: list[float], fmt: str = "{:.0f}") -> str:
    if not vals:
        return "-"
    return f"{fmt.format(statistics.mean(vals))} / {fmt.format(max(vals))}"


def tables(results: list[Result]) -> tuple[str, str]:
    h1 = ["config", "fps per camera: median (min)", "dropped: total (camera-side / transport)",
          "dropped per camera", "latency p50 / p99 (ms)", "of which capture->send / send->recv p99 (ms)",
          "complete sets %", "received MB/s", "disk write MB/s"]
    h2 = ["config", "node CPU % mean / max", "subscriber CPU % (main thread: waiting for a CPU % / idle in recv %)",
          "all processes (cores of 2)", "rest of the machine (cores, /proc/stat)",
          "node RSS MB mean / max", "subscriber RSS MB (max)", "node fps (published)", "heartbeat fps"]
    t1 = ["| " + " | ".join(h1) + " |", "|" + "---|" * len(h1)]
    t2 = ["| " + " | ".join(h2) + " |", "|" + "---|" * len(h2)]
    for r in results:
        if r.w is None:
            t1.append(f"| {r.config.label} | failed: {r.error} |" + " |" * (len(h1) - 2))
            continue
        w = r.w
        cams = node_keys(w)
        miss = sum(w.missing.values())
        label = r.config.label + (f" ({w.seconds:.0f} s, cut short)" if r.cut_short else "")
        t1.append("| " + " | ".join([
            label, fmt_fps(r), f"{miss} ({sum(w.camera_side.values())} / {sum(w.transport.values())})",
            "/".join(str(w.missing[c]) for c in cams), f"{fmt_ms(w.lat_p50)} / {fmt_ms(w.lat_p99)}",
            f"{fmt_ms(w.node_p99)} / {fmt_ms(w.wire_p99)}",
            f"{100 * w.complete / w.sets:.1f}" if w.sets else "-", f"{w.in_mb_s:.0f}",
            f"{w.disk_mb_s:.1f}" if w.disk_mb_s is not None else "-"]) + " |")
        ncpu = [w.cpu_pct[c] for c in cams if c in w.cpu_pct]
        nrss = [w.rss[c] for c in cams if c in w.rss]
        nfps = [v for v in w.node_fps.values() if v is not None]
        hb = [v for v in w.hb_fps.values() if v is not None]
        t2.append("| " + " | ".join([
            label, mean_max(ncpu), f"{w.cpu_pct.get('subscriber', float('nan')):.0f} "
                                   f"({100 * w.runq.get('subscriber', 0):.0f} / {100 * (w.recv_wait_frac or 0):.0f})",
            f"{sum(w.cpu_pct.values()) / 100:.2f}", f"{w.other_cores:.2f}", mean_max(nrss), f"{r.sub_rss_max:.0f}",
            mean_max(nfps, "{:.1f}") if nfps else "-", mean_max(hb, "{:.1f}") if hb else "-"]) + " |")
    return "\n".join(t1), "\n".join(t2)


def mem_total_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def where_time_goes(w: Window, recorder_cores: float = 0.0) -> tuple[bool, str]:
    """(the subscriber keeps up, a sentence splitting the latency and saying where the backlog is).

    ``recorder_cores``: the CPU the recorder alone needs at the full rate (from the isolated per-frame cost)."""
    behind = max((b or 0) for b in w.behind_s.values())
    wait = w.recv_wait_frac if w.recv_wait_frac is not None else 0.0
    runq = w.runq.get("subscriber", 0.0)
    text = (f" Latency split (p50 / p99): capture to the node's send {fmt_ms(w.node_p50)} / {fmt_ms(w.node_p99)} ms, "
            f"send to the subscriber's recv {fmt_ms(w.wire_p50)} / {fmt_ms(w.wire_p99)} ms. The subscriber's main "
            f"thread spent {100 * wait:.0f} % of the time in recv (idle when its queue is empty), "
            f"{100 * (w.add_frac or 0):.0f} % in Recorder.add, and was runnable but waiting for a CPU "
            f"{100 * runq:.0f} % of the time (/proc schedstat).")
    transport = sum(w.transport.values())
    if transport == 0 and behind < 1.0:
        return True, text + " It kept up."
    n = len(w.fps)
    starved = (f"With the kernel's sched_autogroup (on here) each node, started by NodeSupervisor in its own "
               f"session, is scheduled as one unit with the same weight as the recorder's, so on a saturated "
               f"machine the recorder gets about 1/{n + 1} of the {os.cpu_count()} cores "
               f"(~{100 * (os.cpu_count() or 1) / (n + 1):.0f} % of a core).")
    if recorder_cores >= 1.0:
        return False, text + (f" It did not keep up (behind by up to {behind:.1f} s at the end): the recorder alone "
                              f"needs ~{recorder_cores:.1f} cores at this rate, and it was also starved of CPU. "
                              + starved)
    if runq >= 0.3:
        return False, text + (f" It did not keep up (behind by up to {behind:.1f} s at the end): it was starved of "
                              f"CPU. " + starved)
    if wait >= 0.2:
        return True, text + (f" It kept up with what reached it, but frames reached it up to {behind:.1f} s late: "
                             f"the backlog is in the nodes' send queues.")
    return False, text + (f" It did not keep up (behind by up to {behind:.1f} s at the end): busy, its receive queue "
                          f"holds the backlog.")


def needs(r: Result, costs: dict, ref_sub_ms: float | None = None) -> str:
    """What the configuration needs to run at 30 fps, from its measured CPU per frame."""
    w = r.w
    cams = node_keys(w)
    n = len(cams)
    tag = "1080p" if "1080" in r.config.key else "720p"
    node_cpu = sum(w.cpu_pct[c] for c in cams if c in w.cpu_pct) / 100  # CPU-seconds per second
    # nodes whose own frames_sent was read at both ends of the window (a starved node may miss a stats write)
    pairs = [(w.cpu_pct[c] / 100, w.node_fps[c]) for c in cams if c in w.cpu_pct and w.node_fps.get(c)]
    per_node_fps = statistics.mean(f for _, f in pairs) if pairs else float("nan")
    received = sum(w.fps.values())
    sub_cpu = w.cpu_pct.get("subscriber", 0.0) / 100
    node_ms = 1000 * sum(x for x, _ in pairs) / sum(f for _, f in pairs) if pairs else float("nan")
    sub_ms = 1000 * sub_cpu / received if received else float("nan")
    c = costs.get(tag, {})
    iso_sub = c.get("rec_ffv1" if r.config.fmt == "bgr8" else "rec_jpeg", float("nan"))
    keeps_up, split = where_time_goes(w, n * FPS * iso_sub / 1000)
    node_need = n * FPS * node_ms / 1000
    sub_est = iso_sub if r.config.fmt == "bgr8" or ref_sub_ms is None else max(iso_sub, ref_sub_ms)
    sub_need = n * FPS * (sub_ms if keeps_up else sub_est) / 1000
    parts = [
        f"**{r.config.label}** measured {node_cpu + sub_cpu:.2f} CPU-seconds per second on 2 cores "
        f"({100 * (node_cpu + sub_cpu) / 2:.0f} % of the machine): each node used {100 * node_cpu / n:.0f} % of a "
        f"core publishing {per_node_fps:.1f} fps ({node_ms:.1f} ms CPU per frame; in isolation render "
        f"{c.get('render', float('nan')):.1f} ms"
        + (f" + JPEG q90 {c.get('jpeg', float('nan')):.1f} ms, {c.get('jpeg_kb', 0):.0f} KB" if r.config.fmt == "jpeg"
           else f", then a {c.get('raw_mb', 0):.1f} MB raw frame to send")
        + f"), the subscriber {100 * sub_cpu:.0f} % for {received:.0f} frames/s ({sub_ms:.1f} ms per frame"
        + ("" if keeps_up else ", inflated: starved, and receiving into its backlog")
        + (f"; the recorder alone: raw to FFV1 {iso_sub:.0f} ms CPU per frame in isolation"
           if r.config.fmt == "bgr8" else f"; the recorder alone: JPEG passthrough {iso_sub:.2f} ms")
        + ")",
    ]
    if keeps_up:
        parts.append(f". At {FPS:.0f} fps it needs ~{node_need + sub_need:.1f} cores ({n} x {FPS:.0f} x "
                     f"({node_ms:.1f} + {sub_ms:.1f}) ms)")
    else:
        parts.append(f". At {FPS:.0f} fps it needs ~{node_need + sub_need:.1f} cores: {node_need:.1f} for the "
                     f"nodes ({n} x {FPS:.0f} x {node_ms:.1f} ms) and at least {sub_need:.1f} for the subscriber "
                     + (f"({n} x {FPS:.0f} x {sub_est:.1f} ms, its whole cost per frame where it kept up, "
                        f"4 x 720p JPEG)" if sub_est != iso_sub else
                        f"({n} x {FPS:.0f} x {iso_sub:.0f} ms, the recorder's cost alone; plus receiving)"))
    if r.config.fmt == "bgr8":
        mb = n * FPS * c.get("raw_mb", 0)
        rec = n * FPS * c.get("rec_ffv1", 0) / 1000
        parts.append(f"; {mb:,.0f} MB/s over loopback, and recording it losslessly takes ~{rec:.1f} "
                     f"cores of FFV1 in the subscriber ({c.get('ffv1_kb', 0) * n * FPS / 1e3:.0f} MB/s to disk); "
                     f"on 2 cores use `mocap record --raw-codec mjpeg` or JPEG from the nodes")
    parts.append("." + split + (f" ({r.cut_short}.)" if r.cut_short else ""))
    if w.complete < w.sets and w.late:
        parts.append(f" Sync: {w.complete} of {w.sets} FrameSets complete, {w.late} frames counted late (written "
                     f"to video, left out of sync.csv): behind a backlog each camera's frames of one instant reach "
                     f"the syncer further apart than its deadline (2 frame periods from the first arrival).")
    if max((b or 0) for b in w.behind_s.values()) >= 1.0:
        from capture.protocol import DEFAULT_HWM
        from capture.subscriber import receive_hwm

        rcv = receive_hwm(n, FPS)
        frame_mb = c.get("raw_mb", 0) if r.config.fmt == "bgr8" else c.get("jpeg_kb", 0) / 1000
        held = n * (rcv + DEFAULT_HWM) * frame_mb / 1000
        parts.append(f" The backlog sits in ZeroMQ queues: all processes' RSS grew {w.growth_mb_s:,.0f} MB/s over "
                     f"the window (peak {w.peak_mb / 1024:.1f} GB). Nothing is dropped in transport until a "
                     f"camera's connection holds {rcv + DEFAULT_HWM} frames (the subscriber's receive HWM "
                     f"{rcv}, sized for all {n} cameras but applied per connection, + the node's send HWM "
                     f"{DEFAULT_HWM}), about {held:,.1f} GB for {n} cameras"
                     + (f", more than this machine's {mem_total_gb():.0f} GB: an overloaded raw recording runs out "
                        f"of memory before ZeroMQ drops a frame." if held > mem_total_gb() else
                        f" (this machine has {mem_total_gb():.0f} GB)."))
    return "".join(parts)


def niced(r: Result) -> str:
    """Whether the subscriber keeps up once it has the CPU first (the nodes' threads at a lower priority)."""
    w = r.w
    n = len(w.fps)
    sub = w.cpu_pct.get("subscriber", 0.0)
    received = sum(w.fps.values())
    published = statistics.mean(v for v in w.node_fps.values() if v) if any(w.node_fps.values()) else 0.0
    keeps, split = where_time_goes(w)
    return (f"**{r.config.label}** (the same rig with every node's autogroup and threads reniced to "
            f"{r.config.nice} once delivering, so the subscriber is served first): the nodes published "
            f"{published:.1f} fps each "
            f"({sum(w.camera_side.values())} frames dropped camera-side, {sum(w.transport.values())} in transport), "
            f"the subscriber used {sub:.0f} % of a core for {received:.0f} frames/s "
            f"({10 * sub / received if received else float('nan'):.1f} ms per frame); latency p50 {fmt_ms(w.lat_p50)} "
            f"/ p99 {fmt_ms(w.lat_p99)} ms, {w.complete} of {w.sets} FrameSets complete ({w.late} frames late; a "
            f"set is also incomplete whenever one of the {n} nodes skipped that instant)." + split
            + (" So given the CPU first, the subscriber keeps up with 8 x 1080p JPEG at about "
               f"{10 * sub / received if received else float('nan'):.1f} ms per frame; the deficit is the nodes' "
               "CPU." if keeps else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per configuration")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after every camera delivers")
    parser.add_argument("--only", nargs="*", choices=[c.key for c in CONFIGS], help="run only these")
    parser.add_argument("--mem-limit-gb", type=float, default=6.0,
                        help="end a window early when the processes hold more than this (a backlog)")
    parser.add_argument("--docs", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args(argv)
    configs = [c for c in CONFIGS if not args.only or c.key in args.only]

    print("per-frame costs (one thread, in this process) ...", flush=True)
    costs = frame_costs()
    for tag, c in costs.items():
        print(f"   {tag}: render {c['render']:.1f} ms, JPEG q90 {c['jpeg']:.1f} ms ({c['jpeg_kb']:.0f} KB), "
              f"recorder: JPEG passthrough {c['rec_jpeg']:.2f} ms, raw -> FFV1 {c['rec_ffv1']:.0f} ms "
              f"({c['ffv1_kb']:.0f} KB)", flush=True)
    results = [run_config(c, args.seconds, args.warmup, args.mem_limit_gb * 1024) for c in configs]

    t1, t2 = tables(results)
    notes = []
    target = next((r for r in results if r.config.key == "4x720p-jpeg" and r.w is not None), None)
    if target is not None:
        w = target.w
        drops = sum(w.missing.values())
        ok = drops == 0 and min(w.fps.values()) >= 0.98 * FPS and w.complete == w.sets
        verdict = ("PASS" if ok else "FAIL") + (
            f": target 4 x 720p x 30 fps JPEG with zero drops: {drops} frames dropped in {w.seconds:.0f} s, "
            f"fps per camera {', '.join(f'{v:.1f}' for v in w.fps.values())}, {w.complete} of {w.sets} "
            f"FrameSets complete, latency p99 {fmt_ms(w.lat_p99)} ms")
    else:
        verdict = "FAIL: the 4 x 720p JPEG configuration did not run"
    ref_sub_ms = None
    if target is not None and target.w.fps:
        ref_sub_ms = 1000 * target.w.cpu_pct.get("subscriber", 0) / 100 / sum(target.w.fps.values())
    for r in results:
        if r.w is not None and r.config.nice:
            notes.append(niced(r))
        elif r.w is not None and r.config.key != "4x720p-jpeg":
            notes.append(needs(r, costs, ref_sub_ms))
        elif r.w is not None:
            notes.append(needs(r, costs).replace(f"At {FPS:.0f} fps it needs", "It needs"))
        if r.cut_short:
            notes.append(f"{r.config.label}: {r.cut_short}.")
    cost_lines = [f"Per-frame costs, one thread in one process with nothing else running ({tag}): render "
                  f"{c['render']:.1f} ms, JPEG q90 encode {c['jpeg']:.1f} ms ({c['jpeg_kb']:.0f} KB); recorder: "
                  f"JPEG passthrough {c['rec_jpeg']:.2f} ms, raw to FFV1 {c['rec_ffv1']:.0f} ms CPU "
                  f"({c['ffv1_kb']:.0f} KB)." for tag, c in costs.items()]

    print("\n## Capture\n")
    print(t1)
    print()
    print(t2)
    print()
    for line in cost_lines + notes + [verdict]:
        print("- " + line)
    if args.docs:
        shown = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--docs"]
        write_docs(t1, t2, cost_lines + notes, verdict, shown, args)
        print(f"wrote {DOCS}")
    return 0


def write_docs(t1: str, t2: str, notes: list[str], verdict: str, argv: list[str], args) -> None:
    lines = [
        "## Capture: camera nodes into one recording subscriber", "",
        "Command: `" + " ".join([".venv/bin/python benchmarks/bench_capture.py", *argv]) + "`", "",
        f"Machine: {machine_line()} (shared, other heavy work kept off during the runs). "
        f"Date: {datetime.date.today().isoformat()}.", "",
        "Setup: one `mocap node camera` process per simulated camera (the `studio-4` / `studio-8` presets, "
        "1280x720 / 1920x1080 at 30 fps, genlocked on the monotonic clock, 2 performers, JPEG q90 or raw `bgr8`) "
        "started by `NodeSupervisor`, publishing over ZeroMQ tcp on 127.0.0.1 into ONE subscriber process that "
        "runs the loop of `mocap record`: `FrameSubscriber` -> `Recorder` (TimestampSync, Matroska segments via "
        "PyAV: JPEG muxed as received, raw encoded to lossless FFV1; CSVs; sync.csv) into a temporary folder, "
        "deleted afterwards. The last configuration repeats 8 x 1080p JPEG with every node reniced to 10 (its "
        "autogroup, /proc/<pid>/autogroup, and its threads) once the cameras deliver, to see whether the subscriber "
        "keeps up when it gets the CPU first. Each "
        "configuration is measured for "
        f"{args.seconds:g} s after every camera delivered and a {args.warmup:g} s warm-up.", "",
        "How: fps = frames the subscriber received per second. Dropped = frames missing between consecutive "
        "received frames of a camera (seq gaps, located on the genlock grid by the frame's truth index): "
        "camera-side when the node's simulated camera skipped that grid frame itself (it renders and encodes "
        "too slowly to keep the 30 fps grid and skips ahead), transport when the node published it and the "
        "subscriber never got it. Latency = the subscriber's monotonic clock when the syncer emitted the "
        "FrameSet minus its capture time (header `t_ns`, the frame's grid time, so it includes render, encode, "
        "transport, waiting for the last camera, and the recorder's writes). CPU % is of one core "
        "(utime + stime from /proc/<pid>/stat over the window), RSS from /proc/<pid>/status at the end of the "
        "window; disk write MB/s is the subscriber's `wchar` (/proc/<pid>/io). Node fps (published) is each "
        "node's own `frames_sent`; heartbeat fps is what the nodes' heartbeats reported. The latency split uses "
        "each frame's header `sent_ns` (when the node handed it to ZeroMQ); waiting for a CPU is from "
        "/proc/<pid>/task/<pid>/schedstat of the subscriber's main thread; the rest of the machine is /proc/stat's "
        "busy time minus these processes (this script and anything else running).", "",
        t1, "", t2, "", *[f"- {n}" for n in notes], f"- {verdict}"]
    write_section(DOCS, "bench_capture", lines)


if __name__ == "__main__":
    sys.exit(main())
