"""Click segmentation: probes, zoom, clean-up, RLE/COCO export (cmp.masks), CLI and the eval command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cmp.cli import main as cli_main
from cmp.engine import ImageHandle
from cmp.eval.composites import EVAL_SEED_START, eval_composites, make_composite
from cmp.eval.segmentation import (MethodResult, click_ious, format_table, has_fall, iou, iou_after, model_method,
                                   next_click, noc)
from cmp.guidance import GuidanceError
from cmp.masks import label_map, rle_decode
from cmp.segment import (PROBE_MAGNITUDE, clean_mask, frame_pins, probe_flows, probe_sets, score_from_flows, segment,
                         segment_clicks, zoom_history)
from cmp.candidates import best_candidate, candidate_clicks, segment_candidates
from cmp.zoom import MASK_ZOOM_FACTOR, Box, mask_box, zoom_box
from helpers import run_cli


def _rgb(h=48, w=72, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class BrightnessPropagator:
    """Fake engine: every probe's flow is the red channel of the image it was given.

    The score is then red / max(red) over whatever image (crop) the engine saw,
    which makes the zoom crop and its paste-back observable pixel by pixel.
    """

    def __init__(self, side=64):
        self.side, self.images, self.sets, self.blends, self.edges = side, [], [], [], []

    def set_image(self, rgb):
        self.images.append(rgb.copy())
        return ImageHandle(str(len(self.images) - 1), rgb.shape[0], rgb.shape[1], self.side)

    def propagate_batch(self, handle, sets, *, blend, edges=True):
        self.sets.append([np.array(s) for s in sets])
        self.blends.append(blend)
        self.edges.append(edges)
        red = self.images[int(handle.key)][..., 0].astype(np.float32)
        return np.stack([np.stack([red, np.zeros_like(red)], -1)] * len(sets))


# -- probes -------------------------------------------------------------------------

def test_probes_batched_equal_separate_calls(tiny_engine):
    rgb = _rgb()
    h = tiny_engine.set_image(rgb)
    pos, neg = [(10, 12), (30, 20)], [(60, 40)]
    batched = probe_flows(tiny_engine, h, pos, neg)
    tf = h.transform
    sets = probe_sets(pos, neg, PROBE_MAGNITUDE / tf.sx, PROBE_MAGNITUDE / tf.sy)
    separate = np.stack([tiny_engine.propagate_batch(h, [s], blend="mean")[0] for s in sets])
    assert batched.shape == (4, 48, 72, 2)
    np.testing.assert_allclose(batched, separate, atol=1e-4)
    score = score_from_flows(batched)
    assert score.shape == (48, 72) and score.min() >= 0 and score.max() == pytest.approx(1.0)


def test_probe_motion_is_v_in_model_pixels_and_negatives_are_pinned():
    prop = BrightnessPropagator(side=64)
    rgb = _rgb(100, 200)
    segment(prop, rgb, [(20, 30)], [(150, 80)], zoom=False, pin_frame=False)
    sets = prop.sets[-1]
    tf = ImageHandle("0", 100, 200, 64).transform
    motions = [tuple(np.round(tf.apply_vectors(s[:1, 2:])[0], 6)) for s in sets]
    v = PROBE_MAGNITUDE
    assert motions == [(v, 0.0), (-v, 0.0), (0.0, v), (0.0, -v)]
    assert prop.blends == ["mean"]  # a pixel follows the moving click or the still one: no affine ramp
    assert prop.edges == [False]  # the mask's refinement follows the edges, not the probes' flow
    for s in sets:  # the negative click is present in every set with zero motion
        assert s.shape == (2, 4)
        np.testing.assert_array_equal(s[1], [150, 80, 0, 0])


def test_frame_pins_lie_on_the_border_away_from_positive_clicks():
    pins = frame_pins(100, 200, [], per_side=4)
    assert len(pins) == 16 and len(np.unique(pins, axis=0)) == 16
    on_border = (pins[:, 0] == 0) | (pins[:, 0] == 199) | (pins[:, 1] == 0) | (pins[:, 1] == 99)
    assert on_border.all()
    near = frame_pins(100, 200, [(0, 0)], per_side=4, clearance=0.1)  # 20 px around the corner click
    assert len(near) == 15 and np.linalg.norm(near, axis=1).min() >= 20
    assert len(frame_pins(100, 200, [], per_side=4, budget=3)) == 3
    assert len(frame_pins(100, 200, [], budget=0)) == 0


def test_segment_pins_the_frame_of_the_view_still_within_the_point_limit():
    from cmp.guidance import MAX_POINTS
    prop = BrightnessPropagator(side=64)
    rgb = _rgb(100, 200)
    segment(prop, rgb, [(100, 50)], [(150, 80)], zoom=False)
    for s in prop.sets[-1]:  # the clicks first, then zero-motion pins on the image border
        np.testing.assert_array_equal(s[1], [150, 80, 0, 0])
        pins = s[2:]
        assert len(pins) == 16 and (pins[:, 2:] == 0).all()
        assert ((pins[:, 0] == 0) | (pins[:, 0] == 199) | (pins[:, 1] == 0) | (pins[:, 1] == 99)).all()
    res = segment(prop, rgb, [(100, 50)], zoom=True)  # with zoom: the border of the crop
    box = res.box
    crop_pins = prop.sets[-1][0][1:]
    assert len(crop_pins) and ((crop_pins[:, 0] == 0) | (crop_pins[:, 0] == box.width - 1)
                               | (crop_pins[:, 1] == 0) | (crop_pins[:, 1] == box.height - 1)).all()
    many = [(5 + 3 * i, 40) for i in range(MAX_POINTS - 2)]
    segment(prop, rgb, many, zoom=False)  # 62 clicks leave room for 2 pins
    assert len(prop.sets[-1][0]) == MAX_POINTS


def test_candidates_see_three_scales_and_rank_by_confidence():
    eng = BrightnessPropagator()
    rgb = _rgb(120, 160, seed=4)
    cands = segment_candidates(eng, rgb, [(80, 60)], evidence=True)
    assert [c.name for c in cands] == ["part", "object", "group"]
    part, obj, group = (c.box for c in cands)
    assert part.width < obj.width and group is None      # the model saw three different views
    assert [im.shape[:2] for im in eng.images] == [(part.height, part.width), (obj.height, obj.width), (120, 160)]
    assert all(0.0 <= c.confidence <= 1.0 for c in cands)
    assert cands[best_candidate(cands)].confidence == max(c.confidence for c in cands)
    for c in cands:  # each candidate is segment() at its scale, flows of its view included
        assert c.flows.shape == (4, c.mask.shape[0] if c.box is None else c.box.height,
                                 c.mask.shape[1] if c.box is None else c.box.width, 2)
    empty = segment_candidates(eng, rgb, [], [(5, 5)])
    assert all(not c.mask.any() and c.confidence == 0.0 for c in empty)


def test_confidence_prefers_a_sharp_mask_that_the_crop_does_not_cut():
    from cmp.candidates import mask_confidence
    from cmp.segment import Segmentation
    from cmp.zoom import Box

    score = np.zeros((40, 40), np.float32)
    score[10:30, 10:30] = 1.0                            # a sharp step: stable under the threshold
    mask = score > 0.5
    assert mask_confidence(Segmentation(mask, score, None)) == 1.0
    soft = np.clip(1 - np.hypot(*np.mgrid[-20:20, -20:20]) / 20, 0, 1).astype(np.float32)
    assert mask_confidence(Segmentation(soft > 0.5, soft, None)) < 0.7
    cut = Box(0, 0, 20, 40)                              # the crop's right edge runs through the object
    inside = score * 0
    inside[:, :20] = score[:, :20]
    assert mask_confidence(Segmentation(inside > 0.5, inside, cut)) < 0.9


def test_confidence_share_of_the_outline_the_crop_cuts():
    """The outline is the mask's pixels with a 4-neighbour outside it (the image's own border
    does not count), and the confidence is the stability times the share of that outline not
    on a crop edge that lies inside the image: counted by hand on small masks."""
    from cmp.candidates import mask_confidence
    from cmp.segment import Segmentation
    from cmp.zoom import Box

    score = np.zeros((30, 40), np.float32)
    score[5:15, 0:12] = 1.0          # 10 x 12 block on the image's left border
    mask = score > 0.5
    # outline: top and bottom rows (12 each), the right column (8 between them); the left
    # column lies on the image's border, so it is not outline: 32 pixels in all
    right_cut = Box(0, 0, 12, 30)    # the crop's right edge (x = 11) runs along the block's side
    assert mask_confidence(Segmentation(mask, score, right_cut)) == pytest.approx(1 - 10 / 32)
    left_cut = Box(0, 0, 30, 30)     # its left edge is the image's border: it cuts nothing
    assert mask_confidence(Segmentation(mask, score, left_cut)) == 1.0
    ring = np.zeros((30, 40), np.float32)
    ring[2:28, 2:38] = 1.0
    ring[6:24, 6:34] = 0.0           # a hole: its rim is outline too
    box = Box(2, 0, 40, 30)          # the left edge x = 2 is the ring's outer side: 26 of its pixels
    outer, hole = 2 * 36 + 2 * 24, 2 * 28 + 2 * 18  # the hole's rim: its 4-neighbours, no corners
    assert mask_confidence(Segmentation(ring > 0.5, ring, box)) == pytest.approx(1 - 26 / (outer + hole))


def test_no_positive_click_gives_empty_mask(tiny_engine):
    res = segment(tiny_engine, _rgb(), [], [(5, 5)])
    assert not res.mask.any()


def test_bad_clicks_raise_one_line_errors(tiny_engine):
    with pytest.raises(GuidanceError, match="outside"):
        segment(tiny_engine, _rgb(), [(500, 5)])
    with pytest.raises(GuidanceError):
        segment(tiny_engine, _rgb(), [(1, 2, 3)])
    with pytest.raises(ValueError, match="threshold"):
        segment(tiny_engine, _rgb(), [(5, 5)], threshold=1.5)


# -- zoom -----------------------------------------------------------------------------

@pytest.mark.parametrize("clicks", [[(100, 80)], [(90, 70), (115, 95)], [(3, 2)], [(297, 197), (280, 190)]])
def test_zoom_box_is_a_square_inside_the_image_around_the_clicks(clicks):
    h, w = 200, 300
    box = zoom_box(np.array(clicks, float), h, w)
    assert box is not None
    assert 0 <= box.x0 < box.x1 <= w and 0 <= box.y0 < box.y1 <= h
    assert box.width == box.height
    pts = np.array(clicks)
    assert np.all((pts[:, 0] >= box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] < box.y1))
    extent = (pts.max(0) - pts.min(0)).max()
    assert box.width >= 4 * extent and box.width >= 0.5 * min(h, w)


def test_later_clicks_near_the_first_keep_its_crop_and_its_cached_encoding():
    """The crop is centred on the first click: while the clicks span at most a quarter of the
    minimum side, every later click gets the same crop, so the engine encodes it once."""
    h, w = 400, 600
    first = zoom_box(np.array([[300, 200]], float), h, w)
    assert first is not None and (first.x0 + first.x1) / 2 == pytest.approx(300, abs=1)
    assert (first.y0 + first.y1) / 2 == pytest.approx(200, abs=1)
    near = [[300, 200], [330, 185], [280, 230]]  # span 50 px: a quarter of the 200 px minimum side
    assert zoom_box(np.array(near, float), h, w) == first
    assert zoom_box(np.array(near[:2] + [[300, 200 + 130]], float), h, w) != first  # span 145: a larger crop
    prop = BrightnessPropagator()
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    boxes = [segment(prop, rgb, near[:k], zoom=True, refine=None).box for k in range(1, len(near) + 1)]
    assert boxes == [first] * 3
    assert all(np.array_equal(im, prop.images[0]) for im in prop.images)  # the same view each time


def test_a_later_click_zooms_around_the_objects_mask():
    """RITM's zoom-in: after the first click the crop is 1.4x the box of the object's mask and
    the clicks, centred on them; the crop of the click before is kept while it still fits."""
    h, w = 600, 800
    clicks = np.array([[300, 200], [320, 210]], float)
    box = zoom_box(clicks, h, w, around=Box(250, 150, 420, 260))
    assert box != zoom_box(clicks, h, w)  # no longer centred on the first click
    assert box.width == box.height == 300  # never under the minimum (extent 170 x 1.4 = 238 < 0.5 x 600)
    assert abs((box.x0 + box.x1) / 2 - 335) <= 1 and abs((box.y0 + box.y1) / 2 - 205) <= 1
    assert zoom_box(clicks, h, w, around=Box(256, 156, 426, 266), keep=box) == box  # same crop, same encoding
    assert zoom_box(clicks, h, w, around=Box(256, 156, 426, 266)) != box  # (without keep: re-centred)
    moved = zoom_box(clicks, h, w, around=Box(250, 150, 480, 260), keep=box)  # the mask reaches its edge
    assert moved != box and moved.x1 >= 480 + 0.05 * moved.width
    big = zoom_box(clicks, h, w, around=Box(200, 150, 450, 350))  # extent 250: 1.4x is above the minimum
    assert big.width == big.height == int(np.ceil(MASK_ZOOM_FACTOR * 250))
    assert zoom_box(clicks, h, w, around=Box(200, 150, 450, 350), keep=box) == big  # outgrown: not kept
    assert zoom_box(clicks, h, w, around=Box(100, 100, 500, 400)) is None  # 1.4x a large object: whole image
    rng = np.random.default_rng(0)  # the clicks are always inside the crop (the probes are placed in it)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(40, 700, 2))
        pts = np.stack([rng.integers(0, w, 3), rng.integers(0, h, 3)], 1).astype(float)
        (x0, x1), (y0, y1) = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
        b = zoom_box(pts, h, w, around=Box(int(x0), int(y0), int(x1) + 1, int(y1) + 1))
        assert b is None or ((pts >= [b.x0, b.y0]) & (pts < [b.x1, b.y1])).all()
    assert mask_box(np.zeros((4, 5), bool)) is None
    m = np.zeros((40, 50), bool)
    m[3:9, 10:21] = True
    assert mask_box(m) == Box(10, 3, 21, 9)


def _object_and_a_brighter_blob():
    """A red object (120) and, away from it, a redder blob (255): a crop that takes in the blob
    normalises the object's brightness score below the threshold (BrightnessPropagator)."""
    rgb = _rgb(300, 400, seed=3)
    rgb[..., 0] = 0
    rgb[100:160, 120:200, 0] = 120
    rgb[20:40, 20:40, 0] = 255
    return rgb


def test_segment_clicks_answers_each_click_around_the_mask_before_it():
    rgb, e = _object_and_a_brighter_blob(), BrightnessPropagator()
    clicks = [(130, 110, True), (300, 250, False), (190, 150, True)]
    r1 = segment(e, rgb, [(130, 110)])
    r2 = segment(e, rgb, [(130, 110)], [(300, 250)], around=mask_box(r1.mask))
    r3 = segment(e, rgb, [(130, 110), (190, 150)], [(300, 250)], around=mask_box(r2.mask))
    got = segment_clicks(e, rgb, clicks)
    assert got.box == r3.box
    np.testing.assert_array_equal(got.mask, r3.mask)
    two = segment_clicks(e, rgb, [(130, 110, True), (190, 150, True)])
    alone = segment(e, rgb, [(130, 110), (190, 150)])  # the same clicks without the history
    assert two.box != alone.box  # the blob is outside the crop around the mask, inside the other
    assert two.mask[100:160, 120:200].all() and not alone.mask[100:160, 120:200].any()
    first_negative = segment_clicks(e, rgb, [(300, 250, False), (130, 110, True)])
    np.testing.assert_array_equal(first_negative.mask, segment(e, rgb, [(130, 110)], [(300, 250)]).mask)
    flat = segment_clicks(e, rgb, clicks, zoom=False)  # no crop: the order does not matter
    np.testing.assert_array_equal(flat.mask, segment(e, rgb, [(130, 110), (190, 150)], [(300, 250)], zoom=False).mask)


def test_a_positive_click_only_adds_and_a_negative_click_only_takes_away():
    """A later click is read with its sign (``follow_click``): the clicks read afresh may change
    the mask far from where the click was made (here, a crop that takes in a redder blob, or
    leaves it out, moves the threshold), but a positive click keeps what was there and a
    negative one adds nothing; the page's rule, the command line's and the benchmark's alike."""
    from cmp.eval.segmentation import candidates_method
    from cmp.segment import follow_click

    before, afresh = np.zeros((3, 4), bool), np.zeros((3, 4), bool)
    before[:2, :2], afresh[1:, 1:] = True, True
    np.testing.assert_array_equal(follow_click(None, afresh, False), afresh)  # an object's first click
    np.testing.assert_array_equal(follow_click(before, afresh, True), before | afresh)
    np.testing.assert_array_equal(follow_click(before, afresh, False), before & afresh)

    e, rgb = BrightnessPropagator(), _object_and_a_brighter_blob()
    first = segment(e, rgb, [(130, 110)])
    assert first.mask[100:160, 120:200].all()  # the first crop leaves the blob out
    # a positive click on the blob: its crop takes the blob in, and the object, read afresh, falls
    # below the threshold; the click only adds the blob
    alone = segment(e, rgb, [(130, 110), (30, 30)], around=mask_box(first.mask), keep=first.box)
    assert alone.mask[20:40, 20:40].all() and not alone.mask[100:160, 120:200].any()
    got = segment_clicks(e, rgb, [(130, 110, True), (30, 30, True)])
    np.testing.assert_array_equal(got.mask, first.mask | alone.mask)
    assert got.box == alone.box and got.score is not None
    cands = candidate_clicks(e, rgb, [(130, 110, True), (30, 30, True)])
    assert all(c.mask[100:160, 120:200].all() for c in cands)  # every reading keeps what the click before gave
    bench = candidates_method(e)  # the benchmark, called once per click as the pages are, agrees
    bench(rgb, [(130, 110)], [])
    np.testing.assert_array_equal(bench(rgb, [(130, 110), (30, 30)], []), cands[best_candidate(cands)].mask)

    # a negative click on a dim part of the object (red 110: below half the blob's 255, above half
    # the body's 200): its crop leaves the blob out, and read afresh the dim part joins the mask
    dim = np.zeros_like(rgb)
    dim[100:160, 120:200, 0], dim[160:180, 120:200, 0], dim[30:45, 50:70, 0] = 200, 110, 255
    clicks, plain = [(125, 105, True), (190, 170, False)], {"refine": None}
    first = segment(e, dim, [(125, 105)], **plain)
    assert first.mask[100:160, 120:200].all() and not first.mask[160:180, 120:200].any()
    alone = segment(e, dim, [(125, 105)], [(190, 170)], around=mask_box(first.mask), keep=first.box, **plain)
    assert alone.mask[160:180, 120:200].all()
    got = segment_clicks(e, dim, clicks, **plain)
    np.testing.assert_array_equal(got.mask, first.mask & alone.mask)  # the click adds nothing
    assert got.mask[100:160, 120:200].all() and not got.mask[160:180, 120:200].any()


def test_the_evaluation_clicks_as_the_pages_do():
    """The benchmark's method is called once per click, in order: a later click on the same
    image zooms around the mask before it; another image starts afresh."""
    rgb, e = _object_and_a_brighter_blob(), BrightnessPropagator()
    run = model_method(e)
    first = run(rgb, [[130, 110]], [])
    later = run(rgb, [[130, 110], [190, 150]], [])
    np.testing.assert_array_equal(later, segment(e, rgb, [(130, 110), (190, 150)], around=mask_box(first)).mask)
    assert later[100:160, 120:200].all()
    fresh = run(rgb.copy(), [[130, 110], [190, 150]], [])
    np.testing.assert_array_equal(fresh, segment(e, rgb, [(130, 110), (190, 150)]).mask)
    assert not fresh[100:160, 120:200].any()


def test_zoom_box_is_none_when_the_crop_would_be_the_whole_image():
    assert zoom_box(np.array([[5, 5], [290, 190]], float), 200, 300) is None


def test_a_crop_covering_most_of_the_image_gives_way_to_the_whole_image():
    """A crop of at least ZOOM_MAX_AREA of the image (a zoom under 1.33x) is not worth an
    encoding of its own: the whole image, encoded on upload, is used instead."""
    from cmp.zoom import ZOOM_MAX_AREA
    h = w = 512
    span = lambda d: np.array([[256, 256], [256 + d, 256]], float)  # noqa: E731 - side = 4 x span
    below = zoom_box(span(95), h, w)  # 380 px: 55% of the image
    assert below is not None and below.width * below.height < ZOOM_MAX_AREA * h * w
    assert zoom_box(span(96), h, w) is None  # 384 px: 56.25%
    assert zoom_box(span(120), h, w) is None
    wide = zoom_box(span(96), 384, 1024)  # the same square crop is a real zoom on a wide image
    assert wide is not None and wide.width == 384


def test_zoom_maps_back_exactly():
    h, w = 240, 320
    rgb = np.full((h, w, 3), 20, np.uint8)
    rgb[101:117, 143:162, 0] = 120          # the object, at odd offsets
    rgb[5:40, 5:40, 0] = 255                # brighter than the object, far from the clicks
    prop = BrightnessPropagator()
    res = segment(prop, rgb, [(150, 108)], [(170, 125)], zoom=True, clean=False)
    box = res.box
    assert box is not None and box.x0 > 40 and box.y0 > 40  # the bright corner is outside the crop
    crop = prop.images[-1]
    np.testing.assert_array_equal(crop, rgb[box.y0:box.y1, box.x0:box.x1])
    # Clicks were shifted into crop coordinates (frame pins follow them).
    np.testing.assert_array_equal(prop.sets[-1][0][:2, :2], [[150 - box.x0, 108 - box.y0], [170 - box.x0, 125 - box.y0]])
    expected = np.zeros((h, w), bool)
    expected[101:117, 143:162] = True
    np.testing.assert_array_equal(res.mask, expected)
    assert np.all(res.score[:box.y0] == 0) and np.all(res.score[:, :box.x0] == 0)
    # Without zoom the brighter corner dominates the normalisation and the object is lost.
    full = segment(prop, rgb, [(150, 108)], zoom=False, clean=False)
    assert full.box is None and full.mask[10, 10] and not full.mask[108, 150]


def test_zoom_with_real_engine_keeps_full_resolution(tiny_engine):
    rgb = _rgb(90, 130)
    res = segment(tiny_engine, rgb, [(60, 40)], [(70, 45)], zoom=True)
    assert res.mask.shape == (90, 130) and res.score.shape == (90, 130)
    assert res.box is not None
    outside = np.ones((90, 130), bool)
    outside[res.box.y0:res.box.y1, res.box.x0:res.box.x1] = False
    assert not res.mask[outside].any()


# -- clean-up -------------------------------------------------------------------------

def test_clean_keeps_the_clicked_component_and_fills_small_holes():
    m = np.zeros((60, 60), bool)
    m[10:40, 10:40] = True
    m[20:22, 20:22] = False      # small hole: filled
    m[50:55, 50:55] = True       # island away from the click: dropped
    out = clean_mask(m, positive=[(15, 15)])
    expected = np.zeros((60, 60), bool)
    expected[10:40, 10:40] = True
    np.testing.assert_array_equal(out, expected)


def test_clean_keeps_holes_with_negative_clicks_and_large_holes():
    m = np.zeros((80, 80), bool)
    m[5:75, 5:75] = True
    m[10:12, 10:12] = False       # small hole with a negative click: stays open
    m[30:50, 30:50] = False       # large hole: stays open
    out = clean_mask(m, positive=[(20, 20)], negative=[(10, 10)])
    np.testing.assert_array_equal(out, m)


def test_clean_without_a_positive_click_inside_drops_only_small_islands():
    m = np.zeros((60, 60), bool)
    m[5:30, 5:30] = True
    m[50:52, 50:52] = True
    out = clean_mask(m, positive=[(45, 10)])
    assert out[10, 10] and not out[50, 50]
    assert not clean_mask(np.zeros((5, 5), bool), positive=[(1, 1)]).any()


# -- several objects (formats: test_annotations.py) -----------------------------------------------------------

def test_label_map_later_objects_win():
    a = np.zeros((4, 5), bool)
    a[:, :3] = True
    b = np.zeros((4, 5), bool)
    b[:, 2:] = True
    lab = label_map([a, b])
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab[0], [1, 1, 2, 2, 2])


# -- evaluation protocol -------------------------------------------------------------------

def test_next_click_follows_the_ritm_rule():
    gt = np.zeros((50, 50), bool)
    gt[10:31, 10:31] = True
    x, y, pos = next_click(gt, np.zeros_like(gt))
    assert pos and (x, y) == (20, 20)
    pred = gt.copy()
    pred[40:50, 0:50] = True       # a thick false band, deeper than any miss
    pred[10:12, 10:31] = False     # a thin miss
    x, y, pos = next_click(gt, pred)
    assert not pos and not gt[y, x] and pred[y, x]
    assert next_click(gt, gt) is None


def test_noc_and_iou_after():
    ious = [0.5, 0.86, 0.8, 0.91]
    assert noc(ious, 0.85, 20) == 2 and noc(ious, 0.90, 20) == 4 and noc(ious, 0.95, 20) == 20
    assert iou_after(ious, 3) == 0.8 and iou_after(ious, 10) == 0.91
    assert iou(np.ones((2, 2), bool), np.zeros((2, 2), bool)) == 0.0


def test_a_fall_is_a_click_after_which_the_iou_drops_by_more_than_a_fifth():
    assert has_fall([0.5, 0.9, 0.65]) and has_fall([0.95, 0.1, 0.9])
    assert not has_fall([0.5, 0.9, 0.75, 0.95]) and not has_fall([0.3]) and not has_fall([])
    res = MethodResult("m", per_image=[[0.5, 0.9, 0.6], [0.2, 0.5, 0.8], [0.9, 0.4, 0.95]])
    assert res.summary()["falls"] == 2
    report = {"methods": {"m": res.summary()}, "seeds": [1, 3], "max_clicks": 20, "zoom": True, "threshold": 0.5}
    header, row = format_table(report).splitlines()[1:3]
    assert header.split()[6] == "falls" and row.split()[6] == "2"


def test_click_simulation_with_an_oracle_reaches_iou_one():
    comp = make_composite(EVAL_SEED_START)
    ious = click_ious(lambda rgb, p, n: comp.mask, comp.rgb, comp.mask)
    assert ious[0] == 1.0


def test_composites_are_deterministic_and_held_out():
    a, b = make_composite(EVAL_SEED_START + 3), make_composite(EVAL_SEED_START + 3)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.background != a.source
    assert 0.005 < a.mask.mean() < 0.3
    assert not np.array_equal(make_composite(EVAL_SEED_START + 4).mask, a.mask)
    with pytest.raises(ValueError):
        eval_composites(2, start=5)


# -- command line ---------------------------------------------------------------------------

def test_cli_segment_writes_a_binary_mask_of_the_image_size(tmp_path, tiny_checkpoint):
    img = tmp_path / "in.png"
    Image.fromarray(_rgb(70, 110)).save(img)
    out, coco = tmp_path / "mask.png", tmp_path / "mask.json"
    r = run_cli("segment", "--image", img, "--positive", "50,30", "--positive", "55,40", "--negative", "100,60",
                "--checkpoint", tiny_checkpoint, "--device", "cpu", "--precision", "fp32", "--out", out, "--coco", coco,
                timeout=300)
    assert r.returncode == 0, r.stderr
    m = np.asarray(Image.open(out))
    assert m.shape == (70, 110) and set(np.unique(m)) <= {0, 255}
    ann = json.loads(coco.read_text())["annotations"][0]
    np.testing.assert_array_equal(rle_decode(ann["segmentation"]), m == 255)



def test_cli_segment_answers_its_clicks_in_the_order_given(tmp_path, tiny_checkpoint):
    """The flags are the clicks in order, positive and negative interleaved: the mask is the
    one the page gives for that sequence (the most confident candidate, each click zooming
    around the one shown before it); ``--object-scale`` gives the object-scale mask alone."""
    from cmp.engine import Engine

    rgb = _rgb(140, 220, seed=5)
    img, out = tmp_path / "in.png", tmp_path / "mask.png"
    Image.fromarray(rgb).save(img)
    clicks = [(100, 60, True), (200, 120, False), (110, 80, True)]
    flags = [a for x, y, p in clicks for a in ("--positive" if p else "--negative", f"{x},{y}")]
    base = ["segment", "--image", img, *flags, "--checkpoint", tiny_checkpoint, "--device", "cpu",
            "--precision", "fp32", "--out", out]
    engine = Engine.from_checkpoint(tiny_checkpoint, device="cpu", precision="fp32")
    cands = candidate_clicks(engine, rgb, clicks)
    best = cands[best_candidate(cands)]
    for extra, want in (([], best), (["--object-scale"], segment_clicks(engine, rgb, clicks))):
        r = run_cli(*base, *extra, timeout=300)
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(np.asarray(Image.open(out)) == 255, want.mask)
        assert (f"zoom {want.box.width}x{want.box.height} at ({want.box.x0}, {want.box.y0})" if want.box
                else "no zoom") in r.stdout
        assert ("candidates part" in r.stdout) is (not extra)
    r = run_cli(*base, "--object-scale", "--all-candidates")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--object-scale" in r.stderr


def test_the_page_method_of_the_benchmark_keeps_the_first_clicks_candidate():
    """The benchmark's "page" method answers as the Segment page does: the most confident of the
    three at the object's first click, then that candidate alone, at its scale, zoomed around
    its mask; the every-click method may switch candidates."""
    from cmp.eval.segmentation import candidates_method, page_method
    from cmp.candidates import scale_named

    eng = BrightnessPropagator()
    rgb = np.random.default_rng(3).integers(0, 60, (240, 320, 3), dtype=np.uint8)
    rgb[40:100, 50:130, 0] = 220
    first = segment_candidates(eng, rgb, [(80, 60)], [])
    chosen = first[best_candidate(first)]
    (want,) = segment_candidates(eng, rgb, [(80, 60)], [(10, 10)], scales=scale_named(chosen.name),
                                 **zoom_history(chosen))
    page, every = page_method(eng), candidates_method(eng)
    for method in (page, every):
        np.testing.assert_array_equal(method(rgb, [(80, 60)], []), chosen.mask)
    calls = len(eng.sets)
    np.testing.assert_array_equal(page(rgb, [(80, 60)], [(10, 10)]), want.mask)
    assert len(eng.sets) == calls + 1  # one candidate's probes, not three
    again = segment_candidates(eng, rgb, [(80, 60)], [(10, 10)], **zoom_history(chosen))
    np.testing.assert_array_equal(every(rgb, [(80, 60)], [(10, 10)]), again[best_candidate(again)].mask)
    np.testing.assert_array_equal(page(rgb.copy(), [(80, 60)], []), chosen.mask)  # a new image starts afresh


def test_the_truth_choice_method_shows_the_candidate_nearest_the_true_mask():
    """The benchmark's "truth" method (an upper bound of the choice among the three) shows, at
    each click, the candidate with the best IoU against the true mask it is given; the protocol
    gives the true mask only to a method that asks for it."""
    from cmp.eval.segmentation import candidates_method, next_click, truth_choice_method

    eng = BrightnessPropagator()
    rgb = np.random.default_rng(3).integers(0, 60, (240, 320, 3), dtype=np.uint8)
    rgb[40:100, 50:130, 0] = 220
    first = segment_candidates(eng, rgb, [(80, 60)], [])
    distinct = [c for i, c in enumerate(first) if not any(np.array_equal(c.mask, d.mask) for d in first[:i])]
    assert len(distinct) >= 2  # the test needs candidates that differ
    for target in distinct:  # each candidate, as the truth, is the one shown
        got = truth_choice_method(eng)(rgb.copy(), [(80, 60)], [], truth=target.mask)
        np.testing.assert_array_equal(got, target.mask)
    assert not getattr(candidates_method(eng), "needs_truth", False)
    truth = np.zeros(rgb.shape[:2], bool)
    truth[40:100, 50:130] = True
    x, y, _ = next_click(truth, np.zeros_like(truth))
    offered = [iou(c.mask, truth) for c in segment_candidates(eng, rgb, [(x, y)], [])]
    ious = click_ious(truth_choice_method(eng), rgb, truth, max_clicks=5)
    assert ious[0] == pytest.approx(max(offered))


def test_cli_eval_segmentation_truth_method_row(tiny_checkpoint, capsys):
    base = ["eval", "segmentation", "--datasets", "composites", "--checkpoint", str(tiny_checkpoint), "--device",
            "cpu", "--precision", "fp32", "--n-images", "1", "--max-clicks", "5", "--json"]
    assert cli_main([*base, "--methods", "candidates,truth"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert list(rep["methods"]) == ["cmp, most confident of 3", "cmp, best of 3 by the truth"]
    row = rep["methods"]["cmp, best of 3 by the truth"]
    assert row["IoU@1"] == pytest.approx(rep["first_click"]["best"])  # the first click: the best of the three
    assert row["IoU@1"] >= rep["methods"]["cmp, most confident of 3"]["IoU@1"]
    assert cli_main([*base, "--no-zoom", "--methods", "truth"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-zoom" in err


def test_candidate_clicks_follow_the_shown_candidate_from_click_to_click():
    """Each click after the first zooms around the most confident candidate of the click before
    it, as the Segment page does; the last click's three candidates come back."""
    eng = BrightnessPropagator()
    rgb = np.random.default_rng(3).integers(0, 60, (240, 320, 3), dtype=np.uint8)
    rgb[40:100, 50:130, 0] = 220  # a red object: the mask the later clicks zoom around
    clicks = [(80, 60, True), (10, 10, False), (90, 70, True)]
    got = candidate_clicks(eng, rgb, clicks)
    first = segment_candidates(eng, rgb, [(80, 60)], [])
    second = segment_candidates(eng, rgb, [(80, 60)], [(10, 10)], **zoom_history(first[best_candidate(first)]))
    want = segment_candidates(eng, rgb, [(80, 60), (90, 70)], [(10, 10)],
                              **zoom_history(second[best_candidate(second)]))
    assert [c.name for c in got] == ["part", "object", "group"]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.mask, w.mask)
        assert g.box == w.box and g.confidence == w.confidence
    afresh = segment_candidates(eng, rgb, [(80, 60), (90, 70)], [(10, 10)])  # what forgetting the order gives
    assert any(a.box != g.box for a, g in zip(afresh, got))
    only_negative = candidate_clicks(eng, rgb, [(10, 10, False)])
    assert len(only_negative) == 3 and not any(c.mask.any() for c in only_negative)


def test_cli_segment_out_format_by_extension_and_candidates(tmp_path, tiny_checkpoint):
    from pycocotools.coco import COCO

    img = tmp_path / "in.png"
    Image.fromarray(_rgb(70, 110)).save(img)
    base = ["segment", "--image", img, "--positive", "50,30", "--checkpoint", tiny_checkpoint, "--device", "cpu",
            "--precision", "fp32"]
    png, js, txt = tmp_path / "m.png", tmp_path / "m.json", tmp_path / "m.txt"
    r = run_cli(*base, "--out", png, timeout=300)
    assert r.returncode == 0, r.stderr
    mask = np.asarray(Image.open(png)) == 255
    r = run_cli(*base, "--class", "cat", "--out", js, timeout=300)
    assert r.returncode == 0, r.stderr
    api = COCO(str(js))
    (ann,) = api.loadAnns(api.getAnnIds())
    assert api.loadCats(ann["category_id"])[0]["name"] == "cat" and ann["polygons"]
    np.testing.assert_array_equal(api.annToMask(ann).astype(bool), mask)
    r = run_cli(*base, "--class", "cat", "--all-candidates", "--out", txt, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "candidates part" in r.stdout
    lines = txt.read_text().splitlines()
    assert (tmp_path / "classes.txt").read_text() == "cat\n"
    assert 1 <= len(lines) <= 3 and all(line.startswith("0 ") for line in lines)
    r = run_cli(*base, "--candidates", "--out", js, timeout=300)
    assert r.returncode == 0, r.stderr
    (ann,) = json.loads(js.read_text())["annotations"]
    assert ann["attributes"]["candidate"] in ("part", "object", "group") and 0 <= ann["attributes"]["confidence"] <= 1
    r = run_cli(*base, "--out", tmp_path / "m.bmp")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and ".json" in r.stderr
    r = run_cli(*base, "--candidates", "--no-zoom", "--out", png)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--no-zoom" in r.stderr


@pytest.mark.parametrize("click, message", [("500,30", "outside"), ("5;30", "X,Y")])
def test_cli_segment_bad_click_is_one_line_exit_2(tmp_path, tiny_checkpoint, capsys, click, message):
    img = tmp_path / "in.png"
    Image.fromarray(_rgb(70, 110)).save(img)
    try:
        code = cli_main(["segment", "--image", str(img), "--positive", click, "--checkpoint", str(tiny_checkpoint),
                         "--out", str(tmp_path / "m.png")])
    except SystemExit as exc:  # a malformed click is an argparse usage error
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "m.png").exists()


def test_cli_eval_segmentation_runs_on_a_tiny_subset(tiny_checkpoint, capsys):
    code = cli_main(["eval", "segmentation", "--datasets", "composites", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                     "--precision", "fp32", "--n-images", "1", "--max-clicks", "5", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rep = json.loads(out)
    assert rep["seeds"] == [EVAL_SEED_START, EVAL_SEED_START]
    assert len(rep["methods"]) == 4
    assert {"cmp, most confident of 3", "cmp, the page's rule"} <= set(rep["methods"])
    fc = rep["first_click"]  # with the candidates method, what the first click offered
    assert list(fc["iou"]) == ["part", "object", "group"] and fc["images"] == 1
    assert fc["most_confident"] == pytest.approx(rep["methods"]["cmp, most confident of 3"]["IoU@1"])
    assert fc["best"] == pytest.approx(max(fc["iou"].values()))  # one image: the best candidate's IoU
    for s in rep["methods"].values():
        assert 1 <= s["NoC@85"] <= 5 and 1 <= s["NoC@90"] <= 5
        assert 0.0 <= s["IoU@1"] <= 1.0 and len(s["curve"]) == 5
    base = ["eval", "segmentation", "--datasets", "composites", "--checkpoint", str(tiny_checkpoint), "--device",
            "cpu", "--precision", "fp32", "--n-images", "1", "--max-clicks", "5", "--json"]
    assert cli_main([*base, "--no-zoom"]) == 0  # no candidates without zoom: the model and the baseline
    rep = json.loads(capsys.readouterr().out)
    rows = list(rep["methods"])
    assert len(rows) == 2 and rows[-1] == "geodesic baseline" and "cmp, most confident of 3" not in rows
    assert "first_click" not in rep
    assert cli_main([*base, "--no-zoom", "--methods", "candidates"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-zoom" in err


def test_first_click_reports_every_candidate_the_chosen_one_and_the_best_one():
    """What an object's first click offers: each candidate's IoU, the most confident one's (what
    the CLI and the page show) and the best one's, image by image as the protocol clicks."""
    from cmp.eval.composites import Composite
    from cmp.eval.segmentation import first_click, format_table, iou, next_click

    eng = BrightnessPropagator()
    comps = []
    for k, (y0, x0) in enumerate(((40, 50), (120, 180))):
        rgb = np.random.default_rng(k).integers(0, 60, (240, 320, 3), dtype=np.uint8)
        rgb[y0:y0 + 60, x0:x0 + 80, 0] = 220
        mask = np.zeros((240, 320), bool)
        mask[y0:y0 + 60, x0:x0 + 110] = True  # the object: the red box and a dark part beside it
        comps.append(Composite(rgb, mask, k, "noise", "red", "box"))
    got = first_click(eng, comps)
    per, picked = [], []
    for c in comps:
        x, y, _ = next_click(c.mask, np.zeros_like(c.mask))
        cands = segment_candidates(eng, c.rgb, [(x, y)], [])
        per.append([iou(m.mask, c.mask) for m in cands])
        picked.append(per[-1][best_candidate(cands)])
    per = np.array(per)
    assert got["images"] == 2 and list(got["iou"]) == ["part", "object", "group"]
    assert list(got["iou"].values()) == pytest.approx(per.mean(axis=0).tolist())
    assert got["most_confident"] == pytest.approx(np.mean(picked))
    assert got["best"] == pytest.approx(per.max(axis=1).mean()) and got["best"] >= got["most_confident"]
    assert got["chosen_is_best"] == pytest.approx(np.mean(np.array(picked) >= per.max(axis=1)))
    row = {"NoC@85": 1.0, "NoC@90": 2.0, "IoU@1": 0.5, "IoU@3": 0.9, "IoU@5": 0.9, "falls": 0, "images": 2,
           "seconds": 0.1}
    report = {"dataset": "composites", "kind": "composite", "methods": {"m": row}, "seeds": [0, 1],
              "max_clicks": 20, "zoom": True, "threshold": 0.5, "first_click": got}
    assert f"the best of them {got['best']:.3f}" in format_table(report)


def test_segment_refines_by_default_and_refine_none_is_the_plain_threshold():
    from cmp.refine import refine_mask
    from cmp.segment import DEFAULT_REFINE

    rgb = _rgb(48, 72, 3)
    rgb[:, :36, 0] = np.minimum(rgb[:, :36, 0], 60)  # red (the fake score) is low on the left
    pos = [(50, 24)]
    plain = segment(BrightnessPropagator(), rgb, pos, zoom=False, pin_frame=False, refine=None)
    assert np.array_equal(plain.mask, clean_mask(plain.score > 0.5, pos))
    assert DEFAULT_REFINE is not None
    refined = segment(BrightnessPropagator(), rgb, pos, zoom=False, pin_frame=False)
    expect = clean_mask(refine_mask(DEFAULT_REFINE, rgb, refined.score, pos, [], threshold=0.5), pos)
    assert np.array_equal(refined.mask, expect)
    with pytest.raises(ValueError, match="unknown refinement"):
        segment(BrightnessPropagator(), rgb, pos, refine="sharpen")


def test_cli_eval_segmentation_reports_each_set_with_its_kind(capsys):
    code = cli_main(["eval", "segmentation", "--methods", "baseline", "--datasets", "composites,motorcycle-objects",
                     "--n-images", "1", "--max-clicks", "5", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    sets = json.loads(out)["sets"]
    assert sets["composites"]["kind"].startswith("composite")
    assert sets["motorcycle-objects"]["kind"].startswith("real")
    assert len(sets["motorcycle-objects"]["methods"]["geodesic baseline"]["curve"]) == 5


@pytest.mark.parametrize("pos, neg, message", [
    ([(5, 5)] * 40, [(6, 6)] * 25, "too many clicks (65); the limit is 64"),
    ([(float("nan"), 5)], [], "click coordinates must be finite numbers"),
    ([(5, 5)], [(3, float("inf"))], "click coordinates must be finite numbers"),
    ([(5, 5)], [(40, 3)], "click (40, 3) lies outside the 32x24 image"),
    ([(-1, 5)], [], "click (-1, 5) lies outside the 32x24 image"),
])
def test_clicks_and_guidance_share_one_validator_worded_for_each(pos, neg, message):
    from cmp.guidance import GuidanceError, validate_points
    from cmp.segment import check_clicks

    with pytest.raises(GuidanceError) as ei:
        check_clicks(pos, neg, 24, 32)
    assert str(ei.value) == message
    rows = [(x, y, 1.0, 0.0) for x, y in [*pos, *neg]]
    with pytest.raises(GuidanceError) as ei:
        validate_points(rows, 24, 32)
    assert str(ei.value) == (message.replace("clicks", "guidance points").replace("click (", "point (")
                             .replace("click coordinates must be finite numbers",
                                      "guidance values must be finite numbers (no NaN or infinity)"))
    p, n = check_clicks([(1, 1)], [], 24, 32)
    assert p.shape == (1, 2) and n.shape == (0, 2)
