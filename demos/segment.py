"""Segment page: click an object, pick part / object / group, see the evidence, export annotations.

Thin wiring only: the per-tab state machine, the points format and every model call
live in :mod:`cmp.annotate` (the state is a small dict of plain values described
there, kept in ``gr.State``), on the session's engine (``ctx.segmenter_for``); files
come from :mod:`cmp.annotations`.

Public API (``gradio_client``): ``/segment_mask`` (image, points_json,
threshold, zoom, pin_frame, candidates, checkpoint) -> (mask PNG path, 0/255 same size as
the image; COCO JSON dict with compressed RLE and polygons). With
``candidates`` true the mask is the most confident of part / object / group and
the JSON lists all three under ``candidates``. ``points_json`` is
``{"positive": [[x, y], ...], "negative": [[x, y], ...]}`` in pixels of the
working image (after any downscale note).
"""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np

from cmp import annotate, lease, params
from cmp.annotate import (MAX_OBJECTS, add_click, all_masks, annotations, candidate_choices,  # noqa: F401
                          decode, finish_object, new_state, parse_points, points_json, set_candidates,
                          speed_table, split_clicks, undo)
from cmp.annotations import MAX_CLASS_CHARS, ObjectAnnotation, coco_dict, coco_with_candidates, export_annotations
from cmp.guidance import GuidanceError
from cmp.masks import save_mask_png
from cmp.candidates import CANDIDATE_SCALES, best_candidate
from cmp.segment import DEFAULT_THRESHOLD, check_threshold

from . import direct, evidence, overlays
from .common import (MODEL_GROUP, STATE_TTL_S, Context, click_xy, fast_preview, image_intake, read_image, temp_dir,
                     temp_path, user_errors, validated)

POSITIVE, NEGATIVE = "Positive (object)", "Negative (background)"
HINT = ("Click the object (positive) or the background (negative); the mask updates after every click. "
        "The first click gives three candidates (part / object / group, the most confident selected); "
        "later clicks refine the one chosen: a positive click only adds, a negative one only takes away. "
        "**Next object** keeps the mask and starts a new one.")
#: Single-key shortcuts: key -> (what it does, the element it presses). Shown on the page.
SHORTCUTS = (("p", "positive clicks", "#segment-mode input[type=radio]:0"),
             ("n", "negative clicks", "#segment-mode input[type=radio]:1"),
             ("z", "undo", "#segment-undo"),
             ("Enter", "next object", "#segment-next"),
             ("c", "next candidate mask", "#segment-next-candidate"),
             ("e", "export", "#segment-export"))
#: What a direct click reads from the page (demos.direct): setting -> (selector, how).
DIRECT_SETTINGS = {"mode": ("#segment-mode input", "radio"),
                   "threshold": ("#segment-threshold input[type=number]", "value"),
                   "pin": ("#segment-pin input", "checked"),
                   "label": ("#segment-class textarea, #segment-class input", "value")}
#: Finished objects cycle through these (RGB); the object being edited is drawn in CURRENT_COLOR.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127), (214, 39, 40)]
CURRENT_COLOR = (255, 221, 0)


# -- the state machine and the points format live in cmp.annotate --------------------
# (re-exported here for older callers: new_state, add_click, undo, finish_object, parse_points, ...)


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
        cands = state.get("candidates") or []
        if cands:
            c = cands[state.get("chosen", 0) % len(cands)]
            parts.append(f"candidate {c['name']} ({c['confidence']:.2f})")
    elif clicks:
        parts.append("no mask (add a positive click)")
    if box is not None:
        parts.append(f"zoom {box.width}×{box.height} px")
    if n_obj:
        parts.append(f"{n_obj} finished object{'s' * (n_obj != 1)}")
    return " · ".join(parts)


def shortcuts_markdown() -> str:
    return "Keys: " + " · ".join(f"<kbd>{k}</kbd> {what}" for k, what, _ in SHORTCUTS) + \
        " (not while typing in a text field)"


def shortcuts_js() -> str:
    """A keydown listener (installed once per page) that presses the page's buttons by elem_id."""
    table = {k.lower(): sel for k, _, sel in SHORTCUTS}
    return """
if (!window.__cmpSegmentKeys) {
  window.__cmpSegmentKeys = true;
  const keys = %s;
  const press = (spec) => {
    const [sel, idx] = spec.split(':');
    if (idx !== undefined) { const r = document.querySelectorAll(sel)[+idx]; if (r) r.click(); return !!r; }
    const el = document.querySelector(sel);
    const b = el && (el.tagName === 'BUTTON' ? el : el.querySelector('button'));
    if (b) b.click();
    return !!b;
  };
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target, tag = t && t.tagName;
    const typing = t && (t.isContentEditable || tag === 'TEXTAREA' || tag === 'SELECT' ||
      (tag === 'INPUT' && !['radio', 'checkbox', 'range', 'button', 'submit'].includes(t.type)));
    if (typing) return;
    const canvas = document.querySelector('#segment-canvas');
    if (!canvas || canvas.offsetParent === null) return;  // the Segment tab is not shown
    const spec = keys[e.key.toLowerCase()];
    if (spec && press(spec)) e.preventDefault();
  });
}
""" % json.dumps(table)


def mask_for(ctx: Context, rgb: np.ndarray, positive, negative, threshold: float, zoom: bool,
             pin_frame: bool = True, model: str | None = None, clicks=None):
    """:func:`cmp.annotate.mask_from_points` on ``model``'s engine."""
    return annotate.mask_from_points(ctx.segmenter_for(model), rgb, positive, negative, threshold, zoom, pin_frame,
                                     clicks)


def candidates_for(ctx: Context, rgb: np.ndarray, positive, negative, threshold: float, pin_frame: bool = True,
                   scales=CANDIDATE_SCALES, model: str | None = None):
    """:func:`cmp.annotate.candidates_from_points` on ``model``'s engine."""
    return annotate.candidates_from_points(ctx.segmenter_for(model), rgb, positive, negative, threshold, pin_frame,
                                           scales)


# -- the page ----------------------------------------------------------------

def build(ctx: Context) -> None:
    state = gr.State(new_state(), time_to_live=STATE_TTL_S)
    ev_open = gr.State(False, time_to_live=STATE_TTL_S)  # whether the evidence accordion is open
    shown_image = gr.State(None, time_to_live=STATE_TTL_S)  # the upload on the canvas, for direct clicks

    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            src, note = image_intake(ctx, "segment")
            mode = gr.Radio([POSITIVE, NEGATIVE], value=POSITIVE, label="Click mode", elem_id="segment-mode")
            label = gr.Textbox("object", label="Class of this object", max_lines=1, elem_id="segment-class",
                               max_length=MAX_CLASS_CHARS,
                               info="goes into COCO categories and the YOLO class index (classes.txt)")
            threshold = gr.Slider(0.05, 0.95, value=DEFAULT_THRESHOLD, step=0.05, label="Threshold",
                                  info="mask = score > threshold (see Evidence)", elem_id="segment-threshold")
            pin = gr.Checkbox(True, label="Frame is background", elem_id="segment-pin",
                              info="the border of the view stays still; untick if the object runs off the edge")
        with gr.Column(scale=3):
            canvas = fast_preview(gr.Image(value=overlays.placeholder(), interactive=False, label="Click the object",
                                           height=480, elem_id="segment-canvas", buttons=["fullscreen"]), "photo")
            status_md = gr.Markdown("", elem_id="segment-status")
            cands = gr.Radio([], label="Candidate masks (part · object · group, with confidence)",
                             elem_id="segment-candidates")
            with gr.Row():
                next_btn = gr.Button("Next object", size="sm", variant="primary", elem_id="segment-next")
                cand_btn = gr.Button("Next candidate", size="sm", elem_id="segment-next-candidate")
                undo_btn = gr.Button("Undo", size="sm", elem_id="segment-undo")
                clear_btn = gr.Button("Clear", size="sm", elem_id="segment-clear")
                export_btn = gr.Button("Export PNG + COCO + YOLO", size="sm", elem_id="segment-export")
                animate_btn = gr.Button("Animate this object", size="sm", elem_id="segment-animate")
            gr.HTML(shortcuts_markdown(), js_on_load=shortcuts_js(), elem_id="segment-keys")
            bridge = direct.bridge("segment", "segment-canvas", DIRECT_SETTINGS, lambda *a: direct_click(*a))
            with gr.Accordion("Evidence: what the mask came from", open=False, elem_id="segment-evidence") as ev_box:
                gr.Markdown("Left: the four probe flows of the view the model saw: what moves with the clicks "
                            "(colour wheel: hue = direction, saturation = speed). Right: the score, the chance "
                            "that a random walk on the model's embedding reaches a positive click before a "
                            "negative one or the frame (a model without an embedding: the flows' mean "
                            "magnitude); the mask is where it passes the threshold (outline on the heat map, "
                            "red line on the histogram).")
                with gr.Row():
                    ev_flows = fast_preview(gr.Image(label="The four probe flows (colour wheel)", show_label=False,
                                                     format="png", interactive=False, height=300,
                                                     elem_id="segment-evidence-flows"))
                    ev_score = fast_preview(gr.Image(label="The score and the threshold",
                                                     show_label=False, format="png", interactive=False, height=300,
                                                     elem_id="segment-evidence-score"))
            gr.Markdown(HINT)
            speed = gr.Markdown("", elem_id="segment-speed")
            files = gr.File(label="Masks (PNG per object, label map), COCO JSON, YOLO-seg .txt + classes.txt",
                            file_count="multiple", interactive=False, height=140, elem_id="segment-files")
    with gr.Accordion("Points as JSON (what the API takes)", open=False):
        points = gr.Textbox(label="Points JSON", lines=2, elem_id="segment-json",
                            placeholder='{"positive": [[x, y]], "negative": [[x, y]]}')
        api_btn = gr.Button("Mask from this JSON", size="sm", elem_id="segment-api")
        with gr.Row():
            zoom = gr.Checkbox(True, label="Zoom in around the clicks", elem_id="segment-zoom")
            api_cands = gr.Checkbox(False, label="Most confident of part / object / group (all listed in the JSON)",
                                    elem_id="segment-api-candidates")
        with gr.Row():
            api_mask = gr.Image(label="Mask (0/255 PNG)", format="png", interactive=False, height=240,
                                elem_id="segment-api-mask", buttons=["download"])
            api_coco = gr.JSON(label="COCO JSON", elem_id="segment-api-coco")

    # One check per input, on the page and through the API (cmp.params, cmp.segment limits).
    validated(threshold, check_threshold)
    validated(zoom, lambda v: params.flag(v, "zoom", default=True))
    validated(pin, lambda v: params.flag(v, "pin_frame", default=True))
    validated(points, lambda v: params.text(v, "points"))
    validated(api_cands, lambda v: params.flag(v, "candidates", default=False))

    def _image(path):
        return read_image(path, ctx.max_side)

    def _evidence(res, thr):
        if res is None or res.flows is None:
            return None, None
        score = res.score if res.box is None else res.box.crop(res.score)
        return evidence.probe_flows_image(res.flows), evidence.score_image(score, float(thr), source=res.source)

    def _recompute(rgb, st, thr, pf, model="", ev=True):
        """State with the current object's candidates recomputed from its clicks; also the chosen result
        (with the probes' flows only while the evidence is open)."""
        return annotate.recompute(ctx.segmenter_for(model), rgb, st, thr, pf, evidence=bool(ev))

    def _show(rgb, st, res=None, thr=DEFAULT_THRESHOLD, lab=None, ev=True):
        """Every output of a click; the evidence views only while their accordion is open (drawing
        and encoding them cost about as much as the rest of the page's share of a click). Closed,
        they are emptied rather than skipped: Gradio answers ``gr.skip()`` by rebuilding the
        component for the session, with its JSON schema (~1 ms per image); opening redraws them."""
        choices = candidate_choices(st)
        radio = gr.update(choices=choices, value=choices[st["chosen"]] if choices else None)
        flows_img, score_img = _evidence(res, thr) if ev else (None, None)
        return (render(rgb, st), st, status(st, None if res is None else res.box), points_json(st["clicks"]), radio,
                flows_img, score_img, speed_table(st, lab))

    # -- private UI handlers -------------------------------------------------
    @user_errors
    def on_image(path, model=""):
        if not path:
            return overlays.placeholder(), new_state(), "", "", "", None, gr.update(choices=[], value=None), None, \
                None, "", None
        rgb, msg = _image(path)
        # encode now: the first click is quicker, and the "group" candidate uses this whole-image encoding
        lease.run_model(ctx.segmenter_for(model).set_image, rgb)
        h, w = rgb.shape[:2]
        st = new_state((h, w))
        text = f"{w}x{h} px. " + (f"**{msg}**" if msg else "")
        return rgb, st, status(st), points_json([]), text, None, gr.update(choices=[], value=None), None, None, \
            speed_table(st), path

    @user_errors
    def on_click(path, st, md, thr, pf, lab, evt: gr.SelectData, model="", ev=True):  # Gradio puts evt in its place
        if not path:
            gr.Warning("Upload an image or pick an example first, then click on it.")
            return gr.skip()
        rgb, _ = _image(path)
        x, y = click_xy(evt, rgb.shape)
        return _apply_click(rgb, st, x, y, md, thr, pf, lab, model, ev)

    def _apply_click(rgb, st, x, y, md, thr, pf, lab, model, ev):
        if st.get("size") != list(rgb.shape[:2]):
            st = new_state(rgb.shape[:2])
        st, res = _recompute(rgb, add_click(st, x, y, md != NEGATIVE), thr, pf, model, ev)
        return _show(rgb, st, res, thr, lab, ev)

    def direct_click(session, x, y, s):
        """A click sent by the page's script (:mod:`demos.direct`): the session's state updated,
        the canvas to paint, the confirming event's outputs; None leaves it to ``on_click``."""
        got = direct.clicked_image(session, shown_image, _image, x, y)
        if got is None:
            return None
        rgb = got[1]
        md = params.choice(s.get("mode"), "mode", (POSITIVE, NEGATIVE))
        thr = check_threshold(float(str(s.get("threshold"))))  # the slider's box holds text
        pf = params.flag(s.get("pin"), "pin_frame")
        lab = params.text(s.get("label"), "class", MAX_CLASS_CHARS)
        out = _apply_click(rgb, session.get(state), float(x), float(y), md, thr, pf, lab, session.get(ctx.model),
                           session.get(ev_open))
        session.set(state, out[1])
        return {"segment-canvas": (canvas, out[0])}, (out[0], *out[2:])

    @user_errors
    def confirm_click(result, path, st, thr, pf, lab, ev):
        """The direct click's outputs for Gradio's view of the page (redrawn if they expired)."""
        if result is not None:
            return result
        if not path:
            return (gr.skip(),) * 7
        rgb, _ = _image(path)
        out = _show(rgb, st, None, thr, lab, ev)
        return (out[0], *out[2:])

    @user_errors
    def on_settings(path, st, thr, pf, lab, ev, model=""):
        if not path or not st.get("clicks"):
            return gr.skip()
        rgb, _ = _image(path)
        st, res = _recompute(rgb, st, thr, pf, model, ev)
        return _show(rgb, st, res, thr, lab, ev)

    def _choose(path, st, thr, pf, lab, ev, index, model=""):
        rgb, _ = _image(path)
        st, res = annotate.choose(ctx.segmenter_for(model), rgb, st, index, thr, pf, evidence=bool(ev))
        return _show(rgb, st, res, thr, lab, ev)

    @user_errors
    def on_pick(path, st, thr, pf, lab, ev, model, choice):
        choices = candidate_choices(st)
        if not path or choice not in choices:
            return gr.skip()
        return _choose(path, st, thr, pf, lab, ev, choices.index(choice), model)

    @user_errors
    def on_next_candidate(path, st, thr, pf, lab, ev, model=""):
        if not path or not st.get("candidates"):
            return gr.skip()
        return _choose(path, st, thr, pf, lab, ev, st.get("chosen", 0) + 1, model)

    @user_errors
    def on_evidence(path, st, thr, pf, lab, ev, model=""):
        """The evidence of the chosen candidate (the accordion was just opened)."""
        if not path or not st.get("candidates"):
            return gr.skip()
        rgb, _ = _image(path)
        return _show(rgb, st, annotate.reading(ctx.segmenter_for(model), rgb, st, thr, pf), thr, lab, ev)

    @user_errors
    def on_undo(path, st, thr, pf, lab, ev, model=""):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        st = undo(st)
        if st["mask"] is None:
            st, res = _recompute(rgb, st, thr, pf, model, ev)
        else:  # what was shown before the click is back; its evidence is drawn only while open
            res = annotate.reading(ctx.segmenter_for(model), rgb, st, thr, pf) if ev else None
        return _show(rgb, st, res, thr, lab, ev)

    @user_errors
    def on_clear(path, st, lab):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        return _show(rgb, new_state(rgb.shape[:2]), lab=lab)

    @user_errors
    def on_next(path, st, lab):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        return _show(rgb, finish_object(st, lab), lab=lab)

    @user_errors
    def on_export(path, st, lab):
        objs = annotations(st, lab) if st.get("size") else []
        if not objs:
            raise GuidanceError("nothing to export yet: click an object first")
        name = Path(path).name if path else "image.png"
        out_dir = temp_dir()
        return [str(p) for p in export_annotations(out_dir, objs, stem=Path(name).stem, file_name=name)]

    @user_errors
    def on_animate(path, st):
        """The image and the current (else the last) object's mask, for the Motion page's region."""
        masks = all_masks(st) if path and st.get("size") else []
        if not masks:
            raise GuidanceError("no mask yet: click the object to animate first")
        return path, str(save_mask_png(temp_path(".png"), masks[-1])), gr.Tabs(selected="motion")

    # -- public endpoint ---------------------------------------------------------
    @user_errors
    def segment_mask(image, points_text, thr=DEFAULT_THRESHOLD, zm=True, pf=True, candidates=False, checkpoint="",
                     model=""):
        """Mask of the object marked by JSON points -> (0/255 mask PNG path, COCO JSON dict).

        With ``candidates`` the mask is the most confident of part / object / group and the
        COCO JSON lists all three (name, confidence) under ``candidates``. ``checkpoint``: a
        registry name or ``hf://`` reference ("" = the session's model, else the app's).
        """
        rgb, _ = _image(image)
        model = checkpoint or model
        pos, neg, clicks = annotate.read_points(points_text, *rgb.shape[:2])
        thr = DEFAULT_THRESHOLD if thr is None else thr
        pf = True if pf is None else pf
        name = Path(image).name if isinstance(image, str) else "image.png"
        if candidates:
            results = candidates_for(ctx, rgb, pos, neg, thr, pf, model=model)
            best = best_candidate(results)
            objs = [ObjectAnnotation(c.mask, candidate=c.name, confidence=c.confidence) for c in results]
            return str(save_mask_png(temp_path(".png"), results[best].mask)), \
                coco_with_candidates(objs, best, file_name=name)
        res = mask_for(ctx, rgb, pos, neg, thr, True if zm is None else zm, pf, model, clicks)
        return str(save_mask_png(temp_path(".png"), res.mask)), coco_dict([res.mask], file_name=name)

    # -- wiring ----------------------------------------------------------------
    model = dict(concurrency_id=MODEL_GROUP)
    shown = [canvas, state, status_md, points, cands, ev_flows, ev_score, speed]
    src.change(on_image, [src, ctx.model],
               [canvas, state, status_md, points, note, files, cands, ev_flows, ev_score, speed, shown_image],
               api_visibility="private", **model)
    settings = [src, state, threshold, pin, label, ev_open, ctx.model]
    canvas.select(on_click, [src, state, mode, threshold, pin, label, ctx.model, ev_open], shown,
                  api_visibility="private", show_progress="hidden", **model)
    direct.confirm(bridge, "segment", confirm_click, [src, state, threshold, pin, label, ev_open],
                   [s for s in shown if s is not state], **model)
    # the evidence views are drawn only while open: opening draws them for the current clicks
    ev_box.expand(lambda: True, None, [ev_open], api_visibility="private", queue=False) \
        .then(on_evidence, settings, shown, api_visibility="private", **model)
    ev_box.collapse(lambda: False, None, [ev_open], api_visibility="private", queue=False)
    threshold.release(on_settings, settings, shown, api_visibility="private", **model)
    pin.change(on_settings, settings, shown, api_visibility="private", **model)
    cands.input(on_pick, settings + [cands], shown, api_visibility="private", **model)
    ctx.model.change(on_settings, settings, shown, api_visibility="private", **model)  # the new model's masks
    cand_btn.click(on_next_candidate, settings, shown, api_visibility="private", **model)
    undo_btn.click(on_undo, settings, shown, api_visibility="private", **model)
    clear_btn.click(on_clear, [src, state, label], shown, api_visibility="private")
    next_btn.click(on_next, [src, state, label], shown, api_visibility="private")
    label.blur(user_errors(lambda st, lab: speed_table(st, lab)), [state, label], [speed], api_visibility="private")
    export_btn.click(on_export, [src, state, label], [files], api_visibility="private")
    motion = ctx.links.get("motion")
    if motion and "tabs" in ctx.links:
        animate_btn.click(on_animate, [src, state], [motion["image"], motion["region"], ctx.links["tabs"]],
                          api_visibility="private")
    api_btn.click(segment_mask, [src, points, threshold, zoom, pin, api_cands, ctx.checkpoint, ctx.model],
                  [api_mask, api_coco],
                  api_name="segment_mask",
                  **model)
