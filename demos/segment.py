"""Segment page: click an object, pick part / object / group, see the evidence, export annotations.

Thin wiring only: candidate masks come from :func:`cmp.segment.segment_candidates`
on the session's engine (``ctx.engine_for``); files from :mod:`cmp.annotations`. Per-tab state is a small
dict of plain values::

    {"size": [h, w], "clicks": [[x, y, 1 | 0], ...],   # current object, 1 = positive
     "mask": RLE counts str | None,                     # current object's chosen mask
     "candidates": [{"name", "confidence", "mask"}], "chosen": int,
     "t0": epoch s of the object's first click | None, "n_clicks": clicks made (undone ones too),
     "objects": [{"clicks", "mask", "label", "n_clicks", "seconds"}, ...]}   # finished objects

Masks are kept as compressed COCO RLE strings (a few kB), so finished objects
never need the model again; the image is re-read from the upload and its
encoding stays cached in the engine.

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
import time
from pathlib import Path

import gradio as gr
import numpy as np

from cmp import params
from cmp.annotations import (MAX_CLASS_CHARS, ObjectAnnotation, class_name, coco_dict, coco_with_candidates,
                             export_annotations)
from cmp.guidance import MAX_POINTS, GuidanceError
from cmp.masks import rle_decode, rle_encode, save_mask_png
from cmp.segment import (CANDIDATE_SCALES, DEFAULT_THRESHOLD, best_candidate, check_threshold, segment,
                         segment_candidates)

from . import evidence, overlays
from .common import (MODEL_GROUP, STATE_TTL_S, Context, click_xy, image_intake, is_numbers, parse_json,
                     read_image, retry_if_evicted, temp_dir,
                     temp_path, user_errors, validated)

POSITIVE, NEGATIVE = "Positive (object)", "Negative (background)"
HINT = ("Click the object (positive) or the background (negative); the mask updates after every click. "
        "Every click gives three candidates (part / object / group, the most confident selected). "
        "**Next object** keeps the mask and starts a new one.")
#: Single-key shortcuts: key -> (what it does, the element it presses). Shown on the page.
SHORTCUTS = (("p", "positive clicks", "#segment-mode input[type=radio]:0"),
             ("n", "negative clicks", "#segment-mode input[type=radio]:1"),
             ("z", "undo", "#segment-undo"),
             ("Enter", "next object", "#segment-next"),
             ("c", "next candidate mask", "#segment-next-candidate"),
             ("e", "export", "#segment-export"))
#: Finished objects cycle through these (RGB); the object being edited is drawn in CURRENT_COLOR.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127), (214, 39, 40)]
CURRENT_COLOR = (255, 221, 0)
MAX_OBJECTS = 255  # label maps are 8-bit


# -- pure helpers (tested without Gradio) ---------------------------------------

def new_state(size=None) -> dict:
    return {"size": list(size) if size else None, "clicks": [], "mask": None, "objects": []}


def add_click(state: dict, x: float, y: float, positive: bool, now: float | None = None) -> dict:
    """One more click on the current object; the object's clock starts at its first click."""
    clicks = [list(c) for c in state.get("clicks", [])]
    if len(clicks) >= MAX_POINTS:
        raise GuidanceError(f"at most {MAX_POINTS} clicks per object; undo some or start the next object")
    clicks.append([float(x), float(y), 1 if positive else 0])
    t0 = state.get("t0") if state.get("t0") is not None else (time.time() if now is None else now)
    return {**state, "clicks": clicks, "t0": t0, "n_clicks": int(state.get("n_clicks") or 0) + 1}


def split_clicks(clicks) -> tuple[list[list[float]], list[list[float]]]:
    pos = [[c[0], c[1]] for c in clicks if c[2]]
    neg = [[c[0], c[1]] for c in clicks if not c[2]]
    return pos, neg


def undo(state: dict) -> dict:
    """Drop the last click; with no clicks, reopen the last finished object for editing."""
    clicks = [list(c) for c in state.get("clicks", [])]
    objects = list(state.get("objects", []))
    if clicks:
        return {**state, "clicks": clicks[:-1], "mask": None, "candidates": []}
    if objects:
        last = objects.pop()
        return {**state, "clicks": [list(c) for c in last["clicks"]], "mask": last["mask"], "objects": objects,
                "candidates": [], "n_clicks": last.get("n_clicks"),
                "t0": None if last.get("seconds") is None else time.time() - last["seconds"]}
    return state


def set_candidates(state: dict, candidates: list[dict], chosen: int | None = None) -> dict:
    """Store the click's candidates ({"name", "confidence", "mask"}) and choose one (default: most confident)."""
    if not candidates:
        return {**state, "candidates": [], "chosen": 0, "mask": None}
    if chosen is None:
        chosen = int(np.argmax([c["confidence"] for c in candidates]))
    chosen %= len(candidates)
    return {**state, "candidates": candidates, "chosen": chosen, "mask": candidates[chosen]["mask"]}


def candidate_choices(state: dict) -> list[str]:
    return [f"{c['name']} · {c['confidence']:.2f}" for c in state.get("candidates") or []]


def finish_object(state: dict, label: str | None = None, now: float | None = None) -> dict:
    """Keep the current mask as a finished object (with its class and speed) and start a new, empty one."""
    if not state.get("mask"):
        raise GuidanceError("nothing to keep yet: click the object first")
    if len(state.get("objects", [])) >= MAX_OBJECTS:
        raise GuidanceError(f"at most {MAX_OBJECTS} objects per image")
    t0 = state.get("t0")
    seconds = None if t0 is None else round(max(0.0, (time.time() if now is None else now) - t0), 2)
    obj = {"clicks": state["clicks"], "mask": state["mask"], "label": class_name(label),
           "n_clicks": state.get("n_clicks") or len(state["clicks"]), "seconds": seconds}
    return {**state, "clicks": [], "mask": None, "candidates": [], "chosen": 0, "t0": None, "n_clicks": 0,
            "objects": list(state.get("objects", [])) + [obj]}


def decode(state: dict, counts: str) -> np.ndarray:
    return rle_decode({"size": state["size"], "counts": counts})


def all_masks(state: dict) -> list[np.ndarray]:
    """Finished objects then the current one (if it has a mask), as (H, W) bool."""
    masks = [decode(state, o["mask"]) for o in state.get("objects", [])]
    if state.get("mask"):
        masks.append(decode(state, state["mask"]))
    return masks


def annotations(state: dict, label: str | None = None) -> list[ObjectAnnotation]:
    """Finished objects, then the current one (class ``label``, not yet timed), for export."""
    out = [ObjectAnnotation(decode(state, o["mask"]), class_name(o.get("label")), o.get("n_clicks"), o.get("seconds"))
           for o in state.get("objects", [])]
    if state.get("mask"):
        out.append(ObjectAnnotation(decode(state, state["mask"]), class_name(label), state.get("n_clicks")))
    return out


def speed_table(state: dict, label: str | None = None) -> str:
    """Markdown: per object its class, clicks, seconds from first click to "Next object" and area."""
    if not state.get("size"):
        return ""
    rows = ["| # | class | clicks | seconds | area px |", "|---|---|---|---|---|"]
    objs = annotations(state, label)
    for k, o in enumerate(objs, start=1):
        secs = "…" if o.seconds is None else f"{o.seconds:.1f}"
        rows.append(f"| {k} | {o.category} | {o.clicks or 0} | {secs} | {int(o.mask.sum()):,} |")
    if not objs:
        return "Speed: no objects yet."
    timed = [o for o in objs if o.seconds is not None]
    total = sum(o.seconds for o in timed)
    clicks = sum(o.clicks or 0 for o in objs)
    rows.append(f"\nSession: {len(objs)} object{'s' * (len(objs) != 1)}, {clicks} clicks"
                + (f", {total:.1f} s for {len(timed)} finished ({total / len(timed):.1f} s each)" if timed else ""))
    return "\n".join(rows)


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
             pin_frame: bool = True, model: str | None = None):
    """:func:`cmp.segment.segment` on ``model``'s engine, retried once if another tab evicted the image."""
    engine = ctx.engine_for(model)
    return retry_if_evicted(lambda: segment(engine, rgb, positive, negative, threshold=float(threshold),
                                            zoom=bool(zoom), pin_frame=bool(pin_frame)))


def candidates_for(ctx: Context, rgb: np.ndarray, positive, negative, threshold: float, pin_frame: bool = True,
                   scales=CANDIDATE_SCALES, model: str | None = None):
    """:func:`cmp.segment.segment_candidates` on ``model``'s engine (retried once like :func:`mask_for`)."""
    engine = ctx.engine_for(model)
    return retry_if_evicted(lambda: segment_candidates(engine, rgb, positive, negative,
                                                       threshold=float(threshold), pin_frame=bool(pin_frame),
                                                       scales=scales))


# -- the page ----------------------------------------------------------------

def build(ctx: Context) -> None:
    state = gr.State(new_state(), time_to_live=STATE_TTL_S)

    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            src, note = image_intake(ctx, "segment")
            mode = gr.Radio([POSITIVE, NEGATIVE], value=POSITIVE, label="Click mode", elem_id="segment-mode")
            label = gr.Textbox("object", label="Class of this object", max_lines=1, elem_id="segment-class",
                               max_length=MAX_CLASS_CHARS,
                               info="goes into COCO categories and the YOLO class index (classes.txt)")
            threshold = gr.Slider(0.05, 0.95, value=DEFAULT_THRESHOLD, step=0.05, label="Threshold",
                                  info="mask = normalised motion > threshold", elem_id="segment-threshold")
            pin = gr.Checkbox(True, label="Frame is background", elem_id="segment-pin",
                              info="the border of the view stays still; untick if the object runs off the edge")
        with gr.Column(scale=3):
            canvas = gr.Image(value=overlays.placeholder(), interactive=False, label="Click the object",
                              height=480, elem_id="segment-canvas", buttons=["fullscreen"])
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
            with gr.Accordion("Evidence: what the mask came from", open=False, elem_id="segment-evidence"):
                gr.Markdown("Left: the four probe flows of the view the model saw (colour wheel: hue = "
                            "direction, saturation = speed). Right: their mean magnitude, the score; the mask "
                            "is where it passes the threshold (outline on the heat map, red line on the histogram).")
                with gr.Row():
                    ev_flows = gr.Image(label="The four probe flows (colour wheel)", show_label=False, format="png",
                                        interactive=False, height=300, elem_id="segment-evidence-flows")
                    ev_score = gr.Image(label="Motion-magnitude score and the threshold", show_label=False,
                                        format="png", interactive=False, height=300, elem_id="segment-evidence-score")
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
        return evidence.probe_flows_image(res.flows), evidence.score_image(score, float(thr))

    def _recompute(rgb, st, thr, pf, model=""):
        """State with the current object's candidates recomputed from its clicks; also the chosen result."""
        pos, neg = split_clicks(st["clicks"])
        if not pos:
            return set_candidates(st, []), None
        results = candidates_for(ctx, rgb, pos, neg, thr, pf, model=model)
        st = set_candidates(st, [{"name": c.name, "confidence": round(c.confidence, 3),
                                  "mask": rle_encode(c.mask)["counts"]} for c in results])
        return st, results[st["chosen"]]

    def _show(rgb, st, res=None, thr=DEFAULT_THRESHOLD, lab=None):
        choices = candidate_choices(st)
        radio = gr.update(choices=choices, value=choices[st["chosen"]] if choices else None)
        flows_img, score_img = _evidence(res, thr)
        return (render(rgb, st), st, status(st, None if res is None else res.box), points_json(st["clicks"]), radio,
                flows_img, score_img, speed_table(st, lab))

    # -- private UI handlers -------------------------------------------------
    @user_errors
    def on_image(path, model=""):
        if not path:
            return overlays.placeholder(), new_state(), "", "", "", None, gr.update(choices=[], value=None), None, \
                None, ""
        rgb, msg = _image(path)
        ctx.engine_for(model).set_image(rgb)  # encode now so the first click is quick
        h, w = rgb.shape[:2]
        st = new_state((h, w))
        text = f"{w}x{h} px. " + (f"**{msg}**" if msg else "")
        return rgb, st, status(st), points_json([]), text, None, gr.update(choices=[], value=None), None, None, \
            speed_table(st)

    @user_errors
    def on_click(path, st, md, thr, pf, lab, evt: gr.SelectData, model=""):  # Gradio puts evt in its place
        if not path:
            gr.Warning("Upload an image or pick an example first, then click on it.")
            return gr.skip()
        rgb, _ = _image(path)
        if st.get("size") != list(rgb.shape[:2]):
            st = new_state(rgb.shape[:2])
        x, y = click_xy(evt, rgb.shape)
        st, res = _recompute(rgb, add_click(st, x, y, md != NEGATIVE), thr, pf, model)
        return _show(rgb, st, res, thr, lab)

    @user_errors
    def on_settings(path, st, thr, pf, lab, model=""):
        if not path or not st.get("clicks"):
            return gr.skip()
        rgb, _ = _image(path)
        st, res = _recompute(rgb, st, thr, pf, model)
        return _show(rgb, st, res, thr, lab)

    def _choose(path, st, thr, pf, lab, index, model=""):
        rgb, _ = _image(path)
        st = set_candidates(st, st["candidates"], index)
        pos, neg = split_clicks(st["clicks"])
        name = st["candidates"][st["chosen"]]["name"]
        (res,) = candidates_for(ctx, rgb, pos, neg, thr, pf, [s for s in CANDIDATE_SCALES if s[0] == name], model)
        return _show(rgb, st, res, thr, lab)

    @user_errors
    def on_pick(path, st, thr, pf, lab, model, choice):
        choices = candidate_choices(st)
        if not path or choice not in choices:
            return gr.skip()
        return _choose(path, st, thr, pf, lab, choices.index(choice), model)

    @user_errors
    def on_next_candidate(path, st, thr, pf, lab, model=""):
        if not path or not st.get("candidates"):
            return gr.skip()
        return _choose(path, st, thr, pf, lab, st.get("chosen", 0) + 1, model)

    @user_errors
    def on_undo(path, st, thr, pf, lab, model=""):
        if not path:
            return gr.skip()
        rgb, _ = _image(path)
        st = undo(st)
        res = None
        if st["mask"] is None:
            st, res = _recompute(rgb, st, thr, pf, model)
        return _show(rgb, st, res, thr, lab)

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
        pos, neg = parse_points(points_text)
        thr = DEFAULT_THRESHOLD if thr is None else thr
        pf = True if pf is None else pf
        name = Path(image).name if isinstance(image, str) else "image.png"
        if candidates:
            results = candidates_for(ctx, rgb, pos, neg, thr, pf, model=model)
            best = best_candidate(results)
            objs = [ObjectAnnotation(c.mask, candidate=c.name, confidence=c.confidence) for c in results]
            return str(save_mask_png(temp_path(".png"), results[best].mask)), \
                coco_with_candidates(objs, best, file_name=name)
        res = mask_for(ctx, rgb, pos, neg, thr, True if zm is None else zm, pf, model)
        return str(save_mask_png(temp_path(".png"), res.mask)), coco_dict([res.mask], file_name=name)

    # -- wiring ----------------------------------------------------------------
    model = dict(concurrency_id=MODEL_GROUP)
    shown = [canvas, state, status_md, points, cands, ev_flows, ev_score, speed]
    src.change(on_image, [src, ctx.model], [canvas, state, status_md, points, note, files, cands, ev_flows, ev_score, speed],
               api_visibility="private", **model)
    settings = [src, state, threshold, pin, label, ctx.model]
    canvas.select(on_click, [src, state, mode, threshold, pin, label, ctx.model], shown, api_visibility="private",
                  **model)
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
