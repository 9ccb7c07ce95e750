"""cmp.animate: timelines, forward splatting invariants, writers, and the `animate` CLI."""
from __future__ import annotations

import math

import av
import numpy as np
import pytest
from PIL import Image

from cmp import animate
from cmp.animate import AnimationError, render_frames, timeline, write_gif, write_mp4, write_video


def _image(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _uniform(h, w, dx, dy):
    f = np.zeros((h, w, 2), np.float32)
    f[..., 0], f[..., 1] = dx, dy
    return f


# -- timing ------------------------------------------------------------------

def test_timeline_once_runs_from_start_to_end():
    t = timeline(5, "linear", "once")
    assert t[0] == 0 and t[-1] == 1 and np.all(np.diff(t) > 0)


def test_timeline_pingpong_goes_out_and_back_without_repeating_the_start():
    t = timeline(8, "linear", "pingpong")
    assert t[0] == 0 and t.max() == 1 and t[4] == 1
    assert np.allclose(t[1:4], t[7:4:-1])  # symmetric around the turn
    assert t[-1] > 0  # the next cycle's first frame supplies 0


def test_timeline_loop_is_a_phase_that_excludes_the_end():
    t = timeline(4, "linear", "loop")
    assert np.allclose(t, [0, 0.25, 0.5, 0.75])


def test_ease_starts_and_ends_slowly():
    lin, eas = timeline(9, "linear", "once"), timeline(9, "ease", "once")
    assert eas[0] == 0 and math.isclose(eas[-1], 1.0)
    assert eas[1] < lin[1] and eas[-2] > lin[-2]
    assert math.isclose(eas[4], 0.5)


@pytest.mark.parametrize("kw, word", [
    (dict(frames=1), "frames"), (dict(frames=97), "frames"), (dict(frames=2.5), "frames"),
    (dict(fps=0), "fps"), (dict(fps=61), "fps"), (dict(strength=-0.1), "strength"),
    (dict(strength=float("nan")), "strength"), (dict(timing="fast"), "timing"), (dict(loop="bounce"), "loop"),
])
def test_settings_out_of_range_give_one_line_errors(kw, word):
    args = dict(frames=8, fps=12, strength=1.0, timing="linear", loop="once") | kw
    with pytest.raises(AnimationError, match=word) as ei:
        animate.check_settings(**args)
    assert "\n" not in str(ei.value)


# -- forward splatting -------------------------------------------------------------

@pytest.mark.parametrize("loop", animate.LOOPS)
def test_zero_flow_keeps_every_frame_identical(loop):
    img = _image()
    frames = render_frames(img, np.zeros(img.shape[:2] + (2,), np.float32), 6, loop=loop, timing="ease")
    assert frames.shape == (6,) + img.shape and frames.dtype == np.uint8
    assert np.array_equal(frames, np.broadcast_to(img, frames.shape))


def test_integer_translation_moves_content_exactly_and_fills_the_uncovered_strip():
    img = _image()
    frames = render_frames(img, _uniform(24, 32, 3, 2), 2, loop="once")
    assert np.array_equal(frames[0], img)
    assert np.array_equal(frames[1][2:, 3:], img[:-2, :-3])
    strip = frames[1][:2].astype(int)  # nothing lands here: filled from neighbours, no black gap
    assert strip.min() >= img.min() and strip.max() <= img.max() and strip.mean() > 20


def test_strength_scales_the_motion():
    img = _image()
    half = render_frames(img, _uniform(24, 32, 1, 1), 2, strength=2.0)
    full = render_frames(img, _uniform(24, 32, 2, 2), 2)
    assert np.array_equal(half, full)
    still = render_frames(img, _uniform(24, 32, 5, 0), 3, strength=0.0)
    assert np.array_equal(still[-1], img)


def test_moving_object_stays_in_front_and_its_old_place_shows_background():
    h, w = 32, 48
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (0, 0, 200)          # static blue background
    img[:, 24:30] = (0, 200, 0)     # static green stripe in the object's path
    img[10:20, 8:18] = (220, 0, 0)  # red square that moves right by 16 px
    flow = np.zeros((h, w, 2), np.float32)
    flow[10:20, 8:18, 0] = 16
    last = render_frames(img, flow, 2)[-1].astype(int)
    target = last[11:19, 25:33]  # the square's new place, over the green stripe
    assert np.all(target[..., 0] > 180) and np.all(target[..., 1] < 40)
    # where the square was is disoccluded: it must look like the background, not like red
    hole = last[12:18, 10:16]
    assert np.all(hole[..., 0] < 80) and np.all(hole[..., 2] > 120)
    # untouched background stays exact
    assert np.array_equal(last[0:8], img[0:8])


def test_uncovered_area_is_filled_from_the_background_not_the_mover():
    img = np.zeros((32, 48, 3), np.uint8)
    img[...] = (0, 0, 200)
    img[8:24, 8:24] = (220, 0, 0)  # red block moving right by 6 px leaves a strip uncovered
    flow = np.zeros((32, 48, 2), np.float32)
    flow[8:24, 8:24, 0] = 6
    last = render_frames(img, flow, 2)[-1].astype(int)
    strip = last[10:22, 8:14]  # bordered by blue on the left, red on the right
    assert strip[..., 2].mean() > 2 * strip[..., 0].mean()
    assert np.all(last[8:24, 14:30, 0] > 200)  # the block itself arrived intact


def test_forward_warp_moves_content_instead_of_stretching_it():
    img = np.zeros((16, 40, 3), np.uint8)
    img[:, 10:14] = 255  # a 4-px white bar
    flow = np.zeros((16, 40, 2), np.float32)
    flow[:, :20, 0] = 8  # the left half, bar included, moves right
    last = render_frames(img, flow, 2)[-1]
    cols = np.where(last[8, :, 0] > 128)[0]
    assert cols.tolist() == [18, 19, 20, 21]  # same width, new place


def test_loop_mode_cycles_back_to_the_first_frame():
    img = _image(32, 32, seed=3)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    flow = np.stack([np.sin(yy / 5) * 3, np.cos(xx / 5) * 3], -1).astype(np.float32)
    frames = render_frames(img, flow, 8, loop="loop").astype(int)
    assert np.array_equal(frames[0], img)
    err = [np.abs(f - img).mean() for f in frames]
    assert err[-1] < err[4]  # the end approaches the start again: the clip loops seamlessly


def test_max_side_downscales_image_and_flow_together():
    img = _image(40, 64)
    frames = render_frames(img, _uniform(40, 64, 8, 0), 2, max_side=32)
    assert frames.shape == (2, 20, 32, 3)
    # 8 px at full size = 4 px at half size
    small = frames[0]
    assert np.array_equal(frames[1][:, 4:], small[:, :-4])


def test_progress_reports_every_frame_once():
    calls = []
    render_frames(_image(), _uniform(24, 32, 1, 0), 9, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (9, 9) and all(t == 9 for _, t in calls)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})


@pytest.mark.parametrize("image, flow, word", [
    (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 2), np.float32), "RGB"),
    (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.float32), "RGB"),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 2), np.float32), "does not match"),
    (np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 2), np.nan, np.float32), "NaN"),
])
def test_bad_inputs_are_refused(image, flow, word):
    with pytest.raises(AnimationError, match=word):
        render_frames(image, flow, 2)


def test_benchmark_reports_its_settings():
    r = animate.benchmark(side=24, frames=3, repeats=1)
    assert r["side"] == 24 and r["frames"] == 3 and r["seconds"] > 0 and r["fps"] > 0


# -- writers -------------------------------------------------------------------

def _clip(t=6, h=53, w=75):
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., : w // 2, 0] = 230  # red left half
    frames[..., w // 2:, 2] = 230   # blue right half
    for i in range(t):
        frames[i, :, i * 4:i * 4 + 4, 1] = 255  # a moving green bar
    return frames


def test_mp4_is_h264_yuv420p_with_even_size_and_right_colours(tmp_path):
    frames = _clip()
    path = write_mp4(tmp_path / "c.mp4", frames, fps=12)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert (s.width, s.height) == (76, 54)
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == len(frames)
    first = decoded[0][:53, :75].astype(int)
    assert first[26, 10, 0] > 180 and first[26, 10, 2] < 60   # red stays red
    assert first[26, 60, 2] > 180 and first[26, 60, 0] < 60   # blue stays blue


def test_gif_has_all_frames_and_loops_unless_once(tmp_path):
    frames = _clip()
    looped = Image.open(write_gif(tmp_path / "a.gif", frames, fps=10))
    assert looped.n_frames == len(frames) and looped.size == (75, 53)
    assert looped.info.get("loop") == 0 and looped.info["duration"] == 100
    once = Image.open(write_video(tmp_path / "b.gif", frames, fps=10, loop="once"))
    assert "loop" not in once.info


def test_writers_refuse_bad_requests(tmp_path):
    with pytest.raises(AnimationError, match=".mp4 or .gif"):
        write_video(tmp_path / "x.avi", _clip(), 10)
    with pytest.raises(AnimationError, match="fps"):
        write_mp4(tmp_path / "x.mp4", _clip(), 0)
    with pytest.raises(AnimationError, match="frames"):
        write_gif(tmp_path / "x.gif", np.zeros((2, 4, 4), np.uint8), 10)


# -- CLI -------------------------------------------------------------------------

def _cli(*argv):
    from cmp.cli import main
    return main(["animate", *map(str, argv)])


def test_cli_writes_a_playable_mp4_and_a_gif(tmp_path, tiny_checkpoint, sample_images, capsys):
    out = tmp_path / "out.mp4"
    rc = _cli("--image", sample_images["odd"], "--arrow", "30,20,6,0", "--pin", "5,5", "--frames", 4,
              "--fps", 8, "--loop", "pingpong", "--timing", "ease", "--checkpoint", tiny_checkpoint,
              "--device", "cpu", "--precision", "fp32", "--out", out)
    assert rc == 0 and "wrote" in capsys.readouterr().out
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and (s.width, s.height) == (76, 54) and s.frames == 4
    gif = tmp_path / "out.gif"
    assert _cli("--image", sample_images["odd"], "--arrow", "30,20,6,0", "--frames", 3, "--checkpoint",
                tiny_checkpoint, "--device", "cpu", "--out", gif) == 0
    assert Image.open(gif).n_frames == 3


@pytest.mark.parametrize("args, word", [
    (["--arrow", "500,20,6,0"], "outside"),
    (["--arrow", "30,20,6,0", "--frames", "200"], "frames"),
    (["--arrow", "30,20,6,0", "--out-ext", ".avi"], ".mp4 or .gif"),
    ([], "--arrow"),
])
def test_cli_user_errors_are_one_line(args, word, tmp_path, tiny_checkpoint, sample_images, capsys):
    ext = ".mp4"
    if "--out-ext" in args:
        ext = args[args.index("--out-ext") + 1]
        args = args[:args.index("--out-ext")]
    rc = _cli("--image", sample_images["odd"], *args, "--checkpoint", tiny_checkpoint, "--device", "cpu",
              "--out", tmp_path / f"o{ext}")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and word in err and "\n" not in err


def test_cli_bad_arrow_syntax_and_missing_image(tmp_path, sample_images, capsys):
    with pytest.raises(SystemExit) as ei:
        _cli("--image", sample_images["odd"], "--arrow", "1,2,3", "--out", tmp_path / "o.mp4")
    assert ei.value.code == 2 and "X,Y,DX,DY" in capsys.readouterr().err
    assert _cli("--image", tmp_path / "none.png", "--arrow", "1,2,3,4", "--out", tmp_path / "o.mp4") == 2
    assert "no image file" in capsys.readouterr().err
