"""Shipping contracts: Dockerfile, .dockerignore, .ci/run, requirements, README, app flags.

No Docker engine runs on the CI machine, so the Dockerfile is checked by parsing it
(plus hadolint from requirements-dev). The README's quick start is the source of truth
for the install and test commands; .ci/run must run the same ones.
"""
from __future__ import annotations

import fnmatch
import importlib.metadata as md
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


# -- helpers -----------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, args = buf.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    return out


def index_of(instrs, pred) -> int:
    for i, (ins, args) in enumerate(instrs):
        if pred(ins, args):
            return i
    return -1


def env_vars(instrs) -> dict[str, str]:
    env = {}
    for ins, args in instrs:
        if ins == "ENV":
            for tok in shlex.split(args):
                key, eq, value = tok.partition("=")
                assert eq, f"use ENV key=value form: {args!r}"
                env[key] = value
    return env


def copy_parts(args: str) -> tuple[list[str], list[str]]:
    """COPY arguments -> (flags, paths)."""
    toks = shlex.split(args)
    flags = [t for t in toks if t.startswith("--")]
    return flags, [t for t in toks if not t.startswith("--")]


def requirement_lines(path: Path) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()
            if ln.split("#", 1)[0].strip()]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for ln in requirement_lines(path):
        if ln.startswith("-r "):
            continue
        m = PIN.match(ln)
        assert m, f"{path.name}: {ln!r} is not pinned with =="
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def readme_front_matter() -> dict:
    text = README.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must start with the Space's YAML front matter"
    block = text[4:].split("\n---\n", 1)
    assert len(block) == 2, "front matter is not closed by a '---' line"
    data = yaml.safe_load(block[0])
    assert isinstance(data, dict)
    return data


def quick_start_commands() -> list[str]:
    """The shell commands in the README's Quick start section, in order."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Quick start\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert m, "README.md has no '## Quick start' section"
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", m.group(1), flags=re.S)
    assert len(blocks) == 1, "Quick start should hold exactly one code block"
    return [ln.strip() for ln in blocks[0].splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def tool(name: str) -> str:
    """A console script of this environment (requirements-dev.txt), else from PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} not found: pip install -r requirements-dev.txt"
    return found


# -- Dockerfile ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def instrs():
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_dockerfile_base_image_is_python311_slim(instrs):
    froms = [a for i, a in instrs if i == "FROM"]
    assert froms == ["python:3.11-slim"]


def test_dockerfile_runs_as_uid_1000(instrs):
    users = [a for i, a in instrs if i == "USER"]
    assert users, "no USER: the container would run as root"
    final = users[-1].split(":")[0]
    if final != "1000":  # a name is fine if the file creates it with uid 1000
        created = [a for i, a in instrs if i == "RUN" and re.search(rf"useradd\b.*--uid 1000\b.*\b{final}\b", a)]
        assert created, f"USER {final} is not created with uid 1000"
    # root steps (useradd, mkdir) may come first; the app and pip must not run as root
    last_user = max(k for k, (i, _) in enumerate(instrs) if i == "USER")
    first_pip = index_of(instrs, lambda i, a: i == "RUN" and "pip install" in a)
    assert last_user < first_pip


def test_dockerfile_workdir_before_copy_and_copies_chowned(instrs):
    workdir = index_of(instrs, lambda i, a: i == "WORKDIR")
    first_copy = index_of(instrs, lambda i, a: i in ("COPY", "ADD"))
    assert 0 <= workdir < first_copy
    for ins, args in instrs:
        if ins in ("COPY", "ADD"):
            flags, _ = copy_parts(args)
            chown = [f for f in flags if f.startswith("--chown=")]
            assert chown and chown[0].split("=", 1)[1].split(":")[0] in ("1000", "user"), args


def test_dockerfile_installs_requirements_before_copying_code(instrs):
    def is_req_copy(i, a):
        return i == "COPY" and copy_parts(a)[1][:-1] and all(
            p.startswith("requirements") and p.endswith(".txt") for p in copy_parts(a)[1][:-1])

    def is_code_copy(i, a):
        return i == "COPY" and "." in copy_parts(a)[1][:-1]

    req_copy = index_of(instrs, is_req_copy)
    pip_req = index_of(instrs, lambda i, a: i == "RUN" and re.search(r"pip install .*-r requirements\.txt", a))
    code_copy = index_of(instrs, is_code_copy)
    assert 0 <= req_copy < pip_req < code_copy, (req_copy, pip_req, code_copy)
    assert "--no-cache-dir" in instrs[pip_req][1]


def test_dockerfile_torch_is_the_cpu_wheel_of_the_pinned_version(instrs):
    pinned = pins(ROOT / "requirements.txt")["torch"]
    runs = [a for i, a in instrs if i == "RUN" and "torch==" in a]
    assert runs, "torch must be installed explicitly from the CPU index (PyPI's Linux wheel is CUDA)"
    assert f"torch=={pinned}" in runs[0]
    assert "download.pytorch.org/whl/cpu" in runs[0]
    first_torch = index_of(instrs, lambda i, a: i == "RUN" and "torch==" in a)
    pip_req = index_of(instrs, lambda i, a: i == "RUN" and "-r requirements.txt" in a)
    assert first_torch <= pip_req  # otherwise requirements.txt pulls the CUDA build first


def test_dockerfile_serves_gradio_on_7860_with_hf_home_on_a_volume(instrs):
    env = env_vars(instrs)
    assert env.get("GRADIO_SERVER_NAME") == "0.0.0.0"
    assert env.get("GRADIO_SERVER_PORT") == "7860"
    assert [a for i, a in instrs if i == "EXPOSE"] == ["7860"]
    volumes = []
    for ins, args in instrs:
        if ins == "VOLUME":
            volumes += json.loads(args) if args.startswith("[") else args.split()
    hf_home = env.get("HF_HOME", "")
    assert hf_home and any(hf_home == v or hf_home.startswith(v.rstrip("/") + "/") for v in volumes), \
        (hf_home, volumes)


def test_dockerfile_healthcheck_uses_python_not_curl(instrs):
    checks = [a for i, a in instrs if i == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "python" in checks[0] and "urllib" in checks[0] and "127.0.0.1" in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0]  # not in python:3.11-slim


def test_dockerfile_cmd_starts_the_app(instrs):
    cmds = [a for i, a in instrs if i == "CMD"]
    assert cmds and json.loads(cmds[-1]) == ["python", "app.py"]


def test_hadolint_accepts_dockerfile():
    r = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: a pattern matches the path or one of its parent folders."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        hit = any(fnmatch.fnmatch(p, pat) or (pat.startswith("**/") and
                  any(fnmatch.fnmatch("/".join(p.split("/")[j:]), pat[3:]) for j in range(len(p.split("/")))))
                  for p in prefixes)
        if hit:
            ignored = not neg
    return ignored


def test_dockerignore_keeps_the_app_and_drops_the_rest():
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    shipped = [p.relative_to(ROOT).as_posix() for p in (ROOT / "checkpoints").iterdir()]
    keep = ["app.py", "requirements.txt", "cmp/engine.py", "cmp/model/network.py", "demos/common.py", *shipped]
    for path in keep:
        assert not dockerignored(path, patterns), f"{path} would be missing from the image"
    drop = [".git/HEAD", ".venv/bin/python", "venv/bin/python", "data/x.mp4", "runs/exp/ckpt.pt", "train-resume/last.pt",
            "cmp/__pycache__/engine.cpython-311.pyc", ".pytest_cache/v", "tests/test_packaging.py"]
    for path in drop:
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker build"


# -- CI script -----------------------------------------------------------------------
def test_ci_run_is_strict_executable_bash():
    text = CI_RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert os.access(CI_RUN, os.X_OK), ".ci/run must be executable"
    code = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert code[0] == "set -euo pipefail", "set -euo pipefail must come first"
    r = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([tool("shellcheck"), str(CI_RUN)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_run_runs_the_readme_commands_in_a_fresh_venv():
    install, test = [c.strip() for c in quick_start_commands()[1].split("&&")]
    code = "\n".join(ln for ln in CI_RUN.read_text().splitlines() if not ln.lstrip().startswith("#"))
    assert re.search(r"-m venv\b", code)
    assert re.search(rf"^\s*{re.escape(install)}\s*$", code, flags=re.M), f"{install!r} not run as is"
    assert re.search(rf"(^|\s){re.escape(test)}\s*$", code, flags=re.M), f"{test!r} not run"
    # pytest's "no tests collected" must not pass as success
    assert re.search(r"^\s*5\)", code, flags=re.M)
    for var in ("GRADIO_ANALYTICS_ENABLED=False", "HF_HUB_OFFLINE=1", "CMP_REQUIRE_BROWSER"):
        assert var in code
    assert "apt-get install -y" in code and "chromium" in code


# -- requirements ----------------------------------------------------------------------
def test_runtime_requirements_are_pinned_and_cpu_friendly():
    req = pins(ROOT / "requirements.txt")
    assert req.get("torch") == "2.13.0"
    assert "torchvision" not in req
    assert "opencv-python-headless" in req and "opencv-python" not in req
    assert "gradio" in req


def test_dev_requirements_extend_runtime_and_are_pinned():
    lines = requirement_lines(ROOT / "requirements-dev.txt")
    assert "-r requirements.txt" in lines
    dev = pins(ROOT / "requirements-dev.txt")
    assert "torchvision" not in dev and "opencv-python" not in dev
    assert {"pytest", "playwright", "gradio-client"} <= set(dev)


def test_installed_versions_match_the_pins():
    """The environment under test is the one the requirement files describe."""
    wrong = {}
    for name, want in {**pins(ROOT / "requirements.txt"), **pins(ROOT / "requirements-dev.txt")}.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            wrong[name] = (want, None)
            continue
        if have.split("+")[0] != want:  # 2.13.0+cpu is the CPU build of 2.13.0
            wrong[name] = (want, have)
    assert not wrong, f"pinned vs installed: {wrong}"


# -- README ----------------------------------------------------------------------------
def test_readme_front_matter_configures_a_gradio_space():
    import gradio

    fm = readme_front_matter()
    assert fm["sdk"] == "gradio"
    assert str(fm["sdk_version"]) == gradio.__version__ == pins(ROOT / "requirements.txt")["gradio"]
    assert fm["app_file"] == "app.py" and (ROOT / fm["app_file"]).is_file()
    pv = fm["python_version"]
    assert isinstance(pv, str), "quote python_version: YAML reads 3.10 as the number 3.1"
    assert re.fullmatch(r"3\.(1[0-9])(\.\d+)?", pv), pv
    assert len(fm.get("short_description", "")) <= 60  # the Hub's limit


def test_readme_front_matter_lists_the_hub_checkpoints():
    fm = readme_front_matter()
    models = fm.get("models")
    assert isinstance(models, list) and models
    registry = json.loads((ROOT / "checkpoints" / "registry.json").read_text())["checkpoints"]
    primary = [e["hub"][0]["repo_id"] for e in registry if e.get("hub") and e["hub"][0]["repo_type"] == "model"]
    assert primary and set(primary) <= set(models)
    for item in fm.get("preload_from_hub", []):  # "repo file1,file2"
        repo, _, files = item.partition(" ")
        assert repo in models


def test_readme_quick_start_is_two_commands():
    cmds = quick_start_commands()
    assert len(cmds) == 2, cmds
    run, test = cmds
    assert run == "pip install -r requirements.txt && python app.py"
    install, _, test_cmd = test.partition(" && ")
    assert install == "pip install -r requirements-dev.txt"
    assert re.match(r"(python -m )?pytest\b", test_cmd), test_cmd


def test_readme_links_screenshots_of_the_three_pages():
    text = README.read_text(encoding="utf-8")
    for page in ("motion", "segment", "gallery"):
        assert f"docs/screenshots/{page}.png" in text


# -- app flags -------------------------------------------------------------------------
def test_app_help_lists_every_flag():
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    r = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for flag in ("--checkpoint", "--device", "--precision", "--host", "--port", "--share", "--max-image-side"):
        assert flag in r.stdout, flag


def test_zero_gpu_puts_the_model_on_cuda_unless_told_otherwise(monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.syspath_prepend(str(ROOT))
    import app

    plain = app.parse_args([])
    assert app.zero_gpu_args(plain, env={}) is plain
    zero = app.zero_gpu_args(plain, env={"SPACES_ZERO_GPU": "true"})
    assert (zero.device, zero.precision) == ("cuda", "bf16")
    assert (plain.device, plain.precision) == ("auto", "auto")  # the parsed flags are not mutated
    chosen = app.zero_gpu_args(app.parse_args(["--device", "cpu", "--precision", "fp32"]),
                               env={"SPACES_ZERO_GPU": "1"})
    assert (chosen.device, chosen.precision) == ("cpu", "fp32")


def test_app_queue_has_an_explicit_max_size(monkeypatch):
    """ZeroGPU forces max_size=1 unless the app sets one."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.syspath_prepend(str(ROOT))
    import app
    from cmp.device import Runtime
    from cmp.engine import Engine
    from cmp.model import build_cmp
    from cmp.model.config import TINY
    from demos.common import Context

    demo = app.build_app(Context(engine=Engine(build_cmp(TINY), Runtime.create("cpu", "fp32"))))
    assert demo._queue.max_size is not None and demo._queue.max_size > 1
