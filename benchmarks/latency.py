"""Click -> pixels latency in a real browser, next to the engine-only time for the same guidance.

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.latency                 # embedded model, 20 clicks each
    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.latency --clicks 40 --json

Launches the app in-process (as ``app.main`` would) on a loopback port and drives
Debian's Chromium with Playwright:

* **arrow**: on the Motion page, click a start point and then an end point; the time
  runs from the end click until ``#motion-flow img`` shows a new, fully decoded image.
* **segment click**: on the Segment page, one positive click inside the object; the
  time runs until ``#segment-canvas img`` shows a new, decoded image.

Beside each, the same guidance straight on the engine (``Engine.propagate`` on the
cached handle; ``cmp.segment.segment`` for a click, as the page runs it with its evidence
closed), so the page's own share is visible. Then ``--sessions`` concurrent ``gradio_client`` sessions (the load test's
arrow and segment actions, no video) give p50/p95 per request under load.

**Gradio's floor**: a one-image Gradio app whose click handler only returns a stored
image with a dot, encoded as the app's previews are, timed the same way: the photo as a
JPEG (as the canvases) and a colour-wheel flow view of the same size as a PNG (as the
Motion page's flow view). It is what any Gradio page costs on this
machine at this moment, so it shows how fast the machine runs during the run (this VM's
speed drifts by up to 1.5x) and what share of a click is the app's own.

Speed targets live here, not in timed tests: arrow median <= 80 ms, segment click
median <= 100 ms, 8 users p95 <= 1 s (2-core CPU, embedded model).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.browser import click_pixel, screen_point, wait_src_change

CHROMIUM = "/usr/bin/chromium"
TARGETS_MS = {"arrow": 80.0, "segment": 100.0}
TARGET_LOAD_P95_S = 1.0


def _stats(xs_s: list[float]) -> dict:
    from benchmarks.loadtest import percentile

    ms = [1000 * x for x in xs_s]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 95), 1)}


def _test_image(folder: Path, side: int = 512) -> Path:
    """The astronaut photo at ``side`` px (a real photo with one clear object in the middle)."""
    from PIL import Image
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS).save(path)
    return path


# -- browser helpers -------------------------------------------------------------------

def _src(pg, sel: str) -> str:
    """The image's src, or "" while the component shows no image (no <img> yet)."""
    return pg.evaluate("s => { const i = document.querySelector(s); return i ? i.src || '' : ''; }", sel)


_CHANGED = ("([s, old]) => { const i = document.querySelector(s);"
            " return i && i.src && i.src !== old && i.complete && i.naturalWidth > 0; }")

# In the page: from the click's pointerdown (its event timestamp) until the frame in which
# the watched <img> first shows a new, decoded image (a MutationObserver sees the new src
# at once; ``decode()``, then the next animation frame, which is painted). Nothing of
# Playwright's own round trips is inside this interval.
_WATCH = """([s, old]) => {
  window.__cmpLatency = null;
  let down = null;
  document.addEventListener('pointerdown', e => { down = e.timeStamp; }, {capture: true, once: true});
  const done = () => requestAnimationFrame(() => { window.__cmpLatency = performance.now() - down; });
  const obs = new MutationObserver(() => {
    const i = document.querySelector(s);
    if (!i || !i.src || i.src === old || down === null) return;
    obs.disconnect();
    i.decode().then(done, done);
  });
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


def _timedclick_pixel(pg, click_sel: str, x: float, y: float, watch_sel: str) -> tuple[float, float]:
    """(in the page, as Playwright sees it) seconds from a click at image pixel (x, y) until
    ``watch_sel`` shows a new decoded image. The first is the measure: pointerdown to the painted
    frame; the second adds Playwright's input and polling round trips."""
    old = _src(pg, watch_sel)
    point = screen_point(pg, click_sel, x, y)  # geometry first: not part of a click
    pg.evaluate(_WATCH, [watch_sel, old])
    t0 = time.perf_counter()
    pg.mouse.click(*point)
    pg.wait_for_function(_CHANGED, arg=[watch_sel, old], polling="raf")
    outside = time.perf_counter() - t0
    inside = pg.wait_for_function("() => window.__cmpLatency").json_value()
    return inside / 1000, outside


@contextlib.contextmanager
def _page(url: str):
    """A Chromium page (Playwright, headless, 1400x1000) opened on ``url``; closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            pg = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            pg.set_default_timeout(60_000)
            pg.goto(url, wait_until="domcontentloaded")
            yield pg
        finally:
            b.close()


def browser_clicks(url: str, image: Path, clicks: int, rng: np.random.Generator) -> dict:
    """Median and p95 click -> pixels for arrows and segment clicks; also the guidance used."""
    arrows, seg_points, arrow_s, seg_s, arrow_pw, seg_pw = [], [], [], [], [], []
    with _page(url) as pg:
        canvas, flow = "#motion-canvas img", "#motion-flow img"
        pg.wait_for_selector(canvas)
        pg.set_input_files("#motion-input input[type=file]", str(image))
        pg.wait_for_function("s => { const i = document.querySelector(s); return i && i.naturalWidth === 512; }",
                             arg=canvas)
        for _ in range(clicks + 1):  # the first arrow warms up (it is not counted)
            x, y = float(rng.integers(40, 472)), float(rng.integers(40, 472))
            dx, dy = float(rng.integers(-30, 30)), float(rng.integers(-30, 30))
            # each click waits until the page has finished the one before (wait_src_change: Gradio's
            # file shown, not the data URL a direct click paints first)
            old = _src(pg, canvas)
            click_pixel(pg, canvas, x, y)  # start: the canvas shows the pending point
            started = wait_src_change(pg, canvas, old)
            before = _src(pg, flow)
            inside, outside = _timedclick_pixel(pg, canvas, x + dx, y + dy, flow)
            wait_src_change(pg, flow, before)
            wait_src_change(pg, canvas, started)
            arrow_s.append(inside)
            arrow_pw.append(outside)
            arrows.append([x, y, dx, dy])
            if len(arrows) % 8 == 0:  # stay well under the point limit: start afresh
                old = _src(pg, flow)
                pg.click("#motion-clear")  # the flow view shows its hint again
                pg.wait_for_function(_CHANGED, arg=[flow, old], polling="raf")
        arrow_s, arrow_pw = arrow_s[1:], arrow_pw[1:]

        pg.click("button[role=tab]:has-text('Segment')")
        sc = "#segment-canvas img"
        pg.wait_for_selector(sc)
        pg.set_input_files("#segment-input input[type=file]", str(image))
        pg.wait_for_function("s => { const i = document.querySelector(s); return i && i.naturalWidth === 512; }",
                             arg=sc)
        for i in range(clicks + 1):
            x, y = float(rng.integers(200, 310)), float(rng.integers(120, 260))  # on the astronaut
            before = _src(pg, sc)
            inside, outside = _timedclick_pixel(pg, sc, x, y, sc)
            wait_src_change(pg, sc, before)
            seg_s.append(inside)
            seg_pw.append(outside)
            seg_points.append([x, y])
            if len(seg_points) % 4 == 0:  # a new object every 4 clicks, as an annotator would
                old = _src(pg, sc)
                pg.click("#segment-clear")
                pg.wait_for_function(_CHANGED, arg=[sc, old], polling="raf")
        seg_s, seg_pw = seg_s[1:], seg_pw[1:]
    return {"arrow": _stats(arrow_s), "segment": _stats(seg_s),
            "playwright_wall_clock": {"arrow": _stats(arrow_pw), "segment": _stats(seg_pw)},
            "_arrows": arrows[1:], "_points": seg_points[1:]}


def gradio_floor(image: Path, clicks: int, rng: np.random.Generator) -> dict:
    """Median and p95 click -> pixels of a one-image Gradio app whose handler returns a stored
    image with a dot, encoded as the app encodes its previews: the photo as "photo" (JPEG), a
    colour-wheel view of a smooth flow of the same size as "exact" (PNG)."""
    import gradio as gr
    from PIL import Image

    from demos.motion import flow_color_view
    from demos.outputs import fast_preview

    photo = np.asarray(Image.open(image).convert("RGB"))
    yy, xx = np.mgrid[:photo.shape[0], :photo.shape[1]].astype(np.float32)
    wheel = flow_color_view(np.stack([6 * np.sin(xx / 60), 4 * np.cos(yy / 80)], -1))
    out = {}
    for kind, base in (("photo", photo), ("exact", wheel)):
        def on_select(evt: gr.SelectData):
            shown = base.copy()
            x, y = evt.index
            shown[max(0, y - 4):y + 4, max(0, x - 4):x + 4] = (255, 0, 0)
            return shown

        on_select.__annotations__["evt"] = gr.SelectData  # a class, not this module's postponed string

        with gr.Blocks() as demo:
            view = fast_preview(gr.Image(value=base, interactive=False, format="png", elem_id="floor"), kind)
            view.select(on_select, None, view, show_progress="hidden")
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", ssr_mode=False)
        times = []
        try:
            with _page(url) as pg:
                pg.wait_for_selector("#floor img")
                for _ in range(clicks + 1):
                    x, y = float(rng.integers(40, base.shape[1] - 40)), float(rng.integers(40, base.shape[0] - 40))
                    times.append(_timedclick_pixel(pg, "#floor img", x, y, "#floor img")[0])
        finally:
            demo.close()
        out[kind] = _stats(times[1:])
    return out


def engine_only(engine, image: Path, arrows: list, points: list, repeats: int = 3, segmenter=None) -> dict:
    """The same guidance straight on the engine: propagate (arrows), a whole segment() call, and the
    page's click (part / object / group candidates, :func:`cmp.candidates.segment_candidates`), these
    two on ``segmenter`` (the model the page segments with; default ``engine``)."""
    from cmp.images import load_image
    from cmp.candidates import segment_candidates
    from cmp.segment import segment

    rgb, _ = load_image(str(image))
    handle = engine.set_image(rgb)
    seg_engine = segmenter or engine
    arrow_s, seg_s, cand_s = [], [], []
    for k in range(len(arrows)):
        group = arrows[k - k % 8:k + 1]  # the page predicts with every arrow drawn since the last Clear
        t = min(_time(lambda: engine.propagate(handle, arrows=group)) for _ in range(repeats))
        arrow_s.append(t)
    for k in range(len(points)):
        pos = points[k - k % 4:k + 1]
        # once, first: as on the page, the part and object crops around new clicks are encoded anew
        # no evidence asked for: the page's evidence is closed during the clicks (no probe flows)
        cand_s.append(_time(lambda: segment_candidates(seg_engine, rgb, pos, [])))
        seg_s.append(min(_time(lambda: segment(seg_engine, rgb, pos, [])) for _ in range(repeats)))
    return {"arrow": _stats(arrow_s), "segment": _stats(seg_s), "segment_candidates": _stats(cand_s)}


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def concurrent_sessions(url: str, sessions: int, actions: int) -> dict:
    """``sessions`` concurrent ``gradio_client`` sessions, run by ``benchmarks.loadtest`` in a
    process of their own: users' clients are not in the server's process (as threads of this
    one, their HTTP and JSON work would also hold the server's GIL); they still share its CPU."""
    import subprocess

    cmd = [sys.executable, "-m", "benchmarks.loadtest", "--url", url, "--sessions", str(sessions),
           "--actions", str(actions), "--video-every", "0", "--waves", "1", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    summary = json.loads(done.stdout)["waves"][0]
    return {a: {"n": s["n"], "p50_s": s["p50_s"], "p95_s": s["p95_s"]} for a, s in summary["latency"].items()} | \
        {"failures": summary["failures"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--clicks", type=int, default=20, help="timed clicks of each kind (>= 20 for the README)")
    p.add_argument("--sessions", type=int, default=8, help="concurrent gradio_client sessions (0 = skip)")
    p.add_argument("--actions", type=int, default=10, help="requests per concurrent session")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="skip Gradio's floor (a one-image app timed the same way)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"error: {CHROMIUM} not found (apt-get install -y chromium)", file=sys.stderr)
        return 2
    if not 1 <= a.clicks <= 500:
        print("error: --clicks must be 1..500", file=sys.stderr)
        return 2
    import app
    from benchmarks.loadtest import launch_in_process
    from cmp.device import tune_malloc, tune_onednn

    tune_malloc()  # as app.main does, before the model first runs
    tune_onednn()
    engine, notice = app.load_engine(app.parse_args(["--checkpoint", a.checkpoint]))
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
    demo, url, pool = launch_in_process(a.checkpoint, engine=engine)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            image = _test_image(Path(tmp))
            rng = np.random.default_rng(a.seed)
            page = browser_clicks(url, image, a.clicks, rng)
            eng = engine_only(engine, image, page.pop("_arrows"), page.pop("_points"), segmenter=pool.segmenter(None))
            floor = gradio_floor(image, a.clicks, rng) if a.floor else {}
        load = concurrent_sessions(url, a.sessions, a.actions) if a.sessions else {}
    finally:
        demo.close()
    out = {"model": engine.name, "segments_with": pool.segmenter(None).name,
           "device": engine.device.type, "precision": engine.precision,
           "threads": __import__("torch").get_num_threads(), "load_average": os.getloadavg()[0],
           "browser_click_to_pixels": page, "engine_only": eng, "gradio_floor": floor,
           "concurrent_sessions": load}
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{engine.name} (segments with {out['segments_with']}) on {engine.device.type} ({engine.precision}), "
          f"{out['threads']} threads, "
          f"load average {out['load_average']:.2f}")
    print(f"{'':16s}{'browser median':>16s}{'p95':>8s}{'engine median':>16s}{'target':>9s}"
          f"{'Playwright median / p95':>26s}")
    for kind in ("arrow", "segment"):
        b, e, w = page[kind], eng[kind], page["playwright_wall_clock"][kind]
        print(f"{kind:16s}{b['median_ms']:13.1f} ms{b['p95_ms']:5.0f} ms{e['median_ms']:13.1f} ms"
              f"{TARGETS_MS[kind]:6.0f} ms{w['median_ms']:14.1f} / {w['p95_ms']:.0f} ms")
    print("(browser: pointerdown -> the painted frame showing the new image, timed in the page; "
          "Playwright: the same seen from Python, with its input and polling round trips)")
    if floor:
        print(f"Gradio's floor (a one-image app returning a stored image): photo as JPEG "
              f"{floor['photo']['median_ms']:.1f} / {floor['photo']['p95_ms']:.0f} ms, flow view as PNG "
              f"{floor['exact']['median_ms']:.1f} / {floor['exact']['p95_ms']:.0f} ms (median / p95)")
    c = eng["segment_candidates"]
    print(f"(an object's first click on the page computes three candidates: engine median {c['median_ms']:.1f} ms, "
          f"p95 {c['p95_ms']:.0f} ms)")
    if load:
        print(f"{a.sessions} concurrent sessions x {a.actions} requests (failures {load['failures']}):")
        for kind in ("arrow", "segment"):
            if kind in load:
                s = load[kind]
                print(f"  {kind:8s} p50 {s['p50_s']:.3f} s  p95 {s['p95_s']:.3f} s  (target p95 <= "
                      f"{TARGET_LOAD_P95_S:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
