"""capture.supervisor: node specs from a rig, and NodeSupervisor with tiny fake node processes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from capture.supervisor import NodeSpec, NodeSupervisor, is_local_endpoint, node_specs
from rigs.formats import load_rig
from tests.ports_and_processes import process_alive

ROOT = Path(__file__).resolve().parents[1]
SLEEP = "import time; time.sleep(60)"


def _spec(camera, code, local=True):
    return NodeSpec(camera, f"tcp://127.0.0.1:{5600 + len(camera)}", (sys.executable, "-c", code), local)


def _wait_for(cond, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def _poll_until(sup, pred, timeout=10.0):
    """Poll the supervisor, collecting events, until pred(events) holds."""
    events = []
    deadline = time.monotonic() + timeout
    while not pred(events):
        assert time.monotonic() < deadline, events
        events += sup.poll()
        time.sleep(0.01)
    return events


# -- node_specs -------------------------------------------------------------------------------------------------

def test_node_specs_build_the_node_command_lines_and_mark_remote_cameras():
    rig = load_rig("studio-4")
    rig = rig.with_camera(rig["cam2"].replace(endpoint="tcp://10.1.2.3:5550"))
    specs = node_specs(rig, "studio-4", fmt="bgr8", quality=75, seed=3, people=1, python="/usr/bin/python3")
    assert [s.camera for s in specs] == ["cam0", "cam1", "cam2", "cam3"]
    cam0 = specs[0]
    assert cam0.local and cam0.endpoint == "tcp://127.0.0.1:5550"
    assert cam0.command == ("/usr/bin/python3", "-m", "mocap", "node", "camera", "--rig", "studio-4",
                            "--camera", "cam0", "--pub", "tcp://127.0.0.1:5550", "--format", "bgr8",
                            "--quality", "75", "--seed", "3", "--people", "1")
    cam2 = specs[2]
    assert cam2 == NodeSpec("cam2", "tcp://10.1.2.3:5550", (), False)
    assert [s.local for s in specs] == [True, True, False, True]


def test_node_specs_cameras_subset_in_order_and_default_endpoints():
    rig = load_rig("studio-4")
    rig = rig.with_camera(rig["cam3"].replace(endpoint=""))  # no endpoint: 127.0.0.1:<5550 + index>
    specs = node_specs(rig, "rig.toml", cameras=["cam3", "cam1"])
    assert [(s.camera, s.endpoint) for s in specs] == [("cam3", "tcp://127.0.0.1:5553"),
                                                         ("cam1", "tcp://127.0.0.1:5551")]
    assert specs[0].command[0] == sys.executable and "rig.toml" in specs[0].command
    with pytest.raises(KeyError, match="cam9"):
        node_specs(rig, "studio-4", cameras=["cam9"])
    with pytest.raises(ValueError, match="twice"):
        node_specs(rig, "studio-4", cameras=["cam1", "cam1"])


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5550", True), ("tcp://127.3.0.1:5550", True), ("tcp://localhost:5550", True),
    ("tcp://*:5550", True), ("tcp://0.0.0.0:5550", True), ("tcp://[::1]:5550", True), ("ipc:///tmp/cam0", True),
    ("tcp://10.1.2.3:5550", False), ("tcp://192.0.2.7:5550", False), ("tcp://capture-pc-2.example:5550", False),
])
def test_is_local_endpoint(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_this_hosts_own_name_is_local():
    import socket

    assert is_local_endpoint(f"tcp://{socket.gethostname()}:5550")


# -- NodeSupervisor -----------------------------------------------------------------------------------------------

def test_start_restart_after_a_crash_with_back_off_and_stop_leaves_no_process(tmp_path):
    crash = "import sys; print('boom: the camera fell over', file=sys.stderr); sys.exit(3)"
    seen = []
    sup = NodeSupervisor([_spec("steady", SLEEP), _spec("crashy", crash)], backoff=(0.05, 0.2),
                         on_event=seen.append, log_dir=tmp_path)
    try:
        sup.start()
        steady = sup.pids["steady"]
        assert process_alive(steady)
        events = _poll_until(sup, lambda ev: sum("restarted" in e for e in ev) >= 3)
        assert events[0] == "crashy exited (code 3: boom: the camera fell over); restarting in 0.05 s"
        assert "crashy restarted (restart 1)" in events
        delays = [e.rsplit("restarting in ", 1)[1] for e in events if "restarting in" in e]
        assert delays[:3] == ["0.05 s", "0.2 s", "0.2 s"]  # the last delay repeats
        assert sup.restarts == {"steady": 0, "crashy": 3}
        assert sup.pids["steady"] == steady  # the healthy node was never touched
        assert seen[:len(events)] == events  # on_event got every line as it happened
        assert all(e == "code 3" for e in sup.exits["crashy"])
        log = (tmp_path / "crashy.log").read_text()
        assert log.count("mocap capture: starting crashy") >= 4 and "boom" in log
    finally:
        sup.stop(timeout=2)
    assert not process_alive(steady)
    assert sup.pids == {"steady": None, "crashy": None}
    assert sup.poll() == []  # stopped: nothing is restarted any more


def test_a_killed_node_is_restarted_and_gets_a_new_pid():
    with NodeSupervisor([_spec("cam0", SLEEP), _spec("cam1", SLEEP)], backoff=(0.1,)) as sup:  # enter starts
        old, other = sup.pids["cam0"], sup.pids["cam1"]
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        events = _poll_until(sup, lambda ev: any("restarted" in e for e in ev))
        assert events == ["cam0 exited (signal 9); restarting in 0.1 s", "cam0 restarted (restart 1)"]
        assert time.monotonic() - t0 >= 0.1
        new = sup.pids["cam0"]
        assert new not in (None, old) and process_alive(new)
        assert sup.pids["cam1"] == other and sup.restarts == {"cam0": 1, "cam1": 0}
    assert not process_alive(new) and not process_alive(other)


def test_stop_kills_nodes_that_ignore_sigterm_and_what_they_started(tmp_path):
    stubborn = textwrap.dedent("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    events = []
    sup = NodeSupervisor([_spec("stubborn", stubborn), _spec("polite", SLEEP)], on_event=events.append,
                         log_dir=tmp_path)
    sup.start()
    pids = dict(sup.pids)
    log = tmp_path / "stubborn.log"
    assert _wait_for(lambda: len(log.read_text().splitlines()) >= 2)
    grandchild = int(log.read_text().splitlines()[-1])
    assert process_alive(grandchild)
    t0 = time.monotonic()
    sup.stop(timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert events == ["stubborn did not stop within 0.5 s; killing it"]
    assert not process_alive(pids["stubborn"]) and not process_alive(pids["polite"])
    assert _wait_for(lambda: not process_alive(grandchild), timeout=5)
    sup.stop()  # idempotent


def test_remote_specs_are_not_started():
    remote = NodeSpec("far", "tcp://10.1.2.3:5550", (), False)
    with NodeSupervisor([_spec("near", SLEEP), remote]) as sup:
        assert set(sup.pids) == {"near"} and sup.pids["near"] is not None
        assert sup.endpoints == {"near": "tcp://127.0.0.1:5604", "far": "tcp://10.1.2.3:5550"}
        assert sup.restarts == {"near": 0, "far": 0}
        assert sup.remote == ("far",) and sup.local == ("near",)
        assert sup.poll() == []


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="twice"):
        NodeSupervisor([_spec("a", SLEEP), _spec("a", SLEEP)])
    with pytest.raises(ValueError, match="back-off"):
        NodeSupervisor([_spec("a", SLEEP)], backoff=())
    with pytest.raises(ValueError, match="no command"):
        NodeSupervisor([NodeSpec("a", "tcp://127.0.0.1:1", (), True)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_nodes_die_with_a_supervisor_killed_by_sigkill():
    script = textwrap.dedent(f"""
        import sys, time
        from capture.supervisor import NodeSpec, NodeSupervisor
        sup = NodeSupervisor([NodeSpec("cam0", "tcp://127.0.0.1:1", (sys.executable, "-c", {SLEEP!r}), True)])
        sup.start()
        print(sup.pids["cam0"], flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        node = int(proc.stdout.readline())
        assert process_alive(node)
        proc.kill()
        proc.wait()
        assert _wait_for(lambda: not process_alive(node), timeout=5), "the node outlived its supervisor"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# -- mocap capture's checks before it starts anything -------------------------------------------------------------

def test_capture_refuses_a_taken_port_and_unknown_cameras_before_starting_nodes(capsys):
    import socket

    from capture.capture_command import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--rig", "studio-4", "--base-port", str(port), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert f"camera 'cam0': cannot publish on tcp://127.0.0.1:{port}" in err and "--base-port" in err
    assert main(["--rig", "studio-4", "--cameras", "cam0,cam9"]) == 2
    assert "cam9" in capsys.readouterr().err
    assert main(["--rig", "studio-4", "--quality", "0"]) == 2
