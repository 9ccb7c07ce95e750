"""benchmarks/motion_oracle.py: the oracle's pieces on fields whose answer is known."""
import numpy as np
import pytest

from benchmarks import motion_oracle as O
from cmp.eval import baselines as B


def _affine_field(h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([0.05 * xx - 0.02 * yy + 3.0, 0.01 * xx + 0.03 * yy - 1.0], -1)


def test_local_affine_fit_recovers_an_affine_motion_everywhere():
    h, w = 40, 56
    field = _affine_field(h, w)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, w, 8), rng.integers(0, h, 8)
    pts = np.stack([xs, ys, field[ys, xs, 0], field[ys, xs, 1]], 1).astype(float)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.stack([np.hypot(xx - x, yy - y) for x, y in pts[:, :2]])
    fitted = O.local_affine(pts, d, ridge=0.0)
    assert np.abs(fitted - field).max() < 1e-4
    # the blend of the same arrows copies the nearest ones and misses the gradient between them
    assert np.abs(B.inverse_distance_blend(pts, d) - field).mean() > 0.1


def test_local_affine_with_a_stiff_ridge_is_the_inverse_distance_blend():
    h, w = 40, 56
    field = _affine_field(h, w)
    pts = np.array([[5, 5, *field[5, 5]], [50, 35, *field[35, 50]], [50, 5, *field[5, 50]]])
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.stack([np.hypot(xx - x, yy - y) for x, y in pts[:, :2]])
    loose, stiff = O.local_affine(pts, d, ridge=0.0), O.local_affine(pts, d, ridge=1e6)
    blend = B.inverse_distance_blend(pts, np.maximum(d, 0.5))
    assert np.abs(stiff - blend).max() < 1e-3  # no slope left: a weighted mean of the arrows
    assert np.abs(loose - field).max() < 1e-4  # three arrows fix an affine motion exactly


def test_the_oracle_cost_walls_off_the_true_motion_edge():
    flow = np.zeros((48, 64, 2), np.float32)
    flow[:, 32:, 0] = 8.0  # two layers, the photo shows no edge between them
    cost = B.edge_cost(O.flow_edges(flow))
    geo = B.GeodesicBlend(np.full((48, 64, 3), 100, np.uint8), cost=cost)
    d = geo.distance(24, 24)
    assert d[24, 44] > 2 * d[4, 24]  # across the motion edge vs the same distance along it
    assert cost[:, :28].max() == pytest.approx(1.0)
