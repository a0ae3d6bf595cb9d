"""Lock files (README "Getting the weights"): the full sha256 and size of each cached model's original file, as
a small JSON text written by ``slowonly-zoo lock``. With ``$SLOWONLY_ZOO_LOCK`` (or ``--lock``) set, every
download and load must match the lock in full, and a model the lock does not list is refused, the way pip's
hash-checking mode refuses unlisted packages.

Format (``"format": 1``)::

    {"format": 1, "models": {"<name>": {"filename": "...", "sha256": "<64 hex>", "size": <bytes>}}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import config
from .._fileio import atomic_write_text
from ..errors import WeightsFileError
from . import cache

__all__ = ["LOCK_FORMAT", "LockedFile", "locked_file", "read_lock", "write_lock", "write_lock_file"]

#: Version of the lock file layout.
LOCK_FORMAT = 1


@dataclass(frozen=True)
class LockedFile:
    """What the lock says the original file of one model is."""

    filename: str
    sha256: str
    size: int


def read_lock(path: str | Path) -> dict[str, LockedFile]:
    """The models a lock file lists; an unreadable or malformed file is a ``WeightsFileError``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != LOCK_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {LOCK_FORMAT}")
        models = {
            str(name): LockedFile(str(v["filename"]), str(v["sha256"]).lower(), int(v["size"]))
            for name, v in data["models"].items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise WeightsFileError(
            f"the lock file {path} is unreadable ({exc}); write it again with `slowonly-zoo lock --all --out {path}`"
        ) from None
    return models


def locked_file(name: str) -> LockedFile | None:
    """With a lock in force (``$SLOWONLY_ZOO_LOCK`` / ``--lock``): what it lists for ``name`` (a model it does not
    list is a ``WeightsFileError``); None without a lock."""
    path = config.lock_file()
    if path is None:
        return None
    entry = read_lock(path).get(name)
    if entry is None:
        raise WeightsFileError(
            f"{name!r} is not listed in the lock file {path}, so it is refused; cache it and add it with "
            f"`slowonly-zoo lock {name} --out {path}` (or unset SLOWONLY_ZOO_LOCK)"
        )
    return entry


def write_lock(names: Sequence[str] | None, out: str | Path) -> dict[str, LockedFile]:
    """Write the full sha256 and size of the cached originals of ``names`` (None: every cached model) to ``out``.

    Each model must be in the cache and pass the full check (:func:`.cache.check_cached` with ``full=True``)."""
    if names is None:
        folder = cache.cache_root() / "weights"
        names = sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    models: dict[str, LockedFile] = {}
    for name in names:
        check = cache.check_cached(name, full=True)
        size = None if check.record is None else check.record.original_size
        if not check.ok or check.record is None or size is None:
            raise WeightsFileError(
                f"cannot lock {name!r}: {check.problem or 'its record has no size'}; "
                f"run `slowonly-zoo download {name}` first"
            )
        rec = check.record
        models[name] = LockedFile(rec.original_filename, rec.original_sha256, size)
    write_lock_file(models, out)
    return models


def write_lock_file(models: Mapping[str, LockedFile], out: str | Path) -> None:
    """Write ``models`` to ``out`` in the lock format (atomically): the one writer of that format, shared by
    :func:`write_lock` and ``slowonly-zoo mirror`` (which merges an earlier lock of its folder)."""
    text = json.dumps(
        {"format": LOCK_FORMAT, "models": {n: asdict(m) for n, m in sorted(models.items())}}, indent=2, sort_keys=True
    )
    atomic_write_text(Path(out), text + "\n")
