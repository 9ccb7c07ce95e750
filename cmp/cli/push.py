"""`python -m cmp push CHECKPOINT_OR_RUN_DIR owner/repo`: share a model as a Hub model repo."""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from . import CLIError
from .options import CHECKPOINT_HELP

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help="upload a trained model to the Hugging Face Hub as a model repo",
        description="Write a Hub model repo (config.json, model.safetensors, README.md model card with the "
                    "training command, data, steps and the numbers of any eval JSON in the run folder) and "
                    "upload it with huggingface_hub (token from `hf auth login` or HF_TOKEN; HF_ENDPOINT is "
                    "honoured). Load it back with --checkpoint hf://OWNER/REPO.")
    p.add_argument("source", metavar="CHECKPOINT_OR_RUN_DIR",
                   help="a training run folder (output of `train --out`) or a checkpoint: " + CHECKPOINT_HELP)
    p.add_argument("repo_id", metavar="OWNER/REPO", help="the model repo to create or update")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--dry-run", action="store_true", help="only write the folder (see --out); upload nothing")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where to write the folder (default: a temporary one; with --dry-run: ./hub-OWNER--REPO)")
    p.add_argument("--license", default=None, help="licence in the card's metadata (default: mit)")
    p.add_argument("--eval", action="append", default=[], metavar="JSON",
                   help="eval JSON to report in the card (default: *.json and eval/*.json of a run folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import export_folder, push

    if not _REPO_ID.fullmatch(args.repo_id) or ".." in args.repo_id:
        raise CLIError(f"{args.repo_id!r} is not a repo id; write OWNER/REPO")
    for e in args.eval:
        if not Path(e).is_file():
            raise CLIError(f"no eval JSON at {e}")
    with tempfile.TemporaryDirectory(prefix="cmp-push-") as tmp:
        out = Path(args.out) if args.out else (Path(f"hub-{args.repo_id.replace('/', '--')}") if args.dry_run
                                               else Path(tmp) / "repo")
        folder = export_folder(args.source, out, args.repo_id, license=args.license, evals=args.eval or None)
        files = ", ".join(sorted(p.name for p in folder.iterdir()))
        print(f"wrote {folder}: {files}", file=sys.stderr)
        if args.dry_run:
            print(folder)
            return 0
        url = push(folder, args.repo_id, private=args.private)
        print(url)
        print(f"load it with --checkpoint hf://{args.repo_id}", file=sys.stderr)
    return 0
