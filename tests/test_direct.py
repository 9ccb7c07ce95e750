"""Direct canvas clicks (demos.direct) through their raw HTTP door: what a caller who is not
the page's script can and cannot do with ``/component_server``'s ``direct_click``.
The browser side (the click painted first, Gradio's files with the same bytes) is in
tests/test_browser.py."""
from __future__ import annotations

import httpx
import numpy as np
import pytest

from demos import direct


def _bridge_id(url: str, elem_id: str) -> int:
    config = httpx.get(f"{url}config").json()
    return next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def _post(url: str, component_id: int, data, session: str):
    return httpx.post(f"{url}gradio_api/component_server",
                      json={"data": data, "component_id": component_id, "fn_name": "direct_click",
                            "session_hash": session}, timeout=30)


@pytest.mark.parametrize("page", ["motion", "segment"])
def test_a_direct_click_of_an_unknown_session_or_of_bad_shape_does_nothing(app_url, page):
    cid = _bridge_id(app_url, f"{page}-direct")
    ok = {"page": page, "x": 10, "y": 10, "settings": {}}
    cases = [(ok, "no-such-session"),  # a session without an image: nothing to click on
             ({**ok, "page": "other"}, "s"), ({**ok, "x": "10"}, "s"), ({**ok, "x": 1.5}, "s"),
             ({**ok, "settings": []}, "s"), ([1, 2], "s"), (None, "s")]
    for data, session in cases:
        r = _post(app_url, cid, data, session)
        assert r.status_code == 200 and r.json() == {}, (data, session, r.text)


def test_only_real_direct_clicks_are_served(app_url):
    """Other names on the component are not callable; an unknown component is refused."""
    cid = _bridge_id(app_url, "motion-direct")
    r = httpx.post(f"{app_url}gradio_api/component_server",
                   json={"data": None, "component_id": cid, "fn_name": "preprocess", "session_hash": "s"})
    assert r.status_code == 404


def test_a_click_that_fails_is_handed_back_and_a_fault_is_logged(caplog):
    """A user error (bad setting) or a fault gives None: the page re-sends the click to Gradio's
    own event, which shows the message; a fault is also logged."""
    def bad_setting(session, x, y, s):
        raise ValueError("threshold must be between 0 and 1")

    def fault(session, x, y, s):
        raise KeyError("bug")

    assert direct._run(bad_setting, None, 1, 1, {}) is None
    assert not caplog.records
    assert direct._run(fault, None, 1, 1, {}) is None
    assert "direct click failed" in caplog.text
    assert direct._run(lambda *a: ({}, (1,)), None, 1, 1, {}) == ({}, (1,))


def test_data_urls_carry_the_components_own_preview_bytes():
    """The data URL is the very bytes Gradio's file will hold (one encoding, shared)."""
    import base64

    import gradio as gr

    from demos.outputs import encode_preview, fast_preview

    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    photo = fast_preview(gr.Image(), "photo")
    exact = fast_preview(gr.Image(format="png"))
    for comp, kind, mime in ((photo, "photo", "image/jpeg"), (exact, "exact", "image/png")):
        url = direct.data_url(comp, img)
        head, data = url.split(",", 1)
        assert head == f"data:{mime};base64"
        assert base64.b64decode(data) == encode_preview(img, kind)
    assert direct.data_url(gr.Image(), img) is None  # not a fast-preview component
    assert direct.data_url(photo, None) is None


@pytest.mark.parametrize("shape", [(20, 30, 3), (64, 64), (7, 5, 4)])
def test_exact_previews_keep_every_pixel(shape):
    """The flow view's colours are the model's: "exact" previews decode to the very array."""
    import io

    from PIL import Image

    from demos.outputs import encode_preview

    img = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    data = encode_preview(img, "exact")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img)


def test_direct_clicks_run_one_per_session_and_few_in_all(monkeypatch):
    """Past the cap a click takes Gradio's queue (fair order under load) instead of running beside it."""
    monkeypatch.setattr(direct, "_busy", set())
    assert direct._claim(("a", "motion"))
    assert not direct._claim(("a", "motion"))  # the same session's click still running
    assert direct._claim(("a", "segment"))  # its other page is its own
    assert direct.MAX_RUNNING == 2 and not direct._claim(("b", "motion"))  # two running in all
    direct._busy.discard(("a", "motion"))
    assert direct._claim(("b", "motion"))


def test_a_form_body_is_refused_quietly(app_url):
    """The route's binary (multipart) variant carries no JSON: nothing is done, no error page."""
    cid = _bridge_id(app_url, "segment-direct")
    r = httpx.post(f"{app_url}gradio_api/component_server",
                   data={"component_id": str(cid), "fn_name": "direct_click", "session_hash": "s", "data": "{}"},
                   files={"binary": ("b.bin", b"\0" * 10)}, timeout=30)
    assert r.status_code in (200, 400, 422), r.text
    if r.status_code == 200:
        assert r.json() == {}


def test_only_handed_over_previews_are_remembered():
    """An array encoded for a direct click is encoded once; any other array is encoded afresh
    each time, so one changed in place by its owner never gets stale bytes."""
    from demos.outputs import encode_preview

    img = np.zeros((16, 16, 3), np.uint8)
    first = encode_preview(img, "exact")
    img[:] = 255  # changed in place
    assert encode_preview(img, "exact") != first
    handed = np.zeros((16, 16, 3), np.uint8)
    sent = encode_preview(handed, "exact", remember=True)
    assert encode_preview(handed, "exact") is sent  # the same bytes, not encoded again
