"""Edge-aware refinement of a segmentation score: make the mask follow the image's edges.

The CMP probe score (:func:`cmp.segment.segment`) is computed at the model's 1/2
resolution and upsampled, so its borders are soft and thin parts blur away. Each
refiner here takes that score and the image and returns a mask that snaps to image
edges:

* ``guided``: the guided filter (He et al., 2010) of the thresholded mask, with the
  image as guide, thresholded at 0.5: near an edge the mask is re-fitted as a linear
  function of the colour, so its border moves onto the colour edge. (Filtering the
  score itself sharpens it but leaves the threshold crossing where it was.)
* ``superpixel``: SLIC superpixels of the image; each takes the mean score of its
  pixels (the mask is a union of superpixels).
* ``grabcut``: OpenCV's GrabCut (colour models + graph cut), seeded by the score:
  sure object where the score is high and at positive clicks, sure background where
  it is low and at negative clicks, "probably" in between.
* ``grabcut-guided``: GrabCut at :data:`GRABCUT_SIDE` px (a quarter of the work), its
  mask then snapped to the full-resolution edges by the guided filter.
* ``colour-guided``: GrabCut's colour models without its graph cut, then a lighter
  guided filter (:data:`COLOUR_SNAP_RADIUS`, :data:`COLOUR_SNAP_EPS`). Colour histograms
  of the object and of the background are counted from the score itself (each pixel
  weighted by how far its score is past 0.5 on either side) and from the clicks (the
  pixels around a positive click count as object, around a negative one as background,
  :data:`COLOUR_CLICK_WEIGHT` times over);
  within :data:`COLOUR_BAND` px of the thresholded mask's border, the score is blended
  with the posterior "object" probability of each pixel's colour. A thin part the
  coarse score blurred away (a leg, a leaf tip) comes back when its colour is the
  object's, and a same-coloured region far from the mask does not join. 2-4 ms at 384 px.

All work on the view the model saw (the zoom box, or the whole image), at most
:data:`WORK_SIDE` px on its long side, so their cost does not grow with the photo. A view
larger than that gets its mask back at its own size along its own edges (:func:`_to_view`:
the edge snap's linear model of colour evaluated at the full-size pixels of the mask's border),
not enlarged in steps.
Arrays: rgb (H, W, 3) uint8; score (H, W) float32 in [0, 1]; masks (H, W) bool;
clicks (N, 2) (x, y) in image pixels. Never imports Gradio.
"""
from __future__ import annotations

import cv2
import numpy as np

from .images import resize_rgb

REFINERS = ("guided", "superpixel", "grabcut", "grabcut-guided", "colour-guided")
WORK_SIDE = 384
#: Guided filter window radius (px at WORK_SIDE) and regularisation (score units^2).
GUIDED_RADIUS = 8
GUIDED_EPS = 1e-2
GUIDED_SUBSAMPLE = 2
#: SLIC: about this many px per superpixel at WORK_SIDE, compactness.
SUPERPIXEL_AREA = 48
SUPERPIXEL_COMPACTNESS = 10.0
#: GrabCut: score bands for sure background / probable / sure object, iterations.
GRABCUT_LOW, GRABCUT_HIGH = 0.15, 0.85
GRABCUT_ITERS = 3
GRABCUT_SIDE = 192
#: Colour models: bits per channel of the joint RGB histogram (4 -> 4096 bins), the band
#: (px at WORK_SIDE) around the mask's border where the colour term counts, its weight.
COLOUR_BITS = 4
COLOUR_BAND = 16
COLOUR_WEIGHT = 0.7
#: Each click says what colour the object (or the background) has: the pixels within this
#: many px (a square, at WORK_SIDE) of a positive click count this many times more as
#: object, of a negative click as background.
COLOUR_CLICK_RADIUS = 3
COLOUR_CLICK_WEIGHT = 20.0
#: The guided filter after the colour blend is lighter than ``guided``'s: the colour term has
#: already moved the border onto the object's colour, and a wide window (r 8, eps 1e-2) then
#: rounded thin parts (antennae, leaf tips) away again (checkpoints/cmp-slim-affinity-log.md, "A lighter edge snap").
COLOUR_SNAP_RADIUS = 4
COLOUR_SNAP_EPS = 1e-3


def _box_filter(a: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(a, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


class GuidedFilter:
    """Colour guided filter (He et al., 2010), fast variant (He and Sun, 2015): the linear
    coefficients are fitted at 1/``subsample`` resolution and applied at full resolution.

    The work that depends on the guide alone (its window means and the inverse of its window
    covariance plus ``eps``) is done once here, so one guide can filter many sources (the
    flows of every arrow update on one image). guide (H, W, 3) float32 in [0, 1]. The
    arithmetic runs on whole planes (one per colour or coefficient): a per-pixel 3x3 product
    through ``np.einsum`` took 10x as long.
    """

    def __init__(self, guide: np.ndarray, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS,
                 subsample: int = GUIDED_SUBSAMPLE):
        full = np.ascontiguousarray(guide, dtype=np.float32)
        h, w = full.shape[:2]
        self.size = (w, h)
        if subsample > 1:
            self.small = (max(1, w // subsample), max(1, h // subsample))
            I = cv2.resize(full, self.small, interpolation=cv2.INTER_AREA)
            self.r = max(1, radius // subsample)
        else:
            self.small, I, self.r = None, full, radius
        self.full = cv2.split(full)
        self.I = cv2.split(I)
        self.mean_I = [_box_filter(c, self.r) for c in self.I]
        m = {(i, j): (_box_filter(self.I[i] * self.I[j], self.r) - self.mean_I[i] * self.mean_I[j]
                      + (eps if i == j else 0.0)).astype(np.float64) for i in range(3) for j in range(i, 3)}
        # the inverse of the symmetric 3x3 window covariance: its adjugate over its determinant,
        # in float64 (``np.linalg.inv`` on (H, W, 3, 3) took most of the filter's time)
        a, b, c, d, e, f = m[0, 0], m[0, 1], m[0, 2], m[1, 1], m[1, 2], m[2, 2]
        adj = [d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b]
        inv_det = 1.0 / (a * adj[0] + b * adj[1] + c * adj[2])
        # six distinct planes (the inverse is symmetric); the rows share them, not copies of them
        c00, c01, c02, c11, c12, c22 = ((x * inv_det).astype(np.float32) for x in adj)
        self.inv = [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]

    def nbytes(self) -> int:
        planes = {id(a): a for a in (*self.full, *self.I, *self.mean_I, *(x for row in self.inv for x in row))}
        return sum(a.nbytes for a in planes.values())

    @staticmethod
    def nbytes_for(height: int, width: int, subsample: int = GUIDED_SUBSAMPLE) -> int:
        """What :meth:`nbytes` will be for a guide of ``height x width``, before it is built:
        3 full-resolution planes, and 3 + 3 + 6 planes at 1/``subsample``, float32 (the guide,
        its window means, the six distinct entries of the symmetric inverse covariance)."""
        h, w = (max(1, height // subsample), max(1, width // subsample)) if subsample > 1 else (height, width)
        return 4 * (3 * height * width + 12 * h * w)

    def coefficients(self, p: np.ndarray) -> list[np.ndarray]:
        """The window-averaged linear model of ``p`` (H, W) float32 on the guide, at the filter's
        working resolution (1/``subsample``): planes a_r, a_g, a_b, b, so that the filtered
        ``p`` is a . guide + b (:func:`_to_view` evaluates it at other pixels)."""
        if self.small is not None and p.shape[::-1] != self.small:
            p = cv2.resize(p, self.small, interpolation=cv2.INTER_AREA)
        mean_p = _box_filter(p, self.r)
        cov = [_box_filter(I * p, self.r) - mI * mean_p for I, mI in zip(self.I, self.mean_I)]
        a = [row[0] * cov[0] + row[1] * cov[1] + row[2] * cov[2] for row in self.inv]
        b = mean_p - a[0] * self.mean_I[0] - a[1] * self.mean_I[1] - a[2] * self.mean_I[2]
        return [_box_filter(x, self.r) for x in (*a, b)]  # plane by plane: a merge and a split cost more

    def _one(self, p: np.ndarray) -> np.ndarray:
        return self.apply(self.coefficients(p))

    def apply(self, coef: list[np.ndarray]) -> np.ndarray:
        """The filtered source from its :meth:`coefficients`, at the guide's full resolution."""
        if self.small is not None:
            coef = [cv2.resize(x, self.size, interpolation=cv2.INTER_LINEAR) for x in coef]
        out = coef[0] * self.full[0]
        out += coef[1] * self.full[1]
        out += coef[2] * self.full[2]
        out += coef[3]
        return out

    def __call__(self, src: np.ndarray) -> np.ndarray:
        """src (H, W) or (H, W, K) float32, each channel filtered alone; the same shape back."""
        p = np.asarray(src, np.float32)
        if self.small is not None:
            p = cv2.resize(p, self.small, interpolation=cv2.INTER_AREA)
        if src.ndim == 2:
            return self._one(p)
        return np.stack([self._one(c) for c in cv2.split(p)], -1)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = GUIDED_RADIUS,
                  eps: float = GUIDED_EPS, subsample: int = GUIDED_SUBSAMPLE) -> np.ndarray:
    """:class:`GuidedFilter` of one source: guide (H, W, 3) float32 in [0, 1]; src (H, W)
    float32; returns (H, W) float32."""
    return GuidedFilter(guide, radius, eps, subsample)(src)


def _superpixel(rgb: np.ndarray, score: np.ndarray) -> np.ndarray:
    from skimage.segmentation import slic

    n = max(16, rgb.shape[0] * rgb.shape[1] // SUPERPIXEL_AREA)
    labels = slic(rgb, n_segments=n, compactness=SUPERPIXEL_COMPACTNESS, start_label=0)
    mean = np.bincount(labels.ravel(), score.ravel()) / np.maximum(np.bincount(labels.ravel()), 1)
    return mean[labels].astype(np.float32)


def _grabcut(rgb: np.ndarray, score: np.ndarray, pos: np.ndarray, neg: np.ndarray, threshold: float) -> np.ndarray:
    m = np.where(score >= GRABCUT_HIGH, cv2.GC_FGD,
                 np.where(score > threshold, cv2.GC_PR_FGD,
                          np.where(score > GRABCUT_LOW, cv2.GC_PR_BGD, cv2.GC_BGD))).astype(np.uint8)
    h, w = m.shape
    for pts, lab in ((pos, cv2.GC_FGD), (neg, cv2.GC_BGD)):
        for x, y in pts:
            cv2.circle(m, (int(np.clip(round(x), 0, w - 1)), int(np.clip(round(y), 0, h - 1))), 2, int(lab), -1)
    if not ((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)).any() or not ((m == cv2.GC_BGD) | (m == cv2.GC_PR_BGD)).any():
        return score > threshold  # GrabCut needs both sides
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), m, None, bgd, fgd, GRABCUT_ITERS, cv2.GC_INIT_WITH_MASK)
    return (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)


def _add_clicks(counts: np.ndarray, clicks, radius: int = COLOUR_CLICK_RADIUS,
                weight: float = COLOUR_CLICK_WEIGHT) -> None:
    """In place: ``weight`` more on the (2 radius + 1)^2 pixels around each click."""
    h, w = counts.shape
    for x, y in np.asarray(clicks, np.float64).reshape(-1, 2):
        cx, cy = int(round(x)), int(round(y))
        y0, y1, x0, x1 = max(cy - radius, 0), min(cy + radius + 1, h), max(cx - radius, 0), min(cx + radius + 1, w)
        if y0 < y1 and x0 < x1:
            counts[y0:y1, x0:x1] += weight


def colour_blend(rgb: np.ndarray, score: np.ndarray, threshold: float = 0.5, positive=(), negative=(), *,
                 bits: int = COLOUR_BITS, band: int = COLOUR_BAND, weight: float = COLOUR_WEIGHT) -> np.ndarray:
    """The score blended, near the border of ``score > threshold``, with the posterior
    object probability of each pixel's colour under object / background colour histograms
    counted from the score and the clicks (see the module docstring). rgb (H, W, 3) uint8;
    clicks (N, 2) (x, y) in its pixels; returns (H, W) float32; the score itself where
    either side has no weight."""
    q = rgb >> (8 - bits)
    idx = ((q[..., 0].astype(np.uint16) << (2 * bits)) | (q[..., 1].astype(np.uint16) << bits) | q[..., 2])
    idx = idx.ravel().astype(np.intp)  # bincount's own index type (a cast inside it is slower)
    s = score.astype(np.float32).ravel()
    obj, bg = np.clip(2.0 * s - 1, 0, 1, dtype=np.float64), np.clip(1 - 2.0 * s, 0, 1, dtype=np.float64)
    _add_clicks(obj.reshape(score.shape), positive)
    _add_clicks(bg.reshape(score.shape), negative)
    if obj.sum() < 1 or bg.sum() < 1:
        return score.astype(np.float32)
    n = 1 << (3 * bits)
    h_obj = np.bincount(idx, obj, n) + 0.5  # +0.5: colours never seen on a side are not impossible
    h_bg = np.bincount(idx, bg, n) + 0.5
    p_obj, p_bg = h_obj / h_obj.sum(), h_bg / h_bg.sum()
    posterior = (p_obj / (p_obj + p_bg)).astype(np.float32)
    # the band: pixels at most ``band`` px from the other side of the thresholded mask
    mask = (score > threshold).astype(np.uint8)
    d_in = cv2.distanceTransform(mask, cv2.DIST_L2, 3)  # inside: distance to the nearest outside pixel
    d_out = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
    near = np.flatnonzero((np.maximum(d_in, d_out) <= band).ravel())
    out = s.copy()
    out[near] = (1 - weight) * s[near] + weight * posterior[idx[near]]
    return out.reshape(score.shape)


def _colour_snap(view: np.ndarray) -> GuidedFilter:
    """The colour refinement's edge snap: the guided filter of a view (its colours in [0, 1])."""
    return GuidedFilter(view.astype(np.float32) / 255.0, COLOUR_SNAP_RADIUS, COLOUR_SNAP_EPS)


def _snap(view: np.ndarray, mask: np.ndarray, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> np.ndarray:
    """The guided filter of a (soft or bool) mask with the view as guide, thresholded at 0.5."""
    return guided_filter(view.astype(np.float32) / 255.0, mask.astype(np.float32), radius, eps) > 0.5


#: A mask's border pixels are those a 3 x 3 cross changes; remap reads at most this many per row.
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_REMAP_COLUMNS = 4096


def _to_view(full: np.ndarray, coef: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """The refined ``mask``, made on the view shrunk to WORK_SIDE, at the view's own size
    ``full`` (H, W, 3) uint8, along the view's own edges: the edge snap's linear model of colour
    (``coef``, :meth:`GuidedFilter.coefficients` of the small view's snap), evaluated with the
    full view's colours and thresholded at 0.5, as the snap itself is on the small view.
    Only pixels within a small pixel of the mask's border are evaluated; elsewhere the mask
    is enlarged as it is. (A nearest-neighbour enlargement alone left the border in steps of
    1 / scale px: checkpoints/cmp-slim-affinity-log.md, "The refined mask at the photo's own size".)"""
    vh, vw = full.shape[:2]
    m8 = mask.astype(np.uint8)
    out = cv2.resize(m8, (vw, vh), interpolation=cv2.INTER_NEAREST).astype(bool)
    border = cv2.dilate(m8, _CROSS) != cv2.erode(m8, _CROSS)
    if not border.any():
        return out
    ys, xs = np.nonzero(cv2.resize(border.astype(np.uint8), (vw, vh), interpolation=cv2.INTER_NEAREST))
    ch, cw = coef[0].shape
    # the planes read bilinearly at the band's pixels, laid out in rows (remap's maps have
    # fewer than 2^15 columns)
    n, cols = len(xs), _REMAP_COLUMNS
    rows = -(-n // cols)
    mx, my = (np.zeros(rows * cols, np.float32) for _ in range(2))
    mx[:n] = (xs + 0.5) * (cw / vw) - 0.5
    my[:n] = (ys + 0.5) * (ch / vh) - 0.5
    at = [cv2.remap(c, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE).ravel()[:n] for c in coef]
    colour = full[ys, xs].astype(np.float32) / 255.0
    out[ys, xs] = at[0] * colour[:, 0] + at[1] * colour[:, 1] + at[2] * colour[:, 2] + at[3] > 0.5
    return out


def refine_mask(kind: str, rgb: np.ndarray, score: np.ndarray, positive=(), negative=(), *,
                box=None, threshold: float = 0.5) -> np.ndarray:
    """Edge-snapped (H, W) bool mask from the probe ``score`` (see the module docstring).

    ``box``: the zoom box (:class:`cmp.zoom.Box`) the score lives in, or None for the
    whole image; pixels outside it stay background.
    """
    if kind not in REFINERS:
        raise ValueError(f"unknown refinement {kind!r}; choose from {', '.join(REFINERS)}")
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (0, 0, w, h) if box is None else (box.x0, box.y0, box.x1, box.y1)
    view, s = rgb[y0:y1, x0:x1], score[y0:y1, x0:x1]
    vh, vw = view.shape[:2]
    k = min(1.0, WORK_SIDE / max(vh, vw))
    size = (max(1, round(vw * k)), max(1, round(vh * k)))
    if k < 1.0:
        view = resize_rgb(view, *size)
        s = cv2.resize(s, size, interpolation=cv2.INTER_AREA)
    view = np.ascontiguousarray(view)
    pos = (np.asarray(positive, np.float64).reshape(-1, 2) - [x0, y0]) * k
    neg = (np.asarray(negative, np.float64).reshape(-1, 2) - [x0, y0]) * k
    coef = None  # the colour snap's linear model of the mask, when there is one
    if kind == "guided":
        m = _snap(view, s > threshold)
    elif kind == "superpixel":
        m = _superpixel(view, s) > threshold
    elif kind == "grabcut":
        m = _grabcut(view, s, pos, neg, threshold)
    elif kind == "colour-guided":
        snap = _colour_snap(view)
        coef = snap.coefficients((colour_blend(view, s, threshold, pos, neg) > threshold).astype(np.float32))
        m = snap.apply(coef) > 0.5
    else:
        vh2, vw2 = view.shape[:2]
        k2 = min(1.0, GRABCUT_SIDE / max(vh2, vw2))
        size2 = (max(1, round(vw2 * k2)), max(1, round(vh2 * k2)))
        small = _grabcut(resize_rgb(view, *size2), cv2.resize(s, size2, interpolation=cv2.INTER_AREA),
                         pos * k2, neg * k2, threshold)
        m = _snap(view, cv2.resize(small.astype(np.float32), (vw2, vh2), interpolation=cv2.INTER_LINEAR))
    if k < 1.0:
        if coef is None:  # the other refinements: the same snap's model of their mask
            coef = _colour_snap(view).coefficients(m.astype(np.float32))
        m = _to_view(rgb[y0:y1, x0:x1], coef, m)
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = m
    return out
