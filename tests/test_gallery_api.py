"""The Gallery page's public endpoint, driven through gradio_client against the app in-process."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cmp import proxy_tasks as pt

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("img") / "noise.png"
    Image.fromarray(rgb).save(path)
    return str(path)


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def call(client, *args):
    return client.predict(*args, api_name="/gallery_task")


def test_every_task_returns_images_and_metadata(client, image_file):
    for name in pt.TASKS:
        inp, tgt, meta = call(client, gradio_client.handle_file(image_file), name, "normal", 3, True, "jitter")
        assert meta["task"] == name and meta["difficulty"] == "normal" and meta["seed"] == 3
        a, b = _png(inp), _png(tgt)
        assert a.ndim == 3 and b.ndim == 3 and a.size and b.size
        expected = pt.generate(name, _png(image_file) if not pt.TASKS[name].motion else None, "normal", 3)
        np.testing.assert_array_equal(a, expected.input)  # PNG is lossless: exactly what the library made
    assert isinstance(meta["epe"], float), "motion propagation reports the model's EPE"


def test_jigsaw_options_and_determinism(client, image_file):
    f = gradio_client.handle_file(image_file)
    _, _, m1 = call(client, f, "jigsaw", "hell", 7, False, "grey")
    _, _, m2 = call(client, f, "jigsaw", "hell", 7, False, "grey")
    assert m1 == m2
    assert m1["grid"] == 4 and m1["gaps"] is False and m1["colour"] == "grey"
    assert m1["permutation"] == pt.permutation_set(16, m1["set_size"])[m1["permutation_index"]].tolist()


def test_motion_tasks_need_no_image(client):
    _, _, meta = call(client, None, "moving_segmentation", "easy", 0, True, "jitter")
    assert 0 < meta["foreground_fraction"] < 1


@pytest.mark.parametrize("args,fragment", [
    ((None, "rotation", "normal", 0, True, "jitter"), "image"),
    (("IMG", "rotation", "nightmare", 0, True, "jitter"), "difficulty"),
    (("IMG", "rotation", "normal", -4, True, "jitter"), "seed"),
    (("NOTIMG", "rotation", "normal", 0, True, "jitter"), "image"),
    (("IMG", "sudoku", "normal", 0, True, "jitter"), "task"),
    (("IMG", "jigsaw", "normal", 0, True, "rainbow"), "colour"),
])
def test_bad_input_gives_one_line_error(client, image_file, tmp_path, args, fragment):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is not a picture")
    subst = {"IMG": gradio_client.handle_file(image_file), "NOTIMG": gradio_client.handle_file(str(bad))}
    args = tuple(subst.get(a, a) if isinstance(a, str) else a for a in args)
    with pytest.raises(Exception) as e:
        call(client, *args)
    msg = str(e.value)
    assert fragment in msg.lower()
    assert "Traceback" not in msg and len(msg.strip().splitlines()) == 1
