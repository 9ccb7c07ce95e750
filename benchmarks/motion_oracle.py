"""How near an edge-aware blend of the arrows can get to issue 18's motion target on the real
stereo pair, if it knew where the true depth edges are.

The target asks the default mode for at most 0.8x the geodesic blend's EPE at 10 random points
on real stereo. This script measures, on scikit-image's stereo motorcycle (**real**, true
disparity; an evaluation pair, so this is a description and decides nothing):

* the geodesic blend (the target's reference) and the other model-free baselines;
* **oracles**: the same geodesic blend with its step cost taken from the *true flow's* edges
  (``edge_cost`` of the gradient of the ground truth) instead of the photo's colour edges, at
  three edge weights: a blend that knows the depth edges exactly;
* each of them followed by a **local affine fit** (at every pixel, an affine motion fitted to
  the arrows weighted 1 / d^2 of their geodesic distance, a ridge on its slope): a blend that
  also follows a surface whose motion changes smoothly (the receding floor and wall);
* the same affine fit on the photo's own colour edges (a classical method, no oracle).

Run: ``OMP_WAIT_POLICY=PASSIVE python -m benchmarks.motion_oracle`` (about a minute on a 2-core
CPU; needs scikit-image's data). The model's own EPE is in ``checkpoints/eval/propagation.json``
(``python -m cmp eval propagation``).
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from cmp.eval import propagation as P
from cmp.eval.baselines import GeodesicBlend, edge_cost

#: Edge weights of the oracle's step cost (the photo's geodesic blend uses 20).
ORACLE_EDGE_WEIGHTS = (5.0, 20.0, 100.0)
#: Ridge on the affine fit's slope (in units of the image width), per point's weight.
AFFINE_RIDGE = 0.1


def flow_edges(flow: np.ndarray) -> np.ndarray:
    """(H, W) gradient magnitude of a flow's horizontal and vertical components (the larger)."""
    out = []
    for c in range(2):
        f = np.ascontiguousarray(flow[..., c], np.float32)
        out.append(np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)))
    return np.maximum(*out)


def local_affine(points: np.ndarray, dists: np.ndarray, ridge: float = AFFINE_RIDGE) -> np.ndarray:
    """(H, W, 2) flow: at each pixel the affine motion that best fits the (N, 4) arrows
    (x, y, dx, dy), each weighted 1 / max(d, 0.5)^2 of its (N, H, W) distance ``dists`` to the
    pixel, with ``ridge`` (times the weights' sum) pulling the slope towards zero."""
    pts = np.asarray(points, np.float64).reshape(-1, 4)
    n, h, w = dists.shape
    wt = 1.0 / np.maximum(np.asarray(dists, np.float64), 0.5) ** 2
    X = np.stack([(pts[:, 0] - w / 2) / w, (pts[:, 1] - h / 2) / w, np.ones(n)], 1)
    A = np.einsum("nhw,ni,nj->hwij", wt, X, X)
    A += ridge * np.diag([1.0, 1.0, 0.0]) * wt.sum(0)[..., None, None] + 1e-9 * np.eye(3)
    coef = np.linalg.solve(A, np.einsum("nhw,ni,nc->hwic", wt, X, pts[:, 2:]))
    yy, xx = np.mgrid[0:h, 0:w]
    at = np.stack([(xx - w / 2) / w, (yy - h / 2) / w, np.ones((h, w))], -1)
    return np.einsum("hwi,hwic->hwc", at, coef).astype(np.float32)


def _blend(cost=None):
    return lambda img: P._per_set(GeodesicBlend(img, cost=cost))


def _affine(cost=None, ridge: float = AFFINE_RIDGE):
    def bind(img):
        geo = GeodesicBlend(img, cost=cost)
        return P._per_set(lambda p: local_affine(p, np.stack([geo.distance(x, y) for x, y in np.asarray(p)[:, :2]]),
                                                 ridge))
    return bind


def methods(pair: P.Pair) -> dict:
    """The baselines, the oracles and the affine fits, by name."""
    out = dict(P.baseline_methods())
    out["geodesic + affine fit"] = _affine()
    edges = flow_edges(P._fill_invalid(pair.flow, pair.valid))
    for e in ORACLE_EDGE_WEIGHTS:
        cost = edge_cost(edges, edge_weight=e)
        out[f"oracle edges x{e:g}"] = _blend(cost)
        out[f"oracle edges x{e:g} + affine fit"] = _affine(cost)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", default="3,10,20", help="numbers of random points (default 3,10,20)")
    ap.add_argument("--seeds", type=int, default=3, help="draws per number (default 3, as the card)")
    args = ap.parse_args(argv)
    points = [int(n) for n in args.points.split(",")]
    pair = P.motorcycle_pairs()[0]
    _, cases = P.evaluate_cases([pair], methods(pair), points=points, seeds=args.seeds, samplings=["random"])
    ref = np.mean(cases["random"]["geodesic"], 0)
    print(f"motorcycle (real, true disparity), random points, {args.seeds} seeds: EPE (ratio to the geodesic blend)")
    print(f"| method | {' | '.join(f'{n} points' for n in points)} |")
    print("|---|" + "---|" * len(points))
    for name, v in cases["random"].items():
        v = np.mean(v, 0)
        print(f"| {name} | " + " | ".join(f"{a:.3f} ({a / r:.2f}x)" for a, r in zip(v, ref)) + " |")


if __name__ == "__main__":
    main()
