"""Motion page: click arrows on a photo, see the dense flow CMP predicts, render a video.

Thin wiring only: flow comes from ``ctx.engine``, frames from :mod:`cmp.animate`,
drawing from :mod:`demos.overlays`. Per-tab state is a small dict of lists
(``{"points": [[x, y, dx, dy], ...], "pending": [x, y] | None}``, a pin being
an arrow with dx = dy = 0); the image itself is re-read from the upload and
its encoding stays cached in the engine.

Public API (``gradio_client``): ``/motion_flow`` (image, guidance_json[, scene_motion, checkpoint]) ->
(flow colour PNG, .flo) and ``/motion_video`` (image, guidance_json, frames,
fps, strength, timing, loop[, scene_motion, checkpoint]) -> (MP4, GIF). ``checkpoint``
(default "": the session's model, else the app's) is a registry name or ``hf://`` reference. ``scene_motion`` (default
false) is the "whole scene moves" mode of models that have it (the embedded one). ``guidance_json`` is
``{"arrows": [[x, y, dx, dy], ...], "pins": [[x, y], ...]}`` or a bare list
of arrows, in pixels of the uploaded image (after any downscale note).
"""
from __future__ import annotations

import json
import math

import gradio as gr
import numpy as np

from cmp import animate
from cmp.flow import flow_to_color, save_flow, write_flo
from cmp.guidance import MAX_POINTS, GuidanceError, validate_points

from . import overlays
from .common import (MODEL_GROUP, STATE_TTL_S, Context, click_xy, image_intake, is_numbers, parse_json,
                     read_image, retry_if_evicted, temp_path, user_errors)

VIEW_COLOR, VIEW_ARROWS = "Colour wheel", "Arrows"
#: A second click within this many pixels of the first makes a pin.
SAME_POINT_PX = 3.0
HINT = ("Click a start point, then an end point, to add an arrow. "
        "Pin mode (or clicking the same point twice) holds a spot still.")
SCENE_LABEL = "Whole scene moves (camera motion)"
SCENE_INFO = ("Nothing stays still unless pinned: one arrow pans the whole picture; arrows on near and far "
              "things give parallax. Off: only what looks like an arrow's start moves.")




# -- pure helpers (tested without Gradio) ---------------------------------------

def new_state() -> dict:
    return {"points": [], "pending": None}


def add_click(state: dict, x: float, y: float, pin_mode: bool = False) -> dict:
    """Next state after a click at (x, y): start an arrow, finish it, or add a pin."""
    points = [list(p) for p in state.get("points", [])]
    pending = state.get("pending")
    if len(points) >= MAX_POINTS:
        raise GuidanceError(f"at most {MAX_POINTS} arrows and pins; undo or clear some first")
    if pin_mode:
        points.append([x, y, 0.0, 0.0])
        return {"points": points, "pending": None}
    if pending is None:
        return {"points": points, "pending": [x, y]}
    sx, sy = pending
    if math.hypot(x - sx, y - sy) <= SAME_POINT_PX:
        points.append([sx, sy, 0.0, 0.0])
    else:
        points.append([sx, sy, x - sx, y - sy])
    return {"points": points, "pending": None}


def undo(state: dict) -> dict:
    """Drop the pending start point if any, else the last arrow or pin."""
    points = [list(p) for p in state.get("points", [])]
    if state.get("pending") is None and points:
        points.pop()
    return {"points": points, "pending": None}


def parse_guidance(text: str | None) -> list[list[float]]:
    """JSON guidance -> [[x, y, dx, dy], ...] (pins as dx = dy = 0).

    Accepts ``{"arrows": [[x, y, dx, dy], ...], "pins": [[x, y], ...]}`` or a bare
    list whose items are [x, y, dx, dy] arrows or [x, y] pins. Empty text = no guidance.
    """
    if text is None or not str(text).strip():
        return []
    data = parse_json(str(text), "guidance")
    if isinstance(data, dict):
        unknown = set(data) - {"arrows", "pins"}
        if unknown:
            raise GuidanceError(f"unknown guidance keys {sorted(unknown)}; use 'arrows' and 'pins'")
        for key, shape in (("arrows", "[x, y, dx, dy]"), ("pins", "[x, y]")):
            if not isinstance(data.get(key) or [], list):
                raise GuidanceError(f"'{key}' must be a list of {shape} lists")
        items = [("arrow", a) for a in data.get("arrows") or []] + [("pin", p) for p in data.get("pins") or []]
    elif isinstance(data, list):
        items = [("pin" if isinstance(a, list) and len(a) == 2 else "arrow", a) for a in data]
    else:
        raise GuidanceError("guidance JSON must be an object {\"arrows\": [...], \"pins\": [...]} or a list")
    points = []
    for kind, item in items:
        n = 4 if kind == "arrow" else 2
        if not is_numbers(item, n):
            raise GuidanceError(f"each {kind} must be {n} numbers ({'x, y, dx, dy' if n == 4 else 'x, y'}); "
                                f"got {json.dumps(item)[:60]}")
        points.append([float(v) for v in item] + ([0.0, 0.0] if n == 2 else []))
    if len(points) > MAX_POINTS:
        raise GuidanceError(f"too many guidance points ({len(points)}); the limit is {MAX_POINTS}")
    return points


def guidance_json(points) -> str:
    """[[x, y, dx, dy], ...] -> the JSON the API endpoints take (rounded to 0.1 px)."""
    r = lambda v: round(float(v), 1)  # noqa: E731
    arrows = [[r(x), r(y), r(dx), r(dy)] for x, y, dx, dy in points if dx or dy]
    pins = [[r(x), r(y)] for x, y, dx, dy in points if not (dx or dy)]
    return json.dumps({"arrows": arrows, "pins": pins})


def flow_color_view(flow: np.ndarray) -> np.ndarray:
    """Colour-wheel image of the flow with a legend in the top-right corner."""
    top = float(np.hypot(flow[..., 0], flow[..., 1]).max())
    color = flow_to_color(flow, top)
    size = int(np.clip(min(flow.shape[:2]) // 4, 48, 160))
    return overlays.paste_corner(color, overlays.wheel_legend(top, size))


def flow_for(ctx: Context, rgb: np.ndarray, points, scene_motion: bool = False, model: str | None = None) -> np.ndarray:
    """(H, W, 2) float32 flow in image pixels for guidance points (x, y, dx, dy), by ``model``'s engine."""
    engine = ctx.engine_for(model)
    return retry_if_evicted(lambda: engine.flow_for(rgb, arrows=points, scene_motion=bool(scene_motion)))


def _has_motion(points) -> bool:
    return any(dx or dy for _, _, dx, dy in points)


# -- the page ----------------------------------------------------------------

def build(ctx: Context) -> None:
    state = gr.State(new_state(), time_to_live=STATE_TTL_S)

    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            src, note = image_intake(ctx, "motion")
        with gr.Column(scale=2):
            canvas = gr.Image(value=overlays.placeholder(), interactive=False, label="Click: start, then end",
                              height=420, elem_id="motion-canvas", buttons=["fullscreen"])
            with gr.Row():
                pin_mode = gr.Checkbox(False, label="Pin mode", elem_id="motion-pin-mode")
                undo_btn = gr.Button("Undo", size="sm", elem_id="motion-undo")
                clear_btn = gr.Button("Clear", size="sm", elem_id="motion-clear")
            gr.Markdown(HINT)
        with gr.Column(scale=2):
            flow_view = gr.Image(format="png", interactive=False, label="Predicted flow", height=420,
                                 elem_id="motion-flow", buttons=["download", "fullscreen"])
            view = gr.Radio([VIEW_COLOR, VIEW_ARROWS], value=VIEW_COLOR, label="Show flow as",
                            elem_id="motion-view")
            scene = gr.Checkbox(False, label=SCENE_LABEL, info=SCENE_INFO, elem_id="motion-scene",
                                visible=ctx.engine.supports_scene_motion)

    with gr.Row():
        frames = gr.Slider(animate.MIN_FRAMES, animate.MAX_FRAMES, value=animate.DEFAULT_FRAMES, step=1,
                           label="Frames", elem_id="motion-frames")
        fps = gr.Slider(animate.MIN_FPS, animate.MAX_FPS, value=animate.DEFAULT_FPS, step=1, label="FPS",
                        elem_id="motion-fps")
        strength = gr.Slider(0.0, animate.MAX_STRENGTH, value=1.0, step=0.1, label="Motion strength")
        timing = gr.Radio(list(animate.TIMINGS), value="ease", label="Timing")
        loop = gr.Radio(list(animate.LOOPS), value="pingpong", label="Loop")
    gen_btn = gr.Button("Generate video", variant="primary", elem_id="motion-generate")
    with gr.Row():
        video = gr.Video(label="Video (MP4)", autoplay=True, loop=True, interactive=False, height=420,
                         scale=2, elem_id="motion-video")
        with gr.Column(scale=1):
            gif = gr.File(label="GIF", elem_id="motion-gif")
            export_btn = gr.Button("Export flow (.png + .flo)", size="sm", elem_id="motion-export")
            with gr.Row():
                flow_png = gr.File(label="Flow colour PNG", elem_id="motion-flow-png")
                flow_flo = gr.File(label="Flow .flo", elem_id="motion-flow-flo")
    with gr.Accordion("Guidance as JSON (what the API takes)", open=False):
        guide = gr.Textbox(label="Guidance JSON", lines=3, elem_id="motion-json",
                           placeholder='{"arrows": [[x, y, dx, dy]], "pins": [[x, y]]}')
        apply_btn = gr.Button("Use this JSON", size="sm")

    def _image(path):
        return read_image(path, ctx.max_side)

    # -- private UI handlers -------------------------------------------------
    @user_errors
    def on_image(path, model=""):
        if not path:
            return overlays.placeholder(), new_state(), "", "", None
        rgb, msg = _image(path)
        ctx.engine_for(model).set_image(rgb)  # encode now so the first arrow is quick
        h, w = rgb.shape[:2]
        text = f"{w}x{h} px. " + (f"**{msg}**" if msg else "")
        return rgb, new_state(), guidance_json([]), text, None

    @user_errors
    def on_click(path, st, pin, evt: gr.SelectData):
        if not path:
            gr.Warning("Upload an image or pick an example first, then click on it.")
            return gr.skip()
        rgb, _ = _image(path)
        x, y = click_xy(evt, rgb.shape)
        st = add_click(st, x, y, bool(pin))
        return overlays.draw_guidance(rgb, st["points"], st["pending"]), st, guidance_json(st["points"])

    @user_errors
    def on_edit(path, st, action):
        st = undo(st) if action == "undo" else new_state()
        if not path:
            return gr.skip(), st, guidance_json(st["points"])
        rgb, _ = _image(path)
        return overlays.draw_guidance(rgb, st["points"]), st, guidance_json(st["points"])

    @user_errors
    def on_apply(path, text):
        points = parse_guidance(text)
        rgb, _ = _image(path)
        validate_points(np.asarray(points, dtype=np.float64).reshape(-1, 4), *rgb.shape[:2])
        st = {"points": points, "pending": None}
        return overlays.draw_guidance(rgb, points), st, guidance_json(points)

    @user_errors
    def show_flow(path, st, mode, scene_motion, model=""):
        if not path or st.get("pending") is not None:
            return gr.skip()
        if not st["points"]:
            return None
        rgb, _ = _image(path)
        flow = flow_for(ctx, rgb, st["points"], scene_motion, model)
        if mode == VIEW_ARROWS:
            return overlays.draw_guidance(overlays.draw_flow_arrows(rgb, flow), st["points"])
        return flow_color_view(flow)

    # -- public endpoints ------------------------------------------------------
    @user_errors
    def motion_flow(image, guidance, scene_motion=False, checkpoint="", model=""):
        """Dense flow for an image and JSON guidance -> (colour PNG path, Middlebury .flo path)."""
        rgb, _ = _image(image)
        points = parse_guidance(guidance)
        flow = flow_for(ctx, rgb, points, scene_motion, checkpoint or model)
        png = temp_path(".png")
        save_flow(png, flow)
        return png, str(write_flo(temp_path(".flo"), flow))

    @user_errors
    def motion_video(image, guidance, n_frames, frame_rate, motion_strength, timing_curve, loop_mode,
                     scene_motion=False, checkpoint="", model="", progress=gr.Progress()):
        """Animate the image along the predicted flow -> (H.264 MP4 path, GIF path)."""
        n_frames, frame_rate = float(n_frames), float(frame_rate)
        if math.isfinite(n_frames):  # NaN and infinity cannot be rounded; check_settings names them
            n_frames = round(n_frames)
        animate.check_settings(n_frames, frame_rate, float(motion_strength), timing_curve, loop_mode)
        rgb, _ = _image(image)
        points = parse_guidance(guidance)
        if not _has_motion(points):
            raise GuidanceError("add at least one arrow first (pins alone do not move anything)")
        progress(0.0, desc="Predicting flow")
        flow = flow_for(ctx, rgb, points, scene_motion, checkpoint or model)
        step = lambda done, total: progress((done, total), desc="Rendering frames", unit="frames")  # noqa: E731
        clip = animate.render_frames(rgb, flow, n_frames, strength=float(motion_strength), timing=timing_curve,
                                     loop=loop_mode, max_side=ctx.video_side, progress=step)
        progress(1.0, desc="Encoding")
        mp4 = animate.write_mp4(temp_path(".mp4"), clip, frame_rate)
        gif_path = animate.write_gif(temp_path(".gif"), clip, frame_rate, repeat=loop_mode != "once")
        return str(mp4), str(gif_path)

    # -- wiring ----------------------------------------------------------------
    model = dict(concurrency_id=MODEL_GROUP)
    flow_args = dict(fn=show_flow, inputs=[src, state, view, scene, ctx.model], outputs=[flow_view],
                     api_visibility="private", **model)
    src.change(on_image, [src, ctx.model], [canvas, state, guide, note, flow_view], api_visibility="private", **model)
    canvas.select(on_click, [src, state, pin_mode], [canvas, state, guide], api_visibility="private") \
        .then(**flow_args)
    undo_btn.click(lambda p, s: on_edit(p, s, "undo"), [src, state], [canvas, state, guide],
                   api_visibility="private").then(**flow_args)
    clear_btn.click(lambda p, s: on_edit(p, s, "clear"), [src, state], [canvas, state, guide],
                    api_visibility="private").then(**flow_args)
    apply_btn.click(on_apply, [src, guide], [canvas, state, guide], api_visibility="private",
                    **model).then(**flow_args)
    view.change(**flow_args)
    scene.change(**flow_args)
    ctx.model.change(**flow_args)  # another model chosen in the header: its flow for the same arrows
    export_btn.click(motion_flow, [src, guide, scene, ctx.checkpoint, ctx.model], [flow_png, flow_flo], api_name="motion_flow", **model)
    gen_btn.click(motion_video, [src, guide, frames, fps, strength, timing, loop, scene, ctx.checkpoint, ctx.model],
                  [video, gif],
                  api_name="motion_video", **model)
