"""Load test: N concurrent gradio_client sessions against the app, on loopback only.

    python -m benchmarks.loadtest --sessions 8 --actions 20            # launches the app in-process
    python -m benchmarks.loadtest --url http://127.0.0.1:7860 ...      # drives a running app

Each session gets its own image with a unique size and its own clicks, and
mixes arrow updates (/motion_flow), segmentation clicks (/segment_mask) and a
short video (/motion_video). Isolation is checked on every answer: the flow
and mask must have the session's own image size, and no output file may be
handed to two sessions. Waves of fresh sessions and images run one after the
other. Prints p50/p95 latency per action, failures, and the RSS of this
process (server and clients) before and after each wave (in-process mode only;
it must level off once the bounded feature cache is full).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

ACTIONS = ("arrow", "segment", "video")

#: One TLS context for every client of this process. ``gradio_client`` opens a new ``httpx``
#: client for each upload, prediction and download, and ``httpx`` builds a new TLS context for
#: each (loading the whole CA bundle) unless it is given one, even for plain http: ~170 ms of
#: CPU per request against ~15 ms with this one, measured with one client on loopback. The 8
#: sessions share the server's 2 cores, so that cost was charged to the server's latency.
#: Certificates are checked exactly as by default (``ssl.create_default_context``).
TLS_CONTEXT = ssl.create_default_context()


def _rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc, else peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def session_image(k: int, folder: Path) -> tuple[Path, tuple[int, int]]:
    """A textured image unique to session k (its size identifies the session)."""
    rng = np.random.default_rng(1000 + k)
    h, w = 120 + 4 * k, 160 + 8 * k
    img = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))
    path = folder / f"session{k}.png"
    Image.fromarray(img).save(path)
    return path, (h, w)


def _files(outs) -> list[str]:
    """The file paths among endpoint outputs (a gr.Video output may come back as a dict)."""
    paths = []
    for o in outs:
        if isinstance(o, dict) and isinstance(o.get("video"), str):
            o = o["video"]
        if isinstance(o, str) and os.path.isfile(o):
            paths.append(o)
    return paths


def run_session(url: str, k: int, n_actions: int, folder: Path, results: dict, lock: threading.Lock,
                seen_files: dict, video_every: int) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False, ssl_verify=TLS_CONTEXT)
    except Exception as exc:  # noqa: BLE001 - a session that cannot connect fails all its actions
        with lock:  # its actions count as never run
            results["errors"].append(f"session {k}: cannot connect ({type(exc).__name__}: {exc})"[:200])
        return
    path, (h, w) = session_image(k, folder)
    rng = np.random.default_rng(k)
    for i in range(n_actions):
        if video_every and i % video_every == video_every - 1:
            action = "video"
        else:
            action = "arrow" if i % 2 == 0 else "segment"
        x, y = int(rng.integers(5, w - 5)), int(rng.integers(5, h - 5))
        t0 = time.perf_counter()
        err = None
        outs: list = []
        try:
            if action == "arrow":
                guide = json.dumps({"arrows": [[x, y, float(rng.integers(-20, 20)), float(rng.integers(-20, 20))]],
                                    "pins": [[w // 2, h // 2]]})
                outs = list(client.predict(handle_file(str(path)), guide, api_name="/motion_flow"))
                with Image.open(outs[0]) as im:
                    if im.size != (w, h):
                        err = f"flow image {im.size} is not this session's {w}x{h}"
            elif action == "segment":
                pts = json.dumps({"positive": [[x, y]], "negative": []})
                outs = list(client.predict(handle_file(str(path)), pts, 0.5, False, api_name="/segment_mask"))
                coco_image = outs[1]["images"][0]
                with Image.open(outs[0]) as im:
                    if im.size != (w, h) or (coco_image["width"], coco_image["height"]) != (w, h):
                        err = f"mask {im.size} is not this session's {w}x{h}"
            else:
                guide = json.dumps({"arrows": [[x, y, 10.0, 0.0]], "pins": []})
                outs = list(client.predict(handle_file(str(path)), guide, 4, 8, 1.0, "linear", "once",
                                           api_name="/motion_video"))
                if len(_files(outs)) != 2 or min(os.path.getsize(f) for f in _files(outs)) == 0:
                    err = f"expected an MP4 and a GIF, got {outs!r}"[:200]
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            err = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            outs = []
        dt = time.perf_counter() - t0
        with lock:
            for f in _files(outs):
                # gradio_client saves each download as <sha256 of content>/<server file name>, and
                # the server names every output file afresh: the same key twice means a shared file.
                key = "/".join(Path(f).parts[-2:])
                if seen_files.get(key, k) != k:
                    err = err or f"file {key} was also given to session {seen_files[key]}"
                seen_files[key] = k
            if err:
                results["failed"].append(action)
                results["errors"].append(f"session {k} {action}: {err}")
            else:
                results[action].append(dt)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[i]


def run(url: str, sessions: int, actions: int, video_every: int = 10, timeout: float = 600.0,
        first_session: int = 0) -> dict:
    """Drive ``url`` with ``sessions`` concurrent clients of ``actions`` requests each.

    Session k (from ``first_session``) uses an image of its own size, so a second
    call with a new ``first_session`` brings images the server has not seen.
    Returns a summary dict: failures (requests that failed or saw another
    session's data, plus actions never run), errors (first 20 messages), and
    per action n / p50_s / p95_s of the successful requests.
    """
    results: dict = defaultdict(list)
    seen: dict = {}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp:
        threads = [threading.Thread(target=run_session, args=(url, k, actions, Path(tmp), results, lock, seen,
                                                              video_every), daemon=True)
                   for k in range(first_session, first_session + sessions)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, timeout - (time.perf_counter() - t0)))
        hung = sum(t.is_alive() for t in threads)
        wall = time.perf_counter() - t0
        with lock:  # a hung session may still be writing
            latencies = {a: list(results[a]) for a in ACTIONS}
            failed = len(results["failed"])
            errors = list(results["errors"])
    not_run = sessions * actions - failed - sum(len(v) for v in latencies.values())
    if not_run:
        errors.append(f"{not_run} action(s) never ran" +
                      (f"; {hung} session(s) still running after {timeout:.0f} s" if hung else ""))
    summary = {"sessions": sessions, "actions_per_session": actions, "wall_s": round(wall, 2),
               "requests": sum(len(v) for v in latencies.values()) + failed,
               "failures": failed + not_run, "errors": errors[:20], "latency": {}}
    for a, xs in latencies.items():
        if xs:
            summary["latency"][a] = {"n": len(xs), "p50_s": round(statistics.median(xs), 3),
                                     "p95_s": round(percentile(xs, 95), 3)}
    return summary


def launch_in_process(checkpoint: str | None, engine=None):
    """Start the app as ``app.main`` would, on a free loopback port in this process (``engine``:
    the model ``checkpoint`` names, already loaded); returns (demo, url, the app's engine pool)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app
    from cmp.device import tune_malloc, tune_onednn
    from demos.common import Context

    tune_malloc()  # as app.main does first
    tune_onednn()

    notice = None
    if engine is None:
        engine, notice = app.load_engine(app.parse_args(["--checkpoint", checkpoint or "default"]))
        if notice:
            print(f"notice: {notice}", file=sys.stderr)
    pool = app.make_pool(engine, checkpoint or "default", notice)  # the default segments with its grouping model
    app.warm_up_in_background(engine, pool)  # as app.main does
    demo = app.build_app(Context(engine=engine, notice=notice, pool=pool))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                            **app.launch_options("127.0.0.1"))  # the app's limits and Host/Origin guard
    return demo, url, pool


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="drive an already running app (loopback only) instead of launching one")
    p.add_argument("--checkpoint", default=None, help="checkpoint for the in-process app (default: embedded)")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--actions", type=int, default=20, help="actions per session")
    p.add_argument("--video-every", type=int, default=10, help="every k-th action renders a short video (0 = never)")
    p.add_argument("--waves", type=int, default=2, help="rounds of new sessions, one after the other")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per wave")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if not (1 <= a.sessions <= 64 and 1 <= a.actions <= 500 and 1 <= a.waves <= 20):
        print("error: --sessions must be 1..64, --actions 1..500 and --waves 1..20", file=sys.stderr)
        return 2
    if a.url and not is_loopback(a.url):
        print("error: the load test only drives loopback addresses", file=sys.stderr)
        return 2
    demo = None
    rss0 = _rss_mb()
    if a.url:
        url = a.url
    else:
        demo, url, _pool = launch_in_process(a.checkpoint)
    rss = {"before_launch": round(rss0, 1), "after_launch": round(_rss_mb(), 1)}
    waves = []
    try:
        # Each wave brings as many new sessions with new images: memory must level off once the
        # feature cache is full (bounded by entries and bytes), whatever the number of sessions served.
        for w in range(a.waves):
            waves.append(run(url, a.sessions, a.actions, a.video_every, a.timeout, first_session=w * a.sessions))
            rss[f"after_wave{w + 1}"] = round(_rss_mb(), 1)
    finally:
        if demo is not None:
            demo.close()
    out = {"url": url, "waves": waves}
    if demo is not None:
        out["rss_mb"] = {**rss, "peak": round(_peak_rss_mb(), 1)}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for i, wv in enumerate(out["waves"], 1):
            print(f"wave {i}: {wv['sessions']} sessions x {wv['actions_per_session']} actions, "
                  f"{wv['requests']} requests in {wv['wall_s']} s, failures {wv['failures']}")
            for act, s in wv["latency"].items():
                print(f"  {act:8s} n={s['n']:4d}  p50 {s['p50_s']:.3f} s  p95 {s['p95_s']:.3f} s")
            for e in wv["errors"]:
                print(f"  ! {e}")
        if "rss_mb" in out:
            print("RSS MB: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in out["rss_mb"].items()))
    return 0 if all(w["failures"] == 0 for w in out["waves"]) else 1


if __name__ == "__main__":
    sys.exit(main())
