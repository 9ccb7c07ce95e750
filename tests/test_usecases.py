"""The use-case layer: cmp.annotate (Segment's state machine and points format), cmp.lease.run_model
(every model call of every public endpoint under one GPU-lease wrapper; evicted encodings recomputed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from gradio_client import handle_file

from cmp import annotate, lease
from cmp.engine import ImageNotCached
from cmp.guidance import MAX_POINTS, GuidanceError


@pytest.fixture
def counted(monkeypatch):
    """Swap the wrapper for one that records which functions ran under it (the app runs in this process)."""
    calls = []
    real = lease.run_model

    def counting(fn, *args, **kwargs):
        calls.append(getattr(fn, "__name__", repr(fn)))
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(lease, "run_model", counting)
    return calls


@pytest.mark.parametrize("api, args, expect", [
    ("/motion_flow", ('[[40, 30, 6, 0]]',), "flow_for"),
    ("/motion_video", ('[[40, 30, 6, 0]]', 4, 8, 1.0, "linear", "once"), "render"),
    ("/motion_recipe", (None,), "render"),
    ("/segment_mask", ('{"positive": [[60, 45]]}', 0.5, True), "segment"),
    ("/segment_mask", ('{"positive": [[60, 45]]}', 0.5, True, True, True), "segment_candidates"),
    ("/gallery_task", ("motion_propagation", "normal", 1, True, "jitter"), "motion_propagation"),
])
def test_every_public_endpoint_runs_its_model_work_under_the_lease(client, sample_images, counted, api, args,
                                                                   expect):
    photo = handle_file(sample_images["photo"])
    if api == "/motion_recipe":
        from cmp.recipe import from_inputs
        from cmp.tracks import parse_motion
        rgb = np.zeros((90, 120, 3), np.uint8)
        args = (from_inputs(rgb, parse_motion("[[40, 30, 6, 0]]"), frames=4, fps=8).to_json(),)
    client.predict(photo, *args, api_name=api)
    assert expect in counted


def test_state_machine_round_trip_without_gradio():
    st = annotate.new_state((40, 60))
    st = annotate.add_click(st, 10, 12, True, now=100.0)
    st = annotate.add_click(st, 50, 30, False, now=101.0)
    three = annotate.add_click(st, 20, 15, True, now=102.0)["clicks"]
    assert json.loads(annotate.points_json(three)) == {"positive": [[10.0, 12.0], [20.0, 15.0]],
                                                       "negative": [[50.0, 30.0]], "order": "pnp"}
    text = annotate.points_json(three)
    assert annotate.parse_points(text, 40, 60) == ([[10.0, 12.0], [20.0, 15.0]], [[50.0, 30.0]])
    assert annotate.read_points(text, 40, 60)[2] == [(10.0, 12.0, True), (50.0, 30.0, False), (20.0, 15.0, True)]
    assert annotate.read_points('{"positive": [[10, 12]], "negative": [[50, 30]]}', 40, 60)[2] is None  # a set
    mask = np.zeros((40, 60), bool)
    mask[5:20, 5:20] = True
    from cmp.masks import rle_encode
    st = annotate.set_candidates(st, [{"name": "object", "confidence": 0.9, "mask": rle_encode(mask)["counts"]}])
    st = annotate.finish_object(st, "cat", now=104.0)
    (obj,) = annotate.annotations(st)
    assert obj.category == "cat" and obj.clicks == 2 and obj.seconds == 4.0 and obj.mask.sum() == mask.sum()
    st = annotate.undo(st)  # reopens the finished object
    assert st["objects"] == [] and len(st["clicks"]) == 2


@pytest.mark.parametrize("text, words", [
    ('{"positive": [[500, 20]]}', "outside"),
    ('{"positive": [], "negative": [[1, 1]]}', "at least one positive"),
    (json.dumps({"positive": [[1, 1]] * (MAX_POINTS + 1)}), "too many"),
])
def test_points_have_one_validator_for_page_api_and_cli(text, words):
    with pytest.raises(GuidanceError, match=words):
        annotate.parse_points(text, 40, 60)
    pos, neg = json.loads(text).get("positive"), json.loads(text).get("negative", [])
    with pytest.raises(GuidanceError, match=words):
        annotate.check_points(pos, neg, 40, 60)


def test_cli_refuses_points_with_the_same_message(tmp_path, sample_images, capsys):
    from cmp.cli import main
    code = main(["segment", "--image", sample_images["photo"], "--positive", "500,20", "--out",
                 str(tmp_path / "m.png"), "--checkpoint", "default"])
    assert code == 2 and "outside the 120x90 image" in capsys.readouterr().err


def test_an_encoding_evicted_between_clicks_is_recomputed(tiny_engine, sample_images):
    from cmp.images import load_image
    rgb, _ = load_image(sample_images["photo"])
    st = annotate.add_click(annotate.new_state(rgb.shape[:2]), 60, 45, True)
    st1, _ = annotate.recompute(tiny_engine, rgb, st)
    tiny_engine.cache.clear()  # another session's images pushed ours out
    st2, res = annotate.recompute(tiny_engine, rgb, annotate.add_click(st, 62, 47, True))
    assert res is not None and len(st2["candidates"]) == 3
    tiny_engine.cache.clear()
    again, _ = annotate.recompute(tiny_engine, rgb, st)
    assert [c["mask"] for c in again["candidates"]] == [c["mask"] for c in st1["candidates"]]


def test_an_encoding_evicted_inside_a_call_is_recomputed_once(tiny_engine, sample_images):
    from cmp.images import load_image
    rgb, _ = load_image(sample_images["photo"])
    evictions = []

    def flow_with_eviction():
        handle = tiny_engine.set_image(rgb)
        if not evictions:  # evicted between set_image and propagate, the first time only
            evictions.append(1)
            tiny_engine.cache.clear()
        return tiny_engine.propagate(handle, arrows=[[40, 30, 5, 0]])

    flow = lease.run_model(flow_with_eviction)
    assert flow.shape == (90, 120, 2) and evictions == [1]
    tries = []

    def always_evicted():
        tries.append(1)
        raise ImageNotCached("gone")

    with pytest.raises(ImageNotCached):  # evicted again right away: not hidden, not looped on
        lease.run_model(always_evicted)
    assert len(tries) == 2


def test_first_click_gives_three_readings_and_later_clicks_refine_the_chosen_one(monkeypatch):
    """Like SAM's multi-mask output for a lone click: the first click of an object computes
    part, object and group; later clicks recompute only the reading chosen, zoomed around that
    reading's mask so far, and take away from it (a negative click); choosing another recomputes
    that one from all the clicks afresh; after an undo of a click with nothing kept all three
    come back."""
    from types import SimpleNamespace

    import cmp.annotate as A
    from cmp.candidates import CANDIDATE_SCALES
    from cmp.zoom import Box

    asked, arounds, keeps = [], [], []

    def fake(engine, rgb, pos, neg, *, threshold, pin_frame, scales, around=None, keep=None, evidence=True):
        asked.append([s[0] for s in scales])
        arounds.append(around)
        keeps.append(keep)
        out = []
        for s in scales:
            m = np.zeros((20, 30), bool)
            m[:len(pos) + len(neg) + 2, len(neg):5 + CANDIDATE_SCALES.index(s) * 5 + len(neg)] = True
            view = Box(0, 0, 10 + CANDIDATE_SCALES.index(s), 10 + CANDIDATE_SCALES.index(s))  # a crop per reading
            out.append(SimpleNamespace(name=s[0], confidence=0.5 + 0.1 * CANDIDATE_SCALES.index(s), mask=m,
                                       box=view))
        return out

    monkeypatch.setattr(A, "segment_candidates", fake)
    rgb = np.zeros((20, 30, 3), np.uint8)
    names = [s[0] for s in CANDIDATE_SCALES]
    st = A.add_click(A.new_state((20, 30)), 5, 5, True)
    st, res = A.recompute(None, rgb, st)
    assert asked[-1] == names and res.name == names[-1]  # the most confident reading is chosen
    assert arounds[-1] is None and keeps[-1] is None  # a first click zooms around itself
    assert [c["around"] for c in st["candidates"]] == [[0, 0, 5, 3], [0, 0, 10, 3], [0, 0, 15, 3]]
    st, _ = A.choose(None, rgb, st, 0)
    assert asked[-1] == [names[0]] and st["chosen"] == 0 and arounds[-1] is None
    st, res = A.recompute(None, rgb, A.add_click(st, 8, 8, False), )
    assert asked[-1] == [names[0]] and res.name == names[0] and st["chosen"] == 0
    assert arounds[-1] == Box(0, 0, 5, 3)  # the chosen reading's mask before this click
    assert keeps[-1] == Box(0, 0, 10, 10)  # and its crop, kept while it fits
    # two clicks: the reading afresh (rows 0-3, columns 1-5) and, the click being negative, only
    # what it takes away from the mask before it (rows 0-2, columns 0-4): their intersection
    assert A.decode(st, st["mask"]).sum() == 3 * 4
    st, _ = A.choose(None, rgb, st, 1)  # another reading: recomputed from both clicks
    assert asked[-1] == [names[1]] and A.decode(st, st["mask"]).sum() == 4 * 10
    assert arounds[-1] == Box(0, 0, 10, 3) and keeps[-1] == Box(0, 0, 11, 11)  # that reading's last mask
    st, _ = A.recompute(None, rgb, A.undo(st))
    assert asked[-1] == names and arounds[-1] is None


def test_page_chooses_the_candidate_the_cli_and_api_choose_when_rounding_ties_them(monkeypatch):
    """The state keeps each confidence rounded to 3 digits for display; the first click still
    chooses by the confidences as computed, as :func:`cmp.candidates.best_candidate` (the CLI, the
    API and the benchmark) does, so two readings equal to 3 digits do not fall to the first one."""
    from types import SimpleNamespace

    import cmp.annotate as A
    from cmp.candidates import CANDIDATE_SCALES, best_candidate

    confidences = (0.5, 0.94588, 0.94604)  # object and group both show as 0.946

    def fake(engine, rgb, pos, neg, *, threshold, pin_frame, scales, around=None, keep=None, evidence=True):
        return [SimpleNamespace(name=s[0], confidence=confidences[CANDIDATE_SCALES.index(s)],
                                mask=np.eye(20, 30, k=CANDIDATE_SCALES.index(s), dtype=bool), box=None)
                for s in scales]

    monkeypatch.setattr(A, "segment_candidates", fake)
    st, res = A.recompute(None, np.zeros((20, 30, 3), np.uint8), A.add_click(A.new_state((20, 30)), 5, 5, True))
    want = best_candidate(fake(None, None, [], [], threshold=0.5, pin_frame=True, scales=CANDIDATE_SCALES))
    assert want == 2 and st["chosen"] == want and res.name == CANDIDATE_SCALES[want][0]
    assert [c["confidence"] for c in st["candidates"]][1:] == [0.946, 0.946]
    np.testing.assert_array_equal(A.decode(st, st["mask"]), np.eye(20, 30, k=2, dtype=bool))


def test_page_clicks_add_or_take_away_and_undo_brings_back_what_was_shown(monkeypatch):
    """On the page a new click adds to the chosen mask (positive) or takes away from it (negative);
    undo shows again what was shown before the click, without the model; the same clicks at
    another threshold are read afresh (and undo then reads the remaining clicks afresh too)."""
    from types import SimpleNamespace

    import cmp.annotate as A
    from cmp.zoom import Box

    calls = []

    def fake(engine, rgb, pos, neg, *, threshold, pin_frame, scales, around=None, keep=None, evidence=True):
        calls.append(threshold)
        out = []
        for s in scales:  # read afresh, every reading is a band of columns that moves with the clicks
            m = np.zeros((20, 30), bool)
            m[:, 5 * len(pos):5 * len(pos) + 5 + len(neg)] = True
            out.append(SimpleNamespace(name=s[0], confidence=0.5, mask=m, box=Box(0, 0, 30, 20)))
        return out

    monkeypatch.setattr(A, "segment_candidates", fake)
    rgb = np.zeros((20, 30, 3), np.uint8)
    st, _ = A.recompute(None, rgb, A.add_click(A.new_state((20, 30)), 6, 5, True))
    one = A.decode(st, st["mask"])
    assert one[:, 5:10].all() and one.sum() == 20 * 5
    st, res = A.recompute(None, rgb, A.add_click(st, 12, 5, True))
    two = A.decode(st, st["mask"])
    np.testing.assert_array_equal(two, one | (np.arange(30) // 5 == 2)[None].repeat(20, 0))  # added, nothing lost
    np.testing.assert_array_equal(res.mask, two)
    st, _ = A.recompute(None, rgb, A.add_click(st, 11, 5, False))
    three = A.decode(st, st["mask"])
    assert three.sum() == 20 * 5 and three[:, 10:15].all()  # afresh columns 10-15 and the mask before: what both hold
    n = len(calls)
    back = A.undo(st)
    assert len(calls) == n and back["mask"] == A.rle_encode(two)["counts"] and len(back["clicks"]) == 2
    back = A.undo(back)
    assert back["mask"] == A.rle_encode(one)["counts"] and len(back["clicks"]) == 1
    st, _ = A.recompute(None, rgb, st, threshold=0.3)  # the same three clicks, another threshold: afresh
    assert calls[-1] == 0.3 and A.decode(st, st["mask"])[:, 10:16].all() and A.decode(st, st["mask"]).sum() == 20 * 6
    assert A.undo(st)["mask"] is None  # nothing kept from before the setting: the page reads the clicks again


def test_the_evidence_reads_the_clicks_without_changing_the_mask_they_added_up_to(monkeypatch):
    """The page's evidence (:func:`cmp.annotate.reading`) is the chosen candidate's reading of the
    clicks, computed as choosing it would, and it leaves the state alone, so opening the evidence
    after a few clicks keeps the mask they added up to."""
    from types import SimpleNamespace

    import cmp.annotate as A
    from cmp.zoom import Box

    asked = []

    def fake(engine, rgb, pos, neg, *, threshold, pin_frame, scales, around=None, keep=None, evidence=True):
        asked.append(evidence)
        m = np.zeros((20, 30), bool)
        m[:, 5 * len(pos):5 * len(pos) + 5] = True  # read afresh, a band of columns that moves with the clicks
        return [SimpleNamespace(name=s[0], confidence=0.5, mask=m, box=Box(0, 0, 30, 20), score=m * 1.0)
                for s in scales]

    monkeypatch.setattr(A, "segment_candidates", fake)
    rgb = np.zeros((20, 30, 3), np.uint8)
    st = A.new_state((20, 30))
    assert A.reading(None, rgb, st) is None
    st, _ = A.recompute(None, rgb, A.add_click(st, 6, 5, True), evidence=False)  # the evidence closed
    st, _ = A.recompute(None, rgb, A.add_click(st, 12, 5, True), evidence=False)
    assert asked == [False, False]  # no probe flows asked for while nobody looks at them
    before = dict(st)
    res = A.reading(None, rgb, st)
    assert asked[-1] is True  # opening the evidence asks for them
    assert st == before and A.decode(st, st["mask"])[:, 5:15].all()  # the two clicks' union, still shown
    assert res.name == st["candidates"][st["chosen"]]["name"] and res.mask[:, 10:15].all() and res.mask.sum() == 100
    _, again = A.choose(None, rgb, st, st["chosen"])
    np.testing.assert_array_equal(again.mask, res.mask)  # the same reading choosing computes


def test_switching_to_another_candidate_and_back_keeps_what_the_clicks_added_up_to(monkeypatch):
    """After a few clicks the shown candidate's mask adds up their readings; looking at another
    candidate reads that one from the clicks afresh, and coming back shows the added-up mask
    again instead of a fresh reading (nothing the user built is lost by switching)."""
    from types import SimpleNamespace

    import cmp.annotate as A
    from cmp.candidates import CANDIDATE_SCALES
    from cmp.zoom import Box

    def fake(engine, rgb, pos, neg, *, threshold, pin_frame, scales, around=None, keep=None, evidence=True):
        out = []
        for s in scales:  # read afresh, a band of columns that moves with the clicks, one row band per reading
            i = CANDIDATE_SCALES.index(s)
            m = np.zeros((20, 30), bool)
            m[5 * i:5 * i + 5, 5 * len(pos):5 * len(pos) + 5] = True
            out.append(SimpleNamespace(name=s[0], confidence=0.5 + 0.1 * i, mask=m, box=Box(0, 0, 30, 20)))
        return out

    monkeypatch.setattr(A, "segment_candidates", fake)
    rgb = np.zeros((20, 30, 3), np.uint8)
    st, _ = A.recompute(None, rgb, A.add_click(A.new_state((20, 30)), 6, 5, True))
    st, _ = A.recompute(None, rgb, A.add_click(st, 12, 5, True))
    k = st["chosen"]
    built = A.decode(st, st["mask"])
    assert built.sum() == 50 and built[10:15, 5:15].all()  # the two clicks' readings, added up
    other, res = A.choose(None, rgb, st, k + 1)
    assert other["chosen"] == (k + 1) % 3 and A.decode(other, other["mask"]).sum() == 25  # read afresh
    back, res = A.choose(None, rgb, other, k)
    np.testing.assert_array_equal(A.decode(back, back["mask"]), built)
    assert res.mask.sum() == 25  # the reading is still what the evidence draws
    st, _ = A.recompute(None, rgb, back, threshold=0.3)  # a changed setting reads every candidate afresh
    assert A.decode(st, st["mask"]).sum() == 25


def test_the_one_photo_resize_averages_when_shrinking_and_keeps_the_array_at_its_size():
    from cmp.geometry import ImageTransform
    from cmp.images import resize_rgb

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    assert resize_rgb(rgb, 80, 60) is rgb
    stripes = np.zeros((60, 80, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: sampling would alias them, averaging gives grey
    small = resize_rgb(stripes, 40, 30)
    assert small.shape == (30, 40, 3) and np.abs(small.astype(int) - 128).max() <= 1
    big = resize_rgb(rgb, 160, 120)
    assert big.shape == (120, 160, 3) and np.abs(big[::2, ::2].astype(int) - rgb).mean() < 40
    # the model input goes through it: the transform's resized part equals it
    tf = ImageTransform(60, 80, 64)
    ih, iw = tf.inner_size
    np.testing.assert_array_equal(tf.apply_image(rgb)[:ih, :iw], resize_rgb(rgb, iw, ih))
