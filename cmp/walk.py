"""The object a click marks, read as a random walk on the model's embedding.

The probes of :mod:`cmp.segment` ask the model what moves with a click: each pixel follows
the click or a still point by how much its embedding looks like theirs and how near it
is. A large object made of parts (a plant's leaves, a motorcycle's wheels) then breaks
up: a far part looks more like the still border near it than like the clicked one. A
random walk (Grady, 2006) groups by connection instead: a walker set off at a pixel moves
to a neighbour with a probability that falls with their embedding distance, and the score
of a pixel is the chance that it reaches a positive click before a negative one or the
view's border. Parts joined to the clicked one through similar neighbours come along;
what an edge of the embedding cuts off does not. The walk runs on the embedding the engine
caches (:meth:`cmp.engine.Engine.embedding`), pooled to a quarter of the model's input size;
its edge weights are computed once per image and kept beside its features
(:meth:`cmp.engine.Engine.walk_graph`), and the sparse solve reuses one symbolic
factorization per grid shape (:class:`_GridFactor`): about 8 ms per view on this project's
2-core CPU.

Settings chosen on the tuning sets and kept by a rule written before the evaluation sets
were run (the model card's log, "The object as a random walk on the embedding"); the default
of :func:`cmp.segment.segment` since the solve became cheap enough for the Segment page's
click (:data:`cmp.segment.DEFAULT_WALK`; the log's "The walk as the default"). Arrays:
scores (h, w) float32 in [0, 1] in the view's pixels; clicks (N, 2) (x, y) in its pixels.
Never imports Gradio.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from cachetools import LRUCache

from .model.config import AffinityHead

#: The walk's edge weights are exp(-SHARPNESS x beta x |E(p) - E(q)|^2) between
#: 4-neighbours, beta being the model's own feature weight (its blend's logits are
#: -beta |E(p) - e_i|^2). This is the default; a model's config may name its own
#: (:attr:`cmp.model.AffinityHead.walk_sharpness`, carried by :class:`Embedding`).
WALK_SHARPNESS = AffinityHead.walk_sharpness
#: The embedding (1/2 of the model's input) is average-pooled by this much before the walk.
WALK_POOL = 2
#: Seeds are squares of (2 r + 1)^2 cells of the pooled grid: a single cell barely holds a
#: walk on a 2-D grid (its chance of being reached falls towards zero). Positive clicks
#: take r = 1; negative clicks and the frame's still points r = 2.
WALK_POSITIVE_RADIUS = 1
WALK_NEGATIVE_RADIUS = 2
#: The view's whole border is background, except within this share of its long side of a
#: positive click (the object may touch the border there).
WALK_BORDER_CLEARANCE = 0.1
#: The chance of reaching a positive click that counts as the object: the object's first
#: click has the border alone against it, so less is enough; later clicks have negative
#: ones too. The score is rescaled so that this level is 0.5, the masks' threshold.
WALK_LEVEL_FIRST = 0.2
WALK_LEVEL_LATER = 0.35
#: The weights' floor: cut edges stay solvable.
WALK_WEIGHT_FLOOR = 1e-6


@dataclass(frozen=True)
class Embedding:
    """What the walk reads of an image the engine has cached: the model's per-pixel
    embedding (D, h, w) float32 at 1/2 of the model's input, ``inner`` (h, w) of it covering
    the image (the rest is padding), the model's feature weight ``beta`` and the sharpness its
    config names for the walk (:data:`WALK_SHARPNESS` unless it names one)."""

    values: np.ndarray
    inner: tuple[int, int]
    beta: float
    sharpness: float = WALK_SHARPNESS


def _square(labels: np.ndarray, x: int, y: int, r: int, value: int) -> None:
    labels[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1] = value


@dataclass(frozen=True)
class WalkGraph:
    """The walk's grid of an image: the edge weights between 4-neighbours of the pooled
    embedding, ``right`` (h, w - 1) between (y, x) and (y, x + 1), ``down`` (h - 1, w) between
    (y, x) and (y + 1, x), float64; ``size`` (h2, w2) of the embedding it was pooled from and
    ``inner`` (hh, ww) of that covering the image. It depends on the image alone, so the
    engine keeps it beside the image's features (:meth:`cmp.engine.Engine.walk_graph`)."""

    right: np.ndarray
    down: np.ndarray
    size: tuple[int, int]
    inner: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.right.shape[0], self.down.shape[1]

    @staticmethod
    def nbytes_for(h2: int, w2: int) -> int:
        """Bytes of the graph of an embedding (h2, w2) (at most; the inner part is smaller)."""
        gh, gw = -(-h2 // WALK_POOL), -(-w2 // WALK_POOL)
        return 8 * (gh * (gw - 1) + (gh - 1) * gw)


def edge_weights(grid: np.ndarray, beta: float, sharpness: float = WALK_SHARPNESS) -> tuple[np.ndarray, np.ndarray]:
    """(right, down) weights exp(-sharpness x beta x |E(p) - E(q)|^2) + a floor of the features
    ``grid`` (D, h, w); see :class:`WalkGraph`."""
    g = grid.astype(np.float64, copy=False)
    right = np.exp(-sharpness * beta * ((g[:, :, 1:] - g[:, :, :-1]) ** 2).sum(0)) + WALK_WEIGHT_FLOOR
    down = np.exp(-sharpness * beta * ((g[:, 1:, :] - g[:, :-1, :]) ** 2).sum(0)) + WALK_WEIGHT_FLOOR
    return right, down


def walk_graph(emb: Embedding) -> WalkGraph:
    """The walk's graph of an :class:`Embedding`: the part covering the image, average-pooled
    by :data:`WALK_POOL`, its edge weights at the embedding's sharpness."""
    hh, ww = emb.inner
    grid = np.ascontiguousarray(emb.values[:, :hh, :ww])
    if WALK_POOL > 1:
        grid = F.avg_pool2d(torch.from_numpy(grid)[None], WALK_POOL, ceil_mode=True)[0].numpy()
    right, down = edge_weights(grid, emb.beta, emb.sharpness)
    return WalkGraph(right, down, tuple(emb.values.shape[1:]), (hh, ww))


class _GridFactor:
    """The LDL^T factorization (:mod:`qdldl`) of one grid shape's Dirichlet systems. Every
    system of an h x w grid has the same sparsity: seeded cells keep their row, as 1 on the
    diagonal and explicit zeros beside it, so the fill-reducing ordering and the symbolic
    factorization are computed once per shape and each walk only refactors the numbers
    (``update``): 6 ms on a 96 x 96 grid against 20 for SuperLU's whole factorization on the
    unseeded cells alone (this project's 2-core CPU), the same chances. One walk at a time."""

    def __init__(self, h: int, w: int):
        import scipy.sparse as sp  # here, not at import: the walk's start-up cost is paid by its first use

        n = h * w
        idx = np.arange(n).reshape(h, w)
        # the upper triangle: the diagonal, then each cell with its right and lower neighbour
        rows = np.concatenate([np.arange(n), idx[:, :-1].ravel(), idx[:-1, :].ravel()])
        cols = np.concatenate([np.arange(n), idx[:, 1:].ravel(), idx[1:, :].ravel()])
        order = sp.csc_matrix((np.arange(1, len(rows) + 1, dtype=np.float64), (rows, cols)), shape=(n, n))
        self.n, self.indices, self.indptr = n, order.indices, order.indptr
        self.take = order.data.astype(np.int64) - 1  # CSC position -> position in (diagonal, right, down)
        self.solver = None
        self.lock = threading.Lock()

    def solve(self, values: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        import qdldl
        import scipy.sparse as sp

        a = sp.csc_matrix((values[self.take], self.indices, self.indptr), shape=(self.n, self.n))
        with self.lock:
            if self.solver is None:
                self.solver = qdldl.Solver(a, upper=True)
            else:
                self.solver.update(a, upper=True)
            return self.solver.solve(rhs)


_FACTORS: LRUCache = LRUCache(8)
_FACTORS_LOCK = threading.Lock()


def _factor(h: int, w: int) -> _GridFactor:
    with _FACTORS_LOCK:
        f = _FACTORS.get((h, w))
        if f is None:
            f = _FACTORS[(h, w)] = _GridFactor(h, w)
        return f


def seed_labels(h: int, w: int, positive: np.ndarray, negative: np.ndarray, *, border: bool = True,
                clearance: float = WALK_BORDER_CLEARANCE) -> np.ndarray:
    """(h, w) int8: 1 a positive seed, 0 a negative one, -1 unseeded (see :func:`walk_probability`)."""
    labels = np.full((h, w), -1, np.int8)
    if border:
        edge = np.zeros((h, w), bool)
        edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
        yy, xx = np.mgrid[:h, :w]
        for x, y in positive:
            edge &= (yy - y) ** 2 + (xx - x) ** 2 > (clearance * max(h, w)) ** 2
        labels[edge] = 0
    for x, y in negative:
        _square(labels, int(x), int(y), WALK_NEGATIVE_RADIUS, 0)
    for x, y in positive:
        _square(labels, int(x), int(y), WALK_POSITIVE_RADIUS, 1)
    return labels


def solve_walk(right: np.ndarray, down: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The chance (h, w) float32 that a walk from each cell reaches a cell labelled 1 before one
    labelled 0 (:func:`seed_labels`), on the grid with edge weights ``right`` / ``down``.

    The chance is harmonic between the seeds: the Dirichlet problem L_uu x_u = -L_us x_s of the
    graph Laplacian L over the unseeded cells u, solved on the whole grid with each seeded cell's
    row set to x_s (:class:`_GridFactor`). :func:`skimage.segmentation.random_walker` gives the
    same chances (to 0.02, with ``beta`` = sharpness x beta x 10 std sqrt(D) and its own weight
    floor) in about five times the time."""
    h, w = labels.shape
    lab = labels.ravel()
    if not (lab == 1).any():
        return np.zeros((h, w), np.float32)
    if not (lab == 0).any():
        return np.ones((h, w), np.float32)
    if not (labels < 0).any():
        return (labels == 1).astype(np.float32)
    values, rhs = walk_system(right, down, labels)
    return np.clip(solve_system(values, rhs, (h, w)), 0.0, 1.0).astype(np.float32)


def solve_system(values: np.ndarray, rhs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """x (h, w) of the grid ``shape``'s system A x = ``rhs`` (h x w flattened), A given by ``values``
    in :func:`walk_system`'s layout; one factorization per grid shape (:class:`_GridFactor`)."""
    return _factor(*shape).solve(values, rhs).reshape(shape)


def walk_system(right: np.ndarray, down: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Dirichlet system :func:`solve_walk` solves: ``values`` (the diagonal, then the right and
    the down neighbours' entries, each flattened: :class:`_GridFactor`'s layout) and ``rhs`` (the
    grid flattened). Seeded rows are 1 on the diagonal (their value on the right-hand side) and 0
    beside it, so the matrix is symmetric and the same one answers the adjoint problem
    (:func:`cmp.train.losses.walk_solve_loss`)."""
    unknown = labels < 0
    obj = (labels == 1).astype(np.float64)
    deg = np.zeros(labels.shape)
    deg[:, 1:] += right
    deg[:, :-1] += right
    deg[1:, :] += down
    deg[:-1, :] += down
    # an unseeded cell next to a seeded one: the edge's weight x the seed's value, on the right-hand side
    rhs = np.zeros(labels.shape)
    rhs[:, 1:] += right * obj[:, :-1]
    rhs[:, :-1] += right * obj[:, 1:]
    rhs[1:, :] += down * obj[:-1, :]
    rhs[:-1, :] += down * obj[1:, :]
    rhs = np.where(unknown, rhs, obj)
    diag = np.where(unknown, deg, 1.0)
    off_right = -right * (unknown[:, 1:] & unknown[:, :-1])  # edges between unseeded cells only
    off_down = -down * (unknown[1:, :] & unknown[:-1, :])
    return np.concatenate([diag.ravel(), off_right.ravel(), off_down.ravel()]), rhs.ravel()


def walk_probability(grid: np.ndarray, beta: float, positive: np.ndarray, negative: np.ndarray, *,
                     sharpness: float = WALK_SHARPNESS, border: bool = True,
                     clearance: float = WALK_BORDER_CLEARANCE) -> np.ndarray:
    """The chance (h, w) float32 that a walk from each cell of ``grid`` ((D, h, w) features)
    reaches a positive seed before a negative one. Seeds are integer (x, y) cells; ``border``
    makes the grid's border negative away from the positive seeds. Positive seeds are marked
    last: a cell in both squares belongs to the click that says "object" (:func:`seed_labels`,
    :func:`solve_walk`)."""
    _, h, w = grid.shape
    right, down = edge_weights(grid, beta, sharpness)
    return solve_walk(right, down, seed_labels(h, w, positive, negative, border=border, clearance=clearance))


def walk_score(engine, handle, positive, negative, *, first: bool, border: bool = True) -> np.ndarray | None:
    """The walk's score (h, w) float32 in [0, 1] in the pixels of the view ``handle`` holds
    (see the module docstring), or None when ``engine`` has no embedding to walk on (no
    ``walk_graph``, or None from it: the original's decoder, a classical propagator): the
    caller keeps the probes' score then.
    ``positive`` / ``negative``: (x, y) in the view's pixels, the frame's still points among
    the negatives; ``first``: the object's first click (the level :data:`WALK_LEVEL_FIRST`);
    ``border``: the view's border is background (as the frame's still points say)."""
    graph_of = getattr(engine, "walk_graph", None)
    graph = graph_of(handle) if graph_of is not None else None
    if graph is None:
        return None
    tf = handle.transform
    h2, w2 = graph.size
    hh, ww = graph.inner
    gh, gw = graph.shape
    H, W = tf.model_size
    # model-input pixel -> embedding pixel (align_corners: the blend's own reading) -> pooled cell
    sy, sx = (h2 - 1) / max(H - 1, 1) / WALK_POOL, (w2 - 1) / max(W - 1, 1) / WALK_POOL

    def cells(points) -> np.ndarray:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2), np.int64)
        m = tf.apply_points(pts)
        return np.stack([np.clip(np.round(m[:, 0] * sx), 0, gw - 1),
                         np.clip(np.round(m[:, 1] * sy), 0, gh - 1)], 1).astype(np.int64)

    p = solve_walk(graph.right, graph.down, seed_labels(gh, gw, cells(positive), cells(negative), border=border))
    t = torch.from_numpy(p)[None, None]
    if WALK_POOL > 1:
        t = F.interpolate(t, scale_factor=WALK_POOL, mode="bilinear", align_corners=False)
    full = torch.zeros((1, 1, h2, w2))
    full[..., :hh, :ww] = t[..., :hh, :ww]
    score = tf.unapply_map(F.interpolate(full, size=(H, W), mode="bilinear", align_corners=True)[0, 0].numpy())
    level = WALK_LEVEL_FIRST if first else WALK_LEVEL_LATER
    return np.clip(score * (0.5 / level), 0.0, 1.0).astype(np.float32)
