"""The stand-in body model: an SMPL-layout model made up here, for when the real SMPL files are absent.

It is NOT SMPL (no scans, no learned statistics): a plausible human surface with SMPL's 24-joint
kinematic tree, SMPL's file keys and SMPL's canonical frame (metres, x = the person's left, y up,
z forward, T-pose, the **pelvis joint at the origin**), so everything that runs on SMPL runs on it.
Its proportions are the simulated body's (``rigs.sim.body``: joints, landmarks and capsule radii as
fractions of height, converted with smpl = A^T world, A = [[0,0,1],[1,0,0],[0,1,0]]), so at betas = 0
the stand-in and the simulated performers agree joint for joint.

Genders: ``neutral`` 1.70 m; ``male`` 1.78 m, arms set 1.0 % of height further out (broader shoulders)
and a 5 % wider chest; ``female`` 1.64 m, hip joints and legs 0.6 % of height further out, hips 6 %
rounder, arms 0.4 % of height further in.

Surface: a smooth union (log-sum-exp smooth minimum, 8 mm) of round cones (capsules whose radius
varies along the axis, some with elliptical cross-sections) along the bones, an ellipsoid head with a
nose, flattened hands and feet; its zero level set is sampled on a 1 cm grid (exact distances only
near the surface, the rest from a 4 cm grid: the function is 1-Lipschitz), extracted by marching
tetrahedra (a Kuhn subdivision of the cubes: watertight by construction, no ambiguous cases),
decimated by quadric error to 5,502 vertices (Open3D), then evened out by rounds of Delaunay edge
flips and tangential smoothing with the vertices projected back onto the level set (decimation
alone leaves long slivers along the limbs). The build checks that the result is one closed, edge-
and vertex-manifold, outward-oriented surface without self-intersections.

Skinning: every vertex belongs to the primitive nearest to it, whose body part (torso, head, an arm,
a leg) allows a few bones; among those, bone j (the segment from joint j to its child, or to the
head top / finger tip / toe tip for the leaves; the pelvis' from below the hips to spine1) weighs
exp(-(d_j - d_min) / 12 mm) by distance d_j to the segment, the best 4 kept and normalised.

Joint regressor: for each joint, the vertices in a slab across its bone near the joint (the slab grows
until the joint lies within their hull), weighted uniformly plus the least-norm correction that makes
the weighted mean the joint exactly, vertices whose weight would go negative dropped (active set).
So ``J_regressor @ v_template`` is the rest joints (to 1e-9 m), every row is non-negative and sums
to 1, and a girth change, being symmetric about the bones, hardly moves the joints.

Shape blend shapes (``shapedirs`` [V, 3, 10], per unit beta; all linear). Each moves the bone end
points by dP and scales the distance from the bones by g; a vertex moves by the skinning-weighted
sum over its bones of (1 - t) dP_start + t dP_end + g (v - q), q its nearest point on the bone at
fraction t (so a uniform scale is reproduced exactly):

    0 height          uniform scale about the pelvis, +4 % (about one standard deviation of height)
    1 girth           radial inflation about every bone, +10 % (head +3 %, hands and feet +5 %)
    2 limb_length     arms and legs 5 % longer (scaled about the shoulder and hip joints)
    3 shoulder_width  arms +1.2 %, collars +0.6 % of height further out on each side
    4 hip_width       hips and legs +0.8 % of height further out on each side, pelvis 5 % rounder
    5 torso_length    the spine above the pelvis 5 % longer (everything above moves up with it)
    6 head_size       head scaled 8 % about the neck joint
    7 leg_length      legs 5 % longer (scaled about the hip joints), arms unchanged
    8 waist           radial inflation of the pelvis and lower spine, +12 %
    9 limb_girth      radial inflation of the upper arms, forearms, thighs and shins, +12 %

The stand-in has no pose-corrective shapes: ``posedirs`` is all zeros (V, 3, 207).

Landmarks: a vertex for every surface point of the keypoint formats that is not an SMPL joint (nose,
eyes, ears, mouth corners, head top, heels, toes, foot tips, hand points): the vertex nearest to
where ``rigs.sim.body`` puts the point at rest, each landmark its own vertex.

Deterministic: the same arrays bit for bit every run, and ``write_standin`` writes the same bytes
(fixed zip timestamps). ``generator`` names the builder and a digest of this file, so a cached
stand-in built by other code is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fitting.body_model import GENDERS, NUM_POSE_BASIS, SMPL_JOINT_NAMES, SMPL_PARENTS, STANDIN_SOURCE
from rigs.sim import body as sim_body
from rigs.skeletons import all_joint_names

GENERATOR = f"{STANDIN_SOURCE}; fitting/standin_model.py {hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}"
HEIGHTS = {"neutral": 1.70, "male": 1.78, "female": 1.64}
BETA_NAMES = ("height", "girth", "limb_length", "shoulder_width", "hip_width", "torso_length", "head_size",
              "leg_length", "waist", "limb_girth")
NUM_BETAS = len(BETA_NAMES)
_INTERIOR_POINTS = ("mid_hip", "thorax", "spine", "neck_nose")
LANDMARK_NAMES: tuple[str, ...] = tuple(
    n for n in all_joint_names()
    if n not in SMPL_JOINT_NAMES and n not in _INTERIOR_POINTS and n in sim_body.LANDMARK_NAMES
)

GRID_STEP = 0.01  # m, marching tetrahedra
SMOOTH_K = 0.008  # m, smooth-minimum blend
TARGET_TRIANGLES = 11_000  # quadric decimation target (5,502 vertices)
REMESH_ROUNDS = 4  # rounds of edge flips + tangential smoothing after decimation
SKIN_SIGMA = 0.012  # m
SKIN_BONES = 4

_SIDES = ("left", "right")


def _mirror(name: str) -> str:
    return "_".join("right" if w == "left" else w for w in name.split("_"))


# ---------------------------------------------------------------------------------------------------
# Proportions (simulated body's frame and units: x forward, y left, z up, fractions of height)
# ---------------------------------------------------------------------------------------------------

def _sim_points(gender: str) -> dict[str, np.ndarray]:
    """Joints, landmarks and bone end points as fractions of height, sim frame, gender adjusted."""
    rest = sim_body.rest_points(1.0)
    pts = {n: rest[i].copy() for i, n in enumerate(sim_body.POINT_NAMES)}
    shift: dict[str, float] = {}  # outward shift (fraction of height) of a joint and what hangs on it
    if gender == "male":
        shift = {"collar": 0.005, "shoulder": 0.010, "elbow": 0.010, "wrist": 0.010, "hand": 0.010}
    elif gender == "female":
        shift = {"collar": -0.002, "shoulder": -0.004, "elbow": -0.004, "wrist": -0.004, "hand": -0.004,
                 "hip": 0.006, "knee": 0.006, "ankle": 0.006, "foot": 0.006}
    parents = {n: sim_body.JOINT_NAMES[sim_body.LANDMARK_PARENTS[i]] for i, n in enumerate(sim_body.LANDMARK_NAMES)}
    for name in list(pts):
        joint = parents.get(name, name)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            if joint.startswith(side + "_") and joint[len(side) + 1:] in shift:
                pts[name][1] += sign * shift[joint[len(side) + 1:]]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        pts[f"{side}_hand_end"] = pts[f"{side}_hand"] + (0.0, sign * 0.013, 0.0)
        pts[f"{side}_hand_tip"] = pts[f"{side}_hand_end"] + (0.0, sign * 0.019, 0.0)
        pts[f"{side}_toe_tip"] = pts[f"{side}_foot_index"].copy()
    pts["pelvis_low"] = pts["pelvis"] + (0.0, 0.0, -0.070)
    pts["head_center"] = np.array([0.010, 0.0, 0.935])
    return pts


def _to_smpl(p: np.ndarray, height: float, pelvis: np.ndarray) -> np.ndarray:
    """Sim-frame fractions of height -> SMPL frame metres with the pelvis at the origin."""
    d = (np.asarray(p, dtype=np.float64) - pelvis) * height
    return np.stack([d[..., 1], d[..., 2], d[..., 0]], axis=-1)


# Primitives: (part, a, b, radius at a, radius at b, cross-section scale (fwd, left, up)); a, b are point
# names or offsets from one ("name", (dx, dy, dz)); "*" entries exist on both sides.
_FOOT_Z = 0.024 * 0.62 + 0.001  # foot axis height: sole at about 1 mm above the floor


def _primitive_table(gender: str) -> list[tuple]:
    hips_r = 0.066 if gender == "female" else 0.062
    chest_w = 1.08 * (1.05 if gender == "male" else 1.0)
    return [
        ("torso", "left_hip", "right_hip", hips_r, hips_r, (0.9, 0.85, 1.0)),
        ("torso", "pelvis", "spine2", 0.075, 0.075, (0.8, 1.1, 1.0)),
        ("torso", "spine1", "spine3", 0.080, 0.080, (0.85, chest_w, 1.0)),
        ("torso", "left_shoulder", "right_shoulder", 0.040, 0.040, (1.0, 1.0, 1.0)),
        ("head", "neck", "head", 0.032, 0.032, (1.0, 1.0, 1.0)),
        ("head", "head_center", "head_center", 1.0, 1.0, (0.056, 0.045, 0.066)),
        ("head", ("head_center", (0.042, 0.0, -0.010)), ("head_center", (0.052, 0.0, -0.025)), 0.007, 0.007,
         (1.0, 1.0, 1.0)),
        ("*arm", "*shoulder", "*elbow", 0.030, 0.024, (1.0, 1.0, 1.0)),
        ("*arm", "*elbow", "*wrist", 0.023, 0.018, (1.0, 1.0, 1.0)),
        ("*arm", "*wrist", "*hand_end", 0.021, 0.019, (1.0, 1.0, 0.5)),
        ("*leg", "*hip", "*knee", 0.052, 0.034, (1.0, 1.0, 1.0)),
        ("*leg", "*knee", "*ankle", 0.033, 0.022, (1.0, 1.0, 1.0)),
        ("*leg", ("*ankle", (-0.010, 0.001, _FOOT_Z - 0.039)), ("*ankle", (0.100, 0.003, _FOOT_Z - 0.039)),
         0.024, 0.024, (1.0, 1.0, 0.62)),
    ]


# Bones for skinning: joint -> (start point, end point); body part -> bones allowed there.
def _bone_ends(joint: str) -> tuple[str, str]:
    side, _, base = joint.partition("_")
    if side not in _SIDES:
        side, base = "", joint
    p = (side + "_") if side else ""
    table = {
        "pelvis": ("pelvis_low", "spine1"), "spine1": ("spine1", "spine2"), "spine2": ("spine2", "spine3"),
        "spine3": ("spine3", "neck"), "neck": ("neck", "head"), "head": ("head", "head_top"),
        "hip": (p + "hip", p + "knee"), "knee": (p + "knee", p + "ankle"), "ankle": (p + "ankle", p + "foot"),
        "foot": (p + "foot", p + "toe_tip"), "collar": (p + "collar", p + "shoulder"),
        "shoulder": (p + "shoulder", p + "elbow"), "elbow": (p + "elbow", p + "wrist"),
        "wrist": (p + "wrist", p + "hand"), "hand": (p + "hand", p + "hand_tip"),
    }
    return table[base]


def _part_bones(part: str) -> tuple[str, ...]:
    if part == "torso":
        return ("pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "left_shoulder",
                "right_shoulder", "left_hip", "right_hip")
    if part == "head":
        return ("spine3", "neck", "head")
    side, _, limb = part.partition("_")
    if limb == "arm":
        return ("spine3",) + tuple(f"{side}_{b}" for b in ("collar", "shoulder", "elbow", "wrist", "hand"))
    return ("pelvis",) + tuple(f"{side}_{b}" for b in ("hip", "knee", "ankle", "foot"))


class _Geometry:
    """Points (SMPL frame, metres), primitives and their smooth-union distance function for one gender."""

    def __init__(self, gender: str) -> None:
        self.gender = gender
        self.height = HEIGHTS[gender]
        sim = _sim_points(gender)
        self.sim_points = sim
        pelvis = sim["pelvis"]
        self.points = {n: _to_smpl(p, self.height, pelvis) for n, p in sim.items()}
        prims = []
        for part, a, b, ra, rb, scale in _primitive_table(gender):
            sides = _SIDES if part.startswith("*") else ("",)
            for side in sides:
                def resolve(ref, side=side):
                    name, off = (ref, (0.0, 0.0, 0.0)) if isinstance(ref, str) else ref
                    sign = -1.0 if side == "right" else 1.0
                    name = name.replace("*", side + "_") if side else name
                    return sim[name] + np.array(off) * (1.0, sign, 1.0)
                s = np.array([scale[1], scale[2], scale[0]], dtype=np.float64)  # to SMPL axes
                prims.append((part.replace("*", side + "_") if side else part,
                              _to_smpl(resolve(a), self.height, pelvis), _to_smpl(resolve(b), self.height, pelvis),
                              ra * self.height, rb * self.height, s))
        self.parts = tuple(p[0] for p in prims)
        self.a = np.array([p[1] for p in prims])
        self.b = np.array([p[2] for p in prims])
        self.ra = np.array([p[3] for p in prims])
        self.rb = np.array([p[4] for p in prims])
        self.scale = np.array([p[5] for p in prims])

    def primitive_distances(self, P: np.ndarray) -> np.ndarray:
        """[K, N] distance-like value of every primitive (negative inside, 1-Lipschitz)."""
        out = np.empty((len(self.a), len(P)))
        for k in range(len(self.a)):
            ab = self.b[k] - self.a[k]
            L2 = float(ab @ ab)
            t = np.clip((P - self.a[k]) @ ab / L2, 0.0, 1.0) if L2 > 0 else np.zeros(len(P))
            q = self.a[k] + t[:, None] * ab
            r = self.ra[k] + (self.rb[k] - self.ra[k]) * t
            s = self.scale[k]
            out[k] = (np.sqrt((((P - q) / s) ** 2).sum(1)) - r) * s.min()
        return out

    def sdf(self, P: np.ndarray) -> np.ndarray:
        """Smooth union (log-sum-exp, SMOOTH_K) of the primitives at points P [N, 3]."""
        D = self.primitive_distances(P)
        m = D.min(0)
        return m - SMOOTH_K * np.log(np.exp(-(D - m) / SMOOTH_K).sum(0))


# ---------------------------------------------------------------------------------------------------
# Meshing
# ---------------------------------------------------------------------------------------------------

def _sample_grid(geom: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """SDF values on a GRID_STEP grid symmetric about x = 0 (exact only within a band of the surface)."""
    h = GRID_STEP
    lo = np.minimum(geom.a, geom.b).min(0) - 0.15
    hi = np.maximum(geom.a, geom.b).max(0) + 0.15
    half_x = max(-lo[0], hi[0])
    lo[0], hi[0] = -half_x, half_x
    n = np.ceil((hi - lo) / h).astype(int)
    n = (n + 3) // 4 * 4 + 1
    lo[0] = -(n[0] - 1) * h / 2
    coarse_axes = [lo[i] + 4 * h * np.arange((n[i] - 1) // 4 + 1) for i in range(3)]
    coarse = np.stack(np.meshgrid(*coarse_axes, indexing="ij"), -1)
    f_coarse = geom.sdf(coarse.reshape(-1, 3)).reshape(coarse.shape[:3])
    nearest = [np.rint(np.arange(n[i]) / 4).astype(int) for i in range(3)]
    f = f_coarse[np.ix_(*nearest)].copy()
    near = np.abs(f) < 2.5 * h * 1.8  # farther from the nearest coarse node than that: sign is certain
    f[near] = geom.sdf(lo + h * np.argwhere(near))
    return f, lo


_KUHN = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def marching_tetrahedra(f: np.ndarray, origin: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of grid values f [nx, ny, nz] (negative inside) -> (vertices [V, 3], faces [F, 3]),
    faces wound counter-clockwise seen from outside. Each cube is cut into the 6 tetrahedra of its Kuhn
    subdivision (conforming between neighbours), so the surface is closed wherever it stays in the grid."""
    f = np.where(f == 0, 1e-12, f).astype(np.float64)
    shape = f.shape
    inside = f < 0
    any_in = np.zeros(tuple(s - 1 for s in shape), dtype=bool)
    all_in = np.ones_like(any_in)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                c = inside[dx:shape[0] - 1 + dx, dy:shape[1] - 1 + dy, dz:shape[2] - 1 + dz]
                any_in |= c
                all_in &= c
    base = np.ravel_multi_index(np.nonzero(any_in & ~all_in), shape)
    stride = np.array([shape[1] * shape[2], shape[2], 1])
    tets = []
    for perm in _KUHN:
        v1 = base + stride[perm[0]]
        v2 = v1 + stride[perm[1]]
        tets.append(np.stack([base, v1, v2, v2 + stride[perm[2]]], 1))
    tets = np.concatenate(tets)
    flat = f.ravel()
    ins = flat[tets] < 0
    n_in = ins.sum(1)
    keep = (n_in > 0) & (n_in < 4)
    tets, ins, n_in = tets[keep], ins[keep], n_in[keep]
    edges, owner = [], []
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    for lone_inside in (True, False):  # one corner apart from the other three: one triangle
        sel = np.nonzero(n_in == (1 if lone_inside else 3))[0]
        lone = np.argmax(ins[sel] if lone_inside else ~ins[sel], 1)
        rows = np.arange(len(sel))
        T = tets[sel]
        e = np.stack([np.stack([T[rows, lone], T[rows, others[lone, k]]], 1) for k in range(3)], 1)
        edges.append(e)
        owner.append(sel)
    sel = np.nonzero(n_in == 2)[0]  # two and two: a quad, two triangles
    order = np.argsort(~ins[sel], 1, kind="stable")
    T = tets[sel]
    rows = np.arange(len(sel))
    a, b, c, d = (T[rows, order[:, i]] for i in range(4))
    ac, ad, bd, bc = (np.stack(p, 1) for p in ((a, c), (a, d), (b, d), (b, c)))
    edges += [np.stack([ac, ad, bd], 1), np.stack([ac, bd, bc], 1)]
    owner += [sel, sel]
    E = np.concatenate(edges)
    own = np.concatenate(owner)
    lo_i, hi_i = np.minimum(E[..., 0], E[..., 1]), np.maximum(E[..., 0], E[..., 1])
    keys, faces = np.unique((lo_i * flat.size + hi_i).ravel(), return_inverse=True)
    faces = faces.reshape(-1, 3)
    i0, i1 = keys // flat.size, keys % flat.size

    def position(idx):
        return origin + step * np.stack(np.unravel_index(idx, shape), 1)

    t = (flat[i0] / (flat[i0] - flat[i1]))[:, None]
    verts = position(i0) + t * (position(i1) - position(i0))
    normal = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    corners = position(tets[own].ravel()).reshape(-1, 4, 3)
    cin = ins[own]
    outward = ((corners * ~cin[..., None]).sum(1) / (~cin).sum(1, keepdims=True)
               - (corners * cin[..., None]).sum(1) / cin.sum(1, keepdims=True))
    flip = (normal * outward).sum(1) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces


def _largest_component(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    V = len(verts)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    n, labels = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(V, V)), directed=False)
    if n == 1:
        return verts, faces
    big = np.argmax(np.bincount(labels[faces[:, 0]], minlength=n))
    keep_f = labels[faces[:, 0]] == big
    used = np.unique(faces[keep_f])
    remap = np.full(V, -1)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces[keep_f]]


def mesh_check(verts: np.ndarray, faces: np.ndarray) -> dict[str, float]:
    """Closedness numbers of a triangle mesh: boundary/non-manifold edge counts, components, Euler
    characteristic, signed volume (positive when faces wind outward)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e[:, 0] * len(verts) + e[:, 1], return_counts=True)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, dcounts = np.unique(directed[:, 0] * len(verts) + directed[:, 1], return_counts=True)
    V = len(verts)
    n_comp, _ = connected_components(
        coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V)), directed=False)
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    volume = float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
    return {
        "vertices": V, "faces": len(faces), "edges": len(counts),
        "boundary_edges": int((counts == 1).sum()), "nonmanifold_edges": int((counts > 2).sum()),
        "inconsistent_edges": int((dcounts > 1).sum()), "components": int(n_comp),
        "euler": int(V - len(counts) + len(faces)), "volume": volume,
    }


def _edge_table(faces: np.ndarray) -> tuple[np.ndarray, ...]:
    """Undirected edges [E, 2] of a closed mesh with, per edge: the face holding it as p->q (f0, its
    opposite vertex c0), the other face (f1, opposite c1), and p, q."""
    a = faces.ravel()
    b = np.roll(faces, -1, axis=1).ravel()
    c = np.roll(faces, -2, axis=1).ravel()
    fid = np.repeat(np.arange(len(faces)), 3)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    order = np.argsort(lo * (int(faces.max()) + 1) + hi, kind="stable")
    first, second = order[0::2], order[1::2]
    return np.stack([lo[first], hi[first]], 1), fid[first], fid[second], c[first], c[second], a[first], b[first]


def _flip_edges(verts: np.ndarray, faces: np.ndarray, rounds: int = 10) -> np.ndarray:
    """Delaunay edge flips (opposite angles summing over 180 degrees), never creating an existing edge or
    turning a face over; an independent set of edges per round, largest angle sum first."""
    V = len(verts)

    def normal(x, y, z):
        return np.cross(verts[y] - verts[x], verts[z] - verts[x])

    def unit(n):
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-18)

    def angle(at, p, q):
        u, w = verts[p] - verts[at], verts[q] - verts[at]
        return np.arctan2(np.linalg.norm(np.cross(u, w), axis=1), (u * w).sum(1))

    for _ in range(rounds):
        edges, f0, f1, c0, c1, ea, eb = _edge_table(faces)
        s = angle(c0, edges[:, 0], edges[:, 1]) + angle(c1, edges[:, 0], edges[:, 1])
        cand = np.nonzero(s > np.pi + 1e-3)[0]
        p, q, c, d = ea[cand], eb[cand], c0[cand], c1[cand]
        old = unit(normal(p, q, c)) + unit(normal(q, p, d))
        cand = cand[((normal(p, d, c) * old).sum(1) > 0) & ((normal(d, q, c) * old).sum(1) > 0)]
        existing = set((edges[:, 0] * V + edges[:, 1]).tolist())
        used = np.zeros(len(faces), dtype=bool)
        chosen = []
        for e in cand[np.argsort(-s[cand], kind="stable")].tolist():
            x, y = int(c0[e]), int(c1[e])
            key = min(x, y) * V + max(x, y)
            if used[f0[e]] or used[f1[e]] or key in existing:
                continue
            existing.add(key)
            used[f0[e]] = used[f1[e]] = True
            chosen.append(e)
        if not chosen:
            break
        ch = np.array(chosen)
        faces = faces.copy()
        faces[f0[ch]] = np.stack([ea[ch], c1[ch], c0[ch]], 1)
        faces[f1[ch]] = np.stack([c1[ch], eb[ch], c0[ch]], 1)
    return faces


def _sdf_gradient(geom: _Geometry, P: np.ndarray, h: float = 1e-4) -> np.ndarray:
    return np.stack([(geom.sdf(P + h * e) - geom.sdf(P - h * e)) / (2 * h) for e in np.eye(3)], 1)


def _project(geom: _Geometry, P: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Points moved onto the zero level set along the gradient (Newton steps)."""
    for _ in range(iterations):
        g = _sdf_gradient(geom, P)
        P = P - (geom.sdf(P) / np.maximum((g * g).sum(1), 1e-12))[:, None] * g
    return P


def _relax(geom: _Geometry, verts: np.ndarray, faces: np.ndarray, iterations: int = 3,
           step: float = 0.5) -> np.ndarray:
    """Tangential Laplacian smoothing: each vertex moves part way to its neighbours' centroid within the
    tangent plane, then back onto the surface: evens out the triangles without changing the shape."""
    from scipy.sparse import coo_matrix

    V = len(verts)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    degree = np.asarray(adj.sum(1)).ravel()[:, None]
    for _ in range(iterations):
        n = _sdf_gradient(geom, verts)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        d = adj @ verts / degree - verts
        d -= (d * n).sum(1, keepdims=True) * n
        verts = _project(geom, verts + step * d)
    return verts


def _build_mesh(geom: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Marching tetrahedra, quadric decimation, then edge flips and tangential smoothing on the surface;
    raises unless the result is a closed, manifold, outward, self-intersection-free surface."""
    import open3d as o3d

    f, lo = _sample_grid(geom)
    verts, faces = marching_tetrahedra(f, lo, GRID_STEP)
    verts, faces = _largest_component(verts, faces)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
    mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=TARGET_TRIANGLES)
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    mesh.remove_unreferenced_vertices()
    verts = np.asarray(mesh.vertices, dtype=np.float64).copy()
    faces = np.asarray(mesh.triangles, dtype=np.int64).copy()
    verts, faces = _largest_component(verts, faces)
    for _ in range(REMESH_ROUNDS):
        faces = _flip_edges(verts, faces)
        verts = _relax(geom, verts, faces)
    faces = _flip_edges(verts, faces)
    check = mesh_check(verts, faces)
    closed = (check["boundary_edges"] == 0 and check["nonmanifold_edges"] == 0 and check["inconsistent_edges"] == 0
              and check["components"] == 1 and check["euler"] == 2 and check["volume"] > 0)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
    if not closed or not mesh.is_vertex_manifold() or mesh.is_self_intersecting():
        raise RuntimeError(f"stand-in body mesh ({geom.gender}) is not a closed manifold surface: {check}")
    return verts, faces


# ---------------------------------------------------------------------------------------------------
# Skinning, regressor, blend shapes, landmarks
# ---------------------------------------------------------------------------------------------------

def _segment_projection(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t [N] clamped to [0, 1], nearest points q [N, 3]) of points P on the segment a-b."""
    ab = b - a
    t = np.clip((P - a) @ ab / float(ab @ ab), 0.0, 1.0)
    return t, a + t[:, None] * ab


def _bone_geometry(geom: _Geometry, verts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t [V, 24], q [V, 24, 3] and distances [V, 24] of every vertex to every joint's bone segment."""
    V = len(verts)
    t = np.empty((V, 24))
    q = np.empty((V, 24, 3))
    for j, joint in enumerate(SMPL_JOINT_NAMES):
        s, e = _bone_ends(joint)
        t[:, j], q[:, j] = _segment_projection(verts, geom.points[s], geom.points[e])
    return t, q, np.linalg.norm(verts[:, None] - q, axis=2)


def _skinning_weights(geom: _Geometry, verts: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """[V, 24] smooth, normalised, at most SKIN_BONES bones per vertex, limited to the vertex's body part."""
    part_of = np.argmin(geom.primitive_distances(verts), axis=0)
    allowed = np.zeros((len(geom.parts), 24), dtype=bool)
    for k, part in enumerate(geom.parts):
        allowed[k, [SMPL_JOINT_NAMES.index(b) for b in _part_bones(part)]] = True
    ok = allowed[part_of]
    d = np.where(ok, dist, np.inf)
    logits = -(d - d.min(1, keepdims=True)) / SKIN_SIGMA
    w = np.exp(logits)
    order = np.argsort(-w, axis=1, kind="stable")
    w[np.arange(len(w))[:, None], order[:, SKIN_BONES:]] = 0.0
    w /= w.sum(1, keepdims=True)
    w[w < 1e-3] = 0.0
    return w / w.sum(1, keepdims=True)


def _closest_to_uniform(M: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative w [n] with M @ w = target ([4] incl. sum 1) as close to uniform as an active-set
    projection gets; NaN when the target is outside the points' convex hull."""
    n = M.shape[1]
    w0 = np.full(n, 1.0 / n)
    free = np.ones(n, dtype=bool)
    for _ in range(50):
        Mf = M[:, free]
        w = np.zeros(n)
        try:
            w[free] = w0[free] + Mf.T @ np.linalg.solve(Mf @ Mf.T, target - Mf @ w0[free])
        except np.linalg.LinAlgError:
            return np.full(n, np.nan)
        if (w >= 0).all():
            return w
        free &= w > 0
        if free.sum() < 4:
            break
    return np.full(n, np.nan)


def _joint_regressor(geom: _Geometry, verts: np.ndarray) -> np.ndarray:
    """[24, V]: per joint, non-negative weights of the vertices in a slab across its bone around it,
    as uniform as possible while reproducing the joint exactly (the slab grows until it can)."""
    R = np.zeros((24, len(verts)))
    for j, joint in enumerate(SMPL_JOINT_NAMES):
        J = geom.points[joint]
        s, e = _bone_ends(joint)
        axis = geom.points[e] - geom.points[s]
        if joint in ("pelvis", "spine1", "spine2", "spine3"):
            axis = np.array([0.0, 1.0, 0.0])
        axis = axis / np.linalg.norm(axis)
        rel = verts - J
        dist = np.linalg.norm(rel, axis=1)
        radius = max(1.5 * dist.min(), 0.04)
        for _ in range(30):
            cand = np.nonzero((dist < radius) & (np.abs(rel @ axis) < 0.35 * radius))[0]
            if len(cand) >= 8:
                w = _closest_to_uniform(np.vstack([verts[cand].T, np.ones((1, len(cand)))]), np.append(J, 1.0))
                if np.isfinite(w).all():
                    R[j, cand] = w
                    break
            radius *= 1.15
        else:
            raise RuntimeError(f"stand-in joint regressor: no vertex ring around {joint}")
    return R


def _shape_directions(geom: _Geometry, verts: np.ndarray, weights: np.ndarray, t: np.ndarray,
                      q: np.ndarray) -> np.ndarray:
    """[V, 3, NUM_BETAS]: each beta's bone end point moves dP and radial gains g, blended by the weights."""
    P = geom.points
    H = geom.height
    names = list(P)
    out = np.zeros((len(verts), 3, NUM_BETAS))
    arm = ("shoulder", "elbow", "wrist", "hand", "hand_end", "hand_tip")
    leg = ("knee", "ankle", "foot", "toe_tip")

    def side_sign(side: str) -> float:
        return 1.0 if side == "left" else -1.0

    for k, beta in enumerate(BETA_NAMES):
        dP = {n: np.zeros(3) for n in names}
        g = np.zeros(24)
        if beta == "height":
            dP = {n: 0.04 * P[n] for n in names}
            g[:] = 0.04
        elif beta == "girth":
            g[:] = 0.10
            for j, joint in enumerate(SMPL_JOINT_NAMES):
                if joint == "head":
                    g[j] = 0.03
                elif joint.endswith(("wrist", "hand", "ankle", "foot")):
                    g[j] = 0.05
        elif beta in ("limb_length", "leg_length"):
            for side in _SIDES:
                if beta == "limb_length":
                    for p in arm:
                        dP[f"{side}_{p}"] = 0.05 * (P[f"{side}_{p}"] - P[f"{side}_shoulder"])
                for p in leg:
                    dP[f"{side}_{p}"] = 0.05 * (P[f"{side}_{p}"] - P[f"{side}_hip"])
        elif beta == "shoulder_width":
            for side in _SIDES:
                dP[f"{side}_collar"] = np.array([0.006 * H * side_sign(side), 0.0, 0.0])
                for p in arm:
                    dP[f"{side}_{p}"] = np.array([0.012 * H * side_sign(side), 0.0, 0.0])
        elif beta == "hip_width":
            for side in _SIDES:
                for p in ("hip",) + leg:
                    dP[f"{side}_{p}"] = np.array([0.008 * H * side_sign(side), 0.0, 0.0])
            g[SMPL_JOINT_NAMES.index("pelvis")] = 0.05
        elif beta == "torso_length":
            for n in ("spine1", "spine2", "spine3", "neck"):
                dP[n] = np.array([0.0, 0.05 * P[n][1], 0.0])
            for n in ("head", "head_top"):
                dP[n] = dP["neck"].copy()
            for side in _SIDES:
                up = np.array([0.0, 0.05 * P[f"{side}_collar"][1], 0.0])
                for p in ("collar",) + arm:
                    dP[f"{side}_{p}"] = up.copy()
        elif beta == "head_size":
            for n in ("head", "head_top"):
                dP[n] = 0.08 * (P[n] - P["neck"])
            g[SMPL_JOINT_NAMES.index("head")] = 0.08
        elif beta == "waist":
            for n, gain in (("pelvis", 0.12), ("spine1", 0.12), ("spine2", 0.06)):
                g[SMPL_JOINT_NAMES.index(n)] = gain
        elif beta == "limb_girth":
            for side in _SIDES:
                for n in ("shoulder", "elbow", "hip", "knee"):
                    g[SMPL_JOINT_NAMES.index(f"{side}_{n}")] = 0.12
        start = np.array([dP[_bone_ends(j)[0]] for j in SMPL_JOINT_NAMES])  # [24, 3]
        end = np.array([dP[_bone_ends(j)[1]] for j in SMPL_JOINT_NAMES])
        per_bone = ((1.0 - t)[..., None] * start + t[..., None] * end
                    + g[None, :, None] * (verts[:, None] - q))  # [V, 24, 3]
        out[:, :, k] = np.einsum("vj,vjk->vk", weights, per_bone)
    return out


def _landmarks(geom: _Geometry, verts: np.ndarray) -> np.ndarray:
    """Vertex ids [L] nearest to the simulated body's landmarks, each landmark its own vertex."""
    pelvis = geom.sim_points["pelvis"]
    targets = np.array([_to_smpl(geom.sim_points[n], geom.height, pelvis) for n in LANDMARK_NAMES])
    d = np.linalg.norm(targets[:, None] - verts[None], axis=2)  # [L, V]
    ids = np.full(len(targets), -1, dtype=np.int64)
    for _ in range(len(targets)):
        flat = int(np.argmin(d))
        li, vi = divmod(flat, d.shape[1])
        ids[li] = vi
        d[li, :] = np.inf
        d[:, vi] = np.inf
    return ids


def build_standin(gender: str = "neutral") -> dict[str, np.ndarray]:
    """The stand-in model for ``gender`` as the SMPL file's arrays plus landmark_names,
    landmark_vertex_ids, gender, standin=True, generator, beta_names. Deterministic."""
    gender = str(gender).lower()
    if gender not in GENDERS:
        raise ValueError(f"unknown gender {gender!r}; use one of {', '.join(GENDERS)}")
    geom = _Geometry(gender)
    verts, faces = _build_mesh(geom)
    t, q, dist = _bone_geometry(geom, verts)
    weights = _skinning_weights(geom, verts, dist)
    regressor = _joint_regressor(geom, verts)
    shapedirs = _shape_directions(geom, verts, weights, t, q)
    parents = SMPL_PARENTS.copy()
    parents[0] = 4294967295
    return {
        "v_template": verts,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((len(verts), 3, NUM_POSE_BASIS)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.stack([parents, np.arange(24)]).astype(np.int64),
        "f": faces,
        "landmark_names": np.array(LANDMARK_NAMES),
        "landmark_vertex_ids": _landmarks(geom, verts),
        "beta_names": np.array(BETA_NAMES),
        "gender": np.array(gender),
        "standin": np.array(True),
        "generator": np.array(GENERATOR),
    }


def target_rest_joints(gender: str = "neutral") -> np.ndarray:
    """The rest joints [24, 3] the stand-in is built around (SMPL frame, pelvis at the origin)."""
    geom = _Geometry(gender)
    return np.array([geom.points[n] for n in SMPL_JOINT_NAMES])


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz with fixed zip timestamps (same arrays -> same bytes), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_standin(out_dir: str | Path, genders=GENDERS) -> list[Path]:
    """Build and write SMPL_{NEUTRAL,MALE,FEMALE}.npz (those of ``genders``) into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = []
    for gender in (genders,) if isinstance(genders, str) else genders:
        path = out_dir / f"SMPL_{str(gender).upper()}.npz"
        _write_npz(path, build_standin(gender))
        paths.append(path)
    return paths
