"""Training losses, one place for each kind of network output.

Decoder (bin) models: CMP's discrete-bin cross-entropy, plus optionally an
end-point-error term on the expected flow. Affinity models output flow
directly and train on the end-point error.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..clicks import next_click
from ..model import BinHead, CMPConfig
from ..walk import (WALK_BORDER_CLEARANCE, WALK_LEVEL_FIRST, WALK_LEVEL_LATER, WALK_POOL, WALK_SHARPNESS,
                    WALK_WEIGHT_FLOOR, seed_labels, solve_system, walk_system)


def discrete_loss(logits: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, num_bins: int,
                  fmax: float, full_resolution: bool = False) -> torch.Tensor:
    """CMP's loss: per axis, cross-entropy over bins of the clamped target flow, masked by ``valid``.

    The original upsamples the 198 logit channels to the target size
    (``full_resolution=True``). By default we instead average-pool the target to
    the logit grid (1/2) and keep a pixel only if its whole 2x2 cell is valid:
    the same objective at 4x fewer positions, measured 2x faster per step here.
    """
    if full_resolution:
        logits = F.interpolate(logits.float(), size=flow.shape[-2:], mode="bilinear", align_corners=True)
    else:
        logits = logits.float()
        flow = F.adaptive_avg_pool2d(flow, logits.shape[-2:])
        valid = F.adaptive_max_pool2d((~valid).float()[:, None], logits.shape[-2:])[:, 0] == 0
    step = 2 * fmax / num_bins
    target = ((flow.clamp(-fmax + 1e-3, fmax - 1e-3) + fmax) / step).floor().long().clamp(0, num_bins - 1)
    m = valid.float()
    denom = m.sum().clamp_min(1.0)
    lx = F.cross_entropy(logits[:, :num_bins], target[:, 0], reduction="none")
    ly = F.cross_entropy(logits[:, num_bins:], target[:, 1], reduction="none")
    return ((lx + ly) * m).sum() / denom


def expected_flow_epe(logits: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, num_bins: int,
                      fmax: float) -> torch.Tensor:
    """Mean end-point error of the expected flow over bins, at the logit grid (1/2).

    The bin cross-entropy alone learned the static prior first and ignored the
    guidance for >1k steps here; this term rewards following the guidance directly.
    """
    logits = logits.float()
    centers = BinHead(num_bins=num_bins, fmax=fmax).bin_centers(logits.device)
    fx = (logits[:, :num_bins].softmax(1) * centers.view(1, -1, 1, 1)).sum(1)
    fy = (logits[:, num_bins:].softmax(1) * centers.view(1, -1, 1, 1)).sum(1)
    tgt = F.adaptive_avg_pool2d(flow, logits.shape[-2:]).clamp(-fmax, fmax)
    v = F.adaptive_max_pool2d((~valid).float()[:, None], logits.shape[-2:])[:, 0] == 0
    epe = torch.sqrt((fx - tgt[:, 0]) ** 2 + (fy - tgt[:, 1]) ** 2 + 1e-6)
    return (epe * v).sum() / v.sum().clamp_min(1.0)


def epe_loss(flow_half: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean end-point error of a flow at any resolution, upsampled to the target's, over valid pixels."""
    pred = F.interpolate(flow_half.float(), size=flow.shape[-2:], mode="bilinear", align_corners=True)
    epe = torch.sqrt(((pred - flow) ** 2).sum(1) + 1e-6)
    m = valid.float()
    return (epe * m).sum() / m.sum().clamp_min(1.0)


#: :func:`walk_affinity_loss`: two neighbouring cells whose flows differ by ``sigma`` px (model-input
#: pixels) are "together" with weight exp(-1/2); by 3 sigma, apart.
WALK_LOSS_SIGMA = 1.0
#: ... and count as "together" only where one of them moves at least this much (model-input px):
#: two still cells say nothing of whether they are one object (a still cup on a still table).
WALK_LOSS_MIN_MOTION = 1.0


#: The layer-map targets of ``--walk-target`` and the :func:`walk_layer_loss` options each names: the layers
#: alone, with a cut-out's thin parts joined to it, with the cuts across a mixed cell, or with those cuts weighed
#: as much as all the joins.
LAYER_TARGETS = {"layers": {}, "layers-thin": {"thin": True}, "layers-across": {"across": True},
                 "layers-balanced": {"across": True, "balanced": True}}
#: What ``python -m cmp train --walk-target`` can fit the walk to: the training flow
#: (:func:`walk_affinity_loss`) or the synthetic scenes' layer map (:func:`walk_layer_loss`).
WALK_TARGETS = ("flow", *LAYER_TARGETS)


def walk_affinity_loss(embed: torch.Tensor, beta: torch.Tensor | float, flow: torch.Tensor, valid: torch.Tensor, *,
                       sigma: float = WALK_LOSS_SIGMA, min_motion: float = WALK_LOSS_MIN_MOTION) -> torch.Tensor:
    """How far the random walk's edge weights (:mod:`cmp.walk`) are from the motion they should follow.

    ``embed`` (B, D, H/2, W/2): the model's embedding of the batch; ``beta``: its feature weight
    (the walk's and the blend's; detach it to leave the blend's scale alone); ``flow`` (B, 2, H, W)
    and ``valid`` (B, H, W): the training target. On the walk's grid (the embedding average-pooled
    by :data:`cmp.walk.WALK_POOL`, the flow pooled to the same cells, a cell valid only when all its
    pixels are) each pair of 4-neighbours has the walk's weight a = exp(-WALK_SHARPNESS x beta x
    |dE|^2) and a target t = exp(-|df|^2 / (2 sigma^2)) from the difference of their flows: cells
    that move together should be joined, cells across a motion border cut. The loss is the binary
    cross-entropy of a against t, averaged over the valid pairs, its "together" side (weight t)
    only where one of the two cells moves at least ``min_motion`` px: motion tells objects apart
    where they move differently, and says nothing where nothing moves. (Not balanced between the
    two sides: normalising the rare "apart" side by its own weight asks for cuts wherever t is
    lowest, even inside one smoothly moving object.) Self-supervised: it reads the training flow
    and nothing else."""
    shape, edges = _walk_edges(embed, beta)
    f = F.adaptive_avg_pool2d(flow.float(), shape)
    v = F.adaptive_max_pool2d((~valid).float()[:, None], shape)[:, 0] == 0
    moves = f.pow(2).sum(1) >= min_motion ** 2
    total, count = 0.0, 0.0
    for dim, n, x in edges:
        df = (f.narrow(dim, 1, n) - f.narrow(dim, 0, n)).pow(2).sum(1)
        both = (v.narrow(dim, 1, n) & v.narrow(dim, 0, n)).float()
        moving = (moves.narrow(dim, 1, n) | moves.narrow(dim, 0, n)).float()
        t = torch.exp(-df / (2 * sigma ** 2)) * both
        total = total + (x * t * moving + _cut_cost(x) * (both - t)).sum()
        count = count + both.sum()
    return total / torch.as_tensor(count).clamp_min(1.0)


def walk_layer_loss(embed: torch.Tensor, beta: torch.Tensor | float, labels: torch.Tensor, *,
                    thin: bool = False, across: bool = False, balanced: bool = False) -> torch.Tensor:
    """How far the random walk's edge weights are from a synthetic scene's layers.

    ``labels`` (B, H, W): the layer each pixel shows (0 the background, k >= 1 the k-th cut-out,
    -1 unknown, as for video pairs). On the walk's grid (as :func:`walk_affinity_loss`) a cell
    has a layer only when all its pixels show the same one. Two neighbouring cells of one
    cut-out should be joined (target 1), two of different layers cut (target 0); the loss is
    the binary cross-entropy of the walk's weight against that, averaged over those pairs. Two
    background cells count for nothing: the background is a whole photo with objects of its
    own, and "one layer" there would teach the walk to join across real borders. A cut-out in
    parts (:func:`cmp.scenes.synthetic.make_scene`'s ``parts_prob``) is one layer, so its
    differently textured parts should be joined: parts that move together are one object.
    No human label enters: the layer map is what the scene's exact flow is made from.

    ``thin``: a cell that shows one cut-out and the background, and nothing else, also belongs
    to that cut-out for the "together" pairs (never for "apart"). A part narrower than a cell
    (a stem, a leaf's tip, a spoke) only ever lies in such mixed cells; without this nothing
    asks the walk to keep it joined to its object.

    ``across``: a border seldom lies on the cell grid, so a pure cell of one layer and a pure
    cell of another are seldom neighbours, and "apart" pairs are rare beside "together" ones.
    Along rows and columns, every pure - mixed - pure run of three cells of two layers also
    counts as one "apart" case: its two-step path a1 a2 should be cut (-log(1 - a1 a2)), on
    whichever of the two edges the network chooses.

    ``balanced``: the joins' mean and the cuts' mean count equally (joins outnumber cuts about
    ten to one even with ``across``); otherwise every case counts once."""
    shape, edges = _walk_edges(embed, beta)
    lab = labels.float()[:, None]
    hi, lo = _grid_layers(labels, shape)
    known = (hi == lo) & (hi >= 0)
    holds = known & (hi > 0)  # cells that belong to a cut-out, for the "together" pairs
    if thin:  # ... or show one cut-out and the background only: the lowest cut-out label is the highest
        lo_cut = -F.adaptive_max_pool2d(-lab.masked_fill(lab <= 0, float(2 ** 20)), shape)[:, 0]
        holds = (lo >= 0) & (hi > 0) & (lo_cut == hi)
    join, n_join, cut, n_cut = 0.0, 0.0, 0.0, 0.0
    for dim, n, x in edges:
        both = known.narrow(dim, 1, n) & known.narrow(dim, 0, n)
        a, b = hi.narrow(dim, 1, n), hi.narrow(dim, 0, n)
        together = (holds.narrow(dim, 1, n) & holds.narrow(dim, 0, n) & (a == b)).float()
        apart = (both & (a != b)).float()
        join, n_join = join + (x * together).sum(), n_join + together.sum()
        cut, n_cut = cut + (_cut_cost(x) * apart).sum(), n_cut + apart.sum()
        if across and n > 1:
            cell = lambda t, k: t.narrow(dim, k, n - 1)  # noqa: E731 - the first, middle, last of a run of three
            run = (cell(known, 0) & cell(known, 2) & ~cell(known, 1) & (cell(lo, 1) >= 0)
                   & (cell(hi, 0) != cell(hi, 2))).float()
            path = x.narrow(dim, 0, n - 1) + x.narrow(dim, 1, n - 1)
            cut, n_cut = cut + (_cut_cost(path) * run).sum(), n_cut + run.sum()
    mean = lambda t, k: t / torch.as_tensor(k).clamp_min(1.0)  # noqa: E731
    if balanced:
        return 0.5 * (mean(join, n_join) + mean(cut, n_cut))
    return mean(join + cut, n_join + n_cut)


def _grid_layers(labels: torch.Tensor, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest and the lowest layer label (B, h, w) of the pixels of each cell of the walk's grid
    ``shape``: a cell shows one layer alone where they are equal."""
    lab = labels.float()[:, None]
    return F.adaptive_max_pool2d(lab, shape)[:, 0], -F.adaptive_max_pool2d(-lab, shape)[:, 0]


#: :func:`walk_solve_loss`: the walk's sharpness it is read at (the grouping model's, whose members
#: were trained at :data:`cmp.walk.WALK_SHARPNESS` and are read at this), the fewest cells of one
#: cut-out that make a sample count, and the exponent that maps the first click's level to 0.5.
WALK_SOLVE_SHARPNESS = 16.0
WALK_SOLVE_MIN_CELLS = 6
_SOLVE_EXPONENT = math.log(0.5) / math.log(1.0 - WALK_LEVEL_FIRST)
_SOLVE_EXPONENT_LATER = math.log(0.5) / math.log(1.0 - WALK_LEVEL_LATER)


class _WalkSolve(torch.autograd.Function):
    """The walk's chances (h, w) on one grid with edge weights ``right`` (h, w - 1) and ``down``
    (h - 1, w) and seeds ``labels`` (:func:`cmp.walk.seed_labels`), exactly, by the walk's own
    sparse solve (:func:`cmp.walk.walk_system`); differentiable in the weights. With A x = b the
    system and l the loss, the adjoint A y = dl/dx (A is symmetric; y is 0 at the seeds) gives
    dl/dw = -(y_p - y_q)(x_p - x_q) for the edge w between cells p and q."""

    @staticmethod
    def forward(ctx, right, down, labels):
        r, d = right.detach().double().cpu().numpy(), down.detach().double().cpu().numpy()
        values, rhs = walk_system(r, d, labels)
        x = solve_system(values, rhs, labels.shape)
        ctx.values, ctx.labels, ctx.x = values, labels, x
        return torch.from_numpy(x).to(right)

    @staticmethod
    def backward(ctx, grad):
        unknown = ctx.labels < 0
        g = np.where(unknown, grad.double().cpu().numpy(), 0.0)
        y = solve_system(ctx.values, g.ravel(), g.shape) * unknown
        x = ctx.x
        gr = -(y[:, 1:] - y[:, :-1]) * (x[:, 1:] - x[:, :-1])
        gd = -(y[1:, :] - y[:-1, :]) * (x[1:, :] - x[:-1, :])
        return torch.from_numpy(gr).to(grad), torch.from_numpy(gd).to(grad), None


def walk_solve(right: torch.Tensor, down: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """The chance (h, w) that a walk from each cell reaches a positive seed first (:class:`_WalkSolve`)."""
    return _WalkSolve.apply(right, down, labels)


def walk_solve_loss(embed: torch.Tensor, beta: torch.Tensor | float, labels: torch.Tensor, *, clicks: int = 1,
                    sharpness: float = WALK_SOLVE_SHARPNESS, min_cells: int = WALK_SOLVE_MIN_CELLS) -> torch.Tensor:
    """How far the random walk's answer to a first click is from the cut-out clicked.

    The other walk losses score each pair of neighbouring cells on its own; a flood is made by a
    few strong edges across a thin neck, which they count as one pair among thousands. This one
    reads the walk's solution: for each sample with a layer map (``labels`` as in
    :func:`walk_layer_loss`; video pairs add nothing), the cut-out with the most cells of its own
    on the walk's grid (at least ``min_cells``) is clicked at its deepest cell, the grid's border
    is background away from the click (:func:`cmp.walk.seed_labels`, as at inference), and the walk
    is solved exactly at the inference ``sharpness`` (:func:`walk_solve`). The chance p is mapped to
    q = 1 - (1 - p)^m with q = 0.5 at the first click's level (:data:`cmp.walk.WALK_LEVEL_FIRST`);
    the loss is the cross-entropy of q, the cut-out's own cells counting 1 and those of every other
    layer 0, the two sides weighed equally; cells of two layers do not count. Its gradient reaches
    every edge through the solve, most the edges a leak runs through. The solves run on the CPU
    (the walk's own sparse factorization), one sample at a time, whatever the model's device.

    ``clicks`` > 1: each answer is followed by the next click as the click protocol places it
    (:func:`cmp.clicks.next_click` on the cells of one layer: the deepest cell of the deeper error
    region, positive on the missed cut-out, negative on what joined it, never a cell twice),
    answered at the later clicks' level (:data:`cmp.walk.WALK_LEVEL_LATER`); the sample's loss is
    the mean over its clicks (an answer with nothing left to fix counts for the clicks it saves)."""
    shape, edges = _walk_edges(embed, beta)
    hi, lo = _grid_layers(labels, shape)
    pure = ((hi == lo) & (hi >= 0)).cpu().numpy()
    layer = hi.cpu().numpy().astype(np.int64)
    (_, _, x_r), (_, _, x_d) = edges
    scale = sharpness / WALK_SHARPNESS
    right = torch.exp(-scale * x_r.double()) + WALK_WEIGHT_FLOOR
    down = torch.exp(-scale * x_d.double()) + WALK_WEIGHT_FLOOR
    total, used = embed.new_zeros((), dtype=torch.float64), 0
    for b in range(labels.shape[0]):
        own = pure[b] & (layer[b] > 0)
        if not own.any():
            continue
        ids, counts = np.unique(layer[b][own], return_counts=True)
        if counts.max() < min_cells:
            continue
        k = ids[int(np.argmax(counts))]
        target = pure[b] & (layer[b] == k)
        other = pure[b] & (layer[b] != k)
        if not other.any():
            continue
        h, w = target.shape
        t, o = torch.from_numpy(target).to(right.device), torch.from_numpy(other).to(right.device)
        clicked = np.zeros_like(target)
        x0, y0, _ = next_click(target, np.zeros_like(target))
        pos, neg = [(x0, y0)], []
        clicked[y0, x0] = True
        for click in range(clicks):
            seeds = seed_labels(h, w, np.array(pos), np.array(neg).reshape(-1, 2), border=True,
                                clearance=WALK_BORDER_CLEARANCE)
            p = walk_solve(right[b], down[b], seeds).clamp(1e-6, 1.0 - 1e-6)
            exponent = _SOLVE_EXPONENT if click == 0 else _SOLVE_EXPONENT_LATER
            log_miss = exponent * torch.log1p(-p)  # log(1 - q), exact where the walk is sure (no clamp on q)
            log_hit = torch.log(-torch.expm1(log_miss))  # log q
            answer = 0.5 * (-log_hit[t].mean() - log_miss[o].mean())
            total = total + answer / clicks
            if click + 1 < clicks:  # the next click where the protocol puts it (cells of two layers never err)
                shown = (log_miss < math.log(0.5)).detach().cpu().numpy() & (target | other)
                nxt = next_click(target, shown, clicked)
                if nxt is None:  # nothing left to fix: this answer stands for the clicks left
                    total = total + answer * (clicks - click - 1) / clicks
                    break
                x, y, positive = nxt
                clicked[y, x] = True
                (pos if positive else neg).append((x, y))
        used += 1
    return (total / max(used, 1)).float()


def _cut_cost(x: torch.Tensor) -> torch.Tensor:
    """-log(1 - a) for a walk weight a = exp(-x): the cross-entropy of "cut" (a join costs x itself)."""
    return -torch.log(-torch.expm1(-x))


def _walk_edges(embed: torch.Tensor, beta: torch.Tensor | float):
    """The walk's grid size and, for right then down 4-neighbours, (dim, n, -log a) with a the walk's
    edge weight exp(-WALK_SHARPNESS x beta x |dE|^2) on the embedding pooled by :data:`cmp.walk.WALK_POOL`."""
    e = F.avg_pool2d(embed.float(), WALK_POOL, ceil_mode=True)
    edges = []
    for dim in (-1, -2):
        n = e.shape[dim] - 1
        de = (e.narrow(dim, 1, n) - e.narrow(dim, 0, n)).pow(2).sum(1)
        edges.append((dim, n, (WALK_SHARPNESS * beta * de).clamp_min(1e-6)))
    return e.shape[-2:], edges


def training_loss(cfg: CMPConfig, out: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, *,
                  epe_weight: float = 0.2) -> torch.Tensor:
    """The loss for a network of config ``cfg`` given its forward output ``out``."""
    head = cfg.head
    if not isinstance(head, BinHead):
        return epe_loss(out, flow, valid)
    loss = discrete_loss(out, flow, valid, head.num_bins, head.fmax)
    if epe_weight:
        loss = loss + epe_weight * expected_flow_epe(out, flow, valid, head.num_bins, head.fmax)
    return loss
