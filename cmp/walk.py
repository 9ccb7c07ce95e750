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
caches (:meth:`cmp.engine.Engine.embedding`), pooled to a quarter of the model's input size.

Settings chosen on the tuning sets and kept by a rule written before the evaluation sets
were run (the model card's log, "The object as a random walk on the embedding"). Opt-in
(``cmp.segment.segment(..., walk=True)``, ``python -m cmp segment --walk``): it costs about
18 ms per view, too much for the Segment page's click (:data:`cmp.segment.DEFAULT_WALK`). Arrays:
scores (h, w) float32 in [0, 1] in the view's pixels; clicks (N, 2) (x, y) in its pixels.
Never imports Gradio.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: The walk's edge weights are exp(-SHARPNESS x beta x |E(p) - E(q)|^2) between
#: 4-neighbours, beta being the model's own feature weight (its blend's logits are
#: -beta |E(p) - e_i|^2).
WALK_SHARPNESS = 4.0
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
_EPS = 1e-6


@dataclass(frozen=True)
class Embedding:
    """What the walk reads of an image the engine has cached: the model's per-pixel
    embedding (D, h, w) float32 at 1/2 of the model's input, ``inner`` (h, w) of it covering
    the image (the rest is padding), and the model's feature weight ``beta``."""

    values: np.ndarray
    inner: tuple[int, int]
    beta: float


def _square(labels: np.ndarray, x: int, y: int, r: int, value: int) -> None:
    labels[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1] = value


def walk_probability(grid: np.ndarray, beta: float, positive: np.ndarray, negative: np.ndarray, *,
                     sharpness: float = WALK_SHARPNESS, border: bool = True,
                     clearance: float = WALK_BORDER_CLEARANCE) -> np.ndarray:
    """The chance (h, w) float32 that a walk from each cell of ``grid`` ((D, h, w) features)
    reaches a positive seed before a negative one. Seeds are integer (x, y) cells; ``border``
    makes the grid's border negative away from the positive seeds. Positive seeds are marked
    last: a cell in both squares belongs to the click that says "object".

    The chance is harmonic between the seeds: the Dirichlet problem L_uu x_u = -L_us x_s of the
    graph Laplacian L over the unseeded cells u, solved by SuperLU in its symmetric mode
    (:func:`scipy.sparse.linalg.splu`). The system is built for the unseeded cells directly:
    :func:`skimage.segmentation.random_walker` gives the same chances (to 0.02, with ``beta``
    = sharpness x beta x 10 std sqrt(D) and its own weight floor) in about twice the time
    (28-31 ms against 14.5 for the solve on a 96 x 96 grid, this project's 2-core CPU), and
    a click has 50 ms."""
    import scipy.sparse as sp  # here, not at import: 50 ms of every start-up, for an opt-in
    import scipy.sparse.linalg as spla

    d, h, w = grid.shape
    n = h * w
    labels = np.full((h, w), -1, np.int8)  # -1 unknown, 0 background, 1 object
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
    lab = labels.ravel()
    if not (lab == 1).any():
        return np.zeros((h, w), np.float32)
    if not (lab == 0).any():
        return np.ones((h, w), np.float32)
    # 4-neighbour edges (i, j) and their weights
    idx = np.arange(n).reshape(h, w)
    g = grid.astype(np.float64, copy=False)
    d2 = np.concatenate([((g[:, 1:, :] - g[:, :-1, :]) ** 2).sum(0).ravel(),
                         ((g[:, :, 1:] - g[:, :, :-1]) ** 2).sum(0).ravel()])
    i = np.concatenate([idx[1:, :].ravel(), idx[:, 1:].ravel()])
    j = np.concatenate([idx[:-1, :].ravel(), idx[:, :-1].ravel()])
    wt = np.exp(-sharpness * beta * d2) + _EPS
    unknown = lab < 0
    m = np.cumsum(unknown) - 1  # index of each unseeded cell among them
    nu = int(unknown.sum())
    if nu == 0:
        return (labels == 1).astype(np.float32)
    deg = np.bincount(i, wt, n) + np.bincount(j, wt, n)
    both = unknown[i] & unknown[j]
    rows = np.concatenate([m[i[both]], m[j[both]], np.arange(nu)])
    cols = np.concatenate([m[j[both]], m[i[both]], np.arange(nu)])
    a = sp.csc_matrix((np.concatenate([-wt[both], -wt[both], deg[unknown]]), (rows, cols)), shape=(nu, nu))
    obj = (lab == 1).astype(np.float64)
    rhs = np.zeros(nu)
    for u, s in ((i, j), (j, i)):  # an unseeded cell next to a seeded one: its weight x the seed's value
        cut = unknown[u] & ~unknown[s]
        rhs += np.bincount(m[u[cut]], wt[cut] * obj[s[cut]], nu)
    out = obj.copy()
    # L_uu is symmetric positive definite: LU in SuperLU's symmetric mode (no row pivoting)
    lu = spla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    out[unknown] = lu.solve(rhs)
    return np.clip(out, 0.0, 1.0).reshape(h, w).astype(np.float32)


def walk_score(engine, handle, positive, negative, *, first: bool, border: bool = True) -> np.ndarray | None:
    """The walk's score (h, w) float32 in [0, 1] in the pixels of the view ``handle`` holds
    (see the module docstring), or None when ``engine`` has no embedding to walk on (the
    original's decoder, a classical propagator): the caller keeps the probes' score then.
    ``positive`` / ``negative``: (x, y) in the view's pixels, the frame's still points among
    the negatives; ``first``: the object's first click (the level :data:`WALK_LEVEL_FIRST`);
    ``border``: the view's border is background (as the frame's still points say)."""
    embedding = getattr(engine, "embedding", None)
    emb = embedding(handle) if embedding is not None else None
    if emb is None:
        return None
    tf = handle.transform
    d, h2, w2 = emb.values.shape
    hh, ww = emb.inner
    grid = emb.values[:, :hh, :ww]
    if WALK_POOL > 1:
        grid = F.avg_pool2d(torch.from_numpy(grid)[None], WALK_POOL, ceil_mode=True)[0].numpy()
    gh, gw = grid.shape[1:]
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

    p = walk_probability(grid, emb.beta, cells(positive), cells(negative), border=border)
    t = torch.from_numpy(p)[None, None]
    if WALK_POOL > 1:
        t = F.interpolate(t, scale_factor=WALK_POOL, mode="bilinear", align_corners=False)
    full = torch.zeros((1, 1, h2, w2))
    full[..., :hh, :ww] = t[..., :hh, :ww]
    score = tf.unapply_map(F.interpolate(full, size=(H, W), mode="bilinear", align_corners=True)[0, 0].numpy())
    level = WALK_LEVEL_FIRST if first else WALK_LEVEL_LATER
    return np.clip(score * (0.5 / level), 0.0, 1.0).astype(np.float32)
