"""Metric scale: how many metres one unit of a self-calibrated rig is.

Cameras calibrated from correspondences alone are known up to a similarity: rotating, moving or
scaling the whole rig and the points together changes nothing in the images. The scale has to come
from a length known in metres: the height of the person in view, or the distance between two
cameras.

Person height. A walking, crouching or waving person is seldom upright, so the straight distance
from ankle to head changes all the time; the length of a rigid segment does not. We therefore measure
the body as a chain of segments, each by its median length over every triangulated instance of the
person (a median, so swapped limbs and the odd bad triangulation do not count):

* legs: ankle -> knee -> hip, per side (shank + thigh), the two sides averaged;
* trunk: midpoint of the hips -> midpoint of the shoulders;
* head: midpoint of the shoulders -> the head point: the top of the head where the skeleton has one
  (body25b, halpe26, h36m17), else the midpoint of the eyes, else the nose.

and divide their sum by the fraction of standing height (floor to the top of the head, H) that chain
spans in an adult. The vertical fractions are Winter's anthropometric table (D. A. Winter,
*Biomechanics and Motor Control of Human Movement*, 4th ed., 2009, Fig. 4.1): ankle 0.039 H, knee
0.285 H, hip (greater trochanter) 0.530 H, shoulder 0.818 H, eyes 0.936 H, top of the head 1.000 H.
The nose is not in the table: it sits about halfway between the eyes and the chin (0.870 H), at
0.91 H. The eyes and the nose also lie in front of the shoulder line, by about 0.05 H and 0.065 H
(roughly 9 and 11 cm for a 1.75 m adult), which lengthens the head segment a little. So:

* legs 0.491 H (0.530 - 0.039), trunk 0.288 H (0.818 - 0.530);
* head: to the top 0.182 H; to the eyes hypot(0.118, 0.05) = 0.128 H; to the nose hypot(0.092, 0.065)
  = 0.113 H.

With the head top, the chain spans ankle to crown, 0.961 H. People differ from the table by a few
per cent (leg length varies most), and a detector's "hip" is not exactly the greater trochanter, so
the height scale of a real person is good to about 2-3 %; the distance between two cameras measured
with a tape is better when it is available.
"""

from __future__ import annotations

import numpy as np

from calibration.errors import CalibrationError
from rigs.skeletons import get_skeleton

LEG_FRACTION = 0.530 - 0.039          # ankle -> knee -> hip
TRUNK_FRACTION = 0.818 - 0.530        # mid-hip -> mid-shoulder
HEAD_FRACTIONS = {                    # mid-shoulder -> head point
    "head_top": 1.000 - 0.818,
    "eyes": float(np.hypot(0.936 - 0.818, 0.05)),
    "nose": float(np.hypot(0.910 - 0.818, 0.065)),
}
ANKLE_HEIGHT_FRACTION = 0.039         # the ankle joint above the floor when standing (Winter)
SOLE_POINT_HEIGHT_FRACTION = 0.010    # heel and toe keypoints sit about 1 % of H above the floor


def _median_length(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Median over instances of |a - b| for points a, b [M, 3] (NaN where either is missing)."""
    d = np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else float("nan")


def body_chain(skeleton: str) -> tuple[dict[str, int], str]:
    """Joint indices of the chain used to measure a person (ankles, knees, hips, shoulders and the head
    point) and which head point it is. Raises CalibrationError when the skeleton lacks them."""
    sk = get_skeleton(skeleton)
    where = {n: i for i, n in enumerate(sk.joints)}
    needed = [f"{s}_{p}" for p in ("ankle", "knee", "hip", "shoulder") for s in ("left", "right")]
    lacking = [n for n in needed if n not in where]
    if lacking:
        raise CalibrationError(f"skeleton {sk.name} lacks {', '.join(lacking)}, so a person's height cannot be "
                               f"measured; give the distance between two cameras instead (--distance)")
    chain = {n: where[n] for n in needed}
    if "head_top" in where:
        chain["head_top"] = where["head_top"]
        return chain, "head_top"
    if "left_eye" in where and "right_eye" in where:
        chain["left_eye"], chain["right_eye"] = where["left_eye"], where["right_eye"]
        return chain, "eyes"
    if "nose" in where:
        chain["nose"] = where["nose"]
        return chain, "nose"
    raise CalibrationError(f"skeleton {sk.name} has no head point (head top, eyes or nose), so a person's height "
                           f"cannot be measured; give the distance between two cameras instead (--distance)")


def body_segments(people: np.ndarray, skeleton: str) -> tuple[float, float, float, str]:
    """Median leg, trunk and head segment lengths of people instances [M, J, 3] (NaN where missing),
    in the points' units, and the head point used."""
    chain, head = body_chain(skeleton)
    P = np.asarray(people, float)

    def at(name: str) -> np.ndarray:
        return P[:, chain[name]]

    legs = [_median_length(P, at(f"{s}_ankle"), at(f"{s}_knee")) + _median_length(P, at(f"{s}_knee"), at(f"{s}_hip"))
            for s in ("left", "right")]
    mid_hip = 0.5 * (at("left_hip") + at("right_hip"))
    mid_shoulder = 0.5 * (at("left_shoulder") + at("right_shoulder"))
    top = {"head_top": lambda: at("head_top"), "eyes": lambda: 0.5 * (at("left_eye") + at("right_eye")),
           "nose": lambda: at("nose")}[head]()
    return (float(np.nanmean(legs)) if np.isfinite(legs).any() else float("nan"),
            _median_length(P, mid_hip, mid_shoulder), _median_length(P, mid_shoulder, top), head)


def person_height(people: np.ndarray, skeleton: str) -> float:
    """Standing height (floor to the top of the head) of the people instances [M, J, 3], in the points'
    units: the median segment chain divided by the fraction of height it spans (module docstring)."""
    leg, trunk, head_len, head = body_segments(people, skeleton)
    if not np.isfinite([leg, trunk, head_len]).all():
        raise CalibrationError("the triangulated people lack ankles, knees, hips, shoulders or a head point in "
                               "every frame, so their height cannot be measured; give the distance between two "
                               "cameras instead (--distance), or record people in full view")
    return (leg + trunk + head_len) / (LEG_FRACTION + TRUNK_FRACTION + HEAD_FRACTIONS[head])


def scale_from_height(people: np.ndarray, skeleton: str, height_m: float) -> float:
    """Metres per unit that make the people instances [M, J, 3] ``height_m`` tall."""
    if not (np.isfinite(height_m) and 0.5 < height_m < 2.8):
        raise CalibrationError(f"person height {height_m!r} m is not a human height; give it in metres "
                               f"(e.g. --person-height 1.75)")
    return float(height_m / person_height(people, skeleton))


def scale_from_distance(centers: np.ndarray, a: int, b: int, distance_m: float) -> float:
    """Metres per unit that put camera centres a and b (rows of centers [C, 3]) ``distance_m`` apart."""
    if not (np.isfinite(distance_m) and distance_m > 0):
        raise CalibrationError(f"camera distance {distance_m!r} m: expected a positive length in metres")
    d = float(np.linalg.norm(np.asarray(centers)[a] - np.asarray(centers)[b]))
    if d < 1e-9:
        raise CalibrationError("the two cameras given for the distance are at the same place in the calibration; "
                               "name two different cameras")
    return float(distance_m / d)


def foot_points(people: np.ndarray, skeleton: str, height_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Foot points [M, F, 3] of people instances [M, J, 3] (ankles, heels, toes; NaN where missing) and
    how high above the floor each sits when standing [F] (ankles 0.039 H, heel and toe points 0.01 H)."""
    sk = get_skeleton(skeleton)
    names = [n for n in sk.joints if any(k in n for k in ("ankle", "heel", "toe", "foot_index"))]
    if not names:
        raise CalibrationError(f"skeleton {sk.name} has no foot joints, so the floor cannot be found")
    idx = [sk.index(n) for n in names]
    frac = np.array([ANKLE_HEIGHT_FRACTION if "ankle" in n else SOLE_POINT_HEIGHT_FRACTION for n in names])
    return np.asarray(people, float)[:, idx], frac * height_m
