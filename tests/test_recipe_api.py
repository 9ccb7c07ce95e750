"""Recipes replay identically through every front door: page state, the CLI and the HTTP API;
paths and regions through /motion_video; frames as files from the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cmp.animate import fit_image, fit_region
from cmp.recipe import parse_recipe, read_frames, render


@pytest.fixture(scope="module")
def embedded_app(sample_images):
    """(engine, demo, url) of the app around the embedded model in fp32 (what the CLI loads too)."""
    from app import build_app
    from cmp.engine import Engine
    from demos.common import Context

    eng = Engine.from_checkpoint("default", device="cpu", precision="fp32")
    demo = build_app(Context(engine=eng, max_side=320, video_side=96))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield eng, demo, url
    finally:
        demo.close()


def _handler(demo, name: str):
    for f in demo.fns.values():
        if f.fn is not None and f.fn.__module__ == "demos.motion" and f.fn.__qualname__.endswith(f".{name}"):
            return f.fn
    raise LookupError(name)


def _cli(*argv) -> int:
    from cmp.cli import main
    return main(["animate", *map(str, argv)])


def test_a_recipe_gives_the_same_frames_from_page_state_cli_and_api(embedded_app, sample_images, tmp_path):
    from gradio_client import Client, handle_file

    from cmp.masks import rle_encode
    from cmp.tracks import add_click, add_path_click, finish_path
    from demos.common import read_image
    from demos.motion import new_state

    eng, demo, url = embedded_app
    photo = sample_images["photo"]  # 120x90
    rgb, _ = read_image(photo, 320)
    st = new_state()
    for x, y in ((30, 30), (70, 35), (80, 70)):
        st = add_path_click(st, x, y)
    st = finish_path(st)
    st = add_click(add_click(st, 100, 20), 108, 26)  # and an arrow
    st = add_click(st, 10, 80, pin_mode=True)
    region = np.zeros(rgb.shape[:2], bool)
    region[10:85, 15:115] = True
    st["region"] = rle_encode(region)

    path, text = _handler(demo, "on_save")(photo, st, 9, 8, 1.0, "ease", "pingpong", False)
    rec = parse_recipe(text)
    assert rec.checkpoint == "cmp-slim-affinity" and rec.settings["max_side"] == 96
    assert len(rec.guidance.tracks) == 1 and len(rec.guidance.points) == 2 and rec.region.sum() == region.sum()
    direct = render(eng, rgb, rec, max_side=96)
    assert direct.shape == (9, 72, 96, 3)
    still = ~fit_region(region, (72, 96))
    assert all(np.array_equal(f[still], fit_image(rgb, 96)[still]) for f in direct)

    client = Client(url, verbose=False)
    mp4, gif, zip_path = client.predict(handle_file(photo), text, api_name="/motion_recipe")
    api = read_frames(zip_path)

    out = tmp_path / "frames/"
    assert _cli("--image", photo, "--recipe", path, "--device", "cpu", "--precision", "fp32", "--out",
                str(out) + "/") == 0
    cli = read_frames(out)
    assert np.array_equal(api, direct) and np.array_equal(cli, direct)

    # the same guidance through /motion_video (tracks and region in the guidance JSON)
    guidance = json.dumps({**{k: rec.to_dict()[k] for k in ("arrows", "pins", "tracks")},
                           "region": rle_encode(region)})
    mp4b, gifb = client.predict(handle_file(photo), guidance, 9, 8, 1.0, "ease", "pingpong", False,
                                api_name="/motion_video")
    import av
    with av.open(mp4b) as c:
        assert c.streams.video[0].frames == 9


def test_cli_tracks_region_and_seamless_loop(tiny_checkpoint, sample_images, tmp_path, capsys):
    from PIL import Image

    mask = np.zeros((53, 75), np.uint8)
    mask[10:40, 10:60] = 255
    Image.fromarray(mask).save(tmp_path / "region.png")
    src = np.asarray(Image.open(sample_images["odd"]).convert("RGB"))
    for loop in ("once", "seamless"):
        out = tmp_path / loop
        out.mkdir()  # an existing folder takes frames too
        rc = _cli("--image", sample_images["odd"], "--track", "20,20,40,20,40,35", "--track", "50,30,55,30",
                  "--pin", "5,5", "--region", tmp_path / "region.png", "--frames", 6, "--loop", loop,
                  "--checkpoint", tiny_checkpoint, "--device", "cpu", "--out", out)
        assert rc == 0 and "wrote" in capsys.readouterr().out
        frames = read_frames(out)
        assert frames.shape == (6, 53, 75, 3)
        assert all(np.array_equal(f[mask == 0], src[mask == 0]) for f in frames)


@pytest.mark.parametrize("args, word", [
    (["--track", "1,2,3"], "X0,Y0,X1,Y1"),
    (["--track", "500,2,3,4"], "outside"),
    (["--track", "10,10,20,20,30,30", "--loop", "loop"], "cross-fade loop needs straight arrows"),
    (["--recipe", "missing.json"], "cannot read recipe"),
    (["--arrow", "10,10,5,0", "--recipe", "r.json"], "leave out --arrow"),
])
def test_cli_path_and_recipe_errors_are_one_line(args, word, tiny_checkpoint, sample_images, tmp_path, capsys,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        rc = _cli("--image", sample_images["odd"], *args, "--checkpoint", tiny_checkpoint, "--device", "cpu",
                  "--out", tmp_path / "o.mp4")
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and "\n" not in err, err


def test_painted_brush_strokes_become_the_motion_region(embedded_app, sample_images):
    from demos.common import read_image

    _, demo, _ = embedded_app
    rgb, _ = read_image(sample_images["photo"], 320)
    layer = np.zeros(rgb.shape[:2] + (4,), np.uint8)
    layer[20:40, 30:70] = (255, 48, 48, 255)
    path = _handler(demo, "on_brush")(sample_images["photo"], {"background": rgb, "layers": [layer],
                                                               "composite": rgb})
    from cmp.recipe import load_region
    region = load_region(path, (rgb.shape[1], rgb.shape[0]))
    assert region.sum() == 20 * 40 and region[20:40, 30:70].all()
    import gradio as gr
    with pytest.raises(gr.Error, match="paint over what may move"):
        _handler(demo, "on_brush")(sample_images["photo"], {"background": rgb, "layers": [], "composite": rgb})


@pytest.mark.parametrize("recipe, words", [
    ("{nope", "recipe is not valid JSON"),
    ('{"cmp_recipe": 1, "image_size": [64, 64], "arrows": [[5, 5, 3, 0]]}', "for a 64x64 image; this one is 120x90"),
    ('{"cmp_recipe": 1, "image_size": [120, 90], "pins": [[5, 5]]}', "add at least one arrow or path"),
    ('{"cmp_recipe": 1, "image_size": [120, 90], "tracks": [[[5, 5], [9, 9]]], "settings": {"loop": "spin"}}',
     "loop must be one of"),
])
def test_bad_recipes_through_the_api_are_one_line(embedded_app, sample_images, recipe, words):
    from gradio_client import Client, handle_file

    _, _, url = embedded_app
    with pytest.raises(Exception) as ei:
        Client(url, verbose=False).predict(handle_file(sample_images["photo"]), recipe, api_name="/motion_recipe")
    text = str(ei.value)
    assert words in text and "Traceback" not in text and "\n" not in text.strip(), text
