"""Hostile-use figures (issue 14): peak server RSS for three uploads, disk after N requests,
a flooding client beside a polite one, and how fast SIGINT/SIGTERM stop the app.

    python -m benchmarks.hostile                          # this checkout, embedded model
    python -m benchmarks.hostile --app-dir /tmp/main-copy # another checkout (e.g. `git archive main`)
    python -m benchmarks.hostile --cases rss,disk --checkpoint path/to/tiny.safetensors

Each case starts ``python app.py`` from ``--app-dir`` in a subprocess with its own TMPDIR,
drives it through raw REST calls (``/gradio_api/upload`` + ``/gradio_api/call/<name>``),
and samples the server's resident memory from /proc every 10 ms (Linux only). The test
suite (tests/test_security.py) runs the same functions with the tiny model.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# -- files -----------------------------------------------------------------------------------

def png_zeros(path: Path, width: int, height: int, depth: int = 8, colour: int = 2) -> Path:
    """A valid all-zero PNG written chunk by chunk (the decoded pixels never exist here):
    7999x7999 RGB is 187 kB, 16-bit grey 124 kB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    channels = {0: 1, 2: 3, 6: 4}[colour]
    row = bytes(1 + width * channels * depth // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def texture_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, height // 16), max(2, width // 16), 3)) * 255).astype(np.uint8)
    Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).save(path)
    return path


# -- the server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples a process's RSS every ``period`` seconds in a thread; ``peak`` in MB."""

    def __init__(self, pid: int, period: float = 0.01):
        self.pid, self.period, self.peak = pid, period, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Server:
    """``python app.py`` from ``app_dir`` on a free loopback port, with its own TMPDIR."""

    def __init__(self, app_dir: Path = REPO, checkpoint: str | None = None, tmp: Path | None = None,
                 args: list[str] = (), env: dict | None = None):
        self.own_tmp = tmp is None
        self.tmp = Path(tmp or tempfile.mkdtemp(prefix="cmp-hostile-"))
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cmd = [sys.executable, "app.py", "--port", str(self.port), *args]
        if checkpoint:
            cmd += ["--checkpoint", checkpoint]
        e = {**os.environ, "TMPDIR": str(self.tmp), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
             "PYTHONDONTWRITEBYTECODE": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
        e.pop("GRADIO_TEMP_DIR", None)
        self.log = open(self.tmp / "server.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=app_dir, env=e, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.tmp / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        """Send ``sig``; seconds until the process is gone (killed after ``timeout``)."""
        t0 = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return time.perf_counter() - t0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def upload(url: str, path, name: str = "x.png") -> dict:
    with open(path, "rb") as fh:
        r = httpx.post(f"{url}gradio_api/upload", files={"files": (name, fh, "image/png")}, timeout=120)
    r.raise_for_status()
    return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}


def call(url: str, name: str, data: list, headers: dict | None = None, timeout: float = 600) -> tuple[str, object]:
    """One raw REST call: (event, data), or ("http <status>", body) when refused at the door."""
    r = httpx.post(f"{url}gradio_api/call/{name}", json={"data": data}, headers=headers or {}, timeout=timeout)
    if r.status_code != 200:
        return f"http {r.status_code}", r.text
    return last_event(httpx.get(f"{url}gradio_api/call/{name}/{r.json()['event_id']}", timeout=timeout).text)


def last_event(stream: str) -> tuple[str, object]:
    """(event, data) of the last event in a /gradio_api/call result stream other than
    heartbeats and progress ("complete" or "error")."""
    found = ("", None)
    for block in stream.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
        if lines.get("event") not in (None, "heartbeat", "generating", "progress"):
            found = (lines["event"], json.loads(lines.get("data", "null")))
    return found


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(folder):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


# -- the cases ---------------------------------------------------------------------------------

def flow_args(image) -> list:
    return [image, "[[5, 5, 3, 0]]", False]


def gallery_args(image) -> list:
    return [image, "rotation", "normal", 0, True, "jitter"]


def rss_case(server: Server, files: Path) -> dict:
    """Peak extra RSS (MB, over the RSS after a warm-up) for: a 7999x7999 RGB PNG on
    /motion_flow, a 7999x7999 16-bit grey PNG on /motion_flow, three Gallery calls in
    parallel on three such 16-bit PNGs (different files, so no decode is shared); and the
    RSS after each. Returns {case: (peak extra MB, after extra MB, outcome)}."""
    small = upload(server.url, texture_png(files / "small.png", 320, 240))
    call(server.url, "motion_flow", flow_args(small))
    call(server.url, "gallery_task", gallery_args(small))
    time.sleep(1)
    base = rss_mb(server.pid)
    out = {"baseline_mb": base}
    rgb = upload(server.url, png_zeros(files / "rgb8k.png", 7999, 7999))
    grey = upload(server.url, png_zeros(files / "grey16.png", 7999, 7999, depth=16, colour=0))
    greys = [upload(server.url, png_zeros(files / f"grey16-{k}.png", 7998 - k, 7999, depth=16, colour=0))
             for k in range(3)]
    for name, run in (("rgb_png_7999", lambda: [call(server.url, "motion_flow", flow_args(rgb))]),
                      ("grey16_png_7999", lambda: [call(server.url, "motion_flow", flow_args(grey))]),
                      ("gallery_x3_parallel", lambda: list(ThreadPoolExecutor(3).map(
                          lambda g: call(server.url, "gallery_task", gallery_args(g)), greys)))):
        with RssSampler(server.pid) as s:
            results = run()
        time.sleep(1)
        outcome = ",".join(e if e == "complete" else f"{e}: {str(p)[:80]}" for e, p in results)
        out[name] = (round(s.peak - base), round(rss_mb(server.pid) - base), outcome)
    return out


def disk_case(server: Server, files: Path, n: int = 8, side: int = 2048) -> dict:
    """Bytes under the server's TMPDIR after ``n`` /motion_flow calls on a side x side image."""
    image = upload(server.url, texture_png(files / "big.png", side, side))
    before = folder_bytes(server.tmp)
    events = [call(server.url, "motion_flow", flow_args(image))[0] for _ in range(n)]
    return {"calls": n, "completed": events.count("complete"),
            "bytes_added": folder_bytes(server.tmp) - before}


def flood_case(server: Server, files: Path, flood: int = 40, args_video=(8, 8)) -> dict:
    """A flooding client (``flood`` videos at once from address 10.0.0.1) beside a polite one
    (one video from 10.0.0.2, sent just after): the polite one's latency, how many flood
    requests were refused at the door, and the time one video takes alone."""
    image = upload(server.url, texture_png(files / "flood.png", 160, 120))
    video = [image, "[[80, 60, 6, 0]]", args_video[0], args_video[1], 1.0, "linear", "once", False]
    t0 = time.perf_counter()
    call(server.url, "motion_video", video, headers={"X-Forwarded-For": "10.0.0.3"})
    alone = time.perf_counter() - t0
    posted, refused = [], 0
    with httpx.Client(timeout=60) as c:
        for _ in range(flood):
            r = c.post(f"{server.url}gradio_api/call/motion_video", json={"data": video},
                       headers={"X-Forwarded-For": "10.0.0.1"})
            if r.status_code == 200:
                posted.append(r.json()["event_id"])
            else:
                refused += 1
    t0 = time.perf_counter()
    event, _ = call(server.url, "motion_video", video, headers={"X-Forwarded-For": "10.0.0.2"})
    polite = time.perf_counter() - t0
    for eid in posted:  # drain the flood
        httpx.get(f"{server.url}gradio_api/call/motion_video/{eid}", timeout=600)
    return {"one_video_alone_s": round(alone, 2), "flood_sent": flood, "flood_refused": refused,
            "polite_event": event, "polite_latency_s": round(polite, 2)}


def stop_case(app_dir: Path, checkpoint: str | None, sig: int) -> dict:
    """Seconds from ``sig`` to exit while a long video renders and its result stream is
    open, and files left under TMPDIR (outside the examples)."""
    server = Server(app_dir, checkpoint)
    image = upload(server.url, texture_png(server.tmp / "s.png", 320, 240))
    call(server.url, "motion_flow", flow_args(image))
    video = [image, "[[80, 60, 6, 0]]", 96, 8, 1.0, "linear", "once", False]
    event_id = httpx.post(f"{server.url}gradio_api/call/motion_video", json={"data": video}).json()["event_id"]
    listener = threading.Thread(target=lambda: _drain(f"{server.url}gradio_api/call/motion_video/{event_id}"),
                                daemon=True)
    listener.start()
    time.sleep(1.0)
    secs = server.stop(sig)
    left = [p for p in server.tmp.rglob("*") if p.is_file() and "cmp-studio-examples" not in p.parts
            and p.name not in ("server.log", "s.png")]
    size = sum(p.lstat().st_size for p in left)
    shutil.rmtree(server.tmp, ignore_errors=True)
    return {"signal": signal.Signals(sig).name, "exit_s": round(secs, 2), "files_left": len(left), "bytes_left": size}


def _drain(url: str) -> None:
    try:
        httpx.get(url, timeout=120)
    except httpx.HTTPError:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--app-dir", type=Path, default=REPO)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--cases", default="rss,disk,flood,stop")
    p.add_argument("--disk-calls", type=int, default=8)
    p.add_argument("--flood-args", default="", help="extra app.py flags for the flood case, e.g. "
                                                    "'--trusted-proxies 127.0.0.1'")
    a = p.parse_args(argv)
    cases = a.cases.split(",")
    files = Path(tempfile.mkdtemp(prefix="cmp-hostile-files-"))
    try:
        if "rss" in cases:
            with Server(a.app_dir, a.checkpoint) as s:
                print("rss", json.dumps(rss_case(s, files)), flush=True)
        if "disk" in cases:
            with Server(a.app_dir, a.checkpoint) as s:
                print("disk", json.dumps(disk_case(s, files, a.disk_calls)), flush=True)
        if "flood" in cases:
            with Server(a.app_dir, a.checkpoint, args=a.flood_args.split()) as s:
                print("flood", json.dumps(flood_case(s, files)), flush=True)
        if "stop" in cases:
            for sig in (signal.SIGTERM, signal.SIGINT):
                print("stop", json.dumps(stop_case(a.app_dir, a.checkpoint, sig)), flush=True)
    finally:
        shutil.rmtree(files, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
