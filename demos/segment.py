"""Segment page: click an object, get its mask; several objects; PNG and COCO export.

Thin wiring only: masks come from :func:`cmp.segment.segment` on the session's engine.
Per-tab state is a small dict of plain values::

    {"size": [h, w], "clicks": [[x, y, 1 | 0], ...],   # current object, 1 = positive
     "mask": RLE counts str | None,                     # current object's mask
     "objects": [{"clicks": [...], "mask": RLE counts str}, ...]}   # finished objects

Masks are kept as compressed COCO RLE strings (a few kB), so finished objects
never need the model again; the image is re-read from the upload and its
encoding stays cached in the engine.

Public API (``gradio_client``): ``/segment_mask`` (image, points_json,
threshold, zoom, pin_frame[, checkpoint]) -> (mask PNG path, 0/255 same size as the image; COCO JSON
dict with compressed RLE). ``points_json`` is ``{"positive": [[x, y], ...],
"negative": [[x, y], ...]}`` in pixels of the working image (after any
downscale note).
"""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np

from cmp.guidance import MAX_POINTS, GuidanceError
from cmp.masks import coco_dict, export_objects, rle_decode, rle_encode, save_mask_png
from cmp.segment import DEFAULT_THRESHOLD, segment

from . import overlays
from .common import (MODEL_GROUP, STATE_TTL_S, Context, click_xy, image_intake, is_numbers, parse_json,
                     read_image, retry_if_evicted, temp_dir,
                     temp_path, user_errors)

POSITIVE, NEGATIVE = "Positive (object)", "Negative (background)"
HINT = ("Click the object (positive) or the background (negative); the mask updates after every click. "
        "**Next object** keeps the mask and starts a new one.")
#: Finished objects cycle through these (RGB); the object being edited is drawn in CURRENT_COLOR.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127), (214, 39, 40)]
CURRENT_COLOR = (255, 221, 0)
MAX_OBJECTS = 255  # label maps are 8-bit


# -- pure helpers (tested without Gradio) ---------------------------------------

def new_state(size=None) -> dict:
    return {"size": list(size) if size else None, "clicks": [], "mask": None, "objects": []}


def add_click(state: dict, x: float, y: float, positive: bool) -> dict:
    clicks = [list(c) for c in state.get("clicks", [])]
    if len(clicks) >= MAX_POINTS:
        raise GuidanceError(f"at most {MAX_POINTS} clicks per object; undo some or start the next object")
    clicks.append([float(x), float(y), 1 if positive else 0])
    return {**state, "clicks": clicks}


def split_clicks(clicks) -> tuple[list[list[float]], list[list[float]]]:
    pos = [[c[0], c[1]] for c in clicks if c[2]]
    neg = [[c[0], c[1]] for c in clicks if not c[2]]
    return pos, neg


def undo(state: dict) -> dict:
    """Drop the last click; with no clicks, reopen the last finished object for editing."""
    clicks = [list(c) for c in state.get("clicks", [])]
    objects = list(state.get("objects", []))
    if clicks:
        return {**state, "clicks": clicks[:-1], "mask": None}
    if objects:
        last = objects.pop()
        return {**state, "clicks": [list(c) for c in last["clicks"]], "mask": last["mask"], "objects": objects}
    return state


def finish_object(state: dict) -> dict:
    """Keep the current mask as a finished object and start a new, empty one."""
    if not state.get("mask"):
        raise GuidanceError("nothing to keep yet: click the object first")
    if len(state.get("objects", [])) >= MAX_OBJECTS:
        raise GuidanceError(f"at most {MAX_OBJECTS} objects per image")
    objects = list(state.get("objects", [])) + [{"clicks": state["clicks"], "mask": state["mask"]}]
    return {**state, "clicks": [], "mask": None, "objects": objects}


def decode(state: dict, counts: str) -> np.ndarray:
    return rle_decode({"size": state["size"], "counts": counts})


def all_masks(state: dict) -> list[np.ndarray]:
    """Finished objects then the current one (if it has a mask), as (H, W) bool."""
    masks = [decode(state, o["mask"]) for o in state.get("objects", [])]
    if state.get("mask"):
        masks.append(decode(state, state["mask"]))
    return masks


def parse_points(text: str | None) -> tuple[list[list[float]], list[list[float]]]:
    """Points JSON ``{"positive": [[x, y], ...], "negative": [[x, y], ...]}`` -> (positive, negative)."""
    if text is None or not str(text).strip():
        raise GuidanceError('give points as JSON: {"positive": [[x, y]], "negative": [[x, y]]}')
    data = parse_json(str(text), "points")
    if not isinstance(data, dict):
        raise GuidanceError('points JSON must be an object {"positive": [...], "negative": [...]}')
    unknown = set(data) - {"positive", "negative"}
    if unknown:
        raise GuidanceError(f"unknown keys {sorted(unknown)}; use 'positive' and 'negative'")
    out = []
    for key in ("positive", "negative"):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise GuidanceError(f"'{key}' must be a list of [x, y] pairs")
        pts = []
        for it in items:
            if not is_numbers(it, 2):
                raise GuidanceError(f"each {key} point must be [x, y] numbers; got {json.dumps(it)[:60]}")
            pts.append([float(it[0]), float(it[1])])
        out.append(pts)
    if not out[0]:
        raise GuidanceError("give at least one positive point on the object")
    return out[0], out[1]


def points_json(clicks) -> str:
    pos, neg = split_clicks(clicks)
    r = lambda p: [round(p[0], 1), round(p[1], 1)]  # noqa: E731
    return json.dumps({"positive": [r(p) for p in pos], "negative": [r(p) for p in neg]})


def render(rgb: np.ndarray, state: dict) -> np.ndarray:
    """A copy of the image with finished objects, the current mask and its clicks drawn."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    width = overlays.line_width(img.shape)
    if state.get("size") == list(img.shape[:2]):
        for k, o in enumerate(state.get("objects", [])):
            overlays.tint_mask(img, decode(state, o["mask"]), PALETTE[k % len(PALETTE)], width=width)
        if state.get("mask"):
            overlays.tint_mask(img, decode(state, state["mask"]), CURRENT_COLOR, width=width + 1)
    return overlays.draw_clicks(img, state.get("clicks", []))


def status(state: dict, box=None) -> str:
    n_obj = len(state.get("objects", []))
    clicks = state.get("clicks", [])
    n_pos = sum(1 for c in clicks if c[2])
    parts = [f"Object {n_obj + 1}: {len(clicks)} click{'s' * (len(clicks) != 1)} ({n_pos} +, {len(clicks) - n_pos} −)"]
    if state.get("mask") and state.get("size"):
        h, w = state["size"]
        area = int(decode(state, state["mask"]).sum())
        parts.append(f"mask {area:,} px ({100 * area / (h * w):.1f} %)")
    elif clicks:
        parts.append("no mask (add a positive click)")
    if box is not None:
        parts.append(f"zoom {box.width}×{box.height} px")
    if n_obj:
        parts.append(f"{n_obj} finished object{'s' * (n_obj != 1)}")
    return " · ".join(parts)


def mask_for(ctx: Context, rgb: np.ndarray, positive, negative, threshold: float, zoom: bool,
             pin_frame: bool = True, model: str | None = None):
    """:func:`cmp.segment.segment` on ``model``'s engine, retried once if another tab evicted the image."""
    engine = ctx.engine_for(model)
    return retry_if_evicted(lambda: segment(engine, rgb, positive, negative, threshold=float(threshold),
                                            zoom=bool(zoom), pin_frame=bool(pin_frame)))


# -- the page ----------------------------------------------------------------

def build(ctx: Context) -> None:
    state = gr.State(new_state(), time_to_live=STATE_TTL_S)

    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            src, note = image_intake(ctx, "segment")
            mode = gr.Radio([POSITIVE, NEGATIVE], value=POSITIVE, label="Click mode", elem_id="segment-mode")
            threshold = gr.Slider(0.05, 0.95, value=DEFAULT_THRESHOLD, step=0.05, label="Threshold",
                                  info="mask = normalised motion > threshold", elem_id="segment-threshold")
            zoom = gr.Checkbox(True, label="Zoom in around the clicks", elem_id="segment-zoom",
                               info="helps small objects; the mask is mapped back to full resolution")
            pin = gr.Checkbox(True, label="Frame is background", elem_id="segment-pin",
                              info="the border of the view stays still; untick if the object runs off the edge")
        with gr.Column(scale=3):
            canvas = gr.Image(value=overlays.placeholder(), interactive=False, label="Click the object",
                              height=480, elem_id="segment-canvas", buttons=["fullscreen"])
            status_md = gr.Markdown("", elem_id="segment-status")
            with gr.Row():
                next_btn = gr.Button("Next object", size="sm", variant="primary", elem_id="segment-next")
                undo_btn = gr.Button("Undo", size="sm", elem_id="segment-undo")
                clear_btn = gr.Button("Clear", size="sm", elem_id="segment-clear")
                export_btn = gr.Button("Export PNG + COCO", size="sm", elem_id="segment-export")
            gr.Markdown(HINT)
            files = gr.File(label="Masks (one PNG per object, label map) and COCO JSON", file_count="multiple",
                            interactive=False, height=140, elem_id="segment-files")
    with gr.Accordion("Points as JSON (what the API takes)", open=False):
        points = gr.Textbox(label="Points JSON", lines=2, elem_id="segment-json",
                            placeholder='{"positive": [[x, y]], "negative": [[x, y]]}')
        api_btn = gr.Button("Mask from this JSON", size="sm", elem_id="segment-api")
        with gr.Row():
            api_mask = gr.Image(label="Mask (0/255 PNG)", format="png", interactive=False, height=240,
                                elem_id="segment-api-mask", buttons=["download"])
            api_coco = gr.JSON(label="COCO JSON", elem_id="segment-api-coco")

    def _image(path):
        return read_image(path, ctx.max_side)

    def _recompute(rgb, st, thr, zm, pf, model=""):
        """State with the current object's mask recomputed from its clicks; also the zoom box."""
        pos, neg = split_clicks(st["clicks"])
        if not pos:
            return {**st, "mask": None}, None
        res = mask_for(ctx, rgb, pos, neg, thr, zm, pf, model)
        return {**st, "mask": rle_encode(res.mask)["counts"]}, res.box

    def _show(rgb, st, box=None):
        return render(rgb, st), st, status(st, box), points_json(st["clicks"])

    # -- private UI handlers -------------------------------------------------
    @user_errors
    def on_image(path, model=""):
        if not path:
            return overlays.placeholder(), new_state(), "", "", "", None
        rgb, msg = _image(path)
        ctx.engine_for(model).set_image(rgb)  # encode now so the first click is quick
        h, w = rgb.shape[:2]
        st = new_state((h, w))
        text = f"{w}x{h} px. " + (f"**{msg}**" if msg else "")
        return rgb, st, status(st), points_json([]), text, None

    @user_errors
    def on_click(path, st, md, thr, zm, pf, evt: gr.SelectData, model=""):  # Gradio puts evt in its place
        if not path:
            gr.Warning("Upload an image or pick an example first, then click on it.")
            return gr.skip()
        rgb, _ = _image(path)
        if st.get("size") != list(rgb.shape[:2]):
            st = new_state(rgb.shape[:2])
        x, y = click_xy(evt, rgb.shape)
        st, box = _recompute(rgb, add_click(st, x, y, md != NEGATIVE), thr, zm, pf, model)
        return _show(rgb, st, box)

    @user_errors
    def on_settings(path, st, thr, zm, pf, model=""):
        if not path or not st.get("clicks"):
            return gr.skip()
        rgb, _ = _image(path)
        st, box = _recompute(rgb, st, thr, zm, pf, model)
        return _show(rgb, st, box)

    @user_errors
    def on_undo(path, st, thr, zm, pf, model=""):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        st = undo(st)
        box = None
        if st["mask"] is None:
            st, box = _recompute(rgb, st, thr, zm, pf, model)
        return _show(rgb, st, box)

    @user_errors
    def on_clear(path, st):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        return _show(rgb, new_state(rgb.shape[:2]))

    @user_errors
    def on_next(path, st):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        return _show(rgb, finish_object(st))

    @user_errors
    def on_export(path, st):
        masks = all_masks(st) if st.get("size") else []
        if not masks:
            raise GuidanceError("nothing to export yet: click an object first")
        name = Path(path).name if path else "image.png"
        out_dir = temp_dir()
        return [str(p) for p in export_objects(out_dir, masks, stem=Path(name).stem, file_name=name)]

    # -- public endpoint ---------------------------------------------------------
    @user_errors
    def segment_mask(image, points_text, thr=DEFAULT_THRESHOLD, zm=True, pf=True, checkpoint="", model=""):
        """Mask of the object marked by JSON points -> (0/255 mask PNG path, COCO JSON dict)."""
        rgb, _ = _image(image)
        pos, neg = parse_points(points_text)
        res = mask_for(ctx, rgb, pos, neg, DEFAULT_THRESHOLD if thr is None else thr, True if zm is None else zm,
                       True if pf is None else pf, checkpoint or model)
        png = save_mask_png(temp_path(".png"), res.mask)
        name = Path(image).name if isinstance(image, str) else "image.png"
        return str(png), coco_dict([res.mask], file_name=name)

    # -- wiring ----------------------------------------------------------------
    model = dict(concurrency_id=MODEL_GROUP)
    shown = [canvas, state, status_md, points]
    src.change(on_image, [src, ctx.model], [canvas, state, status_md, points, note, files], api_visibility="private", **model)
    settings = [src, state, threshold, zoom, pin, ctx.model]
    canvas.select(on_click, [src, state, mode, threshold, zoom, pin, ctx.model], shown, api_visibility="private", **model)
    threshold.release(on_settings, settings, shown, api_visibility="private", **model)
    zoom.change(on_settings, settings, shown, api_visibility="private", **model)
    pin.change(on_settings, settings, shown, api_visibility="private", **model)
    ctx.model.change(on_settings, settings, shown, api_visibility="private", **model)  # the new model's mask
    undo_btn.click(on_undo, settings, shown, api_visibility="private", **model)
    clear_btn.click(on_clear, [src, state], shown, api_visibility="private")
    next_btn.click(on_next, [src, state], shown, api_visibility="private")
    export_btn.click(on_export, [src, state], [files], api_visibility="private")
    api_btn.click(segment_mask, [src, points, threshold, zoom, pin, ctx.checkpoint, ctx.model], [api_mask, api_coco], api_name="segment_mask",
                  **model)
