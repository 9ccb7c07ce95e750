"""Segment page: the public /segment_mask endpoint through gradio_client, and the page's state helpers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cmp.masks import rle_decode, rle_encode
from demos import segment as page


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    from skimage import data

    p = tmp_path_factory.mktemp("seg") / "cat.png"
    Image.fromarray(data.chelsea()).resize((150, 100), Image.Resampling.LANCZOS).save(p)
    return str(p)


def _call(client, image_path, pts, threshold=0.5, zoom=True):
    from gradio_client import handle_file

    return client.predict(handle_file(image_path), pts if isinstance(pts, str) else json.dumps(pts),
                          threshold, zoom, api_name="/segment_mask")


@pytest.mark.parametrize("zoom", [True, False])
def test_segment_mask_endpoint_returns_binary_mask_and_coco(client, image_path, zoom):
    png, coco = _call(client, image_path, {"positive": [[60, 40], [70, 45]], "negative": [[140, 90]]}, zoom=zoom)
    m = np.asarray(Image.open(png))
    assert m.shape == (100, 150) and set(np.unique(m)) <= {0, 255}
    assert coco["images"][0]["width"] == 150 and coco["images"][0]["height"] == 100
    ann = coco["annotations"][0]
    np.testing.assert_array_equal(rle_decode(ann["segmentation"]), m == 255)
    assert ann["area"] == int((m == 255).sum())


def test_segment_mask_with_an_order_answers_the_clicks_as_the_page_does(client, image_path, tiny_engine):
    """With "order" (what the page's points JSON now carries), each later click zooms around the
    mask before it, as on the page; without it the points are a set, answered at once."""
    from conftest import TEST_MAX_SIDE

    from cmp.segment import segment, segment_clicks
    from demos.common import read_image

    pts = {"positive": [[60, 40], [75, 50]], "negative": [[120, 80]], "order": "pnp"}
    rgb, _ = read_image(image_path, TEST_MAX_SIDE)
    png, _ = _call(client, image_path, pts)
    want = segment_clicks(tiny_engine, rgb, [(60, 40, True), (120, 80, False), (75, 50, True)])
    np.testing.assert_array_equal(np.asarray(Image.open(png)) == 255, want.mask)
    png, _ = _call(client, image_path, {"positive": pts["positive"], "negative": pts["negative"]})
    np.testing.assert_array_equal(np.asarray(Image.open(png)) == 255,
                                  segment(tiny_engine, rgb, pts["positive"], pts["negative"]).mask)


def test_the_page_segments_the_app_default_with_its_grouping_model(tmp_path, tiny_engine, image_path):
    """An app whose default model names a segmentation model in the registry: the page's and the
    API's masks come from that model, a model the session chose segments itself, and motion stays
    on the default."""
    from conftest import TEST_MAX_SIDE
    from helpers import registry_with_a_segmentation_model

    from cmp.pool import EnginePool
    from cmp.segment import segment
    from demos.common import Context, read_image

    reg = registry_with_a_segmentation_model(tmp_path)
    ctx = Context(engine=tiny_engine, pool=EnginePool(tiny_engine, default_ref="default", registry=reg))
    rgb, _ = read_image(image_path, TEST_MAX_SIDE)
    pos, neg = [(60, 40)], [(140, 90)]
    got = page.mask_for(ctx, rgb, pos, neg, 0.5, True).mask
    grouping, other = ctx.pool.get("grouping"), ctx.pool.get("other")
    np.testing.assert_array_equal(got, segment(grouping, rgb, pos, neg).mask)
    assert not np.array_equal(got, segment(tiny_engine, rgb, pos, neg).mask)  # the models differ here
    np.testing.assert_array_equal(page.mask_for(ctx, rgb, pos, neg, 0.5, True, model="other").mask,
                                  segment(other, rgb, pos, neg).mask)
    assert ctx.engine_for(None) is tiny_engine and ctx.segmenter_for(None) is grouping


@pytest.mark.parametrize("pin_frame", [True, False])
def test_segment_mask_endpoint_passes_frame_pins_to_the_library(client, image_path, pin_frame, monkeypatch):
    # The app runs in this process: a spy on the use case's segment() sees what the endpoint asked for.
    from gradio_client import handle_file

    from cmp import annotate
    seen = []
    real = annotate.segment

    def spy(*args, **kw):
        seen.append(kw.get("pin_frame"))
        return real(*args, **kw)
    monkeypatch.setattr(annotate, "segment", spy)
    pts = json.dumps({"positive": [[60, 40]], "negative": [[140, 90]]})
    png, _ = client.predict(handle_file(image_path), pts, 0.5, False, pin_frame, api_name="/segment_mask")
    assert seen == [pin_frame] and np.asarray(Image.open(png)).shape == (100, 150)
    seen.clear()
    client.predict(handle_file(image_path), pts, 0.5, False, api_name="/segment_mask")  # older 4-argument calls
    assert seen == [True]


@pytest.mark.parametrize("pts, message", [
    ("{not json", "valid JSON"),
    ({"positive": [[500, 20]]}, "outside"),
    ({"negative": [[5, 5]]}, "positive"),
    ({"positive": [[1, 2, 3]]}, "[x, y]"),
    ({"pos": [[1, 2]]}, "unknown keys"),
    ({"positive": [[60, 40]], "negative": [[5, 5]], "order": "pp"}, "one letter per point"),
    ({"positive": [[60, 40]], "order": "x"}, "one letter per point"),
    ({"positive": [[60, 40]], "order": 1}, "one letter per point"),
])
def test_segment_mask_bad_input_is_a_one_line_error(client, image_path, pts, message):
    with pytest.raises(Exception) as info:
        _call(client, image_path, pts)
    text = str(info.value)
    assert message in text and "Traceback" not in text and "\n" not in text.strip()


def test_segment_mask_rejects_bad_threshold(client, image_path):
    with pytest.raises(Exception, match="threshold|maximum"):
        _call(client, image_path, {"positive": [[60, 40]]}, threshold=1.0)


# -- page state helpers (no server) -------------------------------------------------

def _mask(h, w, x0, x1):
    m = np.zeros((h, w), bool)
    m[:, x0:x1] = True
    return rle_encode(m)["counts"]


def test_state_click_next_object_undo_clear_cycle():
    st = page.new_state((10, 20))
    st = page.add_click(st, 3, 4, True)
    st = page.add_click(st, 15, 5, False)
    assert page.split_clicks(st["clicks"]) == ([[3.0, 4.0]], [[15.0, 5.0]])
    with pytest.raises(ValueError):
        page.finish_object(st)  # no mask computed yet
    st = {**st, "mask": _mask(10, 20, 0, 5)}
    st = page.finish_object(st)
    assert st["clicks"] == [] and st["mask"] is None and len(st["objects"]) == 1
    st = page.add_click(st, 12, 2, True)
    st = {**st, "mask": _mask(10, 20, 10, 14)}
    masks = page.all_masks(st)
    assert len(masks) == 2 and masks[0][:, :5].all() and masks[1][:, 10:14].all()
    st = page.undo(st)                      # drops the click and the stale mask
    assert st["clicks"] == [] and st["mask"] is None
    st = page.undo(st)                      # reopens the finished object
    assert len(st["objects"]) == 0 and len(st["clicks"]) == 2 and st["mask"] == _mask(10, 20, 0, 5)
    assert page.undo(page.new_state((10, 20))) == page.new_state((10, 20))
    json.loads(json.dumps(st))              # state stays plain, deep-copyable JSON


def test_render_draws_objects_mask_and_clicks_without_touching_the_image():
    rgb = np.full((40, 60, 3), 100, np.uint8)
    st = {**page.new_state((40, 60)), "clicks": [[10, 10, 1], [50, 30, 0]], "mask": _mask(40, 60, 0, 20),
          "objects": [{"clicks": [], "mask": _mask(40, 60, 40, 60)}]}
    out = page.render(rgb, st)
    assert out.shape == rgb.shape and np.all(rgb == 100)
    assert not np.array_equal(out[20, 30], out[20, 5])  # current mask tinted, background not
    assert not np.array_equal(out[5, 45], out[20, 5])   # finished object in another colour
    assert out[10, 10, 1] > out[10, 10, 0]              # green positive marker
    assert out[30, 50, 0] > out[30, 50, 1]              # red negative marker


def test_parse_points_and_round_trip():
    pos, neg = page.parse_points(page.points_json([[1, 2, 1], [3.5, 4, 0]]))
    assert pos == [[1.0, 2.0]] and neg == [[3.5, 4.0]]
    with pytest.raises(ValueError):
        page.parse_points("[]")


def test_segment_mask_endpoint_returns_candidates_with_polygons(client, image_path):
    from gradio_client import handle_file
    from pycocotools.coco import COCO

    pts = json.dumps({"positive": [[60, 40]]})
    png, coco = client.predict(handle_file(image_path), pts, 0.5, True, True, True, api_name="/segment_mask")
    m = np.asarray(Image.open(png)) == 255
    cands = coco["candidates"]
    assert [c["attributes"]["candidate"] for c in cands] == ["part", "object", "group"]
    confs = [c["attributes"]["confidence"] for c in cands]
    assert all(0.0 <= c <= 1.0 for c in confs)
    chosen = [c["chosen"] for c in cands]
    assert chosen.count(True) == 1 and confs[chosen.index(True)] == max(confs)
    np.testing.assert_array_equal(rle_decode(cands[chosen.index(True)]["segmentation"]), m)
    np.testing.assert_array_equal(rle_decode(coco["annotations"][0]["segmentation"]), m)
    ann = coco["annotations"][0]
    assert "polygons" in ann and ann["area"] == int(m.sum())
    # without candidates the old single mask, now with polygons too; the dict loads in pycocotools
    _, plain = client.predict(handle_file(image_path), pts, 0.5, True, True, api_name="/segment_mask")
    assert "candidates" not in plain and plain["annotations"][0]["polygons"]
    api = COCO()
    api.dataset = plain
    api.createIndex()
    assert api.loadCats(1)[0]["name"] == "object"


def test_speed_class_and_candidates_in_the_page_state():
    st = page.new_state((10, 20))
    st = page.add_click(st, 3, 4, True, now=100.0)
    st = page.add_click(st, 15, 5, False, now=101.0)
    st = page.undo(st)
    st = page.add_click(st, 16, 5, False, now=103.0)
    assert st["t0"] == 100.0 and st["n_clicks"] == 3          # undone clicks still count as effort
    cands = [{"name": n, "confidence": c, "mask": _mask(10, 20, 0, w)}
             for n, c, w in (("part", 0.4, 2), ("object", 0.9, 5), ("group", 0.7, 9))]
    st = page.set_candidates(st, cands)
    assert st["chosen"] == 1 and st["mask"] == cands[1]["mask"]
    assert page.candidate_choices(st) == ["part · 0.40", "object · 0.90", "group · 0.70"]
    st = page.set_candidates(st, cands, st["chosen"] + 2)   # "next candidate" wraps around
    assert st["chosen"] == 0 and st["mask"] == cands[0]["mask"]
    st = page.finish_object(st, "  red car ", now=107.5)
    (obj,) = st["objects"]
    assert (obj["label"], obj["n_clicks"], obj["seconds"]) == ("red car", 3, 7.5)
    assert st["t0"] is None and st["n_clicks"] == 0
    table = page.speed_table(st)
    assert "| 1 | red car | 3 | 7.5 | 20 |" in table and "Session: 1 object, 3 clicks, 7.5 s" in table
    (ann,) = page.annotations(st, "ignored: no current mask")
    assert ann.category == "red car" and ann.seconds == 7.5 and ann.clicks == 3
    json.loads(json.dumps(st))


def test_evidence_images_show_four_flows_and_the_threshold_line():
    from demos import evidence

    flows = np.zeros((4, 30, 40, 2), np.float32)
    for i, (dx, dy) in enumerate(((5, 0), (-5, 0), (0, 5), (0, -5))):
        flows[i, 10:20, 10:30] = (dx, dy)
    grid = evidence.probe_flows_image(flows)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    h, w = grid.shape[:2]
    m = h // 2
    tiles = [grid[:m, :w // 2], grid[:m, w // 2:], grid[m:, :w // 2], grid[m:, w // 2:]]
    colours = {tuple(int(v) for v in t.reshape(-1, 3)[np.argmax(np.ptp(t.reshape(-1, 3), axis=1))]) for t in tiles}
    assert len(colours) == 4                                   # four directions, four colours
    score = np.linspace(0, 1, 50, dtype=np.float32)[None].repeat(20, 0)
    img = evidence.score_image(score, 0.3)
    red = np.all(img == evidence.THRESHOLD_COLOR, axis=2)
    cols = np.flatnonzero(red.sum(axis=0) > 30)                # the vertical threshold line
    x0 = evidence.TILE + 2 * evidence.PAD                      # heat map (TILE px wide here) + margins
    assert len(cols) and abs(cols.mean() - (x0 + 0.3 * evidence.PLOT_WIDTH)) <= 2
