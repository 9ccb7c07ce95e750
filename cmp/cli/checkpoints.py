"""`python -m cmp checkpoints list|download REF`: the checkpoint registry from the shell."""
from __future__ import annotations

import argparse
import json
from pathlib import Path



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checkpoints", help="list or download registered checkpoints",
                       description="Named checkpoints from the registry; downloads use the Hugging Face "
                                   "cache and honour HF_ENDPOINT / HF_HUB_OFFLINE / HF_HOME.")
    p.add_argument("--registry", default=None, metavar="FILE",
                   help="registry JSON to use (default: checkpoints/registry.json)")
    act = p.add_subparsers(dest="action", metavar="ACTION")
    act.required = True
    ls = act.add_parser("list", help="show the registered checkpoints and whether they are available")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)
    dl = act.add_parser("download", help="fetch a checkpoint into the cache and verify its sha256")
    dl.add_argument("name", metavar="REF", help="registry name or alias, or an hf:// reference")
    dl.set_defaults(func=run_download)
    so = act.add_parser("soup", help="average checkpoints of one architecture into one file (a weight soup)",
                        description="The weighted mean of every weight of local checkpoint files of one "
                                    "architecture (Wortsman et al., 2022), written as a new checkpoint: how "
                                    "the embedded grouping model was made (its card).")
    so.add_argument("files", nargs="+", metavar="FILE", help="checkpoint files (.safetensors or .pth)")
    so.add_argument("--out", required=True, metavar="FILE", help="the soup's .safetensors file")
    so.add_argument("--weights", default=None, metavar="W,W,...",
                    help="one weight per file, summing to 1 (default: equal)")
    so.add_argument("--walk-sharpness", type=float, default=None, metavar="S",
                    help="the soup's random-walk sharpness (default: the first file's)")
    so.set_defaults(func=run_soup)


def _registry(args) -> Path:
    from ..checkpoints import REGISTRY_PATH
    return Path(args.registry) if args.registry else REGISTRY_PATH


def run_list(args: argparse.Namespace) -> int:
    from ..checkpoints import entry_status, format_size, registry_entries
    reg = _registry(args)
    rows = []
    for e in registry_entries(reg):
        status, path = entry_status(e, reg)
        rows.append({"name": e.name, "aliases": list(e.aliases), "config": e.config, "size": e.size,
                     "status": status, "path": path, "license": e.license, "description": e.description,
                     "hub": [f"{h.repo_type}:{h.repo_id}/{h.filename}" for h in e.hub]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("NAME", "ALIASES", "CONFIG", "SIZE", "STATUS")
    table = [head] + [(r["name"], ",".join(r["aliases"]) or "-", r["config"], format_size(r["size"]), r["status"])
                      for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
    for r in rows:
        print(f"\n{r['name']}: {r['description']}\n  license: {r['license']}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ..checkpoints import parse_ref, resolve
    ref = parse_ref(args.name, allow_local=False, registry=_registry(args))
    path, entry = resolve(ref, registry=_registry(args))
    name = entry.name if entry else args.name
    print(f"{name}: {path} (sha256 verified)" if entry and entry.sha256 else f"{name}: {path}")
    return 0


def run_soup(args: argparse.Namespace) -> int:
    from ..checkpoints import CheckpointError, save_checkpoint, weight_soup
    from . import CLIError
    from .options import output_path

    try:
        weights = None if args.weights is None else [float(w) for w in args.weights.split(",")]
    except ValueError:
        raise CLIError(f"--weights must be numbers separated by commas, not {args.weights!r}") from None
    out = output_path(args.out, (".safetensors",), flag="--out")
    try:
        model = weight_soup(args.files, weights, args.walk_sharpness)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    names = ", ".join(Path(f).name for f in args.files)
    path = save_checkpoint(model, out, steps="soup", soup=f"{names}; weights {args.weights or 'equal'}")
    print(f"{path}: the soup of {names}")
    return 0
