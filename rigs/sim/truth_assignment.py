"""Grouping simulated detections by the performer they came from, using the simulation's truth.

This stands in for cross-view association (a later stage) in the first demo: it is only possible with
simulated data, and is named so that no one mistakes it for association.
"""

from __future__ import annotations

import numpy as np


def assign_by_simulated_truth(keypoints2d: np.ndarray, truth_person: np.ndarray, num_people: int) -> np.ndarray:
    """Detections [C, T, S, J, 3] with slot owners [C, T, S] -> per performer [C, T, P, J, 3].

    Ghost slots (owner -1) are dropped; a performer not detected in a view gets NaN coordinates, score 0.
    """
    owners = truth_person[..., None] == np.arange(num_people)  # [C, T, S, P]
    found = owners.any(axis=2)  # [C, T, P]
    slot = owners.argmax(axis=2)  # [C, T, P]
    out = np.take_along_axis(keypoints2d, slot[..., None, None], axis=2)  # [C, T, P, J, 3]
    out = np.where(found[..., None, None], out, np.nan)
    out[..., 2] = np.where(found[..., None], np.nan_to_num(out[..., 2]), 0.0)
    return out.astype(keypoints2d.dtype, copy=False)
