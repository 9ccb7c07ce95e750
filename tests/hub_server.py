"""A loopback HTTP server that answers like the Hugging Face Hub's file and upload endpoints.

Downloads (``hf_hub_download(endpoint=...)``): HEAD and GET on
``/{repo_id}/resolve/{revision}/{path}`` (models) and
``/datasets/{repo_id}/resolve/{revision}/{path}``, with ``X-Repo-Commit``,
``ETag`` and ``Content-Length``; a missing file is a 404 with
``X-Error-Code: EntryNotFound``, a missing repo ``RepoNotFound``.

Uploads (``HfApi.create_repo`` + ``upload_folder``, i.e. ``create_commit``; the
routes are those of huggingface_hub 2.4's ``hf_api.py`` and ``_commit_api.py``):
``POST /api/repos/create``, ``POST /api/validate-yaml`` (a README.md's metadata block),
``POST /api/{type}s/{repo}/preupload/{rev}`` (every file
answered ``uploadMode: regular``, so contents travel base64 inside the commit and no
LFS/Xet route is needed) and ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON: a
header line, then ``file`` / ``deletedFile`` lines). Each commit gets a new commit id.

Every request is logged (method, path, Authorization header) so tests can prove
that an offline load made none and that a push sent the token.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self):
        self.files: dict[tuple[str, str, str, str], bytes] = {}  # (type, repo, rev, path) -> bytes
        self.commits: dict[tuple[str, str, str], str] = {}  # (type, repo, rev) -> current commit id
        self.repos: dict[tuple[str, str], dict] = {}  # (type, repo) -> create_repo payload
        self.requests: list[tuple[str, str]] = []
        self.auth: list[str | None] = []
        self.card_metadata: dict | None = None  # the last README.md metadata validated
        self.body_delay = 0.0  # seconds a GET waits between its headers and its body (a slow link)
        self._lock = threading.Lock()
        self._n = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_HEAD(self):
                hub._log(self)
                hub._resolve(self, body=False)

            def do_GET(self):
                hub._log(self)
                hub._resolve(self, body=True)

            def do_POST(self):
                hub._log(self)
                hub._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _new_commit(self, key: tuple[str, str, str]) -> str:
        self._n += 1
        self.commits[key] = hashlib.sha1(f"{key}:{self._n}".encode()).hexdigest()
        return self.commits[key]

    def add(self, repo_id: str, path: str, data: bytes, *, repo_type: str = "model", revision: str = "main"):
        with self._lock:
            self.files[(repo_type, repo_id, revision, path)] = data
            self.repos.setdefault((repo_type, repo_id), {})
            self._new_commit((repo_type, repo_id, revision))

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _log(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append((h.command, h.path))
            self.auth.append(h.headers.get("Authorization"))

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, doc) -> None:
        body = json.dumps(doc).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    # -- downloads --------------------------------------------------------------
    def _resolve(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = urlsplit(h.path).path
        repo_type = "model"
        if path.startswith("/datasets/"):
            repo_type, path = "dataset", path[len("/datasets"):]
        repo, sep, rest = path.lstrip("/").partition("/resolve/")
        rev, _, fname = rest.partition("/")
        key = (repo_type, unquote(repo), unquote(rev), unquote(fname))
        with self._lock:
            data = self.files.get(key) if sep else None
            known_repo = (repo_type, key[1]) in self.repos
            commit = self.commits.get(key[:3])
        if data is None:
            if sep and not known_repo:
                return self._error(h, 404, "RepoNotFound", "Repository not found")
            return self._error(h, 404, "EntryNotFound", "Entry not found")
        h.send_response(200)
        h.send_header("X-Repo-Commit", commit)
        h.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if body:
            time.sleep(self.body_delay)
            h.wfile.write(data)

    # -- uploads ----------------------------------------------------------------
    def _post(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        path = urlsplit(h.path).path
        if path == "/api/repos/create":
            doc = json.loads(raw)
            repo_type = doc.get("type") or "model"
            repo_id = f"{doc['organization']}/{doc['name']}" if doc.get("organization") else doc["name"]
            with self._lock:
                if (repo_type, repo_id) in self.repos:
                    return self._error(h, 409, "RepoExists", "You already created this model repo")
                self.repos[(repo_type, repo_id)] = doc
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return self._json(h, {"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":  # upload_folder checks a README.md's metadata before hashing
            import yaml
            content = json.loads(raw)["content"]
            head, sep, _ = content.removeprefix("---\n").partition("\n---")
            try:
                meta = yaml.safe_load(head) if content.startswith("---\n") and sep else None
            except yaml.YAMLError as exc:
                meta, problem = None, str(exc).splitlines()[0]
            else:
                problem = None if isinstance(meta, dict) else "no YAML metadata block"
            if problem:
                body = json.dumps({"errors": [{"message": problem}]}).encode()
                h.send_response(400)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                return h.wfile.write(body)
            with self._lock:
                self.card_metadata = meta
            return self._json(h, {"errors": [], "warnings": []})
        parts = path.split("/")  # ['', 'api', 'models', owner, name, 'preupload'|'commit', rev]
        if len(parts) == 7 and parts[1] == "api" and parts[5] in ("preupload", "commit"):
            repo_type, repo_id, rev = parts[2][:-1], f"{parts[3]}/{parts[4]}", unquote(parts[6])
            with self._lock:
                exists = (repo_type, repo_id) in self.repos
            if not exists:
                return self._error(h, 404, "RepoNotFound", "Repository not found")
            if parts[5] == "preupload":
                files = json.loads(raw)["files"]
                return self._json(h, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                for f in files]})
            with self._lock:
                for line in raw.splitlines():
                    op = json.loads(line)
                    value = op["value"]
                    if op["key"] == "file":
                        self.files[(repo_type, repo_id, rev, value["path"])] = base64.b64decode(value["content"])
                    elif op["key"] == "deletedFile":
                        self.files.pop((repo_type, repo_id, rev, value["path"]), None)
                    elif op["key"] != "header":
                        return self._error(h, 400, "BadRequest", f"fake hub cannot do {op['key']}")
                commit = self._new_commit((repo_type, repo_id, rev))
            return self._json(h, {"commitUrl": f"{self.url}/{repo_id}/commit/{commit}", "commitOid": commit})
        return self._error(h, 404, "NotFound", f"fake hub has no route {path}")


#: Where serve_standins puts things on the loopback Hub.
ORIGINAL = ("org/cmp-weights", "models/cmp/experiments/checkpoints/ckpt_iter_42000.pth.tar")
SAVED_REPO = "me/saved-cmp"


def serve_standins(hub: FakeHub, folder) -> tuple[dict, dict, str]:
    """Serve stand-in checkpoints on ``hub``; returns (refs, local files, registry path).

    refs: ``original`` (a random TINY in the original ``.pth.tar`` layout, seed 1),
    ``saved`` (a random TINY_AFFINITY saved as a model repo, seed 2), ``slow`` (another
    original-format TINY, seed 5, for a download seen while it runs), ``classifier`` (not
    a CMP), ``big`` (3 MB of noise), ``missing_repo``, ``missing_file``; registry names
    ``standin`` (the original file, right sha256) and ``corrupt`` (a copy of it whose
    registry sha256 is wrong). files: local copies (``original``, ``saved`` folder).
    """
    import json
    import os
    from pathlib import Path

    import torch

    from cmp.hub import CMPRepo
    from cmp.model import TINY, TINY_AFFINITY
    from helpers import random_model, save_original

    folder = Path(folder)
    original = save_original(random_model(TINY, seed=1), folder / "ckpt_iter_42000.pth.tar")
    data = original.read_bytes()
    hub.add(*ORIGINAL, data)
    copy = "models/cmp/copy.pth.tar"
    hub.add(ORIGINAL[0], copy, data)
    slow = save_original(random_model(TINY, seed=5), folder / "slow.pth.tar")  # other bytes: no cached blob
    hub.add(ORIGINAL[0], "models/cmp/slow.pth.tar", slow.read_bytes())
    saved = folder / "saved-cmp"
    CMPRepo(TINY_AFFINITY, random_model(TINY_AFFINITY, seed=2), {"steps": "7"}).save_pretrained(
        saved, model_card_kwargs={"title": "saved-cmp", "repo_id": SAVED_REPO})
    for f in saved.iterdir():
        hub.add(SAVED_REPO, f.name, f.read_bytes())
    classifier = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7), torch.nn.BatchNorm2d(8))
    torch.save({"state_dict": {f"module.{k}": v for k, v in classifier.state_dict().items()}},
               folder / "classifier.pth")
    hub.add("org/other", "classifier.pth", (folder / "classifier.pth").read_bytes())
    hub.add(ORIGINAL[0], "big.pth.tar", os.urandom(3 * 2**20))
    sha = hashlib.sha256(data).hexdigest()
    entries = [{"name": name, "description": "stand-in", "license": "MIT", "config": "tiny", "sha256": digest,
                "size": len(data), "hub": [{"repo_id": ORIGINAL[0], "filename": path, "repo_type": "model",
                                            "revision": "main"}]}
               for name, path, digest in (("standin", ORIGINAL[1], sha), ("corrupt", copy, "0" * 64))]
    registry = folder / "registry.json"
    registry.write_text(json.dumps({"checkpoints": entries}))
    refs = {"original": f"hf://{ORIGINAL[0]}/{ORIGINAL[1]}", "saved": f"hf://{SAVED_REPO}",
            "slow": f"hf://{ORIGINAL[0]}/models/cmp/slow.pth.tar", "classifier": "hf://org/other/classifier.pth", "big": f"hf://{ORIGINAL[0]}/big.pth.tar",
            "missing_repo": "hf://org/nothing-here/x.pth.tar", "missing_file": f"hf://{ORIGINAL[0]}/nope.pth.tar"}
    return refs, {"original": str(original), "saved": str(saved)}, str(registry)
