"""The shared engine: caching changes speed, never results; geometry is exact; bad input is refused."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

from cmp.device import Runtime
from cmp.engine import Engine, FeatureCache, ImageNotCached
from cmp.geometry import ImageSizeError, ImageTransform
from cmp.guidance import GuidanceError
from cmp.model import TINY, TINY_AFFINITY, DecoderPartials, ImageFeatures, build_cmp

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def tiny_model(seed=0, propagation="decoder"):
    torch.manual_seed(seed)
    m = build_cmp(TINY if propagation == "decoder" else TINY_AFFINITY)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
        if propagation == "decoder":
            m.flow_decoder.head.weight.mul_(20)  # spread the logits so the flow is far from uniform
            m.flow_encoder.features[0].weight.mul_(30)  # and let a single guidance pixel matter
        else:
            m.embed_head[-1].weight.mul_(3)  # embeddings far enough apart that points differ
    return m


@pytest.fixture(scope="module", params=["decoder", "affinity"])
def engine(request):
    """Every engine test runs on both kinds of network."""
    return Engine(tiny_model(propagation=request.param), Runtime.create("cpu", "fp32"), side=128)


def image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


PROBES = [np.array([[40.0, 30.0, dx, dy], [10.0, 50.0, 0.0, 0.0]])
          for dx, dy in ((9, 0), (-9, 0), (0, 9), (0, -9))]


def test_the_whole_scene_mode_fits_the_arrows_objects_take_their_mean_and_a_call_may_choose():
    """Arrows in the whole-scene mode take the engine's scene blend (affine unless built
    otherwise); objects on a still scene the weighted mean; a call may ask for either."""
    rgb = image(61, 97)
    arrows = [np.array([[20.0, 10.0, 5.0, 0.0], [80.0, 15.0, -3.0, 2.0], [50.0, 50.0, 1.0, 4.0],
                        [10.0, 55.0, 0.0, -2.0]])]
    affine = Engine(tiny_model(propagation="affinity"), Runtime.create("cpu", "fp32"), side=128)
    mean = Engine(tiny_model(propagation="affinity"), Runtime.create("cpu", "fp32"), side=128, scene_blend="mean")
    assert affine.scene_blend == "affine"
    h1, h2 = affine.set_image(rgb), mean.set_image(rgb)
    for engine, h in ((affine, h1), (mean, h2)):  # objects: the mean, whatever the scene blend
        np.testing.assert_array_equal(engine.propagate_batch(h, arrows), mean.propagate_batch(h2, arrows, blend="mean"))
    scene_affine = affine.propagate_batch(h1, arrows, scene_motion=True)
    np.testing.assert_array_equal(scene_affine, mean.propagate_batch(h2, arrows, scene_motion=True, blend="affine"))
    np.testing.assert_array_equal(affine.propagate_batch(h1, arrows, scene_motion=True, blend="mean"),
                                  mean.propagate_batch(h2, arrows, scene_motion=True))
    assert np.abs(scene_affine - mean.propagate_batch(h2, arrows, scene_motion=True)).max() > 0.1
    with pytest.raises(ValueError, match="unknown blend"):
        Engine(tiny_model(propagation="affinity"), Runtime.create("cpu", "fp32"), scene_blend="median")


def test_cached_equals_uncached(engine):
    rgb = image(61, 97)
    cached = engine.propagate_batch(engine.set_image(rgb), PROBES)
    uncached = engine.propagate_uncached(rgb, PROBES)
    assert cached.shape == (4, 61, 97, 2) and cached.dtype == np.float32
    assert np.abs(cached).max() > 1.0  # the model really answers
    torch.testing.assert_close(torch.from_numpy(cached), torch.from_numpy(uncached))


def test_motion_is_snapped_to_the_images_edges_where_it_was_measured():
    """The embedded kind (guidance read as points) snaps its flow to the image's edges by
    default: the guided filter of the network's own flow, with the model's view of the image
    as guide; a call or the engine can turn it off, and the original's convolutional decoder
    (never measured with it) does not snap unless asked."""
    from cmp.engine import FLOW_EDGE_EPS, FLOW_EDGE_RADIUS, FLOW_EDGE_SUBSAMPLE
    from cmp.refine import GuidedFilter

    rgb = image(96, 128, seed=4)  # 128 px wide at side 128: the model sees the image as it is
    sets = [np.array([[30.0, 40.0, 6.0, -2.0], [100.0, 70.0, 0.0, 0.0]]),
            np.array([[x, y, 4.0, 1.0] for x in (10.0, 60.0, 110.0) for y in (10.0, 80.0)])]
    eng = Engine(tiny_model(propagation="affinity"), Runtime.create("cpu", "fp32"), side=128)
    h = eng.set_image(rgb)
    raw = eng.propagate_batch(h, sets, scene_motion=None, edges=False)
    entry = eng.cache.get(h.key)
    assert entry._edges is None  # built on the first snapped flow only (segmentation crops never pay for it)
    charged = entry.nbytes()
    snapped = eng.propagate_batch(h, sets, scene_motion=None)
    assert entry._edges is not None and entry.nbytes() == charged  # the cache was charged for it from the start
    # the random walk's graph (cmp.walk) is charged from the start too
    from cmp.walk import WalkGraph
    graph = WalkGraph.nbytes_for(*entry.feats.embed.shape[-2:])
    assert charged == entry.feats.nbytes() + entry.view.nbytes + entry._edges.nbytes() + graph
    built = eng.walk_graph(h)
    assert entry.nbytes() == charged and built.right.nbytes + built.down.nbytes <= graph
    want = GuidedFilter(rgb.astype(np.float32) / 255, FLOW_EDGE_RADIUS, FLOW_EDGE_EPS, FLOW_EDGE_SUBSAMPLE)
    for g in range(len(sets)):
        np.testing.assert_allclose(snapped[g], want(raw[g]), atol=1e-5)
    assert np.abs(snapped - raw).max() > 1e-3
    np.testing.assert_array_equal(eng.propagate(h, arrows=[sets[0][0]], pins=[sets[0][1, :2]]), snapped[0])
    off = Engine(tiny_model(propagation="affinity"), Runtime.create("cpu", "fp32"), side=128, flow_edges=False)
    np.testing.assert_array_equal(off.propagate_batch(off.set_image(rgb), sets, scene_motion=None), raw)
    dec = Engine(tiny_model(), Runtime.create("cpu", "fp32"), side=128)
    hd = dec.set_image(rgb)
    assert not dec.flow_edges
    np.testing.assert_array_equal(dec.propagate_batch(hd, sets), dec.propagate_batch(hd, sets, edges=False))
    assert np.abs(dec.propagate_batch(hd, sets, edges=True) - dec.propagate_batch(hd, sets)).max() > 1e-4


def test_four_sets_in_one_call_equal_four_calls(engine):
    rgb = image(70, 50, seed=1)
    h = engine.set_image(rgb)
    batch = engine.propagate_batch(h, PROBES)
    for g, pts in enumerate(PROBES):
        one = engine.propagate(h, arrows=[pts[0]], pins=[pts[1, :2]])
        torch.testing.assert_close(torch.from_numpy(batch[g]), torch.from_numpy(one))
    # Different guidance gives different flow (the batch is not one answer repeated).
    assert np.abs(batch[0] - batch[1]).max() > 0.02


def test_output_in_user_pixels_for_odd_sizes(engine):
    rgb = image(333, 517, seed=2)
    flow = engine.propagate(engine.set_image(rgb), arrows=[(516, 332, 5, -3)], pins=[(0, 0)])
    assert flow.shape == (333, 517, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()


def test_geometry_round_trip_odd_size():
    tf = ImageTransform(333, 517, 384)
    assert tf.model_size[0] % 8 == 0 and tf.model_size[1] % 8 == 0
    assert max(tf.inner_size) == 384
    rng = np.random.default_rng(0)
    pts = rng.uniform([-0.5, -0.5], [516.5, 332.5], (200, 2))
    np.testing.assert_allclose(tf.unapply_points(tf.apply_points(pts)), pts, atol=1e-9)
    vec = rng.normal(0, 20, (200, 2))
    np.testing.assert_allclose(tf.unapply_vectors(tf.apply_vectors(vec)), vec, atol=1e-9)
    # Image corners land on the resized image's corners (pixel-centre convention).
    corners = tf.apply_points([[-0.5, -0.5], [516.5, 332.5]])
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [tf.inner_size[1] - 0.5, tf.inner_size[0] - 0.5]])
    # A smooth user flow survives user -> model -> user (only interpolation error).
    y, x = np.mgrid[0:333, 0:517].astype(np.float32)
    flow = np.stack([3 + 0.01 * x, -2 + 0.02 * y], -1)
    back = tf.unapply_flow(tf.apply_flow(flow))
    assert back.shape == flow.shape
    np.testing.assert_allclose(back[2:-2, 2:-2], flow[2:-2, 2:-2], atol=0.02)


def test_image_points_and_flow_transforms_agree():
    """A blob drawn at user (x, y) appears where apply_points says; flow is sampled there too."""
    tf = ImageTransform(333, 517, 384)
    x0, y0 = 301.0, 77.0
    yy, xx = np.mgrid[0:333, 0:517]
    blob = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 6.0 ** 2))
    rgb = np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    model_img = tf.apply_image(rgb).astype(np.float64)[..., 0]
    assert model_img.shape == tf.model_size
    Y, X = np.mgrid[0:model_img.shape[0], 0:model_img.shape[1]]
    w = model_img / model_img.sum()
    np.testing.assert_allclose([(w * X).sum(), (w * Y).sum()], tf.apply_points([[x0, y0]])[0], atol=0.1)
    # A model-space flow equal to the model-pixel position, read back at user pixel (x, y),
    # is apply_points(x, y) divided by the scale: flow is sampled where points map.
    H, W = tf.model_size
    pos = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).astype(np.float32)
    user = tf.unapply_flow(pos)
    for x, y in [(3, 2), (513, 330), (123, 45), (400, 300)]:  # inside: borders clamp
        np.testing.assert_allclose(user[y, x] * [tf.sx, tf.sy], tf.apply_points([[x, y]])[0], atol=1e-3)


@pytest.mark.parametrize("h, w", [(40, 600), (600, 40), (30, 400)])
def test_thin_images_work(h, w):
    """Model inputs under 64 px once crashed the decoder's 1/8 pooling branch."""
    eng = Engine(tiny_model(), Runtime.create("cpu", "fp32"), side=128)
    tf = ImageTransform(h, w, eng.side)
    assert min(tf.model_size) >= 64
    flow = eng.propagate(eng.set_image(image(h, w)), arrows=[(w - 1, h - 1, 3, 2)])
    assert flow.shape == (h, w, 2) and np.isfinite(flow).all()
    np.testing.assert_allclose(tf.unapply_points(tf.apply_points([[w - 1, h - 1]])), [[w - 1, h - 1]])


@pytest.mark.parametrize("h, w", [(1, 1000), (1000, 1), (7, 7), (8, 1000)])
def test_degenerate_images_rejected(engine, h, w):
    with pytest.raises(ImageSizeError):
        engine.set_image(np.zeros((h, w, 3), np.uint8))
    with pytest.raises(ImageSizeError):
        ImageTransform(h, w, 384)


def test_bad_image_arrays_rejected(engine):
    for bad in (np.zeros((20, 20), np.uint8), np.zeros((20, 20, 3), np.float32), np.zeros((20, 20, 4), np.uint8)):
        with pytest.raises(ValueError):
            engine.set_image(bad)


@pytest.mark.parametrize("arrows, pins", [
    ([(50, 10, 1, 1)], []),          # x beyond width 40
    ([(-1, 10, 1, 1)], []),
    ([], [(10, 30.6)]),              # y beyond height 30
    ([(5, 5, float("nan"), 0)], []),
    ([(float("nan"), 5, 1, 0)], []),
    ([(5, 5, float("inf"), 0)], []),
    ([(5, 5, 1)], []),               # wrong arity
])
def test_bad_guidance_rejected(engine, arrows, pins):
    h = engine.set_image(image(30, 40))
    with pytest.raises(GuidanceError):
        engine.propagate(h, arrows=arrows, pins=pins)


def test_no_guidance_still_answers(engine):
    flow = engine.propagate(engine.set_image(image(30, 40)))
    assert flow.shape == (30, 40, 2) and np.isfinite(flow).all()


def _feats(nbytes_each: int) -> ImageFeatures:
    n = nbytes_each // 4 // 6
    t = torch.zeros(1, 1, 1, n)
    return ImageFeatures(DecoderPartials((t, t.clone(), t.clone(), t.clone()), t.clone(), t.clone()), (8, 8))


def test_cache_lru_by_count():
    c = FeatureCache(max_entries=2, max_bytes=1 << 30)
    c.put("a", _feats(1200))
    c.put("b", _feats(1200))
    assert c.get("a") is not None  # a is now most recent
    c.put("c", _feats(1200))
    assert "b" not in c and "a" in c and "c" in c and len(c) == 2


def test_cache_lru_by_bytes():
    c = FeatureCache(max_entries=100, max_bytes=2500)
    c.put("a", _feats(1200))
    c.put("b", _feats(1200))
    assert len(c) == 2 and c.nbytes == 2400
    c.get("a")
    c.put("c", _feats(1200))
    assert "b" not in c and {"a", "c"} <= set(c._d) and c.nbytes <= 2500
    c.put("big", _feats(6000))  # bigger than the budget alone: kept, everything else goes
    assert list(c._d) == ["big"]


def test_engine_evicts_and_says_so():
    eng = Engine(tiny_model(), Runtime.create("cpu", "fp32"), side=64, cache_entries=2)
    handles = [eng.set_image(image(20, 24, seed=s)) for s in range(3)]
    assert not eng.is_cached(handles[0]) and eng.is_cached(handles[1]) and eng.is_cached(handles[2])
    with pytest.raises(ImageNotCached):
        eng.propagate(handles[0], arrows=[(5, 5, 1, 0)])
    again = eng.set_image(image(20, 24, seed=0))
    assert again == handles[0] and eng.is_cached(again)
    assert eng.propagate(again, arrows=[(5, 5, 1, 0)]).shape == (20, 24, 2)


def test_same_image_is_not_encoded_twice(engine):
    rgb = image(33, 44, seed=9)
    h1 = engine.set_image(rgb)
    hits = engine.cache.hits
    h2 = engine.set_image(rgb.copy())
    assert h1 == h2 and engine.cache.hits == hits + 1


def test_threads_share_one_engine_safely():
    eng = Engine(tiny_model(), Runtime.create("cpu", "fp32"), side=64)
    imgs = [image(40, 56, seed=s) for s in range(4)]
    guid = [np.array([[10.0 + 5 * s, 20.0, 6.0, -4.0]]) for s in range(4)]
    expected = [eng.propagate_batch(eng.set_image(im), [g]) for im, g in zip(imgs, guid)]
    eng.cache.clear()
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(i):
        try:
            out = []
            for _ in range(3):
                out.append(eng.propagate_batch(eng.set_image(imgs[i]), [guid[i]]))
            results[i] = out
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    for i in range(4):
        for out in results[i]:
            np.testing.assert_array_equal(out, expected[i])


def test_scene_motion_is_offered_by_affinity_models_only(engine):
    rgb = image(61, 97)
    handle = engine.set_image(rgb)
    arrow = [np.array([[40.0, 30.0, 7.0, -3.0]])]
    if not engine.supports_scene_motion:
        with pytest.raises(ValueError, match="no 'whole scene moves' mode"):
            engine.propagate_batch(handle, arrow, scene_motion=True)
        return
    flow = engine.propagate_batch(handle, arrow, scene_motion=True)[0]
    np.testing.assert_allclose(flow[..., 0], 7.0, atol=1e-4)  # one arrow moves the whole image
    np.testing.assert_allclose(flow[..., 1], -3.0, atol=1e-4)
    assert not np.allclose(engine.propagate_batch(handle, arrow)[0], flow), "the default mode differs"


CAMERA = np.array([[x, y, -6.0 - 0.05 * x, 0.5] for x in (8, 48, 88) for y in (6, 30, 54)])  # spread, agreeing


def test_auto_mode_reads_spread_agreeing_arrows_as_camera_motion_and_pins_as_objects(engine):
    handle = engine.set_image(image(61, 97))
    with_pin = np.concatenate([CAMERA, [[50.0, 20.0, 0.0, 0.0]]])
    one = np.array([[40.0, 30.0, 7.0, -3.0]])
    auto = engine.propagate_batch(handle, [CAMERA, with_pin, one], scene_motion=None)
    objects = engine.propagate_batch(handle, [CAMERA, with_pin, one])
    if not engine.supports_scene_motion:  # auto never asks a model for a mode it lacks
        np.testing.assert_array_equal(auto, objects)
        return
    scene = engine.propagate_batch(handle, [CAMERA], scene_motion=True)[0]
    np.testing.assert_allclose(auto[0], scene, atol=1e-5)
    assert not np.allclose(objects[0], scene)
    np.testing.assert_allclose(auto[1:], objects[1:], atol=1e-5)
    # propagate's default is auto; an explicit False still forces object motion
    np.testing.assert_allclose(engine.propagate(handle, CAMERA), scene, atol=1e-5)
    np.testing.assert_allclose(engine.propagate(handle, CAMERA, scene_motion=False), objects[0], atol=1e-5)


def test_cache_reads_that_are_not_gets_leave_the_lru_order_alone():
    c = FeatureCache(max_entries=2, max_bytes=1 << 30)
    c.put("a", _feats(1200))
    c.put("b", _feats(1200))
    assert "a" in c and len(c) == 2 and c.nbytes == 2400  # none of these makes "a" recent
    c.put("b", _feats(2400))  # replacing refreshes "b" and its size
    assert c.nbytes == 3600
    c.put("c", _feats(1200))
    assert "a" not in c and {"b", "c"} == set(c._d) and c.nbytes == 3600


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32)])
def test_engine_animation_and_proxy_tasks_refuse_a_non_rgb_array_alike(engine, bad):
    from cmp.animate import AnimationError, render_frames
    from cmp.proxy_tasks import check_image

    want = f"expected an (H, W, 3) uint8 RGB image, got {bad.shape} {bad.dtype}"
    with pytest.raises(ValueError) as e_engine:
        engine.set_image(bad)
    with pytest.raises(AnimationError) as e_anim:
        render_frames(bad, np.zeros((8, 8, 2), np.float32))
    with pytest.raises(ValueError) as e_task:
        check_image(bad)
    assert str(e_engine.value) == str(e_anim.value) == str(e_task.value) == want


def test_warm_up_encodes_every_input_size_once_and_caches_nothing(engine):
    """Every model input size an image can pad to is encoded once; the feature cache is untouched."""
    seen = []
    encode = engine._encode_image
    engine._encode_image = lambda x: (seen.append(tuple(x.shape[2:])), encode(x))[1]
    try:
        before = len(engine.cache)
        n = engine.warm_up()
    finally:
        engine._encode_image = encode
    rng = np.random.default_rng(0)
    sizes = {ImageTransform(int(h), int(w), engine.side).model_size
             for h, w in rng.integers(8, 600, (400, 2)) if max(h, w) / min(h, w) <= engine.side // 8}
    assert n == len(seen) == len(set(seen)) and sizes <= set(seen), sorted(sizes - set(seen))
    assert len(engine.cache) == before
    assert engine.warm_up(stop=lambda: True) == 0  # asked to stop: nothing more


def test_tune_onednn_sets_the_cache_capacity_unless_the_environment_does(monkeypatch):
    from cmp.device import ONEDNN_CACHE_CAPACITY, tune_onednn

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert tune_onednn() and os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(ONEDNN_CACHE_CAPACITY)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "77")
    assert not tune_onednn() and os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "77"
