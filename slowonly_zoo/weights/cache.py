"""The local weights cache: converted ``.safetensors`` files plus a JSON record each.

Layout under the cache root (``$SLOWONLY_ZOO_HOME``, default ``$XDG_CACHE_HOME/slowonly_zoo`` or
``~/.cache/slowonly_zoo``)::

    weights/<name>.safetensors   converted zoo-layout tensors; metadata: name, source sha256, converter version
    weights/<name>.json          the record (source, sha256 + size of the original and of the converted file, time)
    downloads/<file>.part        downloads in progress (resumed with HTTP Range); verified originals land beside
    locks/<name>.lock            one file lock per model, held while a process fetches it

An entry is valid only when both files exist. The record is written last, so an interrupted write leaves
no valid entry behind. Files are only ever read with ``safetensors.safe_open`` (never unpickled).

Checks (:func:`check_cached`): every use compares the file size and the safetensors metadata with the record,
and the first use of a file in a process also re-hashes it against the recorded sha256 (remembered per file
identity: path, inode, size, modification time; about 0.2 s for a 128 MB file); ``slowonly-zoo download
--verify`` re-hashes it again whatever this process has seen (``quick=True``, used by ``slowonly-zoo list``,
skips the hash).

Every path written here stays inside the cache root: model names and file names (they come from an index, which
may be a user's extra index) must be plain names, and the joined path is checked again (:func:`path_in_cache`).
Temporary files are named by :mod:`slowonly_zoo._fileio`, so a process holding a model's lock sweeps the
temporaries that a killed process left for that model (:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from .._fileio import FILE_MODE, TEMP_MARKER, atomic_replace, atomic_write_text, is_temp_file
from ..errors import WeightsFileError
from .hashing import sha256_file, sha256_matches_prefix
from .layout import (
    META_CONVERTER_VERSION,
    META_NAME,
    META_SOURCE_FILENAME,
    META_SOURCE_SHA256,
    read_safetensors_metadata,
)

__all__ = [
    "FILE_MODE",
    "META_CONVERTER_VERSION",
    "META_NAME",
    "META_SOURCE_FILENAME",
    "META_SOURCE_SHA256",
    "RECORD_FORMAT",
    "CacheCheck",
    "CacheRecord",
    "cache_root",
    "check_cached",
    "converter_version",
    "download_path",
    "downloads_dir",
    "lock_path",
    "path_in_cache",
    "read_record",
    "read_safetensors_metadata",
    "record_path",
    "remove_entry",
    "remove_stale_temp_files",
    "store_safetensors_file",
    "store_state_dict",
    "weights_path",
]

#: Version of the JSON record layout.
RECORD_FORMAT = 1


def cache_root() -> Path:
    """The cache root: ``$SLOWONLY_ZOO_HOME``, else ``$XDG_CACHE_HOME/slowonly_zoo``, else ``~/.cache/slowonly_zoo``."""
    return config.home()


def _check_name(name: str) -> str:
    from ..index.schema import is_plain_filename

    if not is_plain_filename(name):
        raise WeightsFileError(
            f"{name!r} is not a plain file name, so it cannot name a file in the weights cache; "
            "fix the index entry (no folder, no '..', not absolute, no leading dot)"
        )
    return name


def path_in_cache(folder: str, filename: str) -> Path:
    """``<cache root>/<folder>/<filename>``, refusing (``WeightsFileError``) any ``filename`` that is not a plain
    name or a result that would lie outside the cache root (defence in depth: the index validates file names
    at load)."""
    root = Path(os.path.abspath(cache_root()))
    path = Path(os.path.normpath(root / folder / _check_name(filename)))
    if path.parent != Path(os.path.normpath(root / folder)) or not path.is_relative_to(root):
        raise WeightsFileError(f"{filename!r} would put a file outside the weights cache {root}; fix the index entry")
    return path


def weights_path(name: str) -> Path:
    """Where the converted weights of model ``name`` live (whether or not they exist yet)."""
    return path_in_cache("weights", f"{_check_name(name)}.safetensors")


def record_path(name: str) -> Path:
    """Where the JSON record of model ``name`` lives."""
    return path_in_cache("weights", f"{_check_name(name)}.json")


def downloads_dir() -> Path:
    """Folder for downloads in progress and verified originals awaiting conversion (created on demand)."""
    path = cache_root() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def download_path(filename: str) -> Path:
    """Where the download of the upstream file ``filename`` goes (its ``.part`` and ``.lock`` lie beside it);
    ``filename`` must be a plain name (see :func:`path_in_cache`)."""
    path = path_in_cache("downloads", filename)
    downloads_dir()
    return path


def lock_path(key: str) -> Path:
    """The lock file guarding model (or file) ``key``; its folder is created on demand."""
    path = path_in_cache("locks", f"{_check_name(key)}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def converter_version() -> str:
    """Version string of the upstream→zoo key converter."""
    from .convert import CONVERTER_VERSION

    return CONVERTER_VERSION


@dataclass(frozen=True)
class CacheRecord:
    """What is known about one cached, converted checkpoint."""

    name: str
    source: str  # URL, local path or hf://repo@commit the original came from
    source_kind: str  # 'upstream' | 'origin' | 'mirror' | 'hf' | 'import'
    original_filename: str
    original_sha256: str  # full sha256 of the original (upstream .pth) file
    original_size: int | None
    sha256: str  # full sha256 of the converted .safetensors file
    size: int
    created: str  # ISO-8601 UTC
    converter_version: str
    format: int = RECORD_FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CacheRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = fields - set(data) - {"format", "original_size"}
        if missing:
            raise ValueError(f"cache record lacks {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclass(frozen=True)
class CacheCheck:
    """Outcome of looking a model up in the cache: ``path`` is set only when the entry passed the check."""

    name: str
    path: Path | None
    record: CacheRecord | None
    problem: str | None  # why the entry is absent or invalid; None when valid

    @property
    def ok(self) -> bool:
        return self.path is not None


def read_record(name: str) -> CacheRecord | None:
    """The record of ``name``, or None when absent or unreadable."""
    try:
        return CacheRecord.from_mapping(json.loads(record_path(name).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


#: Files this process has re-hashed against their record: (path, inode, size, mtime_ns) -> the sha256 found.
_HASHED: dict[tuple[str, int, int, int], str] = {}


def _file_identity(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def check_cached(
    name: str,
    *,
    source_sha256_prefixes: Sequence[str] = (),
    source_sha256: str | None = None,
    source_size: int | None = None,
    full: bool = False,
    quick: bool = False,
) -> CacheCheck:
    """Look ``name`` up in the cache.

    Always: record and file exist, the size equals the recorded size, and the header metadata names the same
    model and original sha256 as the record; with ``source_sha256_prefixes`` the original must also match one
    of the index's hash prefixes, and with ``source_sha256`` (a full hash; it wins over the prefixes) equal it
    (``source_size``: the original's recorded size must equal it too).
    Then the file is re-hashed against the record's sha256 the first time this
    process sees it (same path, inode, size and modification time afterwards: not again); ``full=True`` re-hashes
    it whatever was seen before, ``quick=True`` skips the hash (listing what is cached, not loading it).
    """
    path, record = weights_path(name), read_record(name)
    if record is None:
        if record_path(name).exists():
            return CacheCheck(name, None, None, f"unreadable cache record {record_path(name)}")
        return CacheCheck(name, None, None, f"not in the cache ({path})")
    if not path.is_file():
        return CacheCheck(name, None, record, f"cache record present but {path} is missing")
    size = path.stat().st_size
    if size != record.size:
        return CacheCheck(name, None, record, f"{path} has {size} bytes, the record says {record.size}")
    try:
        meta = read_safetensors_metadata(path)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged headers
        return CacheCheck(name, None, record, f"{path} is not a readable safetensors file ({exc})")
    if meta.get(META_NAME) != record.name or meta.get(META_SOURCE_SHA256) != record.original_sha256:
        return CacheCheck(name, None, record, f"{path} metadata does not match its record")
    if source_sha256 and record.original_sha256 != source_sha256:
        return CacheCheck(
            name,
            None,
            record,
            f"cached weights come from a file with sha256 {record.original_sha256}, "
            f"the pinned full sha256 is {source_sha256}",
        )
    if source_size is not None and record.original_size != source_size:
        return CacheCheck(
            name,
            None,
            record,
            f"cached weights come from a file of {record.original_size} bytes, {source_size} bytes are pinned",
        )
    if (
        not source_sha256
        and source_sha256_prefixes
        and not any(sha256_matches_prefix(record.original_sha256, p) for p in source_sha256_prefixes)
    ):
        return CacheCheck(
            name,
            None,
            record,
            f"cached weights come from a file with sha256 {record.original_sha256[:8]}…, "
            f"the index expects {' or '.join(source_sha256_prefixes)}",
        )
    if quick:
        return CacheCheck(name, path, record, None)
    identity = _file_identity(path)
    digest = None if full else _HASHED.get(identity)
    if digest is None:
        digest = sha256_file(path)
        _HASHED[identity] = digest
    if digest != record.sha256:
        return CacheCheck(
            name, None, record, f"{path} sha256 {digest} differs from recorded {record.sha256} (damaged or replaced)"
        )
    return CacheCheck(name, path, record, None)


def remove_entry(name: str) -> None:
    """Delete the cached weights and record of ``name`` (record first, so no half entry looks valid)."""
    for path in (record_path(name), weights_path(name)):
        path.unlink(missing_ok=True)


#: Temporary files older than this (seconds) are left over from a killed process; younger ones may be in use.
STALE_TEMP_AGE = 24 * 3600.0

#: Temporaries that earlier versions left in ``weights/``: safetensors' own ``.tmpXXXXXX`` (its ``save_file``) and
#: ``.<name>.<random>.safetensors.tmp``; nothing writes these names now, so they are swept by age like the others.
_LEGACY_TEMP = re.compile(r"^\.(tmp[A-Za-z0-9]{6,}|[^/]+\.safetensors\.tmp)$")


def remove_stale_temp_files(max_age: float = STALE_TEMP_AGE, *, name: str | None = None) -> list[Path]:
    """Delete the temporary files (see :func:`slowonly_zoo._fileio.is_temp_file`) that killed processes left in
    the cache's ``weights/`` folder; returns what was deleted.

    With ``name`` (the caller holds ``lock_path(name)``, so no live process is writing that model): every
    temporary file of that model's weights and record, whatever its age. Others: those older than ``max_age``
    seconds. Partial downloads (``downloads/*.part``) are kept: the next download resumes them."""
    folder = cache_root() / "weights"
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    cutoff = time.time() - max_age
    own = () if name is None else tuple(f".{_check_name(name)}{ext}{TEMP_MARKER}" for ext in (".safetensors", ".json"))
    for path in folder.iterdir():
        try:
            if not (is_temp_file(path) or _LEGACY_TEMP.match(path.name)):
                continue
            if (own and path.name.startswith(own)) or path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another process swept it first
            continue
    return removed


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _record_for(
    name: str,
    tmp_file: Path,
    *,
    source: str,
    source_kind: str,
    original_filename: str,
    original_sha256: str,
    original_size: int | None,
    conv_version: str,
) -> CacheRecord:
    """The record of a finished temp file about to replace the cached weights; drops the old record first, so
    it cannot vouch for the new file. The caller writes the new record once the file is in place."""
    record_path(name).unlink(missing_ok=True)
    return CacheRecord(
        name=name,
        source=source,
        source_kind=source_kind,
        original_filename=original_filename,
        original_sha256=original_sha256,
        original_size=original_size,
        sha256=sha256_file(tmp_file),
        size=tmp_file.stat().st_size,
        created=_now(),
        converter_version=conv_version,
    )


def store_state_dict(
    name: str,
    state_dict: Mapping[str, Any],
    *,
    source: str,
    source_kind: str,
    original_filename: str,
    original_sha256: str,
    original_size: int | None,
) -> CacheRecord:
    """Write a converted (zoo-layout) state dict into the cache as ``.safetensors`` with metadata and a record.

    The caller holds ``lock_path(name)``: temporary files a killed writer left for ``name`` are deleted first."""
    from .checkpoint import save_safetensors

    conv_version = converter_version()
    folder = weights_path(name).parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(name=name)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    metadata = {
        "format": "pt",
        META_NAME: name,
        META_SOURCE_SHA256: original_sha256,
        META_SOURCE_FILENAME: original_filename,
        META_CONVERTER_VERSION: conv_version,
    }
    with atomic_replace(weights_path(name)) as tmp_path:
        save_safetensors(tensors, tmp_path, metadata)  # no safetensors-made temporary beside it
        record = _record_for(
            name,
            tmp_path,
            source=source,
            source_kind=source_kind,
            original_filename=original_filename,
            original_sha256=original_sha256,
            original_size=original_size,
            conv_version=conv_version,
        )
    atomic_write_text(record_path(name), record.to_json())  # the record last: only now is the entry valid
    return record


def store_safetensors_file(
    name: str, src: str | Path, *, source: str, source_kind: str, original_size: int | None = None, link: bool = False
) -> CacheRecord:
    """Put an already converted ``.safetensors`` (an export / Hub file carrying our metadata) into the cache.

    The file is copied (``link=True``: hard-linked when possible, e.g. from the Hugging Face cache, whose
    blobs are never modified in place). Its metadata must name the original's sha256.
    """
    meta = read_safetensors_metadata(src)
    original_sha256 = meta.get(META_SOURCE_SHA256)
    if not original_sha256:
        raise ValueError(f"{src} has no '{META_SOURCE_SHA256}' metadata; re-create it with `slowonly-zoo export`")
    if meta.get(META_NAME) != name:
        # Keep the header truthful for the cache's cheap check: rewrite it under this name.
        from safetensors.torch import load_file

        state = load_file(str(src))
        return store_state_dict(
            name,
            state,
            source=source,
            source_kind=source_kind,
            original_filename=meta.get(META_SOURCE_FILENAME, ""),
            original_sha256=original_sha256,
            original_size=original_size,
        )
    folder = weights_path(name).parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(name=name)
    # A hard link keeps its source's permission bits (a Hugging Face cache blob's): leave them as they are.
    linked = False
    with atomic_replace(weights_path(name), mode=None) as tmp_path:
        if link:
            tmp_path.unlink()
            try:
                os.link(Path(src).resolve(), tmp_path)
                linked = True
            except OSError:  # another file system, or links not supported: copy instead
                pass
        if not linked:
            shutil.copyfile(src, tmp_path)
            os.chmod(tmp_path, FILE_MODE)
        record = _record_for(
            name,
            tmp_path,
            source=source,
            source_kind=source_kind,
            original_filename=meta.get(META_SOURCE_FILENAME, ""),
            original_sha256=original_sha256,
            original_size=original_size,
            conv_version=meta.get(META_CONVERTER_VERSION, "unknown"),
        )
    atomic_write_text(record_path(name), record.to_json())
    return record
