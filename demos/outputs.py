"""Where the app writes files: one folder per run, each output written once, a disk quota.

``start_run`` (called by ``app.main``) gives the process its own folder under
``<tmp>/cmp-studio/run-<pid>-<start>/`` and points Gradio's upload/cache folder
(``GRADIO_TEMP_DIR``) inside it, so uploads, Gradio's own previews and our outputs all
live there; the folder is removed at a clean stop, and folders of runs whose process
is gone are removed at the next start. Outputs are written straight into Gradio's
cache folder, so Gradio serves them without copying them a second time. Before a
new output the least recently used files are evicted until the folder is under
:data:`OUTPUT_QUOTA_BYTES` (and files unused for :data:`TEMP_MAX_AGE_S` go anyway); an
upload counts as used whenever a request reads it. That check runs before every output
once the folder holds half the quota, and at most every :data:`QUOTA_CHECK_S` below that.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time

from gradio.utils import get_upload_folder

from cmp.images import encode_png

#: Parent of every run's folder.
RUN_ROOT = os.path.join(tempfile.gettempdir(), "cmp-studio")
#: Total bytes of files kept for users (outputs, and in a run folder also uploads and
#: Gradio's previews); the oldest go first past it. Env CMP_DISK_QUOTA_MB.
OUTPUT_QUOTA_BYTES = int(os.environ.get("CMP_DISK_QUOTA_MB", "2048")) * 2**20
#: Files older than this are removed whatever the quota.
TEMP_MAX_AGE_S = 3600

_lock = threading.Lock()
_run_dir: str | None = None
#: Files the quota never deletes: Gradio's cached copies of the example photos and of the
#: components' default values (``keep_in_cache``), which every page load shows.
_kept: set[str] = set()


def keep(paths) -> None:
    """Never let :func:`enforce_quota` delete these files (Gradio's own cache cleaning spares
    them too); the app passes every block's ``keep_in_cache`` once it is built."""
    _kept.update(os.path.realpath(p) for p in paths)


def output_dir() -> str:
    """Folder of per-request outputs, inside Gradio's cache so Gradio never copies them."""
    return os.path.join(get_upload_folder(), "cmp-outputs")


def quota_root() -> str:
    """What the quota covers: the whole run folder when this process has one, else our outputs."""
    return _run_dir or output_dir()


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def _run_alive(name: str) -> bool:
    try:
        _, pid, ticks = name.split("-", 2)
        pid = int(pid)
    except ValueError:
        return False
    if os.path.isdir("/proc/self"):
        return os.path.exists(f"/proc/{pid}") and _start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_dead_runs(root: str = RUN_ROOT) -> int:
    """Remove folders of runs whose process is gone (and loose files of older versions
    past the age limit); returns how many entries were removed."""
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    now = time.time()
    for e in entries:
        try:
            if e.name.startswith("run-"):
                if _run_alive(e.name):
                    continue
            elif now - e.stat(follow_symlinks=False).st_mtime <= TEMP_MAX_AGE_S:
                continue
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed += 1
        except OSError:  # another process got there first
            pass
    return removed


def start_run(root: str = RUN_ROOT) -> str:
    """Give this process its own folder and point Gradio's upload/cache folder into it.

    Call before any ``gr.Blocks`` is built (Gradio reads ``GRADIO_TEMP_DIR`` then).
    Removes dead runs' folders first; the new one is removed at exit (:func:`end_run`).
    """
    global _run_dir
    os.makedirs(root, exist_ok=True)
    remove_dead_runs(root)
    pid = os.getpid()
    run = os.path.join(root, f"run-{pid}-{_start_ticks(pid)}")
    os.makedirs(run, mode=0o700, exist_ok=True)  # other users of a shared host cannot read uploads
    os.makedirs(os.path.join(run, "gradio"), exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(run, "gradio")
    _run_dir = run
    atexit.register(end_run)
    return run


def end_run() -> None:
    """Remove this process's run folder (at a clean stop)."""
    global _run_dir
    run, _run_dir = _run_dir, None
    if run:
        shutil.rmtree(run, ignore_errors=True)


def touch(path: str) -> None:
    """Mark a kept file as just used (its access time; the modification time, which caches
    key on, stays), so the quota evicts it after files nobody has used since."""
    try:
        st = os.stat(path)
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
    except OSError:
        pass


def enforce_quota(root: str, quota: int, max_age_s: float = TEMP_MAX_AGE_S, now: float | None = None) -> int:
    """Delete files under ``root`` unused for ``max_age_s``, then the least recently used
    (written, or read through :func:`touch`) until the rest fit in ``quota`` bytes;
    returns the bytes kept. Files given to :func:`keep` stay (and count)."""
    now = time.time() if now is None else now
    files, made = [], {}
    for folder, _dirs, names in os.walk(root):
        try:
            made[folder] = os.stat(folder).st_mtime  # before the deletions below touch it
        except OSError:
            continue
        for n in names:
            p = os.path.join(folder, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            files.append((max(st.st_mtime, st.st_atime), st.st_size, p))
    files.sort()
    total = sum(f[1] for f in files)
    for mtime, size, p in files:
        if total <= quota and now - mtime <= max_age_s:
            break
        if os.path.realpath(p) in _kept:
            continue
        try:
            os.unlink(p)
            total -= size
        except OSError:
            pass
    for folder, dirs, names in os.walk(root, topdown=False):  # folders emptied above
        if folder != root and not dirs and not names:
            try:
                if now - made.get(folder, now) > 60:  # not one another request just made
                    os.rmdir(folder)
            except OSError:
                pass
    return total


#: The quota walks the whole run folder (a stat per upload, preview and output). Under load
#: that walk cost a /motion_flow request about as much as its model call (py-spy, README),
#: so while the last walk left more than half the quota free it runs at most this often;
#: past half, before every new output. Between walks the folder can grow by what this many
#: seconds of requests write, which the free half absorbs.
QUOTA_CHECK_S = 0.5
_last_walk = (-float("inf"), 0)  # (time.monotonic(), bytes kept) of the last walk


def _prepare() -> str:
    global _last_walk
    folder = output_dir()
    os.makedirs(folder, exist_ok=True)
    with _lock:
        when, kept = _last_walk
        now = time.monotonic()
        if now - when >= QUOTA_CHECK_S or kept > OUTPUT_QUOTA_BYTES // 2:
            _last_walk = (now, enforce_quota(quota_root(), OUTPUT_QUOTA_BYTES))
    return folder


def temp_path(suffix: str) -> str:
    """A fresh per-request output file (random name) in :func:`output_dir`."""
    fd, path = tempfile.mkstemp(prefix="cmp-", suffix=suffix, dir=_prepare())
    os.close(fd)
    return path


def temp_dir() -> str:
    """A fresh per-request folder in :func:`output_dir` (for several files with fixed names)."""
    return tempfile.mkdtemp(prefix="cmp-", dir=_prepare())


#: How previews are encoded: "exact" keeps every pixel (:func:`cmp.images.encode_png`, 5.6 ms
#: for a 512 px colour wheel against ~30 ms at Gradio's default level), "photo" is a JPEG
#: without chroma subsampling (a 512 px photo in ~1.5 ms instead of ~40 ms as Gradio's default
#: WebP; thin coloured lines keep their colour). See the README's latency breakdown.
PREVIEW_FORMATS = {"exact": ("png", None), "photo": ("jpg", {"quality": 95, "subsampling": 0})}


_encoded: list = []  # the last few remembered (array, kind, bytes)
_encoded_lock = threading.Lock()


def encode_preview(value, kind: str = "exact", *, remember: bool = False) -> bytes:
    """``value`` ((H, W, 3) uint8 array) encoded as :data:`PREVIEW_FORMATS` says for ``kind``.
    With ``remember`` the bytes are kept for that very array object (the last four), so it is
    encoded once when it is asked for again: a direct click's images (:mod:`demos.direct`) go
    out as data URLs, then the same arrays through Gradio. Only arrays handed over that way
    are remembered (none that their owner may still change)."""
    from io import BytesIO

    import numpy as np
    from PIL import Image

    with _encoded_lock:
        for arr, k, data in _encoded:
            if arr is value and k == kind:
                return data
    ext, options = PREVIEW_FORMATS[kind]
    if ext == "png":
        data = encode_png(value)
    else:
        buf = BytesIO()
        Image.fromarray(np.ascontiguousarray(value, dtype=np.uint8)).save(buf, "JPEG", **options)
        data = buf.getvalue()
    if remember:
        with _encoded_lock:
            _encoded.append((value, kind, data))  # holds the array, so its id cannot be reused meanwhile
            del _encoded[:-4]
    return data



def fast_preview(comp, kind: str = "exact"):
    """Let the image component ``comp`` encode numpy previews quickly (see :data:`PREVIEW_FORMATS`).

    Gradio encodes every returned numpy image in the component's format (WebP unless set)
    at PIL's default settings and hashes it into its cache folder; for a click that was
    most of the page's own time. The one
    instance is adjusted (a subclass would make Gradio write a .pyi stub). Files, PIL
    images and None go through Gradio's own path.
    """
    import hashlib

    import numpy as np
    from gradio.data_classes import ImageData

    ext = PREVIEW_FORMATS[kind][0]
    original = comp.postprocess

    def postprocess(value):
        if not isinstance(value, np.ndarray):
            return original(value)
        data = encode_preview(value, kind)
        folder = os.path.join(comp.GRADIO_CACHE, hashlib.blake2b(data, digest_size=16).hexdigest())
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"image.{ext}")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        return ImageData(path=path, orig_name=f"image.{ext}")

    comp.postprocess = postprocess
    comp._cmp_preview_kind = kind  # what demos.direct encodes a direct click's image as
    return comp
