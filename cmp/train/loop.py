"""The training loop: end-point-error loss (affinity models; bin models add it to the
original discrete-bin loss), AdamW, bf16 autocast, checkpoint/resume, optional DDP.

Run with ``python -m cmp train`` (one process) or ``torchrun --nproc_per_node=G
-m cmp train ...`` (DistributedDataParallel; each rank draws its own samples).
A run directory holds ``last.pt`` (resume state, weights-only loadable),
``log.jsonl`` and ``model.safetensors`` (the self-describing export).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import save_checkpoint
from ..device import Runtime
from ..model import CONFIGS, CMPConfig, build_cmp
from .data import MixedSampler, collate, load_pairs, training_guidance
from .losses import (LAYER_TARGETS, WALK_LOSS_SIGMA, WALK_TARGETS, training_loss, walk_affinity_loss, walk_layer_loss,
                     walk_solve_loss)
from ..scenes.photos import default_photos
from ..scenes.synthetic import HELDOUT_SEED_BASE, make_scene


@dataclass
class TrainConfig:
    data: str | None = "data/cmp-train"  # output of `python -m cmp data prepare`; None = synthetic only
    out: str = "runs/slim"
    arch: str = "slim-affinity"
    steps: int = 3000
    batch: int = 8
    crop: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    epe_weight: float = 0.2  # decoder models: weight of the EPE term on the expected flow (0 = original loss)
    synth_prob: float = 0.5
    pan_prob: float = 0.0  # share of synthetic scenes whose background pans by up to PAN_SHIFT px
    parallax_prob: float = 0.0  # share of synthetic scenes seen by a camera moving past layers at depth
    emoji_prob: float = 0.0  # share of synthetic cut-outs shaped as a training-half emoji silhouette
    same_photo_prob: float = 0.0  # share of synthetic cut-outs textured from the background's own photo
    parts_prob: float = 0.0  # share of synthetic cut-outs textured in 2-4 parts, each from its own photo crop
    #: affinity models: weight of the walk's edge-weight loss (:func:`cmp.train.losses.walk_affinity_loss`)
    walk_weight: float = 0.0
    #: its tolerance: neighbours whose flows differ by this many px are joined at exp(-1/2)
    walk_sigma: float = WALK_LOSS_SIGMA
    #: what it fits the walk to: "flow" (:func:`~cmp.train.losses.walk_affinity_loss`), "layers", the
    #: synthetic scenes' layer map (:func:`~cmp.train.losses.walk_layer_loss`), or a variant of it
    #: (:data:`~cmp.train.losses.LAYER_TARGETS`: "layers-thin", "layers-across", "layers-balanced")
    walk_target: str = "flow"
    #: affinity models: weight of the loss on the walk's answer to a first click
    #: (:func:`cmp.train.losses.walk_solve_loss`; the synthetic scenes' layer map, video pairs add nothing)
    walk_solve_weight: float = 0.0
    #: ... and how many clicks each scene's walk answers there (each placed where the click protocol would)
    walk_solve_clicks: int = 1
    prior_lr_mult: float = 1.0  # learning-rate multiplier of the model's scalar priors (see param_groups)
    only: str | None = None  # comma-separated parameter-name prefixes to train; the rest frozen, BN statistics kept
    photo_dir: str | None = None  # folder with OpenCV's sample photos (opencv-doc examples/data), added to scikit-image's
    #: affinity models: parallax (camera-motion) samples are trained in the "whole scene moves" mode
    #: (no stay-still option), so they shape the embedding but not the stay-still decision
    parallax_scene_mode: bool = False
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    save_every: int = 100
    val_every: int = 250
    max_minutes: float | None = None
    threads: int | None = None
    init: str | None = None  # checkpoint to copy every same-named, same-shaped tensor from (warm start)
    resume: str | None = None  # a saved training state (last.pt) to continue when OUT has none yet


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: weights (decayed), biases and norms (not decayed), and the model's
    few scalar priors (``model.prior_parameters``, not decayed, learning rate x
    ``cfg.prior_lr_mult``: Adam moves a parameter by about lr per step, and a
    guidance-statistic weight may need to travel several units)."""
    priors = set(getattr(model, "prior_parameters", ()))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if p.ndim > 1 and n not in priors], "weight_decay": cfg.weight_decay,
         "lr_mult": 1.0},
        {"params": [p for n, p in named if p.ndim <= 1 and n not in priors], "weight_decay": 0.0, "lr_mult": 1.0},
        {"params": [p for n, p in named if n in priors], "weight_decay": 0.0, "lr_mult": cfg.prior_lr_mult},
    ]
    return [g for g in groups if g["params"]]


def freeze_all_but(model: torch.nn.Module, only: str | None) -> list[str]:
    """Train only parameters whose name starts with one of the comma-separated ``only``
    prefixes; returns their names. With a prefix list the model stays in eval mode
    (BatchNorm keeps its statistics), so the frozen part is exactly the checkpoint's."""
    if not only:
        return [n for n, _ in model.named_parameters()]
    prefixes = tuple(p.strip() for p in only.split(",") if p.strip())
    names = [n for n, p in model.named_parameters() if n.startswith(prefixes)]
    if not names:
        raise ValueError(f"--only {only!r} matches no parameter of this model")
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    model.eval()
    return names


def validation_set(val_pairs, n_synth: int = 8, crop: int = 256, n_video: int = 8):
    """Fixed held-out batch: synthetic scenes with held-out seeds + held-out video pairs."""
    rng = np.random.default_rng(12345)
    samples = []
    from .data import Sample, _crop
    for k in range(n_synth):
        sc = make_scene(HELDOUT_SEED_BASE + k)
        img, flow, valid, _ = _crop(sc["image1"], sc["flow"], sc["valid"], crop, rng)
        samples.append(Sample(img, flow, valid, training_guidance(flow, valid, rng)))
    sets = [s for s in val_pairs if min(s.images.shape[1:3]) >= crop]
    for k in range(n_video if sets else 0):
        ps = sets[k % len(sets)]
        j = int(rng.integers(len(ps.images)))
        img, flow, valid, _ = _crop(ps.images[j], ps.flows[j], ps.valid[j], crop, rng)
        samples.append(Sample(img, flow, valid, training_guidance(flow, valid, rng)))
    return collate(samples)


@torch.no_grad()
def evaluate(model, batch: dict, rt: Runtime) -> dict:
    was_training = model.training
    model.eval()
    with rt.autocast():
        out = model(batch["image"].to(rt.device), batch["sparse"].to(rt.device))
    flow = model.to_flow(out, batch["flow"].shape[-2:]).cpu()
    epe = (flow - batch["flow"]).norm(dim=1)
    m = batch["valid"]
    model.train(was_training)
    return {"val_epe": float(epe[m].mean()), "val_zero_epe": float(batch["flow"].norm(dim=1)[m].mean())}


def warm_start(model, path: str) -> int:
    """Copy every tensor of checkpoint ``path`` whose name and shape exist in ``model``."""
    from ..checkpoints import read_state_dict
    src, _ = read_state_dict(path)
    own = model.state_dict()
    hits = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(hits, strict=False)
    return len(hits)


def _ddp_setup():
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def training_state(model, opt, step: int, mcfg: CMPConfig, cfg: TrainConfig) -> dict:
    """What resuming needs and nothing else (weights-only loadable, about 12 MB for
    slim-affinity): weights, optimizer moments, step, torch RNG, the architecture, and
    the flags of the run (``train``, for the record: the data stream is a pure function
    of the seed and the sample index, so nothing else needs saving)."""
    return {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": mcfg.to_json(),
            "torch_rng": torch.get_rng_state(), "train": json.dumps(asdict(cfg))}


class _NoBar:
    """What the loop needs of a tqdm bar, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def train(cfg: TrainConfig, log=print) -> Path:
    """Train (or resume) a CMP; returns the path of the exported safetensors file."""
    rank, world = _ddp_setup()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    device = cfg.device
    if world > 1 and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"
    rt = Runtime.create(device, cfg.precision)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last.pt"
    source = state_path if state_path.is_file() else Path(cfg.resume) if cfg.resume else None
    if source is not None and not source.is_file():
        raise ValueError(f"--resume {cfg.resume}: no such file")
    stored = torch.load(source, map_location="cpu", weights_only=True) if source is not None else None
    mcfg: CMPConfig = CONFIGS[cfg.arch]
    if stored is not None and stored.get("config"):
        # A resumed run keeps the network it was started with, whatever --arch says now.
        resumed_cfg = CMPConfig.from_json(stored["config"])
        if resumed_cfg != mcfg:
            log(f"resuming the stored architecture {resumed_cfg.name}, not --arch {cfg.arch}")
        mcfg = resumed_cfg
    model = build_cmp(mcfg).train().to(rt.device)
    if cfg.parallax_scene_mode and not getattr(model, "supports_scene_motion", False):
        raise ValueError(f"--parallax-scene-mode needs an affinity architecture, not {cfg.arch}")
    walks = bool(cfg.walk_weight or cfg.walk_solve_weight)
    if walks and not hasattr(model, "log_beta"):
        raise ValueError(f"--walk-weight and --walk-solve-weight need an affinity architecture, not {mcfg.name}")
    if cfg.walk_target not in WALK_TARGETS:
        raise ValueError(f"walk_target must be one of {', '.join(WALK_TARGETS)}, not {cfg.walk_target!r}")
    if walks and world > 1:
        raise ValueError("--walk-weight and --walk-solve-weight run in one process only")
    trained = freeze_all_but(model, cfg.only)
    if cfg.only:
        log(f"training only {len(trained)} tensors: {', '.join(trained[:8])}{' ...' if len(trained) > 8 else ''}")
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr)
    step = 0
    if cfg.init and stored is None:
        log(f"warm start from {cfg.init}: {warm_start(model, cfg.init)} tensors copied")
    if stored is not None:
        st = stored
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = int(st["step"])
        if "torch_rng" in st:
            torch.set_rng_state(st["torch_rng"])
        log(f"resumed from {source} at step {step}")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)

    train_pairs = load_pairs(cfg.data, "train") if cfg.data else []
    val_pairs = load_pairs(cfg.data, "val") if cfg.data else []
    sampler = MixedSampler(train_pairs, crop=cfg.crop, synth_prob=cfg.synth_prob, seed=cfg.seed * 1000 + rank,
                           pan_prob=cfg.pan_prob, parallax_prob=cfg.parallax_prob, emoji_prob=cfg.emoji_prob,
                           same_photo_prob=cfg.same_photo_prob, parts_prob=cfg.parts_prob,
                           photos=default_photos(cfg.photo_dir))
    val_batch = validation_set(val_pairs, crop=cfg.crop) if rank == 0 else None
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if rank == 0:
        log(f"training {mcfg.name} on {rt.device} ({rt.precision}), {sum(len(s.images) for s in train_pairs)} "
            f"video pairs + synthetic scenes, steps {step}..{cfg.steps}")

    def save():
        if rank != 0:
            return
        tmp = out / "last.pt.tmp"
        torch.save(training_state(model, opt, step, mcfg, cfg), tmp)
        os.replace(tmp, state_path)
        save_checkpoint(model, out / "model.safetensors", steps=str(step), arch=mcfg.name)

    try:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, disable=rank != 0, mininterval=10)
    except ImportError:  # tqdm is a dependency, but training must not die for a progress bar
        bar = _NoBar()
    t0 = time.time()
    logf = open(out / "log.jsonl", "a") if rank == 0 else None
    ema = None
    while step < cfg.steps:
        batch = sampler.batch(step * cfg.batch, cfg.batch)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg) * g["lr_mult"]
        img = batch["image"].to(rt.device)
        sparse = batch["sparse"].to(rt.device)
        mode = {"still": (~batch["camera"]).tolist()} if cfg.parallax_scene_mode else {}
        flow, valid = batch["flow"].to(rt.device), batch["valid"].to(rt.device)
        with rt.autocast():
            if walks:  # the embedding is needed beside the flow
                feats = model.encode_image(img)
                pred = model.decode(feats, sparse, **mode)
            else:
                pred = net(img, sparse, **mode)
        loss = training_loss(mcfg, pred, flow, valid, epe_weight=cfg.epe_weight)
        if walks:
            beta = torch.nn.functional.softplus(model.log_beta).detach()
        if cfg.walk_solve_weight:
            loss = loss + cfg.walk_solve_weight * walk_solve_loss(feats.embed, beta, batch["labels"],
                                                                      clicks=cfg.walk_solve_clicks)
        if cfg.walk_weight:
            if cfg.walk_target in LAYER_TARGETS:
                walk = walk_layer_loss(feats.embed, beta, batch["labels"].to(rt.device),
                                       **LAYER_TARGETS[cfg.walk_target])
            else:
                walk = walk_affinity_loss(feats.embed, beta, flow, valid, sigma=cfg.walk_sigma)
            loss = loss + cfg.walk_weight * walk
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        lv = loss.detach().item()
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
        if rank == 0:
            bar.update(1)
            rec = {"step": step, "loss": lv, "loss_ema": ema, "lr": lr_at(step - 1, cfg),
                   "minutes": (time.time() - t0) / 60}
            if step % cfg.val_every == 0 or step == cfg.steps:
                rec.update(evaluate(model, val_batch, rt))
                log(json.dumps(rec))
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
        if step % cfg.save_every == 0 or step == cfg.steps:
            save()
        if cfg.max_minutes and (time.time() - t0) / 60 > cfg.max_minutes:
            log(f"time limit reached at step {step}; state saved, rerun to resume")
            save()
            break
    if rank == 0:
        bar.close()
        logf.close()
    return out / "model.safetensors"
