"""The shared inference engine: set an image once, propagate many guidance sets.

One engine per loaded model serves every page, the CLI and Python users (the app
keeps the default one plus the models sessions chose in :class:`cmp.pool.EnginePool`).
It holds the model, the device/precision and a bounded LRU cache of per-image
features; it holds no per-user state (callers keep the small
:class:`ImageHandle`). All device work runs under one lock.

Coordinates are (x, y) = (column, row) in pixels of the caller's image;
flows are (H, W, 2) float32 with channel 0 = dx, 1 = dy in those pixels.
"""
from __future__ import annotations

import hashlib
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from cachetools import LRUCache

from .checkpoints import LoadedCheckpoint, load_checkpoint
from .device import Runtime
from .geometry import MIN_MODEL_SIDE, PAD_MULTIPLE, ImageTransform
from .guidance import as_points, encode_sparse, guidance_pixels, infer_scene_motion, validate_points
from .images import check_rgb
from .model import AffinityFeatures, CMPNetwork, ImageFeatures, normalize_image
from .model.affinity import BLENDS
from .model.frozen import FrozenEncoder
from .refine import GuidedFilter

#: What ``model.encode_image`` returns, for either network kind.
Features = ImageFeatures | AffinityFeatures

DEFAULT_SIDE = 384
#: The motion's edges follow the image's: the flow is guided-filtered (He et al.) with the
#: model's view of the image as guide, radius (px at the model's side) and eps (colour units
#: in [0, 1], squared), its coefficients fitted at 1/``FLOW_EDGE_SUBSAMPLE`` resolution (1/4:
#: the same errors as 1/2 to 0.3%, in 2 ms instead of 3.5 for a 384 px flow). The embedding
#: is coarser than the image, so the blend mixes the two sides of a depth border; chosen on
#: the tuning sets (checkpoints/cmp-slim-affinity-log.md, "Motion edges that follow the image").
FLOW_EDGE_RADIUS = 8
FLOW_EDGE_EPS = 1e-3
FLOW_EDGE_SUBSAMPLE = 4


def edge_filter(view: np.ndarray) -> GuidedFilter:
    """The edge snap's filter for the model's view of an image ((h, w, 3) uint8, no padding)."""
    return GuidedFilter(view.astype(np.float32) / 255.0, FLOW_EDGE_RADIUS, FLOW_EDGE_EPS, FLOW_EDGE_SUBSAMPLE)


@dataclass
class CachedImage:
    """One image in the cache: the network's features and the model's view of the image
    (resized, without padding), whose edge filter is built the first time a flow is snapped:
    segmentation crops and models without the snap never pay for it. The cache is charged
    for the filter from the start, so its byte bound holds either way."""

    feats: Features
    view: np.ndarray
    _edges: GuidedFilter | None = None
    _walk: object = None  # a cmp.walk.WalkGraph, built by Engine.walk_graph

    def edges(self) -> GuidedFilter:
        if self._edges is None:  # two threads may both build it: the same filter, no harm
            self._edges = edge_filter(self.view)
        return self._edges

    def nbytes(self) -> int:
        h, w = self.view.shape[:2]
        n = self.feats.nbytes() + self.view.nbytes + GuidedFilter.nbytes_for(h, w, FLOW_EDGE_SUBSAMPLE)
        if isinstance(self.feats, AffinityFeatures):  # the walk's graph, charged before it is built
            from .walk import WalkGraph

            n += WalkGraph.nbytes_for(*self.feats.embed.shape[-2:])
        return n


class ImageNotCached(KeyError):
    """The handle's features were evicted; call :meth:`Engine.set_image` again."""


@dataclass(frozen=True)
class ImageHandle:
    """Small, deep-copyable reference to an image set on the engine."""

    key: str
    height: int
    width: int
    side: int

    @property
    def transform(self) -> ImageTransform:
        return ImageTransform(self.height, self.width, self.side)


class FeatureCache:
    """LRU cache of per-image features (either network kind), bounded by bytes and entry count.

    A :class:`cachetools.LRUCache` sized in bytes; the entry count is the second bound.
    An entry larger than the whole byte budget is still kept, alone (it counts as the
    full budget), so the image just set can always be propagated.
    """

    def __init__(self, max_entries: int = 16, max_bytes: int = 512 * 2**20):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._d: LRUCache[str, Features] = LRUCache(max_bytes, getsizeof=lambda f: min(f.nbytes(), max_bytes))
        self.hits = self.misses = 0

    def get(self, key: str) -> Features | None:
        f = self._d.get(key)  # a hit becomes the most recently used
        if f is None:
            self.misses += 1
            return None
        self.hits += 1
        return f

    def put(self, key: str, feats: Features) -> None:
        self._d[key] = feats  # now the most recently used
        while len(self._d) > self.max_entries:
            self._d.popitem()

    def __contains__(self, key: str) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    @property
    def nbytes(self) -> int:
        """Bytes held (an entry over the budget counts as the budget)."""
        return self._d.currsize

    def clear(self) -> None:
        self._d.clear()


def image_key(rgb: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((rgb.shape, str(rgb.dtype))).encode())
    h.update(np.ascontiguousarray(rgb).data)
    return h.hexdigest()


class Engine:
    """CMP inference with per-image feature caching.

    Example::

        eng = Engine.from_checkpoint()              # embedded default model
        h = eng.set_image(rgb)                      # (H, W, 3) uint8 RGB
        flow = eng.propagate(h, arrows=[(120, 80, 15, 0)], pins=[(30, 200)])

    ``freeze`` (None = auto: bf16 on a CPU) encodes images with :class:`cmp.model.frozen.FrozenEncoder`.
    ``scene_blend``: how a model that reads guidance as points combines the arrows in its
    "whole scene moves" mode when the caller does not say (:data:`cmp.model.affinity.BLENDS`:
    ``affine`` follows gradients between arrows, such as a floor receding in depth; ``mean``
    is what training optimises, and what objects on a still scene always take by default).
    ``flow_edges``: snap motion to the image's edges (:data:`FLOW_EDGE_RADIUS`) unless a call
    says otherwise; False gives the network's flow as it is; None (default) snaps for models
    that read the guidance as points (the embedded one, where it was measured) and not for
    the original's convolutional decoder (never measured with it).
    """

    def __init__(self, model: CMPNetwork, runtime: Runtime | None = None, *, side: int = DEFAULT_SIDE,
                 name: str = "custom", cache_entries: int = 16, cache_bytes: int = 512 * 2**20,
                 freeze: bool | None = None, scene_blend: str = "affine", flow_edges: bool | None = None):
        self.runtime = runtime or Runtime.create()
        self.model = model.eval().to(self.runtime.device)
        if self.runtime.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        for p in self.model.parameters():
            p.requires_grad_(False)
        if scene_blend not in BLENDS:
            raise ValueError(f"unknown blend {scene_blend!r}; choose one of {', '.join(BLENDS)}")
        self.scene_blend = scene_blend
        self.flow_edges = not self.model.convolves_guidance if flow_edges is None else bool(flow_edges)
        self.side = int(side)
        self.name = name
        self.cache = FeatureCache(cache_entries, cache_bytes)
        self._lock = threading.Lock()
        # The image encoder, chosen once: in bf16 on a CPU a frozen graph (cmp.model.frozen,
        # about 1.3x quicker); fp32 (the reference) and GPUs run the eager model.
        if freeze is None:
            freeze = self.runtime.device.type == "cpu" and self.runtime.precision == "bf16"
        self._frozen = FrozenEncoder(self.model, self.runtime.dtype) if freeze and hasattr(self.model, "features_from_tensors") \
            else None
        self.info: dict = {}

    @classmethod
    def from_checkpoint(cls, name_or_path: str | None = None, *, device: str | None = "auto",
                        precision: str | None = "auto", side: int = DEFAULT_SIDE, registry=None,
                        allow_local: bool = True, endpoint: str | None = None, cache_dir: str | None = None,
                        max_bytes: int | None = None, **kw) -> "Engine":
        """Load a checkpoint: a registry name, a local path, ``hf://owner/repo[@rev][/file]``
        (see :func:`cmp.checkpoints.parse_ref`), or None = the embedded default.

        ``registry``, ``allow_local``, ``endpoint``, ``cache_dir`` and ``max_bytes`` (download
        size limit) go to :func:`cmp.checkpoints.load_checkpoint`; ``kw`` to the constructor.
        """
        load_kw = {k: v for k, v in (("registry", registry), ("endpoint", endpoint), ("cache_dir", cache_dir),
                                     ("max_bytes", max_bytes)) if v is not None}
        ck: LoadedCheckpoint = load_checkpoint(name_or_path, allow_local=allow_local, **load_kw)
        eng = cls(ck.model, Runtime.create(device, precision), side=side, name=ck.label, **kw)
        eng.info = {"checkpoint": ck.label, "path": str(ck.path), "config": ck.config.name,
                    "metadata": ck.metadata}
        return eng

    @property
    def weight_bytes(self) -> int:
        """Bytes of the model's parameters and buffers, and of the frozen encoder's copy of its
        encoding weights when there is one (the features cache comes on top)."""
        own = sum(t.numel() * t.element_size() for t in (*self.model.parameters(), *self.model.buffers()))
        return own + (self._frozen.nbytes if self._frozen is not None else 0)

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def precision(self) -> str:
        return self.runtime.precision

    # -- image ---------------------------------------------------------------
    def _image_tensor(self, rgb_model: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(rgb_model)).permute(2, 0, 1)[None].float()
        t = normalize_image(t).to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.device.type == "cpu" else t

    def set_image(self, rgb: np.ndarray) -> ImageHandle:
        """Encode an (H, W, 3) uint8 RGB image once; returns a handle for propagate.

        Cheap when the same image (same bytes) was set before and is still cached.
        Raises :class:`cmp.geometry.ImageSizeError` for images too small to use.
        """
        rgb = check_rgb(rgb)
        tf = ImageTransform(rgb.shape[0], rgb.shape[1], self.side)
        key = f"{self.name}:{self.side}:{image_key(rgb)}"
        handle = ImageHandle(key, rgb.shape[0], rgb.shape[1], self.side)
        with self._lock:
            if key in self.cache:
                self.cache.get(key)
                return handle
        view = tf.apply_image(rgb)
        x = self._image_tensor(view)
        ih, iw = tf.inner_size
        with self._lock, torch.inference_mode():
            feats = self._encode_image(x)
            self.cache.put(key, CachedImage(feats, np.ascontiguousarray(view[:ih, :iw])))
        return handle

    def warm_up(self, stop: Callable[[], bool] | None = None) -> int:
        """Encode a blank input once at every model input size images can have (81 at 384 px:
        each aspect ratio pads to one of them), so no user's first image of a new size pays for
        building its convolutions (1.3-2x an encoding on a CPU; see
        :data:`cmp.device.ONEDNN_CACHE_CAPACITY`). The feature cache is not touched. Takes the
        lock per size, so a click waits at most one encoding; ``stop()`` true ends it early.
        CPUs only (elsewhere nothing to do); returns the number of sizes encoded."""
        if self.device.type != "cpu":
            return 0
        sides = range(MIN_MODEL_SIDE, self.side + 1, PAD_MULTIPLE)
        sizes = sorted({(a, self.side) for a in sides} | {(self.side, a) for a in sides}, reverse=True)
        done = 0
        for h, w in sizes:
            if stop is not None and stop():
                break
            x = self._image_tensor(np.zeros((h, w, 3), np.uint8))
            with self._lock, torch.inference_mode():
                self._encode_image(x)
            done += 1
        return done

    def _encode_image(self, x: torch.Tensor) -> Features:
        """``model.encode_image`` on the encoder chosen at construction (:attr:`frozen`); a model
        that cannot be traced falls back, once and for good, to the eager one under autocast."""
        if self._frozen is not None and not self._frozen.ready:
            try:
                self._frozen.prepare(x)
            except Exception as e:  # noqa: BLE001 - any tracing failure means: stay eager
                warnings.warn(f"{self.name}: frozen encoder unavailable, using the eager one ({e})", stacklevel=3)
                self._frozen = None
        if self._frozen is not None:
            return self._frozen(x)
        with self.runtime.autocast():
            return self.model.encode_image(x)

    @property
    def frozen(self) -> bool:
        """Whether images are encoded by the frozen bf16 graph (:mod:`cmp.model.frozen`)."""
        return self._frozen is not None

    def embedding(self, handle: ImageHandle):
        """The model's per-pixel embedding of a cached image, for :mod:`cmp.walk`
        (a :class:`cmp.walk.Embedding`), or None for a network without one (the original's
        bin decoder). Raises :class:`ImageNotCached` when the handle's features were evicted."""
        return self._embedding(self._entry(handle), handle)

    def _entry(self, handle: ImageHandle) -> CachedImage:
        """The handle's cache entry (now the most recently used); :class:`ImageNotCached` if evicted."""
        with self._lock:
            entry = self.cache.get(handle.key)
        if entry is None:
            raise ImageNotCached(handle.key)
        return entry

    def _embedding(self, entry: CachedImage, handle: ImageHandle):
        from .walk import Embedding

        beta = getattr(self.model, "log_beta", None)
        if beta is None or not isinstance(entry.feats, AffinityFeatures):
            return None
        values = entry.feats.embed[0].float().cpu().numpy()
        (H, W), (ih, iw) = handle.transform.model_size, handle.transform.inner_size
        h2, w2 = values.shape[1:]
        # the embedding's rows and columns that the image covers (align_corners, as the blend reads it)
        hh = min(h2, int(np.ceil((ih - 1) * (h2 - 1) / max(H - 1, 1))) + 1)
        ww = min(w2, int(np.ceil((iw - 1) * (w2 - 1) / max(W - 1, 1))) + 1)
        return Embedding(values, (hh, ww), float(torch.nn.functional.softplus(beta.detach().float())),
                         self.model.cfg.head.walk_sharpness)

    def walk_graph(self, handle: ImageHandle):
        """The random walk's graph of a cached image (a :class:`cmp.walk.WalkGraph`: the edge
        weights of its pooled embedding), built the first time and kept with the image's
        features, or None for a network without an embedding. Raises :class:`ImageNotCached`
        when the handle's features were evicted."""
        from .walk import walk_graph

        entry = self._entry(handle)
        if entry._walk is None:  # two threads may both build it: the same graph, no harm
            emb = self._embedding(entry, handle)
            if emb is None:
                return None
            entry._walk = walk_graph(emb)
        return entry._walk

    def is_cached(self, handle: ImageHandle) -> bool:
        return handle.key in self.cache

    # -- guidance ------------------------------------------------------------
    def _model_points(self, handle: ImageHandle, guidance_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each set checked against the image and mapped to (N, 4) model-input points."""
        tf = handle.transform
        out = []
        for pts in guidance_sets:
            pts = validate_points(pts, handle.height, handle.width)
            out.append(np.concatenate([tf.apply_points(pts[:, :2]), tf.apply_vectors(pts[:, 2:])], axis=1))
        return out

    def _sparse_batch(self, handle: ImageHandle, guidance_sets: Sequence[np.ndarray]) -> torch.Tensor:
        size = handle.transform.model_size
        s = torch.stack([encode_sparse(pm, size) for pm in self._model_points(handle, guidance_sets)]).to(self.device)
        return s.contiguous(memory_format=torch.channels_last) if self.device.type == "cpu" else s

    def _decoder(self, handle: ImageHandle, guidance_sets: Sequence[np.ndarray]):
        """The guidance sets checked and in the form the model reads (dense maps for a network
        that convolves them, else the marked pixels themselves, without (G, 4, H, W) of zeros),
        as a function of the cached features (and ``still=``) that decodes them."""
        if self.model.convolves_guidance:
            sparse = self._sparse_batch(handle, guidance_sets)
            return lambda feats, **kw: self.model.decode(feats, sparse, **kw)
        size = handle.transform.model_size
        points = [tuple(torch.from_numpy(a).to(self.device) for a in guidance_pixels(pm, size))
                  for pm in self._model_points(handle, guidance_sets)]
        return lambda feats, **kw: self.model.decode_points(feats, points, size, **kw)

    @property
    def supports_scene_motion(self) -> bool:
        """Whether ``scene_motion=True`` is available (the affinity models; not the bin decoder)."""
        return bool(getattr(self.model, "supports_scene_motion", False))

    def scene_flags(self, handle: ImageHandle, guidance_sets: Sequence[np.ndarray],
                    scene_motion: bool | None) -> list[bool]:
        """The mode of each guidance set: ``scene_motion`` forced, or with None inferred
        from the guidance (:func:`cmp.guidance.infer_scene_motion`; always False on a
        model without the mode). Raises ValueError for True on such a model."""
        if scene_motion and not self.supports_scene_motion:
            raise ValueError(f"the model {self.name} has no 'whole scene moves' mode "
                             "(the embedded model has); use arrows everywhere instead")
        if scene_motion is None:
            if not self.supports_scene_motion:
                return [False] * len(guidance_sets)
            return [infer_scene_motion(validate_points(p, handle.height, handle.width), handle.height, handle.width)
                    for p in guidance_sets]
        return [bool(scene_motion)] * len(guidance_sets)

    def propagate_batch(self, handle: ImageHandle, guidance_sets: Sequence[np.ndarray], *,
                        scene_motion: bool | None = False, blend: str | None = None,
                        edges: bool | None = None) -> np.ndarray:
        """Dense flow for G guidance sets sharing one cached image encoding.

        guidance_sets: G arrays of shape (N_g, 4) = (x, y, dx, dy) in image pixels.
        ``scene_motion``: True the "whole scene moves" mode (camera motion): no pixel stays
        still unless it looks like a pin; False the object mode (what no arrow reaches
        stays still; the default here, as segmentation probes want); None infers the mode
        of each set from its guidance. Raises ValueError for True on a model without it.
        ``blend``: how the guidance vectors of every set combine (:data:`cmp.model.affinity.BLENDS`;
        None = :attr:`scene_blend` for sets in the whole-scene mode, ``mean`` for the others;
        the segmentation probes ask for ``mean``); models that convolve the guidance have one
        way only and ignore it. ``edges``: snap the flow to the image's edges (None = the
        engine's ``flow_edges``; the segmentation probes ask for False).
        Returns (G, H, W, 2) float32 flow in image pixels.
        """
        if len(guidance_sets) == 0:
            raise ValueError("no guidance sets given")
        flags = self.scene_flags(handle, guidance_sets, scene_motion)
        decode_kw = {"still": [not f for f in flags]} if any(flags) else {}
        if not self.model.convolves_guidance:
            decode_kw["blend"] = [self.scene_blend if f else "mean" for f in flags] if blend is None else blend
        decode = self._decoder(handle, guidance_sets)
        tf = handle.transform
        with self._lock, torch.inference_mode():
            entry = self.cache.get(handle.key)
            if entry is None:
                raise ImageNotCached(handle.key)
            with self.runtime.autocast():
                out = decode(entry.feats, **decode_kw)
            flow = self.model.to_flow(out, tf.model_size)
            flow = flow.permute(0, 2, 3, 1).float().cpu().numpy()
        return self._to_image(flow, tf, entry.edges() if self._snaps(edges) else None)

    def _snaps(self, edges: bool | None) -> bool:
        """Whether a call snaps its flow to the image's edges (``edges`` None: the engine's default)."""
        return self.flow_edges if edges is None else bool(edges)

    @staticmethod
    def _to_image(flow: np.ndarray, tf: ImageTransform, edges: GuidedFilter | None) -> np.ndarray:
        """(G, H, W, 2) model-input flows -> the caller's pixels, snapped to the image's edges
        by ``edges`` (None = as the network gave them)."""
        if edges is not None:
            ih, iw = tf.inner_size
            flow = [edges(f[:ih, :iw]) for f in flow]
        return np.stack([tf.unapply_flow(f) for f in flow])

    def propagate(self, handle: ImageHandle, arrows: Iterable[Sequence[float]] = (),
                  pins: Iterable[Sequence[float]] = (), *, scene_motion: bool | None = None) -> np.ndarray:
        """Dense flow (H, W, 2) float32 for arrows (x, y, dx, dy) and pins (x, y).

        With no guidance at all the model still answers (usually near zero motion).
        ``scene_motion``: None (default) infers from the arrows and pins whether the whole
        scene moves; True / False force it (see :meth:`propagate_batch`).
        """
        return self.propagate_batch(handle, [as_points(arrows, pins)], scene_motion=scene_motion)[0]

    def flow_for(self, rgb: np.ndarray, arrows=(), pins=(), *, scene_motion: bool | None = None) -> np.ndarray:
        """Convenience: set_image + propagate in one call."""
        return self.propagate(self.set_image(rgb), arrows, pins, scene_motion=scene_motion)

    # -- reference path (benchmarks and tests) ---------------------------------
    def propagate_uncached(self, rgb: np.ndarray, guidance_sets: Sequence[np.ndarray], *,
                           edges: bool | None = None) -> np.ndarray:
        """The original per-click pipeline: the whole network on the image repeated G times
        (``edges`` as for :meth:`propagate_batch`)."""
        rgb = check_rgb(rgb)
        tf = ImageTransform(rgb.shape[0], rgb.shape[1], self.side)
        handle = ImageHandle("uncached", rgb.shape[0], rgb.shape[1], self.side)
        sparse = self._sparse_batch(handle, guidance_sets)
        view = tf.apply_image(rgb)
        x = self._image_tensor(view).expand(len(guidance_sets), -1, -1, -1)
        with self._lock, torch.inference_mode():
            with self.runtime.autocast():
                out = self.model(x, sparse)
            flow = self.model.to_flow(out, tf.model_size).permute(0, 2, 3, 1).float().cpu().numpy()
        ih, iw = tf.inner_size
        return self._to_image(flow, tf, edge_filter(view[:ih, :iw]) if self._snaps(edges) else None)
