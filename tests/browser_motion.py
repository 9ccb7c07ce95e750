"""Real-browser checks of the Motion page's paths and Segment's "Animate this object",
called from tests/test_browser.py (which owns the app and Chromium fixtures)."""
from __future__ import annotations

import re

from benchmarks.browser import wait_src_change

TIMEOUT_MS = 120_000
CANVAS = "#motion-canvas img"


def _wait_src_change(pg, selector: str, old: str) -> str:
    return wait_src_change(pg, selector, old, timeout=TIMEOUT_MS)


def check_three_point_path(pg, image_path: str, click_pixel, pixel) -> dict:
    """Upload, tick Path mode, click three points (each redraws the canvas), press Enter, see the path
    drawn and the guidance JSON carry it, generate, and watch the video play."""
    pg.set_input_files("#motion-input input[type=file]", image_path)
    pg.wait_for_function("s => { const i = document.querySelector(s); return i && i.naturalWidth === 120; }",
                         arg=CANVAS, timeout=TIMEOUT_MS)
    pg.locator("#motion-path-mode").get_by_text("Path mode").click()
    keys = [(20, 45), (60, 25), (100, 60)]
    src = pg.get_attribute(CANVAS, "src") or ""
    for x, y in keys:
        click_pixel(pg, CANVAS, x, y)
        src = _wait_src_change(pg, CANVAS, src)  # each click is drawn at once
    pg.keyboard.press("Enter")  # Enter finishes, like the Finish button or clicking the last point again
    src = _wait_src_change(pg, CANVAS, src)
    dots = [pixel(pg, CANVAS, x, y) for x, y in keys]  # finished: a filled orange dot per keyframe
    assert all(r > 200 and 90 < g < 190 and b < 80 for r, g, b in dots), dots
    pg.get_by_text("Guidance as JSON").click()
    pg.wait_for_function("s => { const t = document.querySelector(s); return t && t.value.includes('tracks'); }",
                         arg="#motion-json textarea", timeout=TIMEOUT_MS)
    tracks = re.search(r'"tracks": (\[\[\[.*?\]\]\])', pg.locator("#motion-json textarea").input_value()).group(1)

    pg.click("#motion-generate")
    pg.wait_for_function("() => { const v = document.querySelector('#motion-video video');"
                         " return v && v.readyState >= 2 && v.duration > 0 && v.currentTime > 0; }",
                         timeout=TIMEOUT_MS)
    pg.wait_for_function("() => (document.querySelector('#motion-frames-zip') || {}).textContent"
                         "?.replace(/\\s+/g, '').includes('.zip')", timeout=TIMEOUT_MS)
    return {"tracks": tracks, "keyframe_pixels": dots}


def check_animate_this_object(pg, image_path: str, click_pixel) -> dict:
    """Segment an object, press "Animate this object": the Motion page opens with the image and
    that mask as its motion region (shown on the region input, dimmed outside on the canvas,
    and in the guidance JSON)."""
    pg.get_by_role("tab", name="Segment").click()
    pg.locator("#segment-input input[type=file]").set_input_files(image_path)
    status = pg.locator("#segment-status")
    status.get_by_text(re.compile(r"Object 1: 0 clicks")).wait_for(timeout=TIMEOUT_MS)
    img = "#segment-canvas img"
    # the status line can come before the canvas has loaded the photo (seen once under load)
    pg.wait_for_function("s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth === 120; }",
                         arg=img, timeout=TIMEOUT_MS)
    before = pg.get_attribute(img, "src") or ""
    click_pixel(pg, img, 60, 45)
    status.get_by_text(re.compile(r"mask [\d,]+ px")).wait_for(timeout=TIMEOUT_MS)
    _wait_src_change(pg, img, before)
    pg.click("#segment-animate")
    # the Motion tab is selected and shows the image with its region
    pg.locator("#motion-canvas").wait_for(state="visible", timeout=TIMEOUT_MS)
    pg.wait_for_function("() => { const i = document.querySelector('#motion-region img');"
                         " return i && i.complete && i.naturalWidth === 120; }", timeout=TIMEOUT_MS)
    pg.wait_for_function("s => { const i = document.querySelector(s); return i && i.naturalWidth === 120; }",
                         arg=CANVAS, timeout=TIMEOUT_MS)
    pg.get_by_text("Guidance as JSON").click()
    pg.wait_for_function("s => { const t = document.querySelector(s); return t && t.value.includes('region'); }",
                         arg="#motion-json textarea", timeout=TIMEOUT_MS)
    return {"json": pg.locator("#motion-json textarea").input_value()[:200]}
