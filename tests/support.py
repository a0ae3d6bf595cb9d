"""Paths every test module shares, and the one rule for material from ``../shared``.

``../shared`` (beside the checkout) holds the real clips, the seed README and the reference key lists. CI always
has it; a test that needs it and does not find it fails (never skips), saying where it looked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SHARED = REPO_ROOT.parent / "shared"
VIDEOS = SHARED / "videos"
SEED_README = SHARED / "seed" / "slowonly_README.md"
KEYS_DIR = SHARED / "reference" / "keys"


def require_shared(path: Path) -> Path:
    """``path`` (inside ``../shared``), or a test failure saying it is missing."""
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the tests need the project's ../shared folder beside the checkout "
            f"(expected at {SHARED})",
            pytrace=False,
        )
    return path
