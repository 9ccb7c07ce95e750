"""A bounded pool of loaded engines, so each session can use the model it chose.

The app's default engine is pinned, and so is the model it segments with (its registry
entry's ``segmentation``) once loaded; other models are loaded on first use (downloaded
through :mod:`cmp.checkpoints` when needed) and evicted least recently used first
once there are more than ``max_models`` or their cost passes ``max_bytes``. The cost
of an engine is its weights plus the bound of its feature cache, so the bound holds
when every cache is full. Sessions keep only the reference string (see
:meth:`EnginePool.key`); an engine evicted while a request still uses it lives until
that request ends. Never imports Gradio.
"""
from __future__ import annotations

import threading

from cachetools import Cache, LRUCache

from .checkpoints import REGISTRY_PATH, CheckpointTooLarge, parse_ref, segmentation_ref
from .engine import Engine

#: Requests that name no model (None, "") get the pool's default engine.
DEFAULT_KEY = ""


class EnginePool:
    """Engines by checkpoint reference. Thread-safe; a model is loaded once even when
    several sessions ask for it at the same time, and loading one model does not block
    requests on the others.

    Example::

        pool = EnginePool(Engine.from_checkpoint("default"), default_ref="default")
        pool.get("hf://owner/repo").flow_for(rgb, arrows=[(120, 80, 15, 0)])
    """

    def __init__(self, default: Engine, *, default_ref: str | None = None, max_models: int = 3,
                 max_bytes: int = 1536 * 2**20, max_download_bytes: int | None = 2**30, allow_local: bool = False,
                 registry=REGISTRY_PATH, cache_entries: int = 8, cache_bytes: int = 256 * 2**20,
                 endpoint: str | None = None, cache_dir: str | None = None):
        self.default = default
        self.registry, self.allow_local = registry, allow_local
        self.max_models, self.max_bytes, self.max_download_bytes = max_models, max_bytes, max_download_bytes
        self.cache_entries, self.cache_bytes = cache_entries, cache_bytes
        self.endpoint, self.cache_dir = endpoint, cache_dir
        self.default_key = self._parse_key(default_ref, allow_local=True) if default_ref else DEFAULT_KEY
        # the model the default segments with (its registry entry's ``segmentation``), if any: once
        # loaded it is kept beside the default, outside the LRU and its bounds, as part of it
        seg = segmentation_ref(self.default_key, registry=registry) if self.default_key else None
        self.default_segmenter_key = self.key(seg) if seg and seg != self.default_key else None
        self._pinned: dict[str, Engine] = {}
        # LRU by cost (weights + image cache); a model over max_bytes is refused in _load,
        # so the newest always fits. The model count is the second bound (_evict).
        self._engines: LRUCache[str, Engine] = LRUCache(max_bytes, getsizeof=self.cost)
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many models were loaded (tests and benchmarks read it)

    def _parse_key(self, ref, *, allow_local: bool) -> str:
        return parse_ref(ref, allow_local=allow_local, registry=self.registry).key

    def key(self, ref: str | None) -> str:
        """Canonical key of ``ref`` ("" for the default engine); raises :class:`CheckpointError`
        for a malformed reference or (unless ``allow_local``) a local path."""
        if ref is None or not str(ref).strip():
            return self.default_key
        return self._parse_key(ref, allow_local=self.allow_local)

    def label(self, ref: str | None) -> str:
        """What to call the model ``ref`` names, without loading it."""
        key = self.key(ref)
        return self.default.name if key == self.default_key else key

    def cost(self, engine: Engine) -> int:
        return engine.weight_bytes + engine.cache.max_bytes

    def is_loaded(self, ref: str | None) -> bool:
        key = self.key(ref)
        with self._lock:
            return key == self.default_key or key in self._pinned or key in self._engines

    def loaded(self) -> list[tuple[str, str, int]]:
        """(key, engine name, cost in bytes) of the default then each pooled engine, oldest first."""
        with self._lock:
            # Cache.__getitem__: read without making each engine the most recently used
            items = [(self.default_key, self.default), *self._pinned.items(),
                     *((k, Cache.__getitem__(self._engines, k)) for k in self._engines)]
        return [(k, e.name, self.cost(e)) for k, e in items]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._engines.currsize

    def get(self, ref: str | None) -> Engine:
        """The engine for ``ref``, loading it (and evicting others) if needed."""
        key = self.key(ref)
        if key == self.default_key:
            return self.default
        with self._lock:
            eng = self._hit(key)
            if eng is not None:
                return eng
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per model; other models keep serving meanwhile
            with self._lock:
                eng = self._hit(key)
            if eng is not None:
                return eng
            try:
                eng = self._load(key)
                with self._lock:
                    if key == self.default_segmenter_key:
                        self._pinned[key] = eng
                    else:
                        self._engines[key] = eng
                        self._evict()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return eng

    def segmenter_key(self, ref: str | None) -> str | None:
        """The key of the model segmentation uses for ``ref`` when it is not ``ref``'s own
        (without loading it): for the default (None, "") the model its registry entry names
        for segmentation (:func:`cmp.checkpoints.segmentation_ref`, read once when the pool is
        made); else None (a model the session chose segments itself, and so does a default
        built without a name). Once loaded, that model is kept beside the default, never evicted."""
        return self.default_segmenter_key if self.key(ref) == self.default_key else None

    def segmenter(self, ref: str | None) -> Engine:
        """The engine segmentation uses for ``ref`` (see :meth:`segmenter_key`), loaded on first use."""
        seg = self.segmenter_key(ref)
        return self.get(seg if seg else ref)

    def _hit(self, key: str) -> Engine | None:
        pinned = self._pinned.get(key)
        return pinned if pinned is not None else self._engines.get(key)  # an LRU hit becomes the most recent

    def _load(self, key: str) -> Engine:
        rt = self.default.runtime
        eng = Engine.from_checkpoint(key, device=str(rt.device), precision=rt.precision, side=self.default.side,
                                     registry=self.registry, allow_local=self.allow_local, endpoint=self.endpoint,
                                     cache_dir=self.cache_dir, max_bytes=self.max_download_bytes,
                                     cache_entries=self.cache_entries, cache_bytes=self.cache_bytes)
        cost = self.cost(eng)
        if cost > self.max_bytes:
            raise CheckpointTooLarge(f"{eng.name} needs {cost / 2**20:,.0f} MB loaded (weights and image cache); "
                                     f"this app keeps at most {self.max_bytes / 2**20:,.0f} MB of extra models")
        self.loads += 1
        return eng

    def _evict(self) -> None:
        """Drop least recently used engines past the model count (bytes: the LRUCache itself)."""
        while len(self._engines) > max(1, self.max_models):
            self._engines.popitem()


__all__ = ["DEFAULT_KEY", "EnginePool"]
