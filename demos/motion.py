"""Motion page: click arrows on a photo, see the dense flow CMP predicts, render a video.

Thin wiring only: flow comes from ``ctx.engine``, frames from :mod:`cmp.animate`,
drawing from :mod:`demos.overlays`. Per-tab state is a small dict of lists
(``{"points": [[x, y, dx, dy], ...], "pending": [x, y] | None}``, a pin being
an arrow with dx = dy = 0, plus ``"tracks"``, ``"path"``, ``"order"`` and ``"region"`` (RLE)
once used; :mod:`cmp.tracks` owns its click state machine); the image itself is re-read
from the upload and its encoding stays cached in the engine.

Public API (``gradio_client``): ``/motion_flow`` (image, guidance_json[, scene_motion, checkpoint]) ->
(flow colour PNG, .flo), ``/motion_video`` (image, guidance_json, frames,
fps, strength, timing, loop[, scene_motion, checkpoint]) -> (MP4, GIF) and ``/motion_recipe``
(image, recipe_json[, checkpoint]) -> (MP4, GIF, frames zip). ``checkpoint`` (default "": the
session's model, else the app's) is a registry name or ``hf://`` reference. ``scene_motion``: true forces
the "whole scene moves" mode of models that have it (the embedded one), false forces
objects moving on a still scene, left out (null) infers it from the guidance. ``guidance_json`` is
``{"arrows": [[x, y, dx, dy], ...], "pins": [[x, y], ...], "tracks": [[[x, y], ...], ...],
"region": COCO RLE}`` (see :mod:`cmp.tracks`) or a bare list of arrows, in pixels of the
uploaded image (after any downscale note). Videos render through :func:`cmp.recipe.render`,
as the CLI's do.
"""
from __future__ import annotations

import math

import cv2
import gradio as gr
import numpy as np

from cmp import animate, lease, params
from cmp import recipe as recipes
from cmp.flow import flow_to_color, save_flow, write_flo
from cmp.guidance import GuidanceError
from cmp.masks import rle_decode, rle_encode, save_mask_png
from cmp.tracks import (SAME_POINT_PX, Guidance, add_click, add_path_click, finish_path,  # noqa: F401
                        end_arrows, guidance_json, new_state, parse_guidance, parse_motion, undo)

from . import direct, overlays
from .common import (MODEL_GROUP, STATE_TTL_S, Context, click_xy, fast_preview, image_intake, read_image,
                     temp_path, user_errors, validated)

VIEW_COLOR, VIEW_ARROWS = "Colour wheel", "Arrows"
HINT = ("Click a start point, then an end point, to add an arrow. "
        "Pin mode (or clicking the same point twice) holds a spot still. "
        "Path mode: click the start, then each next point; click the last point again or **Finish path** "
        "to end it. The clip follows the smoothed path over its whole length.")
#: Enter finishes the path being drawn (unless the user is typing in a text box or is on another button).
ENTER_FINISHES = """
if (!window.cmpEnterFinishes) {
  window.cmpEnterFinishes = true;
  document.addEventListener('keydown', (e) => {
    const t = e.target || {};
    // the canvas image sits in a button: Enter there finishes; on other buttons it presses them
    const onButton = t.tagName === 'BUTTON' && !(t.closest && t.closest('#motion-canvas'));
    const typing = t.tagName === 'TEXTAREA' || onButton || t.isContentEditable ||
      (t.tagName === 'INPUT' && !['checkbox', 'radio'].includes(t.type));
    const b = document.querySelector('#motion-finish');
    if (e.key !== 'Enter' || e.repeat || typing || !b || b.offsetParent === null) return;
    e.preventDefault();
    b.click();
  });
}
"""
#: What a direct click reads from the page (demos.direct): setting -> (selector, how).
DIRECT_SETTINGS = {"pin": ("#motion-pin-mode input", "checked"), "path": ("#motion-path-mode input", "checked"),
                   "view": ("#motion-view input", "radio"), "scene": ("#motion-scene input", "checked")}
FLOW_HINT = "Add an arrow: its flow shows here"
REGION_INFO = ("White = may move; everything else stays exactly still. Upload a mask, or use the Segment "
               "page's **Animate this object**.")
SCENE_LABEL = "Whole scene moves (camera motion)"
SCENE_INFO = ("On: nothing stays still unless pinned; one arrow pans the whole picture, arrows on near and far "
              "things give parallax. Off: decided from your arrows (many spread arrows that agree, and no pin, "
              "move the whole scene; otherwise only what looks like an arrow's start moves).")




# -- pure helpers: the click state machine and the wire format live in cmp.tracks ---------
# (re-exported here for older callers: new_state, add_click, undo, parse_guidance, guidance_json)


def state_json(st: dict) -> str:
    """The guidance JSON of a page state (arrows, pins, finished paths, the region)."""
    return guidance_json(st.get("points", []), st.get("tracks", []), st.get("region"))


def draw_state(rgb: np.ndarray, st: dict) -> np.ndarray:
    """The canvas: the region (outside it dimmed), arrows, pins, finished paths and the path
    or arrow being drawn."""
    img = rgb
    if st.get("region") and list(st["region"]["size"]) == list(rgb.shape[:2]):
        img = overlays.dim_outside(rgb, rle_decode(st["region"]))
    img = overlays.draw_tracks(img, st.get("tracks", []), st.get("path"))
    return overlays.draw_guidance(img, st.get("points", []), st.get("pending"))


def region_rle(path: str | None, rgb: np.ndarray) -> dict | None:
    """A region mask file (white = may move) as COCO RLE at the size of ``rgb``, or None."""
    return rle_encode(recipes.load_region(path, (rgb.shape[1], rgb.shape[0]))) if path else None


def flow_color_view(flow: np.ndarray) -> np.ndarray:
    """Colour-wheel image of the flow with a legend in the top-right corner."""
    top = float(np.hypot(flow[..., 0], flow[..., 1]).max())
    color = flow_to_color(flow, top if top > 0 else None)  # a still flow (pins only) is all white
    size = int(np.clip(min(flow.shape[:2]) // 4, 48, 160))
    return overlays.paste_corner(color, overlays.wheel_legend(top, size))


def flow_placeholder(rgb: np.ndarray) -> np.ndarray:
    """The flow view before the first arrow (or after the last is undone): a hint the size of
    the image. Being an image, it is also what a direct click paints the first flow into."""
    return overlays.placeholder(rgb.shape[1], rgb.shape[0], FLOW_HINT)


def unset_checkbox(box: gr.Checkbox) -> gr.Checkbox:
    """Let a checkbox hold None, "not set": the API's default for ``scene_motion``
    (inferred), while true / false from a caller still force a mode. ``gr.Checkbox``
    turns None into False; a subclass would make Gradio write a .pyi stub next to this
    file, so the one instance is adjusted instead."""
    box.postprocess = lambda value: None if value is None else bool(value)
    box.value = None
    return box


def flow_for(ctx: Context, rgb: np.ndarray, points, scene_motion: bool | None = None,
             model: str | None = None) -> np.ndarray:
    """(H, W, 2) float32 flow in image pixels for guidance points (x, y, dx, dy), by ``model``'s
    engine (under :func:`cmp.lease.run_model`); ``scene_motion`` None: the kind of motion inferred from them."""
    engine = ctx.engine_for(model)
    mode = None if scene_motion is None else bool(scene_motion)
    return lease.run_model(engine.flow_for, rgb, arrows=points, scene_motion=mode)


# -- the page ----------------------------------------------------------------

def build(ctx: Context) -> None:
    state = gr.State(new_state(), time_to_live=STATE_TTL_S)
    last_frames = gr.State(None, time_to_live=STATE_TTL_S)  # path of the last clip's frames (.npy)
    shown_image = gr.State(None, time_to_live=STATE_TTL_S)  # the upload on the canvas, for direct clicks

    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            src, note = image_intake(ctx, "motion")
            region = gr.Image(type="filepath", label="Motion region (optional mask)", image_mode="L", height=160,
                              sources=["upload", "clipboard"], elem_id="motion-region", format="png")
            gr.Markdown(REGION_INFO)
            with gr.Accordion("Brush the region", open=False):
                brush = gr.ImageEditor(type="numpy", sources=[], layers=False, transforms=[], format="png",
                                       brush=gr.Brush(colors=["#ff3030"], color_mode="fixed"), height=300,
                                       label="Paint what may move", elem_id="motion-brush")
                brush_btn = gr.Button("Use the painted region", size="sm", elem_id="motion-brush-use")
        with gr.Column(scale=2):
            canvas = fast_preview(gr.Image(value=overlays.placeholder(), interactive=False,
                                           label="Click: start, then end", height=420, elem_id="motion-canvas",
                                           buttons=["fullscreen"]), "photo")
            with gr.Row():
                pin_mode = gr.Checkbox(False, label="Pin mode", elem_id="motion-pin-mode")
                path_mode = gr.Checkbox(False, label="Path mode", elem_id="motion-path-mode")
                finish_btn = gr.Button("Finish path", size="sm", elem_id="motion-finish")
                undo_btn = gr.Button("Undo", size="sm", elem_id="motion-undo")
                clear_btn = gr.Button("Clear", size="sm", elem_id="motion-clear")
            gr.Markdown(HINT)
            gr.HTML("", js_on_load=ENTER_FINISHES, elem_id="motion-keys", container=False, padding=False)
            bridge = direct.bridge("motion", "motion-canvas", DIRECT_SETTINGS, lambda *a: direct_click(*a))
        with gr.Column(scale=2):
            flow_view = fast_preview(gr.Image(format="png", interactive=False, label="Predicted flow", height=420,
                                              elem_id="motion-flow", buttons=["download", "fullscreen"]))
            view = gr.Radio([VIEW_COLOR, VIEW_ARROWS], value=VIEW_COLOR, label="Show flow as",
                            elem_id="motion-view")
            # None = not set (inferred); the page sets it back to None when unticked (see wiring)
            scene = unset_checkbox(gr.Checkbox(False, label=SCENE_LABEL, info=SCENE_INFO, elem_id="motion-scene",
                                               visible=ctx.engine.supports_scene_motion))

    with gr.Row():
        frames = gr.Slider(animate.MIN_FRAMES, animate.MAX_FRAMES, value=animate.DEFAULT_FRAMES, step=1,
                           label="Frames", elem_id="motion-frames")
        fps = gr.Slider(animate.MIN_FPS, animate.MAX_FPS, value=animate.DEFAULT_FPS, step=1, label="FPS",
                        elem_id="motion-fps")
        strength = gr.Slider(0.0, animate.MAX_STRENGTH, value=1.0, step=0.1, label="Motion strength")
        timing = gr.Radio(list(animate.TIMINGS), value="ease", label="Timing")
        loop = gr.Radio(list(animate.LOOPS), value="pingpong", label="Loop", elem_id="motion-loop",
                        info="seamless: pixels flow along the motion and the clip repeats without a seam")
    gen_btn = gr.Button("Generate video", variant="primary", elem_id="motion-generate")
    with gr.Row():
        video = gr.Video(label="Video (MP4)", autoplay=True, loop=True, interactive=False, height=420,
                         scale=2, elem_id="motion-video")
        with gr.Column(scale=1):
            gif = gr.File(label="GIF", elem_id="motion-gif")
            frames_zip = gr.File(label="Frames (lossless PNGs, .zip)", elem_id="motion-frames-zip")
            export_btn = gr.Button("Export flow (.png + .flo)", size="sm", elem_id="motion-export")
            with gr.Row():
                flow_png = gr.File(label="Flow colour PNG", elem_id="motion-flow-png")
                flow_flo = gr.File(label="Flow .flo", elem_id="motion-flow-flo")
    with gr.Accordion("Recipe: the whole animation as one JSON file", open=False):
        with gr.Row():
            save_btn = gr.Button("Save recipe", size="sm", elem_id="motion-recipe-save")
            recipe_file = gr.File(label="Recipe (.json): save, or drop one here to load it", file_types=[".json"],
                                  elem_id="motion-recipe-file")
        recipe_text = gr.Textbox(label="Recipe JSON", lines=3, elem_id="motion-recipe-json")
        recipe_btn = gr.Button("Render this recipe", size="sm", elem_id="motion-recipe-render")
    with gr.Accordion("Guidance as JSON (what the API takes)", open=False):
        guide = gr.Textbox(label="Guidance JSON", lines=3, elem_id="motion-json",
                           placeholder='{"arrows": [[x, y, dx, dy]], "pins": [[x, y]], "tracks": [[[x, y], ...]]}')
        apply_btn = gr.Button("Use this JSON", size="sm")

    ctx.links["motion"] = {"image": src, "region": region}

    # One check per input, on the page and through the API (cmp.params, cmp.animate limits).
    validated(frames, lambda v: params.number(v, "frames", animate.MIN_FRAMES, animate.MAX_FRAMES))
    validated(fps, lambda v: params.number(v, "fps", animate.MIN_FPS, animate.MAX_FPS))
    validated(strength, lambda v: params.number(v, "strength", 0.0, animate.MAX_STRENGTH))
    validated(timing, lambda v: params.choice(v, "timing", animate.TIMINGS))
    validated(loop, lambda v: params.choice(v, "loop", animate.LOOPS))
    validated(scene, lambda v: params.flag(v, "scene_motion", none_ok=True))
    validated(guide, lambda v: params.text(v, "guidance"))
    validated(recipe_text, lambda v: params.text(v, "recipe"))

    def _image(path):
        return read_image(path, ctx.max_side)

    def _recipe(engine, rgb, guidance, n_frames, frame_rate, motion_strength, timing_curve, loop_mode,
                scene_motion) -> recipes.Recipe:
        n = float(n_frames)
        return recipes.from_inputs(rgb, guidance, checkpoint=engine.name,
                                   frames=round(n) if math.isfinite(n) else n, fps=float(frame_rate),
                                   strength=float(motion_strength), timing=timing_curve, loop=loop_mode,
                                   scene_motion=None if scene_motion is None else bool(scene_motion),
                                   max_side=ctx.video_side)

    def _render(engine, rgb, rec, progress):
        step = lambda done, total: progress((done, total), desc="Rendering frames", unit="frames")  # noqa: E731
        progress(0.0, desc="Predicting flow")
        clip = lease.run_model(recipes.render, engine, rgb, rec, max_side=ctx.video_side, progress=step)
        progress(1.0, desc="Encoding")
        fr = rec.settings["fps"]
        mp4 = animate.write_mp4(temp_path(".mp4"), clip, fr)
        gif_path = animate.write_gif(temp_path(".gif"), clip, fr, repeat=rec.settings["loop"] != "once")
        npy = temp_path(".npy")
        np.save(npy, clip)
        return str(mp4), str(gif_path), npy

    # -- private UI handlers -------------------------------------------------
    @user_errors
    def on_image(path, region_path=None, model=""):
        if not path:
            return overlays.placeholder(), new_state(), "", "", None, None, None
        rgb, msg = _image(path)
        lease.run_model(ctx.engine_for(model).set_image, rgb)  # encode now so the first arrow is quick
        h, w = rgb.shape[:2]
        text = f"{w}x{h} px. " + (f"**{msg}**" if msg else "")
        st = new_state()
        if region_path:  # e.g. Segment's "Animate this object" sets the image and the region at once
            st["region"] = region_rle(region_path, rgb)
        canvas_value = {"background": rgb, "layers": [], "composite": rgb}
        return draw_state(rgb, st), st, state_json(st), text, flow_placeholder(rgb), canvas_value, path

    @user_errors
    def on_brush(path, value):
        """The painted strokes (any layer pixel with alpha) -> a region mask file for the region input."""
        layers = (value or {}).get("layers") or []
        if not path or not layers:
            raise GuidanceError("paint over what may move first")
        rgb, _ = _image(path)
        painted = np.zeros(rgb.shape[:2], bool)
        for layer in layers:
            a = np.asarray(layer)
            a = a[..., 3] > 0 if a.ndim == 3 and a.shape[2] == 4 else np.asarray(a).max(axis=-1) > 0
            if a.shape != painted.shape:
                a = cv2.resize(a.astype(np.uint8), painted.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
            painted |= a
        if not painted.any():
            raise GuidanceError("paint over what may move first")
        return str(save_mask_png(temp_path(".png"), painted))

    @user_errors
    def on_region(path, st, region_path):
        st = {**st, "region": None}
        if not path:
            return gr.skip(), st, state_json(st)
        rgb, _ = _image(path)
        st["region"] = region_rle(region_path, rgb)
        return draw_state(rgb, st), st, state_json(st)

    def _flow(path, rgb, st, mode, scene_motion, model):
        """The flow view for a state: unchanged (skipped) while an arrow or a path is being drawn,
        a hint the size of the image without guidance, else the session model's flow as a colour
        wheel or arrows."""
        if not path or st.get("pending") is not None or st.get("path"):
            return gr.skip()
        points = end_arrows(Guidance(st.get("points", []), st.get("tracks", []))).tolist()  # the state, not its JSON
        rgb = _image(path)[0] if rgb is None else rgb
        if not points:
            return flow_placeholder(rgb)
        flow = flow_for(ctx, rgb, points, scene_motion, model)
        if mode == VIEW_ARROWS:
            return draw_state(overlays.draw_flow_arrows(rgb, flow), st)
        return flow_color_view(flow)

    def _apply_click(path, rgb, st, x, y, pin, path_on, mode, scene_motion, model):
        """A click's state and outputs: the canvas, the state, its JSON (skipped when unchanged)
        and, on an arrow's end click, the flow."""
        before = state_json(st)
        st = add_path_click(st, x, y) if path_on and not pin else add_click(st, x, y, bool(pin))
        text = state_json(st)
        return (draw_state(rgb, st), st, gr.skip() if text == before else text,
                _flow(path, rgb, st, mode, scene_motion, model))

    @user_errors
    def on_click(path, st, pin, evt: gr.SelectData, path_on=False, mode=VIEW_COLOR, scene_motion=None, model=""):
        """One event per click (the page's script sends clicks directly; this is its fallback and
        what keyboard use reaches): the canvas, and on an arrow's end click also the flow."""
        if not path:
            gr.Warning("Upload an image or pick an example first, then click on it.")
            return gr.skip()
        rgb, _ = _image(path)
        x, y = click_xy(evt, rgb.shape)
        return _apply_click(path, rgb, st, x, y, pin, path_on, mode, scene_motion, model)

    def direct_click(session, x, y, s):
        """A click sent by the page's script (:mod:`demos.direct`): the session's state updated,
        the images to paint, the confirming event's outputs; None leaves it to ``on_click``."""
        got = direct.clicked_image(session, shown_image, _image, x, y)
        if got is None:
            return None
        path, rgb = got
        pin, path_on = params.flag(s.get("pin"), "pin"), params.flag(s.get("path"), "path")
        mode = params.choice(s.get("view"), "view", (VIEW_COLOR, VIEW_ARROWS))
        scene_motion = True if params.flag(s.get("scene"), "scene_motion", default=False) else None
        shown, st, text, flow = _apply_click(path, rgb, session.get(state), float(x), float(y), pin, path_on, mode,
                                             scene_motion, session.get(ctx.model))
        session.set(state, st)
        return {"motion-canvas": (canvas, shown), "motion-flow": (flow_view, flow)}, (shown, text, flow)

    @user_errors
    def confirm_click(result, path, st, mode, scene_motion, model=""):
        """The direct click's outputs for Gradio's view of the page (recomputed if they expired)."""
        if result is not None:
            return result
        if not path:
            return gr.skip(), gr.skip(), gr.skip()
        rgb, _ = _image(path)
        return draw_state(rgb, st), state_json(st), _flow(path, rgb, st, mode, scene_motion, model)

    @user_errors
    def on_edit(path, st, mode, scene_motion, model, action):
        st = {"undo": undo, "finish": finish_path}.get(action, lambda _: new_state())(st)
        if not path:
            return gr.skip(), st, state_json(st), gr.skip()
        rgb, _ = _image(path)
        return draw_state(rgb, st), st, state_json(st), _flow(path, rgb, st, mode, scene_motion, model)

    @user_errors
    def on_apply(path, text):
        g = parse_motion(text)
        rgb, _ = _image(path)
        g.check(*rgb.shape[:2])
        st = {"points": g.points, "pending": None, "tracks": g.tracks, "path": None, "region": g.region}
        return draw_state(rgb, st), st, state_json(st)

    @user_errors
    def show_flow(path, st, mode, scene_motion, model=""):
        return _flow(path, None, st, mode, scene_motion, model)

    @user_errors
    def on_save(path, st, n_frames, frame_rate, motion_strength, timing_curve, loop_mode, scene_motion, model=""):
        rgb, _ = _image(path)
        rec = _recipe(ctx.engine_for(model), rgb, parse_motion(state_json(st)), n_frames, frame_rate,
                      motion_strength, timing_curve, loop_mode, scene_motion)
        out = temp_path(".json")
        with open(out, "w", encoding="utf-8") as f:
            f.write(rec.to_json())
        return out, rec.to_json()

    @user_errors
    def on_load(path, file):
        if not file:
            return gr.skip()
        with open(file, encoding="utf-8") as f:
            text = f.read(recipes.MAX_RECIPE_CHARS + 1)
        rec = recipes.parse_recipe(text)
        rgb, _ = _image(path)
        if tuple(rec.image_size) != (rgb.shape[1], rgb.shape[0]):
            raise recipes.RecipeError(f"the recipe is for a {rec.image_size[0]}x{rec.image_size[1]} image; "
                                      f"this one is {rgb.shape[1]}x{rgb.shape[0]}")
        g, s = rec.guidance, rec.settings
        region = None if rec.region is None else rle_encode(rec.region)
        st = {"points": g.points, "pending": None, "tracks": g.tracks, "path": None, "region": region}
        area = None if rec.region is None else str(save_mask_png(temp_path(".png"), rec.region))
        return (draw_state(rgb, st), st, state_json(st), text, area, s["frames"], s["fps"], s["strength"],
                s["timing"], s["loop"], s["scene_motion"])

    @user_errors
    def on_frames(npy):
        if not npy:
            return None
        return str(recipes.zip_frames(temp_path(".zip"), np.load(npy)))

    # -- public endpoints ------------------------------------------------------
    @user_errors
    def motion_flow(image, guidance, scene_motion=None, checkpoint="", model=""):
        """Dense flow for an image and JSON guidance -> (colour PNG path, Middlebury .flo path).
        A path counts as the arrow from its first to its last keyframe."""
        rgb, _ = _image(image)
        points = parse_guidance(guidance)
        flow = flow_for(ctx, rgb, points, scene_motion, checkpoint or model)
        png = temp_path(".png")
        save_flow(png, flow)
        return png, str(write_flo(temp_path(".flo"), flow))

    @user_errors
    def motion_video(image, guidance, n_frames, frame_rate, motion_strength, timing_curve, loop_mode,
                     scene_motion=None, checkpoint="", model="", progress=gr.Progress()):
        """Animate the image along the predicted flow (arrows, paths, pins and an optional
        region, all in the guidance JSON) -> (H.264 MP4 path, GIF path)."""
        n = float(n_frames)
        animate.check_settings(round(n) if math.isfinite(n) else n, float(frame_rate), float(motion_strength),
                               timing_curve, loop_mode)
        rgb, _ = _image(image)
        engine = ctx.engine_for(checkpoint or model)
        rec = _recipe(engine, rgb, parse_motion(guidance), n_frames, frame_rate, motion_strength,
                      timing_curve, loop_mode, scene_motion)
        return _render(engine, rgb, rec, progress)

    @user_errors
    def motion_recipe(image, recipe_json, checkpoint="", model="", progress=gr.Progress()):
        """Replay a recipe (JSON text) on the image -> (H.264 MP4 path, GIF path, frames .zip path)."""
        rgb, _ = _image(image)
        rec = recipes.parse_recipe(recipe_json)
        engine = ctx.engine_for(checkpoint or model)
        if rec.checkpoint and rec.checkpoint != engine.name:
            gr.Warning(f"This recipe was made with {rec.checkpoint}; this runs {engine.name}, "
                       "so the frames differ from the original.")
        mp4, gif_path, npy = _render(engine, rgb, rec, progress)
        return mp4, gif_path, on_frames(npy)

    # -- wiring ----------------------------------------------------------------
    model = dict(concurrency_id=MODEL_GROUP)
    shown = [canvas, state, guide]
    settings = [frames, fps, strength, timing, loop, scene]
    flow_args = dict(fn=show_flow, inputs=[src, state, view, scene, ctx.model], outputs=[flow_view],
                     api_visibility="private", **model)
    src.change(on_image, [src, region, ctx.model], [canvas, state, guide, note, flow_view, brush, shown_image],
               api_visibility="private", **model)
    brush_btn.click(on_brush, [src, brush], [region], api_visibility="private")
    region.change(on_region, [src, state, region], shown, api_visibility="private").then(**flow_args)
    flow_inputs = [view, scene, ctx.model]
    canvas.select(on_click, [src, state, pin_mode, path_mode, *flow_inputs], [*shown, flow_view],
                  api_visibility="private", show_progress="hidden", **model)
    direct.confirm(bridge, "motion", confirm_click, [src, state, *flow_inputs], [canvas, guide, flow_view], **model)
    for btn, action in ((undo_btn, "undo"), (clear_btn, "clear"), (finish_btn, "finish")):
        btn.click(lambda p, s, m, sm, mo, a=action: on_edit(p, s, m, sm, mo, a), [src, state, *flow_inputs],
                  [*shown, flow_view], api_visibility="private", **model)
    apply_btn.click(on_apply, [src, guide], shown, api_visibility="private",
                    **model).then(**flow_args)
    view.change(**flow_args)
    # on the page the toggle has two states: on = whole scene, off = auto (not "force objects")
    scene.input(lambda on: True if on else None, [scene], [scene], api_visibility="private", queue=False)
    scene.change(**flow_args)
    ctx.model.change(**flow_args)  # another model chosen in the header: its flow for the same arrows
    export_btn.click(motion_flow, [src, guide, scene, ctx.checkpoint, ctx.model], [flow_png, flow_flo],
                     api_name="motion_flow", **model)
    gen_btn.click(motion_video, [src, guide, *settings, ctx.checkpoint, ctx.model], [video, gif, last_frames],
                  api_name="motion_video", **model) \
        .then(on_frames, [last_frames], [frames_zip], api_visibility="private")
    save_btn.click(on_save, [src, state, *settings, ctx.model], [recipe_file, recipe_text], api_visibility="private")
    recipe_file.upload(on_load, [src, recipe_file], [*shown, recipe_text, region, *settings],
                       api_visibility="private").then(**flow_args)
    recipe_btn.click(motion_recipe, [src, recipe_text, ctx.checkpoint, ctx.model], [video, gif, frames_zip],
                     api_name="motion_recipe", **model)
