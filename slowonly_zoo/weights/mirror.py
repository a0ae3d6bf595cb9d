"""``slowonly-zoo mirror``: a folder laid out like the upstream hosts, holding the original files of cached models
and their lock file, ready for any static web server and ``SLOWONLY_ZOO_MIRRORS``.

A mirror must serve the **original** upstream bytes: a client fetching from it (:mod:`.sources`) hashes the file it
receives against the index's sha256 prefix, full hash, first-use pin or lock before converting it, so a converted
``.safetensors`` would fail that check (and a converted file can only *claim* its source, see
``SLOWONLY_ZOO_TRUST_CLAIMS``). The cache itself keeps only converted files, so the originals come from where they
are still kept:

* ``<cache root>/downloads/<file>``: what was downloaded with ``SLOWONLY_ZOO_KEEP_DOWNLOADS=1``;
* the file an ``import`` (or a folder mirror) read, when it is still where it was.

One is used only when its size and full sha256 equal the cache record's (hashed while it is copied). A model with
no such file is refused, before anything is written, saying how to get it.

Layout: each file goes where :func:`.sources.mirror_candidates` looks first, the path of the entry's URL below the
folder (``https://download.openmmlab.com/<path>`` -> ``DIR/<path>``, FAIR's
``https://dl.fbaipublicfiles.com/<path>`` -> ``DIR/<path>``), and the lock (:mod:`.lockfile` format) is
``DIR/weights.lock``; an earlier lock there is merged (this run's models replace their old lines), so a mirror can
grow one model at a time. Files are copied, not hard-linked: the folder is meant to be served, synced and edited on
its own, and a link would let a change on one side alter the other. Each copy is atomic
(:mod:`slowonly_zoo._fileio`) and shows a progress bar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._fileio import atomic_replace
from ..errors import MirrorError, WeightsFileError
from ..progress import logger as log
from ..progress import progress_bar
from . import cache, lockfile
from .hashing import CHUNK_SIZE, new_hasher, sha256_file
from .sources import accepted_prefixes, mirror_candidates, pinned_sha256, pinned_size

if TYPE_CHECKING:
    from ..index import ModelEntry

__all__ = ["LOCK_NAME", "MirrorResult", "MirroredFile", "cached_names", "kept_original", "mirror", "mirror_path"]

#: The lock file written at the top of a mirror folder.
LOCK_NAME = "weights.lock"


@dataclass(frozen=True)
class MirroredFile:
    """One model's original in the mirror: ``status`` is 'written', 'replaced' (``force``) or 'unchanged' (the
    folder already held these bytes)."""

    name: str
    path: Path
    original: Path | None  # the kept original it was copied from; None when nothing was copied
    sha256: str
    size: int
    status: str


@dataclass(frozen=True)
class MirrorResult:
    """What :func:`mirror` put into ``root``."""

    root: Path
    files: tuple[MirroredFile, ...]
    lock: Path


@dataclass(frozen=True)
class _Plan:
    entry: ModelEntry
    record: cache.CacheRecord
    dest: Path
    original: Path | None  # None: the destination already holds the bytes
    status: str


def cached_names() -> list[str]:
    """Every model with a cache record (valid or not), sorted; the names ``mirror --all`` starts from."""
    folder = cache.cache_root() / "weights"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))


def mirror_path(root: str | os.PathLike[str], entry: ModelEntry) -> Path:
    """Where the original of ``entry`` goes below ``root``: the first candidate a folder mirror is searched for
    (:func:`.sources.mirror_candidates`), so a client finds it there. A URL whose path would leave ``root`` is
    refused."""
    ck = entry.checkpoint
    if ck is None:
        raise MirrorError(f"{entry.name!r} has no checkpoint of its own, so there is no file to mirror")
    base = Path(os.path.abspath(root))
    _, candidates = mirror_candidates(str(base), ck.url, ck.filename)
    path = Path(os.path.normpath(candidates[0]))
    if path == base or not path.is_relative_to(base):
        raise MirrorError(f"the URL of {entry.name!r} ({ck.url}) has no path that stays inside {base}; fix the entry")
    return path


def kept_original(entry: ModelEntry, record: cache.CacheRecord) -> Path | None:
    """A file still on this machine that should hold the original of ``entry``'s cached weights (same size as the
    record says; the hash is checked while copying), or None when none was kept."""
    ck = entry.checkpoint
    places: list[Path] = []
    for filename in dict.fromkeys(f for f in (record.original_filename, ck.filename if ck else "") if f):
        try:
            places.append(cache.path_in_cache("downloads", filename))
        except WeightsFileError:  # a name that is no plain file name was never downloaded there
            continue
    if "://" not in record.source:  # imported (or read from a folder mirror) from this local path
        places.append(Path(record.source))
    for path in places:
        if record.original_size is not None and path.is_file() and path.stat().st_size == record.original_size:
            return path
    return None


def _entries(names: Sequence[str] | None) -> list[ModelEntry]:
    from ..index import get_model_info

    if names is not None:
        return list({e.name: e for e in (get_model_info(n) for n in names)}.values())
    entries = []
    for name in cached_names():
        try:
            entries.append(get_model_info(name))
        except KeyError:  # e.g. an entry of an extra index that is not loaded now: its URL is unknown here
            log.warning("mirror --all: %s is cached but not in the index now; left out", name)
    if not entries:
        raise MirrorError("nothing is cached, so there is nothing to mirror; run `slowonly-zoo download NAME` first")
    return entries


def _missing_original_line(entry: ModelEntry, record: cache.CacheRecord) -> str:
    filename = record.original_filename or (entry.checkpoint.filename if entry.checkpoint else entry.name)
    return (
        f"  {entry.name}: {filename} (sha256 {record.original_sha256}, from {record.source}): copy it to "
        f"{cache.downloads_dir() / filename}, or fetch it again keeping it: delete {cache.record_path(entry.name)} "
        f"and run `SLOWONLY_ZOO_KEEP_DOWNLOADS=1 slowonly-zoo download {entry.name}`"
    )


def _plan(entries: Sequence[ModelEntry], root: Path, force: bool) -> list[_Plan]:
    """Check everything before writing anything: each model cached and valid, its original kept, its place in the
    folder free (or holding the same bytes, or ``force``)."""
    uncached: list[str] = []
    not_kept: list[str] = []
    conflicts: list[str] = []
    plans: list[_Plan] = []
    taken: dict[Path, _Plan] = {}
    for entry in entries:
        if entry.checkpoint is None:
            uncached.append(f"{entry.name} (no checkpoint of its own)")
            continue
        check = cache.check_cached(
            entry.name,
            source_sha256_prefixes=accepted_prefixes(entry),
            source_sha256=pinned_sha256(entry),
            source_size=pinned_size(entry),
            quick=True,  # the original is hashed while it is copied; the converted file is not served
        )
        if not check.ok or check.record is None:
            uncached.append(f"{entry.name} ({check.problem})")
            continue
        record = check.record
        dest = mirror_path(root, entry)
        earlier = taken.get(dest)
        if earlier is not None:
            if earlier.record.original_sha256 != record.original_sha256:
                conflicts.append(f"{entry.name} and {earlier.entry.name} both map to {dest} with different files")
            continue  # the same file serves both
        if dest.exists():
            same = (
                dest.is_file()
                and dest.stat().st_size == record.original_size
                and sha256_file(dest) == record.original_sha256
            )
            if same:
                plan = _Plan(entry, record, dest, None, "unchanged")
                plans.append(plan)
                taken[dest] = plan
                continue
            if not force or not dest.is_file():
                fix = "; pass --force (force=True) to replace it" if dest.is_file() else ""
                conflicts.append(
                    f"{dest} is already there and is not the original of {entry.name} "
                    f"(sha256 {record.original_sha256}){fix}"
                )
                continue
        original = kept_original(entry, record)
        if original is None:
            not_kept.append(_missing_original_line(entry, record))
            continue
        plan = _Plan(entry, record, dest, original, "replaced" if dest.exists() else "written")
        plans.append(plan)
        taken[dest] = plan
    problems = []
    if uncached:
        names = " ".join(u.split(" ", 1)[0] for u in uncached)
        problems.append(f"not in the cache: {'; '.join(uncached)}. Run `slowonly-zoo download {names}` first.")
    if not_kept:
        problems.append(
            "the cache holds only the converted weights of these models, not their original files, and a mirror "
            "must serve the originals (a client hashes what it downloads before converting it):\n" + "\n".join(not_kept)
        )
    if conflicts:
        problems.append("; ".join(conflicts) + ".")
    if problems:
        raise MirrorError("nothing was written to the mirror: " + "\n".join(problems))
    return plans


def _copy_verified(src: Path, dest: Path, sha256: str, size: int, progress: bool | None) -> None:
    """Copy ``src`` to ``dest`` atomically, hashing the bytes as they go; a different file leaves ``dest`` as it
    was."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = new_hasher()
    copied = 0
    with atomic_replace(dest) as tmp:
        with (
            open(src, "rb") as fin,
            open(tmp, "wb") as fout,
            progress_bar(
                total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, progress=progress
            ) as bar,
        ):
            while block := fin.read(CHUNK_SIZE):
                hasher.update(block)
                fout.write(block)
                copied += len(block)
                bar.update(len(block))
        digest = hasher.hexdigest()
        if digest != sha256 or copied != size:
            raise MirrorError(
                f"{src} changed since it was cached: sha256 {digest} of {copied} bytes, the cache record says "
                f"{sha256} of {size} bytes; nothing was written to {dest}"
            )


def _earlier_lock(lock: Path, force: bool) -> dict[str, lockfile.LockedFile]:
    """The models an earlier lock in the folder lists (merged into the new one); an unreadable one is refused
    unless ``force`` (then it is replaced)."""
    if not lock.exists():
        return {}
    try:
        return lockfile.read_lock(lock)
    except WeightsFileError as exc:
        if force:
            log.warning("mirror: replacing the unreadable lock file %s", lock)
            return {}
        raise MirrorError(f"nothing was written to the mirror: {exc}; or pass --force to replace it") from None


def mirror(
    root: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    *,
    force: bool = False,
    progress: bool | None = None,
) -> MirrorResult:
    """Write the original files of the cached models ``names`` (None: every cached model in the index) into
    ``root`` laid out like their upstream hosts, plus ``root/weights.lock``; see the module docstring.

    Raises:
        MirrorError: a model is not cached (or its cache entry is invalid), its original file was not kept, or
            its place in ``root`` holds another file (without ``force``); nothing is written then.
        UnknownModelError: a name is not in the index.
    """
    base = Path(os.path.abspath(root))
    lock = base / LOCK_NAME
    models = _earlier_lock(lock, force)
    plans = _plan(_entries(names), base, force)
    files = []
    for plan in plans:
        rec = plan.record
        size = int(rec.original_size or 0)
        if plan.original is not None:
            log.info("mirror: %s -> %s", plan.original, plan.dest)
            _copy_verified(plan.original, plan.dest, rec.original_sha256, size, progress)
        files.append(MirroredFile(plan.entry.name, plan.dest, plan.original, rec.original_sha256, size, plan.status))
    for plan in plans:
        rec = plan.record
        filename = rec.original_filename or plan.dest.name
        models[plan.entry.name] = lockfile.LockedFile(filename, rec.original_sha256, int(rec.original_size or 0))
    base.mkdir(parents=True, exist_ok=True)
    lockfile.write_lock_file(models, lock)
    return MirrorResult(base, tuple(files), lock)
