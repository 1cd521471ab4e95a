"""Simulated bodies: the body model (in tests, the stand-in) posed with simulated motion, truth known.

``rigs.sim.performers.simulate_performers`` drives the simulated body: local rotations ``R_j``
[T, P, 24, 3, 3] in its world-aligned joint frames (rest pose facing +X, left +Y, Z up) and the pelvis
position. The SMPL canonical frame (x left, y up, z forward) is the same frame with its axes renamed,
``world = A @ smpl`` with ``A = [[0,0,1],[1,0,0],[0,1,0]]``, so the same motion in SMPL parameters is

    R_smpl_j = A^T R_j A  (j >= 1),     global orientation = R_0 A,
    transl   = pelvis_sim - J_0(betas)  (smplx: the pelvis joint ends at J_0(betas) + transl),

which puts every SMPL joint frame where the simulated body has it (the global rotation of joint j is
``G_j A``). Each person gets betas drawn from a seeded N(0, 1), clipped to +-2; the body model then
gives the joints and landmarks (``BodyModel.points``) and the keypoint maps any skeleton's keypoints.
Everything here is simulated: the records say so in ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fitting.keypoint_maps import keypoint_map
from rigs.sim.performers import simulate_performers

A = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""World (Z up, facing +X) = A @ SMPL canonical (Y up, facing +Z)."""
SOURCE = "simulated: body model posed with rigs.sim.performers procedural motion, seeded betas"


@dataclass(frozen=True, eq=False)
class SimulatedBodies:
    """Simulated people as SMPL parameters and the body model's points (world frame, metres)."""

    poses: np.ndarray  # [T, P, 72] axis-angle, global orientation first
    trans: np.ndarray  # [T, P, 3] smplx transl
    betas: np.ndarray  # [P, B]
    joints: np.ndarray  # [T, P, 24, 3]
    landmarks: np.ndarray  # [T, P, L, 3]
    landmark_names: tuple[str, ...]
    fps: float
    seed: int
    t_ns: np.ndarray  # int64 [T]
    body_model: str  # BodyModelArrays.source
    source: str = SOURCE

    def __post_init__(self) -> None:
        for name in ("poses", "trans", "betas", "joints", "landmarks", "t_ns"):
            arr = np.array(getattr(self, name))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    @property
    def num_people(self) -> int:
        return self.poses.shape[1]

    def rotations(self) -> np.ndarray:
        """Local rotations [T, P, 24, 3, 3] (global orientation first)."""
        from scipy.spatial.transform import Rotation

        R = Rotation.from_rotvec(np.array(self.poses).reshape(-1, 3)).as_matrix()
        return R.reshape(self.poses.shape[:2] + (24, 3, 3))

    def keypoints(self, skeleton: str) -> np.ndarray:
        """The true keypoints float64 [T, P, J, 4] (score 1) of ``skeleton`` through the keypoint map."""
        kmap = keypoint_map(skeleton, self)
        pts = np.concatenate([self.joints, self.landmarks], axis=2)
        xyz = np.einsum("jk,tpkd->tpjd", kmap.combination, pts)
        return np.concatenate([xyz, np.ones(xyz.shape[:-1] + (1,))], axis=-1)


def smpl_parameters(local_rotations: np.ndarray, root_translation: np.ndarray,
                    rest_pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simulated body's local rotations [..., 24, 3, 3] and pelvis positions [..., 3] as SMPL
    (poses [..., 72] axis-angle, transl [..., 3]) for a model whose rest pelvis joint is ``rest_pelvis``."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(local_rotations, dtype=np.float64)
    smpl = A.T @ R @ A
    smpl[..., 0, :, :] = R[..., 0, :, :] @ A
    poses = Rotation.from_matrix(smpl.reshape(-1, 3, 3)).as_rotvec().reshape(R.shape[:-3] + (72,))
    trans = np.asarray(root_translation, dtype=np.float64) - np.asarray(rest_pelvis, dtype=np.float64)
    return poses, trans


def simulate_bodies(model, num_people: int, seconds: float, fps: float, seed: int,
                    area: tuple[float, float] = (4.0, 4.0), betas_clip: float = 2.0) -> SimulatedBodies:
    """Seeded simulated people (``simulate_performers`` motion) with betas ~ N(0, 1) clipped to
    +-``betas_clip``, posed with ``model`` (``BodyModel``); points computed in float64."""
    perf = simulate_performers(num_people, seconds, fps, seed, area=area)
    rng = np.random.default_rng([int(seed), 6])
    B = model.arrays.num_betas
    betas = np.clip(rng.standard_normal((num_people, B)), -betas_clip, betas_clip)
    rest_pelvis = model.arrays.rest_joints(betas)[:, 0]  # [P, 3]
    poses, trans = smpl_parameters(perf.local_rotations, perf.root_translation, rest_pelvis[None])
    T, P = poses.shape[:2]
    exact = type(model)(model.arrays, "cpu", torch.float64)
    joints, landmarks = [], []
    with torch.no_grad():
        for p in range(P):
            j, lm = exact.points(torch.as_tensor(betas[p : p + 1]), torch.as_tensor(poses[:, p].reshape(T, 24, 3)),
                                 torch.as_tensor(trans[:, p]))
            joints.append(j.numpy())
            landmarks.append(lm.numpy())
    return SimulatedBodies(poses=poses, trans=trans, betas=betas, joints=np.stack(joints, 1),
                           landmarks=np.stack(landmarks, 1), landmark_names=tuple(model.arrays.landmark_names),
                           fps=float(fps), seed=int(seed), t_ns=perf.t_ns, body_model=model.arrays.source)
