"""Gallery page: what networks learn from when nobody labels the data.

One card per pretext task (cmp/proxy_tasks/): what the network is given, what
it must predict, why that teaches something, and the shortcut the task design must
remove. Image tasks use the uploaded or example image; motion tasks use the shipped
frame pair, and conditional motion propagation runs the shared engine.
Public API: ``/gallery_task`` (image, task, difficulty, seed, jigsaw options[, checkpoint]) ->
input image, target image, metadata.
"""
from __future__ import annotations

import gradio as gr

from cmp import lease, params
from cmp import proxy_tasks as pt

from .common import (MODEL_GROUP, Context, allow_examples, image_input, only_uploads, read_image, user_errors,
                     validated)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
INTRO = """\
### Self-supervised proxy tasks
A network can learn useful features without labels if we give it a task whose answer is hidden in
the data itself. The supervision comes from **priors** of the world (colour, gravity, how things
move), **coherence** (parts of an image fit together) or the **structure of the data** (every image is
its own class). A task teaches only if the network cannot solve it by a **shortcut**, and it must be
hard enough: each card has a difficulty from *easy* to *hell*.

Pick an example or upload an image. The motion cards use a real frame pair from OpenCV's `box.mp4`.
"""


def _card_text(t: pt.ProxyTask) -> str:
    return (f"**Given:** {t.given}.  \n**Predict:** {t.predict}.  \n**Answer here:** {t.answer}.  \n"
            f"**Supervision from:** {t.source}.\n\n{t.why}\n\n**Shortcut to avoid:** {t.shortcut}")


def _empty_text(spec: pt.TaskSpec) -> str:
    return f"*{spec.title}: upload an image or pick an example.*"


def build(ctx: Context) -> None:
    examples = pt.example_paths() + [p for p in ctx.examples if str(p).lower().endswith(IMAGE_EXTENSIONS)]
    allow_examples(examples)

    def propagation_task(difficulty: str, seed: int, model: str | None) -> pt.ProxyTask:
        # The only card that runs the model; on ZeroGPU only this call takes a GPU.
        return lease.run_model(pt.motion_propagation, None, difficulty, seed, engine=ctx.engine_for(model))

    def make(name: str, rgb, difficulty: str, seed: int, gaps: bool, colour: str,
             model: str | None = None) -> pt.ProxyTask | None:
        spec = pt.TASKS[name]
        if name == "motion_propagation":
            return propagation_task(difficulty, seed, model)
        if spec.motion:
            return pt.generate(name, None, difficulty, seed)
        if rgb is None:
            return None
        options = {"gaps": bool(gaps), "colour": colour} if name == "jigsaw" else {}
        return pt.generate(name, rgb, difficulty, seed, **options)

    def card_outputs(name: str, task: pt.ProxyTask | None) -> list:
        if task is None:
            return [None, None, _empty_text(pt.TASKS[name])]
        return [task.input, task.target, _card_text(task)]

    def load(image):
        if image is None:
            return None
        rgb, _note = read_image(image, ctx.max_side)
        return rgb

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=2):
            image = image_input(label="Image", type="filepath", sources=["upload", "clipboard"], height=280,
                                elem_id="gallery-image")
            gr.Examples([[p] for p in examples], inputs=[image], label="Examples", elem_id="gallery-examples")
        with gr.Column(scale=3):
            difficulty = gr.Radio(list(pt.DIFFICULTIES), value="normal", label="Difficulty of every card",
                                  info="Sets all cards; each card can then be changed on its own.",
                                  elem_id="gallery-difficulty")
            seed = gr.Number(value=0, precision=0, minimum=0, maximum=pt.MAX_SEED, label="Seed",
                             info="Same image, difficulty and seed give the same task.", elem_id="gallery-seed")
            gaps = gr.Checkbox(value=True, label="Jigsaw: gaps and jitter between tiles (removes edge continuity)",
                               elem_id="gallery-jigsaw-gaps")
            colour = gr.Radio(list(pt.JIGSAW_COLOUR), value="jitter",
                              label="Jigsaw: per-tile colour (jitter or grey removes chromatic aberration cues)",
                              elem_id="gallery-jigsaw-colour")

    cards: dict[str, tuple] = {}
    for name, spec in pt.TASKS.items():
        with gr.Group(elem_id=f"gallery-card-{name}"):
            gr.Markdown(f"#### {spec.title}")
            with gr.Row(equal_height=False):
                given = gr.Image(label="Given to the network", interactive=False, format="png", height=260,
                                 elem_id=f"gallery-{name}-input")
                target = gr.Image(label="To predict", interactive=False, format="png", height=260,
                                  elem_id=f"gallery-{name}-target")
                with gr.Column():
                    card_difficulty = gr.Radio(list(pt.DIFFICULTIES), value="normal", label="Difficulty",
                                               elem_id=f"gallery-{name}-difficulty")
                    text = gr.Markdown(_empty_text(spec) if not spec.motion else "")
        cards[name] = (given, target, text, card_difficulty)

    names = list(cards)
    all_outputs = [c for n in names for c in cards[n][:3]]
    card_radios = [cards[n][3] for n in names]

    @user_errors
    def render_all(model, image, seed_value, gaps_value, colour_value, *difficulties):
        rgb = load(image)
        s = pt.check_seed(seed_value)
        out = []
        for name, d in zip(names, difficulties):
            out += card_outputs(name, make(name, rgb, d, s, gaps_value, colour_value, model))
        return out

    @user_errors
    def set_difficulty(level, image, seed_value, gaps_value, colour_value, model=""):
        level = pt.check_difficulty(level)
        return [level] * len(names) + render_all(model, image, seed_value, gaps_value, colour_value,
                                                 *[level] * len(names))

    common = [image, seed, gaps, colour]
    for trigger in (image.change, seed.change):
        trigger(render_all, [ctx.model] + common + card_radios, all_outputs, concurrency_id=MODEL_GROUP,
                api_visibility="private")
    difficulty.input(set_difficulty, [difficulty] + common + [ctx.model], card_radios + all_outputs,
                     concurrency_id=MODEL_GROUP, api_visibility="private")

    for name in names:
        given, target, text, card_difficulty = cards[name]

        @user_errors
        def render_one(image, seed_value, gaps_value, colour_value, level, model="", _name=name):
            rgb = None if pt.TASKS[_name].motion else load(image)
            task = make(_name, rgb, pt.check_difficulty(level), pt.check_seed(seed_value), gaps_value, colour_value,
                        model)
            return card_outputs(_name, task)

        # Every card decodes and builds full-size pictures: all share the model's bounded group.
        card_difficulty.input(render_one, common + [card_difficulty, ctx.model], [given, target, text],
                              concurrency_id=MODEL_GROUP, api_visibility="private")
        if pt.TASKS[name].needs_engine:  # another model chosen in the header: redo this card with it
            ctx.model.change(render_one, common + [card_difficulty, ctx.model], [given, target, text],
                             concurrency_id=MODEL_GROUP, api_visibility="private")
        if name == "jigsaw":
            for toggle in (gaps, colour):
                toggle.input(render_one, common + [card_difficulty], [given, target, text],
                             concurrency_id=MODEL_GROUP, api_visibility="private")

    # Public endpoint: hidden components, one call per task. Plain text boxes rather than
    # dropdowns so a wrong name gets our message, which says which field and what is allowed.
    with gr.Row(visible=False):
        # A file, not gr.Image: Gradio's image preprocessing would reject a broken upload with
        # its own generic error before our safe decoder could say what is wrong.
        api_image = only_uploads(gr.File(type="filepath", label="image"))
        api_task = gr.Textbox(value="rotation", label="task", info=", ".join(pt.TASKS))
        api_difficulty = gr.Textbox(value="normal", label="difficulty", info=", ".join(pt.DIFFICULTIES))
        # No precision: Gradio would round NaN itself and fail with a bare "Error"; check_seed says why.
        api_seed = gr.Number(value=0, label="seed")
        api_gaps = gr.Checkbox(value=True, label="jigsaw_gaps")
        api_colour = gr.Textbox(value="jitter", label="jigsaw_colour", info=", ".join(pt.JIGSAW_COLOUR))
        api_input = gr.Image(format="png", label="input")
        api_target = gr.Image(format="png", label="target")
        api_meta = gr.JSON(label="metadata")
        api_button = gr.Button("run")
    # One check per input (cmp.params); the handler checks the names and ranges.
    validated(api_task, lambda v: params.text(v, "task"))
    validated(api_difficulty, lambda v: params.text(v, "difficulty"))
    validated(api_seed, lambda v: params.number(v, "seed"))
    validated(api_gaps, lambda v: params.flag(v, "jigsaw_gaps", default=True))
    validated(api_colour, lambda v: params.choice(v, "jigsaw_colour", pt.JIGSAW_COLOUR))

    @user_errors
    def gallery_task(image, task, level, seed_value, jigsaw_gaps=True, jigsaw_colour="jitter", checkpoint="",
                     model=""):
        """One pretext task for an image: (input image, target image, metadata JSON).

        Motion tasks ignore the image (they use the shipped frame pair); the others need it.
        """
        if task not in pt.TASKS:
            raise ValueError(f"unknown task '{task}'; choose one of {', '.join(pt.TASKS)}")
        spec = pt.TASKS[task]
        rgb = None if spec.motion else load(image)
        if rgb is None and not spec.motion:
            raise ValueError("this task needs an image")
        t = make(task, rgb, pt.check_difficulty(level), pt.check_seed(seed_value), jigsaw_gaps, jigsaw_colour,
                 checkpoint or model)
        return t.input, t.target, t.to_json()

    api_button.click(gallery_task, [api_image, api_task, api_difficulty, api_seed, api_gaps, api_colour,
                                    ctx.checkpoint, ctx.model],
                     [api_input, api_target, api_meta], api_name="gallery_task", concurrency_id=MODEL_GROUP)
