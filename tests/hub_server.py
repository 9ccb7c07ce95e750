"""A loopback HTTP server that answers like the Hugging Face Hub's file endpoints.

Enough of the protocol for ``hf_hub_download(endpoint=...)``: HEAD and GET on
``/{repo_id}/resolve/{revision}/{path}`` (models) and
``/datasets/{repo_id}/resolve/{revision}/{path}``, with ``X-Repo-Commit``,
``ETag`` and ``Content-Length``; a missing file is a 404 with
``X-Error-Code: EntryNotFound``. Every request is logged so tests can prove
that an offline load made none.
"""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self):
        self.files: dict[tuple[str, str, str, str], bytes] = {}  # (type, repo, rev, path) -> bytes
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_HEAD(self):
                hub._answer(self, body=False)

            def do_GET(self):
                hub._answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo_id: str, path: str, data: bytes, *, repo_type: str = "model", revision: str = "main"):
        self.files[(repo_type, repo_id, revision, path)] = data

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        with self._lock:
            self.requests.append((h.command, h.path))
        path = urlsplit(h.path).path
        repo_type = "model"
        if path.startswith("/datasets/"):
            repo_type, path = "dataset", path[len("/datasets"):]
        repo, sep, rest = path.lstrip("/").partition("/resolve/")
        rev, _, fname = rest.partition("/")
        key = (repo_type, unquote(repo), unquote(rev), unquote(fname))
        data = self.files.get(key) if sep else None
        if data is None:
            h.send_response(404)
            h.send_header("X-Error-Code", "EntryNotFound")
            h.send_header("X-Error-Message", "Entry not found")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        commit = hashlib.sha1(repr(key[:3]).encode()).hexdigest()
        h.send_response(200)
        h.send_header("X-Repo-Commit", commit)
        h.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if body:
            h.wfile.write(data)
