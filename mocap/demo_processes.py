"""The processes `mocap demo` runs on this host, as a lab runs them: one camera node per camera, the reconstruction
node, and (with ``--view``) the live viewer, each a separate ``python -m mocap node ...`` process.

They publish on loopback ports picked free at start (``free_port_block``), so a demo never collides with a
``mocap capture`` or another demo. ``capture.supervisor.NodeSupervisor`` starts them in their own sessions (a
Ctrl-C reaches only the demo, which stops them in order), restarts one that crashes, SIGTERMs them on the way
out and SIGKILLs what is still running after a timeout; on Linux they also get SIGTERM if the demo itself dies.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from capture.supervisor import NodeSpec, node_specs
from rigs.camera import Rig

RECON_NAME = "recon"  # the reconstruction node's name: its messages come on topic pose3d.recon
PORT_RANGE = (20000, 60000)


@dataclass(frozen=True)
class DemoEndpoints:
    """Where every demo process publishes: each camera's frames, the reconstruction node's pose3d messages."""

    cameras: dict[str, str]  # camera name -> tcp://127.0.0.1:port
    poses: str


def free_port_block(n: int, host: str = "127.0.0.1") -> int:
    """A base port P with P..P+n-1 all free on ``host`` now (random, so concurrent demos do not collide)."""
    for _ in range(200):
        base = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - n)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + n):
                    stack.enter_context(socket.socket()).bind((host, port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no block of {n} free ports on {host} between {PORT_RANGE[0]} and {PORT_RANGE[1]}: "
                       f"close other mocap processes and try again")


def demo_endpoints(rig: Rig, base_port: int) -> DemoEndpoints:
    """Camera i publishes on base_port + i, the reconstruction node on the port after the last camera's."""
    cameras = {name: f"tcp://127.0.0.1:{base_port + i}" for i, name in enumerate(rig.names)}
    return DemoEndpoints(cameras, f"tcp://127.0.0.1:{base_port + len(rig)}")


def _mocap(*argv: str) -> tuple[str, ...]:
    """The command line of a mocap verb run by this Python (installed or not: the supervisor sets PYTHONPATH)."""
    return (sys.executable, "-m", "mocap", *argv)


def connect_arguments(endpoints: DemoEndpoints) -> list[str]:
    """``CAMERA=ENDPOINT`` for every camera: what ``--connect`` of ``mocap node recon`` and ``mocap record`` take."""
    return [f"{name}={endpoint}" for name, endpoint in endpoints.cameras.items()]


def camera_node_specs(rig: Rig, rig_source: str, endpoints: DemoEndpoints, people: int, seed: int) -> list[NodeSpec]:
    """One ``mocap node camera`` per camera, publishing on the demo's ports; simulated cameras all render the
    same ``people`` performers of scene ``seed`` on the rig clock's genlock grid."""
    moved = rig.replace(cameras=tuple(c.replace(endpoint=endpoints.cameras[c.name]) for c in rig))
    return node_specs(moved, rig_source, seed=seed, people=people)


def recon_node_spec(rig_source: str, endpoints: DemoEndpoints) -> NodeSpec:
    """``mocap node recon`` subscribed to every camera node, publishing pose3d.recon (the simulated detector)."""
    command = _mocap("node", "recon", "--rig", rig_source, "--connect", *connect_arguments(endpoints),
                     "--pub", endpoints.poses, "--name", RECON_NAME)
    return NodeSpec(RECON_NAME, endpoints.poses, command, True)


def viewer_spec(endpoints: DemoEndpoints) -> NodeSpec:
    """``mocap view --connect`` on the reconstruction node: the live 3D view (needs a display)."""
    return NodeSpec("viewer", endpoints.poses, _mocap("view", "--connect", endpoints.poses), True)


def display_available() -> bool:
    """True when a window can be opened here (an X11 or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def rig_argument(rig_source: str) -> str:
    """What the nodes get as ``--rig``: a preset name as given, a rig file as an absolute path."""
    path = Path(rig_source).expanduser()
    return str(path.resolve()) if path.exists() else rig_source
