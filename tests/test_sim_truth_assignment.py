import numpy as np

from rigs.sim.truth_assignment import assign_by_simulated_truth


def test_slots_are_gathered_per_performer_and_ghosts_dropped():
    C, T, S, J = 2, 3, 3, 4
    kp = np.arange(C * T * S * J * 3, dtype=np.float32).reshape(C, T, S, J, 3)
    owners = np.full((C, T, S), -1, np.int32)
    owners[0, :, 0] = 1  # camera 0: slot 0 is person 1, slot 2 is person 0, slot 1 a ghost
    owners[0, :, 2] = 0
    owners[1, :, 1] = 0  # camera 1 sees only person 0, in slot 1
    out = assign_by_simulated_truth(kp, owners, num_people=2)
    assert out.shape == (C, T, 2, J, 3)
    np.testing.assert_array_equal(out[0, :, 0], kp[0, :, 2])
    np.testing.assert_array_equal(out[0, :, 1], kp[0, :, 0])
    np.testing.assert_array_equal(out[1, :, 0], kp[1, :, 1])
    assert np.isnan(out[1, :, 1, :, :2]).all() and (out[1, :, 1, :, 2] == 0).all()
