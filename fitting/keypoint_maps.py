"""Keypoint maps: each skeleton format's joints as weighted sums of body-model joints and landmarks.

Defined once, by canonical joint name (``rigs.skeletons``: same name = same point), so every format uses
the same definition of a point. ``_DEFINITIONS`` gives, per name, a list of alternatives tried in order;
an alternative is a set of (model point, coefficient) terms summing to 1 and the weight of the point in
the fit. A model point is an SMPL-24 joint name or a surface landmark name (``BodyModelArrays.landmark_names``);
the first alternative whose landmarks the model has is used. So:

* SMPL joint names map to that joint;
* surface points (nose, eyes, ears, heels, toes, head top, ...) map to the model's landmark vertex;
  where the real SMPL files lack one that the stand-in has (mouth corners, inner/outer eye corners,
  finger points, the foot tip) they fall back to nearby points with a lower weight, or weight 0;
* interior points are joint combinations, with coefficients from the simulated body's rest proportions
  (``rigs/sim/body.py``): ``mid_hip`` = mean of the hip joints, ``thorax`` = 0.3 spine3 + 0.7 neck,
  ``spine`` = 0.275 spine1 + 0.725 spine2, ``neck_nose`` = 0.3 neck + 0.15 head + 0.55 nose (within
  about 2 cm of the simulated body's points at rest: its thorax and spine sit 1 and 0.5 % of height
  forward of the spine joints, which no combination of them reaches).

Weights (the fitting term of a point is multiplied by them, on top of the detector's score):

* hips (``left_hip``, ``right_hip``, ``mid_hip``) 0.5: detectors put the hips lower and wider than
  SMPL's hip joints on real people (the skin over the greater trochanter vs the joint centre), so they
  pin the pelvis less than the limbs do. The simulated body uses the same points, so fits to simulated
  people are exact all the same;
* ``neck`` 0.5: the name is loose across formats (OpenPose's neck is between the shoulders, the
  upper neck of body25b/halpe26 a few cm higher, SMPL's neck joint in between);
* fallback points 0.2-0.5 as listed; everything else 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rigs.skeletons import get_skeleton

SMPL_JOINTS: tuple[str, ...] = get_skeleton("smpl24").joints

Terms = tuple[tuple[str, float], ...]
HIP_WEIGHT = 0.5
NECK_WEIGHT = 0.5


def _one(point: str, weight: float = 1.0) -> tuple[Terms, float]:
    return ((point, 1.0),), weight


def _build_definitions() -> dict[str, tuple[tuple[Terms, float], ...]]:
    d: dict[str, tuple[tuple[Terms, float], ...]] = {}
    for name in SMPL_JOINTS:
        d[name] = (_one(name),)
    for side in ("left", "right"):
        d[f"{side}_hip"] = (_one(f"{side}_hip", HIP_WEIGHT),)
        d[f"{side}_eye"] = (_one(f"{side}_eye"), _one("head", 0.0))
        d[f"{side}_ear"] = (_one(f"{side}_ear"), _one("head", 0.0))
        for corner in ("inner", "outer"):
            d[f"{side}_eye_{corner}"] = (_one(f"{side}_eye_{corner}"), _one(f"{side}_eye", 0.3), _one("head", 0.0))
        d[f"mouth_{side}"] = (_one(f"mouth_{side}"), _one("nose", 0.0), _one("head", 0.0))
        d[f"{side}_heel"] = (_one(f"{side}_heel"), _one(f"{side}_ankle", 0.0))
        d[f"{side}_big_toe"] = (_one(f"{side}_big_toe"), _one(f"{side}_foot", 0.3))
        d[f"{side}_small_toe"] = (_one(f"{side}_small_toe"), _one(f"{side}_foot", 0.3))
        d[f"{side}_foot_index"] = (
            _one(f"{side}_foot_index"),
            (((f"{side}_big_toe", 0.5), (f"{side}_small_toe", 0.5)), 0.5),
            _one(f"{side}_foot", 0.3),
        )
        d[f"{side}_index"] = (_one(f"{side}_index"), _one(f"{side}_hand", 0.3))
        d[f"{side}_pinky"] = (_one(f"{side}_pinky"), _one(f"{side}_hand", 0.2))
        d[f"{side}_thumb"] = (_one(f"{side}_thumb"), _one(f"{side}_hand", 0.2))
    d["neck"] = (_one("neck", NECK_WEIGHT),)
    d["nose"] = (_one("nose"), _one("head", 0.0))
    d["head_top"] = (_one("head_top"), _one("head", 0.0))
    d["mid_hip"] = ((((("left_hip", 0.5), ("right_hip", 0.5))), HIP_WEIGHT),)
    d["thorax"] = ((((("spine3", 0.3), ("neck", 0.7))), 1.0),)
    d["spine"] = ((((("spine1", 0.275), ("spine2", 0.725))), 1.0),)
    d["neck_nose"] = ((((("neck", 0.3), ("head", 0.15), ("nose", 0.55))), 1.0), _one("head", 0.5))
    return d


_DEFINITIONS = _build_definitions()


def defined_names() -> tuple[str, ...]:
    """Every canonical joint name the maps define."""
    return tuple(sorted(_DEFINITIONS))


class KeypointMapError(ValueError):
    """A skeleton joint the body model cannot express."""


@dataclass(frozen=True, eq=False)
class KeypointMap:
    """A skeleton's joints as weighted sums of the model's 24 joints and L landmarks, with fit weights."""

    skeleton: str  # canonical name
    weights: np.ndarray  # [J] per-joint weight of the fitting term (0: unused)
    combination: np.ndarray  # [J, 24 + L]
    joint_names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # per joint, the terms used, e.g. "0.5 left_hip + 0.5 right_hip"

    def __post_init__(self) -> None:
        for name in ("weights", "combination"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def num_joints(self) -> int:
        return self.combination.shape[0]

    def tensor(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The combination matrix [J, 24 + L] as a tensor."""
        return torch.tensor(np.array(self.combination), dtype=dtype, device=device)


def keypoint_map(skeleton: str, model) -> KeypointMap:
    """The map of ``skeleton``'s joints onto ``model`` (``BodyModelArrays``, or anything with
    ``landmark_names``; a ``BodyModel`` is accepted through its ``arrays``)."""
    arrays = getattr(model, "arrays", model)
    landmarks = tuple(arrays.landmark_names)
    sk = get_skeleton(skeleton)
    column = {n: i for i, n in enumerate(SMPL_JOINTS)}
    column.update({n: len(SMPL_JOINTS) + i for i, n in enumerate(landmarks) if n not in column})
    combination = np.zeros((sk.num_joints, len(SMPL_JOINTS) + len(landmarks)))
    weights = np.zeros(sk.num_joints)
    sources = []
    for j, name in enumerate(sk.joints):
        alternatives = _DEFINITIONS.get(name)
        if alternatives is None:
            raise KeypointMapError(f"skeleton {sk.name!r}: joint {name!r} has no definition in "
                                   f"fitting/keypoint_maps.py; add it to _DEFINITIONS")
        usable = [alt for alt in alternatives if all(p in column for p, _ in alt[0])]
        if not usable:
            raise KeypointMapError(f"skeleton {sk.name!r}: joint {name!r} needs one of the landmarks "
                                   f"{sorted({p for t, _ in alternatives for p, _ in t} - set(column))}, which "
                                   f"the body model ({getattr(arrays, 'source', '?')}) does not have")
        terms, weight = usable[0]
        for point, coef in terms:
            combination[j, column[point]] += coef
        weights[j] = weight
        sources.append(" + ".join(p if c == 1.0 else f"{c:g} {p}" for p, c in terms))
    return KeypointMap(sk.name, weights, combination, sk.joints, tuple(sources))


def model_keypoints(joints: torch.Tensor, landmarks: torch.Tensor, kmap: KeypointMap | torch.Tensor) -> torch.Tensor:
    """Model joints [B, 24, 3] and landmarks [B, L, 3] -> the model's version of the input keypoints [B, J, 3]
    (``kmap`` a KeypointMap, or its combination as a tensor on the right device, for hot loops)."""
    comb = kmap if isinstance(kmap, torch.Tensor) else kmap.tensor(joints.device, joints.dtype)
    points = torch.cat([joints, landmarks], dim=1)
    return torch.einsum("jk,bkd->bjd", comb, points)
