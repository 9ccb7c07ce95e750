"""Affinity propagation: a compact CMP whose decoder is an explicit, learned blend.

The original CMP decoder has to *learn* to carry a handful of isolated guidance
pixels across the image; on a 2-core CPU budget the slim copy of it never got
much past "zero motion" (see the model card). This variant keeps CMP's
contract (image + sparse motion -> dense motion, trained only from optical
flow) but makes propagation explicit:

* the image encoder (the same ResNet, output stride 8) plus its stem and
  layer1 skips give a per-pixel embedding ``E`` at 1/2 of the model input;
* every guidance point i (position q_i, motion v_i) reads its embedding
  e_i = E(q_i);
* pixel p takes the softmax-weighted mean of the guidance motions, with a
  learned "stay still" option of zero motion::

      a_i(p)  = -beta * |E(p) - e_i|^2 - alpha * |p - q_i|^2 / 64^2
      a_0(p)  = null(E(p)) + g . [log density, moving fraction]
      (learned per-pixel logit, shifted by two statistics of the guidance set:
      points per 64x64 px and the fraction that moves)
      flow(p) = sum_i softmax(a)_i(p) * v_i     (v_0 = 0)

  That is ``still_prior = 1`` (the first shipped model). With ``still_prior = 2``
  the "stay still" decision gets its own spatial decay and one more statistic::

      still(p) = sigmoid(a_0(p) + g_s * spread - logsumexp_i(-beta |E(p) - e_i|^2
                                                          - alpha_0 |p - q_i|^2 / 64^2))
      flow(p)  = (1 - still(p)) * sum_i softmax_i(a_i(p)) * v_i

  where ``spread`` is how widely the moving points cover the image and
  ``alpha_0 = softplus(log_alpha + d)``; at ``d = 0, g_s = 0`` this is exactly
  ``still_prior = 1``. With a small ``alpha_0`` a pixel stays still only when no
  guidance point *looks like it*, however far away the moving ones are: a
  stereo pair or a panning shot moves everywhere, while one click on an
  object still leaves a background that looks different from it alone.

With ``still=False`` (the "whole scene moves" mode, for camera motion) the stay-still
option is left out: every pixel takes the blend of the guidance alone, so one arrow pans
the whole picture and arrows on near and far things give layered parallax. Pins (zero
vectors) still hold what looks like them.

At inference the engine may combine the vectors by a local affine fit instead of their
mean (``blend="affine"``, :func:`local_affine`; its default in the whole-scene mode, while
objects on a still scene keep the mean): each pixel fits ``v(p) = c + B (p - m)``
to the guidance points with softened blend weights, so a few arrows on one surface give
its gradient (a receding floor, a rotation) rather than patches of the nearest arrow.
Training optimises the mean; with weights that pick one point the two agree.

Motion therefore stays inside whatever the embedding groups together, which is
what the self-supervised training teaches: pixels that moved together in the
training flows get close embeddings. Everything image-dependent (``E`` and the
null logits) is computed once per image; a guidance set costs one K x HW
distance matrix. Trained with the end-point error (no bins; see
:mod:`cmp.train.losses`).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import AffinityHead, CMPConfig
from .encoders import ResNetEncoder

#: Spatial distances are measured in units of this many model-input pixels.
SPATIAL_UNIT = 64.0
#: A guidance point "moves" when its vector is longer than this (model-input px).
MOVING_PX = 0.5
#: How guidance vectors are combined at a pixel: ``mean`` (the weighted mean, what training
#: optimises) or ``affine`` (a weighted affine fit, see :func:`local_affine`).
BLENDS = ("mean", "affine")
#: The affine fit's weights: the blend's feature and spatial terms divided by these (the
#: spatial term softer than the blend's own, so a fit reaches the other points on the same
#: surface), and the ridge on its gradient (in 1 / SPATIAL_UNIT^2). The engine fits only in
#: the whole-scene mode. Chosen on tuning sets (our composites, the training videos) and
#: kept moderate because wider fits, which our composites favour, lost on real sets: on
#: video with several moving things, and (8x softer) on the real stereo pair; see "A local
#: affine fit of the arrows" in the model card's log.
FIT_SOFTEN = (1.0, 2.0)
FIT_RIDGE = 0.05


def guidance_spread(ys: torch.Tensor, xs: torch.Tensor, moving: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """How widely the moving guidance points (``moving``: (K,) bool) cover an H x W image: RMS
    distance of the moving points from their centroid over that of a uniform spread over the
    image (about 1 for points strewn at random, 0 for one point or points on one spot)."""
    if int(moving.sum()) < 2:
        return torch.zeros((), dtype=torch.float32, device=ys.device)
    pts = torch.stack([xs[moving].float(), ys[moving].float()], dim=1)
    rms = (pts - pts.mean(dim=0)).pow(2).sum(dim=1).mean().sqrt()
    return rms / math.sqrt((H * H + W * W) / 12.0)


def local_affine(fit: torch.Tensor, share: torch.Tensor | None, ys: torch.Tensor, xs: torch.Tensor, vec: torch.Tensor,
                 size: tuple[int, int], grid: tuple[int, int], ridge: float = FIT_RIDGE) -> torch.Tensor:
    """Moving least squares: at each of the h x w ``grid`` pixels, the affine motion field
    ``v(p) = c + B (p - m)`` fitted to the K guidance vectors (``vec``, (K, 2), at rows ``ys``,
    columns ``xs`` of an input of ``size``) with that pixel's weights (``fit``, (K, h*w), any
    positive scale), ``ridge`` on ``B``; returns (2, h*w) = ``share`` (h*w; None = 1) x the fit
    at the pixel, each component kept within the guidance vectors' range.

    Where the weights pick one point this is that point's vector (the mean blend); where
    they reach several points of one surface it follows their gradient (a floor receding in
    a stereo pair, a rotation or a zoom drawn with a few arrows) instead of copying the
    nearest arrow. Moments in float64: a pixel's weights may all but vanish."""
    H, W = size
    h, w = grid
    fit = fit.double()
    fit = fit / fit.sum(0, keepdim=True).clamp_min(1e-300)
    qx, qy, v = xs.double() / SPATIAL_UNIT, ys.double() / SPATIAL_UNIT, vec.double()
    cols = [qx, qy, qx * qx, qx * qy, qy * qy, v[:, 0], v[:, 1], v[:, 0] * qx, v[:, 0] * qy, v[:, 1] * qx, v[:, 1] * qy]
    mx, my, mxx, mxy, myy, vx, vy, vxqx, vxqy, vyqx, vyqy = torch.stack(cols, 1).t() @ fit      # each (h*w,)
    cxx, cyy, cxy = mxx - mx * mx + ridge, myy - my * my + ridge, mxy - mx * my
    det = cxx * cyy - cxy * cxy
    py = (torch.arange(h, dtype=torch.float64, device=fit.device) * ((H - 1) / max(h - 1, 1)) / SPATIAL_UNIT)
    px = (torch.arange(w, dtype=torch.float64, device=fit.device) * ((W - 1) / max(w - 1, 1)) / SPATIAL_UNIT)
    dy = py[:, None].expand(h, w).reshape(-1) - my
    dx = px[None, :].expand(h, w).reshape(-1) - mx
    out = []
    for c, sx, sy in ((vx, vxqx - vx * mx, vxqy - vx * my), (vy, vyqx - vy * mx, vyqy - vy * my)):
        bx, by = (cyy * sx - cxy * sy) / det, (cxx * sy - cxy * sx) / det
        out.append(c + bx * dx + by * dy)
    flow = torch.stack(out).clamp(v.min(0).values[:, None], v.max(0).values[:, None])
    return (flow if share is None else flow * share.double()).float()


class AffinityFeatures(NamedTuple):
    """Per-image cache: embedding (B, D, H/2, W/2) fp32, null logits (B, 1, H/2, W/2), input size,
    and (B, 1, H/2 * W/2) squared norms of the embedding at each pixel (:func:`affinity_features`
    computes them once per image; None = each blend computes them)."""

    embed: torch.Tensor
    null: torch.Tensor
    size: tuple[int, int]
    embed_sq: torch.Tensor | None = None

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """What the encoder computes (and :mod:`cmp.model.frozen` traces); the norms follow from it."""
        return (self.embed, self.null)

    def nbytes(self) -> int:
        extra = () if self.embed_sq is None else (self.embed_sq,)
        return sum(t.numel() * t.element_size() for t in (*self.tensors(), *extra))


def affinity_features(embed: torch.Tensor, null: torch.Tensor, size: Sequence[int]) -> AffinityFeatures:
    """:class:`AffinityFeatures` with the squared norms every blend of the image reads, computed
    once per image instead of per click (0.5-1 ms of a 384 px arrow on a 2-core CPU)."""
    flat = embed.reshape(embed.shape[0], embed.shape[1], -1)
    return AffinityFeatures(embed, null, tuple(size), (flat * flat).sum(1, keepdim=True))


def _cbr(cin: int, cout: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AffinityCMP(nn.Module):
    """See the module docstring. Same engine-facing methods as :class:`cmp.model.CMP`."""

    #: Scalar weights of the guidance statistics (the trainer may give them a larger step).
    prior_parameters = ("null_guidance", "null_spread", "null_alpha_offset")
    #: ``decode(..., still=False)`` is available: the "whole scene moves" mode.
    supports_scene_motion = True
    #: Guidance is read as points (:meth:`decode_points`); the engine builds no dense map.
    convolves_guidance = False
    #: Submodules only encode_image uses, whole (cmp.model.frozen folds their BatchNorms).
    encode_only = ("image_encoder", "embed2", "embed4", "embed8", "embed_head")

    def __init__(self, cfg: CMPConfig):
        super().__init__()
        self.cfg = cfg
        head = cfg.head
        if not isinstance(head, AffinityHead):
            raise ValueError(f"AffinityCMP needs an affinity head, got {head.kind!r} (build it with build_cmp)")
        enc, d = cfg.encoder, head.embed_dim
        self.image_encoder = ResNetEncoder(enc)
        self.embed8 = nn.Conv2d(enc.code_dim, d, 1)
        self.embed4 = nn.Conv2d(enc.layer1_dim, d, 1)
        self.embed2 = nn.Conv2d(enc.stem_width, d, 1)
        self.embed_head = nn.Sequential(nn.BatchNorm2d(d), nn.ReLU(inplace=True), *_cbr(d, d),
                                        nn.Conv2d(d, d + 1, 1))
        # softplus(0.55) ~ 1: both distance terms start at unit weight.
        self.log_beta = nn.Parameter(torch.tensor(0.55))
        self.log_alpha = nn.Parameter(torch.tensor(0.55))
        self.null_guidance = nn.Parameter(torch.zeros(2))
        if head.still_prior == 2:  # zeros = the still_prior 1 model exactly (warm starts begin there)
            self.null_spread = nn.Parameter(torch.zeros(1))
            self.null_alpha_offset = nn.Parameter(torch.zeros(1))
        elif head.still_prior != 1:
            raise ValueError(f"unknown still_prior {head.still_prior!r}; choose 1 or 2")

    # -- per image -------------------------------------------------------------
    def encode_image(self, image: torch.Tensor) -> AffinityFeatures:
        """image: (B, 3, H, W) normalised -> embeddings and null logits at 1/2, in fp32."""
        enc = self.image_encoder(image)
        e2 = self.embed2(enc.stem)
        size2 = e2.shape[-2:]
        x = (e2 + F.interpolate(self.embed4(enc.layer1), size=size2, mode="bilinear", align_corners=False)
             + F.interpolate(self.embed8(enc.code), size=size2, mode="bilinear", align_corners=False))
        out = self.embed_head(x).float()
        return affinity_features(out[:, :-1], out[:, -1:], tuple(image.shape[-2:]))

    @staticmethod
    def features_from_tensors(tensors: Sequence[torch.Tensor], size: tuple[int, int]) -> AffinityFeatures:
        """:class:`AffinityFeatures` from its :meth:`~AffinityFeatures.tensors` and the input size
        (how :class:`cmp.model.frozen.FrozenEncoder` rebuilds them)."""
        embed, null = tensors
        return affinity_features(embed, null, size)

    # -- per guidance set --------------------------------------------------------
    @staticmethod
    def _points(sparse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Guidance pixels of one (4, H, W) map: rows, columns and (K, 2) motion vectors."""
        ys, xs = torch.nonzero(sparse[2] > 0, as_tuple=True)
        return ys, xs, sparse[:2, ys, xs].float().t()

    @staticmethod
    def _distances(embed: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, size: tuple[int, int],
                   embed_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the blend weights of K guidance points at (ys, xs) of an input of ``size`` are
        made of: (K, h*w) squared embedding distances, (K, h) and (K, w) squared spatial
        distances in SPATIAL_UNIT (both fits of a guidance set share them). ``embed_sq``: the
        (1, h*w) squared norms of ``embed``'s pixels, if the features hold them."""
        D, h, w = embed.shape
        H, W = size
        # Embedding at each point, read bilinearly at its half-resolution position.
        sy, sx = (h - 1) / max(H - 1, 1), (w - 1) / max(W - 1, 1)
        grid = torch.stack([xs.float() * sx / max(w - 1, 1) * 2 - 1,
                            ys.float() * sy / max(h - 1, 1) * 2 - 1], dim=-1).view(1, 1, -1, 2)
        e_pts = F.grid_sample(embed[None], grid, mode="bilinear", align_corners=True)[0, :, 0].t()  # (K, D)
        flat = embed.reshape(D, -1)                                            # (D, hw)
        # |E(p) - e_i|^2 = |E(p)|^2 + |e_i|^2 - 2 e_i . E(p): the (K, hw) matrix in one addmm
        sq = (flat * flat).sum(0, keepdim=True) if embed_sq is None else embed_sq
        feat_d2 = torch.addmm(sq + (e_pts * e_pts).sum(1, keepdim=True),
                              e_pts, flat, alpha=-2.0).clamp_min(0)
        gy = torch.arange(h, device=embed.device, dtype=torch.float32) / sy if h > 1 else embed.new_zeros(1)
        gx = torch.arange(w, device=embed.device, dtype=torch.float32) / sx if w > 1 else embed.new_zeros(1)
        dy2 = (gy[None, :] - ys.float()[:, None]) ** 2 / SPATIAL_UNIT ** 2     # (K, h)
        dx2 = (gx[None, :] - xs.float()[:, None]) ** 2 / SPATIAL_UNIT ** 2     # (K, w)
        return feat_d2, dy2, dx2

    def _weights(self, dist: tuple[torch.Tensor, torch.Tensor, torch.Tensor], null: torch.Tensor,
                 ys: torch.Tensor, xs: torch.Tensor, moving: torch.Tensor, size: tuple[int, int],
                 still: bool = True, soften: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
        """(K, h*w) blend weights of K guidance points at (ys, xs) of an input of ``size``
        from their :meth:`_distances`; ``soften`` divides the feature and the spatial term
        (the affine fit's weights).

        They depend on where the points are and which of them move (``moving``, a (K,) bool),
        never on the motion itself, so guidance sets that differ only in their vectors (the
        segmentation probes) share them."""
        feat_d2, dy2, dx2 = dist
        H, W = size
        beta, alpha = F.softplus(self.log_beta) / soften[0], F.softplus(self.log_alpha) / soften[1]

        def logits_at(a: torch.Tensor) -> torch.Tensor:
            """(K, hw) -beta |E(p) - e_i|^2 - a |p - q_i|^2 / unit^2; ``a`` scales the (K, h) and
            (K, w) factors before they are spread to (K, hw), so each logit costs two passes."""
            spatial = ((-a * dy2)[:, :, None] + (-a * dx2)[:, None, :]).reshape(len(ys), -1)
            return torch.addcmul(spatial, feat_d2, -beta)

        logits = logits_at(alpha)
        if not still:  # whole scene moves: the guidance blend alone, no statistics needed
            return logits.softmax(dim=0)
        density = len(ys) / (H * W / SPATIAL_UNIT ** 2)
        shift = self.null_guidance[0] * math.log(density) + self.null_guidance[1] * moving.float().mean()
        if self.cfg.head.still_prior == 1:
            return torch.cat([null.reshape(1, -1) + shift, logits], dim=0).softmax(dim=0)[1:]  # (K, hw)
        shift = shift + self.null_spread[0] * guidance_spread(ys, xs, moving, H, W)
        alpha0 = F.softplus(self.log_alpha + self.null_alpha_offset[0])
        evidence = torch.logsumexp(logits_at(alpha0), dim=0, keepdim=True)
        p_still = torch.sigmoid(null.reshape(1, -1) + shift - evidence)        # (1, hw)
        return logits.softmax(dim=0) * (1 - p_still)

    def decode(self, feats: AffinityFeatures, sparse: torch.Tensor, *,
               still: bool | Sequence[bool] = True, blend: str | Sequence[str] = "mean") -> torch.Tensor:
        """sparse: (G, 4, H, W) guidance maps -> flow (G, 2, H/2, W/2), fp32, input pixels.

        ``feats`` may hold one image (shared by all G sets) or G images. ``still=False``:
        the "whole scene moves" mode (no pixel stays still unless it looks like a pin);
        a sequence of G flags sets the mode per guidance set (training mixes both).
        ``blend``: one of :data:`BLENDS` (training uses ``mean``), or one per guidance set.
        """
        return self.decode_points(feats, [self._points(s) for s in sparse], tuple(sparse.shape[-2:]),
                                  still=still, blend=blend)

    def decode_points(self, feats: AffinityFeatures, points: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                      size: tuple[int, int], *, still: bool | Sequence[bool] = True,
                      blend: str | Sequence[str] = "mean") -> torch.Tensor:
        """:meth:`decode` for guidance given as G (rows, columns, (K, 2) motion) of an input of
        ``size`` (what the map would mark; :func:`cmp.guidance.guidance_pixels`), without the map.

        Consecutive sets on the same image with the same points, the same moving ones and
        the same mode share one set of blend weights (the 4 probes of a segmentation
        click: a quarter of the work, the same numbers).
        """
        G = len(points)
        flags = [bool(still)] * G if isinstance(still, bool) else [bool(s) for s in still]
        blends = [blend] * G if isinstance(blend, str) else list(blend)
        if len(flags) != G or len(blends) != G:
            raise ValueError(f"{len(flags)} still flags and {len(blends)} blends for {G} guidance sets")
        for b in set(blends) - set(BLENDS):
            raise ValueError(f"unknown blend {b!r}; choose one of {', '.join(BLENDS)}")
        n = feats.embed.shape[0]
        out, last = [], None  # last: (image, mode, blend, ys, xs, moving) and the blend built for them
        with torch.autocast(device_type=feats.embed.device.type, enabled=False):
            for g, (ys, xs, vec) in enumerate(points):
                i = g if n > 1 else 0
                embed, null = feats.embed[i], feats.null[i]
                if len(ys) == 0:
                    out.append(embed.new_zeros(2, *embed.shape[1:]))
                    continue
                vec = vec.float()
                moving = vec.norm(dim=1) > MOVING_PX
                key = (i, flags[g], blends[g], ys, xs, moving)
                shared = last is not None and last[0][:3] == key[:3] and all(
                    torch.equal(a, b) for a, b in zip(last[0][3:], key[3:]))
                if not shared:
                    sq = None if feats.embed_sq is None else feats.embed_sq[i]
                    last = (key, self._mixer(embed, null, ys, xs, moving, size, flags[g], blends[g], sq))
                flow = last[1](vec)
                out.append(flow.view(2, *embed.shape[1:]))
        return torch.stack(out)

    def _mixer(self, embed: torch.Tensor, null: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
               moving: torch.Tensor, size: tuple[int, int], still: bool, blend: str,
               embed_sq: torch.Tensor | None = None) -> Callable:
        """The blend of one guidance set's points as a function of their (K, 2) vectors -> (2, h*w)
        flow; everything that does not depend on the vectors is computed here, once."""
        dist = self._distances(embed, ys, xs, size, embed_sq)
        if blend == "mean" or len(ys) < 2:
            weights = self._weights(dist, null, ys, xs, moving, size, still)
            return lambda vec: vec.t() @ weights
        # the whole-scene mode's weights sum to 1 at every pixel: the fit needs no share
        share = self._weights(dist, null, ys, xs, moving, size, still).sum(0) if still else None
        fit = self._weights(dist, null, ys, xs, moving, size, False, FIT_SOFTEN)
        return partial(local_affine, fit, share, ys, xs, size=size, grid=tuple(embed.shape[1:]), ridge=FIT_RIDGE)

    def to_flow(self, out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Half-resolution flow -> (G, 2, H, W) float32 at ``size`` (align_corners=True)."""
        return F.interpolate(out.float(), size=size, mode="bilinear", align_corners=True)

    def forward(self, image: torch.Tensor, sparse: torch.Tensor, still: bool | Sequence[bool] = True,
                blend: str | Sequence[str] = "mean") -> torch.Tensor:
        """image (B, 3, H, W) normalised, sparse (B, 4, H, W) -> flow (B, 2, H/2, W/2)."""
        return self.decode(self.encode_image(image), sparse, still=still, blend=blend)
