"""What stands between the network and the pages: hosts, origins, request sizes, a fair queue.

- :class:`Guard`, an ASGI middleware passed to ``launch(app_kwargs={"middleware": ...})``:
  refuses a foreign ``Host`` (DNS rebinding) and a foreign ``Origin`` on any request that
  changes something, caps an upload request in total (Gradio caps each file only), caps
  JSON bodies, and turns integers too long to parse into infinity so the endpoint's own
  range check names the input (Python refuses to parse ints past 4300 digits with a
  message about ``sys.set_int_max_str_digits``).
- It also keeps the server's folders out of what it shows: JSON and HTML answers (the
  page config lists example files) name Gradio's cache folder as ``@cache``, and
  requests naming ``@cache`` get the real folder back before Gradio reads them.
- :func:`fair_queue`: per-session and per-client-address limits on waiting work, and
  the one "not an upload" check on every file a request names, before anything queues.
- :func:`stop_on_signals`: SIGINT and SIGTERM close the server and exit within seconds.
- :func:`keep_instance_patches`: what the pages set on a component instance (input checks,
  fast previews) stays when Gradio answers a ``gr.update``/``gr.skip`` with a new instance.

It never sends ``X-Frame-Options``: a Hugging Face Space shows the app in an iframe.
"""
from __future__ import annotations

import copy
import inspect

import ipaddress
import json
import os
import re
import signal
import sys
import threading

from .intake import NOT_AN_UPLOAD, is_upload

#: Bytes one upload request may carry in total (Gradio's max_file_size is per file).
MAX_UPLOAD_REQUEST_BYTES = 25 * 2**20
#: Bytes of any other request body (the JSON of an API call; guidance text is <= 100 kB).
MAX_JSON_BODY_BYTES = 1 * 2**20
#: Waiting (not yet running) events one browser tab or API client may have in the queue.
QUEUED_PER_SESSION = 8
#: Waiting events one client address may have, over all its sessions.
QUEUED_PER_ADDRESS = 16
#: Integer literals longer than this many digits become +-infinity before parsing.
MAX_INT_DIGITS = 30
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: What answers show instead of the absolute path of Gradio's upload/cache folder.
CACHE_TOKEN = "@cache"
#: Answers up to this size are scanned for the cache folder's path.
MAX_REWRITTEN_BYTES = 8 * 2**20
_LONG_INT = re.compile(rb"\d{%d}" % (MAX_INT_DIGITS + 1))


def split_hosts(text: str | None) -> list[str]:
    """"a.example, *.hf.space" -> ["a.example", "*.hf.space"] (lower case, no ports)."""
    return [h.strip().lower() for h in (text or "").split(",") if h.strip()]


def is_loopback(bind: str) -> bool:
    if bind in ("localhost", ""):
        return bind == "localhost"
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind: str, hosts: list[str]) -> list[str] | None:
    """Host names the server answers to: loopback names plus ``hosts``, or None (any host)
    on a non-loopback bind (0.0.0.0 in Docker or a Space) when no list was set."""
    if is_loopback(bind) or hosts:  # loopback names stay: Gradio's own start-up check uses them
        return [*LOOPBACK_NAMES, *hosts]
    return None


def hostname(value: str) -> str:
    """Host name of a Host header or an Origin URL, lower case, without port or brackets."""
    v = value.strip().lower()
    if "://" in v:
        v = v.split("://", 1)[1]
    v = v.split("/", 1)[0]
    if v.startswith("["):
        return v[1:].split("]", 1)[0]
    return v.rsplit(":", 1)[0] if v.count(":") == 1 else v


def host_matches(name: str, patterns) -> bool:
    return any(name == p or (p.startswith("*.") and name.endswith(p[1:])) or p == "*" for p in patterns)


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware; see the module docstring. ``allowed_hosts`` None = any Host."""

    def __init__(self, app, allowed_hosts: list[str] | None = None,
                 max_upload_bytes: int = MAX_UPLOAD_REQUEST_BYTES, max_body_bytes: int = MAX_JSON_BODY_BYTES):
        self.app = app
        self.allowed = allowed_hosts
        self.max_upload = max_upload_bytes
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = hostname(headers.get("host", ""))
        if self.allowed is not None and not host_matches(host, self.allowed):
            return await _refuse(scope, send, 421, "this server does not answer to that host name")
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if origin and method not in ("GET", "HEAD", "OPTIONS"):
            o = hostname(origin)  # "null" (sandboxed frames, file pages) is foreign too
            if o != host and not (self.allowed and host_matches(o, self.allowed)):
                return await _refuse(scope, send, 403, "requests from another site are not accepted")
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if method != "POST":
            scope = _restore_path(scope)
            return await self.app(scope, receive, _hiding_cache(send))
        upload = scope.get("path", "").rstrip("/").endswith("/upload")
        limit = self.max_upload if upload else self.max_body
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return await _refuse(scope, send, 413, _size_message(upload, limit))
        if upload:
            return await self._counted(scope, receive, send, limit)
        body = await _read_all(receive, limit)
        if body is None:
            return await _refuse(scope, send, 413, _size_message(False, limit))
        body = _restore_cache(_tame_long_ints(body, headers.get("content-type", "")))
        return await self.app(scope, _replay(body), _hiding_cache(send))

    async def _counted(self, scope, receive, send, limit):
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(scope, send, 413, _size_message(True, limit))


def _cache_root() -> bytes:
    from gradio.utils import get_upload_folder
    return os.path.realpath(get_upload_folder()).encode()


def _restore_cache(body: bytes) -> bytes:
    token = CACHE_TOKEN.encode() + b"/"
    return body.replace(token, _cache_root() + b"/") if token in body else body


def _restore_path(scope):
    """``.../file=@cache/x`` -> ``.../file=<cache folder>/x`` (how the page fetches example files)."""
    path = scope.get("path", "")
    marker = "file=" + CACHE_TOKEN + "/"
    if marker not in path:
        return scope
    real = path.replace(marker, "file=" + _cache_root().decode() + "/")
    from urllib.parse import quote
    return {**scope, "path": real, "raw_path": quote(real).encode()}


def _hiding_cache(send):
    """Wrap ``send``: JSON and HTML answers show CACHE_TOKEN instead of the cache folder's path."""
    start = None
    chunks: list[bytes] = []

    async def wrapped(message):
        nonlocal start
        if message["type"] == "http.response.start":
            ctype = dict(message.get("headers", [])).get(b"content-type", b"")
            if ctype.startswith((b"application/json", b"text/html")):
                start = message
                return None
            return await send(message)
        if start is None or message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body", False) and sum(map(len, chunks)) <= MAX_REWRITTEN_BYTES:
            return None
        body = b"".join(chunks)
        chunks.clear()
        if not message.get("more_body", False):
            body = body.replace(_cache_root() + b"/", CACHE_TOKEN.encode() + b"/")
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        if not message.get("more_body", False):
            headers.append((b"content-length", str(len(body)).encode()))
        first, start = start, None
        await send({**first, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": message.get("more_body", False)})

    return wrapped


def _size_message(upload: bool, limit: int) -> str:
    what = "an upload request" if upload else "a request body"
    return f"{what} may carry at most {limit // 2**20} MB in total"


async def _read_all(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _tame_long_ints(body: bytes, content_type: str) -> bytes:
    """Re-encode a JSON body whose integer literals are too long to parse, as +-infinity."""
    if "json" not in content_type or not _LONG_INT.search(body):
        return body
    try:
        data = json.loads(body, parse_int=lambda s: int(s) if len(s.lstrip("-")) <= MAX_INT_DIGITS else float(s))
    except (ValueError, RecursionError):
        return body
    return json.dumps(data).encode()


async def _refuse(scope, send, status: int, message: str):
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"detail": message, "error": message}).encode()})


# -- the queue -------------------------------------------------------------------------------

def client_address(request, trusted_proxies: list[str]) -> str | None:
    """The client's address: the peer's, or when the peer is a trusted proxy the last
    address in X-Forwarded-For that it added."""
    peer = getattr(getattr(request, "client", None), "host", None)
    if peer and trusted_proxies and ("*" in trusted_proxies or peer in trusted_proxies):
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return peer


def _named_paths(data):
    """Every "path" a request's data names (file payloads, with or without Gradio's meta).

    A payload without ``meta`` gets Gradio's file marker, so Gradio's own upload-folder
    check and file model apply to it as to any other file.
    """
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("path"), str):
                item.setdefault("meta", {"_type": "gradio.FileData"})
                yield item["path"]
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _fill_left_out_inputs(demo, body) -> str | None:
    """A raw REST call may leave out trailing inputs, as a ``gradio_client`` call may: give
    them their defaults (each input component's value, as the client does), so a call that
    worked before an endpoint gained an optional input keeps working. Returns a one-line
    refusal when a required input is missing, else None."""
    fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
    if fn is None or not fn.fn or fn.api_visibility != "public" or not isinstance(body.data, list) \
            or len(body.data) >= len(fn.inputs):
        return None
    required = _required_inputs(fn.fn)
    if len(body.data) < len(required):
        return (f"{fn.api_name} needs at least {len(required)} inputs ({', '.join(required)}); "
                f"got {len(body.data)}")
    body.data = [*body.data, *[copy.deepcopy(getattr(c, "value", None)) for c in fn.inputs[len(body.data):]]]
    return None


def _required_inputs(fn) -> list[str]:
    """Names of the leading parameters of a handler that have no default (the rest are optional)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def fair_queue(demo, per_session: int = QUEUED_PER_SESSION, per_address: int = QUEUED_PER_ADDRESS,
               trusted_proxies: list[str] | None = None) -> None:
    """Bound the waiting work of each session and client address in ``demo``'s queue.

    Wraps the queue's ``push`` (gradio 6.31: ``Queue.push(body, request, username)``,
    events waiting in ``event_queue_per_concurrency_id[*].queue``); a request past a
    limit is answered 503 with one line, as a full queue is. Files a request names must
    be uploads (checked here too, so Gradio's own path errors never answer first).
    """
    queue = demo._queue
    inner = queue.push
    proxies = trusted_proxies or []

    async def push(body, request, username):
        if (missing := _fill_left_out_inputs(demo, body)) is not None:
            return False, missing, "error"
        if not all([is_upload(p) for p in _named_paths(body.data)]):  # a list: mark every payload
            return False, NOT_AN_UPLOAD, "error"
        waiting = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        if body.session_hash and sum(e.session_hash == body.session_hash for e in waiting) >= per_session:
            return (False, f"this session already has {per_session} requests waiting; "
                           "wait for them to finish", "queue_full")
        addr = client_address(request, proxies)
        if addr and sum(client_address(e.request, proxies) == addr for e in waiting) >= per_address:
            return (False, f"this address already has {per_address} requests waiting; "
                           "wait for them to finish", "queue_full")
        return await inner(body=body, request=request, username=username)

    queue.push = push


# -- Gradio's per-session component copies ------------------------------------------------

#: Methods the pages set on a component instance (``demos.intake``, ``demos.common.validated``,
#: ``demos.outputs.fast_preview``, ``demos.motion.unset_checkbox``).
INSTANCE_PATCHES = ("preprocess", "postprocess")


def keep_instance_patches() -> None:
    """Carry instance-level ``preprocess``/``postprocess`` over to Gradio's per-session copies.

    Gradio answers a prop update (``gr.update(...)``, and ``gr.skip()``, which is one) by
    building a new instance of the component from its constructor arguments and storing it
    in that session's state (``SessionState.__setitem__``); from then on the session's
    inputs and outputs go through the copy. Without this, one skipped output lost its fast
    preview (the flow view fell back to Gradio's PNG at level 6, ~30 ms a click) and an
    input its check for the rest of the session. Installed once per process; idempotent.
    """
    from gradio.components import Component
    from gradio.state_holder import SessionState

    if getattr(SessionState.__setitem__, "_keeps_instance_patches", False):
        return
    original = SessionState.__setitem__

    def setitem(self, key, value):
        old = self.blocks_config.blocks.get(key)
        if isinstance(value, Component) and old is not None and value is not old:
            for name in INSTANCE_PATCHES:
                if name in vars(old):
                    setattr(value, name, vars(old)[name])
        original(self, key, value)

    setitem._keeps_instance_patches = True
    SessionState.__setitem__ = setitem


# -- Gradio's queue --------------------------------------------------------------------------

#: Gradio's queue rebuilds a pandas summary of up to GRADIO_ANALYTICS_MAX_EVENTS past events
#: (for its monitoring page, which this app does not open) after every event, in a worker
#: thread holding the GIL: 1.3 ms with 50 events recorded, 6.7 ms with 10,000 (the default
#: cap). These defaults rebuild it once per 1,000 events and keep 2,000.
QUEUE_ANALYTICS = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "1000", "GRADIO_ANALYTICS_MAX_EVENTS": "2000"}


def tune_queue_analytics(environ=os.environ) -> None:
    """Set :data:`QUEUE_ANALYTICS` where the environment does not; ``app.build_app`` calls it
    just before it makes the Blocks' queue (Gradio reads them then)."""
    for key, value in QUEUE_ANALYTICS.items():
        environ.setdefault(key, value)


# -- Gradio's loading status ---------------------------------------------------------------------

def limit_progress_targets(demo) -> None:
    """Give every event of ``demo`` at most one progress target: none when its progress is
    hidden, else its first output that is not a ``gr.State``. An event's own
    ``show_progress_on`` is kept.

    Gradio's frontend keeps a loading status for every component that has been a progress
    target (by default: every output) of any event run in the session. Twice per event
    ("pending", "complete") it pushes each of those statuses to its component, and each
    push snapshots all of that component's props. Measured with Chromium's profiler
    on Segment-page clicks after some Motion-page use (a slow day of the 2-core VM),
    `update_loading_stati_state` took 22-29 ms of script per click with Gradio's default and
    19-21 ms with this; all script 66-85 against 56-70 ms (README, latency).
    The visible change: a progress overlay on an event's first output only.
    """
    from gradio.components import State

    for fn in demo.fns.values():
        if fn.show_progress_on is not None:
            continue
        shown = [o for o in fn.outputs if not isinstance(o, State)]
        fn.show_progress_on = [] if fn.show_progress == "hidden" or not shown else shown[:1]


# -- stopping ------------------------------------------------------------------------------------

def stop_on_signals(demo, grace_s: float = 3.0) -> None:
    """SIGINT/SIGTERM: close the server (Gradio removes its files, atexit our run folder)
    and exit; a second signal, or a close that hangs past ``grace_s``, exits at once."""
    stopping = threading.Event()

    def handler(signum, _frame):
        if stopping.is_set():
            os._exit(128 + signum)
        stopping.set()
        timer = threading.Timer(grace_s, lambda: _hard_exit(128 + signum))
        timer.daemon = True
        timer.start()
        try:
            demo.close()
        finally:
            sys.exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def _hard_exit(code: int) -> None:
    from .outputs import end_run
    end_run()
    os._exit(code)
