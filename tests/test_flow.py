"""Flow utilities: colour wheel agrees with flow-vis, .flo round trip, resize scaling, warping."""
from __future__ import annotations

import os

import flow_vis
import numpy as np
import pytest

from cmp.flow import (FLO_MAGIC, FlowFileError, color_wheel_legend, flow_to_color, load_flow, read_flo,
                      resize_flow, save_flow, warp_backward, write_flo)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def random_flow(h=37, w=53, scale=5.0, seed=0):
    return (np.random.default_rng(seed).normal(size=(h, w, 2)) * scale).astype(np.float32)


@pytest.mark.parametrize("scale", [0.01, 1.0, 40.0])
def test_color_wheel_matches_flow_vis(scale):
    flow = random_flow(scale=scale)
    ours = flow_to_color(flow)
    theirs = flow_vis.flow_to_color(flow)
    assert ours.dtype == np.uint8 and ours.shape == (37, 53, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_color_wheel_all_directions_match_flow_vis():
    a = np.linspace(-np.pi, np.pi, 721)
    r = np.linspace(0.0, 1.0, 11)
    rr, aa = np.meshgrid(r, a)
    flow = np.stack([rr * np.cos(aa), rr * np.sin(aa)], -1)
    assert np.abs(flow_to_color(flow).astype(int) - flow_vis.flow_to_color(flow).astype(int)).max() <= 1


def test_color_wheel_fixed_scale_and_edge_cases():
    right = np.zeros((1, 2, 2))
    right[0, 0] = (5, 0)
    right[0, 1] = (20, 0)
    rgb = flow_to_color(right, max_mag=10)
    assert tuple(rgb[0, 0]) == (255, 127, 127)  # half saturation red: +x is red
    assert tuple(rgb[0, 1]) == (191, 0, 0)      # beyond max_mag: full colour, darkened
    assert (flow_to_color(np.zeros((3, 4, 2))) == 255).all()  # no motion is white
    bad = random_flow(4, 4)
    bad[1, 2] = np.nan
    out = flow_to_color(bad)
    assert (out[1, 2] == 0).all() and np.isfinite(out).all()
    with pytest.raises(ValueError):
        flow_to_color(np.zeros((3, 4, 3)))
    with pytest.raises(ValueError):
        flow_to_color(np.zeros((3, 4, 2)), max_mag=0)


def test_legend():
    leg = color_wheel_legend(65)
    assert leg.shape == (65, 65, 3) and leg.dtype == np.uint8
    assert (leg[32, 32] == 255).all()               # centre: no motion
    assert tuple(leg[32, 64]) == (255, 0, 0)        # right rim: +x at full saturation
    assert (leg[0, 0] == 255).all()                 # outside the disk: background
    np.testing.assert_array_equal(leg[32, 48], flow_to_color(np.array([[[0.5, 0.0]]]), max_mag=1.0)[0, 0])


def test_flo_round_trip(tmp_path):
    flow = random_flow(7, 11)
    flow[0, 0] = (np.inf, -1e10)
    path = write_flo(tmp_path / "a.flo", flow)
    raw = path.read_bytes()
    assert len(raw) == 12 + 7 * 11 * 8
    assert np.frombuffer(raw[:4], "<f4")[0] == FLO_MAGIC and raw[:4] == b"PIEH"
    assert tuple(np.frombuffer(raw[4:12], "<i4")) == (11, 7)  # width first
    back = read_flo(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, flow)


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:-4], "needs"),
    (lambda b: b + b"\0", "needs"),
    (lambda b: b"XXXX" + b[4:], "not a .flo"),
    (lambda b: b[:4] + np.array([-3, 7], "<i4").tobytes() + b[12:], "invalid size"),
    (lambda b: b[:6], "too short"),
])
def test_flo_damage_is_a_clear_error(tmp_path, damage, match):
    raw = write_flo(tmp_path / "a.flo", random_flow(7, 11)).read_bytes()
    (tmp_path / "b.flo").write_bytes(damage(raw))
    with pytest.raises(FlowFileError, match=match):
        read_flo(tmp_path / "b.flo")


def test_save_and_load_by_extension(tmp_path):
    flow = random_flow(9, 13)
    for ext in (".npy", ".flo"):
        save_flow(tmp_path / f"f{ext}", flow)
        np.testing.assert_array_equal(load_flow(tmp_path / f"f{ext}"), flow)
    import cv2
    save_flow(tmp_path / "f.png", flow)
    png = cv2.cvtColor(cv2.imread(str(tmp_path / "f.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(png, flow_to_color(flow))
    with pytest.raises(FlowFileError):
        save_flow(tmp_path / "f.jpg", flow)
    np.save(tmp_path / "g.npy", np.zeros((3, 3)))
    with pytest.raises(FlowFileError, match="shape"):
        load_flow(tmp_path / "g.npy")


def test_resize_scales_vectors():
    flow = np.zeros((10, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 4.0, -3.0
    big = resize_flow(flow, (30, 80))
    assert big.shape == (30, 80, 2) and big.dtype == np.float32
    np.testing.assert_allclose(big[..., 0], 16.0)
    np.testing.assert_allclose(big[..., 1], -9.0)
    # A linear flow field (a zoom) stays the same zoom in the new pixels.
    y, x = np.mgrid[0:40, 0:60].astype(np.float32)
    zoom = np.stack([0.1 * (x - 29.5), 0.1 * (y - 19.5)], -1)
    small = resize_flow(zoom, (20, 30))
    ys, xs = np.mgrid[0:20, 0:30].astype(np.float32)
    np.testing.assert_allclose(small[..., 0], 0.1 * (xs - 14.5), atol=1e-4)
    np.testing.assert_allclose(small[..., 1], 0.1 * (ys - 9.5), atol=1e-4)
    with pytest.raises(ValueError):
        resize_flow(flow, (0, 5))


def test_identity_warp_returns_the_image():
    rng = np.random.default_rng(0)
    for img in (rng.integers(0, 256, (23, 31, 3), dtype=np.uint8),
                rng.random((23, 31)).astype(np.float32),
                rng.random((23, 31, 6)),
                rng.integers(0, 1000, (23, 31, 2), dtype=np.int32)):
        out = warp_backward(img, np.zeros((23, 31, 2), np.float32))
        assert out.dtype == img.dtype and out.shape == img.shape
        np.testing.assert_array_equal(out, img)


def test_warp_moves_content_by_the_flow():
    rng = np.random.default_rng(1)
    img = rng.random((20, 30)).astype(np.float32)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0  # out[y, x] = img[y - 2, x + 3]
    out = warp_backward(img, flow, border="zeros")
    np.testing.assert_allclose(out[2:, :-3], img[:-2, 3:])
    assert (out[:2] == 0).all() and (out[:, -3:] == 0).all()
    # Warping back by the opposite flow recovers the interior.
    back = warp_backward(out, -flow, border="zeros")
    np.testing.assert_allclose(back[:-2, 3:], img[:-2, 3:])
    with pytest.raises(ValueError):
        warp_backward(img, np.zeros((21, 30, 2)))
