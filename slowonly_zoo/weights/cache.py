"""The local weights cache: converted ``.safetensors`` files plus a JSON record each.

Layout under the cache root (``$SLOWONLY_ZOO_HOME``, default ``$XDG_CACHE_HOME/slowonly_zoo`` or
``~/.cache/slowonly_zoo``)::

    weights/<name>.safetensors   converted zoo-layout tensors; metadata: name, source sha256, converter version
    weights/<name>.json          the record (source, sha256 + size of the original and of the converted file, time)
    downloads/<file>.part        downloads in progress (resumed with HTTP Range); verified originals land beside
    locks/<name>.lock            one file lock per model, held while a process fetches it

An entry is valid only when both files exist. The record is written last, so an interrupted write leaves
no valid entry behind. Files are only ever read with ``safetensors.safe_open`` (never unpickled).

Checks: the cheap check (every use) compares the file size and the safetensors metadata with the record;
the full check (``slowonly-zoo download --verify``) re-hashes the file against the recorded sha256.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hashing import sha256_file, sha256_matches_prefix

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
    "downloads_dir",
    "lock_path",
    "read_record",
    "read_safetensors_metadata",
    "record_path",
    "remove_entry",
    "store_safetensors_file",
    "store_state_dict",
    "weights_path",
]

#: Environment variable naming the cache root.
ENV_HOME = "SLOWONLY_ZOO_HOME"
#: Version of the JSON record layout.
RECORD_FORMAT = 1

# Keys of the string metadata stored in every converted / exported .safetensors header.
META_NAME = "slowonly_zoo.name"
META_SOURCE_SHA256 = "slowonly_zoo.source_sha256"
META_SOURCE_FILENAME = "slowonly_zoo.source_filename"
META_CONVERTER_VERSION = "slowonly_zoo.converter_version"


def cache_root() -> Path:
    """The cache root: ``$SLOWONLY_ZOO_HOME``, else ``$XDG_CACHE_HOME/slowonly_zoo``, else ``~/.cache/slowonly_zoo``."""
    explicit = os.environ.get(ENV_HOME)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "slowonly_zoo"


def _check_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"not a valid model name for the cache: {name!r}")
    return name


def weights_path(name: str) -> Path:
    """Where the converted weights of model ``name`` live (whether or not they exist yet)."""
    return cache_root() / "weights" / f"{_check_name(name)}.safetensors"


def record_path(name: str) -> Path:
    """Where the JSON record of model ``name`` lives."""
    return cache_root() / "weights" / f"{_check_name(name)}.json"


def downloads_dir() -> Path:
    """Folder for downloads in progress and verified originals awaiting conversion (created on demand)."""
    path = cache_root() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_path(key: str) -> Path:
    """The lock file guarding model (or file) ``key``; its folder is created on demand."""
    path = cache_root() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{_check_name(key)}.lock"


def converter_version() -> str:
    """Version string of the upstream→zoo key converter."""
    from .convert import CONVERTER_VERSION

    return CONVERTER_VERSION


@dataclass(frozen=True)
class CacheRecord:
    """What is known about one cached, converted checkpoint."""

    name: str
    source: str  # URL, local path or hf://repo@commit the original came from
    source_kind: str  # 'upstream' | 'mirror' | 'hf' | 'import'
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


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` header (read with ``safe_open``; no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def check_cached(name: str, *, source_sha256_prefixes: Sequence[str] = (), full: bool = False) -> CacheCheck:
    """Look ``name`` up in the cache.

    Cheap check (default): record and file exist, the size equals the recorded size, and the header metadata
    names the same model and original sha256 as the record; with ``source_sha256_prefixes`` the original must
    also match one of the index's hash prefixes. ``full=True`` additionally re-hashes the whole file.
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
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        return CacheCheck(name, None, record, f"{path} is not a readable safetensors file ({exc})")
    if meta.get(META_NAME) != record.name or meta.get(META_SOURCE_SHA256) != record.original_sha256:
        return CacheCheck(name, None, record, f"{path} metadata does not match its record")
    if source_sha256_prefixes and not any(
        sha256_matches_prefix(record.original_sha256, p) for p in source_sha256_prefixes
    ):
        return CacheCheck(
            name,
            None,
            record,
            f"cached weights come from a file with sha256 {record.original_sha256[:8]}…, "
            f"the index expects {' or '.join(source_sha256_prefixes)}",
        )
    if full:
        digest = sha256_file(path)
        if digest != record.sha256:
            return CacheCheck(
                name, None, record, f"{path} sha256 {digest[:12]}… differs from recorded {record.sha256[:12]}…"
            )
    return CacheCheck(name, path, record, None)


def remove_entry(name: str) -> None:
    """Delete the cached weights and record of ``name`` (record first, so no half entry looks valid)."""
    for path in (record_path(name), weights_path(name)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _file_mode() -> int:
    """0o666 minus the process umask (what ``open()`` would give); ``mkstemp`` alone gives 0o600."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:  # Linux: read without changing it
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


#: Permission bits given to cache (and export) files: what ``open()`` would give under the current umask.
FILE_MODE = _file_mode()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _commit(
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
    """Move a finished temp file into place and write its record (the record last)."""
    final = weights_path(name)
    record_path(name).unlink(missing_ok=True)  # an old record must not vouch for the new file
    record = CacheRecord(
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
    os.chmod(tmp_file, FILE_MODE)
    os.replace(tmp_file, final)
    _atomic_write_text(record_path(name), record.to_json())
    return record


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
    """Write a converted (zoo-layout) state dict into the cache as ``.safetensors`` with metadata and a record."""
    from safetensors.torch import save_file

    conv_version = converter_version()
    folder = weights_path(name).parent
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    metadata = {
        "format": "pt",
        META_NAME: name,
        META_SOURCE_SHA256: original_sha256,
        META_SOURCE_FILENAME: original_filename,
        META_CONVERTER_VERSION: conv_version,
    }
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".safetensors.tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        save_file(tensors, str(tmp_path), metadata=metadata)
        return _commit(
            name,
            tmp_path,
            source=source,
            source_kind=source_kind,
            original_filename=original_filename,
            original_sha256=original_sha256,
            original_size=original_size,
            conv_version=conv_version,
        )
    finally:
        tmp_path.unlink(missing_ok=True)


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
    tmp_path = folder / f".{name}.{os.getpid()}.{time.monotonic_ns()}.safetensors.tmp"
    try:
        try:
            if not link:
                raise OSError("copy requested")
            os.link(Path(src).resolve(), tmp_path)
        except OSError:
            shutil.copyfile(src, tmp_path)
        return _commit(
            name,
            tmp_path,
            source=source,
            source_kind=source_kind,
            original_filename=meta.get(META_SOURCE_FILENAME, ""),
            original_sha256=original_sha256,
            original_size=original_size,
            conv_version=meta.get(META_CONVERTER_VERSION, "unknown"),
        )
    finally:
        tmp_path.unlink(missing_ok=True)
