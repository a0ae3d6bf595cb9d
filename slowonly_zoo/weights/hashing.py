"""SHA-256 helpers and the upstream ``<stem>-<8 hex>.pth`` naming rule.

mmaction2's ``publish_model.py`` renamed every released checkpoint to
``<stem>-<first 8 hex digits of sha256(file bytes)>.pth``; that suffix is what we verify against.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHUNK_SIZE",
    "hash_file_into",
    "hash_prefix_from_filename",
    "new_hasher",
    "sha256_file",
    "sha256_matches_prefix",
]

#: Bytes read or received per step when hashing or streaming.
CHUNK_SIZE = 1 << 20

_SUFFIX_RE = re.compile(r"-([0-9a-f]{8})\.pth$")


def new_hasher() -> hashlib._Hash:
    """A fresh SHA-256 hasher (one place that names the algorithm)."""
    return hashlib.sha256()


def hash_file_into(hasher: hashlib._Hash, fh: BinaryIO, on_chunk: Callable[[int], None] | None = None) -> int:
    """Feed everything left in ``fh`` into ``hasher``; return the number of bytes read."""
    total = 0
    while True:
        block = fh.read(CHUNK_SIZE)
        if not block:
            return total
        hasher.update(block)
        total += len(block)
        if on_chunk is not None:
            on_chunk(len(block))


def sha256_file(path: str | Path) -> str:
    """Full hex SHA-256 of the file at ``path``."""
    hasher = new_hasher()
    with open(path, "rb") as fh:
        hash_file_into(hasher, fh)
    return hasher.hexdigest()


def hash_prefix_from_filename(filename: str) -> str | None:
    """The 8-hex-digit suffix of an upstream checkpoint name (``…-a79c555a.pth`` → ``a79c555a``), else None."""
    match = _SUFFIX_RE.search(Path(filename).name)
    return match.group(1) if match else None


def sha256_matches_prefix(sha256: str, prefix: str | None) -> bool:
    """True when ``prefix`` is empty/None or the full digest starts with it (case-insensitive)."""
    if not prefix:
        return True
    return sha256.lower().startswith(prefix.lower())
