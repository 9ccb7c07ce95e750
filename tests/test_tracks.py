"""Kinematic video: paths (tracks), seamless Eulerian loops, motion regions, recipes, frames as files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cmp import animate
from cmp.guidance import GuidanceError
from cmp.recipe import Recipe, parse_recipe, read_frames, render, write_frames, zip_frames
from cmp.tracks import (Guidance, add_click, add_path_click, catmull_rom, finish_path, guidance_json,
                        guidance_sets, new_state, parse_motion, track_positions, undo)
from motion_helpers import RigidPropagator, red_centroid, textured_disc

L_TRACK = [[30, 30], [90, 30], [90, 70]]


def _diff(a, b) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# -- path maths ---------------------------------------------------------------------

def test_catmull_rom_passes_through_keyframes_and_two_points_are_a_straight_line():
    keys = np.array([[0, 0], [10, 0], [10, 10], [30, 5]], float)
    times = np.array([0, 0.2, 0.7, 1.0])
    assert np.allclose(catmull_rom(keys, times, times), keys)
    line = catmull_rom(keys[:2], np.array([0.0, 1.0]), np.linspace(0, 1, 11))
    assert np.allclose(line, np.stack([np.linspace(0, 10, 11), np.zeros(11)], 1))  # constant speed
    # evenly spread keyframes unless times are given
    assert np.allclose(track_positions(L_TRACK, [0, 0.5, 1]), L_TRACK)
    timed = [[30, 30, 0], [90, 30, 0.25], [90, 70, 1]]
    assert np.allclose(track_positions(timed, [0.25]), [[90, 30]])


def test_per_frame_guidance_is_each_tracks_displacement_plus_scaled_arrows_and_pins():
    g = Guidance([[5, 5, 10, 0], [1, 1, 0, 0]], [L_TRACK])
    sets = guidance_sets(g, [0.0, 0.5, 1.0])
    assert [s.shape for s in sets] == [(3, 4)] * 3
    assert np.allclose(sets[1], [[5, 5, 5, 0], [1, 1, 0, 0], [30, 30, 60, 0]])
    assert np.allclose(sets[2][2], [30, 30, 60, 40])


# -- the acceptance test: an L-shaped path carries a disc through its keyframes --------

def _l_recipe(**settings):
    return Recipe((128, 96), Guidance([], [L_TRACK]), None,
                  {"frames": 21, "loop": "once", "timing": "linear", **settings})


def test_l_track_carries_the_disc_through_every_keyframe():
    img, disc = textured_disc()
    frames = render(RigidPropagator(disc), img, _l_recipe())
    assert frames.shape == (21, 96, 128, 3)
    for i, key in zip((0, 10, 20), L_TRACK):  # keyframe times 0, 0.5, 1
        assert np.abs(red_centroid(frames[i]) - key).max() <= 1.0, (i, red_centroid(frames[i]), key)
    # in between, the disc follows the smoothed path, not the straight chord from start to end
    mid = red_centroid(frames[15])
    assert np.abs(mid - track_positions(L_TRACK, [0.75])[0]).max() <= 1.5
    assert abs(mid[0] - 90) < 8 and mid[1] > 35


def test_l_track_with_the_trained_embedded_model():
    from cmp.engine import Engine

    img, _ = textured_disc()
    frames = render(Engine.from_checkpoint("default", device="cpu", precision="fp32"), img, _l_recipe())
    for i, key in zip((0, 10, 20), L_TRACK):
        assert np.abs(red_centroid(frames[i]) - key).max() <= 4.0, (i, red_centroid(frames[i]), key)


def test_one_propagate_per_frame_on_one_encoding():
    img, disc = textured_disc()

    class Counting(RigidPropagator):
        encodes = sets = 0

        def set_image(self, rgb):
            Counting.encodes += 1
            return super().set_image(rgb)

        def propagate_batch(self, handle, guidance_sets, **kw):
            Counting.sets += len(guidance_sets)
            return super().propagate_batch(handle, guidance_sets, **kw)

    render(Counting(disc), img, _l_recipe(frames=12))
    assert (Counting.encodes, Counting.sets) == (1, 12)


# -- seamless Eulerian loops -----------------------------------------------------------

def _texture(h=64, w=80, seed=1):
    import cv2
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 2)
    lo, hi = img.min(), img.max()
    return ((img.astype(float) - lo) * 255 / (hi - lo)).astype(np.uint8)


def test_seamless_loop_has_no_seam_but_moves():
    img = _texture()
    flow = np.zeros(img.shape[:2] + (2,), np.float32)
    flow[..., 0], flow[..., 1] = 10.0, 4.0
    n = 16
    frames = animate.render_frames(img, flow, n, loop="seamless")
    assert _diff(frames[0], img) < 1.0  # frame 0 is the image
    consecutive = np.mean([_diff(frames[i], frames[i + 1]) for i in range(n - 1)])
    wrap = _diff(frames[-1], frames[0])
    middle = _diff(frames[n // 2], frames[0])
    assert wrap < 1.6 * consecutive, (wrap, consecutive)
    assert middle > 3 * consecutive, (middle, consecutive)


def test_streamlines_of_a_rotation_stay_on_circles():
    h = w = 65
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c = 32.0
    omega = np.pi / 2  # a quarter turn per cycle
    vel = np.stack([-(yy - c), xx - c], -1) * omega
    n = 32
    disp = animate.integrate_streamlines(vel / n, n).numpy()
    r0 = np.hypot(xx - c, yy - c)
    ring = (r0 > 6) & (r0 < 26)
    euler = np.hypot(xx + disp[-1, ..., 0] - c, yy + disp[-1, ..., 1] - c)
    linear = np.hypot(xx + vel[..., 0] - c, yy + vel[..., 1] - c)  # t x flow at t = 1
    assert np.abs(euler[ring] / r0[ring] - 1).max() < 0.03
    assert np.abs(linear[ring] / r0[ring] - 1).min() > 0.5
    # and a quarter turn really happened: (c + r, c) ends near (c, c + r)
    assert np.allclose(disp[-1, 32, 52], [-20, 20], atol=1.0)


# -- regions ---------------------------------------------------------------------------

@pytest.mark.parametrize("loop", ["once", "pingpong", "loop", "seamless"])
def test_pixels_outside_the_region_are_identical_in_every_frame(loop):
    img = _texture()
    flow = np.zeros(img.shape[:2] + (2,), np.float32)
    flow[..., 0] = 9.0  # everything would move
    region = np.zeros(img.shape[:2], bool)
    region[10:40, 20:60] = True
    frames = animate.render_frames(img, flow, 8, loop=loop, region=region)
    assert np.array_equal(frames[:, ~region], np.broadcast_to(img[~region], frames[:, ~region].shape))
    assert max(_diff(f[region], img[region]) for f in frames) > 5  # inside, it moves


def test_region_with_tracks_and_resized_render():
    img, disc = textured_disc()
    region = np.zeros(disc.shape, bool)
    region[:, :70] = True
    rec = Recipe((128, 96), Guidance([], [L_TRACK]), region, {"frames": 9, "loop": "once", "max_side": 64})
    frames = render(RigidPropagator(disc), img, rec)
    small = animate.fit_image(img, 64)
    r = animate.fit_region(region, small.shape[:2])
    assert frames.shape[1:3] == small.shape[:2]
    assert all(np.array_equal(f[~r], small[~r]) for f in frames)


# -- wire format ----------------------------------------------------------------------

def test_guidance_json_with_tracks_round_trips():
    g = parse_motion(json.dumps({"arrows": [[1, 2, 3, 4]], "pins": [[5, 6]], "tracks": [L_TRACK]}))
    assert g.points == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert g.tracks == [[[30.0, 30.0], [90.0, 30.0], [90.0, 70.0]]]
    again = parse_motion(guidance_json(g.points, g.tracks))
    assert again.points == g.points and again.tracks == g.tracks
    assert parse_motion('{"tracks": [[[0, 0, 0], [5, 5, 0.3], [9, 9, 1]]]}').tracks[0][1] == [5, 5, 0.3]


@pytest.mark.parametrize("text, words", [
    ('{"tracks": [[[1, 2]]]}', "at least two keyframes"),
    ('{"tracks": [[[1, 2], [3]]]}', "keyframes"),
    ('{"tracks": [[[1, 2, 0], [3, 4, 0.5]]]}', "from 0 to 1"),
    ('{"tracks": 3}', "'tracks' must be a list"),
    ('{"tracks": [' + ",".join(["[[1, 1], [2, 2]]"] * 65) + "]}", "limit is 64"),
    ('{"tracks": [[' + ",".join(["[1, 1]"] * 33) + "]]}", "limit is 32"),
    ('{"region": {"size": [2, 2], "counts": [1]}}', "region must be COCO RLE"),
])
def test_bad_tracks_are_one_line_errors(text, words):
    with pytest.raises(GuidanceError, match=words) as ei:
        parse_motion(text)
    assert "\n" not in str(ei.value)


def test_path_clicks_draw_a_track_and_finish_three_ways():
    st = new_state()
    for x, y in L_TRACK:
        st = add_path_click(st, x, y)
    assert st["path"] == L_TRACK and not st.get("tracks")
    done = add_path_click(st, 90.5, 70.5)  # the last point again finishes
    assert done["tracks"] == [L_TRACK] and done["path"] is None
    assert finish_path(st)["tracks"] == [L_TRACK]  # the Finish button
    arrow = finish_path(add_path_click(add_path_click(new_state(), 1, 2), 11, 2))
    assert arrow["points"] == [[1, 2, 10, 0]] and not arrow.get("tracks")  # two points = an arrow
    st = add_click(add_click(done, 5, 5, pin_mode=True), 40, 40)  # a pin, then an arrow's pending start
    st = undo(st)  # drops the pending start
    assert st["points"] == [[5, 5, 0.0, 0.0]] and st["tracks"] == [L_TRACK]
    st = undo(st)  # the pin, added last
    assert st["points"] == [] and st["tracks"] == [L_TRACK]
    assert undo(st)["tracks"] == []
    drawing = add_path_click(add_path_click(done, 1, 1), 20, 20)
    assert undo(drawing)["path"] is None and undo(drawing)["tracks"] == [L_TRACK]  # the unfinished path first


# -- recipes and frames as files ------------------------------------------------------------

def test_recipe_round_trips_through_json():
    region = np.zeros((96, 128), bool)
    region[5:50, 10:100] = True
    rec = Recipe((128, 96), Guidance([[10, 10, 0, 0], [60, 60, 5, -3]], [L_TRACK]), region,
                 {"frames": 12, "loop": "seamless", "strength": 1.5}, "cmp-slim-affinity")
    back = parse_recipe(rec.to_json())
    assert back.to_dict() == rec.to_dict()
    assert np.array_equal(back.region, region) and back.settings["loop"] == "seamless"
    for bad, words in (('{"cmp_recipe": 2}', "not a CMP Studio recipe"),
                       (json.dumps({**rec.to_dict(), "image_size": [128]}), "image_size"),
                       (json.dumps({**rec.to_dict(), "settings": {"frames": 500}}), "frames"),
                       (json.dumps({**rec.to_dict(), "tracks": [[[500, 1], [2, 2]]]}), "outside")):
        with pytest.raises(ValueError, match=words):  # RecipeError, GuidanceError or AnimationError
            parse_recipe(bad)


def test_recipe_for_another_image_size_is_refused():
    img, disc = textured_disc(size=(90, 128))
    with pytest.raises(GuidanceError, match="128x96 image; this one is 128x90"):
        render(RigidPropagator(disc), img, _l_recipe())


def test_frames_as_lossless_pngs_in_a_folder_and_a_zip(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 7, 9, 3), dtype=np.uint8)
    paths = write_frames(tmp_path / "new" / "dir", frames)
    assert [p.name for p in paths] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    assert np.array_equal(read_frames(tmp_path / "new" / "dir"), frames)
    assert np.array_equal(read_frames(zip_frames(tmp_path / "f.zip", frames)), frames)


def test_pingpong_path_predicts_each_time_once_and_plays_back():
    img, disc = textured_disc()
    seen = []

    class Recording(RigidPropagator):
        def propagate_batch(self, handle, guidance_sets, **kw):
            seen.extend(guidance_sets)
            return super().propagate_batch(handle, guidance_sets, **kw)

    frames = render(Recording(disc), img, _l_recipe(frames=8, loop="pingpong"))
    assert len(frames) == 8 and len(seen) == 5  # times 0, .25, .5, .75, 1 then back
    for i in range(1, 4):
        assert np.array_equal(frames[i], frames[8 - i])
