"""Concurrent users and bounded resources: a small load run against the launched tiny app,
the load script's command line, and the bounds on cache, state and temp files."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import loadtest

ROOT = Path(__file__).resolve().parents[1]


def test_three_sessions_in_parallel_no_failures_no_leaks(app_url, tiny_engine):
    summary = loadtest.run(app_url, sessions=3, actions=5, video_every=5, timeout=240)
    assert summary["failures"] == 0 and summary["errors"] == [], summary["errors"]
    assert summary["requests"] == 15
    lat = summary["latency"]
    assert {a: s["n"] for a, s in lat.items()} == {"arrow": 6, "segment": 6, "video": 3}
    for s in lat.values():
        assert 0 < s["p50_s"] <= s["p95_s"]
    assert len(tiny_engine.cache) <= tiny_engine.cache.max_entries


def test_the_load_clients_share_one_tls_context_instead_of_loading_the_ca_bundle_per_request(
        app_url, monkeypatch):
    """gradio_client opens an httpx client per upload, prediction and download; without a
    context given, httpx loads the CA bundle for each (~170 ms of CPU a request), and on one
    machine that CPU is taken from the server the load test measures."""
    import ssl

    loads = []
    real = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(args or kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    summary = loadtest.run(app_url, sessions=2, actions=3, video_every=0, timeout=120)
    assert summary["failures"] == 0 and summary["requests"] == 6, summary["errors"]
    assert loads == []
    assert loadtest.TLS_CONTEXT.verify_mode == ssl.CERT_REQUIRED and loadtest.TLS_CONTEXT.check_hostname


def test_a_server_that_is_down_counts_every_action_as_failed():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    summary = loadtest.run(f"http://127.0.0.1:{port}/", sessions=2, actions=3, video_every=0, timeout=60)
    assert summary["failures"] == 6 and summary["latency"] == {}
    assert any("cannot connect" in e for e in summary["errors"])


@pytest.mark.parametrize("url, ok", [("http://127.0.0.1:7860", True), ("http://localhost:7860/", True),
                                     ("http://[::1]:7860", True), ("http://127.0.0.1.example.com:7860", False),
                                     ("http://10.0.0.5:7860", False), ("https://huggingface.co", False)])
def test_only_loopback_addresses_are_driven(url, ok):
    assert loadtest.is_loopback(url) is ok


def test_command_line_help_and_refusals():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "benchmarks.loadtest", "--help"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--sessions" in r.stdout and "--actions" in r.stdout
    for args, word in ((["--url", "http://127.0.0.1.example.com:7860"], "loopback"), (["--sessions", "0"], "1..64")):
        r = subprocess.run([sys.executable, "-m", "benchmarks.loadtest", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and word in r.stderr and "Traceback" not in r.stderr


# -- bounded memory and disk ------------------------------------------------------------

def test_the_app_bounds_its_caches(launched_app):
    import app
    demo, _ = launched_app
    frequency_s, age_s = demo.delete_cache  # Gradio's uploads and outputs are cleaned
    assert 0 < frequency_s <= age_s <= 24 * 3600
    assert 0 < app.CACHE_IMAGES <= 64 and 0 < app.CACHE_MB <= 4096 and 0 < app.STATE_SESSIONS < 10_000


def test_per_request_temp_files_are_fresh_and_old_ones_pruned(monkeypatch):
    from demos import common, outputs
    monkeypatch.setattr(outputs, "QUOTA_CHECK_S", 0.0)  # every output checks (the throttle: test below)
    old_file = Path(common.temp_path(".png"))
    old_dir = Path(common.temp_dir())
    (old_dir / "mask.png").write_bytes(b"x")
    long_ago = time.time() - common.TEMP_MAX_AGE_S - 60
    for p in (old_dir / "mask.png", old_file, old_dir):
        os.utime(p, (long_ago, long_ago))
    fresh = [common.temp_path(".png") for _ in range(3)] + [common.temp_dir()]
    assert len(set(fresh)) == 4 and all(os.path.exists(p) for p in fresh)
    assert not old_file.exists() and not old_dir.exists()
    assert all(Path(p).parent == Path(outputs.output_dir()) for p in fresh)


def test_the_quota_walk_is_throttled_only_while_half_the_quota_is_free(monkeypatch):
    from demos import outputs
    walks = []
    monkeypatch.setattr(outputs, "enforce_quota", lambda root, quota: walks.append(quota) or kept[0])
    monkeypatch.setattr(outputs, "_last_walk", (-float("inf"), 0))
    monkeypatch.setattr(outputs, "QUOTA_CHECK_S", 60.0)
    kept = [outputs.OUTPUT_QUOTA_BYTES // 4]
    outputs.temp_path(".png")
    outputs.temp_path(".flo")
    outputs.temp_dir()
    assert len(walks) == 1  # a quarter of the quota used: one walk per QUOTA_CHECK_S
    kept[0] = outputs.OUTPUT_QUOTA_BYTES // 2 + 1  # the folder grew past half the quota
    outputs.temp_path(".png")
    assert len(walks) == 1  # not seen before the interval has passed...
    monkeypatch.setattr(outputs, "_last_walk", (outputs._last_walk[0] - 61.0, outputs._last_walk[1]))
    outputs.temp_path(".png")
    assert len(walks) == 2  # ...then seen, and from here on every output checks
    outputs.temp_path(".png")
    outputs.temp_dir()
    assert len(walks) == 4
