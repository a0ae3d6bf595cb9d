"""Atomic file writes: the one way slowonly-zoo puts a file in place.

A file is written to a temporary file in the destination's folder, flushed to disk (``fsync``), given the
permission bits ``open()`` would give under the process umask (``mkstemp`` alone gives 0o600), renamed over the
destination with ``os.replace`` (atomic on POSIX and Windows within one file system), and the folder is
``fsync``-ed so the rename survives a power loss. A reader therefore sees the old file or the new one, never half
of one; a crash leaves at most a temporary file behind, named ``.{name}.slowonly-tmp-XXXXXXXX``, which
:func:`is_temp_file` recognises (so a cache sweep can delete them) and which no reader mistakes for output.

    >>> from slowonly_zoo._fileio import atomic_write_text
    >>> atomic_write_text(path, "{}\\n")  # doctest: +SKIP
    >>> with atomic_replace(path) as tmp:  # a writer that wants a file name (safetensors, numpy)  # doctest: +SKIP
    ...     save_file(tensors, str(tmp))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "FILE_MODE",
    "TEMP_MARKER",
    "atomic_replace",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit_file",
    "is_temp_file",
]

#: What every temporary file name contains (after a leading dot and the destination's name).
TEMP_MARKER = ".slowonly-tmp-"


def _umask_file_mode() -> int:
    """0o666 minus the process umask (what ``open()`` would give), read without changing the umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:  # Linux; os.umask() would change it process-wide
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


#: Permission bits given to every file written here: what ``open()`` gives under the umask at import time.
FILE_MODE = _umask_file_mode()


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a temporary file left by an interrupted :func:`atomic_replace` (safe to delete)."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARKER in name


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself has happened
        pass
    finally:
        os.close(fd)


def commit_file(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, mode: int | None = FILE_MODE) -> Path:
    """Put the finished file ``src`` in place as ``dest``: fsync it, set ``mode`` (None: leave it), rename, fsync
    the folder. ``src`` must be on the same file system as ``dest`` (in practice: in the same folder)."""
    src, dest = Path(src), Path(dest)
    with open(src, "rb") as fh:
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(src, mode)
    os.replace(src, dest)
    _fsync_folder(dest.parent)
    return dest


@contextmanager
def atomic_replace(path: str | os.PathLike[str], *, mode: int | None = FILE_MODE) -> Iterator[Path]:
    """Yield the path of an empty temporary file beside ``path``; when the block ends without an error, the file
    replaces ``path`` (see :func:`commit_file`). On an error the temporary file is deleted and ``path`` is left
    as it was. The destination's folder must exist."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARKER}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        commit_file(tmp, path, mode=mode)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically (readers see the old content or the new, never a part)."""
    path = Path(path)
    with atomic_replace(path, mode=mode) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", mode: int | None = FILE_MODE
) -> Path:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding`` (no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)
