"""Part / object / group candidates: IoU after one click, on a real photo and on our composites.

    python -m benchmarks.candidates [--composites N] [--objects] [--emoji N]

Real: scikit-image's stereo motorcycle (Middlebury), the object mask cut from
its true disparity (:func:`cmp.eval.real.motorcycle_whole`, at full size); our composites are the
held-out seeds of :mod:`cmp.eval.composites` (synthetic, the training
generator's distribution). ``--objects`` adds the 8 real objects of the same photo
(``motorcycle-objects`` of :mod:`cmp.eval.segmentation`), ``--emoji N`` the first N emoji
composites (evaluation glyphs on real photos never trained on). The click is the RITM first click (the interior
point farthest from the object's border). Rows: the default single mask
(:func:`cmp.segment.segment`), each candidate, the most confident one (what the
page selects and ``python -m cmp segment`` writes) and the best one in hindsight (the
oracle SAM-style papers report).
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def one_click(method_default, method_candidates, rgb, gt) -> dict:
    from cmp.eval.segmentation import iou, next_click
    x, y, _ = next_click(gt, np.zeros_like(gt))
    row = {"default": iou(method_default(rgb, [(x, y)]), gt)}
    cands = method_candidates(rgb, [(x, y)])
    from cmp.candidates import best_candidate
    for c in cands:
        row[c.name] = iou(c.mask, gt)
    row["most confident"] = row[cands[best_candidate(cands)].name]
    row["best (oracle)"] = max(iou(c.mask, gt) for c in cands)
    row["confidences"] = {c.name: round(c.confidence, 3) for c in cands}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--composites", type=int, default=10, help="held-out composites (0 = none)")
    ap.add_argument("--objects", action="store_true",
                    help="also the 8 real objects of the motorcycle photo (masks from its true disparity)")
    ap.add_argument("--emoji", type=int, default=0, help="emoji composites on real photos (0 = none)")
    ap.add_argument("--checkpoint", default=None, help="model (default: the embedded one)")
    args = ap.parse_args(argv)
    from cmp.engine import Engine
    from cmp.eval.composites import eval_composites
    from cmp.eval.baselines import GeodesicPropagator
    from cmp.eval.segmentation import load_set
    from cmp.candidates import segment_candidates
    from cmp.segment import segment

    engines = {"model": Engine.from_checkpoint(args.checkpoint), "geodesic": GeodesicPropagator()}
    from cmp.eval.real import motorcycle_whole
    whole = motorcycle_whole(None)[0]
    sets = {"real: motorcycle": [(whole.rgb, whole.mask)]}
    if args.objects:
        sets["real: 8 motorcycle objects"] = [(c.rgb, c.mask) for c in load_set("motorcycle-objects", 8)]
    if args.emoji:
        sets[f"composite on real photos: {args.emoji} emoji"] = [(c.rgb, c.mask) for c in load_set("emoji", args.emoji)]
    if args.composites:
        sets[f"ours: {args.composites} composites"] = [(c.rgb, c.mask) for c in eval_composites(args.composites)]
    report = {}
    for set_name, items in sets.items():
        for eng_name, eng in engines.items():
            rows = [one_click(lambda im, p: segment(eng, im, p).mask, lambda im, p: segment_candidates(eng, im, p),
                              rgb, gt) for rgb, gt in items]
            keys = [k for k in rows[0] if k != "confidences"]
            report[f"{set_name} / {eng_name}"] = {
                **{k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys},
                **({"confidences": rows[0]["confidences"]} if len(rows) == 1 else {})}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
