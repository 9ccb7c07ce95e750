"""Refresh the README's screenshots with the embedded model: `python -m benchmarks.screenshots`.

Drives the three pages in Debian's chromium (the browser test's helpers), as a user would.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from PIL import Image
from skimage import data
import app
from demos.common import Context
from cmp.engine import Engine
from playwright.sync_api import sync_playwright
from browser_segment import check_segment_page, check_segment_shortcuts
from browser_gallery import check_gallery_page
from test_browser import click_pixel, wait_src_change, img_src
SH = ROOT / "docs" / "screenshots"


def main() -> None:
    eng = Engine.from_checkpoint("default")
    demo = app.build_app(Context(engine=eng, pool=app.make_pool(eng, "default")))  # segments as app.main does
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, ssr_mode=False)
    img = str(Path(tempfile.mkdtemp()) / "cat.png"); Image.fromarray(data.chelsea()).save(img)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        pg = b.new_context(viewport={"width": 1400, "height": 1000}).new_page(); pg.set_default_timeout(90000)
        pg.goto(url, wait_until="domcontentloaded"); pg.wait_for_selector("#motion-canvas img")
        pg.set_input_files("#motion-input input[type=file]", img)
        pg.wait_for_function("() => { const i = document.querySelector('#motion-canvas img'); return i && i.naturalWidth === 451; }")
        C = "#motion-canvas img"
        for (x0, y0, x1, y1) in ((300, 120, 330, 100), (150, 230, 150, 230)):
            s0 = img_src(pg, C); click_pixel(pg, C, x0, y0); s1 = wait_src_change(pg, C, s0)
            click_pixel(pg, C, x1, y1); wait_src_change(pg, C, s1)
        time.sleep(4)
        pg.screenshot(path=str(SH / "motion.png"), full_page=True)
        pg2 = b.new_context(viewport={"width": 1400, "height": 1000}).new_page(); pg2.set_default_timeout(90000)
        check_segment_page(pg2, url, img); pg2.screenshot(path=str(SH / "segment.png"), full_page=True)
        pg4 = b.new_context(viewport={"width": 1400, "height": 1000}).new_page(); pg4.set_default_timeout(90000)
        check_segment_shortcuts(pg4, url, img, str(SH / "segment-evidence.png"))
        pg3 = b.new_context(viewport={"width": 1400, "height": 1000}).new_page(); pg3.set_default_timeout(90000)
        check_gallery_page(pg3, url); pg3.screenshot(path=str(SH / "gallery.png"), full_page=True)
        b.close()
    demo.close()
    print("ok")


if __name__ == "__main__":
    main()
