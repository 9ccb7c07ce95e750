"""The header above every page: which model this session uses.

A picker lists the registry (size, licence, shipped / cached / loaded) and a field takes
any Hub reference (``hf://owner/repo[@rev][/file]``). Choosing downloads with a progress
bar (``huggingface_hub``'s tqdm through ``gr.Progress(track_tqdm=True)``), loads into the
app's engine pool and stores the reference in the session's ``gr.State`` (``ctx.model``),
which every page passes to ``ctx.engine_for``. The public endpoints also take an optional
``checkpoint`` input (``ctx.checkpoint``, hidden here and empty in the browser).
"""
from __future__ import annotations

import gradio as gr

from cmp.checkpoints import entry_status, format_size, registry_entries
from cmp.engine import Engine

from .common import STATE_TTL_S, Context, user_errors

#: Picker value of the app's default model (the session State holds "" for it).
APP_DEFAULT = "(app default)"
REF_HINT = "hf://owner/repo or hf://owner/repo[@revision]/path/file.pth.tar"


def describe(engine: Engine, segments_with: str | None = None) -> str:
    """The header's line; ``segments_with``: the model the Segment page uses instead, if any."""
    config = engine.info.get("config") or getattr(getattr(engine.model, "cfg", None), "name", "?")
    seg = f"; the Segment page uses its grouping model **{segments_with}**" if segments_with else ""
    return f"Active model: **{engine.name}** ({config}, {engine.device.type}, {engine.precision}){seg}"


def choices(ctx: Context) -> list[tuple[str, str]]:
    """(label, value) per picker entry: the app default first, then the registry."""
    pool = ctx.pool
    out = [(f"{ctx.engine.name} (app default, loaded)", APP_DEFAULT)]
    for e in registry_entries(pool.registry):
        if e.name == pool.default_key:
            continue
        status = "loaded" if pool.is_loaded(e.name) else entry_status(e, pool.registry, pool.cache_dir)[0]
        licence = e.license.split(" (")[0].split(";")[0]
        out.append((f"{e.name} · {format_size(e.size)} · {licence} · {status}", e.name))
    return out


def build(ctx: Context) -> None:
    """Lay out the header and set ``ctx.model`` and ``ctx.checkpoint``."""
    ctx.model = gr.State("", time_to_live=STATE_TTL_S)
    ctx.checkpoint = gr.Textbox("", visible=False, label="checkpoint")
    with gr.Row(equal_height=True, elem_id="model-header"):
        picker = gr.Dropdown(choices(ctx), value=APP_DEFAULT, label="Model", scale=2, elem_id="model-picker")
        ref = gr.Textbox(label="or any Hub reference", placeholder=REF_HINT, scale=2, elem_id="model-ref")
        load = gr.Button("Load", scale=0, min_width=80, elem_id="model-load")
    active = gr.Markdown(describe(ctx.engine, ctx.pool.segmenter_key(None)), elem_id="model-active")

    @user_errors
    def choose(text, progress=gr.Progress(track_tqdm=True)):
        text = "" if text in (None, APP_DEFAULT) else str(text).strip()
        key = ctx.pool.key(text)  # a malformed reference or a local path fails here, before any work
        progress(0, desc=f"Loading {ctx.pool.label(text)}")
        engine = ctx.pool.get(key)
        return describe(engine, ctx.pool.segmenter_key(key)), key

    def refresh(key):
        """The picker shows the active model (a Hub reference gets its own entry) and what is
        cached or loaded now; run only after a success, so a failure leaves it as it was."""
        options = choices(ctx)
        if key and key not in {v for _, v in options}:
            options.append((f"{key} · loaded", key))
        return gr.Dropdown(choices=options, value=key or APP_DEFAULT)

    outputs = [active, ctx.model]
    opts = dict(api_visibility="private", concurrency_id="model-load")
    for event, source in ((picker.input, picker), (load.click, ref), (ref.submit, ref)):
        event(choose, [source], outputs, **opts).success(refresh, [ctx.model], [picker], api_visibility="private",
                                                           show_progress="hidden")
