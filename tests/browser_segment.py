"""Real-browser check of the Segment page, called from the shared browser test.

Not collected by pytest on its own (no ``test_`` prefix): the shared browser
test launches the app and Chromium once and calls :func:`check_segment_page`.
"""
from __future__ import annotations

import re

from benchmarks.browser import wait_src_change

#: Generous: a click runs the model on a shared, busy CPU.
TIMEOUT_MS = 120_000


def _image_pixel_to_page(page, selector: str, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) in an <img> drawn with object-fit: contain."""
    box = page.locator(selector).bounding_box()
    nat_w, nat_h = page.locator(selector).evaluate("img => [img.naturalWidth, img.naturalHeight]")
    r = min(box["width"] / nat_w, box["height"] / nat_h, 1.0)
    off_x = (box["width"] - nat_w * r) / 2
    off_y = (box["height"] - nat_h * r) / 2
    return box["x"] + off_x + (x + 0.5) * r, box["y"] + off_y + (y + 0.5) * r


def check_segment_page(page, base_url: str, example_path: str) -> dict:
    """Upload ``example_path`` on the Segment tab, click its centre once, expect a mask overlay;
    then "Next object" and "Export" list the PNG masks and the COCO JSON.

    ``page`` is a Playwright page. Returns what it saw (status text, mask area
    in pixels, image size) so the caller can log it.
    """
    page.goto(base_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Segment").click()
    page.locator("#segment-input input[type=file]").set_input_files(example_path)
    status = page.locator("#segment-status")
    status.get_by_text(re.compile(r"Object 1: 0 clicks")).wait_for(timeout=TIMEOUT_MS)
    img = "#segment-canvas img"
    page.locator(img).wait_for(state="visible", timeout=TIMEOUT_MS)
    before = page.locator(img).get_attribute("src")
    nat_w, nat_h = page.locator(img).evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert nat_w > 0 and nat_h > 0, "the working image did not load"

    px, py = _image_pixel_to_page(page, img, nat_w / 2, nat_h / 2)
    page.mouse.click(px, py)
    status.get_by_text(re.compile(r"1 click \(1 \+.*mask [\d,]+ px")).wait_for(timeout=TIMEOUT_MS)
    wait_src_change(page, img, before, timeout=TIMEOUT_MS)
    text = status.inner_text()
    area = int(re.search(r"mask ([\d,]+) px", text).group(1).replace(",", ""))
    assert area > 0, f"a positive click gave an empty mask: {text!r}"

    # Keep it as object 1 and export: the files list shows one mask, the label map and the COCO JSON.
    page.locator("#segment-next").click()
    status.get_by_text(re.compile(r"Object 2: 0 clicks.*1 finished object")).wait_for(timeout=TIMEOUT_MS)
    page.locator("#segment-export").click()
    # Gradio renders a file name as separate stem and extension spans: compare whole text.
    page.wait_for_function(
        "(names) => { const el = document.querySelector('#segment-files');"
        " const t = el ? el.textContent.replace(/\\s+/g, '') : '';"
        " return names.every(n => t.includes(n)); }",
        arg=["_object1.png", "_labels.png", "_coco.json"], timeout=TIMEOUT_MS)
    return {"status": text, "mask_px": area, "image": [nat_w, nat_h]}


def check_segment_shortcuts(page, base_url: str, example_path: str, screenshot: str | None = None) -> dict:
    """The Segment page driven by its single-key shortcuts: candidates, modes, evidence, next object, export.

    Keys typed into the class field must not fire shortcuts. Returns what it saw.
    """
    page.goto(base_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Segment").click()
    page.locator("#segment-input input[type=file]").set_input_files(example_path)
    status = page.locator("#segment-status")
    status.get_by_text(re.compile(r"Object 1: 0 clicks")).wait_for(timeout=TIMEOUT_MS)
    assert "next candidate mask" in page.locator("#segment-keys").inner_text()
    img = "#segment-canvas img"
    nat_w, nat_h = page.locator(img).evaluate("img => [img.naturalWidth, img.naturalHeight]")

    px, py = _image_pixel_to_page(page, img, nat_w / 2, nat_h / 2)
    page.mouse.click(px, py)
    status.get_by_text(re.compile(r"1 click \(1 \+.*candidate (part|object|group)")).wait_for(timeout=TIMEOUT_MS)
    radios = page.locator("#segment-candidates input[type=radio]")
    assert radios.count() == 3
    first = re.search(r"candidate (\w+)", status.inner_text()).group(1)

    page.locator("body").click(position={"x": 5, "y": 5})  # focus off any widget
    page.keyboard.press("c")                               # next candidate
    status.get_by_text(re.compile(r"candidate (?!%s\b)\w+" % first)).wait_for(timeout=TIMEOUT_MS)
    second = re.search(r"candidate (\w+)", status.inner_text()).group(1)

    page.keyboard.press("n")                               # negative mode
    page.wait_for_function("() => document.querySelectorAll('#segment-mode input[type=radio]')[1].checked")
    page.keyboard.press("p")                               # back to positive
    page.wait_for_function("() => document.querySelectorAll('#segment-mode input[type=radio]')[0].checked")

    # the evidence panel: four probe flows and the score plot, rendered
    page.locator("#segment-evidence").get_by_text("Evidence").click()
    for sel in ("#segment-evidence-flows img", "#segment-evidence-score img"):
        page.wait_for_function("s => { const i = document.querySelector(s);"
                               " return i && i.complete && i.naturalWidth > 100; }", arg=sel, timeout=TIMEOUT_MS)
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)

    # typing a class name: letters go into the field, not to the shortcuts
    field = page.locator("#segment-class input, #segment-class textarea").first
    field.fill("")
    field.type("cpe zebra")
    page.wait_for_timeout(1500)  # room for a wrongly fired shortcut to show (not a timing assert)
    assert ".png" not in page.locator("#segment-files").inner_text()             # no export ('e')
    assert re.search(r"candidate %s\b" % second, status.inner_text())            # no candidate switch ('c')
    assert page.evaluate("() => document.querySelectorAll('#segment-mode input[type=radio]')[0].checked")
    page.locator("body").click(position={"x": 5, "y": 5})

    page.keyboard.press("z")                               # undo: no clicks left
    status.get_by_text(re.compile(r"Object 1: 0 clicks")).wait_for(timeout=TIMEOUT_MS)
    page.mouse.click(px, py)
    status.get_by_text(re.compile(r"1 click \(1 \+.*mask [\d,]+ px")).wait_for(timeout=TIMEOUT_MS)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Enter")                           # next object
    status.get_by_text(re.compile(r"Object 2: 0 clicks.*1 finished object")).wait_for(timeout=TIMEOUT_MS)
    page.locator("#segment-speed").get_by_text("cpe zebra").wait_for(timeout=TIMEOUT_MS)
    page.keyboard.press("e")                               # export
    page.wait_for_function(
        "(names) => { const el = document.querySelector('#segment-files');"
        " const t = el ? el.textContent.replace(/\\s+/g, '') : '';"
        " return names.every(n => t.includes(n)); }",
        arg=["_object1.png", "_labels.png", "_coco.json", "classes.txt"], timeout=TIMEOUT_MS)
    return {"candidates": [first, second], "speed": page.locator("#segment-speed").inner_text()}
