"""`python -m cmp bench`: per-click latency, original per-click pipeline vs the cached engine.

Speed targets live here, not in timed tests. "Original" is
:meth:`Engine.propagate_uncached` (the whole network per click; a segmentation
click runs the image 4 times, once per probe direction). "Cached" is
``set_image`` once, then ``propagate`` (an arrow update) or ``propagate_batch``
with 4 probes (a segmentation click) on the cached features. "seg call" is a whole
:func:`cmp.segment.segment` call for one positive click as the Segment page makes it with its
evidence closed, the CLI and the HTTP API (zoom crop already encoded, frame pins, the random
walk, mask clean-up), image hashing included; "+evidence" the same with the probes' flows too
(the page with its evidence open).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from . import CLIError

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="per-click latency: original pipeline vs cached engine",
                       description="Median per-click latency (after one warm-up) of the original per-click "
                                   "pipeline and of the cached engine, for the ResNet-50 architecture with "
                                   "random weights and for a checkpoint, in each precision.")
    p.add_argument("--checkpoint", default="default", metavar="REF",
                   help="checkpoint to time besides random ResNet-50 (default: the embedded model); "
                        "'none' times ResNet-50 only")
    p.add_argument("--precision", default="fp32,auto",
                   help="comma-separated precisions, 'auto' = the device's own (default fp32,auto: fp32, and "
                        "bf16 where the CPU has AMX/AVX512-BF16 or on CUDA; a CPU without them would only "
                        "emulate bf16, slowly)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median; default 5)")
    p.add_argument("--size", type=int, default=384, help="square test image side and model side, px (default 384)")
    p.add_argument("--photo", type=int, default=None, metavar="PX",
                   help="the square test image's side, px, when it should differ from the model side (--size): "
                        "the engine shrinks a larger photo for the model, and where the click's crop (half the "
                        "photo's side) is larger than the refinement's 384 px working size, the segment call "
                        "brings its mask back to the crop's size (default: --size)")
    p.add_argument("--eager", action="store_true",
                   help="encode images with the eager model where the engine would use its frozen bf16 graph "
                        "(cmp.model.frozen), to compare set_image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _median_time(fn, repeats: int, setup=None) -> float:
    if setup:
        setup()
    fn()  # warm-up: allocator, oneDNN kernel selection
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _test_image(size: int):
    import numpy as np
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    base = np.stack([x, y, 1 - x * y], -1) * 200 + 20
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def bench_engine(engine, rgb, repeats: int) -> dict:
    """Median seconds of each per-click path for one engine on one image."""
    import numpy as np

    from ..segment import PROBE_MAGNITUDE, probe_sets, segment

    h, w = rgb.shape[:2]
    cx, cy = w / 2, h / 2
    arrow = [np.array([[cx, cy, 12.0, -5.0], [w * 0.2, h * 0.8, 0.0, 0.0]])]
    probes = probe_sets([(cx, cy)], [], PROBE_MAGNITUDE, PROBE_MAGNITUDE)  # one segmentation click
    # a camera move: 10 arrows over the image, the whole-scene mode's affine fit
    gx, gy = np.meshgrid(np.linspace(0.1, 0.9, 5) * w, np.linspace(0.25, 0.75, 2) * h)
    scene = [np.stack([gx.ravel(), gy.ravel(), 8.0 + 0.02 * gx.ravel(), np.full(10, -2.0)], 1)]

    def fresh():
        engine.cache.clear()

    res = {"set_image": _median_time(lambda: engine.set_image(rgb), repeats, setup=fresh)}
    handle = engine.set_image(rgb)
    res["arrow_original"] = _median_time(lambda: engine.propagate_uncached(rgb, arrow), repeats)
    # the page's arrow: the kind of motion inferred from the guidance (scene_motion=None)
    res["arrow_cached"] = _median_time(lambda: engine.propagate_batch(handle, arrow, scene_motion=None), repeats)
    res["scene_cached"] = _median_time(lambda: engine.propagate_batch(handle, scene, scene_motion=None), repeats)
    # the probes as segment() runs them: the weighted mean, no edge snap of the flow
    res["segment_original"] = _median_time(lambda: engine.propagate_uncached(rgb, probes, edges=False), repeats)
    res["segment_cached"] = _median_time(lambda: engine.propagate_batch(handle, probes, blend="mean", edges=False),
                                         repeats)
    res["segment_call"] = _median_time(lambda: segment(engine, rgb, [(cx, cy)]), repeats)
    res["segment_evidence"] = _median_time(lambda: segment(engine, rgb, [(cx, cy)], evidence=True), repeats)
    res["arrow_speedup"] = res["arrow_original"] / res["arrow_cached"]
    res["segment_speedup"] = res["segment_original"] / res["segment_cached"]
    return res


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise CLIError("--repeats must be at least 1")
    if not 64 <= args.size <= 2048:
        raise CLIError("--size must be between 64 and 2048 px")
    photo = args.size if args.photo is None else args.photo
    if not 64 <= photo <= 4096:
        raise CLIError("--photo must be between 64 and 4096 px")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not precisions:
        raise CLIError("--precision needs at least one of fp32, bf16, fp16, auto")

    import torch

    from ..checkpoints import load_checkpoint
    from ..device import Runtime, cpu_has_bf16
    from ..engine import Engine
    from ..model import RESNET50, build_cmp

    runtimes = [Runtime.create(args.device, p) for p in precisions]  # validates before slow work
    runtimes = list({(rt.device, rt.precision): rt for rt in runtimes}.values())  # "auto" may be fp32
    models = [("resnet50 (random)", build_cmp(RESNET50))]
    if args.checkpoint.lower() != "none":
        ck = load_checkpoint(args.checkpoint)
        models.append((f"{ck.label} ({ck.config.name})", ck.model))
    rgb = _test_image(photo)

    rows = []
    for label, model in models:
        params = sum(p.numel() for p in model.parameters())
        for rt in runtimes:
            eng = Engine(model, rt, side=args.size, name=label, freeze=False if args.eager else None)
            r = bench_engine(eng, rgb, args.repeats)
            rows.append({"model": label, "params": params, "device": rt.device.type,
                         "precision": rt.precision, "frozen_encoder": eng.frozen, **r})
            del eng
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_bf16": cpu_has_bf16(),
            "machine": platform.processor() or platform.machine(), "size": args.size, "photo": photo,
            "repeats": args.repeats, "unit": "seconds (median)"}
    if args.json:
        print(json.dumps({"info": info, "results": rows}, indent=2))
        return 0
    print(f"per-click latency, median of {args.repeats} after warm-up, {photo}x{photo} image, model side {args.size}, "
          f"torch {info['torch']}, {info['threads']} threads (ms)")
    head = ("model", "prec", "set_image", "arrow orig", "arrow cached", "x", "scene10 cached", "seg4 orig",
            "seg4 cached", "x", "seg call", "+evidence")
    table = [head]
    for r in rows:
        ms = lambda k: f"{1000 * r[k]:.0f}"  # noqa: E731
        precision = r["precision"] + " (frozen)" * r["frozen_encoder"]
        table.append((r["model"], precision, ms("set_image"), ms("arrow_original"), ms("arrow_cached"),
                      f"{r['arrow_speedup']:.1f}", ms("scene_cached"), ms("segment_original"), ms("segment_cached"),
                      f"{r['segment_speedup']:.1f}", ms("segment_call"), ms("segment_evidence")))
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    for t in table:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(t, widths))))
    print("orig = whole network per click (seg4: image repeated 4x); cached = set_image once, then "
          "the per-guidance part (sparse encoder + decoder, or the affinity blend); x = speedup; "
          "scene10 = 10 spread, agreeing arrows (a camera move, the whole-scene mode's affine fit); "
          "seg call = a whole Segment-page click (zoom crop cached, frame pins, the walk, clean-up); "
          "+evidence = the same with the probes' flows (the page's evidence open)")
    return 0
