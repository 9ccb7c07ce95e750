"""Plain helpers shared by test files (fixtures live in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, timeout=180) -> subprocess.CompletedProcess:
    """``python -m cmp ARGS`` in a fresh interpreter from the repository root (text output captured)."""
    e = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cmp", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=REPO_ROOT, timeout=timeout)
