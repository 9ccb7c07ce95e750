"""Our models as Hugging Face Hub model repos: ``config.json`` + ``model.safetensors`` + ``README.md``.

:class:`CMPRepo` is ``huggingface_hub``'s ``PyTorchModelHubMixin`` around a CMP network:
the mixin writes ``config.json`` (the :class:`~cmp.model.CMPConfig`), the model card
with Hub metadata (license, tags, library_name) and pushes (``create_repo`` +
``upload_folder``). Two methods are ours, because the mixin's defaults break our loading
rules: ``_save_pretrained`` writes our self-describing safetensors (so
``model.safetensors`` alone still loads as a legacy single file), and ``_from_pretrained``
loads through :func:`cmp.checkpoints.load_checkpoint_file` (config checked against the
tensors on the meta device before anything is allocated, strict keys), where the mixin
would build the network first and load non-strictly.

:func:`export_folder` and :func:`push` are ``python -m cmp push``. Never imports Gradio.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE

from .checkpoints import CheckpointError, load_checkpoint, load_checkpoint_file, save_checkpoint
from .model import CMPConfig

REPO_URL = "https://github.com/XiaohangZhan/conditional-motion-propagation"
PAPER_URL = "https://arxiv.org/abs/1903.07223"
TAGS = ["cmp-studio", "conditional-motion-propagation", "optical-flow", "self-supervised"]

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A Conditional Motion Propagation network (Zhan et al., CVPR 2019,
[paper]({{ paper_url }})) saved by CMP Studio: given an image and a few motion arrows, it
predicts how every pixel moves. Config `{{ config_name }}` ({{ parameters }} parameters, {{ propagation }}).

## Use

```bash
python app.py --checkpoint hf://{{ repo_id }}
python -m cmp flow --checkpoint hf://{{ repo_id }} --image photo.jpg --arrow 120,80,15,0 --out flow.png
```

```python
from cmp import Engine
engine = Engine.from_checkpoint("hf://{{ repo_id }}")
```

Files: `config.json` (the architecture), `model.safetensors` (weights; the config is also
in its metadata, so the file alone loads too), this card.

## Training

{{ training }}

## Evaluation

{{ evaluation }}
"""


class CMPRepo(PyTorchModelHubMixin, library_name="cmp-studio", license="mit", tags=TAGS, repo_url=REPO_URL,
              paper_url=PAPER_URL, model_card_template=CARD_TEMPLATE):
    """A CMP network with its config and file metadata, saved and loaded as a Hub model repo.

    Example::

        CMPRepo(model.cfg, model).save_pretrained("out/my-cmp")        # config.json, model.safetensors, README.md
        repo = CMPRepo.from_pretrained("out/my-cmp")                   # repo.model, repo.config
    """

    def __init__(self, config: CMPConfig, model=None, metadata: dict | None = None):
        from .model import build_cmp
        self.config = config if isinstance(config, CMPConfig) else CMPConfig.from_dict(config)
        self.model = model if model is not None else build_cmp(self.config)
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()
                         if k not in ("format", "cmp_config")}

    def _save_pretrained(self, save_directory: Path) -> None:
        save_checkpoint(self.model, Path(save_directory) / SAFETENSORS_SINGLE_FILE, **self.metadata)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, config=None, **_kw) -> "CMPRepo":
        if os.path.isdir(model_id):
            weights = Path(model_id) / SAFETENSORS_SINGLE_FILE
        else:  # a repo id; within CMP Studio hf:// references are downloaded by cmp.checkpoints
            from .checkpoints import hub_file
            weights = hub_file(model_id, SAFETENSORS_SINGLE_FILE, revision=revision, cache_dir=cache_dir,
                               local_files_only=local_files_only or None)
        if config is not None and not isinstance(config, CMPConfig):
            try:
                config = CMPConfig.from_dict(config)
            except Exception as exc:  # noqa: BLE001 - a stranger's config.json
                raise CheckpointError(f"{CONFIG_NAME} is not a CMP config ({type(exc).__name__}: {exc})"
                                      .splitlines()[0]) from None
        model, cfg, meta = load_checkpoint_file(weights, config=config)
        return cls(cfg, model, meta)

    def generate_model_card(self, *args, license: str | None = None, **kwargs) -> ModelCard:
        data = ModelCardData(**self._hub_mixin_info.model_card_data.to_dict())
        if license:
            data.license = license
        return ModelCard.from_template(card_data=data, template_str=self._hub_mixin_info.model_card_template,
                                       paper_url=PAPER_URL, **kwargs)


# -- python -m cmp push -----------------------------------------------------------

#: Run-folder files that are never eval results.
_NOT_EVAL = {"train_config.json", CONFIG_NAME}


def _train_command(cfg: dict) -> str:
    """``python -m cmp train ...`` rebuilt from a run's ``train_config.json`` (non-default flags only)."""
    from .train.loop import TrainConfig
    default = TrainConfig()
    args = ["python", "-m", "cmp", "train"]
    for k, v in cfg.items():
        if not hasattr(default, k) or getattr(default, k) == v or k in ("threads",):
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        elif v is None or v is False:
            continue
        else:
            args += [flag, str(v)]
    if cfg.get("data") is None and default.data is not None:
        args.append("--synthetic-only")
    return shlex.join(args)


def _eval_numbers(doc, limit: int = 40) -> list[str]:
    """Numeric leaves of an eval JSON as ``path: value`` lines (lists of numbers kept whole)."""
    lines: list[str] = []

    def walk(node, path):
        if len(lines) >= limit:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list) and node and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     for v in node):
            lines.append(f"{path}: {', '.join(f'{v:g}' for v in node)}")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            lines.append(f"{path}: {node:g}")

    walk(doc, "")
    return lines


def _card_sections(run: Path | None, meta: dict, evals: list[Path]) -> tuple[str, str]:
    training = []
    cfg_path = run / "train_config.json" if run else None
    if cfg_path and cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        training.append(f"Command (rebuilt from `train_config.json`):\n\n```bash\n{_train_command(cfg)}\n```")
        data = cfg.get("data")
        training.append(f"Data: {f'`{data}` (frame pairs with teacher flow) plus ' if data else ''}"
                        f"synthetic scenes (share {cfg.get('synth_prob')}).")
    if meta.get("steps"):
        training.append(f"Steps: {meta['steps']}.")
    if not training:
        training.append("Not recorded (the checkpoint came without its training run).")
    evaluation = []
    for path in evals:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"eval file {path} is not readable JSON ({exc})".splitlines()[0]) from None
        lines = _eval_numbers(doc)
        evaluation.append(f"`{path.name}`:\n\n```\n" + "\n".join(lines or ["(no numbers)"]) + "\n```")
    return "\n\n".join(training), "\n\n".join(evaluation) or "No eval JSON was found next to the checkpoint."


def export_folder(source: str | os.PathLike, out_dir: str | os.PathLike, repo_id: str, *,
                  license: str | None = None, evals: list[str] | None = None, **load_kw) -> Path:
    """Write the Hub model repo for ``source`` into ``out_dir``; returns ``out_dir``.

    ``source`` is a training run folder (``model.safetensors`` + ``train_config.json`` +
    any eval ``*.json``) or any checkpoint reference (:func:`cmp.checkpoints.parse_ref`).
    """
    src = Path(source)
    run = src if src.is_dir() and (src / "train_config.json").is_file() else None
    ck = load_checkpoint(src / SAFETENSORS_SINGLE_FILE if run else source, **load_kw)
    found = [Path(e) for e in evals or []]
    if run and not evals:
        found = sorted(p for p in list(run.glob("*.json")) + list(run.glob("eval/*.json")) if p.name not in _NOT_EVAL)
    training, evaluation = _card_sections(run, ck.metadata, found)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"output folder {out} is not empty")
    n = sum(p.numel() for p in ck.model.parameters())
    repo = CMPRepo(ck.config, ck.model, ck.metadata)
    repo.save_pretrained(out, model_card_kwargs={
        "license": license, "title": repo_id.split("/")[-1], "repo_id": repo_id, "config_name": ck.config.name,
        "parameters": f"{n / 1e6:.2f} M", "propagation": "affinity propagation" if ck.config.kind == "affinity"
        else "the original bin decoder", "training": training, "evaluation": evaluation})
    return out


def push(folder: str | os.PathLike, repo_id: str, *, private: bool = False, endpoint: str | None = None,
         token: str | None = None) -> str:
    """Upload an :func:`export_folder` folder as one commit; returns the commit URL.

    This is ``PyTorchModelHubMixin.push_to_hub``'s two calls (``create_repo`` then
    ``upload_folder``) on the folder already written, so what was checked (and shown by
    ``--dry-run``) is exactly what is uploaded.
    """
    from huggingface_hub import HfApi
    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        return str(api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                                     commit_message="Upload CMP model with CMP Studio"))
    except Exception as exc:  # noqa: BLE001 - auth, network, Hub errors: one line
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(f"push to {repo_id} failed: {type(exc).__name__}: {first}") from None
