"""Time and memory of loading a checkpoint from the Hub and of switching models.

A stand-in for the original ResNet-50 (random weights in the original ``.pth.tar``
layout, with SGD momentum buffers like the real 218 MB file) is served by the loopback
Hub of ``tests/hub_server.py``. Each load runs in a fresh interpreter so its peak RSS
is its own:

* cold: fetch through the loopback Hub into an empty HF cache, then load;
* warm: the same from the disk cache, offline (``HF_HUB_OFFLINE=1``);
* switch: in one process, an :class:`cmp.pool.EnginePool` with the embedded default;
  the stand-in is loaded from the disk cache once, then the session switches back and
  forth between the two loaded models.

Usage: ``OMP_WAIT_POLICY=PASSIVE python -m benchmarks.hub_load [--switches 20]``
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = "hf://org/cmp-weights/models/cmp/ckpt_iter_42000.pth.tar"

CHILD = r"""
import json, sys, time
def vm(field):  # MB; VmHWM (peak RSS) starts afresh at exec, unlike getrusage's ru_maxrss
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
import torch
from cmp.engine import Engine
from cmp.pool import EnginePool
mode, ref, switches = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {"import_s": time.perf_counter() - t0, "rss_before_mb": vm("VmRSS")}
if mode == "load":
    t = time.perf_counter()
    eng = Engine.from_checkpoint(ref, device="cpu", precision="fp32")
    out["load_s"] = time.perf_counter() - t
    out["weights_mb"] = eng.weight_bytes / 2**20
else:
    default = Engine.from_checkpoint("default", device="cpu", precision="fp32")
    pool = EnginePool(default, default_ref="default")
    t = time.perf_counter()
    big = pool.get(ref)
    out["first_switch_s"] = time.perf_counter() - t
    times = []
    for i in range(switches):
        t = time.perf_counter()
        pool.get(ref if i % 2 else "")
        times.append(time.perf_counter() - t)
    times.sort()
    out["switch_loaded_median_ms"] = 1000 * times[len(times) // 2]
    out["switch_loaded_max_ms"] = 1000 * times[-1]
    out["models"] = {name: round(cost_w / 2**20, 1) for name, cost_w in
                     ((default.name, default.weight_bytes), (big.name, big.weight_bytes))}
out["rss_after_mb"] = vm("VmRSS")
out["peak_rss_mb"] = vm("VmHWM")
print(json.dumps(out))
"""


def standin(path: Path) -> int:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import random_model

    from cmp.model import RESNET50
    model = random_model(RESNET50)
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    momentum = {i: {"momentum_buffer": torch.zeros_like(p)} for i, p in enumerate(model.parameters())}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).state_dict()
    opt["state"] = momentum
    torch.save({"step": 42000, "state_dict": sd, "optimizer": opt}, path)
    return path.stat().st_size


def child(mode: str, env: dict, switches: int = 0) -> dict:
    e = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    r = subprocess.run([sys.executable, "-c", CHILD, mode, REF, str(switches)], env=e, capture_output=True,
                       text=True, timeout=1800)
    if r.returncode:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--switches", type=int, default=20)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from hub_server import FakeHub

    with tempfile.TemporaryDirectory(prefix="cmp-hub-bench-") as tmp:
        tmp = Path(tmp)
        size = standin(tmp / "ckpt.pth.tar")
        with FakeHub() as hub:
            hub.add("org/cmp-weights", REF.split("cmp-weights/", 1)[1], (tmp / "ckpt.pth.tar").read_bytes())
            env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp / "hf"), "HF_HUB_OFFLINE": "0",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
            cold = child("load", env)
            warm = child("load", {**env, "HF_HUB_OFFLINE": "1"})
            switch = child("switch", {**env, "HF_HUB_OFFLINE": "1"}, args.switches)
    print(json.dumps({"standin_file_mb": round(size / 2**20, 1), "cold_fetch_and_load": cold,
                      "warm_load_from_cache": warm, "pool_switch": switch}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
