"""BVH motion files: read, write, forward kinematics, and building channel values from rotations.

Conventions (those of Blender's importer and most tools):
- Rotation channels are Euler angles in degrees, composed in the order they are listed:
  ``CHANNELS 3 Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry`` acting on column vectors
  (intrinsic rotations). A joint's world transform is its parent's composed with (R, translation).
- A joint's translation from its parent is its OFFSET, except along axes that have a position
  channel, where the channel value is the translation (it replaces that OFFSET component). So the
  root's ``Xposition Yposition Zposition`` are its position in the world.
- End Sites are kept as joints (``is_end_site=True``, named ``<parent>_end``, no channels) so that
  files round-trip exactly and their positions come out of forward kinematics.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CHANNELS = {f"{a}{kind}".lower(): f"{a}{kind}" for a in "XYZ" for kind in ("position", "rotation")}
_AXIS = {"X": 0, "Y": 1, "Z": 2}


class BvhError(ValueError):
    """A BVH file or motion that cannot be used: names the file and line when there is one."""


@dataclass(frozen=True, eq=False)
class BvhJoint:
    """One node of the hierarchy: parent index (-1 for a root), offset from the parent, channels."""

    name: str
    parent: int
    offset: np.ndarray                 # (3,) float64, in the file's units
    channels: tuple[str, ...] = ()     # e.g. ("Xposition", ..., "Zrotation", "Xrotation", "Yrotation")
    is_end_site: bool = False

    def __post_init__(self) -> None:
        offset = np.array(self.offset, dtype=np.float64)
        if offset.shape != (3,) or not np.isfinite(offset).all():
            raise BvhError(f"joint {self.name!r}: offset must be 3 finite numbers, got {self.offset!r}")
        offset.setflags(write=False)
        object.__setattr__(self, "offset", offset)
        channels = tuple(self.channels)
        bad = [c for c in channels if c not in _CHANNELS.values()]
        if bad:
            raise BvhError(f"joint {self.name!r}: unknown channels {bad}; use Xposition ... Zrotation")
        if len(set(channels)) != len(channels):
            raise BvhError(f"joint {self.name!r}: a channel is listed twice in {channels}")
        if self.is_end_site and channels:
            raise BvhError(f"joint {self.name!r}: an End Site has no channels")
        object.__setattr__(self, "channels", channels)


@dataclass(frozen=True, eq=False)
class BvhMotion:
    """A hierarchy and its motion: ``motion`` [F, C] float64 holds every joint's channels in file order."""

    joints: tuple[BvhJoint, ...]
    frame_time: float
    motion: np.ndarray

    def __post_init__(self) -> None:
        joints = tuple(self.joints)
        if not joints:
            raise BvhError("a BVH motion needs at least one joint")
        for j, joint in enumerate(joints):
            if not -1 <= joint.parent < j:
                raise BvhError(f"joint {joint.name!r} (index {j}): parent {joint.parent} must come before it")
            if joint.parent >= 0 and joints[joint.parent].is_end_site:
                raise BvhError(f"joint {joint.name!r}: its parent is an End Site, which cannot have children")
        if joints[0].parent != -1:
            raise BvhError("the first joint must be a root (parent -1)")
        motion = np.array(self.motion, dtype=np.float64)
        n_channels = sum(len(j.channels) for j in joints)
        if motion.ndim != 2 or motion.shape[1] != n_channels:
            raise BvhError(f"motion must be [frames, {n_channels} channels], got shape {motion.shape}")
        if not np.isfinite(motion).all():
            raise BvhError("motion has NaN or infinite channel values")
        if not (np.isfinite(self.frame_time) and self.frame_time > 0):
            raise BvhError(f"frame_time must be a positive number of seconds, got {self.frame_time!r}")
        motion.setflags(write=False)
        object.__setattr__(self, "joints", joints)
        object.__setattr__(self, "motion", motion)
        object.__setattr__(self, "frame_time", float(self.frame_time))

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def parents(self) -> np.ndarray:
        return np.array([j.parent for j in self.joints], dtype=np.int64)

    @property
    def channel_starts(self) -> np.ndarray:
        """Column in ``motion`` of each joint's first channel, [J]."""
        sizes = [len(j.channels) for j in self.joints]
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


# ---------------------------------------------------------------- reading


class _Tokens:
    """Whitespace tokens of the hierarchy with their line numbers, for error messages."""

    def __init__(self, lines: list[str], path: Path):
        self.items = [(tok, n + 1) for n, line in enumerate(lines) for tok in line.split()]
        self.pos = 0
        self.path = path

    def error(self, problem: str, line: int | None = None) -> BvhError:
        if line is None:
            line = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 1
        return BvhError(f"{self.path}, line {line}: {problem}; "
                        f"the file is not valid BVH (fix or re-export it)")

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def take(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(f"file ends where {what} was expected", self.items[-1][1] if self.items else 1)
        item = self.items[self.pos]
        self.pos += 1
        return item

    def expect(self, word: str) -> int:
        tok, line = self.take(f"'{word}'")
        if tok.upper() != word.upper():
            raise self.error(f"expected '{word}', found '{tok}'", line)
        return line

    def number(self, what: str) -> float:
        tok, line = self.take(what)
        try:
            value = float(tok)
        except ValueError:
            raise self.error(f"expected a number for {what}, found '{tok}'", line) from None
        if not np.isfinite(value):
            raise self.error(f"{what} is not finite ('{tok}')", line)
        return value


def _parse_joint(tokens: _Tokens, parent: int, joints: list[BvhJoint]) -> None:
    """Parse 'NAME { OFFSET .. CHANNELS .. children }' after ROOT/JOINT, or an End Site block."""
    keyword, line = tokens.take("ROOT, JOINT or End Site")
    if keyword.upper() == "END":
        tokens.expect("Site")
        tokens.expect("{")
        tokens.expect("OFFSET")
        offset = [tokens.number("an End Site OFFSET") for _ in range(3)]
        tokens.expect("}")
        base = f"{joints[parent].name}_end"
        names = {j.name for j in joints}
        name = base if base not in names else next(
            f"{base}{k}" for k in range(2, 10**6) if f"{base}{k}" not in names)
        joints.append(BvhJoint(name, parent, np.array(offset), (), True))
        return
    name, _ = tokens.take("a joint name")
    tokens.expect("{")
    tokens.expect("OFFSET")
    offset = np.array([tokens.number("OFFSET") for _ in range(3)])
    channels: tuple[str, ...] = ()
    if (tokens.peek() or "").upper() == "CHANNELS":
        tokens.take("CHANNELS")
        count_tok, count_line = tokens.take("the channel count")
        if not count_tok.isdigit() or int(count_tok) > 6:
            raise tokens.error(f"expected a channel count from 0 to 6, found '{count_tok}'", count_line)
        names = []
        for _ in range(int(count_tok)):
            tok, tok_line = tokens.take("a channel name")
            if tok.lower() not in _CHANNELS:
                raise tokens.error(f"unknown channel '{tok}' of joint '{name}' (expected Xposition ... "
                                   f"Zrotation)", tok_line)
            names.append(_CHANNELS[tok.lower()])
        channels = tuple(names)
    try:
        joints.append(BvhJoint(name, parent, offset, channels))
    except BvhError as err:
        raise tokens.error(str(err), line) from None
    me = len(joints) - 1
    while True:
        nxt = tokens.peek()
        if nxt is None:
            raise tokens.error(f"file ends inside joint '{name}' (missing '}}')")
        if nxt == "}":
            tokens.take("}")
            return
        if nxt.upper() not in ("JOINT", "END"):
            raise tokens.error(f"expected JOINT, End Site or '}}' inside joint '{name}', found '{nxt}'")
        _parse_joint(tokens, me, joints)


def read_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file: hierarchy (End Sites kept as joints), frame time, and every channel value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise BvhError(f"{path}: cannot read the file ({err.strerror})") from None
    lines = text.splitlines()
    motion_line = next((n for n, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    tokens = _Tokens(lines[: len(lines) if motion_line is None else motion_line], path)
    if not tokens.items or tokens.items[0][0].upper() != "HIERARCHY":
        raise BvhError(f"{path}, line {tokens.items[0][1] if tokens.items else 1}: the file does not start "
                       f"with HIERARCHY; it is not a BVH file")
    tokens.take("HIERARCHY")
    joints: list[BvhJoint] = []
    while tokens.peek() is not None:
        tok, line = tokens.items[tokens.pos]
        if tok.upper() != "ROOT":
            raise tokens.error(f"expected ROOT, found '{tok}'", line)
        _parse_joint(tokens, -1, joints)
    if not joints:
        raise tokens.error("no ROOT joint in the HIERARCHY section")
    if motion_line is None:
        raise BvhError(f"{path}, line {len(lines)}: no MOTION section; the file is truncated or not BVH")
    frames, frame_time, data_start = _motion_header(lines, motion_line, path)
    values = _motion_values(lines, data_start, frames, sum(len(j.channels) for j in joints), path)
    return BvhMotion(tuple(joints), frame_time, values)


def _motion_header(lines: list[str], motion_line: int, path: Path) -> tuple[int, float, int]:
    """(frame count, frame time, index of the first data line) from the lines after MOTION."""
    n = motion_line + 1
    while n < len(lines) and not lines[n].strip():
        n += 1
    m = re.fullmatch(r"\s*Frames\s*:\s*(\d+)\s*", lines[n]) if n < len(lines) else None
    if not m:
        raise BvhError(f"{path}, line {n + 1}: expected 'Frames: <count>' after MOTION")
    frames = int(m.group(1))
    n += 1
    m = re.fullmatch(r"\s*Frame\s+Time\s*:\s*(\S+)\s*", lines[n]) if n < len(lines) else None
    try:
        frame_time = float(m.group(1)) if m else float("nan")
    except ValueError:
        frame_time = float("nan")
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise BvhError(f"{path}, line {n + 1}: expected 'Frame Time: <seconds>' with a positive number")
    return frames, frame_time, n + 1


def _motion_values(lines: list[str], start: int, frames: int, channels: int, path: Path) -> np.ndarray:
    """[frames, channels] float64 from the data lines; blank lines are skipped, anything else checked."""
    rows = [(n, line) for n, line in enumerate(lines[start:], start) if line.strip()]
    if len(rows) != frames:
        where = rows[-1][0] + 1 if rows else start + 1
        raise BvhError(f"{path}, line {where}: the header says {frames} frames but {len(rows)} data lines "
                       f"follow; the file is truncated or 'Frames:' is wrong")
    if channels == 0:
        return np.zeros((frames, 0))
    counts = np.array([len(line.split()) for _, line in rows], dtype=np.int64)
    bad = np.flatnonzero(counts != channels)
    if len(bad):
        n = rows[bad[0]][0]
        raise BvhError(f"{path}, line {n + 1}: {counts[bad[0]]} values where the hierarchy has {channels} "
                       f"channels; the file is damaged or its hierarchy does not match its motion")
    try:
        values = np.array(" ".join(line for _, line in rows).split(), dtype=np.float64)
    except ValueError:
        for n, line in rows:
            try:
                np.array(line.split(), dtype=np.float64)
            except ValueError:
                raise BvhError(f"{path}, line {n + 1}: a motion value is not a number") from None
        raise
    values = values.reshape(frames, channels)
    if not np.isfinite(values).all():
        n = rows[int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])][0]
        raise BvhError(f"{path}, line {n + 1}: a motion value is NaN or infinite")
    return values


# ---------------------------------------------------------------- writing


def write_bvh(path: str | Path, motion: BvhMotion, precision: int = 6) -> Path:
    """Write ``motion`` as BVH with ``precision`` decimals (End Site joints back as 'End Site')."""
    path = Path(path)
    children: list[list[int]] = [[] for _ in motion.joints]
    for j, joint in enumerate(motion.joints):
        if joint.parent >= 0:
            children[joint.parent].append(j)
    out = ["HIERARCHY"]

    def num(v: float) -> str:
        return f"{v:.{precision}f}"

    def emit(j: int, depth: int) -> None:
        joint, pad = motion.joints[j], "\t" * depth
        if joint.is_end_site:
            out.append(f"{pad}End Site")
        else:
            out.append(f"{pad}{'ROOT' if joint.parent < 0 else 'JOINT'} {joint.name}")
        out.append(f"{pad}{{")
        out.append(f"{pad}\tOFFSET {' '.join(num(v) for v in joint.offset)}")
        if not joint.is_end_site:
            out.append(f"{pad}\tCHANNELS {len(joint.channels)}{''.join(' ' + c for c in joint.channels)}")
        for c in children[j]:
            emit(c, depth + 1)
        out.append(f"{pad}}}")

    for j, joint in enumerate(motion.joints):
        if joint.parent < 0:
            emit(j, 0)
    out += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {motion.frame_time:.10g}"]
    buf = io.StringIO()
    buf.write("\n".join(out) + "\n")
    if motion.motion.shape[1]:
        np.savetxt(buf, motion.motion, fmt=f"%.{precision}f", delimiter=" ")
    else:
        buf.write("\n" * motion.num_frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())
    return path


# ---------------------------------------------------------------- kinematics


def _axis_rotations(axis: str, degrees: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotations by ``degrees`` about the X, Y or Z axis (right-handed)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i = _AXIS[axis]
    j, k = (i + 1) % 3, (i + 2) % 3
    R[..., i, i] = 1
    R[..., j, j], R[..., j, k] = c, -s
    R[..., k, j], R[..., k, k] = s, c
    return R


def local_rotations(motion: BvhMotion) -> np.ndarray:
    """[F, J, 3, 3] rotation of each joint relative to its parent (identity where it has no rotation)."""
    F, J = motion.num_frames, len(motion.joints)
    R = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    for j, (joint, start) in enumerate(zip(motion.joints, motion.channel_starts, strict=True)):
        for k, channel in enumerate(joint.channels):
            if channel.endswith("rotation"):
                R[:, j] = R[:, j] @ _axis_rotations(channel[0], motion.motion[:, start + k])
    return R


def local_translations(motion: BvhMotion) -> np.ndarray:
    """[F, J, 3] translation of each joint from its parent: OFFSET, replaced by any position channels."""
    offsets = np.stack([j.offset for j in motion.joints])
    t = np.broadcast_to(offsets, (motion.num_frames,) + offsets.shape).copy()
    for j, (joint, start) in enumerate(zip(motion.joints, motion.channel_starts, strict=True)):
        for k, channel in enumerate(joint.channels):
            if channel.endswith("position"):
                t[:, j, _AXIS[channel[0]]] = motion.motion[:, start + k]
    return t


def _depth_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Joint indices grouped by depth in the tree, roots first."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j, p in enumerate(parents):  # parents come before children
        depth[j] = 0 if p < 0 else depth[p] + 1
    return [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]


def world_transforms(motion: BvhMotion) -> tuple[np.ndarray, np.ndarray]:
    """World rotation [F, J, 3, 3] and position [F, J, 3] of every joint (End Sites included)."""
    R_local, t_local = local_rotations(motion), local_translations(motion)
    parents = motion.parents
    R, p = np.empty_like(R_local), np.empty_like(t_local)
    levels = _depth_levels(parents)
    roots = levels[0]
    R[:, roots], p[:, roots] = R_local[:, roots], t_local[:, roots]
    for idx in levels[1:]:
        par = parents[idx]
        R[:, idx] = R[:, par] @ R_local[:, idx]
        p[:, idx] = p[:, par] + (R[:, par] @ t_local[:, idx, :, None])[..., 0]
    return R, p


def forward_kinematics(motion: BvhMotion) -> np.ndarray:
    """[F, J, 3] world position of every joint, End Sites included, in the file's units."""
    return world_transforms(motion)[1]


# ---------------------------------------------------------------- building motion from rotations


def _euler_degrees(R: np.ndarray, order: str) -> np.ndarray:
    """[N, 3] angles (degrees) with R = R_order[0](a) @ R_order[1](b) @ R_order[2](c), |b| <= 90.

    b comes from atan2 (well conditioned everywhere), a from the entries that scale with cos(b), and
    c from what remains once a and b are undone, so the angles reproduce R to rounding error even at
    and near gimbal lock (where a is set to 0 and c takes the whole free rotation).
    """
    i, j, k = (_AXIS[a] for a in order)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0       # +1 for cyclic orders (XYZ, YZX, ZXY)
    cos_b = np.hypot(R[:, i, i], R[:, i, j])
    b = np.arctan2(sign * R[:, i, k], cos_b)
    locked = cos_b < 1e-12
    a = np.where(locked, 0.0, np.arctan2(-sign * R[:, j, k], R[:, k, k]))
    M = np.swapaxes(_axis_rotations(order[0], np.degrees(a)) @ _axis_rotations(order[1], np.degrees(b)),
                    -1, -2) @ R
    k1, k2 = (k + 1) % 3, (k + 2) % 3
    c = np.arctan2(M[:, k2, k1], M[:, k1, k1])
    return np.degrees(np.stack([a, b, c], axis=1))


def motion_from_rotations(joints: tuple[BvhJoint, ...] | list[BvhJoint], rotations: np.ndarray,
                          root_positions: np.ndarray, frame_time: float,
                          order: str | None = "ZXY") -> BvhMotion:
    """A BvhMotion whose FK gives local ``rotations`` [F, J, 3, 3] and the root at ``root_positions`` [F, 3].

    ``order`` (e.g. "ZXY", "XYZ") sets every joint's rotation channels; None keeps each joint's own
    three rotation channels. The root gets X/Y/Zposition channels; other joints keep any position
    channels they had, set to their offsets. Rotations of End Sites are ignored.
    """
    joints = tuple(joints)
    rotations = np.asarray(rotations, dtype=np.float64)
    root_positions = np.asarray(root_positions, dtype=np.float64)
    J = len(joints)
    if rotations.ndim != 4 or rotations.shape[1:] != (J, 3, 3):
        raise BvhError(f"rotations must be [frames, {J}, 3, 3], got shape {rotations.shape}")
    F = rotations.shape[0]
    if root_positions.shape != (F, 3):
        raise BvhError(f"root_positions must be [{F}, 3], got shape {root_positions.shape}")
    if sum(j.parent < 0 for j in joints) != 1:
        raise BvhError("motion_from_rotations needs a hierarchy with exactly one root")
    if order is not None and (len(order) != 3 or set(order.upper()) != set("XYZ")):
        raise BvhError(f"order must be a permutation of 'XYZ' such as 'ZXY', got {order!r}")
    new_joints, columns = [], []
    for j, joint in enumerate(joints):
        if joint.is_end_site:
            new_joints.append(joint)
            continue
        if order is not None:
            axes = order.upper()
        else:
            axes = "".join(c[0] for c in joint.channels if c.endswith("rotation"))
            if len(axes) != 3:
                raise BvhError(f"joint {joint.name!r} has rotation channels {axes or 'none'}; "
                               f"pass order='ZXY' (or another) to give every joint three")
        if joint.parent < 0:
            positions = ("Xposition", "Yposition", "Zposition")
            columns += [root_positions[:, i] for i in range(3)]
        else:
            positions = tuple(c for c in joint.channels if c.endswith("position"))
            columns += [np.full(F, joint.offset[_AXIS[c[0]]]) for c in positions]
        angles = _euler_degrees(rotations[:, j], axes)
        columns += [angles[:, i] for i in range(3)]
        channels = positions + tuple(f"{a}rotation" for a in axes)
        new_joints.append(BvhJoint(joint.name, joint.parent, joint.offset, channels, False))
    motion = np.stack(columns, axis=1) if columns else np.zeros((F, 0))
    return BvhMotion(tuple(new_joints), frame_time, motion)
