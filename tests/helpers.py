"""Plain helpers shared by test files (fixtures live in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, timeout=180) -> subprocess.CompletedProcess:
    """``python -m cmp ARGS`` in a fresh interpreter from the repository root (text output captured)."""
    e = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cmp", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=REPO_ROOT, timeout=timeout)


# -- checkpoints of the original CMP code, with random weights -----------------------------

def random_model(cfg, seed=0):
    torch.manual_seed(seed)
    from cmp.model import build_cmp
    m = build_cmp(cfg)
    with torch.no_grad():  # make BN buffers non-default so a load that skipped them would show
        for k, v in m.state_dict().items():
            if k.endswith(("running_mean", "running_var")):
                v.copy_(torch.rand_like(v) + 0.5)
    return m


def original_format(model) -> dict:
    """What the original training code saved: 'module.' keys, no num_batches_tracked, SGD state."""
    sd = {f"module.{k}": v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4).state_dict()
    opt["state"] = {0: {"momentum_buffer": torch.zeros_like(params[0])}}
    return {"step": 42000, "state_dict": sd, "optimizer": opt}


def save_original(model, path, legacy=False) -> Path:
    torch.save(original_format(model), path, _use_new_zipfile_serialization=not legacy)
    return Path(path)


def registry_with_a_segmentation_model(tmp_path):
    """A registry of three shipped tiny files: "motion" (alias "default") segments with "grouping"."""
    import hashlib
    import json

    from cmp.checkpoints import save_checkpoint
    from cmp.model import TINY

    entries = []
    for seed, name, extra in ((1, "motion", {"aliases": ["default"], "segmentation": "grouping"}), (2, "grouping", {}),
                              (3, "other", {})):
        path = save_checkpoint(random_model(TINY, seed=seed), tmp_path / f"{name}.safetensors")
        entries.append({"name": name, "description": "x", "license": "MIT", "config": "tiny", "file": path.name,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **extra})
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"checkpoints": entries}))
    return reg
