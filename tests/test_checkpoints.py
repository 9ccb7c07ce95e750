"""Checkpoint loading is strict and safe, and Hub download verifies what it fetched."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from cmp.checkpoints import (CheckpointError, RegistryEntry, download, infer_config, load_checkpoint,
                             load_checkpoint_file, load_registry, resolve, save_checkpoint, segmentation_ref,
                             strip_prefixes)
from cmp.model import RESNET50, SLIM, TINY, build_cmp
from helpers import original_format, random_model, save_original
from hub_server import FakeHub

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
REPO_ROOT = Path(__file__).resolve().parent.parent
PRIMARY = ("org/cmp-weights", "models/cmp/experiments/semiauto_annot/resnet50_vip+mpii_liteflow/checkpoints/ckpt.pth.tar")
MIRROR = ("someone/mirror", "ckpt_iter_42000.pth.tar")  # a dataset repo, like the real third mirror


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


# -- original format -------------------------------------------------------------

def test_original_resnet50_checkpoint_loads_without_warnings(tmp_path):
    src = random_model(RESNET50)
    path = save_original(src, tmp_path / "ckpt_iter_42000.pth.tar")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (e.g. about missing BN counters) fails the test
        model, cfg, meta = load_checkpoint_file(path)
    assert cfg == RESNET50 and cfg.name == "resnet50"
    assert meta["format"] == "original-cmp"
    assert_same_weights(model, src)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
@pytest.mark.parametrize("cfg", [TINY, SLIM], ids=["tiny", "slim"])
def test_original_format_recognises_other_configs(tmp_path, recwarn, cfg, legacy):
    src = random_model(cfg)
    model, got, _ = load_checkpoint_file(save_original(src, tmp_path / "c.pth.tar", legacy))
    assert got == cfg
    assert_same_weights(model, src)
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]


def test_unknown_config_is_recognised_from_shapes(tmp_path):
    cfg = dataclasses.replace(
        TINY, name="custom",
        encoder=dataclasses.replace(TINY.encoder, widths=(4, 8, 12, 8), blocks=(2, 1, 3, 1), code_dim=24),
        head=dataclasses.replace(TINY.head, decoder=dataclasses.replace(TINY.head.decoder, branch_dim=6, skip2_dim=5),
                                 num_bins=21))
    src = random_model(cfg)
    model, got, _ = load_checkpoint_file(save_original(src, tmp_path / "c.pth.tar"))
    assert got == cfg
    assert_same_weights(model, src)


@pytest.mark.parametrize("change, names", [
    ("missing", ["flow_decoder.head.bias"]),
    ("unexpected", ["extra.weight"]),
    ("shape", ["flow_decoder.fusion4.1.running_mean"]),
])
def test_mismatched_keys_are_clear_errors(tmp_path, change, names):
    ck = original_format(random_model(TINY))
    sd = ck["state_dict"]
    if change == "missing":
        del sd["module.flow_decoder.head.bias"]
    elif change == "unexpected":
        sd["module.extra.weight"] = torch.zeros(3)
    else:
        sd["module.flow_decoder.fusion4.1.running_mean"] = torch.zeros(7)
    torch.save(ck, tmp_path / "bad.pth.tar")
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint_file(tmp_path / "bad.pth.tar")
    msg = str(ei.value)
    assert {"missing": "missing keys", "unexpected": "unexpected keys", "shape": "wrong shapes"}[change] in msg
    for n in names:
        assert n in msg


def test_not_a_cmp_state_dict(tmp_path):
    torch.save({"state_dict": {"module.conv.weight": torch.zeros(2, 2)}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="not a CMP checkpoint"):
        load_checkpoint_file(tmp_path / "x.pth")


class _Payload:
    """Unpickling this runs code (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    ck = original_format(random_model(TINY))
    ck["extra"] = _Payload(marker)
    path = tmp_path / "evil.pth.tar"
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match="nothing was executed"):
        load_checkpoint_file(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it (so the check above means something).
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("kind", ["truncated-pth", "random-pth", "empty", "truncated-safetensors",
                                  "random-safetensors"])
def test_damaged_files_are_refused(tmp_path, kind):
    model = random_model(TINY)
    if kind.endswith("safetensors"):
        good = save_checkpoint(model, tmp_path / "good.safetensors").read_bytes()
        path = tmp_path / "bad.safetensors"
    else:
        good = save_original(model, tmp_path / "good.pth.tar").read_bytes()
        path = tmp_path / "bad.pth.tar"
    data = {"truncated": good[: len(good) // 2], "random": os.urandom(4096), "empty": b""}[kind.split("-")[0]]
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint_file(path)


def test_safetensors_round_trip_is_self_describing(tmp_path):
    src = random_model(SLIM)
    path = save_checkpoint(src, tmp_path / "m.safetensors", note="hello")
    model, cfg, meta = load_checkpoint_file(path)
    assert cfg == SLIM and meta["note"] == "hello"
    assert_same_weights(model, src)


def test_safetensors_with_wrong_shapes_is_refused(tmp_path):
    from safetensors.torch import save_file
    sd = {k: v for k, v in random_model(TINY).state_dict().items() if not k.endswith("num_batches_tracked")}
    sd["flow_decoder.head.weight"] = torch.zeros(5, 8, 1, 1)
    save_file(sd, str(tmp_path / "m.safetensors"), metadata={"cmp_config": TINY.to_json()})
    with pytest.raises(CheckpointError, match="flow_decoder.head.weight"):
        load_checkpoint_file(tmp_path / "m.safetensors")
    # Config that disagrees with every tensor: refused, not silently rebuilt.
    save_checkpoint(random_model(TINY), tmp_path / "t.safetensors")
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(str(tmp_path / "t.safetensors"), framework="pt") as f:
        meta = f.metadata()
    meta["cmp_config"] = SLIM.to_json()
    save_file(load_file(str(tmp_path / "t.safetensors")), str(tmp_path / "u.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_checkpoint_file(tmp_path / "u.safetensors")


def test_safetensors_without_config_is_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(tmp_path / "m.safetensors"))
    with pytest.raises(CheckpointError, match="cmp_config"):
        load_checkpoint_file(tmp_path / "m.safetensors")


def test_strip_prefixes_only_strips_module():
    out = strip_prefixes({"module.a.b": 1, "model.c": 2, "a.module.d": 3})
    assert out == {"a.b": 1, "model.c": 2, "a.module.d": 3}


def test_infer_config_names_only_exact_matches():
    assert infer_config(build_cmp(TINY).state_dict()) == TINY
    other = dataclasses.replace(TINY, head=dataclasses.replace(
        TINY.head, decoder=dataclasses.replace(TINY.head.decoder, fusion2_dim=4)))
    assert infer_config(build_cmp(other).state_dict()).name == "custom"


# -- registry and resolution -------------------------------------------------------

def write_registry(tmp_path, entries) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"checkpoints": entries}))
    return path


def hub_entry(name, sha, locations, size=None):
    return {"name": name, "description": "test", "license": "MIT", "config": "tiny", "sha256": sha,
            "size": size, "hub": [{"repo_id": r, "filename": f, "repo_type": t, "revision": "main"}
                                  for r, f, t in locations]}


def test_shipped_registry_is_valid():
    reg = load_registry()
    assert "default" in reg
    orig = reg["cmp-resnet50-vip-mpii"]
    assert orig.sha256 == "cd3a385e227c29f89b5c7c6f4c89d356f6022fa7fcfc71ab1bd40e9833048dd6"
    assert orig.hub[0].repo_id == "MyNiuuu/MOFA-Video-Hybrid" and len(orig.hub) == 3


def test_a_registry_entry_names_the_model_the_default_segments_with(tmp_path):
    motion = {**hub_entry("motion", None, []), "aliases": ["default"], "segmentation": "grouping"}
    reg = write_registry(tmp_path, [motion, hub_entry("grouping", None, [])])
    assert load_registry(reg)["default"].segmentation == "grouping"
    for ref in (None, "", "default", "motion"):
        assert segmentation_ref(ref, registry=reg) == "grouping"
    local = save_checkpoint(random_model(TINY), tmp_path / "m.safetensors")
    for ref in ("grouping", "hf://owner/repo", str(local), "nope", "hf://bad"):  # named, Hub, file, unknown: itself
        assert segmentation_ref(ref, registry=reg) == ref
    plain = write_registry(tmp_path, [{**hub_entry("motion", None, []), "aliases": ["default"]}])
    assert segmentation_ref(None, registry=plain) is None and segmentation_ref("motion", registry=plain) == "motion"
    with pytest.raises(CheckpointError, match="malformed.*'missing', which it does not list"):
        load_registry(write_registry(tmp_path, [{**hub_entry("motion", None, []), "segmentation": "missing"}]))


def test_resolve_errors(tmp_path):
    reg = write_registry(tmp_path, [hub_entry("a", None, [])])
    with pytest.raises(CheckpointError, match="known names: a"):
        resolve("nope", registry=reg)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        resolve(str(tmp_path / "missing.pth"), registry=reg)
    with pytest.raises(CheckpointError, match="malformed"):
        resolve("a", registry=write_registry(tmp_path, "not a list"))


def test_shipped_file_is_verified(tmp_path):
    path = save_checkpoint(random_model(TINY), tmp_path / "tiny.safetensors")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = {"name": "tiny", "aliases": ["t"], "description": "x", "license": "MIT", "config": "tiny",
             "file": "tiny.safetensors", "sha256": sha}
    reg = write_registry(tmp_path, [entry])
    ck = load_checkpoint("t", registry=reg)
    assert ck.config == TINY and ck.label == "tiny"
    path.write_bytes(path.read_bytes()[:-1] + b" ")
    with pytest.raises(CheckpointError, match="sha256"):
        resolve("tiny", registry=reg)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A FakeHub serving a tiny original-format checkpoint; yields (hub, bytes, sha256).

    The suite may run with HF_HUB_OFFLINE=1 (so nothing reaches the real Hub);
    huggingface_hub reads this flag at call time from its constants, so these
    tests turn it off for the loopback server only.
    """
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    data = save_original(random_model(TINY), tmp_path / "src.pth.tar").read_bytes()
    with FakeHub() as hub:
        yield hub, data, hashlib.sha256(data).hexdigest()


def test_download_then_offline_from_cache(tmp_path, served):
    hub, data, sha = served
    hub.add(*PRIMARY, data)
    reg = write_registry(tmp_path, [hub_entry("cmp", sha, [(*PRIMARY, "model")], len(data))])
    cache = tmp_path / "hf"
    path, entry = resolve("cmp", registry=reg, cache_dir=str(cache), endpoint=hub.url)
    assert path.read_bytes() == data and entry.name == "cmp"
    assert ("GET", "/org/cmp-weights/resolve/main/" + PRIMARY[1].replace("+", "%2B")) in hub.requests
    ck = load_checkpoint("cmp", registry=reg, cache_dir=str(cache), endpoint=hub.url)
    assert ck.config == TINY

    # HF_HUB_OFFLINE is read when huggingface_hub is imported: a fresh interpreter.
    before = hub.count()
    code = ("import sys; from cmp.checkpoints import load_checkpoint; "
            "ck = load_checkpoint('cmp', registry=sys.argv[1], cache_dir=sys.argv[2]); print(ck.path)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(REPO_ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(reg), str(cache)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == data
    assert hub.count() == before  # served from the cache, no request at all

    # Offline with an empty cache: a clear error, not a hang or a traceback.
    r = subprocess.run([sys.executable, "-c", code, str(reg), str(tmp_path / "empty")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "could not download 'cmp'" in r.stderr


def test_wrong_sha256_is_refused_and_not_used(tmp_path, served):
    hub, data, sha = served
    hub.add(*PRIMARY, data)
    wrong = hashlib.sha256(b"something else").hexdigest()
    reg = write_registry(tmp_path, [hub_entry("cmp", wrong, [(*PRIMARY, "model")])])
    with pytest.raises(CheckpointError, match="sha256"):
        resolve("cmp", registry=reg, cache_dir=str(tmp_path / "hf"), endpoint=hub.url)
    with pytest.raises(CheckpointError, match="was not used"):
        load_checkpoint("cmp", registry=reg, cache_dir=str(tmp_path / "hf"), endpoint=hub.url)


def test_primary_missing_uses_mirror(tmp_path, served):
    hub, data, sha = served
    hub.add(*MIRROR, data, repo_type="dataset")  # nothing at the primary: 404 EntryNotFound
    reg = write_registry(tmp_path, [hub_entry("cmp", sha, [(*PRIMARY, "model"), (*MIRROR, "dataset")])])
    path, _ = resolve("cmp", registry=reg, cache_dir=str(tmp_path / "hf"), endpoint=hub.url)
    assert path.read_bytes() == data and "datasets--someone--mirror" in str(path)
    assert any(m == "HEAD" and p.startswith("/org/cmp-weights/") for m, p in hub.requests)
    assert any(p.startswith("/datasets/someone/mirror/resolve/main/") for _, p in hub.requests)


def test_primary_with_bad_bytes_falls_back_to_mirror(tmp_path, served):
    hub, data, sha = served
    hub.add(*PRIMARY, data[:-10] + b"0123456789")
    hub.add(*MIRROR, data, repo_type="dataset")
    entry = RegistryEntry.from_dict(hub_entry("cmp", sha, [(*PRIMARY, "model"), (*MIRROR, "dataset")]))
    path = download(entry, cache_dir=str(tmp_path / "hf"), endpoint=hub.url)
    assert path.read_bytes() == data and "datasets--" in str(path)


def test_all_locations_failing_names_each(tmp_path, served):
    hub, data, sha = served
    entry = RegistryEntry.from_dict(hub_entry("cmp", sha, [(*PRIMARY, "model"), (*MIRROR, "dataset")]))
    with pytest.raises(CheckpointError) as ei:
        download(entry, cache_dir=str(tmp_path / "hf"), endpoint=hub.url)
    assert "org/cmp-weights" in str(ei.value) and "someone/mirror" in str(ei.value)


# -- checkpoints from strangers: wrong architectures, unreachable Hub -----------------

def test_a_different_network_is_refused(tmp_path):
    """A classifier's weights (a ResNet-like state dict without CMP's parts), as .pth and as safetensors."""
    from safetensors.torch import save_file
    classifier = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7), torch.nn.BatchNorm2d(8), torch.nn.Flatten(),
                                     torch.nn.Linear(8, 10))
    sd = {f"module.{k}": v for k, v in classifier.state_dict().items()}
    torch.save({"state_dict": sd}, tmp_path / "classifier.pth")
    with pytest.raises(CheckpointError, match="not a CMP checkpoint"):
        load_checkpoint_file(tmp_path / "classifier.pth")
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(tmp_path / "c.safetensors"),
              metadata={"cmp_config": TINY.to_json()})  # a lie about what is inside
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint_file(tmp_path / "c.safetensors")


def test_block_numbering_with_gaps_is_refused(tmp_path):
    """Keys for blocks 0 and 50 only: the architecture guess must not build the 49 blocks between
    (with block 10**9 the old guess built blocks until the OOM killer stopped it)."""
    ck = original_format(random_model(TINY))
    sd = ck["state_dict"]
    for k in [k for k in sd if k.startswith("module.image_encoder.layer2.0.")]:
        sd[k.replace("layer2.0.", "layer2.50.")] = sd[k].clone()
    torch.save(ck, tmp_path / "gaps.pth.tar")
    with pytest.raises(CheckpointError, match="layer2 blocks are numbered"):
        load_checkpoint_file(tmp_path / "gaps.pth.tar")


@pytest.mark.parametrize("encoder, message", [
    ({"widths": (-4, 8, 8, 8)}, "no buildable CMP network"),
    ({"stem_width": 64, "widths": (64, 64, 64, 64), "code_dim": 64}, "wrong shapes"),
])
def test_a_config_that_lies_is_refused_before_building(tmp_path, monkeypatch, encoder, message):
    """The config in a stranger's file is compared with its tensors on the meta device first.

    (Before that, a 100 kB file whose config claimed widths of 10**6 made the loader allocate
    ~20 GB until the OOM killer stopped it; the spy proves the order without such a file.)
    """
    from safetensors.torch import save_file

    import cmp.checkpoints
    built_on = []
    real_build = cmp.checkpoints.build_cmp

    def spy(cfg):
        built_on.append(torch.empty(0).device.type)  # the device a factory call would use right now
        return real_build(cfg)

    monkeypatch.setattr(cmp.checkpoints, "build_cmp", spy)
    sd = {k: v for k, v in random_model(TINY).state_dict().items() if not k.endswith("num_batches_tracked")}
    lie = dataclasses.replace(TINY, encoder=dataclasses.replace(TINY.encoder, **encoder))
    save_file(sd, str(tmp_path / "lie.safetensors"), metadata={"cmp_config": lie.to_json()})
    with pytest.raises(CheckpointError, match=message) as ei:
        load_checkpoint_file(tmp_path / "lie.safetensors")
    assert "\n" not in str(ei.value)
    assert built_on == ["meta"], "the claimed network was allocated before its shapes were checked"
    built_on.clear()
    save_checkpoint(random_model(TINY), tmp_path / "honest.safetensors")
    load_checkpoint_file(tmp_path / "honest.safetensors")
    assert built_on == ["meta", "cpu"]


@pytest.fixture
def no_backoff_wait(monkeypatch):
    """huggingface_hub retries a refused connection with exponential backoff (~20 s); skip the
    waiting, count the retries. Only its HTTP helper's clock is replaced, not time.sleep itself."""
    import types

    import huggingface_hub.constants
    import huggingface_hub.utils._http as hf_http
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    waits = []
    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_is_asked_once_and_cached_mirrors_still_serve(tmp_path, served, no_backoff_wait):
    hub, data, sha = served
    hub.add(*MIRROR, data, repo_type="dataset")
    cache = str(tmp_path / "hf")
    two = RegistryEntry.from_dict(hub_entry("cmp", sha, [(*PRIMARY, "model"), (*MIRROR, "dataset")]))
    one = RegistryEntry.from_dict(hub_entry("cmp", sha, [(*PRIMARY, "model")]))
    assert download(two, cache_dir=cache, endpoint=hub.url).read_bytes() == data  # the mirror is now cached
    down = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(CheckpointError, match="LocalEntryNotFoundError"):
        download(one, cache_dir=cache, endpoint=down)
    retries_for_one_location = len(no_backoff_wait)
    assert retries_for_one_location > 0  # (the backoff really is what costs the time)
    no_backoff_wait.clear()
    assert download(two, cache_dir=cache, endpoint=down).read_bytes() == data  # the cached mirror still serves
    no_backoff_wait.clear()
    with pytest.raises(CheckpointError) as ei:  # nothing cached: each location named, the Hub asked only once
        download(two, cache_dir=str(tmp_path / "empty"), endpoint=down)
    assert "org/cmp-weights" in str(ei.value) and "someone/mirror" in str(ei.value)
    assert len(no_backoff_wait) == retries_for_one_location, "a mirror on the silent Hub cost another ~20 s"


def test_app_falls_back_to_the_embedded_model_with_a_visible_notice(tmp_path, monkeypatch, capsys, tiny_engine):
    """Offline with an empty cache, the 'resnet50' registry name cannot be had: the app starts anyway.
    (An unreachable Hub raises the same CheckpointError from download(), tested above.)"""
    import gradio as gr
    import huggingface_hub.constants

    import app
    from demos.common import Context
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    engine, notice = app.load_engine(app.parse_args(["--checkpoint", "resnet50", "--device", "cpu"]))
    assert engine.name == "cmp-slim-affinity"  # the shipped default
    assert engine.cache.max_entries == app.CACHE_IMAGES and engine.cache.max_bytes == app.CACHE_MB * 2**20
    assert notice.startswith("Could not load 'resnet50'") and notice.endswith("using the embedded default model.")
    assert len(notice) < 300 and "\n" not in notice
    assert "could not download" in capsys.readouterr().err  # short on the page, whole in the log
    demo = app.build_app(Context(engine=tiny_engine, notice=notice))
    shown = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any(notice in (v or "") for v in shown)


# -- weight soups -----------------------------------------------------------------------

def _saved(tmp_path, name, seed, cfg=None):
    from cmp.checkpoints import save_checkpoint
    from cmp.model import build_cmp
    from cmp.model.config import TINY_AFFINITY

    torch.manual_seed(seed)
    return str(save_checkpoint(build_cmp(cfg or TINY_AFFINITY), tmp_path / name))


def test_a_weight_soup_is_the_weighted_mean_of_every_weight(tmp_path):
    from cmp.checkpoints import load_checkpoint_file, weight_soup

    a, b = _saved(tmp_path, "a.safetensors", 1), _saved(tmp_path, "b.safetensors", 2)
    sa, sb = (load_checkpoint_file(p)[0].state_dict() for p in (a, b))
    soup = weight_soup([a, b], [0.25, 0.75]).state_dict()
    floats = [k for k, v in sa.items() if v.is_floating_point() and not torch.equal(sa[k], sb[k])]
    assert floats  # the two files differ
    for k in floats:
        assert torch.allclose(soup[k], 0.25 * sa[k] + 0.75 * sb[k], atol=1e-6), k
    equal = weight_soup([a, b]).state_dict()
    assert torch.allclose(equal[floats[0]], (sa[floats[0]] + sb[floats[0]]) / 2, atol=1e-6)
    assert torch.equal(weight_soup([a]).state_dict()[floats[0]], sa[floats[0]])  # a soup of one is the file


def test_a_soup_refuses_other_architectures_and_bad_weights(tmp_path):
    from cmp.checkpoints import CheckpointError, weight_soup
    from cmp.model.config import TINY

    a, other = _saved(tmp_path, "a.safetensors", 1), _saved(tmp_path, "t.safetensors", 1, TINY)
    with pytest.raises(CheckpointError, match="another architecture"):
        weight_soup([a, other])
    with pytest.raises(CheckpointError, match="summing to 1"):
        weight_soup([a, a], [0.5, 0.6])
    with pytest.raises(CheckpointError, match="no random walk"):
        weight_soup([other], walk_sharpness=8)


def test_cli_checkpoints_soup_writes_a_loadable_file_with_its_walk_sharpness(tmp_path, capsys):
    from cmp.checkpoints import load_checkpoint_file, read_state_dict
    from cmp.cli import main

    a, b = _saved(tmp_path, "a.safetensors", 1), _saved(tmp_path, "b.safetensors", 2)
    out = tmp_path / "soup.safetensors"
    assert main(["checkpoints", "soup", a, b, "--out", str(out), "--weights", "0.5,0.5", "--walk-sharpness", "16"]) == 0
    _model, cfg, _ = load_checkpoint_file(out)
    assert cfg.head.walk_sharpness == 16.0
    assert read_state_dict(out)[1]["steps"] == "soup" and "a.safetensors, b.safetensors" in read_state_dict(out)[1]["soup"]
    capsys.readouterr()
    assert main(["checkpoints", "soup", a, b, "--out", str(out), "--weights", "half,half"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--weights" in err
