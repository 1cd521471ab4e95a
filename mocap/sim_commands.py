"""`mocap sim keypoints`: write what a simulated detector saw in a simulated studio, with the truth."""

from __future__ import annotations

import argparse

from rich.console import Console

from rigs.formats import load_rig
from rigs.sim.detector import SimulatedDetectorParams, simulate_detections
from rigs.sim.performers import simulate_performers
from rigs.sim.recording import write_simulated_keypoints
from rigs.skeletons import get_skeleton


def sim_keypoints(args: argparse.Namespace, console: Console) -> int:
    """Simulate performers in the rig, run the simulated detector, write its output and the truth."""
    rig = load_rig(args.rig)
    if args.people < 1 or args.seconds <= 0:
        raise ValueError("--people must be at least 1 and --seconds positive")
    skeleton = get_skeleton(args.skeleton)
    fps = rig.fps or 30.0
    performers = simulate_performers(args.people, args.seconds, fps, args.seed, bvh=args.bvh)
    detections = simulate_detections(rig, performers, skeleton.name, SimulatedDetectorParams(seed=args.seed))
    written = write_simulated_keypoints(args.out, rig, performers, detections, skeleton.name, args.fmt)
    console.print(f"SIMULATED: {performers.num_people} people, {performers.num_frames} frames at {fps:g} fps "
                  f"seen by {len(rig)} cameras of {rig.name} through the simulated detector ({skeleton.name})")
    console.print(f"wrote {len(written)} files under {args.out} ({args.fmt}); ground truth in {args.out}/truth")
    return 0
