"""Training data: build the frame-pair set once (``python -m cmp data prepare``), then
sample crops + guidance on the fly, mixing video pairs with synthetic scenes.

Tensor contract of a batch: image (B, 3, S, S) normalised; sparse (B, 4, S, S);
flow (B, 2, S, S) float32 px; valid (B, S, S) bool; camera (B,) bool; labels (B, S, S) int64,
a synthetic scene's layer map (-1 for video pairs, whose layers are unknown).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..guidance import encode_sparse, sample_guidance
from ..model import normalize_image
from ..scenes.emoji import emoji_silhouettes
from ..scenes.photos import default_photos
from ..scenes.synthetic import HELDOUT_SEED_BASE, make_parallax_scene, make_scene
from ..scenes.video import VAL_FRACTION
from .video import PairSet, find_sources, pairs_from_frames, read_frame_folder, read_video

#: Background shift (px) of the "panning camera" synthetic scenes: everything moves,
#: a lot, so the network learns that many moving points mean nothing stays still.
PAN_SHIFT = 30.0


def prepare(sources: list[str | Path], out_dir: str | Path, *, pairs_per_video: int = 300,
            val_pairs_per_video: int = 40, long_side: int = 384, min_short: int = 0, seed: int = 0,
            log=print) -> dict:
    """Write ``train_<k>.npz`` / ``val_<k>.npz`` per video under ``out_dir`` and a manifest.

    Frames get a long side of ``long_side``, or more when the short side would fall below
    ``min_short`` (a 16:9 clip at 384 px would be too low for the trainer's 256 px crops)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    manifest = {"videos": [], "long_side": long_side, "min_short": min_short}
    paths = [p for s in sources for p in find_sources(s)]
    if not paths:
        raise ValueError(f"no videos or frame folders found in {', '.join(map(str, sources))}")
    for k, p in enumerate(paths):
        frames = read_frame_folder(p, long_side, min_short) if p.is_dir() else read_video(p, long_side, min_short=min_short)
        cut = int(len(frames) * (1 - VAL_FRACTION))
        name = p.name.split(".")[0]
        entry = {"name": name, "source": str(p), "frames": int(len(frames)), "train_frames": [0, cut],
                 "val_frames": [cut, int(len(frames))]}
        for split, fr, n in (("train", frames[:cut], pairs_per_video), ("val", frames[cut:], val_pairs_per_video)):
            try:
                ps = pairs_from_frames(fr, rng, n, name=name)
            except ValueError as exc:
                log(f"  {name} {split}: skipped ({exc})")
                continue
            if split == "val":  # shift frame indices of the held-out part back to video time
                ps.source = [f"{name}:{int(s.split(':')[1].split('+')[0]) + cut}+{s.split('+')[1]}" for s in ps.source]
            np.savez(out / f"{split}_{k:02d}_{name}.npz", images=ps.images, flows=ps.flows, valid=ps.valid,
                     source=np.array(ps.source))
            entry[f"{split}_pairs"] = len(ps.images)
            log(f"  {name} {split}: {len(ps.images)} pairs {ps.images.shape[1:3]}")
        manifest["videos"].append(entry)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def load_pairs(data_dir: str | Path, split: str) -> list[PairSet]:
    sets = []
    for f in sorted(Path(data_dir).glob(f"{split}_*.npz")):
        z = np.load(f)
        sets.append(PairSet(z["images"], z["flows"], z["valid"], list(z["source"])))
    return sets


def training_guidance(flow: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
                      dense_prob: float = 0.3) -> np.ndarray:
    """The paper's grid + watershed points, randomly thinned so the model also learns
    from very sparse guidance (1-3 clicks, as users give). (N, 4) (x, y, dx, dy).

    With probability ``dense_prob`` 10-40 random points are added instead of
    thinning: copying nearby guidance is easy to learn, and without such samples
    the model learned the image prior only and ignored guidance for >1.5k steps.
    """
    if rng.random() < dense_prob:
        return sample_guidance(flow, rng, valid=valid, n_random=int(rng.integers(10, 41)))
    pts = sample_guidance(flow, rng, valid=valid, n_random=int(rng.integers(0, 3)))
    if len(pts) == 0:
        return pts
    if rng.random() < 0.6:
        n = int(rng.integers(1, len(pts) + 1))
        pts = pts[rng.choice(len(pts), n, replace=False)]
    return pts


def scattered_guidance(flow: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
                       low: int = 4, high: int = 30) -> np.ndarray:
    """``low``-``high`` points strewn over the whole image: uniformly at random, or
    watershed points topped up at random. For scenes in which everything moves
    (a camera passing a layered scene), as a user with a stereo pair or a panning
    shot would mark them; never one or two clicks, which mean a moving object."""
    n = int(rng.integers(low, high + 1))
    ws = rng.random() < 0.5
    return sample_guidance(flow, rng, valid=valid, grid=False, watershed=ws, n_random=n, max_points=n)


@dataclass
class Sample:
    image: np.ndarray   # (S, S, 3) uint8
    flow: np.ndarray    # (S, S, 2) float32
    valid: np.ndarray   # (S, S) bool
    points: np.ndarray  # (N, 4)
    camera: bool = False  # a camera-motion (parallax) scene: trainable in the "whole scene moves" mode
    #: (S, S) int32: a synthetic scene's layer map (0 the background, k the k-th cut-out); None for a video pair
    labels: np.ndarray | None = None


def _crop(img, flow, valid, size, rng, labels=None):
    """A random ``size`` square of the pair, mirrored half the time; ``labels`` (if any) cut alike."""
    H, W = img.shape[:2]
    y = int(rng.integers(0, H - size + 1))
    x = int(rng.integers(0, W - size + 1))
    sl = (slice(y, y + size), slice(x, x + size))
    img, flow, valid = img[sl], flow[sl].astype(np.float32), valid[sl]
    labels = None if labels is None else labels[sl]
    if rng.random() < 0.5:
        img, flow, valid = img[:, ::-1], flow[:, ::-1].copy(), valid[:, ::-1]
        flow[..., 0] *= -1
        labels = None if labels is None else labels[:, ::-1]
    return (np.ascontiguousarray(img), np.ascontiguousarray(flow), np.ascontiguousarray(valid),
            None if labels is None else np.ascontiguousarray(labels))


class MixedSampler:
    """Deterministic sample stream: sample i depends only on (seed, i)."""

    def __init__(self, pair_sets: list[PairSet], *, crop: int = 256, synth_prob: float = 0.5,
                 seed: int = 0, photos: list[np.ndarray] | None = None, scene_size=(288, 384),
                 pan_prob: float = 0.0, parallax_prob: float = 0.0, emoji_prob: float = 0.0,
                 same_photo_prob: float = 0.0, parts_prob: float = 0.0):
        self.sets = [s for s in pair_sets if min(s.images.shape[1:3]) >= crop]
        self.crop, self.seed, self.scene_size, self.pan_prob = crop, seed, scene_size, pan_prob
        self.parallax_prob = parallax_prob
        self.synth_prob = synth_prob if self.sets else 1.0
        self.photos = photos if photos is not None else default_photos()
        #: the TRAINING half of the emoji silhouettes (the other half is evaluation's)
        self.emoji_prob = emoji_prob
        self.silhouettes = emoji_silhouettes("train") if emoji_prob > 0 else ()
        self.same_photo_prob = same_photo_prob
        self.parts_prob = parts_prob

    def sample(self, i: int) -> Sample:
        rng = np.random.default_rng([self.seed, i])
        pan = parallax = False
        labels = None
        if rng.random() < self.synth_prob:
            seed = int(rng.integers(0, HELDOUT_SEED_BASE))
            # (no draw when parallax scenes are off: older runs keep their sample stream)
            parallax = self.parallax_prob > 0 and rng.random() < self.parallax_prob
            pan = not parallax and rng.random() < self.pan_prob
            if parallax:
                sc = make_parallax_scene(seed, self.scene_size, self.photos)
            else:
                sc = make_scene(seed, self.scene_size, self.photos, silhouettes=self.silhouettes,
                                emoji_prob=self.emoji_prob, same_photo_prob=self.same_photo_prob,
                                parts_prob=self.parts_prob,
                                **({"static_bg_prob": 0.0, "bg_shift": PAN_SHIFT} if pan else {}))
            img, flow, valid, labels = sc["image1"], sc["flow"], sc["valid"], sc["labels"]
        else:
            ps = self.sets[int(rng.integers(len(self.sets)))]
            j = int(rng.integers(len(ps.images)))
            img, flow, valid = ps.images[j], ps.flows[j], ps.valid[j]
        img, flow, valid, labels = _crop(img, flow, valid, self.crop, rng, labels)
        # A panning scene always gets dense guidance: from one or two moving points
        # nobody can tell a panning camera from a moving object on a still background,
        # and for sparse clicks the still background is the answer users expect.
        if parallax:
            points = scattered_guidance(flow, valid, rng)
        else:
            points = training_guidance(flow, valid, rng, **({"dense_prob": 1.0} if pan else {}))
        return Sample(img, flow, valid, points, camera=parallax, labels=labels)

    def batch(self, start: int, n: int) -> dict[str, torch.Tensor]:
        return collate([self.sample(start + k) for k in range(n)])


def collate(samples: list[Sample]) -> dict[str, torch.Tensor]:
    img = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float()
    size = samples[0].image.shape[:2]
    return {
        "image": normalize_image(img),
        "sparse": torch.stack([encode_sparse(s.points, size) for s in samples]),
        "flow": torch.from_numpy(np.stack([s.flow for s in samples])).permute(0, 3, 1, 2).float(),
        "valid": torch.from_numpy(np.stack([s.valid for s in samples])),
        "camera": torch.tensor([s.camera for s in samples], dtype=torch.bool),
        # -1 where the layer is unknown (video pairs)
        "labels": torch.from_numpy(np.stack([np.full(size, -1, np.int64) if s.labels is None
                                             else s.labels.astype(np.int64) for s in samples])),
    }
