"""Tests for capture/sync.py and capture/sync_stats.py: grouping frames into FrameSets, statistics, sync.csv."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.sync import FrameRef, FrameSet, IndexSync, TimestampSync, read_sync_csv, write_sync_csv
from capture.sync_stats import SyncStats
from rigs.camera import Camera, Rig

CAMS = ("cam0", "cam1", "cam2", "cam3")
FPS = 30.0
PERIOD = 1e9 / FPS
DEADLINE = round(2 * PERIOD)
MS = 1_000_000
T0 = 5_000_000_000  # capture clock at the first frame


def capture_time(k: int, rng: np.random.Generator, jitter_ms: float = 2.0) -> int:
    return T0 + round(k * PERIOD + rng.uniform(-jitter_ms, jitter_ms) * MS)


def stream(rng, n, cams=CAMS, drop=None, clock_ms=None, latency_ms=(1.0, 5.0), seq0=None, jitter_ms=2.0):
    """[(arrival_ns, FrameRef)] sorted by arrival; each camera's frames arrive in order.

    ``clock_ms`` shifts a camera's timestamps (its clock) but not when its frames arrive.
    """
    events = []
    for c in cams:
        last = 0
        for k in range(n):
            if drop and k in drop.get(c, ()):
                continue
            t = capture_time(k, rng, jitter_ms)
            last = max(last, t + round(rng.uniform(*latency_ms) * MS))
            stamp = t + round((clock_ms or {}).get(c, 0) * MS)
            events.append((last, FrameRef(c, (seq0 or {}).get(c, 0) + k, stamp, payload=(c, k))))
    events.sort(key=lambda e: e[0])
    return events


def run(sync, events, flush=True):
    """Push every event at its arrival time; return the emitted sets (flushed at the end when asked)."""
    out = []
    for now, frame in events:
        out += sync.push(frame, now)
    if flush:
        out += sync.flush()
    return out


def seqs(sets, cam):
    return [None if fs.frames[cam] is None else fs.frames[cam].seq for fs in sets]


def assert_aligned(sets):
    """Every set holds one capture instant: all present cameras carry the same frame number."""
    for fs in sets:
        ks = {f.payload[1] for f in fs.frames.values() if f is not None}
        assert len(ks) == 1, f"set {fs.index} mixes frames {fs.seqs}"


# --- TimestampSync ---------------------------------------------------------------------------------
def test_perfect_streams_give_complete_sets_one_per_period():
    rng = np.random.default_rng(0)
    sync = TimestampSync(CAMS, FPS)
    events = stream(rng, 300)
    live = run(sync, events, flush=False)
    sets = live + sync.flush()
    assert len(live) >= 298  # emitted as they complete, not held until the end of the stream
    assert len(sets) == 300
    assert [fs.index for fs in sets] == list(range(300))
    assert all(fs.complete and fs.missing == () for fs in sets)
    assert_aligned(sets)
    assert max(fs.skew_ns for fs in sets) < 5 * MS
    dt = np.diff([fs.t_ns for fs in sets])
    assert np.all(np.abs(dt - PERIOD) < 4 * MS)
    s = sync.stats
    assert (s.complete, s.partial) == (300, 0)
    assert s.frames.tolist() == [300] * 4 and s.dropped.sum() == s.late.sum() == s.duplicates.sum() == 0
    assert 0 < s.skew_ms()["p50"] <= s.skew_ms()["p95"] <= s.skew_ms()["max"] < 5


def test_dropped_frames_give_partial_sets_and_drop_counts():
    rng = np.random.default_rng(1)
    dropped = {10, 11, 12, 50}
    sync = TimestampSync(CAMS, FPS)
    sets = run(sync, stream(rng, 100, drop={"cam1": dropped}))
    assert len(sets) == 100
    assert_aligned(sets)
    partial = {fs.frames["cam0"].seq: fs.missing for fs in sets if not fs.complete}
    assert partial == dict.fromkeys(dropped, ("cam1",))
    assert sync.stats.dropped.tolist() == [0, 4, 0, 0]
    assert sync.stats.partial == 4 and sync.stats.missing.tolist() == [0, 4, 0, 0]


def test_set_with_dropped_frame_is_emitted_when_that_camera_moves_on():
    sync = TimestampSync(CAMS, FPS)
    t = [T0 + round(k * PERIOD) for k in range(3)]
    for c in ("cam0", "cam2", "cam3"):
        assert sync.push(FrameRef(c, 0, t[0]), t[0] + MS) == []
    out = sync.push(FrameRef("cam1", 1, t[1]), t[1] + MS)  # cam1 skipped frame 0: set 0 cannot complete
    assert t[1] + MS < t[0] + MS + DEADLINE  # well before set 0's deadline
    assert [fs.missing for fs in out] == [("cam1",)]


def test_dead_camera_sets_are_emitted_by_deadline():
    rng = np.random.default_rng(2)
    sync = TimestampSync(CAMS, FPS)
    events = stream(rng, 60, cams=CAMS[:3])
    calls = [now for now, _ in events] + [events[-1][0] + DEADLINE]  # the pushes, then one poll
    emitted_at, first_arrival = {}, {}
    for now, frame in events:
        first_arrival.setdefault(frame.payload[1], now)
        for fs in sync.push(frame, now):
            emitted_at[fs.frames["cam0"].seq] = now
    for fs in sync.poll(calls[-1]):
        emitted_at[fs.frames["cam0"].seq] = calls[-1]
    assert sync.pending == 0 and sync.flush() == []  # nothing waits for the dead camera forever
    assert sorted(emitted_at) == list(range(60))
    for k, when in emitted_at.items():  # each set went out at the first call after its deadline
        assert when == next(c for c in calls if c >= first_arrival[k] + DEADLINE)
    assert sync.stats.partial == 60 and sync.stats.missing.tolist() == [0, 0, 0, 60]


def test_deadline_is_exact():
    sync = TimestampSync(CAMS, FPS, deadline_ns=50 * MS)
    sync.push(FrameRef("cam0", 0, T0), T0 + MS)
    assert sync.poll(T0 + MS + 50 * MS - 1) == []
    [fs] = sync.poll(T0 + MS + 50 * MS)
    assert fs.missing == CAMS[1:] and fs.frames["cam0"].seq == 0


def test_shuffled_arrival_gives_same_sets_as_ordered():
    rng = np.random.default_rng(3)
    frames = [f for _, f in stream(rng, 120)]
    ordered = sorted(frames, key=lambda f: (f.payload[1], f.camera))
    events_ordered = [(T0 + round(f.payload[1] * PERIOD) + 3 * MS, f) for f in ordered]
    # network jitter up to 40 ms (more than a frame period) across cameras, each camera in order
    events_shuffled = []
    for c in CAMS:
        last = 0
        for f in (f for f in frames if f.camera == c):
            last = max(last, f.t_ns + round(rng.uniform(0, 40) * MS))
            events_shuffled.append((last, f))
    events_shuffled.sort(key=lambda e: e[0])
    arrival_cams = [f.camera for _, f in events_shuffled]
    assert arrival_cams != [f.camera for f in ordered]  # the order really differs
    a = run(TimestampSync(CAMS, FPS), events_ordered)
    b = run(TimestampSync(CAMS, FPS), events_shuffled)
    assert [(fs.index, fs.t_ns, fs.seqs) for fs in a] == [(fs.index, fs.t_ns, fs.seqs) for fs in b]
    assert len(a) == 120 and all(fs.complete for fs in b)


def test_late_frame_is_counted_not_merged_into_a_wrong_set():
    rng = np.random.default_rng(4)
    discarded = []
    sync = TimestampSync(CAMS, FPS, on_discard=lambda f, why: discarded.append((f, why)))
    events = stream(rng, 30)
    # cam2 stalls: nothing from it until 150 ms after its frame 5 was captured, then the backlog in order
    stall = T0 + round(5 * PERIOD) + 150 * MS
    events = [(max(now, stall) if f.camera == "cam2" and f.payload[1] >= 5 else now, f) for now, f in events]
    events.sort(key=lambda e: e[0])
    sets = run(sync, events)
    assert len(sets) == 30
    assert_aligned(sets)  # no late frame was put in another instant's set
    late = [f.seq for f, why in discarded if why == "late"]
    assert late == [5, 6, 7]  # their sets passed the deadline (first arrival + 66.7 ms) before 150 ms
    assert sync.stats.late.tolist() == [0, 0, len(late), 0]
    in_sets = [s for s in seqs(sets, "cam2") if s is not None]
    assert sorted(in_sets + late) == list(range(30))  # each cam2 frame in a set or counted late, once
    assert sync.stats.dropped.sum() == 0  # late is not dropped


def test_frame_for_an_emitted_set_is_late():
    discarded = []
    sync = TimestampSync(CAMS, FPS, on_discard=lambda f, why: discarded.append((f.camera, f.seq, why)))
    for c in CAMS[:3]:
        sync.push(FrameRef(c, 0, T0), T0)
    [fs] = sync.poll(T0 + DEADLINE)
    assert fs.missing == ("cam3",)
    assert sync.push(FrameRef("cam3", 0, T0 + MS), T0 + DEADLINE + MS) == []
    assert discarded == [("cam3", 0, "late")] and sync.pending == 0
    assert sync.flush() == []


def test_clock_offset_given_gives_complete_sets_and_missing_offset_mismatches():
    rng = np.random.default_rng(5)
    events = stream(rng, 60, clock_ms={"cam3": 37})
    with_offset = TimestampSync(CAMS, FPS, offsets_ns={"cam3": 37 * MS})
    sets = run(with_offset, events)
    assert len(sets) == 60 and all(fs.complete for fs in sets)
    assert_aligned(sets)
    assert max(fs.skew_ns for fs in sets) < 5 * MS
    assert sets[0].frames["cam3"].t_ns - sets[0].frames["cam0"].t_ns > 30 * MS  # FrameRef keeps the raw stamp

    without = run(TimestampSync(CAMS, FPS), events)
    same_instant = sum(fs.frames["cam0"] is not None and fs.frames["cam3"] is not None
                       and fs.frames["cam0"].seq == fs.frames["cam3"].seq for fs in without)
    assert same_instant == 0  # every cam3 frame landed one instant off
    assert not all(fs.complete for fs in without)


def test_duplicate_keeps_the_frame_closer_in_time():
    for first, second, kept in ((-12, 4, 11), (-4, 12, 10)):
        discarded = []
        sync = TimestampSync(CAMS, FPS, on_discard=lambda f, why, d=discarded: d.append((f.seq, why)))
        sync.push(FrameRef("cam0", 0, T0), T0)
        sync.push(FrameRef("cam1", 10, T0 + first * MS), T0)  # a double-rate camera: two frames per set
        sync.push(FrameRef("cam1", 11, T0 + second * MS), T0)
        sync.push(FrameRef("cam2", 0, T0), T0)
        [fs] = sync.push(FrameRef("cam3", 0, T0), T0)
        assert fs.frames["cam1"].seq == kept and fs.complete
        assert discarded == [(21 - kept, "duplicate")]
        assert sync.stats.duplicates.tolist() == [0, 1, 0, 0] and sync.stats.late.sum() == 0


def test_second_frame_for_an_emitted_set_is_duplicate_not_late():
    discarded = []
    sync = TimestampSync(CAMS, FPS, on_discard=lambda f, why: discarded.append((f.seq, why)))
    for c in CAMS:
        out = sync.push(FrameRef(c, 0, T0), T0)
    assert len(out) == 1
    sync.push(FrameRef("cam1", 1, T0 + 10 * MS), T0 + 10 * MS)  # its set already went out complete
    assert discarded == [(1, "duplicate")] and sync.stats.late.sum() == 0


def test_repeated_message_is_counted_duplicate():
    sync = TimestampSync(CAMS, FPS)
    sync.push(FrameRef("cam0", 7, T0), T0)
    sync.push(FrameRef("cam0", 7, T0), T0)
    [fs] = sync.flush()
    assert fs.frames["cam0"].seq == 7 and sync.stats.duplicates.tolist() == [1, 0, 0, 0]


def test_construction_checks():
    with pytest.raises(ValueError, match="unique"):
        TimestampSync(("a", "a"), FPS)
    with pytest.raises(ValueError, match="fps"):
        TimestampSync(CAMS, 0)
    with pytest.raises(ValueError, match="not in the rig"):
        TimestampSync(CAMS, FPS, offsets_ns={"camX": 1})
    with pytest.raises(ValueError, match="camX"):
        TimestampSync(CAMS, FPS).push(FrameRef("camX", 0, T0), T0)
    sync = TimestampSync(CAMS, FPS)
    assert sync.tolerance_ns == round(PERIOD / 2) and sync.deadline_ns == DEADLINE


def test_for_rig_uses_names_and_rate():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    rig = Rig(tuple(Camera(c, 640, 480, K, fps=60.0) for c in CAMS[:2]))
    sync = TimestampSync.for_rig(rig)
    assert sync.cameras == CAMS[:2] and sync.tolerance_ns == round(1e9 / 60 / 2)


# --- IndexSync -------------------------------------------------------------------------------------
SEQ0 = {"cam0": 100, "cam1": 7, "cam2": 0, "cam3": 55}


def test_index_sync_groups_by_seq_with_given_offsets():
    rng = np.random.default_rng(6)
    # timestamps are useless for matching here (15 ms jitter), the trigger index is what counts
    events = stream(rng, 80, seq0=SEQ0, drop={"cam2": {20, 21}}, jitter_ms=15)
    sync = IndexSync(CAMS, FPS, seq_offsets=SEQ0)
    sets = run(sync, events)
    assert len(sets) == 80
    assert_aligned(sets)
    assert [fs.index for fs in sets] == list(range(80))
    assert [fs.frames["cam0"].seq - 100 for fs in sets if not fs.complete] == [20, 21]
    assert sync.stats.dropped.tolist() == [0, 0, 2, 0]
    ts = run(TimestampSync(CAMS, FPS), events)
    assert any(len({f.payload[1] for f in fs.frames.values() if f}) > 1 for fs in ts)  # timestamps would fail


def test_index_sync_learns_offsets():
    rng = np.random.default_rng(7)
    events = stream(rng, 40, seq0=SEQ0)
    sets = run(IndexSync(CAMS), events)  # all cameras start on the same trigger
    assert len(sets) == 40 and all(fs.complete for fs in sets)
    assert_aligned(sets)
    # cam3 starts 5 triggers late: with fps its first timestamp places it
    late_start = [(now, f) for now, f in events if not (f.camera == "cam3" and f.payload[1] < 5)]
    sync = IndexSync(CAMS, FPS)
    sets = run(sync, late_start)
    assert_aligned(sets)
    assert len(sets) == 40 and [fs.missing for fs in sets[:5]] == [("cam3",)] * 5
    assert sync.seq_offsets["cam3"] == 55 - 0 and sync.seq_offsets["cam0"] == 100
    wrong = run(IndexSync(CAMS), late_start)  # without fps the late camera is placed 5 triggers early
    assert sum(fs.complete for fs in wrong) < sum(fs.complete for fs in sets) == 35


def test_index_sync_dead_camera_and_late_frame():
    discarded = []
    sync = IndexSync(CAMS, FPS, deadline_ns=100 * MS,
                     on_discard=lambda f, why: discarded.append((f.camera, f.seq, why)))
    out = []
    for k in range(3):
        t = T0 + round(k * PERIOD)
        for c in CAMS[:3]:
            out += sync.push(FrameRef(c, k, t), t + MS)
    assert out == [] and sync.poll(T0 + MS + 100 * MS - 1) == []
    out = sync.poll(T0 + MS + 100 * MS) + sync.poll(T0 + MS + round(2 * PERIOD) + 100 * MS)
    assert [fs.missing for fs in out] == [("cam3",)] * 3 and [fs.index for fs in out] == [0, 1, 2]
    assert sync.push(FrameRef("cam3", 1, T0 + round(PERIOD)), T0 + 5 * DEADLINE) == []
    assert discarded == [("cam3", 1, "late")] and sync.stats.late.tolist() == [0, 0, 0, 1]


# --- SyncStats -------------------------------------------------------------------------------------
def make_set(index, skew_ms, present=CAMS):
    frames = {c: (FrameRef(c, index, T0 + (round(skew_ms * MS) if c == "cam1" else 0)) if c in present else None)
              for c in CAMS}
    return FrameSet(index, T0, frames, round(skew_ms * MS))


def test_stats_skew_percentiles_and_summary():
    stats = SyncStats(CAMS)
    skews = np.linspace(0, 10, 101)  # 0.0, 0.1, ... 10.0 ms
    stats.add_sets([make_set(i, s) for i, s in enumerate(skews)])
    stats.add_sets([make_set(200, 1.0, present=CAMS[:2])])
    sk = stats.skew_ms()
    assert sk["max"] == 10.0
    assert abs(sk["p50"] - np.percentile(np.append(skews, 1.0), 50)) <= 0.1
    assert abs(sk["p95"] - np.percentile(np.append(skews, 1.0), 95)) <= 0.15
    summary = stats.summary()
    assert summary["complete"] == 101 and summary["partial"] == 1 and summary["sets"] == 102
    assert summary["frames"] == {"cam0": 102, "cam1": 102, "cam2": 101, "cam3": 101}
    json.dumps(summary)
    line = str(stats)
    assert "\n" not in line and "102" in line and "1 partial" in line and "p95" in line


def test_stats_seq_gaps():
    stats = SyncStats(CAMS)
    for seq, t in ((10, 1), (13, 4), (14, 5)):
        stats.count_received("cam0", seq, t)
    assert stats.dropped.tolist() == [2, 0, 0, 0]  # 10 -> 13 lost 11 and 12
    stats.count_received("cam0", 12, 3)  # 12 arrived out of order: not dropped after all
    assert stats.dropped[0] == 1
    stats.count_received("cam0", 0, 100)  # the camera restarted its count
    stats.count_received("cam0", 1, 101)
    assert stats.dropped[0] == 1 and stats.seq_resets[0] == 1
    assert "dropped 1 (cam0:1)" in str(stats)


# --- sync.csv --------------------------------------------------------------------------------------
def test_sync_csv_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    sets = run(TimestampSync(CAMS, FPS), stream(rng, 20, drop={"cam1": {3}, "cam3": {3, 7}}))
    path = tmp_path / "sync.csv"
    write_sync_csv(path, sets, CAMS)
    lines = path.read_text().splitlines()
    assert lines[0] == "set,t_ns,cam0,cam1,cam2,cam3"
    assert lines[4] == f"3,{sets[3].t_ns},3,,3,"
    index, t_ns, seq, cams = read_sync_csv(path)
    assert cams == CAMS and index.dtype == t_ns.dtype == seq.dtype == np.int64
    assert index.tolist() == list(range(20)) and t_ns.tolist() == [fs.t_ns for fs in sets]
    assert seq.shape == (20, 4)
    assert seq.tolist() == [[-1 if s is None else s for s in fs.seqs] for fs in sets]
    assert seq[7].tolist() == [7, 7, 7, -1]


def test_sync_csv_rejects_bad_files(tmp_path):
    bad = tmp_path / "sync.csv"
    bad.write_text("frame,time,cam0\n0,1,2\n")
    with pytest.raises(ValueError, match="header"):
        read_sync_csv(bad)
    bad.write_text("set,t_ns,cam0\n0,1,x\n")
    with pytest.raises(ValueError, match="row 2"):
        read_sync_csv(bad)
    empty = tmp_path / "empty.csv"
    write_sync_csv(empty, [], CAMS)
    index, t_ns, seq, cams = read_sync_csv(empty)
    assert index.shape == (0,) and seq.shape == (0, 4) and cams == CAMS


# --- nothing is lost silently ----------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 25), max_latency_ms=st.sampled_from([2, 30, 120]),
       drop_p=st.sampled_from([0.0, 0.2]), dup_p=st.sampled_from([0.0, 0.2]), reorder=st.booleans(),
       index=st.booleans(), poll=st.booleans())
def test_every_frame_is_in_one_set_or_discarded(seed, n, max_latency_ms, drop_p, dup_p, reorder, index, poll):
    rng = np.random.default_rng(seed)
    pushed, events = [], []
    for c in CAMS:
        last = 0
        for k in range(n):
            if rng.random() < drop_p:
                continue
            copies = 2 if rng.random() < dup_p else 1
            for j in range(copies):
                t = capture_time(k, rng, 5.0) + j * round(rng.uniform(-20, 20) * MS)
                arrive = t + round(rng.uniform(0, max_latency_ms) * MS)
                last = arrive if reorder else max(last, arrive)
                frame = FrameRef(c, k, t, payload=len(pushed))
                pushed.append(frame)
                events.append((last, frame))
    events.sort(key=lambda e: e[0])
    discarded = []
    on_discard = lambda f, why: discarded.append(f.payload)  # noqa: E731
    sync = IndexSync(CAMS, FPS, on_discard=on_discard) if index else TimestampSync(CAMS, FPS, on_discard=on_discard)
    sets = []
    for now, frame in events:
        sets += sync.push(frame, now)
        if poll:
            sets += sync.poll(now + round(rng.uniform(0, 50) * MS))
    sets += sync.flush()
    in_sets = [f.payload for fs in sets for f in fs.frames.values() if f is not None]
    assert sorted(in_sets + discarded) == list(range(len(pushed)))  # each frame exactly once
    assert [fs.index for fs in sets] == list(range(len(sets)))
    assert all(any(f is not None for f in fs.frames.values()) for fs in sets)
    assert all(tuple(fs.frames) == CAMS for fs in sets)
    s = sync.stats
    assert s.frames.sum() + s.late.sum() + s.duplicates.sum() == len(pushed)
    assert s.sets == len(sets) and sync.pending == 0
    if not index:
        t = [fs.t_ns for fs in sets]
        assert t == sorted(t)


def test_for_rig_takes_the_rigs_clock_offsets():
    from rigs.formats import load_rig

    rig = load_rig("studio-4")
    rig = rig.with_camera(rig["cam1"].replace(clock_offset_ns=37_000_000))
    sync = TimestampSync.for_rig(rig)
    period = int(1e9 / 30)
    sets = []
    for i in range(5):
        for cam in rig.names:
            t = i * period + (37_000_000 if cam == "cam1" else 0)
            sets += sync.push(FrameRef(cam, i, t), now_ns=i * period)
    sets += sync.flush()
    assert len(sets) == 5 and all(s.complete for s in sets)
