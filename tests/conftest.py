"""Shared fixtures: a tiny random engine and checkpoint, small sample images, the app launched once and a client on it.

The app fixture launches ``app.build_app`` in-process on a free local port
(``prevent_thread_lock=True``) so API and browser tests share one server.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Before gradio / huggingface_hub are imported: no version check, no Hub calls.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Long side of working images in the launched test app (uploads above are downscaled).
TEST_MAX_SIDE = 320


@pytest.fixture(scope="session")
def tiny_engine():
    """A random TINY CMP on CPU fp32: fast, deterministic, untrained."""
    from cmp.device import Runtime
    from cmp.engine import Engine
    from cmp.model import build_cmp
    from cmp.model.config import TINY

    torch.manual_seed(0)
    return Engine(build_cmp(TINY), Runtime.create("cpu", "fp32"), side=128, name="tiny-test")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """Path of a saved random TINY model (seed 0), for the command line."""
    from cmp.checkpoints import save_checkpoint
    from cmp.model import build_cmp
    from cmp.model.config import TINY

    torch.manual_seed(0)
    return str(save_checkpoint(build_cmp(TINY), tmp_path_factory.mktemp("ck") / "tiny.safetensors"))


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory) -> dict[str, str]:
    """Paths of small test files: 'photo' (120x90 PNG), 'odd' (75x53), 'large' (480x320, above
    TEST_MAX_SIDE, so it is downscaled), 'broken' (not an image)."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("images")
    cat = Image.fromarray(data.chelsea())  # 451x300
    paths = {}
    for name, size in (("photo", (120, 90)), ("odd", (75, 53)), ("large", (480, 320))):
        p = d / f"{name}.png"
        cat.resize(size, Image.Resampling.LANCZOS).save(p)
        paths[name] = str(p)
    broken = d / "broken.png"
    broken.write_bytes(b"this is not a picture\n" * 10)
    paths["broken"] = str(broken)
    return paths


@pytest.fixture(scope="session")
def launched_app(tiny_engine, sample_images):
    """(demo, local_url) of the full app around the tiny engine, launched once per session."""
    from app import build_app, launch_options
    from demos.common import Context

    ctx = Context(engine=tiny_engine, max_side=TEST_MAX_SIDE, examples=[sample_images["photo"]], video_side=128)
    demo = build_app(ctx)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        yield demo, url
    finally:
        demo.close()


@pytest.fixture(scope="session")
def affinity_app(sample_images):
    """(engine, demo, url) of the app around a tiny random affinity model, which (unlike the
    bin decoder of ``launched_app``) has the "whole scene moves" mode."""
    from app import build_app
    from cmp.device import Runtime
    from cmp.engine import Engine
    from cmp.model import TINY_AFFINITY, build_cmp
    from demos.common import Context

    torch.manual_seed(0)
    eng = Engine(build_cmp(TINY_AFFINITY), Runtime.create("cpu", "fp32"), side=128, name="tiny-affinity-test")
    demo = build_app(Context(engine=eng, max_side=TEST_MAX_SIDE, video_side=128))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield eng, demo, url
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_url(launched_app) -> str:
    return launched_app[1]


@pytest.fixture(scope="session")
def client(app_url):
    """A ``gradio_client.Client`` on the launched app, with one TLS context for all its requests
    (as the README advises: otherwise httpx loads the CA bundle for every request)."""
    import ssl

    from gradio_client import Client

    return Client(app_url, verbose=False, ssl_verify=ssl.create_default_context())


@pytest.fixture
def hub_online(monkeypatch):
    """Lets huggingface_hub talk (to the loopback Hub only: the suite's HF_HUB_OFFLINE=1 is
    lifted for this test; huggingface_hub reads the flag at call time)."""
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="session")
def hub_app(tiny_engine, tmp_path_factory):
    """The app whose engine pool downloads from a loopback Hub (tests/hub_server.py), launched
    once: a namespace with ``hub``, ``url``, ``pool``, ``refs`` and ``files`` (see ``serve_standins``)."""
    from types import SimpleNamespace

    from app import build_app
    from cmp.pool import EnginePool
    from demos.common import Context
    from hub_server import FakeHub, serve_standins

    d = tmp_path_factory.mktemp("hub-app")
    with FakeHub() as hub:
        refs, files, registry = serve_standins(hub, d)
        pool = EnginePool(tiny_engine, registry=registry, endpoint=hub.url, cache_dir=str(d / "hf"), max_models=2,
                          max_download_bytes=2 * 2**20)
        demo = build_app(Context(engine=tiny_engine, max_side=TEST_MAX_SIDE, video_side=128, pool=pool))
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, ssr_mode=False)
        try:
            yield SimpleNamespace(hub=hub, url=url, pool=pool, refs=refs, files=files, cache=str(d / "hf"))
        finally:
            demo.close()
