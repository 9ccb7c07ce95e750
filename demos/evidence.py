"""The Segment page's evidence panel: what a mask came from, drawn small and cheap (PIL, no plotting library).

- :func:`probe_flows_image`: the four probe flows (colour wheel, one shared
  scale) in a 2x2 grid, each labelled with the motion its click was given.
- :func:`score_image`: the score of the view (the walk's chance, or the probes' motion) as a heat map with
  the threshold's outline, beside its histogram with the threshold line.

Both take what :func:`cmp.segment.segment` returns for the view the model saw
(the zoom crop or the whole image). Drawing only; no model, no Gradio.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from cmp.flow import flow_to_color

#: Long side of one flow tile / of the heat map, in pixels.
TILE = 160
PROBE_LABELS = ("probe 1: right", "probe 2: left", "probe 3: down", "probe 4: up")
#: The score image's caption by what made the score (:attr:`cmp.segment.Segmentation.source`).
SCORE_LABELS = {"walk": "score = chance a walk reaches the object", "probes": "score = mean |probe flow| / max"}
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)
THRESHOLD_COLOR = (214, 39, 40)
PAD = 6
PLOT_WIDTH = 220


def _fit(img: np.ndarray, side: int = TILE) -> np.ndarray:
    h, w = img.shape[:2]
    r = side / max(h, w)
    return cv2.resize(img, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA)


def probe_flows_image(flows: np.ndarray) -> np.ndarray:
    """(4, h, w, 2) probe flows -> (H, W, 3) uint8: 2x2 colour-wheel tiles on one scale, labelled."""
    flows = np.asarray(flows, dtype=np.float32)
    fastest = float(np.linalg.norm(flows, axis=-1).max()) if flows.size else 0.0
    tiles = [_fit(flow_to_color(f, max_mag=fastest or 1.0)) for f in flows]
    th, tw = tiles[0].shape[:2]
    pad, label_h = PAD, 16
    canvas = Image.new("RGB", (2 * tw + 3 * pad, 2 * (th + label_h) + 3 * pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, tile in enumerate(tiles):
        x = pad + (i % 2) * (tw + pad)
        y = pad + (i // 2) * (th + label_h + pad)
        draw.text((x, y), PROBE_LABELS[i] if i < len(PROBE_LABELS) else f"probe {i + 1}", fill=INK)
        canvas.paste(Image.fromarray(tile), (x, y + label_h))
    return np.asarray(canvas)


def score_image(score: np.ndarray, threshold: float, bins: int = 40, source: str = "probes") -> np.ndarray:
    """(h, w) score in [0, 1] -> (H, W, 3) uint8: heat map with the mask outline, and a histogram
    of the score with the threshold as a vertical line (the mask is everything right of it);
    ``source``: what made the score (its caption, :data:`SCORE_LABELS`)."""
    s = np.clip(np.asarray(score, dtype=np.float32), 0.0, 1.0)
    heat = cv2.applyColorMap((s * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
    heat = np.ascontiguousarray(_fit(heat))
    inside = cv2.resize((s > threshold).astype(np.uint8), heat.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(inside, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(heat, contours, -1, (255, 255, 255), 1)

    hh, pad, label_h = heat.shape[0], PAD, 16
    pw, ph = PLOT_WIDTH, hh - 18
    canvas = Image.new("RGB", (heat.shape[1] + pw + 3 * pad, hh + label_h + 2 * pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), SCORE_LABELS.get(source, "score"), fill=INK)
    canvas.paste(Image.fromarray(heat), (pad, pad + label_h))
    # Histogram on a log scale: the background's mass near 0 would flatten everything else.
    counts, _ = np.histogram(s, bins=bins, range=(0.0, 1.0))
    heights = np.log1p(counts) / max(np.log1p(counts).max(), 1e-6)
    x0, y0 = heat.shape[1] + 2 * pad, pad + label_h
    bw = pw / bins
    for i, v in enumerate(heights):
        if v > 0:
            draw.rectangle([x0 + i * bw, y0 + ph * (1 - v), x0 + (i + 1) * bw - 1, y0 + ph], fill=(120, 120, 120))
    draw.line([x0, y0 + ph, x0 + pw, y0 + ph], fill=INK)
    tx = x0 + pw * float(threshold)
    draw.line([tx, y0, tx, y0 + ph], fill=THRESHOLD_COLOR, width=2)
    draw.text((x0, y0 + ph + 3), "0", fill=INK)
    draw.text((x0 + pw - 6, y0 + ph + 3), "1", fill=INK)
    draw.text((min(tx + 3, x0 + pw - 70), y0), f"threshold {threshold:.2f}", fill=THRESHOLD_COLOR)
    return np.asarray(canvas)
