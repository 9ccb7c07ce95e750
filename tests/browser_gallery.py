"""Browser check of the Gallery page, called from the shared browser test.

``check_gallery_page(page, base_url)`` takes a Playwright page and the app's URL:
it opens the Gallery tab, picks the first example and asserts that every card drew
both of its images, then changes one card's difficulty and sees that card redrawn.

Run on its own (launches the app with a tiny random model):
    /work/venv/bin/python tests/browser_gallery.py
"""
from __future__ import annotations

CARD_TIMEOUT_MS = 60_000


def _task_names() -> list[str]:
    from cmp.proxy_tasks import TASKS

    return list(TASKS)


def _image_src(page, elem_id: str) -> str | None:
    return page.evaluate(
        """(id) => { const im = document.querySelector(`#${id} img`);
                     return im && im.complete && im.naturalWidth > 0 ? im.src : null; }""", elem_id)


def check_gallery_page(page, base_url: str) -> None:
    page.goto(base_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Gallery").click()
    page.locator("#gallery-examples button.gallery-item").first.click()
    names = _task_names()
    ids = [f"gallery-{n}-{part}" for n in names for part in ("input", "target")]
    # First every card gets an image from the server, then each must actually load
    # (Gradio images are lazy: they load only once scrolled into view).
    page.wait_for_function(
        """(ids) => ids.every(id => { const im = document.querySelector(`#${id} img`);
                                     return im && im.getAttribute('src'); })""",
        arg=ids, timeout=CARD_TIMEOUT_MS)
    for elem_id in ids:
        page.locator(f"#{elem_id} img").scroll_into_view_if_needed()
        page.wait_for_function(
            """(id) => { const im = document.querySelector(`#${id} img`);
                         return im && im.complete && im.naturalWidth > 0; }""", arg=elem_id, timeout=10_000)
    missing = [i for i in ids if not _image_src(page, i)]
    assert not missing, f"cards without an image: {missing}"
    for n in names:  # the text of every card explains the task
        text = page.locator(f"#gallery-card-{n}").first.inner_text()
        assert "Shortcut to avoid" in text, f"card {n} has no explanation"

    # One card's own difficulty redraws that card: hell jigsaw has 4x4 tiles.
    before = _image_src(page, "gallery-jigsaw-target")
    page.locator("#gallery-jigsaw-difficulty").get_by_text("hell", exact=True).click()
    page.locator("#gallery-jigsaw-target img").scroll_into_view_if_needed()
    page.wait_for_function(
        """(old) => { const im = document.querySelector('#gallery-jigsaw-target img');
                      return im && im.complete && im.naturalWidth > 0 && im.src !== old; }""",
        arg=before, timeout=CARD_TIMEOUT_MS)
    assert "of 1000" in page.locator("#gallery-card-jigsaw").first.inner_text()


if __name__ == "__main__":  # pragma: no cover - manual run
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from playwright.sync_api import sync_playwright

    import app
    import demos.common
    from cmp.device import Runtime
    from cmp.engine import Engine
    from cmp.model import build_cmp
    from cmp.model.config import TINY

    demo = app.build_app(demos.common.Context(engine=Engine(build_cmp(TINY), Runtime.create("cpu", "fp32"))))
    _app, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            check_gallery_page(page, url)
            if len(sys.argv) > 1:
                page.screenshot(path=sys.argv[1], full_page=True)
            browser.close()
        print("gallery page OK")
    finally:
        demo.close()
