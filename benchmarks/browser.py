"""Driving the app's images in Chromium (Playwright): the letterbox mapping from image pixels
to screen points, shared by the real-browser tests and the latency benchmark."""
from __future__ import annotations


def natural_size(pg, selector: str) -> tuple[int, int]:
    """(width, height) of the image file an <img> shows."""
    return tuple(pg.evaluate("s => { const i = document.querySelector(s); return [i.naturalWidth, i.naturalHeight]; }",
                             selector))


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
