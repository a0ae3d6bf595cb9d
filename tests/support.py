"""Paths every test module shares, and the one rule for material from ``../shared``.

``../shared`` (beside the checkout) holds the real clips, the seed README and the reference key lists. CI always
has it; a test that needs it and does not find it fails (never skips), saying where it looked.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


def fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet, cwd the checkout) and return its stripped stdout;
    a non-zero exit fails the test with the interpreter's stderr."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@contextlib.contextmanager
def scratch_dir(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A new folder under pytest's base temporary directory, removed when the ``with`` block ends. For module-scoped
    fixtures that write checkpoints or exports (``yield`` inside the block): pytest keeps ``mktemp`` folders until
    the session ends, and over the whole suite those add up to gigabytes."""
    path = factory.mktemp(name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
