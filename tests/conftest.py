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
