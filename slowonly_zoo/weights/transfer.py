"""Moving weights into the cache: ``import`` files you have, ``download`` by name (``export`` for the Hub is
:mod:`.hub_export`).

These are the Python functions behind ``slowonly-zoo import / download``; each returns one result per input and
never stops at the first failure, so a command can print a per-item report.

* :func:`import_files` recognises upstream checkpoint files by name and sha256 prefix, and renamed files by
  their hash alone (against every index entry, including ``SLOWONLY_ZOO_EXTRA_INDEX`` / registered ones);
  it verifies, converts and caches them. An export folder / ``.safetensors`` written by
  :func:`.hub_export.export` only *claims* the source sha256 in its metadata (anyone can write that header): it is
  reported 'unverified' and cached only with ``trust_claims=True`` (``import --trust-claims``,
  ``SLOWONLY_ZOO_TRUST_CLAIMS=1``).
* :func:`download` fetches names into the cache through :func:`.sources.fetch_weights`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config
from . import cache
from .download import announced_lock
from .file_checks import read_metadata
from .hashing import hash_prefix_from_filename, sha256_file, sha256_matches_prefix
from .layout import (
    META_SOURCE_FILENAME,
    META_SOURCE_SHA256,
    WEIGHTS_FILE,
    read_safetensors_metadata,
)
from .sources import (
    WeightsNotFoundError,
    accepted_prefixes,
    fetch_weights_report,
    matches_pin,
    pin_mismatch,
    pinned_sha256,
)

if TYPE_CHECKING:
    from ..index import ModelEntry

__all__ = ["DownloadReport", "ImportResult", "download", "download_summary", "import_files"]

_CHECKPOINT_SUFFIXES = (".pth", ".safetensors")


# ----------------------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What happened to one input file.

    ``status`` is 'imported', 'already-cached', 'mismatch' (named like a known checkpoint, wrong hash),
    'unknown' (no index entry has this hash), 'ambiguous' (several entries' files share this hash prefix and the
    file's name is none of theirs, so it is not imported), 'unverified' (a converted file claims to come from a known
    checkpoint; not imported without ``trust_claims``) or 'error' (unreadable / not convertible).
    """

    path: Path
    status: str
    names: tuple[str, ...]
    sha256: str | None
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("imported", "already-cached")

    def __str__(self) -> str:
        return f"{self.status:>14}  {self.path}: {self.message}"


def _all_entries() -> list[ModelEntry]:
    from ..index import get_model_info, list_models

    return [get_model_info(n) for n in list_models(pretrained=True)]


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _CHECKPOINT_SUFFIXES)
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def _known_filenames(entry: ModelEntry) -> tuple[str, ...]:
    ck = entry.checkpoint
    return (ck.filename, *ck.previous_filenames) if ck else ()


def _import_one(path: Path, entries: Sequence[ModelEntry], trust_claims: bool = False) -> ImportResult:
    if not path.exists():
        return ImportResult(path, "error", (), None, "no such file")
    if not path.is_file():
        return ImportResult(path, "error", (), None, "not a regular file (a folder, FIFO or device); give a file")
    is_safetensors = path.suffix == ".safetensors" or path.name == WEIGHTS_FILE
    if is_safetensors:
        meta = read_metadata(path)
        digest = meta.get(META_SOURCE_SHA256)
        if not digest:
            return ImportResult(
                path,
                "unknown",
                (),
                None,
                f"a .safetensors without '{META_SOURCE_SHA256}' "
                "metadata: cannot tell which checkpoint it comes from (import the .pth instead)",
            )
    else:
        digest = sha256_file(path)
    by_prefix = [e for e in entries if any(sha256_matches_prefix(digest, p) for p in accepted_prefixes(e))]
    by_hash = [e for e in by_prefix if matches_pin(e, digest)]
    if by_prefix and not by_hash:
        return ImportResult(
            path, "error", (), digest, f"refused: {'; '.join(pin_mismatch(e, digest) for e in by_prefix)}"
        )
    by_name = [e for e in entries if path.name in _known_filenames(e)]
    if len(by_hash) > 1:
        # Several entries' files share this 8-hex prefix (mmaction2 1.x's ImageNet and non-local 8x8x1 K400 files
        # both end in -df42dc84, ../shared/reference/mmaction2_1x/SOURCES.md): 32 bits cannot tell them apart, so
        # the file must also carry one of their upstream names (a converted file: the name it claims to come from).
        claimed_name = read_safetensors_metadata(path).get(META_SOURCE_FILENAME) if is_safetensors else path.name
        named = [e for e in by_hash if claimed_name in _known_filenames(e)]
        if not named:
            upstream = " or ".join(f for e in by_hash for f in _known_filenames(e)[:1])
            return ImportResult(
                path,
                "ambiguous",
                tuple(e.name for e in by_hash),
                digest,
                f"its sha256 prefix {digest[:8]} is shared by the checkpoints of {', '.join(e.name for e in by_hash)}, "
                f"so a renamed file cannot be told apart; rename it to its upstream name ({upstream}) and import "
                "it again",
            )
        by_hash = named
    if not by_hash:
        if by_name and not is_safetensors:
            expected = " or ".join(dict.fromkeys(p for e in by_name for p in accepted_prefixes(e)))
            return ImportResult(
                path,
                "mismatch",
                tuple(e.name for e in by_name),
                digest,
                f"named like the checkpoint of {', '.join(e.name for e in by_name)} but its sha256 "
                f"starts {digest[:8]}, expected {expected}: the file is damaged or a different "
                "file; not imported",
            )
        suffix = hash_prefix_from_filename(path.name)
        note = (
            f"; its name ends in -{suffix} but its sha256 starts {digest[:8]} (damaged?)"
            if suffix and not sha256_matches_prefix(digest, suffix)
            else ""
        )
        return ImportResult(
            path,
            "unknown",
            (),
            digest,
            f"no index entry has a checkpoint with sha256 {digest[:8]}…{note}. To use your own "
            "checkpoint, add an entry with SLOWONLY_ZOO_EXTRA_INDEX or register_model_entry()",
        )

    if is_safetensors and not trust_claims:
        claimed = meta.get(META_SOURCE_FILENAME) or "a checkpoint"
        return ImportResult(
            path,
            "unverified",
            tuple(e.name for e in by_hash),
            None,
            f"unverified: claims to be converted from {claimed} (sha256 {digest[:8]}…, the checkpoint of "
            f"{', '.join(e.name for e in by_hash)}), which nothing here can check; not imported: import the "
            "original .pth, or pass --trust-claims (trust_claims=True) if you trust where this file came from",
        )
    if is_safetensors:
        how = "by the source sha256 it claims (trusted on request, not verified)"
    else:
        how = "by name and sha256" if by_name else "by sha256 (renamed file)"
    imported, cached = [], []
    state: dict[str, Any] | None = None
    for entry in by_hash:
        with announced_lock(cache.lock_path(entry.name), f"writing {entry.name}"):
            check = cache.check_cached(
                entry.name, source_sha256_prefixes=accepted_prefixes(entry), source_sha256=pinned_sha256(entry)
            )
            if check.ok and check.record is not None and check.record.original_sha256 == digest:
                cached.append(entry.name)
                continue
            source = str(path.resolve())
            if is_safetensors:
                cache.store_safetensors_file(entry.name, path, source=source, source_kind="import-claimed")
            else:
                if state is None:
                    from .checkpoint import read_upstream_checkpoint

                    state = read_upstream_checkpoint(path)
                cache.store_state_dict(
                    entry.name,
                    state,
                    source=source,
                    source_kind="import",
                    original_filename=path.name,
                    original_sha256=digest,
                    original_size=path.stat().st_size,
                )
            imported.append(entry.name)
    names = tuple(e.name for e in by_hash)
    if imported:
        extra = f" (already cached: {', '.join(cached)})" if cached else ""
        done = "cached" if is_safetensors else "verified, converted, cached"
        return ImportResult(
            path, "imported", names, digest, f"recognised {how} as {', '.join(imported)}; {done}{extra}"
        )
    return ImportResult(
        path,
        "already-cached",
        names,
        digest,
        f"recognised {how} as {', '.join(cached)}; the cache already holds these weights",
    )


def import_files(paths: Iterable[str | os.PathLike[str]], *, trust_claims: bool | None = None) -> list[ImportResult]:
    """Verify, convert and cache checkpoint files (folders are searched for ``*.pth`` / ``*.safetensors``).

    A file is recognised when the first 8 hex digits of its sha256 equal an index entry's ``sha256_prefix``
    (whatever its name), so renamed files work; a file named like a known checkpoint whose hash differs is
    reported as 'mismatch'. A converted ``.safetensors`` only claims its source: 'unverified', unless
    ``trust_claims`` (default ``$SLOWONLY_ZOO_TRUST_CLAIMS``). Every file gets an :class:`ImportResult`;
    failures never stop the others.
    """
    entries = _all_entries()
    trust = config.trust_claims() if trust_claims is None else trust_claims
    results = []
    for path in _expand(paths):
        try:
            results.append(_import_one(path, entries, trust))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
            results.append(ImportResult(path, "error", (), None, f"{type(exc).__name__}: {exc}"))
    return results


# ----------------------------------------------------------------------------------------------------------
# download
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadReport:
    """Outcome for one model: ``status`` 'cached' (valid cache entry, cheap check), 'verified' (cache entry
    re-hashed in full), 'fetched' (got from ``source``), 'repaired' (a damaged cache entry was replaced) or
    'failed' (``message`` lists every source tried)."""

    name: str
    status: str
    path: Path | None
    source: str | None
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def __str__(self) -> str:
        return f"{self.status:>9}  {self.name}: {self.message}"


def download_summary(reports: Iterable[DownloadReport]) -> str:
    """One line counting ``reports`` by status, e.g. ``"101 models: 3 fetched, 97 cached, 1 failed"``."""
    reports = list(reports)
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"{len(reports)} model{'s' if len(reports) != 1 else ''}: {parts or 'nothing to do'}"


def download(
    names: Iterable[str] | None = None,
    *,
    verify: bool = False,
    progress: bool | None = None,
    offline: bool | None = None,
) -> list[DownloadReport]:
    """Fetch each model (``None``: every model with a checkpoint) into the cache; one report per name.

    ``verify=True`` re-hashes cached files in full (a damaged entry is discarded and fetched again).
    """
    from ..index import get_model_info, list_models

    reports = []
    for raw in list_models(pretrained=True) if names is None else list(names):
        try:
            entry = get_model_info(raw)
        except KeyError as exc:  # UnknownModelError carries suggestions in its message
            reports.append(DownloadReport(raw, "failed", None, None, str(exc).strip("'\"")))
            continue
        try:
            result = fetch_weights_report(entry, progress=progress, offline=offline, verify=verify)
        except WeightsNotFoundError as exc:
            reports.append(DownloadReport(entry.name, "failed", None, None, str(exc)))
            continue
        record = result.record
        if result.from_cache:
            status = "verified" if verify else "cached"
            message = f"{status} in {result.path} (from {record.source})"
        else:
            status = "repaired" if result.discarded else "fetched"
            message = (
                f"{'replaced damaged cache entry (' + result.discarded + '); ' if result.discarded else ''}"
                f"got {record.original_filename or entry.name} from {record.source}, sha256 "
                f"{record.original_sha256[:12]}… -> {result.path}"
            )
        reports.append(DownloadReport(entry.name, status, result.path, record.source, message))
    return reports
