"""Direct canvas clicks: a click is answered by one plain request, outside Gradio's event pipeline.

A click on a canvas used to be a Gradio event like any other. On this 2-core machine
Gradio's part of it (the frontend's bookkeeping before the request leaves and after the
answer arrives, the queue's messages, one file fetched per image) cost as much as the
model (README, "Click latency"). So the page's script takes the canvas click itself,
computes the image pixel exactly as Gradio's ``select`` does, reads the page's settings
from their controls, and calls :func:`bridge`'s server function (``/component_server``,
one POST). That function runs the page's click on the session's own state (the
``gr.State`` values of that session, read and written in Gradio's state holder, so every
other event sees the click), and answers with the new images as data URLs, which the
script paints at once. Then the script fires the bridge's ``change`` event: a queued Gradio
event that sends the same outputs the old click event sent (the images from
:data:`_results`, encoded once), so Gradio's own view of every component is the page's.

Whenever the direct answer is not a result (no image yet, a user error, a setting the
server does not accept, another direct click of the session still running,
:data:`MAX_RUNNING` direct clicks of all sessions running, so that under load clicks take
the queue's fair order; ZeroGPU, whose lease only a queued event can take), the script
hands the click to Gradio's ``select`` event, which shows errors and warnings as before.
Keyboard and API use never come here. The script sends one click at a time, in order.

Known limit: a queued event of the same session that starts while a direct click runs
(a button pressed within the click's ~50 ms) reads the state from before the click, and
the later of the two writes wins.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
from cachetools import TTLCache

from cmp import lease

from .common import USER_ERRORS
from .outputs import encode_preview

#: The last direct result of each (session, page), for the confirming event, which takes it
#: within a frame or two. Bounded in count and age: a client that never confirms holds at most
#: this many results' images (a confirm that finds none recomputes its outputs).
_results: TTLCache = TTLCache(maxsize=8, ttl=15)
_busy: set = set()  # (session, page) with a direct click running
#: Direct clicks running at once (all sessions); more go through Gradio's queue.
MAX_RUNNING = 2
_lock = threading.Lock()
_log = logging.getLogger(__name__)
_MIME = {"exact": "image/png", "photo": "image/jpeg"}


@dataclass
class Session:
    """One session's ``gr.State`` values, read and written where Gradio keeps them."""
    state: Any  # gradio.state_holder.SessionState

    def get(self, comp: gr.State):
        return self.state[comp._id]

    def set(self, comp: gr.State, value) -> None:
        self.state[comp._id] = value


def clicked_image(session: Session, shown: gr.State, read: Callable, x: int, y: int):
    """(path, rgb) of the upload the session's canvas shows (``shown``, a ``gr.State`` holding
    its path; ``read(path) -> (rgb, note)``) when pixel (x, y) lies on it, else None."""
    path = session.get(shown)
    if not path:
        return None
    rgb, _ = read(path)
    return (path, rgb) if 0 <= x < rgb.shape[1] and 0 <= y < rgb.shape[0] else None


def data_url(comp, value) -> str | None:
    """``value`` (a numpy image shown by ``comp``, a :func:`demos.outputs.fast_preview`
    component) as a data URL in the component's own preview format; None for anything else."""
    import numpy as np

    kind = getattr(comp, "_cmp_preview_kind", None)
    if kind is None or not isinstance(value, np.ndarray):
        return None
    data = encode_preview(value, kind, remember=True)  # Gradio's file of the same array reuses these bytes
    return f"data:{_MIME[kind]};base64,{base64.b64encode(data).decode('ascii')}"


def _session_of(body) -> tuple[str | None, Any]:
    """(session hash, its state) of a ``/component_server`` call. Gradio's route has already
    made a state for a hash it did not know (a fresh one: no image, so the click is refused)."""
    from gradio.context import LocalContext

    session = body.get("session_hash") if isinstance(body, dict) else None
    blocks = LocalContext.blocks.get(None)
    if not isinstance(session, str) or blocks is None or session not in blocks.state_holder:
        return None, None
    return session, blocks.state_holder[session]


# The page's side. On a primary click on the canvas image (not one this script re-sends),
# the click's image pixel as Gradio computes it (object-fit: contain), the settings, then
# the server function; its images painted, then the confirming event; else the click is
# re-sent to Gradio's own handler.
_JS = """
const page = %(page)s, canvas = %(canvas)s, settingsOf = %(settings)s;
let queue = Promise.resolve();
const read = (sel, how) => {
  const el = document.querySelector(sel);
  if (!el) return undefined;
  if (how === 'checked') return el.checked;
  if (how === 'radio') { const c = document.querySelector(sel + ':checked'); return c ? c.value : null; }
  return el.value;
};
document.addEventListener('click', (e) => {
  const button = e.target.closest && e.target.closest('#' + canvas + ' button');
  const img = button && button.querySelector('img');
  if (!img || e.cmpDirect || e.button !== 0 || !img.naturalWidth) return;
  const r = img.getBoundingClientRect(), s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
  const x = Math.round((e.clientX - r.left - (r.width - img.naturalWidth * s) / 2) / s);
  const y = Math.round((e.clientY - r.top - (r.height - img.naturalHeight * s) / 2) / s);
  if (!(x >= 0 && x < img.naturalWidth && y >= 0 && y < img.naturalHeight)) return;
  e.stopImmediatePropagation();
  e.preventDefault();
  const settings = {};
  for (const [k, [sel, how]] of Object.entries(settingsOf)) settings[k] = read(sel, how);
  const resend = () => {
    const again = new MouseEvent('click', {bubbles: true, cancelable: true, clientX: e.clientX,
                                           clientY: e.clientY, button: 0});
    again.cmpDirect = true;
    button.dispatchEvent(again);
  };
  // one click at a time, in order: a click made while the last one is answered waits for it
  const run = async () => {
    let res = null;
    try { res = await server.direct_click({page, x, y, settings}); } catch (err) { res = null; }
    if (!res || !res.images) { resend(); return; }
    const painted = [];
    for (const [id, url] of Object.entries(res.images)) {
      const shown = document.querySelector('#' + id + ' img');
      if (shown && typeof url === 'string' && url.startsWith('data:image/')) {
        shown.src = url;
        painted.push(shown.decode().catch(() => null));
      }
    }
    // Gradio's event (and its bookkeeping) only once the new pixels are on screen
    await Promise.all(painted);
    requestAnimationFrame(() => setTimeout(() => trigger('change'), 0));
  };
  queue = queue.then(run).catch(() => null);  // a failure never stops the clicks after it
}, {capture: true});
"""


def bridge(page: str, canvas_id: str, settings: dict[str, tuple[str, str]],
           click: Callable[[Session, int, int, dict], tuple[dict, tuple] | None]) -> gr.HTML:
    """The invisible component that answers direct clicks on ``#canvas_id`` for ``page``
    (placed in the page's layout; :func:`confirm` wires its confirming event).

    ``settings``: {name: (CSS selector, "checked" | "radio" | "value")} read from the page at
    the click. ``click(session, x, y, settings)`` does the page's click on the session's
    state (it writes the state itself) and returns ({elem_id: (component, image)} to paint,
    the outputs of the confirming event), or None to leave the click to Gradio's own event.
    """
    async def direct_click(data, request: gr.Request):
        try:
            body = await request.json()  # the raw request; Starlette keeps its parsed body
        except (ValueError, RuntimeError):  # a form body (the binary variant of the route)
            return {}
        session, state = _session_of(body)
        if (session is None or lease.ZERO_GPU or not isinstance(data, dict) or data.get("page") != page
                or not isinstance(data.get("settings"), dict)):
            return {}
        x, y = data.get("x"), data.get("y")
        if not (isinstance(x, int) and isinstance(y, int)):
            return {}
        key = (session, page)
        if not _claim(key):
            return {}
        try:
            got = await asyncio.to_thread(_run, click, Session(state), x, y, data["settings"])
        finally:
            with _lock:
                _busy.discard(key)
        if got is None:
            return {}
        urls, result = got
        with _lock:
            _results[key] = result
        return {"images": urls}

    return gr.HTML("", js_on_load=_JS % {"page": json.dumps(page), "canvas": json.dumps(canvas_id),
                                         "settings": json.dumps(settings)},
                   server_functions=[direct_click], elem_id=f"{page}-direct", container=False, padding=False)


def confirm(html: gr.HTML, page: str, fn: Callable[..., tuple], inputs: list, outputs: list, **event) -> None:
    """After a direct click the page fires ``html``'s change: ``fn(result, *inputs) -> outputs``
    sends the click's outputs through Gradio, ``result`` being the tuple the click returned
    (None once it has expired: ``fn`` then recomputes them from the inputs)."""
    from gradio.context import LocalContext

    def on_confirm(*args):
        request = LocalContext.request.get(None)
        with _lock:
            result = _results.pop((getattr(request, "session_hash", None), page), None)
        return fn(result, *args)

    html.change(on_confirm, inputs, outputs, api_visibility="private", show_progress="hidden", **event)


def _claim(key) -> bool:
    """Whether a direct click for ``key`` (session, page) may run now: one per session and page,
    :data:`MAX_RUNNING` in all. Past that the page sends the click through Gradio's queue,
    whose fair order then holds under load (a direct click does not queue)."""
    with _lock:
        if key in _busy or len(_busy) >= MAX_RUNNING:
            return False
        _busy.add(key)
        return True


def _run(click, session, x, y, settings):
    """The page's click and its images' data URLs ({elem_id: url}, the confirming event's
    outputs), in the worker thread: the encodings stay off the server's event loop."""
    try:
        got = click(session, x, y, settings)
        if got is None:
            return None
        images, result = got
        return {elem_id: url for elem_id, (comp, value) in images.items()
                if (url := data_url(comp, value)) is not None}, result
    except USER_ERRORS:  # Gradio's own event runs the click again and shows the message
        return None
    except Exception:  # noqa: BLE001 - the same for a fault, which is logged here
        _log.exception("direct click failed; handed to Gradio's event")
        return None
