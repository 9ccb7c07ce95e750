"""The app through its public API (gradio_client against the app launched in-process),
plus the Motion page's pure helpers and overlays."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
from PIL import Image

from cmp.guidance import GuidanceError
from demos import motion, overlays

from conftest import TEST_MAX_SIDE

ARROWS = {"arrows": [[60, 40, 12, -4]], "pins": [[10, 10]]}


def _read_flo(path):
    with open(path, "rb") as f:
        assert f.read(4) == b"PIEH"
        w, h = np.fromfile(f, "<i4", 2)
        data = np.fromfile(f, "<f4")
    return data.reshape(h, w, 2)


# -- public endpoints -------------------------------------------------------------

def test_only_the_named_endpoints_are_public(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/motion_flow", "/motion_video"} <= names
    # select/undo/redraw handlers cannot be driven by a client: they must stay private
    private = {"/on_image", "/on_click", "/on_edit", "/on_apply", "/show_flow"}
    assert names.isdisjoint(private) and not any(n.startswith("/lambda") for n in names)


def test_motion_flow_returns_the_engines_flow_as_flo_and_png(client, tiny_engine, sample_images):
    from gradio_client import handle_file

    from demos.common import read_image

    png, flo = client.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), api_name="/motion_flow")
    flow = _read_flo(flo)
    rgb, _ = read_image(sample_images["photo"], TEST_MAX_SIDE)
    expected = tiny_engine.propagate(tiny_engine.set_image(rgb), ARROWS["arrows"], ARROWS["pins"])
    np.testing.assert_allclose(flow, expected, atol=1e-6)
    im = Image.open(png)
    assert im.format == "PNG" and im.size == (120, 90)


def test_large_uploads_are_downscaled_and_coordinates_follow(client, sample_images):
    from gradio_client import handle_file

    _, flo = client.predict(handle_file(sample_images["large"]), "[[300, 200, 5, 5]]", api_name="/motion_flow")
    assert _read_flo(flo).shape == (213, 320, 2)  # 480x320 -> long side TEST_MAX_SIDE


def test_motion_video_returns_browser_playable_mp4_and_gif(client, sample_images):
    from gradio_client import handle_file

    video, gif = client.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), 6, 12, 1.5, "ease",
                                "pingpong", api_name="/motion_video")
    mp4 = video["video"] if isinstance(video, dict) else video
    with av.open(mp4) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert s.frames == 6 and s.width % 2 == 0 and s.height % 2 == 0
        assert max(s.width, s.height) <= 128  # the app's video_side
    assert Image.open(gif).n_frames == 6


@pytest.mark.parametrize("image, guidance, extra, word", [
    ("broken", "[[10, 10, 5, 0]]", (), "not an image"),
    ("photo", "{arrows: nope", (), "not valid JSON"),
    ("photo", '{"arrows": [[1, 2, 3]]}', (), "4 numbers"),
    ("photo", "[[500, 10, 5, 0]]", (), "outside"),
    ("photo", '{"pins": [[10, 10]]}', (), "at least one arrow"),
    ("photo", "[[10, 10, 5, 0]]", (200,), "maximum value 96"),  # Gradio checks slider bounds
    ("photo", "[[10, 10, 5, 0]]", (8, 0.5), "minimum value 1"),
])
def test_motion_video_bad_input_is_a_one_line_error(client, sample_images, image, guidance, extra, word):
    from gradio_client import handle_file

    args = list(extra) + [8, 12, 1.0, "linear", "once"][len(extra):]
    with pytest.raises(Exception) as ei:
        client.predict(handle_file(sample_images[image]), guidance, *args, api_name="/motion_video")
    msg = str(ei.value)
    assert word in msg and "Traceback" not in msg and "\n" not in msg.strip()


def test_scene_motion_on_a_model_without_it_is_a_one_line_error(client, sample_images, launched_app):
    from gradio_client import handle_file

    with pytest.raises(Exception) as ei:
        client.predict(handle_file(sample_images["photo"]), json.dumps(ARROWS), True, api_name="/motion_flow")
    msg = str(ei.value)
    assert "whole scene moves" in msg and "Traceback" not in msg and "\n" not in msg.strip()
    demo, _ = launched_app
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "motion-scene")
    assert box.visible is False, "the bin-decoder app hides the toggle it cannot honour"


def test_scene_motion_through_the_api_pans_the_whole_image(affinity_app, sample_images):
    from gradio_client import handle_file

    from demos.common import read_image

    from gradio_client import Client

    eng, demo, url = affinity_app
    client = Client(url, verbose=False)
    one = json.dumps([[60, 40, 12, -4]])
    _, flo = client.predict(handle_file(sample_images["photo"]), one, True, api_name="/motion_flow")
    flow = _read_flo(flo)
    np.testing.assert_allclose(flow[..., 0], 12, atol=1e-3)
    np.testing.assert_allclose(flow[..., 1], -4, atol=1e-3)
    _, flo_default = client.predict(handle_file(sample_images["photo"]), one, api_name="/motion_flow")
    rgb, _ = read_image(sample_images["photo"], TEST_MAX_SIDE)
    np.testing.assert_allclose(_read_flo(flo_default), eng.flow_for(rgb, [[60, 40, 12, -4]]), atol=1e-6)
    video, _ = client.predict(handle_file(sample_images["photo"]), one, 4, 8, 1.0, "linear", "once", True,
                              api_name="/motion_video")
    assert video
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "motion-scene")
    assert box.visible is True


def test_flow_without_image_is_a_friendly_error(client):
    with pytest.raises(Exception, match="upload an image first"):
        client.predict(None, "[]", api_name="/motion_flow")


def test_uploads_above_the_size_limit_are_refused(client, tmp_path):
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(str(big)), "[]", api_name="/motion_flow")


# -- pure page helpers --------------------------------------------------------------

def test_clicks_make_arrows_pins_and_undo_walks_back():
    st = motion.new_state()
    st = motion.add_click(st, 10, 20)
    assert st == {"points": [], "pending": [10, 20]}
    st = motion.add_click(st, 25, 18)
    assert st["points"] == [[10, 20, 15, -2]] and st["pending"] is None
    st = motion.add_click(motion.add_click(st, 40, 40), 41, 41)  # same spot twice = pin
    assert st["points"][-1] == [40, 40, 0.0, 0.0]
    st = motion.add_click(st, 5, 5, pin_mode=True)
    assert st["points"][-1] == [5, 5, 0.0, 0.0] and st["pending"] is None
    st = motion.undo(motion.add_click(st, 1, 1))  # undo drops a pending start first
    assert len(st["points"]) == 3 and st["pending"] is None
    st = motion.undo(st)
    assert len(st["points"]) == 2


def test_guidance_json_round_trips_and_rejects_garbage():
    points = [[10.0, 20.0, 15.0, -2.0], [40.0, 40.0, 0.0, 0.0]]
    text = motion.guidance_json(points)
    assert json.loads(text) == {"arrows": [[10.0, 20.0, 15.0, -2.0]], "pins": [[40.0, 40.0]]}
    assert sorted(motion.parse_guidance(text)) == sorted(points)
    assert motion.parse_guidance("[[1, 2, 3, 4], [5, 6]]") == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert motion.parse_guidance("  ") == []
    for bad in ('{"arrow": []}', "[[1, 2, true, 4]]", "42", '[["a", 1, 2, 3]]', "[[1, 2, 3]]"):
        with pytest.raises(GuidanceError):
            motion.parse_guidance(bad)


def test_overlays_draw_on_a_copy_of_the_same_size():
    rgb = np.full((60, 80, 3), 128, np.uint8)
    out = overlays.draw_guidance(rgb, [[10, 10, 30, 20], [70, 50, 0, 0]], pending=[40, 5])
    assert out.shape == rgb.shape and np.all(rgb == 128)  # input untouched
    changed = np.any(out != 128, axis=-1)
    assert changed[10, 10] and changed[20, 25] and changed[30, 40] and changed[50, 70]
    assert changed[0:12, 33:48].any() and not changed[5, 40]  # pending start: a hollow ring
    assert not changed[55, 5]
    flow = np.zeros((60, 80, 2), np.float32)
    flow[..., 0] = 5
    arrows = overlays.draw_flow_arrows(rgb, flow)
    assert arrows.shape == rgb.shape and arrows.max() > 200  # white arrows over the dimmed image
    clicks = overlays.draw_clicks(rgb, [(20, 20, 1), (60, 40, 0)])
    assert tuple(clicks[20, 20]) == overlays.POSITIVE_COLOR and tuple(clicks[40, 60]) != (128, 128, 128)


def test_a_still_flow_shows_white_not_an_error():
    """Pins only (or an arrow of length 0) predict no motion anywhere: the flow view is white
    with its legend, not an error message."""
    view = motion.flow_color_view(np.zeros((90, 120, 2), np.float32))
    assert view.shape == (90, 120, 3)
    assert (view[80:, :60] == 255).all()  # away from the legend in the top-right corner


def test_flow_view_legend_matches_the_colour_map():
    flow = np.zeros((90, 120, 2), np.float32)
    flow[..., 0] = np.linspace(-6, 6, 120)[None]
    view = motion.flow_color_view(flow)
    assert view.shape == (90, 120, 3)
    # the legend's rightmost wheel colour (motion to the right at max speed) is the image's right edge colour
    legend = overlays.wheel_legend(6.0, 48)
    x0 = (legend.shape[1] - 48) // 2  # the wheel is centred above its label
    right = legend[24, x0 + 46].astype(int)
    edge = motion.flow_to_color(flow, 6.0)[45, 119].astype(int)
    assert np.abs(right - edge).max() < 40


def test_read_image_decodes_an_upload_once_and_rereads_a_changed_file(tmp_path):
    from PIL import Image

    from demos.common import read_image

    p = tmp_path / "up.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(p)
    a, _ = read_image(str(p))
    b, _ = read_image(str(p))
    assert a is b and not a.flags.writeable  # shared between clicks, so nobody may draw on it
    Image.new("RGB", (50, 30), (200, 20, 30)).save(p)
    c, _ = read_image(str(p))
    assert c.shape == (30, 50, 3) and c[0, 0, 0] == 200


def test_scene_motion_left_out_is_inferred_and_false_forces_objects(affinity_app, sample_images):
    from gradio_client import Client, handle_file

    from demos.common import read_image

    eng, _demo, url = affinity_app
    client = Client(url, verbose=False)
    camera = [[x, y, -6 - 0.02 * x, 0.5] for x in (10, 60, 110) for y in (8, 45, 82)]  # spread, agreeing
    rgb, _ = read_image(sample_images["photo"], TEST_MAX_SIDE)
    _, flo = client.predict(handle_file(sample_images["photo"]), json.dumps(camera), api_name="/motion_flow")
    np.testing.assert_allclose(_read_flo(flo), eng.flow_for(rgb, camera, scene_motion=True), atol=1e-5)
    _, flo = client.predict(handle_file(sample_images["photo"]), json.dumps(camera), False, api_name="/motion_flow")
    np.testing.assert_allclose(_read_flo(flo), eng.flow_for(rgb, camera, scene_motion=False), atol=1e-5)


def test_every_event_has_at_most_one_progress_target(launched_app):
    """Gradio's frontend pushes a loading status to every progress target of every event run
    so far, twice per event; the app gives each event one (its first shown output) and an
    event with hidden progress none. Read from the config the browser loads."""
    import httpx

    demo, url = launched_app
    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    kinds = {c["id"]: c["type"] for c in config["components"]}
    by_elem = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c["props"].get("elem_id")}
    deps = config["dependencies"]
    assert deps and all(d["show_progress_on"] is not None and len(d["show_progress_on"]) <= 1 for d in deps)
    for d in deps:
        if d["show_progress"] == "hidden":
            assert d["show_progress_on"] == []
        elif d["show_progress_on"]:
            (target,) = d["show_progress_on"]
            assert target in d["outputs"] and kinds[target] != "state"
            assert target == next(o for o in d["outputs"] if kinds[o] != "state")  # the first shown output
    clicks = [d for d in deps if [by_elem["segment-canvas"], "select"] in d["targets"]]
    uploads = [d for d in deps if [by_elem["segment-input"], "change"] in d["targets"]]
    assert clicks and all(d["show_progress_on"] == [] for d in clicks)  # progress hidden on a click
    assert uploads and all(d["show_progress_on"] == [by_elem["segment-canvas"]] for d in uploads)
