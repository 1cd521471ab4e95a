import numpy as np
import pytest

from reconstruction.metrics import joint_errors, mpjpe


def test_mpjpe_of_known_offsets():
    truth = np.zeros((2, 3, 4), np.float32)
    truth[..., 3] = 1
    pred = truth.copy()
    pred[0, :, 0] += 0.010  # 10 mm on three joints
    pred[1, :, 2] -= 0.030  # 30 mm on three joints
    assert mpjpe(pred, truth) == pytest.approx(20.0, abs=1e-3)


def test_missing_predictions_count_against_completeness_not_error():
    truth = np.zeros((4, 4), np.float32)
    truth[:, 3] = 1
    pred = truth.copy()
    pred[0, :3] = np.nan
    pred[0, 3] = 0
    pred[1, 0] += 0.1
    e = joint_errors(pred, truth)
    assert e.total == 4 and e.missing == 1
    assert e.completeness == pytest.approx(0.75)
    assert e.mpjpe_mm == pytest.approx(100 / 3, rel=1e-4)


def test_truth_joints_absent_are_not_compared():
    truth = np.zeros((3, 4), np.float32)
    truth[:, 3] = [1, 0, 1]
    pred = np.zeros((3, 3), np.float32)
    pred[1] = 5.0  # far off, but the truth says this joint does not exist
    assert joint_errors(pred, truth).total == 2
    assert mpjpe(pred, truth) == 0.0
