"""An independent reference for the SMPL tests: the model's joints by plain forward kinematics, written apart
from the product code so the exporters are checked against something they do not share."""

import numpy as np
from scipy.spatial.transform import Rotation

from rigs.skeletons import get_skeleton

SMPL_PARENTS = np.array(get_skeleton("smpl24").parents)


def model_joints(rest: np.ndarray, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """The SMPL joints [T, 24, 3] in the world (smplx's transl semantics: the pelvis at rest[0] + trans, the
    global orientation turning the body about it), from rest joints [24, 3], poses [T, 72], trans [T, 3]."""
    R = Rotation.from_rotvec(np.array(poses).reshape(-1, 3)).as_matrix().reshape(len(poses), 24, 3, 3)
    G, p = np.empty_like(R), np.empty((len(poses), 24, 3))
    G[:, 0], p[:, 0] = R[:, 0], rest[0] + trans
    for j in range(1, 24):
        q = SMPL_PARENTS[j]
        G[:, j] = G[:, q] @ R[:, j]
        p[:, j] = p[:, q] + G[:, q] @ (rest[j] - rest[q])
    return p
