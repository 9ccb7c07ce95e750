"""Checkpoints from the Hub at run time and back to it: references, the engine pool, the
model picker's API side, push, offline use. Everything talks to the loopback Hub of
tests/hub_server.py (``endpoint=`` per call in-process, ``HF_ENDPOINT`` in subprocesses)."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from cmp.checkpoints import (CheckpointError, CheckpointNotFound, CheckpointTooLarge, HubUnavailable, load_checkpoint,
                             parse_ref)
from cmp.engine import Engine
from cmp.hub import CMPRepo, export_folder
from cmp.model import TINY, TINY_AFFINITY
from cmp.pool import EnginePool
from conftest import TEST_MAX_SIDE
from helpers import random_model, registry_with_a_segmentation_model, run_cli, save_original
from hub_server import FakeHub, serve_standins

ARROWS = {"arrows": [[60, 40, 12, -4]], "pins": [[10, 10]]}
POINTS = {"positive": [[60, 45]], "negative": [[5, 5]]}


def _read_flo(path):
    with open(path, "rb") as f:
        assert f.read(4) == b"PIEH"
        w, h = np.fromfile(f, "<i4", 2)
        return np.fromfile(f, "<f4").reshape(h, w, 2)


def local_engine(path, side=128) -> Engine:
    return Engine.from_checkpoint(path, device="cpu", precision="fp32", side=side)


def expected_flow(engine, image):
    from demos.common import read_image
    rgb, _ = read_image(image, TEST_MAX_SIDE)
    return engine.propagate(engine.set_image(rgb), ARROWS["arrows"], ARROWS["pins"])


# -- the reference syntax -----------------------------------------------------------------

@pytest.mark.parametrize("text, kind, key", [
    ("hf://owner/repo", "hub", "hf://owner/repo@main"),
    ("hf://owner/repo@v1.0/sub/ckpt.pth.tar", "hub", "hf://owner/repo@v1.0/sub/ckpt.pth.tar"),
    ("hf://owner/repo@refs%2Fpr%2F3/m.safetensors", "hub", "hf://owner/repo@refs/pr/3/m.safetensors"),
    ("hf://datasets/owner/data/ckpt.pth.tar", "hub", "hf://datasets/owner/data@main/ckpt.pth.tar"),
    ("resnet50", "registry", "cmp-resnet50-vip-mpii"),
    ("", "registry", "cmp-slim-affinity"),
])
def test_references_parse_to_one_canonical_key(text, kind, key):
    ref = parse_ref(text, allow_local=False)
    assert (ref.kind, ref.key) == (kind, key)


@pytest.mark.parametrize("text, word", [
    ("hf://owner", "not a Hub reference"),
    ("hf://own er/repo", "not a Hub reference"),
    ("hf://owner/../etc", "not a Hub reference"),
    ("hf://owner/repo/../../x", "not a file path"),
    ("hf://owner/repo@/x.pth", "revision"),
    ("hf://owner/repo@a..b/x.pth", "revision"),
    ("/etc/passwd", "local paths are not accepted"),
    ("checkpoints/cmp-slim-affinity.safetensors", "local paths are not accepted"),
])
def test_bad_references_are_one_line_errors(text, word):
    with pytest.raises(CheckpointError, match=word) as ei:
        parse_ref(text, allow_local=False)
    assert "\n" not in str(ei.value)


def test_local_paths_work_in_python_and_the_cli(tiny_checkpoint):
    assert parse_ref(tiny_checkpoint).kind == "path"
    assert Engine.from_checkpoint(tiny_checkpoint, device="cpu").info["config"] == "tiny"


# -- our format: a Hub model repo through PyTorchModelHubMixin ---------------------------------

def test_saved_model_repo_round_trip_and_legacy_single_file(tmp_path):
    src = random_model(TINY_AFFINITY, seed=3)
    CMPRepo(TINY_AFFINITY, src, {"steps": "9"}).save_pretrained(tmp_path / "repo")
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((tmp_path / "repo" / "config.json").read_text())["name"] == "tiny-affinity"
    for ref in (tmp_path / "repo", tmp_path / "repo" / "model.safetensors"):  # the folder, and its file alone
        ck = load_checkpoint(ref)
        assert ck.config == TINY_AFFINITY and ck.metadata["steps"] == "9"
        for k, v in src.state_dict().items():
            assert torch.equal(v, ck.model.state_dict()[k]), k


def test_config_json_that_disagrees_with_the_weights_is_refused(tmp_path):
    CMPRepo(TINY_AFFINITY, random_model(TINY_AFFINITY)).save_pretrained(tmp_path / "repo")
    cfg = json.loads((tmp_path / "repo" / "config.json").read_text())
    cfg["head"]["embed_dim"] = 16  # config.json holds the tagged-union config (encoder + head)
    (tmp_path / "repo" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="disagree"):
        load_checkpoint(tmp_path / "repo")


# -- the engine pool --------------------------------------------------------------------------

@pytest.fixture
def three_models(tmp_path):
    return [str(save_original(random_model(TINY, seed=s), tmp_path / f"m{s}.pth.tar")) for s in (1, 2, 3)]


def test_pool_evicts_the_least_recently_used_by_count(three_models, tiny_engine):
    pool = EnginePool(tiny_engine, allow_local=True, max_models=2)
    a, b, c = three_models
    ea = pool.get(a)
    assert pool.get(a) is ea and pool.get(None) is tiny_engine and pool.get("") is tiny_engine
    pool.get(b)
    pool.get(a)  # a is now the most recent
    pool.get(c)  # evicts b
    assert pool.is_loaded(a) and pool.is_loaded(c) and not pool.is_loaded(b)
    assert pool.loads == 3 and [k for k, _, _ in pool.loaded()][1:] == [parse_ref(a).key, parse_ref(c).key]


def test_pool_evicts_by_bytes_and_refuses_a_model_larger_than_the_bound(three_models, tiny_engine):
    one = local_engine(three_models[0])
    cost = one.weight_bytes + 2**20  # the pool's engines get a 1 MB feature cache below
    pool = EnginePool(tiny_engine, allow_local=True, max_models=10, max_bytes=int(cost * 1.5), cache_bytes=2**20)
    pool.get(three_models[0])
    pool.get(three_models[1])
    assert len(pool.loaded()) == 2 and pool.nbytes <= pool.max_bytes  # default + one
    small = EnginePool(tiny_engine, allow_local=True, max_bytes=cost - 1, cache_bytes=2**20)
    with pytest.raises(CheckpointTooLarge, match="MB loaded"):
        small.get(three_models[0])


def test_pool_loads_a_model_once_when_sessions_ask_together(three_models, tiny_engine):
    pool = EnginePool(tiny_engine, allow_local=True)
    got, threads = [], [threading.Thread(target=lambda: got.append(pool.get(three_models[0]))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool.loads == 1 and len({id(e) for e in got}) == 1


def test_the_default_segments_with_the_model_its_registry_entry_names(tmp_path, tiny_engine):
    reg = registry_with_a_segmentation_model(tmp_path)
    pool = EnginePool(tiny_engine, default_ref="default", registry=reg)
    assert pool.segmenter_key(None) == "grouping" and pool.loads == 0  # named without loading
    seg = pool.segmenter(None)
    assert seg.name == "grouping" and pool.segmenter("") is seg and pool.segmenter("motion") is seg
    assert pool.get(None) is tiny_engine and pool.loads == 1  # motion stays on the default
    # a model the session chose segments itself, the grouping model included
    assert pool.segmenter("grouping") is seg and pool.segmenter_key("grouping") is None
    assert pool.segmenter("other").name == "other" and pool.segmenter_key("other") is None
    plain = EnginePool(tiny_engine, registry=reg)  # a default built without a name has no entry to ask
    assert plain.segmenter(None) is tiny_engine and plain.segmenter_key(None) is None


def test_the_model_the_default_segments_with_is_kept_beside_it(tmp_path, tiny_engine):
    """Sessions that load other models never evict the default's grouping model: it is loaded
    once and stays outside the LRU's count."""
    reg = registry_with_a_segmentation_model(tmp_path)
    pool = EnginePool(tiny_engine, default_ref="default", registry=reg, max_models=1)
    seg = pool.segmenter(None)
    other = pool.get("other")                       # fills the one LRU place
    assert pool.segmenter(None) is seg and pool.get("grouping") is seg and pool.loads == 2
    assert pool.is_loaded("grouping") and pool.is_loaded("other")
    assert [k for k, _name, _cost in pool.loaded()] == ["motion", "grouping", "other"]  # "default" is an alias
    assert pool.nbytes == pool.cost(other)          # the LRU's bytes: the chosen model alone


def test_the_app_warms_up_the_model_its_default_segments_with(tmp_path, tiny_engine):
    import app

    reg = registry_with_a_segmentation_model(tmp_path)
    pool = EnginePool(tiny_engine, default_ref="default", registry=reg)
    app.warm_up_in_background(tiny_engine, pool).join(timeout=120)
    assert pool.is_loaded("grouping") and pool.loads == 1
    plain = EnginePool(tiny_engine, registry=reg)  # nothing to segment with apart: nothing loaded
    app.warm_up_in_background(tiny_engine, plain).join(timeout=120)
    assert plain.loads == 0


def test_pool_refuses_local_paths_unless_allowed(three_models, tiny_engine):
    with pytest.raises(CheckpointError, match="local paths are not accepted"):
        EnginePool(tiny_engine).get(three_models[0])


# -- loading from the loopback Hub -------------------------------------------------------------

@pytest.fixture
def standins(tmp_path, hub_online):
    with FakeHub() as hub:
        refs, files, registry = serve_standins(hub, tmp_path)
        yield hub, refs, files, registry


def test_engine_from_hub_reference_equals_the_local_file(standins, tmp_path, sample_images):
    hub, refs, files, _ = standins
    eng = Engine.from_checkpoint(refs["original"], device="cpu", precision="fp32", side=128, endpoint=hub.url,
                                 cache_dir=str(tmp_path / "hf"))
    assert eng.name == refs["original"]
    np.testing.assert_array_equal(expected_flow(eng, sample_images["photo"]),
                                  expected_flow(local_engine(files["original"]), sample_images["photo"]))
    heads = [p for m, p in hub.requests if m == "HEAD" and "ckpt_iter_42000" in p]
    assert heads and any(m == "GET" and "ckpt_iter_42000" in p for m, p in hub.requests)


def test_wrong_sha256_is_refused_for_the_name_and_for_the_hub_reference(standins, tmp_path, tiny_engine):
    hub, refs, _, registry = standins
    pool = EnginePool(tiny_engine, registry=registry, endpoint=hub.url, cache_dir=str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="sha256") as ei:
        pool.get("corrupt")
    assert "\n" not in str(ei.value)
    with pytest.raises(CheckpointError, match="sha256"):  # the registry knows this location's hash
        pool.get("hf://org/cmp-weights/models/cmp/copy.pth.tar")
    assert pool.get("standin").name == "standin"


@pytest.mark.parametrize("which, error, word", [
    ("missing_repo", CheckpointNotFound, "no such repo"),
    ("missing_file", CheckpointNotFound, "no such file"),
    ("big", CheckpointTooLarge, "too large|MB; this app loads"),
    ("classifier", CheckpointError, "not a CMP checkpoint"),
])
def test_hub_failures_are_one_line(standins, tmp_path, tiny_engine, which, error, word):
    hub, refs, _, registry = standins
    pool = EnginePool(tiny_engine, registry=registry, endpoint=hub.url, cache_dir=str(tmp_path / "hf"),
                      max_download_bytes=2 * 2**20)
    with pytest.raises(error, match=word) as ei:
        pool.get(refs[which])
    assert "\n" not in str(ei.value) and len(str(ei.value)) < 300
    if which == "big":  # refused from its size, before the download
        assert not any(m == "GET" and "big.pth.tar" in p for m, p in hub.requests)


def test_offline_loads_from_the_cache_and_says_so_when_not_cached(standins, tmp_path, sample_images):
    hub, refs, files, _ = standins
    cache = tmp_path / "hf"
    load_checkpoint(refs["original"], endpoint=hub.url, cache_dir=str(cache))  # fills the cache
    load_checkpoint(refs["saved"], endpoint=hub.url, cache_dir=str(cache))
    before = hub.count()
    env = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache)}
    for ref in (refs["original"], refs["saved"]):
        r = run_cli("flow", "--image", sample_images["photo"], "--arrow", "60,40,12,-4", "--checkpoint", ref,
                    "--device", "cpu", "--out", tmp_path / "f.npy", env=env)
        assert r.returncode == 0, r.stderr
    assert hub.count() == before  # served from the cache, no request at all
    r = run_cli("flow", "--image", sample_images["photo"], "--arrow", "60,40,12,-4", "--checkpoint",
                refs["classifier"], "--out", tmp_path / "g.npy", env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "not in the local cache and the Hub cannot be reached" in r.stderr
    with pytest.raises(HubUnavailable):  # the same in-process, with the cache but offline
        load_checkpoint(refs["big"], cache_dir=str(cache), endpoint=hub.url, local_files_only=True)


# -- push ---------------------------------------------------------------------------------------

@pytest.fixture
def run_dir(tmp_path):
    """A training run folder as `python -m cmp train --out` leaves it, plus an eval JSON."""
    from dataclasses import asdict

    from cmp.checkpoints import save_checkpoint
    from cmp.train.loop import TrainConfig
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(random_model(TINY_AFFINITY, seed=4), run / "model.safetensors", steps="120", arch="tiny-affinity")
    cfg = {**asdict(TrainConfig()), "data": "data/mine", "out": str(run), "steps": 120, "arch": "tiny-affinity"}
    (run / "train_config.json").write_text(json.dumps(cfg))
    (run / "propagation.json").write_text(json.dumps({"datasets": {"synthetic": {"epe": {"model": [3.25, 2.5]}}}}))
    return run


def test_push_dry_run_writes_the_repo_folder_only(run_dir, tmp_path):
    r = run_cli("push", run_dir, "me/my-cmp", "--dry-run", "--out", tmp_path / "out",
                env={"HF_ENDPOINT": "http://127.0.0.1:9"})  # nothing may be sent anywhere
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["README.md", "config.json", "model.safetensors"]
    card = (tmp_path / "out" / "README.md").read_text()
    meta = card.split("---")[1]
    for line in ("library_name: cmp-studio", "license: mit", "- conditional-motion-propagation"):
        assert line in meta
    assert "python -m cmp train --data data/mine" in card and "--arch tiny-affinity" in card
    assert "Steps: 120." in card and "datasets.synthetic.epe.model: 3.25, 2.5" in card
    assert "hf://me/my-cmp" in card


def test_push_then_load_is_a_round_trip(run_dir, tmp_path, hub_online, sample_images):
    with FakeHub() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "home")}
        r = run_cli("push", run_dir, "me/my-cmp", "--private", env=env)
        assert r.returncode == 0, r.stderr
        assert ("POST", "/api/repos/create") in hub.requests and hub.repos[("model", "me/my-cmp")]["visibility"] \
            == "private"
        assert ("POST", "/api/models/me/my-cmp/commit/main") in hub.requests
        assert {a for (m, _), a in zip(hub.requests, hub.auth) if m == "POST"} == {"Bearer hf_test"}
        assert hub.card_metadata["library_name"] == "cmp-studio" and hub.card_metadata["license"] == "mit"
        back = Engine.from_checkpoint("hf://me/my-cmp", device="cpu", precision="fp32", side=128, endpoint=hub.url,
                                      cache_dir=str(tmp_path / "hf"))
    here = local_engine(str(run_dir / "model.safetensors"))
    assert back.info["config"] == "tiny-affinity" and back.info["metadata"]["steps"] == "120"
    np.testing.assert_array_equal(expected_flow(back, sample_images["photo"]),
                                  expected_flow(here, sample_images["photo"]))


def test_export_refuses_to_overwrite_a_folder(run_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty"):
        export_folder(run_dir, tmp_path / "out", "me/x")


# -- the app: HTTP API and the header -----------------------------------------------------------

@pytest.fixture(scope="module")
def hub_client(hub_app):
    from gradio_client import Client
    return Client(hub_app.url, verbose=False)


def test_api_loads_the_original_format_from_the_hub_like_the_local_file(hub_app, hub_client, hub_online,
                                                                         sample_images, tiny_engine):
    from gradio_client import handle_file

    from cmp.segment import segment
    from demos.common import read_image
    ref = hub_app.refs["original"]
    _, flo = hub_client.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), False, ref,
                                api_name="/motion_flow")
    here = local_engine(hub_app.files["original"])
    np.testing.assert_array_equal(_read_flo(flo), expected_flow(here, sample_images["photo"]))
    _, default = hub_client.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), api_name="/motion_flow")
    np.testing.assert_allclose(_read_flo(default), expected_flow(tiny_engine, sample_images["photo"]), atol=1e-6)
    assert not np.allclose(_read_flo(default), _read_flo(flo))  # a different model really answered

    _, coco = hub_client.predict(handle_file(sample_images["photo"]), json.dumps(POINTS), checkpoint=ref,
                                 api_name="/segment_mask")
    rgb, _ = read_image(sample_images["photo"], TEST_MAX_SIDE)
    from cmp.masks import rle_decode
    got = rle_decode(coco["annotations"][0]["segmentation"])
    np.testing.assert_array_equal(got, segment(here, rgb, POINTS["positive"], POINTS["negative"]).mask)


@pytest.mark.parametrize("checkpoint, word", [
    ("corrupt", "sha256"), ("/etc/passwd", "local paths are not accepted"), ("hf://org/nothing-here/x.pth.tar",
                                                                             "no such repo"),
])
def test_api_checkpoint_errors_are_one_line(hub_app, hub_client, hub_online, sample_images, checkpoint, word):
    from gradio_client import handle_file
    with pytest.raises(Exception, match=word) as ei:
        hub_client.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), False, checkpoint,
                           api_name="/motion_flow")
    assert "Traceback" not in str(ei.value)


def test_two_sessions_on_two_models_at_once(hub_app, hub_online, sample_images, tiny_engine):
    from gradio_client import Client, handle_file
    saved = hub_app.refs["saved"]
    want = {"": expected_flow(tiny_engine, sample_images["photo"]),
            saved: expected_flow(local_engine(hub_app.files["saved"]), sample_images["photo"])}
    errors, got = [], {}

    def session(ref):
        try:
            c = Client(hub_app.url, verbose=False)
            got[ref] = [_read_flo(c.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), False, ref,
                                            api_name="/motion_flow")[1]) for _ in range(3)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(r,)) for r in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for ref, flows in got.items():
        for f in flows:
            np.testing.assert_allclose(f, want[ref], atol=1e-5)


def test_header_lists_the_registry_with_size_licence_and_status(hub_app):
    from demos.header import APP_DEFAULT, choices
    from demos.common import Context
    labels = dict((v, label) for label, v in choices(Context(engine=hub_app.pool.default, pool=hub_app.pool)))
    assert APP_DEFAULT in labels and "loaded" in labels[APP_DEFAULT]
    assert set(labels) == {APP_DEFAULT, "standin", "corrupt"}
    assert " MB · MIT · " in labels["standin"]
    assert labels["standin"].rsplit(" · ", 1)[1] in ("not downloaded", "cached", "loaded")


def test_gallery_task_runs_on_the_chosen_model(hub_app, hub_client, hub_online):
    from PIL import Image
    runs = {ref: hub_client.predict(None, "motion_propagation", "normal", 0, checkpoint=ref, api_name="/gallery_task")
            for ref in ("", hub_app.refs["saved"])}
    default, saved = (np.asarray(Image.open(r[1])) for r in runs.values())
    assert default.shape == saved.shape and not np.array_equal(default, saved)  # the prediction is the model's


def test_pool_listing_does_not_refresh_what_it_lists(three_models, tiny_engine):
    pool = EnginePool(tiny_engine, allow_local=True, max_models=2)
    a, b, c = three_models
    pool.get(a)
    pool.get(b)
    assert [k for k, _, _ in pool.loaded()][1:] == [parse_ref(a).key, parse_ref(b).key] and pool.nbytes > 0
    pool.get(c)  # a is still the least recently used
    assert not pool.is_loaded(a) and pool.is_loaded(b) and pool.is_loaded(c)
