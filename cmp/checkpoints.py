"""Checkpoints: the registry, Hub download, integrity checks and the one safe loader.

Two on-disk formats are understood:

* our own: safetensors with the architecture config in the metadata
  (``cmp_config``), so the file describes itself;
* the original CMP ``.pth.tar``: ``{'step', 'state_dict': {'module.<name>': ...},
  'optimizer'}``, read with ``torch.load(weights_only=True)`` (no pickled
  code runs); the architecture is recognised from keys and shapes.

Loading is strict: only BatchNorm ``num_batches_tracked`` buffers may be
missing (the original predates them); any other difference is an error
naming the keys. This module never imports Gradio.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .model import CONFIGS, BinHead, CMPConfig, CMPNetwork, DecoderConfig, EncoderConfig, build_cmp

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
REGISTRY_PATH = CHECKPOINT_DIR / "registry.json"
FORMAT_TAG = "cmp-studio/1"
DEFAULT_NAME = "default"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, verified or loaded; the message says why."""


# -- registry -----------------------------------------------------------------

@dataclass(frozen=True)
class HubLocation:
    repo_id: str
    filename: str
    repo_type: str = "model"
    revision: str = "main"


@dataclass(frozen=True)
class RegistryEntry:
    """One named checkpoint. ``file`` is a path inside ``checkpoints/`` for shipped
    models; ``hub`` lists download locations, first = primary, rest = mirrors."""

    name: str
    description: str
    license: str
    config: str
    sha256: str | None = None
    size: int | None = None
    file: str | None = None
    hub: tuple[HubLocation, ...] = ()
    aliases: tuple[str, ...] = ()
    card: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "RegistryEntry":
        hub = tuple(HubLocation(**h) for h in d.get("hub", []))
        return cls(name=d["name"], description=d["description"], license=d["license"],
                   config=d["config"], sha256=d.get("sha256"), size=d.get("size"),
                   file=d.get("file"), hub=hub, aliases=tuple(d.get("aliases", [])),
                   card=d.get("card"))


def load_registry(path: str | os.PathLike = REGISTRY_PATH) -> dict[str, RegistryEntry]:
    """Name (and alias) -> entry."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = [RegistryEntry.from_dict(d) for d in data["checkpoints"]]
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint registry {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint registry {path} is malformed: {type(exc).__name__}: {exc}") from None
    out: dict[str, RegistryEntry] = {}
    for e in entries:
        for n in (e.name, *e.aliases):
            out[n] = e
    return out


def registry_entries(path: str | os.PathLike = REGISTRY_PATH) -> list[RegistryEntry]:
    """Each entry once, in registry order."""
    seen, out = set(), []
    for e in load_registry(path).values():
        if e.name not in seen:
            seen.add(e.name)
            out.append(e)
    return out


# -- integrity ----------------------------------------------------------------

def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None) -> None:
    if expected is None:
        return
    got = sha256_file(path)
    if got != expected.lower():
        raise CheckpointError(
            f"{Path(path).name}: sha256 {got[:12]}... does not match the registry ({expected[:12]}...); "
            "the file is corrupt or not the expected checkpoint and was not used")


# -- download -----------------------------------------------------------------

def download(entry: RegistryEntry, *, cache_dir: str | None = None, endpoint: str | None = None,
             local_files_only: bool | None = None) -> Path:
    """Fetch ``entry`` through ``huggingface_hub`` (normal HF cache, honours
    HF_HUB_OFFLINE / HF_ENDPOINT), trying mirrors in order; verify sha256."""
    from huggingface_hub import hf_hub_download  # imported lazily: reads env at import
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not entry.hub:
        raise CheckpointError(f"checkpoint {entry.name!r} has no Hub location")
    errors = []
    for loc in entry.hub:
        try:
            kw = {}
            if local_files_only is not None:
                kw["local_files_only"] = local_files_only
            path = hf_hub_download(loc.repo_id, loc.filename, repo_type=loc.repo_type,
                                   revision=loc.revision, cache_dir=cache_dir, endpoint=endpoint, **kw)
        except Exception as exc:  # network, 404, offline cache miss: try the next mirror
            errors.append(f"{loc.repo_id}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            if isinstance(exc, LocalEntryNotFoundError):
                # The Hub did not answer (each try costs ~20 s of retries) or we are offline:
                # the mirrors live on the same Hub, so only their cached copies can help now.
                local_files_only = True
            continue
        try:
            verify_sha256(path, entry.sha256)
        except CheckpointError as exc:  # the bad copy stays where the HF cache put it; say where
            errors.append(f"{loc.repo_id}: {exc} (delete {path} to fetch it again)")
            continue
        return Path(path)
    raise CheckpointError(f"could not download {entry.name!r}: " + "; ".join(errors))


def resolve(name_or_path: str | os.PathLike | RegistryEntry | None = None, *,
            registry: str | os.PathLike = REGISTRY_PATH, **download_kw) -> tuple[Path, RegistryEntry | None]:
    """Resolution order: existing local path > registry name (shipped file, else Hub
    with mirrors). ``None`` means the embedded default model. A :class:`RegistryEntry`
    may be passed directly; ``registry`` is the JSON table to look names up in (its
    directory holds the shipped files). ``download_kw`` go to :func:`download`."""
    base = Path(registry).resolve().parent
    if isinstance(name_or_path, RegistryEntry):
        entry = name_or_path
    else:
        spec = DEFAULT_NAME if name_or_path is None else str(name_or_path)
        p = Path(spec).expanduser()
        if p.is_file():
            return p, None
        reg = load_registry(registry)
        if spec not in reg:
            if p.suffix or os.sep in spec or (os.altsep and os.altsep in spec):
                raise CheckpointError(f"no checkpoint file at {spec}")
            names = ", ".join(sorted({e.name for e in reg.values()}))
            raise CheckpointError(f"unknown checkpoint {spec!r}; known names: {names}")
        entry = reg[spec]
    if entry.file:
        local = base / entry.file
        if local.is_file():
            verify_sha256(local, entry.sha256)
            return local, entry
        if not entry.hub:
            raise CheckpointError(f"shipped checkpoint file {local} is missing")
    return download(entry, **download_kw), entry


# -- state dicts ----------------------------------------------------------------

_PREFIXES = ("module.",)


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the DataParallel ``module.`` prefix (explicitly, nothing else)."""
    out = {}
    for k, v in sd.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def infer_config(sd: dict[str, torch.Tensor]) -> CMPConfig:
    """Recognise the architecture of an original-format state dict from its shapes."""
    try:
        def shp(k):
            return tuple(sd[k].shape)
        stem = shp("image_encoder.conv1.weight")[0]
        widths, blocks = [], []
        for i in range(1, 5):
            widths.append(shp(f"image_encoder.layer{i}.0.conv1.weight")[0])
            idx = {int(m.group(1)) for k in sd
                   if (m := re.match(rf"image_encoder\.layer{i}\.(\d+)\.", k))}
            if idx != set(range(len(idx))):  # a gap (or index 10**9) would build blocks that no key fills
                raise CheckpointError(f"not a CMP checkpoint: layer{i} blocks are numbered {sorted(idx)[:6]}...")
            blocks.append(len(idx))
        code = shp("image_encoder.conv5.weight")[0]
        dec = DecoderConfig(
            sparse_dim=shp("flow_encoder.features.0.weight")[0],
            branch_dim=shp("flow_decoder.decoder1.0.weight")[0],
            fusion8_dim=shp("flow_decoder.fusion8.0.weight")[0],
            skip4_dim=shp("flow_decoder.skipconv4.0.weight")[0],
            fusion4_dim=shp("flow_decoder.fusion4.0.weight")[0],
            skip2_dim=shp("flow_decoder.skipconv2.0.weight")[0],
            fusion2_dim=shp("flow_decoder.fusion2.0.weight")[0],
        )
        head = shp("flow_decoder.head.weight")[0]
    except KeyError as exc:
        raise CheckpointError(f"not a CMP checkpoint: key {exc.args[0]!r} is missing") from None
    if head % 2:
        raise CheckpointError(f"not a CMP checkpoint: head has {head} outputs (expected 2 x bins)")
    cfg = CMPConfig(name="custom", encoder=EncoderConfig(stem, tuple(widths), tuple(blocks), code),
                    head=BinHead(decoder=dec, num_bins=head // 2))
    # Name it after a known config only if every field agrees (not just the encoder).
    for known in CONFIGS.values():
        if dataclasses.replace(known, name="custom") == cfg:
            return known
    return cfg


def check_state_dict(model: CMPNetwork, sd: dict[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` naming the keys unless ``sd`` fits ``model`` exactly
    (only ``num_batches_tracked`` may be missing). ``model`` may live on the meta device."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:5])}" + (" ..." if len(unexpected) > 5 else ""))
    if wrong:
        problems.append(f"wrong shapes: {', '.join(wrong[:5])}" + (" ..." if len(wrong) > 5 else ""))
    if problems:
        raise CheckpointError("checkpoint does not fit the architecture: " + "; ".join(problems))


def load_state_strict(model: CMPNetwork, sd: dict[str, torch.Tensor]) -> None:
    """Load ``sd`` into ``model``; only ``num_batches_tracked`` may be missing."""
    check_state_dict(model, sd)
    own = model.state_dict()
    full = dict(sd)
    for k, v in own.items():  # the known-harmless gap: BN counters the original never saved
        if k not in full:
            full[k] = torch.zeros_like(v)
    model.load_state_dict(full, strict=True)


def _read_original(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name} is not a loadable weights-only checkpoint "
                              f"(refused, nothing was executed): {first}") from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path.name} holds no state dict of tensors")
    return strip_prefixes(sd)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open
    from safetensors.torch import load_file
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except Exception as exc:
        raise CheckpointError(f"{path.name} is not a valid safetensors file: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None


@dataclass
class LoadedCheckpoint:
    model: CMPNetwork
    config: CMPConfig
    path: Path
    entry: RegistryEntry | None
    metadata: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.entry.name if self.entry else self.path.name


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint file of either format, without building a model.

    Original ``.pth.tar`` files get metadata ``{"format": "original-cmp"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        return _read_safetensors(path)
    return _read_original(path), {"format": "original-cmp"}


def load_checkpoint_file(path: str | os.PathLike) -> tuple[CMPNetwork, CMPConfig, dict]:
    """Build and load a model from a local file of either format."""
    path = Path(path)
    sd, meta = read_state_dict(path)
    if meta.get("format") != "original-cmp":
        if "cmp_config" not in meta:
            raise CheckpointError(f"{path.name} has no 'cmp_config' metadata; cannot tell its architecture")
        try:
            cfg = CMPConfig.from_json(meta["cmp_config"])
        except Exception as exc:
            raise CheckpointError(f"{path.name}: unreadable cmp_config metadata ({exc})") from None
    else:
        cfg = infer_config(sd)
    # A stranger's config could describe a network of many gigabytes: build it
    # on the meta device (no memory) and compare shapes before allocating it.
    try:
        with torch.device("meta"):
            shell = build_cmp(cfg)
    except Exception as exc:  # negative or zero widths and the like
        raise CheckpointError(f"{path.name}: its config describes no buildable CMP network "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    check_state_dict(shell, sd)
    model = build_cmp(cfg)
    load_state_strict(model, sd)
    return model.eval(), cfg, meta


def load_checkpoint(name_or_path: str | os.PathLike | RegistryEntry | None = None,
                    **resolve_kw) -> LoadedCheckpoint:
    """The one way to get a model: resolve a name or path, verify, load strictly.

    ``resolve_kw`` go to :func:`resolve` (``registry=``, ``cache_dir=``, ``endpoint=`` ...).
    """
    path, entry = resolve(name_or_path, **resolve_kw)
    model, cfg, meta = load_checkpoint_file(path)
    return LoadedCheckpoint(model=model, config=cfg, path=path, entry=entry, metadata=meta)


def save_checkpoint(model: CMPNetwork, path: str | os.PathLike, **metadata: str) -> Path:
    """Write a self-describing safetensors checkpoint (config in the metadata)."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    meta = {"format": FORMAT_TAG, "cmp_config": model.cfg.to_json(), **{k: str(v) for k, v in metadata.items()}}
    save_file(sd, str(path), metadata=meta)
    return path
