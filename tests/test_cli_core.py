"""`python -m cmp flow | checkpoints`: outputs, exit codes, one-line errors.

A few runs go through a real `python -m cmp` subprocess; the many bad-argument
cases call the same ``main(argv)`` in-process (starting torch per case would
dominate the run time on a shared 2-core machine).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cmp.checkpoints import save_checkpoint
from cmp.cli import main
from cmp.engine import Engine
from cmp.flow import flow_to_color, read_flo
from cmp.model import TINY, build_cmp
from helpers import run_cli
from hub_server import FakeHub

H, W = 45, 67


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = build_cmp(TINY)
    with torch.no_grad():
        model.flow_decoder.head.weight.mul_(20)
    ckpt = save_checkpoint(model, d / "tiny.safetensors")
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "img.png")
    return d, ckpt, rgb


def flow_args(d, ckpt, out, *extra):
    return ["flow", "--image", d / "img.png", "--arrow", "10,20,5,-3", "--arrow", "60.5,40,0,4",
            "--pin", "3,3", "--checkpoint", ckpt, "--device", "cpu", "--precision", "fp32", "--out", out, *extra]


def test_flow_npy_via_subprocess_matches_the_engine(files):
    d, ckpt, rgb = files
    r = run_cli(*flow_args(d, ckpt, d / "out.npy"))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    flow = np.load(d / "out.npy")
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    eng = Engine.from_checkpoint(str(ckpt), device="cpu", precision="fp32")
    expected = eng.propagate(eng.set_image(rgb), arrows=[(10, 20, 5, -3), (60.5, 40, 0, 4)], pins=[(3, 3)])
    np.testing.assert_allclose(flow, expected, rtol=1e-5, atol=1e-5)


def test_flow_flo_and_png(files, capsys):
    d, ckpt, _ = files
    assert main([str(a) for a in flow_args(d, ckpt, d / "o.flo")]) == 0
    flo = read_flo(d / "o.flo")
    assert flo.shape == (H, W, 2)
    assert main([str(a) for a in flow_args(d, ckpt, d / "o.png", "--max-mag", "3")]) == 0
    png = np.asarray(Image.open(d / "o.png").convert("RGB"))
    assert png.shape == (H, W, 3)
    np.testing.assert_array_equal(png, flow_to_color(flo, max_mag=3))


def test_bad_arrow_via_subprocess_is_one_line(files):
    d, ckpt, _ = files
    r = run_cli("flow", "--image", d / "img.png", "--arrow", "1,2,3", "--checkpoint", ckpt, "--out", d / "x.npy")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--arrow" in r.stderr and "Traceback" not in r.stderr
    assert not (d / "x.npy").exists()


@pytest.mark.parametrize("argv, says", [
    (["flow", "--image", "{d}/img.png", "--arrow", "1,2,3,4"], "--out"),                       # missing --out
    (["flow", "--image", "{d}/img.png", "--arrow", "a,b,c,d", "--out", "{d}/x.npy"], "--arrow"),
    (["flow", "--image", "{d}/img.png", "--pin", "1", "--out", "{d}/x.npy"], "--pin"),
    (["flow", "--image", "{d}/img.png", "--arrow", "67.6,2,1,1", "--out", "{d}/x.npy"], "outside"),
    (["flow", "--image", "{d}/img.png", "--arrow", "5,2,nan,1", "--out", "{d}/x.npy"], "finite"),
    (["flow", "--image", "{d}/img.png", "--out", "{d}/x.jpg"], ".npy"),
    (["flow", "--image", "{d}/img.png", "--out", "{d}/no/such/dir/x.npy"], "does not exist"),
    (["flow", "--image", "{d}/missing.png", "--out", "{d}/x.npy"], "no image file"),
    (["flow", "--image", "{d}/tiny.safetensors", "--out", "{d}/x.npy"], "not an image"),
    (["flow", "--image", "{d}/img.png", "--checkpoint", "{d}/nope.pth", "--out", "{d}/x.npy"], "no checkpoint"),
    (["flow", "--image", "{d}/img.png", "--checkpoint", "nope", "--out", "{d}/x.npy"], "unknown checkpoint"),
    (["flow", "--image", "{d}/img.png", "--precision", "fp8", "--out", "{d}/x.npy"], "--precision"),
    (["flow", "--image", "{d}/img.png", "--device", "cuda", "--checkpoint", "{ck}", "--out", "{d}/x.npy"],
     "cuda"),
    (["flow", "--image", "{d}/img.png", "--arrow", "5,5,2,0", "--scene-motion", "--checkpoint", "{ck}",
      "--out", "{d}/x.npy"], "whole scene moves"),
    (["checkpoints", "download", "nope"], "unknown checkpoint"),
    (["train", "--synthetic-only", "--out", "{d}/run", "--resume", "{d}/no-such-state.pt"], "--resume"),
    (["nosuchcommand"], "invalid choice"),
])
def test_user_errors_are_one_line(files, capsys, argv, says):
    d, ckpt, _ = files
    argv = [a.format(d=d, ck=ckpt) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert not (d / "x.npy").exists()


def test_scene_motion_with_the_embedded_model_pans_everything(files, capsys):
    d, _, _ = files
    out = d / "scene.npy"
    assert main(["flow", "--image", str(d / "img.png"), "--arrow", "10,20,5,-3", "--scene-motion",
                 "--precision", "fp32", "--out", str(out)]) == 0
    flow = np.load(out)
    np.testing.assert_allclose(flow[..., 0], 5.0, atol=1e-3)
    np.testing.assert_allclose(flow[..., 1], -3.0, atol=1e-3)


def test_checkpoints_list_via_subprocess():
    r = run_cli("checkpoints", "list")
    assert r.returncode == 0, r.stderr
    assert "cmp-slim-affinity" in r.stdout and "cmp-resnet50-vip-mpii" in r.stdout and "STATUS" in r.stdout


def test_checkpoints_list_json(capsys):
    assert main(["checkpoints", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["cmp-slim-affinity"]["status"] == "shipped"
    assert any("MyNiuuu/MOFA-Video-Hybrid" in h for h in by_name["cmp-resnet50-vip-mpii"]["hub"])


def test_checkpoints_download_via_subprocess(tmp_path, files):
    _, ckpt, _ = files
    data = ckpt.read_bytes()
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"checkpoints": [{
        "name": "tiny-hub", "description": "test", "license": "MIT", "config": "tiny",
        "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "hub": [{"repo_id": "org/tiny", "filename": "w/tiny.safetensors"}]}]}))
    with FakeHub() as hub:
        hub.add("org/tiny", "w/tiny.safetensors", data)
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0"}
        r = run_cli("checkpoints", "--registry", reg, "download", "tiny-hub", env=env)
        assert r.returncode == 0, r.stderr
        assert "sha256 verified" in r.stdout
        path = Path(r.stdout.split(": ", 1)[1].split(" (sha256")[0])
        assert path.read_bytes() == data and str(tmp_path / "home") in str(path)
        assert any(m == "GET" for m, _ in hub.requests)


def test_bench_reports_every_path_for_both_models(files, capsys):
    _, ckpt, _ = files
    assert main(["bench", "--checkpoint", str(ckpt), "--size", "64", "--repeats", "1", "--precision", "fp32",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["results"]
    assert rows[0]["model"].startswith("resnet50") and "(tiny)" in rows[1]["model"] and len(rows) == 2
    for r in rows:
        times = [r[k] for k in ("set_image", "arrow_original", "arrow_cached", "scene_cached", "segment_original",
                                "segment_cached", "segment_call")]
        assert all(t > 0 for t in times), r
        assert r["arrow_speedup"] == pytest.approx(r["arrow_original"] / r["arrow_cached"])
    assert out["info"]["size"] == 64 and out["info"]["repeats"] == 1


def test_bench_encodes_with_the_frozen_graph_in_bf16_unless_told_eager(files, capsys):
    _, ckpt, _ = files
    for flags, frozen in (([], True), (["--eager"], False)):
        assert main(["bench", "--checkpoint", str(ckpt), "--size", "64", "--repeats", "1", "--precision",
                     "fp32,bf16", "--device", "cpu", "--json", *flags]) == 0
        rows = json.loads(capsys.readouterr().out)["results"]
        assert [r["frozen_encoder"] for r in rows] == [False, frozen] * 2, rows  # fp32 stays eager


@pytest.mark.parametrize("has_bf16,expected", [(False, ["fp32"]), (True, ["fp32", "bf16"])])
def test_bench_times_fp32_and_the_cpus_own_precision_by_default(files, capsys, monkeypatch, has_bf16, expected):
    """A CPU without bf16 instructions would only emulate bf16 (minutes for the ResNet-50):
    the default then times fp32 alone, once."""
    import cmp.device

    monkeypatch.setattr(cmp.device, "cpu_has_bf16", lambda: has_bf16)
    _, ckpt, _ = files
    assert main(["bench", "--checkpoint", str(ckpt), "--size", "64", "--repeats", "1", "--device", "cpu",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["precision"] for r in rows] == expected * 2, rows


def test_bench_times_a_photo_larger_than_the_model_side(files, capsys, monkeypatch):
    """``--photo`` sets the test image's side apart from the model side: the engine shrinks it,
    and a photo larger than the refinement's working size gets the segment call's mask back at
    its own size (cmp.refine._to_view)."""
    import cmp.refine

    seen = []
    real_to_view = cmp.refine._to_view
    monkeypatch.setattr(cmp.refine, "_to_view", lambda full, *a: seen.append(full.shape) or real_to_view(full, *a))
    _, ckpt, _ = files
    assert main(["bench", "--checkpoint", str(ckpt), "--size", "64", "--photo", "1024", "--repeats", "1",
                 "--precision", "fp32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["info"]["size"] == 64 and out["info"]["photo"] == 1024
    assert all(r["segment_call"] > 0 for r in out["results"])
    assert seen and all(max(s[:2]) > cmp.refine.WORK_SIDE for s in seen)


@pytest.mark.parametrize("argv,says", [(["--repeats", "0"], "--repeats"), (["--size", "32"], "--size"),
                                       (["--photo", "8"], "--photo"), (["--precision", ","], "--precision")])
def test_bench_refuses_bad_settings_in_one_line(capsys, argv, says):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
