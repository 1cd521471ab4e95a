import numpy as np

from rigs.sim.motion import relaxed_rotations
from rigs.sim.occlusion import occluded_by_others, segment_segment_distance
from rigs.sim.performers import performers_from_rotations


def _sampled_distance(p0, p1, q0, q1, n=400):
    s = np.linspace(0, 1, n)[:, None]
    a = p0 + s * (p1 - p0)
    b = q0 + s * (q1 - q0)
    return np.linalg.norm(a[:, None] - b[None], axis=-1).min()


def test_segment_distance_matches_dense_sampling_including_points_and_parallels():
    rng = np.random.default_rng(0)
    cases = [rng.normal(size=(4, 3)) for _ in range(40)]
    cases.append(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float))  # parallel
    cases.append(np.array([[0, 0, 0], [1, 0, 0], [0.5, 2, 0], [0.5, 2, 0]], float))  # a point
    cases.append(np.array([[0, 0, 0], [0, 0, 0], [3, 0, 4], [3, 0, 4]], float))  # two points
    for p0, p1, q0, q1 in cases:
        got = segment_segment_distance(p0, p1, q0, q1)
        assert abs(got - _sampled_distance(p0, p1, q0, q1)) < 5e-3
        assert got <= _sampled_distance(p0, p1, q0, q1) + 1e-12
    assert segment_segment_distance(*cases[-1]) == 5.0


def test_culled_occlusion_equals_brute_force():
    rng = np.random.default_rng(1)
    T, P = 6, 3
    heading = rng.uniform(-np.pi, np.pi, (T, P))
    xy = rng.uniform(-1.2, 1.2, (T, P, 2))
    perf = performers_from_rotations(relaxed_rotations(heading), xy, [1.6, 1.75, 1.9], 30)
    origins = np.array([[-4.0, 0.0, 1.5], [0.0, 4.0, 2.5], [3.0, -3.0, 0.5], [0.2, 0.1, 3.0]])
    points = perf.points
    a, b, r = perf.capsules()
    got = occluded_by_others(origins, points, a, b, r, block_frames=4)
    C, J = len(origins), points.shape[2]
    o = origins[:, None, None, None, None, None]
    x = points[None, :, :, :, None, None]
    d = segment_segment_distance(o, x, a[None, :, None, None], b[None, :, None, None])  # [C,T,P,J,Q,K]
    hit = d < r[None, None, None, None]
    hit &= ~np.eye(P, dtype=bool)[None, None, :, None, :, None]
    want = hit.any(axis=(-1, -2))
    assert want.shape == (C, T, P, J) and 0 < want.sum() < want.size
    np.testing.assert_array_equal(got, want)
