"""Shared fixtures: the tests directory on sys.path (for the helper modules), the real clips, an isolated weights
cache and index per test, and the loopback HTTP server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:  # the helper modules (support.py, reference.py, ...) import by plain name
    sys.path.insert(0, str(_TESTS_DIR))

from support import VIDEOS, require_shared, scratch_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    return require_shared(VIDEOS)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own weights cache and no user mirrors, so nothing leaks between tests; the cache is
    removed after the test (full-size checkpoints add up to gigabytes over the suite)."""
    with scratch_dir(tmp_path_factory, "zoo_home") as home:
        monkeypatch.setenv("SLOWONLY_ZOO_HOME", str(home))
        monkeypatch.delenv("SLOWONLY_ZOO_MIRRORS", raising=False)
        monkeypatch.setenv("SLOWONLY_ZOO_ORIGINS", "")  # no real alternate hosts (test_weights_origins.py sets its own)
        monkeypatch.delenv("SLOWONLY_ZOO_OFFLINE", raising=False)
        monkeypatch.delenv("SLOWONLY_ZOO_HF_PREFIX", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield home


@pytest.fixture(autouse=True)
def _isolated_index():
    """Entries a test registers (register_model_entry, SLOWONLY_ZOO_EXTRA_INDEX) do not outlive it."""
    from slowonly_zoo import index

    registry = index._registry()
    saved = (dict(registry.entries), dict(registry.origins), dict(registry.lookup))
    yield
    registry = index._registry()
    registry.entries, registry.origins, registry.lookup = (dict(d) for d in saved)


@pytest.fixture
def one_thread():
    """One intra-op torch thread (the tests share two cores); restored afterwards."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture()
def server():
    """A fault-injecting HTTP server on 127.0.0.1 (tests/loopback_server.py), stopped after the test."""
    from loopback_server import LoopbackServer

    with LoopbackServer() as srv:
        yield srv
