"""Checkpoints: references, the registry, Hub download, integrity checks and the one safe loader.

A checkpoint reference (:func:`parse_ref`) is one string everywhere (CLI ``--checkpoint``,
``Engine.from_checkpoint``, the HTTP API's ``checkpoint`` input): a registry name, a local
path (CLI and Python only), or ``hf://owner/repo[@revision]/path/in/repo.ext`` for one file
on the Hugging Face Hub, or ``hf://owner/repo[@revision]`` for a model repo saved by
:class:`cmp.hub.CMPRepo` (``hf://datasets/owner/repo...`` for dataset repos).

Three on-disk formats are understood:

* a Hub model repo folder (``config.json`` + ``model.safetensors`` + ``README.md``),
  written and read through ``huggingface_hub``'s ``PyTorchModelHubMixin`` (:mod:`cmp.hub`);
* our own single file: safetensors with the architecture config in the metadata
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
from typing import Sequence

import torch

from .model import CONFIGS, BinHead, CMPConfig, CMPNetwork, DecoderConfig, EncoderConfig, build_cmp

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
REGISTRY_PATH = CHECKPOINT_DIR / "registry.json"
FORMAT_TAG = "cmp-studio/1"
DEFAULT_NAME = "default"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, verified or loaded; the message says why."""


class CheckpointNotFound(CheckpointError):
    """No such registry name, local file, Hub repo, revision or file in the repo."""


class HubUnavailable(CheckpointError):
    """Offline (or the Hub does not answer) and the checkpoint is not in the local cache."""


class CheckpointTooLarge(CheckpointError):
    """The checkpoint is larger than the caller allows (download size or loaded bytes)."""


# -- references -----------------------------------------------------------------

HF_SCHEME = "hf://"
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


@dataclass(frozen=True)
class CheckpointRef:
    """A parsed checkpoint reference. ``kind`` is "registry", "path" or "hub"; a "hub"
    reference without ``filename`` names one of our saved-model repos."""

    kind: str
    text: str
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    repo_type: str = "model"

    @property
    def key(self) -> str:
        """Canonical spelling (engine pools key on it): registry names resolve aliases,
        paths are absolute, Hub references spell out the revision."""
        if self.kind == "registry":
            return self.text
        if self.kind == "path":
            return str(Path(self.text).expanduser().resolve())
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        tail = f"/{self.filename}" if self.filename else ""
        return f"{HF_SCHEME}{prefix}{self.repo_id}@{self.revision or 'main'}{tail}"


def parse_hub_ref(text: str) -> CheckpointRef:
    """``hf://[datasets/]owner/repo[@revision][/path/in/repo.ext]`` -> a "hub" :class:`CheckpointRef`.

    A revision with a slash (``refs/pr/1``) is written URL-encoded (``refs%2Fpr%2F1``), as
    ``huggingface_hub``'s ``HfFileSystem`` does.
    """
    from urllib.parse import unquote

    rest, repo_type = text[len(HF_SCHEME):], "model"
    if rest.startswith("datasets/"):
        rest, repo_type = rest[len("datasets/"):], "dataset"
    parts = rest.split("/")
    usage = f"{text!r} is not a Hub reference; write hf://owner/repo[@revision][/path/in/repo.ext]"
    if len(parts) < 2:
        raise CheckpointError(usage)
    owner, repo = parts[0], parts[1]
    repo, at, revision = repo.partition("@")
    revision = unquote(revision) if at else None
    path = "/".join(parts[2:])
    if not (_REPO_PART.fullmatch(owner) and _REPO_PART.fullmatch(repo)) or ".." in owner + repo:
        raise CheckpointError(usage)
    if revision is not None and (not _REVISION.fullmatch(revision) or ".." in revision):
        raise CheckpointError(f"{text!r}: revision {revision!r} is not a branch, tag or commit name")
    if path and (any(seg in ("", ".", "..") for seg in path.split("/")) or "\\" in path):
        raise CheckpointError(f"{text!r}: {path!r} is not a file path inside a repo")
    return CheckpointRef("hub", text, repo_id=f"{owner}/{repo}", filename=path or None, revision=revision,
                         repo_type=repo_type)


def parse_ref(ref: "str | os.PathLike | CheckpointRef | None", *, allow_local: bool = True,
              registry: str | os.PathLike = REGISTRY_PATH) -> CheckpointRef:
    """Parse a checkpoint reference (``None`` or "" = the embedded default model).

    Order: ``hf://`` > an existing local file or saved-model folder (only when ``allow_local``) > a registry
    name or alias (canonicalised to the entry's name) > a local path that does not
    exist yet (so resolving it says "no checkpoint file at ..."). With
    ``allow_local=False`` (the HTTP API and the pages) anything else is an error.
    """
    if isinstance(ref, CheckpointRef):
        if ref.kind == "path" and not allow_local:
            raise CheckpointError("local paths are not accepted here; use a registry name or hf://owner/repo")
        return ref
    text = DEFAULT_NAME if ref is None or not str(ref).strip() else str(ref).strip()
    if text.startswith(HF_SCHEME):
        return parse_hub_ref(text)
    local = Path(text).expanduser()
    if allow_local and (local.is_file() or (local / "model.safetensors").is_file()):
        return CheckpointRef("path", text)
    reg = load_registry(registry)
    if text in reg:
        return CheckpointRef("registry", reg[text].name)
    names = ", ".join(sorted({e.name for e in reg.values()}))
    if not allow_local:
        raise CheckpointNotFound(f"unknown checkpoint {text[:80]!r}: use a registry name ({names}) or "
                                 "hf://owner/repo[/file]; local paths are not accepted here")
    if Path(text).suffix or os.sep in text or (os.altsep and os.altsep in text):
        return CheckpointRef("path", text)
    raise CheckpointNotFound(f"unknown checkpoint {text!r}; known names: {names}")


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
    #: Registry name of the model that segments when this one is the app's default: one of
    #: the same architecture trained on to group whole objects (its motion is not kept).
    segmentation: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "RegistryEntry":
        hub = tuple(HubLocation(**h) for h in d.get("hub", []))
        return cls(name=d["name"], description=d["description"], license=d["license"],
                   config=d["config"], sha256=d.get("sha256"), size=d.get("size"),
                   file=d.get("file"), hub=hub, aliases=tuple(d.get("aliases", [])),
                   card=d.get("card"), segmentation=d.get("segmentation"))


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
    for e in entries:
        if e.segmentation is not None and e.segmentation not in out:
            raise CheckpointError(f"checkpoint registry {path} is malformed: {e.name!r} segments with "
                                  f"{e.segmentation!r}, which it does not list")
    return out


def segmentation_ref(ref: "str | os.PathLike | None", *, registry: str | os.PathLike = REGISTRY_PATH) -> str | None:
    """The reference segmentation uses when ``ref`` is the model nobody chose (the app's or
    the command line's default): the registry entry's ``segmentation`` model when it names
    one, else ``ref`` unchanged (also for Hub references, local files and references that do
    not parse; loading those reports any error)."""
    try:
        parsed = parse_ref(ref, allow_local=True, registry=registry)
    except CheckpointError:
        return ref
    if parsed.kind != "registry":
        return ref
    return load_registry(registry)[parsed.text].segmentation or ref


def registry_entries(path: str | os.PathLike = REGISTRY_PATH) -> list[RegistryEntry]:
    """Each entry once, in registry order."""
    seen, out = set(), []
    for e in load_registry(path).values():
        if e.name not in seen:
            seen.add(e.name)
            out.append(e)
    return out


def entry_status(entry: RegistryEntry, registry: str | os.PathLike = REGISTRY_PATH,
                 cache_dir: str | None = None) -> tuple[str, str | None]:
    """('shipped' | 'cached' | 'not downloaded' | 'missing', local path or None), no network."""
    if entry.file:
        f = Path(registry).resolve().parent / entry.file
        if f.is_file():
            return "shipped", str(f)
        if not entry.hub:
            return "missing", None
    from huggingface_hub import try_to_load_from_cache
    for loc in entry.hub:
        hit = try_to_load_from_cache(loc.repo_id, loc.filename, cache_dir=cache_dir, revision=loc.revision,
                                     repo_type=loc.repo_type)
        if isinstance(hit, str):
            return "cached", hit
    return "not downloaded", None


def format_size(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.1f} MB"


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

def _hub_error(exc: Exception, what: str) -> CheckpointError:
    """One line for a failed Hub call: not found, offline and not cached, or the error itself."""
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    # No answer at all (connection refused, timeout): httpx's TransportError, whichever httpx
    # build huggingface_hub uses, so it is matched by name.
    unreachable = any(c.__name__ in ("TransportError", "ConnectionError", "TimeoutError") for c in type(exc).__mro__)
    if unreachable or isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return HubUnavailable(f"{what} is not in the local cache and the Hub cannot be reached (offline)")
    if isinstance(exc, RepositoryNotFoundError):
        return CheckpointNotFound(f"{what}: no such repo on the Hub (or it is private)")
    if isinstance(exc, RevisionNotFoundError):
        return CheckpointNotFound(f"{what}: no such revision on the Hub")
    if isinstance(exc, EntryNotFoundError):
        return CheckpointNotFound(f"{what}: no such file in the repo")
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return CheckpointError(f"{what}: {type(exc).__name__}: {first}")


def hub_file(repo_id: str, filename: str, *, repo_type: str = "model", revision: str | None = None,
             cache_dir: str | None = None, endpoint: str | None = None, local_files_only: bool | None = None,
             max_bytes: int | None = None) -> Path:
    """One file from the Hub into the normal HF cache (progress through ``huggingface_hub``'s
    tqdm). A file not cached yet is first asked for its size (HEAD) and refused above
    ``max_bytes``. Errors are one-line :class:`CheckpointError` subclasses."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.constants import is_offline_mode

    what = f"{HF_SCHEME}{'datasets/' if repo_type == 'dataset' else ''}{repo_id}/{filename}"
    kw = {} if local_files_only is None else {"local_files_only": local_files_only}
    try:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision,
                                        repo_type=repo_type)
        if max_bytes is not None and not isinstance(cached, str) and not local_files_only and not is_offline_mode():
            url = hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision, endpoint=endpoint)
            size = get_hf_file_metadata(url, endpoint=endpoint).size
            if size is not None and size > max_bytes:
                raise CheckpointTooLarge(f"{what} is {size / 2**20:,.0f} MB; this app loads checkpoints up to "
                                         f"{max_bytes / 2**20:,.0f} MB")
        return Path(hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision,
                                    cache_dir=cache_dir, endpoint=endpoint, **kw))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - huggingface_hub and httpx raise many types
        raise _hub_error(exc, what) from None


def download(entry: RegistryEntry, *, cache_dir: str | None = None, endpoint: str | None = None,
             local_files_only: bool | None = None, max_bytes: int | None = None) -> Path:
    """Fetch ``entry`` through ``huggingface_hub`` (normal HF cache, honours
    HF_HUB_OFFLINE / HF_ENDPOINT), trying mirrors in order; verify sha256."""
    if not entry.hub:
        raise CheckpointError(f"checkpoint {entry.name!r} has no Hub location")
    if max_bytes is not None and entry.size is not None and entry.size > max_bytes:
        raise CheckpointTooLarge(f"checkpoint {entry.name!r} is {entry.size / 2**20:,.0f} MB; this app loads "
                                 f"checkpoints up to {max_bytes / 2**20:,.0f} MB")
    errors, offline = [], []
    for loc in entry.hub:
        try:
            path = hub_file(loc.repo_id, loc.filename, repo_type=loc.repo_type, revision=loc.revision,
                            cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)
        except CheckpointError as exc:  # network, 404, offline cache miss: try the next mirror
            errors.append(f"{loc.repo_id}: {exc}")
            offline.append(isinstance(exc, HubUnavailable))
            if isinstance(exc, HubUnavailable):
                # The Hub did not answer (each try costs ~20 s of retries) or we are offline:
                # the mirrors live on the same Hub, so only their cached copies can help now.
                local_files_only = True
            continue
        try:
            verify_sha256(path, entry.sha256)
        except CheckpointError as exc:  # the bad copy stays where the HF cache put it; say where
            errors.append(f"{loc.repo_id}: {exc} (delete {path} to fetch it again)")
            offline.append(False)
            continue
        return Path(path)
    if all(offline):  # the same story for every mirror: say it once (the page shows this line)
        tried = ", ".join(loc.repo_id for loc in entry.hub)
        raise HubUnavailable(f"could not download {entry.name!r}: it is not in the local cache and the Hub "
                             f"cannot be reached (offline; LocalEntryNotFoundError for {tried})")
    raise CheckpointError(f"could not download {entry.name!r}: " + "; ".join(errors))


def _registry_entry_at(ref: CheckpointRef, registry) -> RegistryEntry | None:
    """The registry entry one of whose Hub locations ``ref`` names (so its sha256 applies)."""
    for e in registry_entries(registry):
        for loc in e.hub:
            if ((loc.repo_id, loc.filename, loc.repo_type) == (ref.repo_id, ref.filename, ref.repo_type)
                    and (ref.revision or "main") == loc.revision):
                return e
    return None


def resolve(name_or_path: "str | os.PathLike | RegistryEntry | CheckpointRef | None" = None, *,
            registry: str | os.PathLike = REGISTRY_PATH, allow_local: bool = True,
            **download_kw) -> tuple[Path, RegistryEntry | None]:
    """A reference (see :func:`parse_ref`; ``None`` = the embedded default) or a
    :class:`RegistryEntry` -> (local file or saved-model folder, registry entry or None).

    ``registry`` is the JSON table to look names up in (its directory holds the shipped
    files). ``download_kw`` (``cache_dir``, ``endpoint``, ``local_files_only``,
    ``max_bytes``) go to the Hub download. A Hub file that is also a registry location is
    checked against the registry's sha256.
    """
    base = Path(registry).resolve().parent
    if isinstance(name_or_path, RegistryEntry):
        entry = name_or_path
    else:
        ref = parse_ref(name_or_path, allow_local=allow_local, registry=registry)
        if ref.kind == "path":
            p = Path(ref.text).expanduser()
            if p.is_file() or (p.is_dir() and (p / "model.safetensors").is_file()):
                return p, None
            if p.is_dir():
                raise CheckpointError(f"{p} is a folder without model.safetensors (not a saved CMP model)")
            raise CheckpointNotFound(f"no checkpoint file at {ref.text}")
        if ref.kind == "hub":
            return _resolve_hub(ref, registry, **download_kw)
        entry = load_registry(registry)[ref.text]
    if entry.file:
        local = base / entry.file
        if local.is_file():
            verify_sha256(local, entry.sha256)
            return local, entry
        if not entry.hub:
            raise CheckpointError(f"shipped checkpoint file {local} is missing")
    return download(entry, **download_kw), entry


def _resolve_hub(ref: CheckpointRef, registry, **kw) -> tuple[Path, RegistryEntry | None]:
    where = dict(repo_type=ref.repo_type, revision=ref.revision)
    if ref.filename:
        entry = _registry_entry_at(ref, registry)
        path = hub_file(ref.repo_id, ref.filename, **where, **kw)
        verify_sha256(path, entry.sha256 if entry else None)
        return path, entry
    # One of our saved-model repos: the weights first (the big file, its failure is the telling one).
    weights = hub_file(ref.repo_id, "model.safetensors", **where, **kw)
    try:
        hub_file(ref.repo_id, "config.json", **where, **{**kw, "max_bytes": 2**20})
    except CheckpointNotFound:
        raise CheckpointError(f"{ref.text}: the repo has model.safetensors but no config.json; "
                              "name the file itself (hf://owner/repo/model.safetensors)") from None
    return weights.parent, None


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
    ref: str | None = None  # the hf:// reference it was loaded from, if any

    @property
    def label(self) -> str:
        return self.entry.name if self.entry else self.ref or self.path.name


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


def load_checkpoint_file(path: str | os.PathLike, config: CMPConfig | None = None
                         ) -> tuple[CMPNetwork, CMPConfig, dict]:
    """Build and load a model from a local file of either format.

    ``config`` (from a model repo's ``config.json``) is used when the file carries none,
    and must agree with the file's own config when it does.
    """
    path = Path(path)
    sd, meta = read_state_dict(path)
    if meta.get("format") != "original-cmp":
        if "cmp_config" not in meta and config is None:
            raise CheckpointError(f"{path.name} has no 'cmp_config' metadata; cannot tell its architecture "
                                  "(not a CMP checkpoint?)")
        try:
            cfg = CMPConfig.from_json(meta["cmp_config"]) if "cmp_config" in meta else config
        except Exception as exc:
            raise CheckpointError(f"{path.name}: unreadable cmp_config metadata ({exc})") from None
        if config is not None and cfg != config:
            raise CheckpointError(f"{path.name}: config.json and the weights' own config disagree")
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


def load_checkpoint(name_or_path: "str | os.PathLike | RegistryEntry | CheckpointRef | None" = None,
                    **resolve_kw) -> LoadedCheckpoint:
    """The one way to get a model: resolve a reference, verify, load strictly.

    ``resolve_kw`` go to :func:`resolve` (``registry=``, ``allow_local=``, ``cache_dir=``,
    ``endpoint=``, ``max_bytes=`` ...). A saved-model folder (local or from
    ``hf://owner/repo``) is read through :class:`cmp.hub.CMPRepo` (``from_pretrained``).
    """
    path, entry = resolve(name_or_path, **resolve_kw)
    if path.is_dir():
        from .hub import CMPRepo
        repo = CMPRepo.from_pretrained(path)
        model, cfg, meta = repo.model, repo.config, repo.metadata
    else:
        model, cfg, meta = load_checkpoint_file(path)
    label = None
    if entry is None and name_or_path is not None and str(name_or_path).startswith(HF_SCHEME):
        label = str(name_or_path)
    return LoadedCheckpoint(model=model, config=cfg, path=path, entry=entry, metadata=meta, ref=label)


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


def weight_soup(paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None,
                walk_sharpness: float | None = None) -> CMPNetwork:
    """A weight soup (Wortsman et al., 2022): the weighted mean of every floating-point tensor
    of checkpoints of one architecture (integer buffers are the first file's). ``weights``:
    one per file, summing to 1 (default equal). ``walk_sharpness``: the soup's random-walk
    sharpness (:attr:`cmp.model.config.AffinityHead.walk_sharpness`; default the first file's).
    Raises :class:`CheckpointError` for files whose configs differ (beyond the sharpness) or
    weights that do not sum to 1."""
    if not paths:
        raise CheckpointError("a soup needs at least one checkpoint")
    weights = [1.0 / len(paths)] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or abs(sum(weights) - 1.0) > 1e-6 or min(weights) < 0:
        raise CheckpointError(f"{len(paths)} checkpoints need as many weights >= 0 summing to 1, not {weights}")
    models = [load_checkpoint_file(p) for p in paths]
    base, cfg, _meta = models[0]

    def plain(c: CMPConfig) -> CMPConfig:  # the config but the walk's sharpness, a reading of the weights
        walks = hasattr(c.head, "walk_sharpness")
        return dataclasses.replace(c, head=dataclasses.replace(c.head, walk_sharpness=0.0)) if walks else c
    for (_m, c, _), p in zip(models[1:], paths[1:]):
        if plain(c) != plain(cfg):
            raise CheckpointError(f"{Path(p).name} has another architecture than {Path(paths[0]).name}")
    states = [m.state_dict() for m, _, _ in models]
    soup = {k: (sum(w * sd[k].float() for w, sd in zip(weights, states)).to(v.dtype) if v.is_floating_point() else v)
            for k, v in states[0].items()}
    base.load_state_dict(soup)
    if walk_sharpness is not None:
        if not hasattr(cfg.head, "walk_sharpness"):
            raise CheckpointError(f"{Path(paths[0]).name} has no random walk to set a sharpness for")
        base.cfg = dataclasses.replace(cfg, head=dataclasses.replace(cfg.head, walk_sharpness=float(walk_sharpness)))
    return base
