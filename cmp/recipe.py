"""Recipes: a whole animation as one JSON file, and the one function that renders it.

The Motion page, ``python -m cmp animate`` and the HTTP API all build a
:class:`Recipe` (from widgets, flags or JSON) and call :func:`render`, so the same
recipe gives the same frames through every front door. A recipe::

    {"cmp_recipe": 1,
     "image_size": [width, height],                       # of the working image
     "arrows": [[x, y, dx, dy], ...], "pins": [[x, y], ...],
     "tracks": [[[x, y], [x, y], ...], ...],              # keyframes, optionally [x, y, t]
     "region": {"size": [height, width], "counts": "..."} | null,   # COCO RLE, 1 = may move
     "settings": {"frames": 32, "fps": 16, "strength": 1.0, "timing": "ease",
                  "loop": "pingpong", "scene_motion": null, "max_side": 768},
     "checkpoint": "cmp-slim-affinity"}

Coordinates are (x, y) pixels of the working image. This module never imports Gradio.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import animate
from .flow import resize_flow
from .guidance import GuidanceError
from .images import encode_png
from .masks import rle_encode
from .tracks import Guidance, end_arrows, guidance_sets, parse_json, parse_motion

VERSION = 1
#: Longest recipe text parsed (a region's RLE can take a few tens of kB).
MAX_RECIPE_CHARS = 1_000_000
#: Guidance sets decoded in one engine call (bounds memory for the bin decoder's models).
BATCH = 8
DEFAULT_SETTINGS = {"frames": animate.DEFAULT_FRAMES, "fps": float(animate.DEFAULT_FPS), "strength": 1.0,
                    "timing": "ease", "loop": "pingpong", "scene_motion": None, "max_side": 768}


class RecipeError(GuidanceError):
    """A recipe that cannot be used; the message is one line for the user."""


@dataclass
class Recipe:
    """One animation. image_size: (width, height) of the working image; region: (H, W)
    bool (True = may move) or None; settings: see ``DEFAULT_SETTINGS``."""

    image_size: tuple[int, int]
    guidance: Guidance = field(default_factory=Guidance)
    region: np.ndarray | None = None
    settings: dict = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    checkpoint: str | None = None

    def __post_init__(self):
        self.settings = check_settings({**DEFAULT_SETTINGS, **self.settings})
        w, h = self.image_size
        if self.region is not None:
            self.region = np.asarray(self.region, dtype=bool)
            if self.region.shape != (h, w):
                raise RecipeError(f"the region is {self.region.shape[1]}x{self.region.shape[0]} px; "
                                  f"the image is {w}x{h}")
        self.guidance.check(h, w)

    def to_dict(self) -> dict:
        g = self.guidance
        d = json.loads(_guidance_text(g))
        return {"cmp_recipe": VERSION, "image_size": [int(v) for v in self.image_size], **d,
                "region": None if self.region is None else rle_encode(self.region),
                "settings": dict(self.settings), "checkpoint": self.checkpoint}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _guidance_text(g: Guidance) -> str:
    from .tracks import guidance_json
    out = json.loads(guidance_json(g.points, g.tracks))  # the region is the recipe's own key
    out.setdefault("tracks", [])
    return json.dumps(out)


def check_settings(s: dict) -> dict:
    """Validated settings (unknown keys refused; numbers as the widgets give them)."""
    unknown = set(s) - set(DEFAULT_SETTINGS)
    if unknown:
        raise RecipeError(f"unknown recipe settings {sorted(unknown)}; known: {', '.join(DEFAULT_SETTINGS)}")
    try:
        frames = float(s["frames"])
        out = {"frames": round(frames) if np.isfinite(frames) else frames, "fps": float(s["fps"]),
               "strength": float(s["strength"]), "timing": str(s["timing"]), "loop": str(s["loop"]),
               "scene_motion": None if s["scene_motion"] is None else bool(s["scene_motion"]),
               "max_side": None if s["max_side"] is None else int(s["max_side"])}
    except (TypeError, ValueError):
        raise RecipeError("recipe settings must be numbers (frames, fps, strength, max_side) and names "
                          "(timing, loop)") from None
    animate.check_settings(out["frames"], out["fps"], out["strength"], out["timing"], out["loop"])
    if out["max_side"] is not None and out["max_side"] < 16:
        raise RecipeError("max_side must be at least 16")
    return out


def parse_recipe(text: str) -> Recipe:
    """Recipe JSON -> :class:`Recipe`, with one-line :class:`RecipeError` messages."""
    data = parse_json(str(text or ""), "recipe", MAX_RECIPE_CHARS)
    if not isinstance(data, dict) or data.get("cmp_recipe") != VERSION:
        raise RecipeError(f"not a CMP Studio recipe (expected an object with \"cmp_recipe\": {VERSION})")
    known = {"cmp_recipe", "image_size", "arrows", "pins", "tracks", "region", "settings", "checkpoint"}
    if set(data) - known:
        raise RecipeError(f"unknown recipe keys {sorted(set(data) - known)}")
    size = data.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise RecipeError("image_size must be [width, height] in pixels")
    guidance = parse_motion(json.dumps({k: data[k] for k in ("arrows", "pins", "tracks", "region") if k in data}))
    region, guidance.region = guidance.region_mask(), None
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise RecipeError("settings must be an object")
    ck = data.get("checkpoint")
    if ck is not None and not isinstance(ck, str):
        raise RecipeError("checkpoint must be a name or null")
    return Recipe(tuple(size), guidance, region, settings, ck)


def load_region(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """A region mask image (white, or any bright colour, = may move; read by
    :func:`cmp.masks.read_mask`) -> (H, W) bool at ``size`` = (width, height) (resized nearest
    if it differs, e.g. a mask of the full-size photo)."""
    from .masks import read_mask

    grey = read_mask(path)
    w, h = size
    if grey.shape != (h, w):
        grey = cv2.resize(grey.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return grey


def render(engine, rgb: np.ndarray, recipe: Recipe, *, max_side: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Frames (T, h, w, 3) uint8 of ``recipe`` on ``rgb`` with ``engine`` (an
    :class:`cmp.engine.Engine` or anything with its ``set_image`` / ``propagate_batch``).

    The image is encoded once; then, by the guidance:
    - arrows and pins only: one flow, scaled over time (:func:`cmp.animate.render_frames`);
    - tracks: one ``propagate`` per frame for "each track's displacement at time t" plus the
      arrows scaled by t and the pins, each frame splatted by its own flow (a time that
      recurs, as in a pingpong clip, is computed once);
    - ``loop="seamless"``: one flow (tracks as start-to-end arrows) as a steady velocity field.
    ``max_side`` caps the recipe's own ``max_side`` (a server's limit). The region (if any)
    keeps every pixel outside it identical to the (resized) image.
    """
    rgb = np.asarray(rgb)
    h, w = rgb.shape[:2]
    if (w, h) != tuple(recipe.image_size):
        raise RecipeError(f"the recipe is for a {recipe.image_size[0]}x{recipe.image_size[1]} image; "
                          f"this one is {w}x{h}")
    g, s = recipe.guidance, recipe.settings
    if not g.has_motion:
        raise GuidanceError("add at least one arrow or path first (pins alone do not move anything)")
    side = min(v for v in (s["max_side"], max_side) if v) if (s["max_side"] or max_side) else None
    kw = dict(max_side=side, progress=progress, region=recipe.region)
    handle = engine.set_image(rgb)
    scene = s["scene_motion"]
    if scene is None:  # inferred once, from the whole motion, so no frame flips to the other kind
        scene = engine.scene_flags(handle, [end_arrows(g)], None)[0] if hasattr(engine, "scene_flags") else False
    if s["loop"] == "seamless" or not g.tracks:
        flow = engine.propagate_batch(handle, [end_arrows(g)], scene_motion=scene)[0]
        return animate.render_frames(rgb, flow, s["frames"], strength=s["strength"], timing=s["timing"],
                                     loop=s["loop"], **kw)
    if s["loop"] == "loop":
        raise RecipeError("the cross-fade loop needs straight arrows; for paths use once, pingpong or seamless")
    t = animate.timeline(s["frames"], s["timing"], s["loop"])
    # A pingpong clip passes every time twice: predict and splat each distinct time once.
    _, first, which = np.unique(np.round(t, 9), return_index=True, return_inverse=True)
    sets = guidance_sets(g, t[first])
    for pts in sets:
        pts[:, 2:] *= s["strength"]
    small = animate.fit_image(rgb, side)
    size = small.shape[:2]
    flows = []
    for a in range(0, len(sets), BATCH):
        for f in engine.propagate_batch(handle, sets[a:a + BATCH], scene_motion=scene):
            flows.append(f if size == (h, w) else resize_flow(f, size, "linear"))
    region = animate.fit_region(recipe.region, size)
    return animate.render_flows(small, np.stack(flows), progress=progress, region=region)[which]


def from_inputs(rgb: np.ndarray, guidance: Guidance, *, region=None, checkpoint: str | None = None,
                **settings) -> Recipe:
    """A recipe for ``rgb`` from parsed guidance, a region mask (else the guidance's own
    region, if any) and settings keywords."""
    h, w = rgb.shape[:2]
    guidance.check(h, w)
    if region is None:
        region = guidance.region_mask()
    g = Guidance(guidance.points, guidance.tracks)
    return Recipe((int(w), int(h)), g, region, settings, checkpoint)


# -- frames as files ---------------------------------------------------------------



def frame_names(n: int) -> list[str]:
    digits = max(4, len(str(n - 1)))
    return [f"frame_{i:0{digits}d}.png" for i in range(n)]


def write_frames(folder: str | os.PathLike, frames: np.ndarray) -> list[Path]:
    """Numbered lossless PNGs ``frame_0000.png`` ... into ``folder`` (created). Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, f in zip(frame_names(len(frames)), frames):
        (folder / name).write_bytes(encode_png(f))
        paths.append(folder / name)
    return paths


def zip_frames(path: str | os.PathLike, frames: np.ndarray) -> Path:
    """The frames as numbered PNGs in one zip file. Returns the path."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, f in zip(frame_names(len(frames)), frames):
            z.writestr(name, encode_png(f))
    return path


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """Frames back from a folder of PNGs or a zip written above: (T, H, W, 3) uint8."""
    path = Path(path)
    if path.is_dir():
        blobs = [p.read_bytes() for p in sorted(path.glob("frame_*.png"))]
    else:
        with zipfile.ZipFile(path) as z:
            blobs = [z.read(n) for n in sorted(z.namelist())]
    return np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                     for b in blobs])
