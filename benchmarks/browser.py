"""Driving the app's images in Chromium (Playwright): the letterbox mapping from image pixels
to screen points, shared by the real-browser tests and the latency benchmark."""
from __future__ import annotations


def natural_size(pg, selector: str) -> tuple[int, int]:
    """(width, height) of the image file an <img> shows (waiting while a new one loads: a page
    may swap a canvas's image for the same pixels from another URL just after a click)."""
    return tuple(pg.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0 &&"
        " [i.naturalWidth, i.naturalHeight]; }", arg=selector).json_value())


def click_pixel(pg, selector: str, x: float, y: float) -> None:
    """Click image pixel (x, y) of an <img>, mapping through Gradio's letterbox (never upscaled)."""
    pg.mouse.click(*screen_point(pg, selector, x, y))


def screen_point(pg, selector: str, x: float, y: float) -> tuple[float, float]:
    """The screen point of image pixel (x, y) of an <img>, through Gradio's letterbox."""
    box = pg.locator(selector).bounding_box()
    nw, nh = natural_size(pg, selector)
    r = min(box["width"] / nw, box["height"] / nh, 1.0)
    ox, oy = (box["width"] - nw * r) / 2, (box["height"] - nh * r) / 2
    return box["x"] + ox + (x + 0.5) * r, box["y"] + oy + (y + 0.5) * r


def wait_src_change(pg, selector: str, old: str, timeout: float | None = None) -> str:
    """Wait until an <img> shows a new, loaded file (not ``old``); returns its src.

    A direct click (:mod:`demos.direct`) paints a data URL first and Gradio's file with the
    same pixels follows, so this waits for the file: the page has finished the click."""
    pg.wait_for_function("([s, old]) => { const i = document.querySelector(s);"
                         " return i && i.src && i.src !== old && !i.src.startsWith('data:') && i.complete &&"
                         " i.naturalWidth > 0; }", arg=[selector, old], timeout=timeout)
    return pg.evaluate("s => document.querySelector(s).src", selector)
