"""Model-free baselines for motion propagation: sparse points -> dense flow.

Every baseline takes guidance ``points`` as an (N, 4) array (x, y, dx, dy):
at pixel column x, row y the motion is (dx, dy) pixels, and returns an
(H, W, 2) float32 flow (channel 0 = dx, 1 = dy) in the same pixels. They
exist so the benchmark can say how much the learned model adds over
interpolation that ignores (zero, nearest, RBF) or only weakly uses
(geodesic) the image.
"""
from __future__ import annotations

import cv2
import numpy as np
from cachetools import LRUCache
from skimage.graph import MCP_Geometric

#: Gaussian RBF width as a fraction of the image's long side.
RBF_SIGMA = 0.1
#: Edge-aware blend: gradient weight in the step cost, inverse-distance power,
#: and the long side (px) of the cost map the geodesic distances are computed on.
GEO_EDGE_WEIGHT = 20.0
GEO_POWER = 2.0
GEO_SIDE = 192


def _points(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 4)


def _pixel_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    return np.mgrid[0:h, 0:w].astype(np.float64)  # (row, col)


def _squared_distances(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) squared Euclidean distance of every pixel to every point."""
    yy, xx = _pixel_grid(shape)
    return (xx[None] - points[:, 0, None, None]) ** 2 + (yy[None] - points[:, 1, None, None]) ** 2


def _blend(weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Normalised blend of point vectors: (N, H, W) weights -> (H, W, 2) float32."""
    num = np.einsum("nhw,nc->hwc", weights, points[:, 2:])
    return (num / weights.sum(0)[..., None]).astype(np.float32)


def zero_flow(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """No motion anywhere, whatever the guidance."""
    return np.zeros((*shape, 2), np.float32)


def nearest_flow(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each pixel takes the vector of its nearest guidance point (Voronoi cells)."""
    points = _points(points)
    if len(points) == 0:
        return zero_flow(points, shape)
    idx = np.argmin(_squared_distances(points, shape), axis=0)
    return points[idx, 2:].astype(np.float32)


def rbf_flow(points: np.ndarray, shape: tuple[int, int], sigma: float | None = None) -> np.ndarray:
    """Normalised Gaussian-weighted blend of the guidance vectors.

    sigma: kernel width in pixels; default ``RBF_SIGMA`` x the long side.
    Far from every point the blend tends to the nearest point's vector
    instead of dividing 0 by 0, because weights are normalised per pixel
    in the log domain.
    """
    points = _points(points)
    if len(points) == 0:
        return zero_flow(points, shape)
    sigma = float(sigma if sigma is not None else RBF_SIGMA * max(shape))
    logw = -_squared_distances(points, shape) / (2.0 * sigma * sigma)
    return _blend(np.exp(logw - logw.max(0, keepdims=True)), points)


def inverse_distance_blend(points: np.ndarray, dists: np.ndarray, power: float = GEO_POWER) -> np.ndarray:
    """Shepard blend with weights 1 / d**power; (N, H, W) distances -> (H, W, 2).

    Interpolating: where a point's distance is 0 the output is that point's
    vector (the mean, if several points share the pixel).
    """
    points = _points(points)
    d = np.maximum(np.asarray(dists, dtype=np.float64), 0.0)
    at_point = d <= 0.0
    hit = at_point.any(0)
    w = np.where(hit[None], at_point.astype(np.float64), 1.0 / np.maximum(d, 1e-12) ** power)
    return _blend(w, points)


def edge_cost(grad: np.ndarray, side: int = GEO_SIDE, edge_weight: float = GEO_EDGE_WEIGHT, *,
              percentile: float = 95.0) -> np.ndarray:
    """Step cost 1 + edge_weight * normalised edge strength, at ``side`` px long side.

    ``grad``: (H, W) edge strength (a gradient magnitude). It is max-pooled when downscaling
    so thin edges survive, and divided by its ``percentile`` so the weight means the same on
    every image.
    """
    grad = np.asarray(grad, np.float32)
    h, w = grad.shape
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        k = int(np.ceil(1.0 / scale))
        grad = cv2.dilate(grad, np.ones((k, k), np.uint8))
        grad = cv2.resize(grad, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_NEAREST)
    grad = np.clip(grad / max(float(np.percentile(grad, percentile)), 1e-6), 0.0, 1.0)
    return 1.0 + edge_weight * grad


def gradient_cost(rgb: np.ndarray, side: int = GEO_SIDE, edge_weight: float = GEO_EDGE_WEIGHT, *,
                  percentile: float = 95.0) -> np.ndarray:
    """:func:`edge_cost` of the image's colour edges: the max over RGB of the Sobel
    magnitude of the lightly smoothed image."""
    img = cv2.GaussianBlur(np.asarray(rgb, np.float32) / 255.0, (0, 0), 1.0)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    return edge_cost(np.sqrt(gx * gx + gy * gy).max(axis=2), side, edge_weight, percentile=percentile)


class GeodesicBlend:
    """Edge-aware blend: inverse geodesic-distance weights on an image-gradient cost.

    Geodesic distances are computed per point with ``MCP_Geometric`` on a
    downscaled cost map (``side`` px long side), bilinearly upsampled, and
    cached per point so nested guidance sets (the first 1, 3, 5, ... points of
    one draw) pay for each point once.

    Weights, with d in cost-map pixels: w_i = 1 / (d_i + offset)^power. With
    ``rest`` set, an implicit zero-motion option of weight
    1 / (rest * side + offset)^power joins the blend (the world is still far from
    every point; without it one moving point moves the whole image). With
    ``offset`` 0 and no ``rest`` the blend is scale-free and interpolating: a
    point's own pixel takes its vector. ``cost``: the step cost map to use instead of the
    image's colour edges (:func:`edge_cost` of another edge map, e.g. the true flow's in
    ``benchmarks/motion_oracle.py``); ``side``, ``edge_weight`` and ``percentile`` then do
    nothing.
    """

    def __init__(self, rgb: np.ndarray, *, side: int = GEO_SIDE, edge_weight: float = GEO_EDGE_WEIGHT,
                 power: float = GEO_POWER, percentile: float = 95.0, offset: float = 0.0,
                 rest: float | None = None, cache_size: int = 64, cost: np.ndarray | None = None):
        self.shape = tuple(np.asarray(rgb).shape[:2])
        self.cost = gradient_cost(rgb, side, edge_weight, percentile=percentile) if cost is None else \
            np.asarray(cost, np.float64)
        self.power, self.offset, self.rest = power, offset, rest
        self._mcp = MCP_Geometric(self.cost, fully_connected=True)
        self._cache: LRUCache[tuple[int, int], np.ndarray] = LRUCache(cache_size)

    def distance(self, x: float, y: float) -> np.ndarray:
        """(H, W) float32 geodesic distance from pixel (x, y), in cost-map pixels; 0 at (x, y)."""
        h, w = self.shape
        xi, yi = int(np.clip(round(x), 0, w - 1)), int(np.clip(round(y), 0, h - 1))
        key = (xi, yi)
        if (d := self._cache.get(key)) is not None:
            return d
        ch, cw = self.cost.shape
        r = min(ch - 1, int((yi + 0.5) * ch / h))  # the cost cell holding the pixel centre
        c = min(cw - 1, int((xi + 0.5) * cw / w))
        costs, _ = self._mcp.find_costs([(r, c)])
        d = costs.astype(np.float32)
        if (ch, cw) != (h, w):
            d = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
        d[yi, xi] = 0.0
        self._cache[key] = d
        return d

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(N, 4) guidance (x, y, dx, dy) in image pixels -> (H, W, 2) float32 flow."""
        points = _points(points)
        if len(points) == 0:
            return zero_flow(points, self.shape)
        dists = np.stack([self.distance(x, y) for x, y in points[:, :2]])
        if self.offset == 0.0 and self.rest is None:
            return inverse_distance_blend(points, dists, self.power)
        w = (dists.astype(np.float64) + self.offset) ** -self.power
        num = np.einsum("nhw,nc->hwc", w, points[:, 2:])
        den = w.sum(0)
        if self.rest is not None:
            den = den + (self.rest * max(self.cost.shape) + self.offset) ** -self.power
        return (num / den[..., None]).astype(np.float32)


class GeodesicPropagator:
    """:class:`GeodesicBlend` behind the engine's interface (``set_image`` /
    ``propagate_batch``), so the segmentation recipe runs on it unchanged.

    The defaults (cost at the model's input size, gradient over its 99th percentile,
    offset 1 px, a still "rest" option at a quarter of the side) were picked on
    training composites (seeds 100-109), never on evaluation images.
    """

    def __init__(self, side: int = 384, *, edge_weight: float = GEO_EDGE_WEIGHT, power: float = GEO_POWER,
                 rest: float | None = 0.25, images: int = 8):
        self.side = side
        self._kw = {"side": side, "edge_weight": edge_weight, "power": power, "percentile": 99.0,
                    "offset": 1.0, "rest": rest, "cache_size": 256}
        self._blends: LRUCache[str, GeodesicBlend] = LRUCache(images)

    def set_image(self, rgb: np.ndarray):
        from ..engine import ImageHandle, image_key

        key = image_key(rgb)
        if self._blends.get(key) is None:
            self._blends[key] = GeodesicBlend(rgb, **self._kw)
        return ImageHandle(key, rgb.shape[0], rgb.shape[1], self.side)

    def propagate_batch(self, handle, guidance_sets, **_ignored) -> np.ndarray:
        blend = self._blends[handle.key]
        return np.stack([blend(p) for p in guidance_sets])
