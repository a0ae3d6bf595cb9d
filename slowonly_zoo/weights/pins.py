"""Hashes pinned on first use, for checkpoints whose index entry pins none (FAIR's files carry no hash in
their names, README "Getting the weights").

The first verified download of such a file is trusted (trust on first use, like ssh's ``known_hosts``): its full
sha256 and byte size are written to ``<cache root>/pins/<name>.json`` (and, as for every file, into the cache
record). From then on the pin works like a full sha256 in the index: every download and import must match it, and
every load checks the cached record against it. The pin outlives the cached weights (``remove_entry`` keeps it), so
a re-download after a cache wipe is checked too; delete the pin file to trust a new file on purpose.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .._fileio import atomic_write_text
from . import cache

__all__ = ["Pin", "pin_path", "read_pin", "write_pin"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pin:
    """The full sha256 and size of the original file of model ``name``, recorded on its first download."""

    name: str
    filename: str
    sha256: str
    size: int
    source: str
    pinned: str  # ISO-8601 UTC


def pin_path(name: str) -> Path:
    """Where the pin of model ``name`` lives (whether or not it exists)."""
    return cache.path_in_cache("pins", f"{name}.json")


def read_pin(name: str) -> Pin | None:
    """The pin of ``name``, or None when there is none. An unreadable pin file is an error (never "no pin")."""
    path = pin_path(name)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Pin(**{k: data[k] for k in Pin.__dataclass_fields__})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        from ..errors import WeightsFileError

        raise WeightsFileError(
            f"the hash pin {path} is unreadable ({exc}); delete it to trust the next download of {name} anew"
        ) from None


def write_pin(name: str, filename: str, sha256: str, size: int, source: str) -> Pin:
    """Record ``sha256`` and ``size`` as the pin of ``name`` and log that it was pinned on first use."""
    pin = Pin(name, filename, sha256, size, source, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    path = pin_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(pin), indent=2, sort_keys=True) + "\n")
    log.warning(
        "%s: pinned on first use (trust on first use): %s from %s has sha256 %s and %d bytes; every later download "
        "and load must match. To check it, compare that sha256 with `sha256sum` of a copy from another machine or "
        "network (the pin is %s)",
        name,
        filename,
        source,
        sha256,
        size,
        path,
    )
    return pin
