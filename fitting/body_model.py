"""The SMPL body model: finding and loading the files, and a fast differentiable forward pass.

Files. Real SMPL models come from https://smpl.is.tue.mpg.de (free registration, non-commercial
licence) and are looked for in a directory (``load_body_model(directory)``, else ``$MOCAP_BODY_MODELS``)
and its subfolders (3 levels deep, so the unpacked download's ``SMPL_python_v.1.1.0/smpl/models/``
is found), under the names smplx uses (``SMPL_NEUTRAL.pkl``, ``SMPL_MALE.pkl``,
``SMPL_FEMALE.pkl``), their ``.npz`` conversions (``mocap body-model convert``), or the download's own
names (``basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl``, ``basicmodel_m_...``, ``basicModel_f_...``).
With no directory, or a directory holding no SMPL file at all, the stand-in model
(``fitting.standin_model``: same file layout and joint tree, made up here, not SMPL) is built once
into ``standin_dir()`` and used, and ``say`` is called once for that call of ``load_body_model``
with where the real files go (the caller decides how often to call it). A directory that is given
but missing, one holding SMPL files for other genders only, or a file that is broken (missing keys,
wrong shapes) raises ``BodyModelError`` naming the problem and the fix.

Forward pass (smplx's, with its conventions). With shape ``betas`` b, pose ``theta`` (24 local
rotations R_j, the first the global orientation) and translation t:

    v_shaped = v_template + shapedirs . b            J = J_regressor @ v_shaped
    v_posed  = v_shaped + posedirs^T . vec(R_1..23 - I)
    G_j      = G_parent(j) [R_j | J_j - J_parent(j)]  (G_0 = [R_0 | J_0])
    joint_j  = G_j . 0 + t                           vertex = sum_j w_vj (G_j [v_posed - J_j]) + t

so the pelvis joint ends at J_0 + t and the global orientation turns the body about it.
``BodyModel.points`` evaluates this for the 24 joints and the landmark vertices only (J and the
landmarks' rows of every array precomputed), which is what fitting needs for thousands of frames;
``BodyModel.vertices`` goes through ``smplx.SMPL`` itself and is the reference.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from rigs.skeletons import get_skeleton

_SMPL24 = get_skeleton("smpl24")
SMPL_JOINT_NAMES: tuple[str, ...] = _SMPL24.joints
SMPL_PARENTS: np.ndarray = np.array(_SMPL24.parents, dtype=np.int64)
NUM_JOINTS = 24
NUM_POSE_BASIS = 207  # 23 joints x 9 entries of (R - I)
GENDERS = ("neutral", "male", "female")
STANDIN_SOURCE = "mocap stand-in body model v1 (simulated, not SMPL)"
SMPL_DOWNLOAD = "https://smpl.is.tue.mpg.de"
MODEL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")

#: Surface landmarks on the real SMPL mesh (smplx's vertex_ids["smplh"], named like our keypoints).
SMPL_LANDMARK_VERTICES: dict[str, int] = {
    "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583,
    "left_big_toe": 3216, "left_small_toe": 3226, "left_heel": 3387,
    "right_big_toe": 6617, "right_small_toe": 6624, "right_heel": 6787, "head_top": 411,
}
SMPL_NUM_VERTICES = 6890

# smplx's VertexJointSelector needs these names; the stand-in gives them its own landmark vertices.
_SMPLX_VERTEX_ID_NAMES = {
    "nose": "nose", "reye": "right_eye", "leye": "left_eye", "rear": "right_ear", "lear": "left_ear",
    "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe", "LHeel": "left_heel",
    "RBigToe": "right_big_toe", "RSmallToe": "right_small_toe", "RHeel": "right_heel",
    "lthumb": "left_thumb", "lindex": "left_index", "lmiddle": "left_index", "lring": "left_pinky",
    "lpinky": "left_pinky", "rthumb": "right_thumb", "rindex": "right_index", "rmiddle": "right_index",
    "rring": "right_pinky", "rpinky": "right_pinky",
}

_GENDER_LETTER = {"neutral": "neutral", "male": "m", "female": "f"}


class BodyModelError(ValueError):
    """A body model file that is missing or unusable; the message says what was looked for, where, and the fix."""


@dataclass(frozen=True, eq=False)
class BodyModelArrays:
    """The model file's content, numpy float64, SMPL canonical frame (x left, y up, z forward)."""

    v_template: np.ndarray  # [V, 3]
    shapedirs: np.ndarray  # [V, 3, B]
    posedirs: np.ndarray  # [207, V*3] (smplx's internal layout)
    J_regressor: np.ndarray  # [24, V] dense
    weights: np.ndarray  # [V, 24]
    faces: np.ndarray  # int64 [F, 3]
    landmark_names: tuple[str, ...]
    landmark_vertex_ids: np.ndarray  # int64 [L]
    gender: str
    source: str
    is_standin: bool

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @cached_property
    def joint_template(self) -> np.ndarray:
        """J_regressor @ v_template [24, 3]."""
        return self.J_regressor @ self.v_template

    @cached_property
    def joint_shapedirs(self) -> np.ndarray:
        """J_regressor @ shapedirs [24, 3, B]: how each beta moves the rest joints."""
        return np.einsum("jv,vkb->jkb", self.J_regressor, self.shapedirs)

    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """Rest-pose joints [..., 24, 3] of the shaped template for betas [..., b] (b <= B)."""
        betas = np.asarray(betas, dtype=np.float64)
        b = betas.shape[-1]
        if b > self.num_betas:
            raise BodyModelError(f"{b} betas given but the body model has {self.num_betas} shape components")
        return self.joint_template + np.einsum("jkb,...b->...jk", self.joint_shapedirs[..., :b], betas)

    def shaped_vertices(self, betas: np.ndarray) -> np.ndarray:
        """Rest-pose vertices [..., V, 3] for betas [..., b]."""
        betas = np.asarray(betas, dtype=np.float64)
        return self.v_template + np.einsum("vkb,...b->...vk", self.shapedirs[..., : betas.shape[-1]], betas)

    def smplx_vertex_ids(self) -> dict[str, int] | None:
        """The ``vertex_ids`` smplx.SMPL needs for this mesh (None: smplx's defaults fit the real SMPL mesh)."""
        if self.num_vertices == SMPL_NUM_VERTICES and not self.is_standin:
            return None
        where = dict(zip(self.landmark_names, (int(i) for i in self.landmark_vertex_ids), strict=True))
        return {key: where.get(name, 0) for key, name in _SMPLX_VERTEX_ID_NAMES.items()}

    def file_arrays(self) -> dict[str, np.ndarray]:
        """The arrays in the SMPL file layout (what smplx's ``data_struct`` expects)."""
        V = self.num_vertices
        parents = SMPL_PARENTS.copy()
        parents[0] = 4294967295  # the root's "parent" in the official files
        return {
            "v_template": self.v_template,
            "shapedirs": self.shapedirs,
            "posedirs": self.posedirs.T.reshape(V, 3, NUM_POSE_BASIS),
            "J_regressor": self.J_regressor,
            "weights": self.weights,
            "kintree_table": np.stack([parents, np.arange(NUM_JOINTS)]),
            "f": self.faces,
        }


def standin_dir() -> Path:
    """Where the stand-in model files are built and reused: $MOCAP_STANDIN_DIR or ~/.cache/mocap/body-models/standin."""
    env = os.environ.get("MOCAP_STANDIN_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mocap" / "body-models" / "standin"


def _candidate_patterns(gender: str) -> list[re.Pattern]:
    g = gender.lower()
    letter = _GENDER_LETTER[g]
    return [
        re.compile(rf"smpl_{g}\.npz", re.IGNORECASE),
        re.compile(rf"smpl_{g}\.pkl", re.IGNORECASE),
        re.compile(rf"basicmodel_{letter}_lbs_10_207_0_v\d[\w.]*\.npz", re.IGNORECASE),
        re.compile(rf"basicmodel_{letter}_lbs_10_207_0_v\d[\w.]*\.pkl", re.IGNORECASE),
    ]


def _search_dirs(directory: Path, depth: int = 3) -> list[Path]:
    """``directory`` and its subfolders down to ``depth`` levels, breadth first, sorted by name (the SMPL
    download unpacks to SMPL_python_v.1.1.0/smpl/models/)."""
    found, level = [], [directory] if directory.is_dir() else []
    for _ in range(depth + 1):
        found += level
        level = [sub for d in level for sub in sorted(d.iterdir()) if sub.is_dir() and not sub.name.startswith(".")]
    return found


def find_model_file(directory: Path, gender: str) -> Path | None:
    """The SMPL file for ``gender`` in ``directory`` or a subfolder (3 levels deep, nearest first):
    SMPL_{GENDER}.npz/.pkl, then basicmodel_{neutral|m|f}_lbs_10_207_0_v1.*.npz/.pkl (case ignored,
    newest version first)."""
    gender = _check_gender(gender)
    for folder in _search_dirs(Path(directory)):
        names = sorted((p.name for p in folder.iterdir() if p.is_file()), reverse=True)
        for pattern in _candidate_patterns(gender):
            hits = [n for n in names if pattern.fullmatch(n)]
            if hits:
                return folder / hits[0]
    return None


def _smpl_files_in(directory: Path) -> list[Path]:
    """Every SMPL model file (any gender) in ``directory`` and its subfolders searched."""
    found = []
    for gender in GENDERS:
        hit = find_model_file(directory, gender)
        if hit is not None:
            found.append(hit)
    return found


def _check_gender(gender: str) -> str:
    g = str(gender).lower()
    if g not in GENDERS:
        raise BodyModelError(f"unknown body model gender {gender!r}; use one of {', '.join(GENDERS)}")
    return g


def _read_model_file(path: Path) -> dict[str, np.ndarray]:
    """The raw arrays of an .npz or .pkl model file."""
    if path.suffix.lower() == ".pkl":
        from fitting.smpl_pickle import read_smpl_pickle

        try:
            return read_smpl_pickle(path)
        except ValueError as exc:
            raise BodyModelError(str(exc)) from exc
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise BodyModelError(f"{path}: cannot read it as an .npz body model ({exc}); convert the SMPL .pkl "
                             "again with `mocap body-model convert FILE.pkl OUT.npz`") from exc


def arrays_from_file(path: str | Path, gender: str | None = None) -> BodyModelArrays:
    """Read and check a model file (.npz or .pkl) into BodyModelArrays; BodyModelError names what is wrong."""
    path = Path(path)
    data = _read_model_file(path)
    missing = [k for k in MODEL_KEYS if k not in data]
    if missing:
        raise BodyModelError(f"{path}: not a usable SMPL model file, it lacks {', '.join(missing)} "
                             f"(an SMPL file has {', '.join(MODEL_KEYS)}); download it again from {SMPL_DOWNLOAD} "
                             "or rebuild the stand-in with `mocap body-model standin --out DIR`")
    is_standin = bool(np.asarray(data.get("standin", False)))
    if gender is None:
        gender = str(data["gender"]) if "gender" in data else "neutral"
    return _check_arrays(path, data, _check_gender(gender), is_standin)


def _check_arrays(path: Path, data: dict, gender: str, is_standin: bool) -> BodyModelArrays:
    def bad(what: str) -> BodyModelError:
        return BodyModelError(f"{path}: wrong shapes for an SMPL model file: {what}; download it again from "
                              f"{SMPL_DOWNLOAD} or rebuild the stand-in with `mocap body-model standin --out DIR`")

    v_template = np.asarray(data["v_template"], dtype=np.float64)
    if v_template.ndim != 2 or v_template.shape[1] != 3:
        raise bad(f"v_template is {v_template.shape}, expected [V, 3]")
    V = v_template.shape[0]
    shapedirs = np.asarray(data["shapedirs"], dtype=np.float64)
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (V, 3) or shapedirs.shape[2] < 1:
        raise bad(f"shapedirs is {shapedirs.shape}, expected [{V}, 3, B]")
    posedirs = np.asarray(data["posedirs"], dtype=np.float64)
    if posedirs.size != V * 3 * NUM_POSE_BASIS or posedirs.shape[-1] != NUM_POSE_BASIS:
        raise bad(f"posedirs is {posedirs.shape}, expected [{V}, 3, {NUM_POSE_BASIS}]")
    posedirs = posedirs.reshape(-1, NUM_POSE_BASIS).T.copy()  # smplx's [207, V*3]
    J_regressor = data["J_regressor"]
    if hasattr(J_regressor, "toarray"):
        J_regressor = J_regressor.toarray()
    J_regressor = np.asarray(J_regressor, dtype=np.float64)
    if J_regressor.shape != (NUM_JOINTS, V):
        raise bad(f"J_regressor is {J_regressor.shape}, expected [{NUM_JOINTS}, {V}]")
    weights = np.asarray(data["weights"], dtype=np.float64)
    if weights.shape != (V, NUM_JOINTS):
        raise bad(f"weights is {weights.shape}, expected [{V}, {NUM_JOINTS}]")
    kintree = np.asarray(data["kintree_table"])
    if kintree.shape != (2, NUM_JOINTS):
        raise bad(f"kintree_table is {kintree.shape}, expected [2, {NUM_JOINTS}]")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    if not np.array_equal(parents, SMPL_PARENTS):
        raise bad("kintree_table is not SMPL's 24-joint tree")
    faces = np.asarray(data["f"])
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise bad(f"f is {faces.shape} {faces.dtype}, expected integer [F, 3]")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise bad(f"f indexes vertices outside 0..{V - 1}")
    if is_standin:
        names = tuple(str(n) for n in np.asarray(data.get("landmark_names", np.array([], dtype=str))))
        ids = np.asarray(data.get("landmark_vertex_ids", np.zeros(0, dtype=np.int64)), dtype=np.int64)
        source = STANDIN_SOURCE
    elif V == SMPL_NUM_VERTICES:
        names = tuple(SMPL_LANDMARK_VERTICES)
        ids = np.array(list(SMPL_LANDMARK_VERTICES.values()), dtype=np.int64)
        source = str(path)
    else:
        names, ids, source = (), np.zeros(0, dtype=np.int64), str(path)
    if len(names) != len(ids) or (ids.size and (ids.min() < 0 or ids.max() >= V)):
        raise bad("landmark_names / landmark_vertex_ids do not match the mesh")
    return BodyModelArrays(v_template=v_template, shapedirs=shapedirs, posedirs=posedirs,
                           J_regressor=J_regressor, weights=weights, faces=faces, landmark_names=names,
                           landmark_vertex_ids=ids, gender=gender, source=source, is_standin=is_standin)


def _fallback_message(gender: str, where: str) -> str:
    return (f"No SMPL body model file for gender {gender!r} ({where}). Real SMPL files (SMPL_NEUTRAL.pkl, "
            f"SMPL_MALE.pkl, SMPL_FEMALE.pkl, or basicmodel_*_lbs_10_207_0_v1.*.pkl) come from {SMPL_DOWNLOAD} "
            "after a free registration, under its non-commercial licence; put them in a folder and set "
            "MOCAP_BODY_MODELS=/that/folder (or pass it). Using the mocap stand-in body model instead "
            f"(simulated, not SMPL) from {standin_dir()}.")


def _standin_arrays(gender: str) -> BodyModelArrays:
    """The stand-in for ``gender``, built into standin_dir() when missing or made by another generator."""
    from fitting.standin_model import GENERATOR, write_standin

    path = standin_dir() / f"SMPL_{gender.upper()}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                current = "generator" in data.files and str(data["generator"]) == GENERATOR
        except (OSError, ValueError):
            current = False
        if current:
            try:
                return arrays_from_file(path, gender)
            except BodyModelError:
                pass
    try:
        standin_dir().mkdir(parents=True, exist_ok=True)
        write_standin(standin_dir(), genders=(gender,))
    except OSError as exc:
        raise BodyModelError(f"cannot write the stand-in body model to {standin_dir()} ({exc}); set "
                             "MOCAP_STANDIN_DIR to a writable folder") from exc
    return arrays_from_file(path, gender)


def load_body_model(directory: str | Path | None = None, gender: str = "neutral", device: str = "cpu",
                    *, say: Callable[[str], None] | None = print) -> BodyModel:
    """The SMPL model of ``gender`` from ``directory`` (None: $MOCAP_BODY_MODELS) on ``device``; with neither,
    or no SMPL file there at all, the stand-in, saying so once through ``say`` (None: silent)."""
    gender = _check_gender(gender)
    origin = "given"
    if directory is None or str(directory) == "":
        env = os.environ.get("MOCAP_BODY_MODELS", "")
        directory, origin = (env, "from MOCAP_BODY_MODELS") if env else (None, "")
    if directory is None:
        if say is not None:
            say(_fallback_message(gender, "no directory given and MOCAP_BODY_MODELS is not set"))
        return BodyModel(_standin_arrays(gender), device)
    directory = Path(directory).expanduser()
    if directory.is_file():
        return BodyModel(arrays_from_file(directory, gender), device)
    if not directory.is_dir():
        raise BodyModelError(f"body model directory {directory} ({origin}) does not exist; point it at the folder "
                             f"holding SMPL_{gender.upper()}.pkl (from {SMPL_DOWNLOAD}), or unset it to use the "
                             "stand-in")
    path = find_model_file(directory, gender)
    if path is None:
        others = _smpl_files_in(directory)
        if others:
            listing = ", ".join(str(p.relative_to(directory)) for p in others)
            raise BodyModelError(f"no SMPL model file for gender {gender!r} in {directory} (looked for "
                                 f"SMPL_{gender.upper()}.npz/.pkl and basicmodel_{_GENDER_LETTER[gender]}_lbs_10_207_0_"
                                 f"v1.*.pkl); it holds {listing}: choose one of those genders or add the "
                                 f"{gender} file from {SMPL_DOWNLOAD}")
        if say is not None:
            say(_fallback_message(gender, f"{directory} holds no SMPL_*.pkl/.npz"))
        return BodyModel(_standin_arrays(gender), device)
    return BodyModel(arrays_from_file(path, gender), device)


def _rodrigues(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle [N, 3] -> rotation matrices [N, 3, 3], exactly smplx's batch_rodrigues."""
    from smplx.lbs import batch_rodrigues

    return batch_rodrigues(rotvec)


class BodyModel:
    """A body model's arrays as torch tensors on ``device``; forward passes are differentiable."""

    def __init__(self, arrays: BodyModelArrays, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.arrays = arrays
        self.device = torch.device(device)
        self.dtype = dtype
        lm = arrays.landmark_vertex_ids

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=self.device)

        self._j_template = t(arrays.joint_template)  # [24, 3]
        self._j_shapedirs = t(arrays.joint_shapedirs)  # [24, 3, B]
        self._lm_template = t(arrays.v_template[lm])  # [L, 3]
        self._lm_shapedirs = t(arrays.shapedirs[lm])  # [L, 3, B]
        cols = (lm[:, None] * 3 + np.arange(3)).ravel()
        self._lm_posedirs = t(arrays.posedirs[:, cols])  # [207, L*3]
        self._lm_weights = t(arrays.weights[lm])  # [L, 24]
        self._parents = SMPL_PARENTS.tolist()
        self._smplx = None

    @property
    def num_betas(self) -> int:
        return self.arrays.num_betas

    def _betas(self, betas) -> torch.Tensor:
        betas = torch.as_tensor(betas, device=self.device).to(self.dtype)
        if betas.ndim == 1:
            betas = betas[None]
        b = betas.shape[-1]
        if b > self.num_betas:
            raise BodyModelError(f"{b} betas given but the body model has {self.num_betas} shape components")
        if b < self.num_betas:
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - b))
        return betas

    def _rotations(self, pose) -> torch.Tensor:
        """pose [B, 24, 3] / [B, 72] axis-angle or [B, 24, 3, 3] -> [B, 24, 3, 3]."""
        pose = torch.as_tensor(pose, device=self.device).to(self.dtype)
        if pose.ndim == 4 and pose.shape[1:] == (NUM_JOINTS, 3, 3):
            return pose
        if pose.ndim == 2 and pose.shape[1] == NUM_JOINTS * 3:
            pose = pose.reshape(-1, NUM_JOINTS, 3)
        if pose.ndim != 3 or pose.shape[1:] != (NUM_JOINTS, 3):
            raise BodyModelError(f"pose of shape {tuple(pose.shape)}: expected [B, 24, 3] axis-angle "
                                 "or [B, 24, 3, 3] rotation matrices")
        return _rodrigues(pose.reshape(-1, 3)).reshape(pose.shape[0], NUM_JOINTS, 3, 3)

    def points(self, betas, pose, transl=None) -> tuple[torch.Tensor, torch.Tensor]:
        """betas [B or 1, b], pose [B, 24, 3] axis-angle (or [B, 24, 3, 3]), transl [B, 3] ->
        (joints [B, 24, 3], landmarks [B, L, 3]): smplx's joints and landmark vertices, computing only those."""
        rot = self._rotations(pose)
        n = rot.shape[0]
        betas = self._betas(betas)
        J = self._j_template + torch.einsum("jkb,nb->njk", self._j_shapedirs, betas)  # [Bb, 24, 3]
        J = J.expand(n, -1, -1)
        rel = torch.cat([J[:, :1], J[:, 1:] - J[:, self._parents[1:]]], dim=1)
        g_rot: list[torch.Tensor] = [rot[:, 0]]
        g_pos: list[torch.Tensor] = [rel[:, 0]]
        for j in range(1, NUM_JOINTS):
            p = self._parents[j]
            g_rot.append(g_rot[p] @ rot[:, j])
            g_pos.append(g_pos[p] + (g_rot[p] @ rel[:, j, :, None])[..., 0])
        R = torch.stack(g_rot, dim=1)  # [n, 24, 3, 3]
        pos = torch.stack(g_pos, dim=1)  # [n, 24, 3]
        if transl is None:
            transl = torch.zeros(n, 3, dtype=self.dtype, device=self.device)
        transl = torch.as_tensor(transl, device=self.device).to(self.dtype).reshape(-1, 1, 3)
        joints = pos + transl
        if self._lm_template.shape[0] == 0:
            return joints, joints[:, :0]
        # Landmarks: shaped + pose-corrective offsets, then skinned by sum_j w_j [R_j | pos_j - R_j J_j].
        eye = torch.eye(3, dtype=self.dtype, device=self.device)
        feature = (rot[:, 1:] - eye).reshape(n, -1)  # [n, 207]
        v = self._lm_template + torch.einsum("lkb,nb->nlk", self._lm_shapedirs, betas)
        v = v + (feature @ self._lm_posedirs).reshape(n, -1, 3)
        a = pos - (R @ J[..., None])[..., 0]  # [n, 24, 3]
        T = torch.einsum("lj,njab->nlab", self._lm_weights, R)
        t = torch.einsum("lj,nja->nla", self._lm_weights, a)
        landmarks = (T @ v[..., None])[..., 0] + t + transl
        return joints, landmarks

    def smplx_model(self):
        """The loaded ``smplx.SMPL`` (batch size 1, this model's dtype and device), made on first use."""
        if self._smplx is None:
            import smplx
            from smplx.utils import Struct

            with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10 betas
                model = smplx.SMPL(model_path=self.arrays.source, data_struct=Struct(**self.arrays.file_arrays()),
                                   num_betas=self.num_betas, gender=self.arrays.gender, dtype=self.dtype,
                                   vertex_ids=self.arrays.smplx_vertex_ids())
            self._smplx = model.to(self.device)
        return self._smplx

    def vertices(self, betas, pose, transl=None) -> torch.Tensor:
        """All vertices [B, V, 3] through smplx.SMPL itself (the reference), same arguments as ``points``."""
        rot = self._rotations(pose)
        n = rot.shape[0]
        if transl is None:
            transl = torch.zeros(n, 3, dtype=self.dtype, device=self.device)
        transl = torch.as_tensor(transl, device=self.device).to(self.dtype).reshape(n, 3)
        out = self.smplx_model()(betas=self._betas(betas), global_orient=rot[:, :1], body_pose=rot[:, 1:],
                                 transl=transl, pose2rot=False)
        return out.vertices
