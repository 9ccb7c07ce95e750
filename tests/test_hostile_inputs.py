"""Hostile inputs: every bad file, guidance or setting gets a one-line message, never a crash.

Three levels: the library (``cmp.images.load_image``, guidance, engine, segment),
the pages' pure state helpers and UI handlers (a bad click keeps what the user
built), and the public endpoints through ``gradio_client`` against the app
launched once by conftest (``launched_app`` / ``app_url``). After every refused
request a valid one must still be served.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_MAX_SIDE
from PIL import Image

from cmp.engine import image_key
from cmp.geometry import ImageSizeError
from cmp.guidance import MAX_POINTS, MAX_VECTOR, GuidanceError, as_points, validate_points
from cmp.images import MAX_PIXELS, ImageError, load_image
from cmp.segment import segment
from demos import motion
from demos import segment as segment_page
from demos.common import MAX_JSON_CHARS

RED = (255, 0, 0)


# -- building hostile files -------------------------------------------------------

def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all black, compressed to a tiny file.

    Written chunk by chunk with zlib, so the test never holds the decoded pixels.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0 + one bit per pixel
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB (compresses well, survives JPEG)."""
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, h // 8), max(2, w // 8), 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def upright_with_square(w: int = 40, h: int = 120) -> np.ndarray:
    """A tall grey picture with a red square near its top-left corner (x 4..15, y 4..15)."""
    rgb = np.full((h, w, 3), 128, np.uint8)
    rgb[4:16, 4:16] = RED
    return rgb


def exif_rotated_jpeg(upright: np.ndarray) -> bytes:
    """JPEG whose stored pixels are rotated, with EXIF orientation 6 saying how to turn them upright."""
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"; exif_transpose applies ROTATE_270
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    rgb = texture(40, 50)
    png, jpg = encode(Image.fromarray(rgb), "PNG"), encode(Image.fromarray(rgb), "JPEG")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("readme.txt", "not a picture")
    corrupt = bytearray(png)
    corrupt[len(png) // 2: len(png) // 2 + 40] = b"\xff" * 40  # damage the compressed pixel data
    data = {
        "text.png": b"hello, this is not a picture\n" * 4,
        "archive.zip": zbuf.getvalue(),
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) // 2],
        "corrupt.png": bytes(corrupt),
        "bomb.png": png_bomb(30000, 30000),    # 900 MP: Pillow itself refuses (over twice its limit)
        "bomb100.png": png_bomb(10000, 10000),  # 100 MP: Pillow only warns; our limit must refuse
        "1x1.png": encode(Image.new("RGB", (1, 1), RED), "PNG"),
        "7x300.png": encode(Image.fromarray(texture(300, 7)), "PNG"),
    }
    paths = {}
    for name, blob in data.items():
        (d / name).write_bytes(blob)
        paths[name] = str(d / name)
    return paths


@pytest.fixture(scope="module")
def good_files(tmp_path_factory) -> dict[str, str]:
    """Unusual but valid images, each with the RGB our decoder must produce from it."""
    d = tmp_path_factory.mktemp("formats")
    rgb = texture(48, 64, seed=3)
    grey = rgb[..., 1]
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255  # left half fully transparent
    files = {
        "grey.png": Image.fromarray(grey),
        "rgba.png": Image.fromarray(np.dstack([rgb, alpha])),
        "16bit.png": Image.fromarray(grey.astype(np.uint16) * 257),
        "palette.png": Image.fromarray(rgb).quantize(256),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "exif.jpg": None,
        "large.jpg": Image.fromarray(texture(1800, 2400, seed=5)),
    }
    paths = {}
    for name, im in files.items():
        p = d / name
        if name == "exif.jpg":
            p.write_bytes(exif_rotated_jpeg(upright_with_square()))
        else:
            im.save(p, quality=92) if name.endswith(".jpg") else im.save(p)
        paths[name] = str(p)
    return paths


def one_line(msg: str, *words: str) -> None:
    text = str(msg).strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    assert "upstream Gradio app" not in text, f"a generic error instead of our message: {text}"
    for w in words:
        assert w.lower() in text.lower(), f"{w!r} not in {text!r}"


# -- library: images ------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("text.png", ["not an image"]),
    ("archive.zip", ["not an image"]),
    ("empty.png", ["empty"]),
    ("truncated.png", ["damaged or truncated"]),
    ("truncated.jpg", ["damaged or truncated"]),
    ("corrupt.png", ["damaged"]),
    ("bomb.png", ["too large", f"{MAX_PIXELS // 1_000_000} megapixels"]),
    ("bomb100.png", ["too large"]),
])
def test_load_image_refuses_bad_files_in_one_line(bad_files, name, words):
    path = Path(bad_files[name])
    for src in (path, path.read_bytes()):
        with pytest.raises(ImageError) as ei:
            load_image(src)
        one_line(ei.value, *(["not an image"] if src == b"" else words))  # empty bytes: no name to mention


def test_the_bomb_is_a_few_kilobytes_that_would_decode_to_gigabytes(bad_files):
    assert Path(bad_files["bomb.png"]).stat().st_size < 200_000
    with Image.open(bad_files["bomb100.png"]) as im:  # the header is honest: 100 MP
        assert im.size == (10000, 10000) and im.width * im.height > MAX_PIXELS


def test_unusual_formats_decode_to_the_right_rgb(good_files):
    rgb = texture(48, 64, seed=3)
    grey = np.repeat(rgb[..., 1:2], 3, axis=2)
    out = {name: load_image(path)[0] for name, path in good_files.items() if name not in ("exif.jpg", "large.jpg")}
    for a in out.values():
        assert a.dtype == np.uint8 and a.shape == (48, 64, 3)
    np.testing.assert_array_equal(out["grey.png"], grey)
    np.testing.assert_array_equal(out["16bit.png"], grey)  # scaled from 16 bit, not clipped to white
    assert np.all(out["rgba.png"][:, :32] == 255)  # transparent: composited on white
    np.testing.assert_array_equal(out["rgba.png"][:, 32:], rgb[:, 32:])
    assert np.abs(out["palette.png"].astype(int) - rgb).mean() < 12
    assert np.abs(out["cmyk.jpg"].astype(int) - rgb).mean() < 12


def test_exif_rotated_jpeg_is_upright_and_the_object_is_where_the_user_sees_it(good_files):
    rgb, note = load_image(good_files["exif.jpg"])
    assert rgb.shape == (120, 40, 3) and note is None
    square = rgb[6:14, 6:14].astype(int)
    assert np.all(np.abs(square - RED) < 40), "the red square must be at the top-left of the upright image"
    assert np.all(np.abs(rgb[100:110, 20:30].astype(int) - 128) < 40)


def test_very_large_photo_is_downscaled_with_a_note(good_files):
    rgb, note = load_image(good_files["large.jpg"], max_side=500)
    assert rgb.shape == (375, 500, 3)
    one_line(note, "downscaled", "2400x1800", "500x375")
    rgb, note = load_image(good_files["large.jpg"], max_side=2400)  # within the limit: untouched
    assert rgb.shape == (1800, 2400, 3) and note is None


# -- library: sizes and guidance -------------------------------------------------------

@pytest.mark.parametrize("h, w, words", [(1, 1, ["at least 8 px"]), (300, 7, ["at least 8 px"]),
                                         (7, 300, ["at least 8 px"]), (2000, 9, ["aspect ratio"])])
def test_unusable_sizes_are_an_image_size_error(tiny_engine, h, w, words):
    rgb = texture(h, w)
    calls = [lambda: tiny_engine.set_image(rgb), lambda: segment(tiny_engine, rgb, [[0, 0]], zoom=False)]
    if min(h, w) < 8:  # (a zoom crop of a merely thin image can be usable)
        calls.append(lambda: segment(tiny_engine, rgb, [[0, 0]], zoom=True))
    for call in calls:
        with pytest.raises(ImageSizeError) as ei:
            call()
        one_line(ei.value, f"{w}x{h}", *words)  # names the image, never the zoom crop


@pytest.mark.parametrize("h, w", [(480, 60), (8, 64), (64, 8)])
def test_thin_but_usable_images_work(tiny_engine, h, w):
    rgb = texture(h, w)
    flow = tiny_engine.flow_for(rgb, arrows=[[w / 2, h / 2, 3.0, -2.0]])
    assert flow.shape == (h, w, 2) and np.all(np.isfinite(flow))
    res = segment(tiny_engine, rgb, [[w / 2, h / 2]])
    assert res.mask.shape == (h, w)


@pytest.mark.parametrize("points, words", [
    ([[np.nan, 5, 1, 0]], ["finite"]),
    ([[5, 5, np.inf, 0]], ["finite"]),
    ([[5, 5, -np.inf, 0]], ["finite"]),
    ([[5, 5, 2 * MAX_VECTOR, 0]], ["larger than"]),
    ([[1e308, 5, 1, 0]], ["outside", "64x48"]),
    ([[-1, 5, 1, 0]], ["outside"]),
    ([[5, 48, 1, 0]], ["outside"]),
    ([[5, 5, 1, 0]] * (MAX_POINTS + 1), [f"limit is {MAX_POINTS}"]),
])
def test_bad_guidance_is_refused(points, words):
    with pytest.raises(GuidanceError) as ei:
        validate_points(np.array(points, dtype=np.float64), 48, 64)
    one_line(ei.value, *words)


def test_edge_points_zero_length_arrows_and_the_point_limit_are_fine(tiny_engine):
    rgb = texture(48, 64)
    h = tiny_engine.set_image(rgb)
    edge = [[-0.5, -0.5, 1, 1], [63.5, 47.5, -1, -1]]
    assert np.all(np.isfinite(tiny_engine.propagate(h, arrows=edge)))
    zero = tiny_engine.propagate(h, arrows=[[10, 10, 0, 0]])
    np.testing.assert_array_equal(zero, tiny_engine.propagate(h, pins=[[10, 10]]))  # a zero arrow is a pin
    full = [[float(i % 64), float(i // 64), 1.0, 0.0] for i in range(MAX_POINTS)]
    assert tiny_engine.propagate(h, arrows=full).shape == (48, 64, 2)
    with pytest.raises(GuidanceError, match="4 numbers"):
        as_points(arrows=[[1, 2, 3]])


# -- pages: parsing and state helpers ---------------------------------------------------

@pytest.mark.parametrize("parse", [motion.parse_guidance, segment_page.parse_points], ids=["guidance", "points"])
@pytest.mark.parametrize("text, words", [
    ("{arrows: [", ["not valid JSON"]),
    ("[" * 5_000 + "]" * 5_000, ["nested too deeply"]),
    (" " * (MAX_JSON_CHARS + 1) + "[]", ["too long", "limit"]),
])
def test_malformed_json_is_one_line(parse, text, words):
    with pytest.raises(GuidanceError) as ei:
        parse(text)
    one_line(ei.value, *words)


@pytest.mark.parametrize("text, words", [
    ('{"arrows": 5}', ["'arrows' must be a list"]),
    ('{"arrows": [[1, 2, 3, 4]], "pins": 7}', ["'pins' must be a list"]),
    ('{"arrows": "abc"}', ["'arrows' must be a list"]),
    ("[1, 2, 3, 4]", ["4 numbers"]),
    ('"x"', ["must be an object"]),
    (json.dumps([[1, 1, 1, 0]] * (MAX_POINTS + 1)), [f"limit is {MAX_POINTS}"]),
])
def test_guidance_json_of_the_wrong_shape(text, words):
    with pytest.raises(GuidanceError) as ei:
        motion.parse_guidance(text)
    one_line(ei.value, *words)


def test_a_refused_click_keeps_the_motion_state():
    st = motion.new_state()
    for i in range(MAX_POINTS):
        st = motion.add_click(st, i, i, pin_mode=True)
    st = {**st, "pending": None}
    before = json.loads(json.dumps(st))
    with pytest.raises(GuidanceError) as ei:
        motion.add_click(st, 1, 1)
    one_line(ei.value, f"at most {MAX_POINTS}")
    assert st == before  # nothing lost, nothing half-added
    assert len(motion.undo(st)["points"]) == MAX_POINTS - 1  # and the user can go on


def test_a_refused_click_keeps_the_segment_state():
    st = segment_page.new_state((40, 50))
    for i in range(MAX_POINTS):
        st = segment_page.add_click(st, i % 50, i % 40, i % 3 != 0)
    before = json.loads(json.dumps(st))
    with pytest.raises(GuidanceError):
        segment_page.add_click(st, 1, 1, True)
    with pytest.raises(GuidanceError, match="nothing to keep"):
        segment_page.finish_object(st)  # no mask yet
    assert st == before
    assert len(segment_page.undo(st)["clicks"]) == MAX_POINTS - 1


# -- pages: UI handlers (select events cannot go through gradio_client) ---------------------

def handler(demo, module: str, name: str):
    for f in demo.fns.values():
        if f.fn is not None and f.fn.__module__ == module and f.fn.__qualname__.endswith(f".{name}"):
            return f.fn
    raise LookupError(f"{module}.{name}")


def click(x, y):
    import gradio as gr
    return gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})


def test_clicks_before_any_image_warn_and_change_nothing(launched_app):
    import gradio as gr
    demo, _ = launched_app
    st = motion.new_state()
    with pytest.warns(UserWarning, match="Upload an image"):  # outside a request gr.Warning is a warning
        out = handler(demo, "demos.motion", "on_click")(None, st, False, click(5, 5))
    assert out == gr.skip() and st == motion.new_state()
    seg_st = segment_page.new_state()
    with pytest.warns(UserWarning, match="Upload an image"):
        on_click = handler(demo, "demos.segment", "on_click")
        out = on_click(None, seg_st, segment_page.POSITIVE, 0.5, True, True, click(5, 5))
    assert out == gr.skip() and seg_st == segment_page.new_state()


def test_a_click_past_the_limit_is_a_one_line_error_and_the_state_survives(launched_app, sample_images):
    import gradio as gr
    demo, _ = launched_app
    st = {"points": [[float(i), 5.0, 0.0, 0.0] for i in range(MAX_POINTS)], "pending": None}
    before = json.loads(json.dumps(st))
    with pytest.raises(gr.Error) as ei:  # on error Gradio leaves the outputs, so the state, as they were
        handler(demo, "demos.motion", "on_click")(sample_images["photo"], st, False, click(30, 30))
    one_line(ei.value.message, f"at most {MAX_POINTS}")
    assert st == before
    with pytest.raises(gr.Error) as ei:
        handler(demo, "demos.motion", "on_apply")(sample_images["photo"], '{"arrows": [[1, 2, NaN, 0]]}')
    one_line(ei.value.message, "finite")


def test_every_state_has_a_time_to_live(launched_app):
    import gradio as gr

    from demos.common import STATE_TTL_S
    demo, _ = launched_app
    states = [b for b in demo.blocks.values() if isinstance(b, gr.State)]
    assert states and all(s.time_to_live == STATE_TTL_S for s in states)


# -- through the public API ----------------------------------------------------------------

@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def still_serves(client, sample_images):
    """Call after a refused request: a valid one right after must work."""
    from gradio_client import handle_file

    def check():
        png, flo = client.predict(handle_file(sample_images["photo"]), "[[60, 40, 5, 0]]", api_name="/motion_flow")
        with Image.open(png) as im:
            assert im.size == (120, 90)
    return check


def refused(client, *args, api_name: str) -> str:
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as ei:
        client.predict(*args, api_name=api_name)
    return str(ei.value)


def all_endpoints(client, path, point=(0, 0)):
    """The four public endpoints on one file: {endpoint: message}."""
    from gradio_client import handle_file
    x, y = point
    f = handle_file(path)
    return {
        "motion_flow": refused(client, f, f"[[{x}, {y}, 3, 0]]", api_name="/motion_flow"),
        "motion_video": refused(client, f, f"[[{x}, {y}, 3, 0]]", 4, 8, 1.0, "linear", "once",
                                api_name="/motion_video"),
        "segment_mask": refused(client, f, json.dumps({"positive": [[x, y]]}), 0.5, True, api_name="/segment_mask"),
        "gallery_task": refused(client, f, "rotation", "normal", 0, True, "jitter", api_name="/gallery_task"),
    }


@pytest.mark.parametrize("name, pattern", [
    ("text.png", "not an image"),
    ("archive.zip", "not an image"),
    ("empty.png", "empty"),
    ("truncated.png", "damaged or truncated"),
    ("truncated.jpg", "damaged or truncated"),
    ("bomb.png", "too large to decode"),
    ("bomb100.png", "too large to decode"),
    ("1x1.png", "at least"),
    ("7x300.png", "at least"),
])
def test_bad_files_through_every_endpoint(client, still_serves, bad_files, name, pattern):
    for endpoint, msg in all_endpoints(client, bad_files[name]).items():
        one_line(msg, pattern)
    still_serves()


@pytest.mark.parametrize("name, size", [("grey.png", (64, 48)), ("rgba.png", (64, 48)), ("16bit.png", (64, 48)),
                                        ("palette.png", (64, 48)), ("cmyk.jpg", (64, 48)), ("exif.jpg", (40, 120)),
                                        ("large.jpg", (320, 240))])
def test_unusual_formats_reach_the_engine_as_our_decoder_reads_them(client, tiny_engine, good_files, name, size):
    """The server's working image is exactly cmp.images.load_image's (upright, composited, scaled)."""
    from gradio_client import handle_file
    expected, _ = load_image(good_files[name], max_side=TEST_MAX_SIDE)
    assert expected.shape[1::-1] == size
    tiny_engine.cache.clear()  # grey.png and 16bit.png hold the same picture: start from nothing
    png, _ = client.predict(handle_file(good_files[name]), "[[5, 5, 3, 0]]", api_name="/motion_flow")
    with Image.open(png) as im:
        assert im.size == size
    key = f"{tiny_engine.name}:{tiny_engine.side}:{image_key(expected)}"
    assert key in tiny_engine.cache, "the server encoded other pixels than our decoder's"


def test_exif_clicks_land_where_the_user_clicked(client, still_serves, good_files):
    """In the upright 40x120 image a point at (10, 100) exists; in the stored 120x40 pixels it would not."""
    from gradio_client import handle_file
    f = handle_file(good_files["exif.jpg"])
    _, flo = client.predict(f, "[[10, 100, 4, 0], [10, 10, 0, 0]]", api_name="/motion_flow")
    with open(flo, "rb") as fh:
        assert fh.read(4) == b"PIEH" and tuple(np.fromfile(fh, "<i4", 2)) == (40, 120)
    mask, coco = client.predict(f, json.dumps({"positive": [[10, 10]]}), 0.5, True, api_name="/segment_mask")
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (40, 120)
    with Image.open(mask) as im:
        assert im.size == (40, 120)
    one_line(refused(client, f, "[[100, 10, 4, 0]]", api_name="/motion_flow"), "outside", "40x120")
    still_serves()


BAD_GUIDANCE = [
    ("[[NaN, 5, 3, 0]]", "finite"),
    ("[[5, 5, Infinity, 0]]", "finite"),
    ("[[5, 5, 1e400, 0]]", "finite"),
    ("[[1e308, 5, 3, 0]]", "outside"),
    ("[[5, 5, 1e9, 0]]", "larger than"),
    ("[[-5, 5, 3, 0]]", "outside"),
    ("[[5, 500, 3, 0]]", "outside the 120x90 image"),
    (json.dumps([[5, 5, 1, 0]] * (MAX_POINTS + 1)), f"limit is {MAX_POINTS}"),
    ('{"arrows": [[1, 2, 3, 4]], "pins": 7}', "'pins' must be a list"),
    ('{"arrows": [[1, 2, 3, 4]', "not valid JSON"),
    ("[" * 5000, "nested too deeply"),
    ("[" * (MAX_JSON_CHARS + 1), "too long"),
]
BAD_POINTS = [
    ('{"positive": [[NaN, 5]]}', "finite"),
    ('{"positive": [[5, 1e308]]}', "outside"),
    (json.dumps({"positive": [[5, 5]] * (MAX_POINTS + 1)}), f"limit is {MAX_POINTS}"),
    ('{"positive": 5}', "must be a list"),
    ("[" * 5000, "nested too deeply"),
    ('{"negative": [[5, 5]]}', "positive"),
]
BAD_VIDEO_SETTINGS = [  # (frames, fps): Gradio's own slider bounds answer these
    ((1, 8), "minimum value 2"), ((97, 8), "maximum value 96"), ((-3, 8), "minimum"),
    ((4, 0), "minimum value 1"), ((4, 61), "maximum value 60"), ((4, 1e9), "maximum"),
]


# Each case is checked in a loop: a crash would fail the next case, and a valid request ends each test.
def test_bad_guidance_through_the_api(client, still_serves, sample_images):
    from gradio_client import handle_file
    for guidance, pattern in BAD_GUIDANCE:
        one_line(refused(client, handle_file(sample_images["photo"]), guidance, api_name="/motion_flow"), pattern)
    still_serves()


def test_bad_clicks_through_the_api(client, still_serves, sample_images):
    from gradio_client import handle_file
    for points, pattern in BAD_POINTS:
        one_line(refused(client, handle_file(sample_images["photo"]), points, 0.5, True, api_name="/segment_mask"),
                 pattern)
    still_serves()


def test_frames_and_fps_out_of_bounds(client, still_serves, sample_images):
    from gradio_client import handle_file
    for (frames, fps), pattern in BAD_VIDEO_SETTINGS:
        one_line(refused(client, handle_file(sample_images["photo"]), "[[60, 40, 5, 0]]", frames, fps, 1.0,
                         "linear", "once", api_name="/motion_video"), pattern)
    still_serves()


def test_zero_length_arrows_are_pins_through_the_api(client, sample_images):
    from gradio_client import handle_file
    png, flo = client.predict(handle_file(sample_images["photo"]), "[[60, 40, 0, 0]]", api_name="/motion_flow")
    assert png and flo
    one_line(refused(client, handle_file(sample_images["photo"]), "[[60, 40, 0, 0]]", 4, 8, 1.0, "linear",
                     "once", api_name="/motion_video"), "at least one arrow")


def raw_call(url: str, upload: str, name: str, data: list) -> tuple[str, str]:
    """POST to Gradio's REST route with a body gradio_client refuses to send (NaN, Infinity).

    ``upload`` is a local file sent first and substituted for the string "FILE" in ``data``.
    Returns (SSE event name, its data).
    """
    import httpx
    with open(upload, "rb") as fh:
        server_path = httpx.post(f"{url}gradio_api/upload", files={"files": ("x.png", fh, "image/png")}).json()[0]
    data = [{"path": server_path, "meta": {"_type": "gradio.FileData"}} if d == "FILE" else d for d in data]
    r = httpx.post(f"{url}gradio_api/call/{name}", content=json.dumps({"data": data}),
                   headers={"Content-Type": "application/json"})
    r.raise_for_status()
    text = httpx.get(f"{url}gradio_api/call/{name}/{r.json()['event_id']}", timeout=60).text
    event = text.split("event: ", 1)[1].split("\n", 1)[0]
    payload = text.split("data: ", 1)[1].strip()
    return event, payload


# A raw REST call sends every input, the trailing checkpoint too ("": the app's default model).
RAW_SETTINGS = [
    ("motion_video", ["FILE", "[[60, 40, 5, 0]]", float("nan"), 8, 1.0, "linear", "once", False], "frames must be"),
    ("motion_video", ["FILE", "[[60, 40, 5, 0]]", float("inf"), 8, 1.0, "linear", "once", False], "maximum"),
    ("motion_video", ["FILE", "[[60, 40, 5, 0]]", 4, float("nan"), 1.0, "linear", "once", False], "fps must be"),
    ("motion_video", ["FILE", "[[60, 40, 5, 0]]", 4, 8, float("nan"), "linear", "once", False], "strength must be"),
    ("segment_mask", ["FILE", '{"positive": [[5, 5]]}', float("nan"), True, True, False], "threshold must be"),
    ("gallery_task", ["FILE", "rotation", "normal", float("nan"), True, "jitter"], "seed must be"),
]


def test_nan_and_infinity_settings_sent_raw(app_url, still_serves, sample_images):
    for name, data, pattern in RAW_SETTINGS:
        event, payload = raw_call(app_url, sample_images["photo"], name, data)
        assert event == "error", (name, data, payload[:200])
        one_line(json.loads(payload)["error"], pattern)
    still_serves()


def test_requests_before_any_image(client, still_serves):
    one_line(refused(client, None, "[[5, 5, 3, 0]]", api_name="/motion_flow"), "upload an image first")
    one_line(refused(client, None, "[[5, 5, 3, 0]]", 4, 8, 1.0, "linear", "once", api_name="/motion_video"),
             "upload an image first")
    one_line(refused(client, None, '{"positive": [[5, 5]]}', 0.5, True, api_name="/segment_mask"),
             "upload an image first")
    one_line(refused(client, None, "rotation", "normal", 0, True, "jitter", api_name="/gallery_task"), "image")
    still_serves()
