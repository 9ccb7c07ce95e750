"""Self-supervised training pipeline: data from video, synthetic scenes, sampler, loop."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from cmp.checkpoints import CHECKPOINT_DIR, load_checkpoint, load_registry
from cmp.flow import fb_consistency
from cmp.train.data import MixedSampler, load_pairs, prepare, scattered_guidance, training_guidance
from cmp.train.losses import discrete_loss
from cmp.train.loop import TrainConfig, train
from cmp.scenes.synthetic import make_parallax_scene, make_scene
from cmp.train.video import shot_cuts


def _write_video(path, n=24, size=(96, 128)):
    """A textured square moving right by 1 px per frame over a still textured background."""
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur((rng.random((*size, 3)) * 255).astype(np.uint8), (0, 0), 2)
    fg = cv2.GaussianBlur((rng.random((40, 40, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
    for t in range(n):
        f = bg.copy()
        f[30:70, 10 + t:50 + t] = fg
        w.write(f)
    w.release()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    _write_video(root / "square.avi")
    out = root / "prepared"
    prepare([root], out, pairs_per_video=12, val_pairs_per_video=3, long_side=128, log=lambda *a: None)
    return out


def test_prepare_splits_video_and_flow_follows_motion(tiny_data):
    man = json.loads((tiny_data / "manifest.json").read_text())
    v = man["videos"][0]
    assert v["train_frames"][1] == v["val_frames"][0] == int(v["frames"] * 0.8)
    train_sets, val_sets = load_pairs(tiny_data, "train"), load_pairs(tiny_data, "val")
    assert len(train_sets) == 1 and len(val_sets) == 1
    for src in val_sets[0].source:  # held-out pairs start in the last 20% of the video
        assert int(src.split(":")[1].split("+")[0]) >= v["val_frames"][0]
    ps = train_sets[0]
    gaps = np.array([int(s.split("+")[1]) for s in ps.source])
    # inside the moving square the teacher flow is about +1 px per frame of gap, horizontally
    dx = np.array([np.median(f[40:60, 30:40, 0].astype(np.float32)) for f in ps.flows])
    firsts = np.array([int(s.split(":")[1].split("+")[0]) for s in ps.source])
    ok = firsts <= 12  # the square covers the probed region in those frames
    assert ok.sum() >= 3
    assert np.mean(np.abs(dx[ok] - gaps[ok]) < 0.75) >= 0.75


def test_shot_cut_detected():
    a = np.zeros((5, 32, 32, 3), np.uint8)
    a[3:] = 255
    a[3:, :, :, 1] = 0
    cuts = shot_cuts(a)
    assert cuts.tolist() == [False, False, False, True, False]


def test_fb_consistency_flags_inconsistent_pixels():
    fw = np.full((20, 20, 2), 1.0, np.float32)
    bw = -fw.copy()
    assert fb_consistency(fw, bw)[:-2, :-2].all()  # (1, 1) leaves the image on the last rows/cols
    bw[5:10, 5:10] = 5.0
    assert not fb_consistency(fw, bw)[5:9, 4:8].any()


def test_synthetic_scene_flow_is_exact():
    sc = make_scene(3, size=(96, 128))
    img1, img2, flow = sc["image1"], sc["image2"], sc["flow"]
    # each object pixel, moved by its flow, lands on the same colour in image 2 (away from edges)
    lab = sc["labels"]
    ys, xs = np.nonzero(cv2.erode((lab > 0).astype(np.uint8), np.ones((7, 7))) > 0)
    x2 = np.rint(xs + flow[ys, xs, 0]).astype(int)
    y2 = np.rint(ys + flow[ys, xs, 1]).astype(int)
    inside = (x2 >= 0) & (x2 < 128) & (y2 >= 0) & (y2 < 96)
    d = np.abs(img1[ys, xs].astype(int) - img2[y2, x2].astype(int))[inside]
    assert np.median(d) < 25
    assert sc["masks"].shape[1:] == (96, 128) and sc["masks"].any()
    assert np.array_equal(make_scene(3, size=(96, 128))["image1"], img1)  # deterministic by seed


def test_guidance_points_inside_and_carry_flow():
    rng = np.random.default_rng(0)
    for seed in range(5):
        sc = make_scene(seed, size=(128, 160))
        pts = training_guidance(sc["flow"], sc["valid"], rng)
        assert len(pts) >= 1
        x, y = pts[:, 0].astype(int), pts[:, 1].astype(int)
        assert (x >= 0).all() and (x < 160).all() and (y >= 0).all() and (y < 128).all()
        np.testing.assert_allclose(pts[:, 2:], sc["flow"][y, x], rtol=0, atol=1e-5)


def test_discrete_loss_prefers_the_right_bin():
    flow = torch.full((1, 2, 8, 8), 10.0)
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    centers = -50 + (100 / 99) * (torch.arange(99) + 0.5)
    good = torch.zeros(1, 198, 4, 4)
    good[:, int(torch.argmin((centers - 10).abs()))] = 10
    good[:, 99 + int(torch.argmin((centers - 10).abs()))] = 10
    bad = torch.zeros(1, 198, 4, 4)
    bad[:, 0] = bad[:, 99] = 10
    for full in (False, True):
        assert discrete_loss(good, flow, valid, 99, 50.0, full) < discrete_loss(bad, flow, valid, 99, 50.0, full)


@pytest.mark.parametrize("arch", ["tiny", "tiny-affinity"])
def test_training_loss_goes_down_and_resumes(tiny_data, tmp_path, arch):
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), arch=arch, steps=30, batch=4, crop=64,
                      lr=5e-3, warmup=2, synth_prob=0.5, save_every=15, val_every=1000, precision="fp32",
                      device="cpu")
    path = train(cfg, log=lambda *a: None)
    recs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs]
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
    ck = load_checkpoint(path)
    assert ck.config.name == arch
    cfg.steps = 33  # resume continues from the saved step, not from zero
    train(cfg, log=lambda *a: None)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps[-4:] == [30, 31, 32, 33]


def test_resume_keeps_the_stored_architecture(tiny_data, tmp_path):
    """A run resumed with another --arch continues the network in last.pt instead of crashing on its keys."""
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), arch="tiny-affinity", steps=4, batch=2,
                      crop=64, warmup=1, save_every=4, val_every=1000, precision="fp32", device="cpu")
    train(cfg, log=lambda *a: None)
    cfg.arch, cfg.steps = "tiny", 6
    said = []
    path = train(cfg, log=said.append)
    assert load_checkpoint(path).config.name == "tiny-affinity"
    assert any("resuming the stored architecture tiny-affinity" in m for m in said)


def test_warm_start_copies_the_shared_encoder(tmp_path):
    from cmp.checkpoints import save_checkpoint
    from cmp.model import TINY, TINY_AFFINITY, build_cmp
    from cmp.train.loop import warm_start
    torch.manual_seed(1)
    src = build_cmp(TINY)
    path = save_checkpoint(src, tmp_path / "src.safetensors")
    torch.manual_seed(2)
    dst = build_cmp(TINY_AFFINITY)
    n = warm_start(dst, str(path))
    enc = {k for k in dst.state_dict() if k.startswith("image_encoder.") and not k.endswith("num_batches_tracked")}
    assert n >= len(enc) > 0
    for k in enc:
        torch.testing.assert_close(dst.state_dict()[k], src.state_dict()[k])
    assert not torch.equal(dst.embed8.weight, torch.zeros_like(dst.embed8.weight))


def test_panning_scenes_move_everywhere():
    from cmp.train.data import PAN_SHIFT

    def background_motion(scenes):
        return np.mean([np.linalg.norm(sc["flow"], axis=-1)[sc["labels"] == 0].mean() for sc in scenes])
    bg_still = background_motion([make_scene(s) for s in range(6)])
    bg_pan = background_motion([make_scene(s, static_bg_prob=0.0, bg_shift=PAN_SHIFT) for s in range(6)])
    assert bg_pan > 2 * bg_still and bg_pan > 5
    sampler = MixedSampler([], crop=64, seed=0, pan_prob=1.0)
    samples = [sampler.sample(i) for i in range(4)]
    assert all(np.linalg.norm(s.flow, axis=-1).min() > 0 for s in samples)
    assert all(len(s.points) >= 10 for s in samples)  # panning scenes always get dense guidance


def test_parallax_scene_moves_everything_along_one_direction_nearer_layers_more():
    for seed in range(4):
        sc = make_parallax_scene(seed, size=(96, 128))
        flow, lab = sc["flow"], sc["labels"]
        mag = np.linalg.norm(flow, axis=-1)
        assert mag.min() > 0.5  # every pixel moves: the camera does
        u = flow.reshape(-1, 2) / mag.reshape(-1, 1)
        assert np.abs(u - u[0]).max() < 1e-4  # one direction for the whole frame
        # An object's disparity exceeds the background plane's at its centre (it is nearer).
        for k in np.unique(lab)[1:]:
            assert mag[lab == k].mean() > mag[lab == 0].min()
        # Each pixel, moved by its flow, finds its colour in frame 2 (away from layer edges).
        inner = cv2.erode((lab == lab.max()).astype(np.uint8), np.ones((7, 7))) > 0
        ys, xs = np.nonzero(inner)
        x2, y2 = np.rint(xs + flow[ys, xs, 0]).astype(int), np.rint(ys + flow[ys, xs, 1]).astype(int)
        ok = (x2 >= 0) & (x2 < 128) & (y2 >= 0) & (y2 < 96)
        if ok.sum() > 20:
            d = np.abs(sc["image1"][ys[ok], xs[ok]].astype(int) - sc["image2"][y2[ok], x2[ok]].astype(int))
            assert np.median(d) < 25
    assert np.array_equal(make_parallax_scene(2, size=(96, 128))["flow"], make_parallax_scene(2, size=(96, 128))["flow"])


def test_scattered_guidance_is_several_points_that_carry_the_flow():
    rng = np.random.default_rng(0)
    sc = make_parallax_scene(1, size=(128, 160))
    for _ in range(10):
        pts = scattered_guidance(sc["flow"], sc["valid"], rng, low=4, high=12)
        assert 4 <= len(pts) <= 12
        x, y = pts[:, 0].astype(int), pts[:, 1].astype(int)
        assert (x >= 0).all() and (x < 160).all() and (y >= 0).all() and (y < 128).all()
        np.testing.assert_allclose(pts[:, 2:], sc["flow"][y, x], rtol=0, atol=1e-5)
    sampler = MixedSampler([], crop=64, seed=0, parallax_prob=1.0)
    samples = [sampler.sample(i) for i in range(4)]
    assert all(np.linalg.norm(s.flow, axis=-1).min() > 0 for s in samples)
    assert all(len(s.points) >= 4 for s in samples)


def test_sampler_is_deterministic(tiny_data):
    sets = load_pairs(tiny_data, "train")
    a = MixedSampler(sets, crop=64, seed=1).sample(7)
    b = MixedSampler(sets, crop=64, seed=1).sample(7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.points, b.points)


@pytest.mark.parametrize("name", ["default", "grouping"])
def test_shipped_checkpoint_loads_strictly_and_matches_card(name):
    """The embedded default and the model it segments with (both in the repository)."""
    reg = load_registry()
    entry = reg[name]
    ck = load_checkpoint(name)
    assert ck.config.name == entry.config
    assert (CHECKPOINT_DIR / entry.file).stat().st_size <= 20 * 2**20
    card = (CHECKPOINT_DIR / entry.card).read_text()
    assert ck.config.to_json() in card.replace("\n", "") or json.dumps(ck.config.to_dict(), sort_keys=True) in card
    assert reg["default"].segmentation == "cmp-slim-grouping"


def test_scalar_priors_get_their_own_learning_rate():
    from cmp.model import TINY, TINY_AFFINITY, build_cmp
    from cmp.train.loop import param_groups
    cfg = TrainConfig(prior_lr_mult=20.0)
    m = build_cmp(TINY_AFFINITY)
    groups = param_groups(m, cfg)
    prior = [g for g in groups if g["lr_mult"] == 20.0]
    assert len(prior) == 1 and ({id(p) for p in prior[0]["params"]}
                                == {id(m.null_guidance), id(m.null_spread), id(m.null_alpha_offset)})
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))  # every parameter, once
    # Decoder models have no priors: two groups, as before.
    assert [g["lr_mult"] for g in param_groups(build_cmp(TINY), cfg)] == [1.0, 1.0]


def test_only_trains_the_named_parameters_and_keeps_batchnorm_statistics(tiny_data, tmp_path):
    from cmp.checkpoints import read_state_dict, save_checkpoint
    from cmp.model import TINY_AFFINITY, build_cmp
    torch.manual_seed(3)
    start = save_checkpoint(build_cmp(TINY_AFFINITY), tmp_path / "start.safetensors")
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), arch="tiny-affinity", steps=6, batch=2, crop=64,
                      lr=5e-2, warmup=1, save_every=6, val_every=1000, precision="fp32", device="cpu",
                      init=str(start), only="null_,log_")
    path = train(cfg, log=lambda *a: None)
    before, _ = read_state_dict(str(start))
    after, _ = read_state_dict(str(path))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("null_", "log_")) for k in changed)
    assert any(k.endswith("running_mean") for k in before)  # BatchNorm statistics exist and stayed
    with pytest.raises(ValueError, match="matches no parameter"):
        train(TrainConfig(data=str(tiny_data), out=str(tmp_path / "run2"), arch="tiny-affinity", steps=1, batch=2,
                          crop=64, precision="fp32", device="cpu", only="nothing_"), log=lambda *a: None)


def test_parallax_scene_mode_trains_camera_samples_without_the_still_decision(tmp_path):
    from cmp.checkpoints import read_state_dict, save_checkpoint
    from cmp.model import TINY_AFFINITY, build_cmp
    sampler = MixedSampler([], crop=64, seed=0, parallax_prob=1.0)
    batch = sampler.batch(0, 3)
    assert batch["camera"].tolist() == [True] * 3
    assert MixedSampler([], crop=64, seed=0).batch(0, 3)["camera"].tolist() == [False] * 3

    torch.manual_seed(3)
    start = save_checkpoint(build_cmp(TINY_AFFINITY), tmp_path / "start.safetensors")
    before, _ = read_state_dict(str(start))

    def changed_after(run: str, scene_mode: bool) -> set[str]:
        cfg = TrainConfig(data=None, out=str(tmp_path / run), arch="tiny-affinity", steps=4, batch=2, crop=64,
                          lr=5e-2, warmup=1, save_every=4, val_every=1000, precision="fp32", device="cpu",
                          synth_prob=1.0, parallax_prob=1.0, init=str(start), only="null_,log_",
                          parallax_scene_mode=scene_mode)
        after, _ = read_state_dict(str(train(cfg, log=lambda *a: None)))
        return {k for k in before if not torch.equal(before[k], after[k])}

    # Every sample is a parallax scene: in the scene mode the stay-still parameters get no
    # gradient at all, only the blend's distance weights learn; in the default mode they all do.
    assert changed_after("scene", True) == {"log_alpha", "log_beta"}
    assert {"null_guidance", "log_alpha", "log_beta"} <= changed_after("default", False)
    with pytest.raises(ValueError, match="affinity"):
        train(TrainConfig(data=None, out=str(tmp_path / "bins"), arch="tiny", steps=1, batch=2, crop=64,
                          precision="fp32", device="cpu", parallax_scene_mode=True), log=lambda *a: None)


def test_frame_folder_reads_in_name_order_and_names_an_unreadable_frame(tmp_path):
    from cmp.train.video import read_frame_folder

    for i, v in enumerate((30, 90, 150)):
        rgb = np.zeros((40, 60, 3), np.uint8)
        rgb[..., 0] = v
        cv2.imwrite(str(tmp_path / f"f{i}.png"), rgb[..., ::-1])
    frames = read_frame_folder(tmp_path, long_side=30)
    assert frames.shape == (3, 20, 30, 3) and list(frames[:, 5, 5, 0]) == [30, 90, 150]
    (tmp_path / "f3.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read frame f3.png"):
        read_frame_folder(tmp_path)


# -- emoji silhouettes as cut-outs, and resuming a committed training state -----------

def _training_glyphs():
    from cmp.scenes.emoji import EMOJI_FONT, emoji_silhouettes
    if not EMOJI_FONT.is_file():
        pytest.skip("fonts-noto-color-emoji is not installed")
    return emoji_silhouettes("train")


def test_emoji_scenes_are_deterministic_and_a_silhouette_moves_as_one():
    from cmp.scenes.emoji import emoji_split
    sils = _training_glyphs()
    a = make_scene(11, silhouettes=sils, emoji_prob=1.0)
    b = make_scene(11, silhouettes=sils, emoji_prob=1.0)
    assert np.array_equal(a["image1"], b["image1"]) and np.array_equal(a["flow"], b["flow"])
    checked = 0
    for seed in range(11, 15):
        sc = make_scene(seed, silhouettes=sils, emoji_prob=1.0)
        assert sc["shapes"] and all(cp and emoji_split(cp) == "train" for cp in sc["shapes"])
        for k in np.unique(sc["labels"])[1:]:
            ys, xs = np.nonzero(sc["labels"] == k)
            # every visible pixel of the object, thin parts included, follows one affine motion
            A = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
            f = sc["flow"][ys, xs].astype(np.float64)
            coef, *_ = np.linalg.lstsq(A, f, rcond=None)
            assert np.abs(A @ coef - f).max() < 1e-2
            checked += 1
    assert checked >= 4


def test_emoji_prob_zero_keeps_every_seeded_scene():
    """Held-out synthetic scenes (evaluation) and older runs' training scenes are unchanged."""
    sils = _training_glyphs()
    for seed in (3, 900_001):
        a, b = make_scene(seed), make_scene(seed, silhouettes=sils, emoji_prob=0.0)
        assert np.array_equal(a["image1"], b["image1"]) and np.array_equal(a["flow"], b["flow"])
        assert b["shapes"] == [0] * len(b["shapes"])


def test_same_photo_cutouts_take_the_backgrounds_own_photo_unshifted():
    """Two flat photos of different colours: with ``same_photo_prob`` 1 every cut-out is
    the background's colour (another crop of its photo, no brightness shift), so the
    first frame is one colour; at 0 some cut-out shows the other photo or a shift."""
    photos = [np.full((300, 400, 3), (200, 40, 40), np.uint8), np.full((300, 400, 3), (40, 40, 200), np.uint8)]
    mixed = False
    for seed in range(6):
        own = make_scene(seed, photos=photos, same_photo_prob=1.0)
        assert own["labels"].max() >= 1
        assert len(np.unique(own["image1"].reshape(-1, 3), axis=0)) == 1
        other = make_scene(seed, photos=photos)
        mixed |= len(np.unique(other["image1"].reshape(-1, 3), axis=0)) > 1
    assert mixed


def test_parts_cutouts_look_different_inside_and_move_as_one():
    """Flat photos of three colours: with ``parts_prob`` 1 nearly every visible cut-out
    shows more than one colour (its parts come from other crops, brightness-shifted), at 0
    none does; either way every cut-out's flow is one affine motion, parts included."""
    photos = [np.full((300, 400, 3), c, np.uint8) for c in ((200, 40, 40), (40, 200, 40), (40, 40, 200))]

    def objects(sc):
        for k in range(1, int(sc["labels"].max()) + 1):
            m = sc["labels"] == k
            if m.sum() >= 200:
                yield m

    def colours(sc, m):
        return len(np.unique(sc["image1"][m], axis=0))

    parted = plain = total = 0
    for seed in range(8):
        with_parts = make_scene(seed, photos=photos, parts_prob=1.0)
        without = make_scene(seed, photos=photos, parts_prob=0.0)
        for m in objects(with_parts):
            total += 1
            parted += colours(with_parts, m) > 1
            ys, xs = np.nonzero(m)
            A = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
            f = with_parts["flow"][m].astype(np.float64)
            coef, *_ = np.linalg.lstsq(A, f, rcond=None)
            assert np.abs(A @ coef - f).max() < 1e-2  # one motion for the whole object
        plain += sum(colours(without, m) > 1 for m in objects(without))
    assert total >= 8 and parted >= 0.8 * total
    assert plain == 0


def test_sampler_cuts_objects_from_training_glyphs_only():
    from cmp.scenes.emoji import emoji_silhouettes
    sils = _training_glyphs()
    sampler = MixedSampler([], crop=64, seed=0, emoji_prob=0.5)
    assert sampler.silhouettes is sils
    assert not {cp for cp, _ in sils} & {cp for cp, _ in emoji_silhouettes("eval")}
    assert MixedSampler([], crop=64, seed=0).silhouettes == ()


def test_resume_from_a_saved_state_file_continues_its_step_and_architecture(tiny_data, tmp_path):
    """``--resume FILE`` (a committed last.pt) continues at the stored step with the stored
    network into a fresh run folder; the state holds what resuming needs."""
    import shutil
    first = TrainConfig(data=str(tiny_data), out=str(tmp_path / "a"), arch="tiny-affinity", steps=3, batch=2,
                        crop=64, warmup=1, save_every=3, val_every=1000, precision="fp32", device="cpu",
                        emoji_prob=0.0)
    train(first, log=lambda *a: None)
    saved = tmp_path / "committed" / "last.pt"
    saved.parent.mkdir()
    shutil.copy(tmp_path / "a" / "last.pt", saved)
    state = torch.load(saved, map_location="cpu", weights_only=True)
    assert {"model", "opt", "step", "config", "torch_rng", "train"} <= set(state) and state["step"] == 3
    assert json.loads(state["train"])["arch"] == "tiny-affinity"
    said = []
    again = TrainConfig(data=str(tiny_data), out=str(tmp_path / "b"), arch="tiny", steps=5, batch=2, crop=64,
                        warmup=1, save_every=5, val_every=1000, precision="fp32", device="cpu",
                        resume=str(saved))
    path = train(again, log=said.append)
    assert any(f"resumed from {saved} at step 3" in m for m in said)
    assert load_checkpoint(path).config.name == "tiny-affinity"
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == [4, 5]
    with pytest.raises(ValueError, match="no such file"):
        train(TrainConfig(data=None, out=str(tmp_path / "c"), arch="tiny-affinity", steps=1, batch=2, crop=64,
                          resume=str(tmp_path / "missing.pt")), log=lambda *a: None)


def test_a_wide_clip_keeps_a_short_side_the_training_crop_fits():
    from cmp.train.video import _resize
    wide = np.zeros((720, 1280, 3), np.uint8)
    assert _resize(wide, 384).shape[:2] == (216, 384)
    assert _resize(wide, 384, min_short=256).shape[:2] == (256, 455)
    assert _resize(np.zeros((576, 768, 3), np.uint8), 384, min_short=256).shape[:2] == (288, 384)


def _two_regions(h=16, w=16):
    """A flow with a still left half and a right half moving 6 px, all valid."""
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0, :, w // 2:] = 6.0
    return flow, torch.ones(1, h, w, dtype=torch.bool)


def test_walk_loss_rewards_an_embedding_that_follows_the_motion():
    from cmp.train.losses import walk_affinity_loss
    flow, valid = _two_regions()
    # the embedding is at 1/2 of the flow's size, as the model's is
    follows = torch.zeros(1, 4, 8, 8)
    follows[:, 0, :, 4:] = 3.0  # one value per moving region: joined inside, cut at the border
    blind = torch.zeros(1, 4, 8, 8)  # everything joined, the border too
    torch.manual_seed(0)
    noisy = torch.randn(1, 4, 8, 8)  # cut everywhere, inside the regions too
    loss = {name: float(walk_affinity_loss(e, 1.0, flow, valid))
            for name, e in (("follows", follows), ("blind", blind), ("noisy", noisy))}
    assert loss["follows"] < 0.1 < min(loss["blind"], loss["noisy"])
    # its gradient pulls a blind embedding apart across the motion border only
    e = blind.clone().requires_grad_(True)
    walk_affinity_loss(e + 0.01 * noisy, 1.0, flow, valid).backward()
    g = e.grad[0].abs().sum(0)
    assert g[:, 1:3].sum() < g[:, 3:5].sum()


def test_walk_loss_ignores_invalid_pixels():
    from cmp.train.losses import walk_affinity_loss
    flow, valid = _two_regions()
    torch.manual_seed(1)
    e = torch.randn(1, 4, 8, 8)
    valid[:, :, :8] = False
    other = flow.clone()
    other[:, :, :, :8] = 40.0  # only where nothing is valid
    loss = lambda f: float(walk_affinity_loss(e, 1.0, f, valid))  # noqa: E731
    assert loss(other) == pytest.approx(loss(flow))


def test_walk_weight_trains_an_affinity_model_and_refuses_a_bin_model(tmp_path):
    cfg = TrainConfig(data=None, out=str(tmp_path / "walk"), arch="tiny-affinity", steps=3, batch=2, crop=64,
                      lr=5e-3, warmup=1, synth_prob=1.0, save_every=3, val_every=1000, precision="fp32",
                      device="cpu", walk_weight=0.5)
    train(cfg, log=lambda *a: None)
    recs = [json.loads(line) for line in (tmp_path / "walk" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in recs)
    with pytest.raises(ValueError, match="affinity"):
        train(TrainConfig(data=None, out=str(tmp_path / "bins"), arch="tiny", steps=1, batch=2, crop=64,
                          precision="fp32", device="cpu", walk_weight=0.5), log=lambda *a: None)


def test_walk_loss_sigma_sets_how_large_a_motion_step_is_a_border():
    from cmp.train.losses import walk_affinity_loss
    flow, valid = _two_regions()
    flow = flow / 3.0  # the right half moves 2 px
    cut = torch.zeros(1, 4, 8, 8)
    cut[:, 0, :, 4:] = 3.0
    joined = torch.zeros(1, 4, 8, 8)
    loss = lambda e, s: float(walk_affinity_loss(e, 1.0, flow, valid, sigma=s))  # noqa: E731
    assert loss(cut, 0.5) < loss(joined, 0.5)  # a 2 px step is a border at sigma 0.5 px
    assert loss(joined, 4.0) < loss(cut, 4.0)  # and motion inside one object at 4 px


def test_walk_loss_takes_still_neighbours_as_no_evidence_of_one_object():
    from cmp.train.losses import walk_affinity_loss
    flow, valid = _two_regions()
    joined_left = torch.zeros(1, 4, 8, 8)
    joined_left[:, 0, :, 4:] = 3.0
    cut_left = joined_left.clone()
    cut_left[:, 1, :, :2] = 3.0  # a cut inside the still half (pooled columns 0 | 1)
    cut_right = joined_left.clone()
    cut_right[:, 1, :, 4:6] = 3.0  # the same cut inside the moving half (pooled columns 2 | 3)
    loss = lambda e: float(walk_affinity_loss(e, 1.0, flow, valid, sigma=1.0))  # noqa: E731
    assert loss(cut_left) == pytest.approx(loss(joined_left), abs=1e-4)  # two still cells: no evidence
    assert loss(cut_right) > loss(joined_left) + 0.1  # two cells moving alike: one object


def _layers(h=16, w=16):
    """A layer map: the background on the left half, cut-out 1 on the right half."""
    labels = torch.zeros(1, h, w, dtype=torch.long)
    labels[:, :, w // 2:] = 1
    return labels


def test_layer_loss_joins_a_cut_out_and_cuts_it_from_the_background():
    from cmp.train.losses import walk_layer_loss
    labels = _layers()
    follows = torch.zeros(1, 4, 8, 8)
    follows[:, 0, :, 4:] = 3.0  # cut at the layers' border only
    blind = torch.zeros(1, 4, 8, 8)  # everything joined
    cut_inside = follows.clone()
    cut_inside[:, 1, :, 4:6] = 3.0  # the cut-out split in two (pooled columns 2 | 3)
    loss = lambda e: float(walk_layer_loss(e, 1.0, labels))  # noqa: E731
    assert loss(follows) < 0.1 < min(loss(blind), loss(cut_inside))
    # its gradient pulls a blind embedding apart at the layers' border, not inside the cut-out
    torch.manual_seed(0)
    e = blind.clone().requires_grad_(True)
    walk_layer_loss(e + 0.01 * torch.randn(1, 4, 8, 8), 1.0, labels).backward()
    g = e.grad[0].abs().sum(0)
    assert g[:, 5:7].sum() < g[:, 3:5].sum()


def test_layer_loss_takes_the_background_and_unknown_or_mixed_cells_as_no_evidence():
    from cmp.train.losses import walk_layer_loss
    labels = _layers()
    follows = torch.zeros(1, 4, 8, 8)
    follows[:, 0, :, 4:] = 3.0
    cut_background = follows.clone()
    cut_background[:, 1, :, :2] = 3.0  # a cut inside the background (pooled columns 0 | 1)
    loss = lambda e, lab=labels: float(walk_layer_loss(e, 1.0, lab))  # noqa: E731
    assert loss(cut_background) == pytest.approx(loss(follows), abs=1e-4)  # a photo's own borders: no evidence
    torch.manual_seed(2)
    noisy = torch.randn(1, 4, 8, 8)
    assert loss(noisy, torch.full_like(labels, -1)) == 0.0  # a video pair: layers unknown
    mixed = labels.clone()
    mixed[:, :, 6:8] = 1  # the cut-out begins inside pooled column 1, which then shows both layers: it has none
    cut_0_1 = torch.zeros(1, 4, 8, 8)
    cut_0_1[:, 0, :, 2:] = 3.0  # cut between pooled columns 0 | 1 only
    assert loss(cut_0_1, mixed) == pytest.approx(loss(follows, mixed), abs=1e-4)  # both pairs touch column 1
    assert loss(cut_0_1, labels) > loss(follows, labels) + 0.1  # where column 1 is the background's


def test_layer_loss_thin_joins_a_part_narrower_than_a_cell_to_its_cut_out():
    from cmp.train.losses import walk_layer_loss
    labels = _layers()
    labels[:, 5, :8] = 1  # a stem one pixel thick reaching left into the background: pooled cells (1, 0), (1, 1)
    follows = torch.zeros(1, 4, 8, 8)
    follows[:, 0, :, 4:] = 3.0  # the cut-out's body apart, its stem with the background
    joined = follows.clone()
    joined[:, 0, 2:4, :4] = 3.0  # the stem's cells with the body
    loss = lambda e, thin, lab=labels: float(walk_layer_loss(e, 1.0, lab, thin=thin))  # noqa: E731
    assert loss(joined, False) == pytest.approx(loss(follows, False), abs=1e-4)  # mixed cells: no evidence
    assert loss(joined, True) < 0.1 < loss(follows, True)  # thin: the stem belongs with its cut-out
    # the stem's cells beside plain background cells stay no evidence: joined to both, nothing changes
    assert loss(joined, True) == pytest.approx(loss(joined, False), abs=1e-4)
    # a cell showing two cut-outs belongs to neither
    two = labels.clone()
    two[:, 4, :8] = 2
    assert loss(follows, True, two) == pytest.approx(loss(follows, False, two), abs=1e-4)


def test_layer_loss_across_cuts_a_border_that_runs_through_a_cell():
    from cmp.train.losses import walk_layer_loss
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, :, 6:] = 1  # the border inside pooled column 1: no pure cell of one layer beside one of the other
    blind = torch.zeros(1, 4, 8, 8)
    cut_left = blind.clone()
    cut_left[:, 0, :, 2:] = 3.0  # the mixed column with the cut-out
    cut_right = blind.clone()
    cut_right[:, 0, :, 4:] = 3.0  # the mixed column with the background
    loss = lambda e, across: float(walk_layer_loss(e, 1.0, labels, across=across))  # noqa: E731
    assert loss(blind, False) < 0.1  # the plain loss never sees this border
    assert max(loss(cut_left, True), loss(cut_right, True)) < 0.1 < loss(blind, True)  # either edge may cut
    # a video pair's unknown layers add no runs
    assert float(walk_layer_loss(blind, 1.0, torch.full_like(labels, -1), across=True)) == 0.0


def test_layer_loss_balanced_weighs_the_cuts_as_much_as_the_joins():
    from cmp.train.losses import walk_layer_loss

    def blind_loss(width, bal):  # a cut-out from pooled column 1 (mixed) to the right edge; nothing cut
        labels = torch.zeros(1, 16, width, dtype=torch.long)
        labels[:, :, 6:] = 1
        return float(walk_layer_loss(torch.zeros(1, 4, 8, width // 2), 1.0, labels, across=True, balanced=bal))
    # a wider cut-out adds joins (all right) and no cuts (all wrong): plain, the wrong cuts' share falls;
    # balanced, the cuts' mean weighs the same whatever the count of joins
    assert blind_loss(48, False) < 0.5 * blind_loss(16, False)
    assert blind_loss(48, True) == pytest.approx(blind_loss(16, True), rel=1e-3)


def test_training_crops_keep_a_scene_s_layers_on_its_pixels():
    from cmp.train.data import Sample, _crop, collate
    rng0 = np.random.default_rng(3)
    img = rng0.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    labels = img[..., 0].astype(np.int32)  # a layer map that must travel with the pixels
    kinds = set()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        c_img, c_flow, _, c_lab = _crop(img, np.zeros((40, 50, 2), np.float32), np.ones((40, 50), bool), 32, rng,
                                        labels)
        assert np.array_equal(c_lab, c_img[..., 0].astype(np.int32))
        kinds.add(any(np.array_equal(c_img, img[y:y + 32, x:x + 32]) for y in range(9) for x in range(19)))
    assert kinds == {True, False}  # mirrored crops and plain ones both checked
    batch = collate([Sample(c_img, c_flow, np.ones((32, 32), bool), np.zeros((0, 4), np.float32), labels=c_lab),
                     Sample(c_img, c_flow, np.ones((32, 32), bool), np.zeros((0, 4), np.float32))])
    assert batch["labels"].shape == (2, 32, 32)
    assert torch.equal(batch["labels"][0], torch.from_numpy(c_lab).long())
    assert (batch["labels"][1] == -1).all()  # a video pair's layers are unknown


@pytest.mark.parametrize("target", ["layers", "layers-thin", "layers-across", "layers-balanced"])
def test_walk_target_layers_trains_on_synthetic_scenes_and_names_a_bad_target(tmp_path, target):
    cfg = TrainConfig(data=None, out=str(tmp_path / "layers"), arch="tiny-affinity", steps=3, batch=2, crop=64,
                      lr=5e-3, warmup=1, synth_prob=1.0, save_every=3, val_every=1000, precision="fp32",
                      device="cpu", walk_weight=0.5, walk_target=target)
    train(cfg, log=lambda *a: None)
    recs = [json.loads(line) for line in (tmp_path / "layers" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in recs)
    with pytest.raises(ValueError, match="walk_target"):
        train(TrainConfig(data=None, out=str(tmp_path / "bad"), arch="tiny-affinity", steps=1, batch=2, crop=64,
                          precision="fp32", device="cpu", walk_weight=0.5, walk_target="labels"),
              log=lambda *a: None)


def _leaky_embedding(leak: bool) -> torch.Tensor:
    """A (1, 4, 32, 32) embedding (a 16 x 16 walk grid) of :func:`_cut_out_square`'s scene: the
    cut-out's cells unlike the background's; with ``leak``, a one-cell neck below it joins a
    background region that looks like it."""
    torch.manual_seed(0)
    e = 0.1 * torch.randn(1, 4, 32, 32)
    e[:, 0, 8:20, 8:20] += 3.0  # the cut-out: walk cells 4-9
    if leak:
        e[:, 0, 20:22, 14:16] += 3.0  # the neck: cell (row 10, column 7)
        e[:, 0, 22:30, 4:28] += 3.0  # the look-alike region: cell rows 11-14
    return e


def _cut_out_square() -> torch.Tensor:
    labels = torch.zeros(1, 64, 64, dtype=torch.long)
    labels[:, 16:40, 16:40] = 1
    return labels


def test_walk_solve_is_the_walks_own_answer_and_differentiable():
    from cmp.train.losses import walk_solve
    from cmp.walk import seed_labels, solve_walk
    rng = np.random.default_rng(0)
    right = torch.tensor(rng.uniform(0.05, 1.0, (6, 6)), dtype=torch.float64, requires_grad=True)
    down = torch.tensor(rng.uniform(0.05, 1.0, (5, 7)), dtype=torch.float64, requires_grad=True)
    seeds = seed_labels(6, 7, np.array([[3, 3]]), np.array([[5, 1]]))
    x = walk_solve(right, down, seeds)
    assert np.allclose(x.detach().numpy(), solve_walk(right.detach().numpy(), down.detach().numpy(), seeds), atol=1e-6)
    assert torch.autograd.gradcheck(lambda r, d: walk_solve(r, d, seeds), (right, down))


def test_walk_solve_loss_finds_a_flood_and_pulls_at_its_neck():
    from cmp.train.losses import walk_solve_loss
    labels = _cut_out_square()
    assert float(walk_solve_loss(_leaky_embedding(False), 1.0, labels)) < 0.01
    e = _leaky_embedding(True).requires_grad_(True)
    loss = walk_solve_loss(e, 1.0, labels)
    assert float(loss) > 1.0  # the walk from the cut-out's deepest cell floods the look-alike region
    loss.backward()
    g = torch.nn.functional.avg_pool2d(e.grad[0].abs().sum(0)[None, None], 2)[0, 0]  # per walk cell
    assert g[10, 7] > 10 * g[11:15, 1:14].mean()  # most of the gradient at the neck, not spread over the flood
    assert float(walk_solve_loss(torch.randn(1, 4, 32, 32), 1.0, torch.full_like(labels, -1))) == 0.0  # a video pair


def test_walk_solve_loss_second_click_cuts_the_flood_where_the_protocol_clicks():
    from cmp.train.losses import walk_solve_loss
    labels = _cut_out_square()
    one = float(walk_solve_loss(_leaky_embedding(True), 1.0, labels))
    # the first answer floods the look-alike region; the protocol's second click is negative there, and the
    # walk's second answer (its seed cutting the region off) halves the mean of the two
    two = float(walk_solve_loss(_leaky_embedding(True), 1.0, labels, clicks=2))
    assert two < 0.6 * one
    assert float(walk_solve_loss(_leaky_embedding(False), 1.0, labels, clicks=2)) < 0.01  # nothing left to fix


def test_walk_solve_weight_adds_its_loss_to_training_and_refuses_a_bin_model(tmp_path):
    def run(name, **kw):
        cfg = TrainConfig(data=None, out=str(tmp_path / name), arch="tiny-affinity", steps=2, batch=2, crop=64,
                          lr=5e-3, warmup=1, synth_prob=1.0, save_every=2, val_every=1000, precision="fp32",
                          device="cpu", seed=7, **kw)
        train(cfg, log=lambda *a: None)
        return [json.loads(line)["loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    plain, solved = run("plain"), run("solved", walk_solve_weight=0.5)
    # seed 7's first batch holds a cut-out of 165 walk cells: the same batch, the walk's answer added
    assert all(np.isfinite(solved)) and solved[0] > plain[0]
    assert all(np.isfinite(run("two", walk_solve_weight=0.5, walk_solve_clicks=2)))
    with pytest.raises(ValueError, match="affinity"):
        train(TrainConfig(data=None, out=str(tmp_path / "bins"), arch="tiny", steps=1, batch=2, crop=64,
                          precision="fp32", device="cpu", walk_solve_weight=0.5), log=lambda *a: None)
