"""Shared test setup: the tests directory on sys.path (for reference.py and friends), paths to ../shared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SHARED = REPO_ROOT.parent / "shared"
VIDEOS = SHARED / "videos"

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    if not VIDEOS.is_dir():
        pytest.skip(f"the real test clips are not at {VIDEOS} (../shared/videos beside the repository)")
    return VIDEOS


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own weights cache and no user mirrors, so nothing leaks between tests."""
    home = tmp_path_factory.mktemp("zoo_home")
    monkeypatch.setenv("SLOWONLY_ZOO_HOME", str(home))
    monkeypatch.delenv("SLOWONLY_ZOO_MIRRORS", raising=False)
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
