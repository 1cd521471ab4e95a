"""Capture soak: the 4 x 720p x 30 fps JPEG rig recorded for a long time; memory, drops and the disk rate.

The same processes as ``bench_capture.py`` (``capture_harness.py``): four ``mocap node camera`` processes
(the ``studio-4`` preset, simulated, genlocked) into one subscriber process running the loop of
``mocap record`` (FrameSubscriber -> Recorder: TimestampSync, 60 s Matroska segments, CSVs, sync.csv) in a
temporary folder, deleted at the end. Every ``--interval`` seconds it samples the RSS and CPU of every process
(/proc), the frames received and missing per camera, the latency of the FrameSets, the bytes the subscriber
wrote (``wchar``) and the free disk space. At the end: the memory slope of each process (least-squares line
through its RSS after ``--fit-after`` seconds, MB per hour), the frames dropped (camera-side / transport, as in
bench_capture.py), the mean disk rate, and PASS/FAIL: every slope under ``--max-slope`` MB/h and zero drops.

720p JPEG of the simulated studio is about 170 KB a frame, about 20 MB/s for 4 cameras, 36 GB in 30 minutes.
``--keep-segments N`` keeps disk use bounded: this script deletes each camera's closed segments but the
newest N (after the recorder wrote, closed and fsynced them); the disk rate is what the recorder wrote, so it
is unaffected. Not run by ``make bench`` (it takes ``--minutes``); run it as

    .venv/bin/python benchmarks/soak_capture.py --minutes 30 --keep-segments 3 [--docs]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture_harness import Capture, hist_percentile, window  # noqa: E402
from docs_section import machine_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "soak_capture.png"
FPS = 30.0
MB_PER_S_ESTIMATE = 21.0  # 4 x 30 x ~170 KB


def slope_mb_per_h(t_s: np.ndarray, mb: np.ndarray) -> float:
    if len(t_s) < 3:
        return float("nan")
    return float(np.polyfit(t_s / 3600.0, mb, 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="recording time measured (default 30)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--keep-segments", type=int, default=None, metavar="N",
                        help="delete each camera's closed segments but the newest N (bounded disk use)")
    parser.add_argument("--fit-after", type=float, default=120.0, help="memory warm-up left out of the fit (s)")
    parser.add_argument("--max-slope", type=float, default=20.0, help="MB per hour a flat memory stays under")
    parser.add_argument("--segment-s", type=float, default=60.0, help="the recorder's segment length")
    parser.add_argument("--workdir", type=Path, default=None, help="where the session folder goes (default TMPDIR)")
    parser.add_argument("--csv", type=Path, default=None, help="also write every sample to this CSV")
    parser.add_argument("--plot", type=Path, default=None,
                        help=f"the plot (default {PLOT.relative_to(ROOT)} with --docs, else a temporary file)")
    parser.add_argument("--docs", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60.0

    workdir = args.workdir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(workdir).free
    need = MB_PER_S_ESTIMATE * 1e6 * (seconds + 60)
    if args.keep_segments is None and need > free - 5e9:
        sys.exit(f"soak: about {need / 1e9:.0f} GB would be written to {workdir} ({free / 1e9:.0f} GB free): "
                 f"pass --keep-segments N")

    rows: list[dict] = []
    pruned = 0
    events: list[str] = []
    t_start = time.monotonic()
    with Capture("studio-4", 4, "jpeg", segment_s=args.segment_s, workdir=workdir) as cap:
        cap.wait_for_frames(120)
        s0 = cap.snapshot()
        cams = list(cap.names)
        print(f"soak: {len(cams)} cameras delivering after {time.monotonic() - t_start:.1f} s; recording "
              f"{args.minutes:g} min into {cap.session}", flush=True)
        prev = s0
        next_t = s0.wall + args.interval
        end = s0.wall + seconds
        while True:
            time.sleep(max(0.0, min(next_t, end) - time.monotonic()))
            cap.check_alive()
            restarts = sum(cap.supervisor.restarts.values())
            if restarts and not events:
                events.append(f"node restarts: {cap.supervisor.restarts}")
            snap = cap.snapshot(after=prev, timeout_s=5.0)
            st, pst = snap.sub, prev.sub
            dt = max(1e-9, (st["t_ns"] - pst["t_ns"]) / 1e9)
            hist = [y - x for x, y in zip(pst["lat_hist"], st["lat_hist"], strict=True)]
            sets = sum(st["sets"].values()) - sum(pst["sets"].values())
            row = {
                "t_s": snap.wall - s0.wall,
                **{f"rss_{k}": v for k, v in snap.rss.items()},
                **{f"fps_{c}": (st["received"][c] - pst["received"][c]) / dt for c in cams},
                "missing": sum(st["missing"].values()) - sum(s0.sub["missing"].values()),
                "node_dropped": sum((snap.nodes[c] or {}).get("dropped", 0) for c in cams),
                "complete_pct": 100 * (st["sets"]["complete"] - pst["sets"]["complete"]) / sets if sets else None,
                "lat_p50_ms": hist_percentile(hist, 50), "lat_p99_ms": hist_percentile(hist, 99),
                "lat_max_ms": hist_percentile(hist, 100),
                "disk_mb_s": ((snap.sub_wchar or 0) - (prev.sub_wchar or 0)) / (snap.wall - prev.wall) / 1e6,
                "written_gb": ((snap.sub_wchar or 0) - (s0.sub_wchar or 0)) / 1e9,
                "free_gb": snap.disk_free / 1e9, "folder_gb": snap.folder_bytes / 1e9,
                "cpu_total_pct": sum(100 * (snap.cpu[k] - prev.cpu[k]) / (snap.wall - prev.wall)
                                     for k in snap.cpu if snap.cpu.get(k) is not None and prev.cpu.get(k) is not None),
            }
            rows.append(row)
            if args.keep_segments is not None:
                pruned += cap.prune_segments(args.keep_segments)
            fps = [row[f"fps_{c}"] for c in cams]
            nodes_rss = [snap.rss[c] for c in cams if snap.rss.get(c)]
            print(f"{row['t_s']:7.0f} s  fps {'/'.join(f'{v:.1f}' for v in fps)}  missing {row['missing']}  "
                  f"RSS sub {snap.rss.get('subscriber', 0):.0f} nodes {min(nodes_rss):.0f}..{max(nodes_rss):.0f} MB  "
                  f"p99 {row['lat_p99_ms'] or 0:.0f} ms  complete {row['complete_pct'] or 0:.0f} %  "
                  f"CPU {row['cpu_total_pct']:.0f} %  disk {row['disk_mb_s']:.1f} MB/s  free {row['free_gb']:.1f} GB",
                  flush=True)
            prev = snap
            if snap.wall >= end - 0.5:
                break
            next_t += args.interval
        b = prev
        final = cap.stop()
        log_tail = (cap.tmp / "subscriber.log").read_text()[-2000:] if (cap.tmp / "subscriber.log").exists() else ""
        final_sub = cap.status() or b.sub
        rec_frames = sum(final_sub.get("writer_frames", {}).values())
    w = window(s0, b, final, FPS)
    before = sum(s0.sub["missing"].values())

    # -- results ---------------------------------------------------------------------------------------------
    t = np.array([r["t_s"] for r in rows])
    procs = [*cams, "subscriber"]
    fit = t >= args.fit_after
    mem = {}
    for p in procs:
        mb = np.array([r.get(f"rss_{p}", np.nan) for r in rows], float)
        ok = fit & np.isfinite(mb)
        mem[p] = {"first": float(mb[ok][0]) if ok.any() else float("nan"),
                  "last": float(mb[ok][-1]) if ok.any() else float("nan"),
                  "max": float(np.nanmax(mb)), "slope": slope_mb_per_h(t[ok], mb[ok])}
    drops = sum(w.missing.values())
    cam_side, transport = sum(w.camera_side.values()), sum(w.transport.values())
    disk = ((b.sub_wchar or 0) - (s0.sub_wchar or 0)) / (b.wall - s0.wall) / 1e6
    fps_all = [r[f"fps_{c}"] for r in rows for c in cams]
    hist = [y - x for x, y in zip(s0.sub["lat_hist"], b.sub["lat_hist"], strict=True)]
    complete_pct = 100 * w.complete / w.sets if w.sets else float("nan")
    max_slope = max(m["slope"] for m in mem.values())
    flat = all(abs(m["slope"]) < args.max_slope for m in mem.values())
    ok = flat and drops == 0 and not events
    verdict = (("PASS" if ok else "FAIL") + f": {w.seconds / 60:.1f} min of 4 x 720p x 30 fps JPEG: "
               f"{drops} frames dropped ({cam_side} camera-side / {transport} transport), memory slopes "
               + ", ".join(f"{p} {m['slope']:+.1f}" for p, m in mem.items()) + " MB/h "
               f"(target |slope| < {args.max_slope:g} MB/h)" + (f"; {'; '.join(events)}" if events else ""))

    table = [f"| process | RSS MB at {args.fit_after / 60:g} min | RSS MB at end | max | slope MB/h |",
             "|---|---|---|---|---|"]
    table += [f"| {p} | {m['first']:.0f} | {m['last']:.0f} | {m['max']:.0f} | {m['slope']:+.1f} |"
              for p, m in mem.items()]
    summary = [
        f"Recorded {w.seconds / 60:.1f} min after all 4 cameras delivered: {rec_frames:,} frames written "
        f"({w.sets:,} FrameSets, {complete_pct:.2f} % complete, {w.late} frames late), "
        f"fps per camera {statistics.mean(fps_all):.2f} on average, lowest 10-s interval {min(fps_all):.1f}.",
        f"Frames dropped: {drops} ({cam_side} camera-side, {transport} transport; "
        f"{before} before the measurement started); the nodes' own skip counters: "
        f"{sum((final[c] or {}).get('dropped', 0) for c in cams)} in the whole run.",
        f"Latency capture -> FrameSet: p50 {hist_percentile(hist, 50):.1f} ms, p99 {hist_percentile(hist, 99):.1f} "
        f"ms, max {hist_percentile(hist, 100):.0f} ms; the worst 10-s interval's p99 "
        f"{max(r['lat_p99_ms'] or 0 for r in rows):.0f} ms.",
        f"Disk: the recorder wrote {disk:.1f} MB/s on average ({(b.sub_wchar - s0.sub_wchar) / 1e9:.1f} GB); free "
        f"space went from {rows[0]['free_gb']:.1f} to {rows[-1]['free_gb']:.1f} GB (lowest "
        f"{min(r['free_gb'] for r in rows):.1f})"
        + (f"; --keep-segments {args.keep_segments}: {pruned} closed segments deleted after the recorder "
           f"wrote them" if args.keep_segments is not None else "") + ".",
        slow_line(b.sub.get("slow_adds") or {"n": 0, "events": []}, w),
        f"CPU: all processes {statistics.mean(r['cpu_total_pct'] for r in rows):.0f} % of one core on average "
        f"(of 200 %). Largest memory slope {max_slope:+.1f} MB/h.",
    ]
    print("\n" + "\n".join(table) + "\n")
    for line in [*summary, verdict]:
        print("- " + line)
    if w.rejected:
        print(f"- rejected messages: {w.rejected}")

    plot = args.plot or (PLOT if args.docs else Path(tempfile.gettempdir()) / "soak_capture.png")
    make_plot(rows, procs, cams, plot, args)
    print(f"plot: {plot}")
    if args.csv:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.csv, "w", newline="") as f:
            wr = csv.DictWriter(f, keys)
            wr.writeheader()
            wr.writerows(rows)
    if args.docs:
        given = list(argv if argv is not None else sys.argv[1:])
        shown = []  # the command as documented: without --docs and the local --csv / --plot / --workdir paths
        skip = False
        for a in given:
            if skip:
                skip = False
            elif a in ("--csv", "--plot", "--workdir"):
                skip = True
            elif a != "--docs" and not a.startswith(("--csv=", "--plot=", "--workdir=")):
                shown.append(a)
        lines = [
            "## Capture soak: 4 x 720p x 30 fps JPEG recorded for a long time", "",
            "Command: `" + " ".join([".venv/bin/python benchmarks/soak_capture.py", *shown]) + "` (not part of "
            "`make bench`)", "",
            f"Machine: {machine_line()} (shared, other heavy work kept off during the run). "
            f"Date: {datetime.date.today().isoformat()}.", "",
            "Setup: as in the capture benchmark above (4 `mocap node camera` processes, `studio-4` simulated, "
            "genlocked, JPEG q90, into one subscriber running the `mocap record` loop with a real `Recorder`, "
            f"{args.segment_s:g} s segments). Sampled every {args.interval:g} s; memory slopes are least-squares "
            f"lines through each process's RSS after the first {args.fit_after / 60:g} min."
            + (f" To bound disk use the script deleted each camera's closed segments but the newest "
               f"{args.keep_segments} after the recorder had written, closed and fsynced them; the disk rate is "
               f"the subscriber's own writes (`wchar`), unaffected." if args.keep_segments is not None else ""),
            "", *table, "", *[f"- {s}" for s in summary], f"- {verdict}", "",
            f"![soak: RSS per process and fps per camera over time]({plot.name})"]
        write_section(DOCS, "soak_capture", lines)
        print(f"wrote {DOCS}")
    if log_tail.strip():
        print("subscriber log (tail):\n" + log_tail)
    return 0 if ok else 1


def slow_line(slow: dict, w) -> str:
    """How often the subscriber's Recorder.add took long, and whether those calls closed a segment."""
    ev = slow["events"]
    if not slow["n"]:
        return "No Recorder.add call took 25 ms or more."
    closing = [e for e in ev if e[3]]
    other = [e for e in ev if not e[3]]
    text = (f"Recorder.add calls of 25 ms or more: {slow['n']} (first {len(ev)} kept): {len(closing)} closed a "
            f"segment (trailer + fsync; median {statistics.median(e[1] for e in closing) if closing else 0:.0f} ms, "
            f"longest {max((e[1] for e in closing), default=0):.0f} ms), {len(other)} did not (longest "
            f"{max((e[1] for e in other), default=0):.0f} ms)")
    if w.late or w.complete < w.sets:
        text += (f"; the syncer emitted {w.sets - w.complete} partial FrameSets and counted {w.late} frames late "
                 f"(recorded in video/<camera>.csv, absent from sync.csv): a stall longer than its deadline "
                 f"(2 frame periods from a set's first arrival) splits the sets around it")
    return text + "."


def make_plot(rows: list[dict], procs: list[str], cams: list[str], path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([r["t_s"] for r in rows]) / 60
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 2, 1.4]})
    for p in procs:
        ax1.plot(t, [r.get(f"rss_{p}", np.nan) for r in rows], label=p, lw=1.4 if p == "subscriber" else 1)
    ax1.axvline(args.fit_after / 60, color="grey", ls=":", lw=1)
    ax1.set_ylabel("RSS (MB)")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="lower right", ncol=5, fontsize=8)
    ax1.set_title("Capture soak: 4 x 720p x 30 fps JPEG, 4 node processes -> 1 recording subscriber")
    for c in cams:
        ax2.plot(t, [r[f"fps_{c}"] for r in rows], label=c, lw=1)
    ax2.set_ylabel(f"fps received ({args.interval:g} s)")
    ax2.set_ylim(0, 35)
    ax2.legend(loc="lower right", ncol=4, fontsize=8)
    ax3.plot(t, [r["disk_mb_s"] for r in rows], color="tab:brown", lw=1, label="disk write MB/s")
    ax3.plot(t, [r["missing"] for r in rows], color="tab:red", lw=1, label="frames dropped (cumulative)")
    ax3.set_ylabel("MB/s, frames")
    ax3.set_xlabel("minutes since all cameras delivered")
    ax3.set_ylim(bottom=0)
    ax3.legend(loc="lower right", ncol=2, fontsize=8)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
