"""Verified, resumable, lock-protected HTTP downloads.

``download_file(url, dest, sha256_prefix=...)`` streams ``url`` into ``<dest>.part`` (beside ``dest``), resumes
an interrupted ``.part`` with an HTTP ``Range`` request when the server honours it (restarts otherwise),
retries connection errors, timeouts and 5xx/429 with exponential backoff, fails at once with a clear error on
404/410/401/403 (and when the host name does not resolve), checks the sha256 prefix and only then renames the file
into place. A file lock (``<dest>.lock``) makes concurrent processes download once: the others wait (saying so)
and reuse the verified file. A disk that cannot take the bytes (full, over quota, read-only) fails at once, not
as a retried "connection lost", and the partial file is deleted so it does not keep the disk full.

What is tried, each retry with its reason and wait, and a wait for another process's lock are logged on the
``slowonly_zoo`` logger (:mod:`slowonly_zoo.progress`): the URL at INFO, retries and waits at WARNING.

Environment (arguments take precedence; see :mod:`slowonly_zoo.config`):
    SLOWONLY_ZOO_CONNECT_TIMEOUT  seconds to wait for the server to accept the connection (default 10)
    SLOWONLY_ZOO_TIMEOUT   seconds to wait for the answer and for each read once connected (default 30)
    SLOWONLY_ZOO_RETRIES   attempts after the first on transient errors (default 5)
    SLOWONLY_ZOO_BACKOFF   first backoff delay in seconds, doubled each retry, capped at 30 (default 1)
    SLOWONLY_ZOO_PROGRESS  1 / 0 to force the tqdm progress bar on / off (default: on when stderr is a TTY);
                           ``SLOWONLY_ZOO_QUIET=1`` turns it off (see :mod:`slowonly_zoo.progress`)
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from filelock import FileLock, Timeout

from .. import config
from .._fileio import commit_file
from ..errors import ChecksumMismatchError, DownloadError, HTTPAccessError
from ..progress import logger as log
from ..progress import show_progress
from .hashing import CHUNK_SIZE, hash_file_into, new_hasher, sha256_file, sha256_matches_prefix

__all__ = [
    "ChecksumMismatchError",
    "DownloadError",
    "DownloadResult",
    "HTTPAccessError",
    "announced_lock",
    "download_file",
    "progress_enabled",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 30.0
_USER_AGENT = "slowonly-zoo (+https://pypi.org/project/slowonly-zoo/)"


@dataclass(frozen=True)
class DownloadResult:
    """A verified file on disk."""

    path: Path
    sha256: str
    size: int
    url: str
    reused: bool  # True when a verified file was already there (e.g. another process downloaded it)


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to draw progress bars (:func:`slowonly_zoo.progress.show_progress`: never when quiet, else the
    argument, else ``SLOWONLY_ZOO_PROGRESS``, else whether stderr is a terminal)."""
    return show_progress(progress)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (requests and urllib3 nest the socket error several levels deep)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        stack += [cur.__cause__, cur.__context__, getattr(cur, "reason", None)]
        stack += [a for a in cur.args if isinstance(a, BaseException)]


def _name_resolution_failed(exc: BaseException) -> bool:
    """Whether a connection error was caused by a failed host name lookup."""
    return any(isinstance(c, (socket.gaierror, urllib3.exceptions.NameResolutionError)) for c in _causes(exc))


def _connection_failure(exc: BaseException, url: str) -> str:
    """A short reason for a failed connection: 'connection refused by HOST:PORT' rather than requests' paragraph."""
    from urllib.parse import urlsplit

    where = urlsplit(url).netloc
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where} (nothing listens there)"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by {where}"
    return _describe(exc)


class _Transient(Exception):
    """Internal: an attempt failed in a way worth retrying."""


def _disk_error(exc: OSError, part: Path, received: int) -> DownloadError:
    """The error for a failed write of ``part``: never retried (a full disk stays full), named as what it is."""
    room = "free space there or point SLOWONLY_ZOO_HOME at a disk with room"
    what, advice = {
        errno.ENOSPC: ("the disk is full", room),
        errno.EFBIG: ("the file is larger than this system allows", room),
        getattr(errno, "EDQUOT", errno.ENOSPC): ("the disk quota is exceeded", room),
        errno.EROFS: ("the file system is read-only", "point SLOWONLY_ZOO_HOME at a writable folder"),
    }.get(
        exc.errno or 0, ("the disk refused the write", "make the folder writable or point SLOWONLY_ZOO_HOME elsewhere")
    )
    return DownloadError(
        f"cannot write {part} after {received} bytes: {what} ({exc.strerror or exc}); the partial file was deleted: "
        f"{advice}, then run the command again"
    )


@contextmanager
def announced_lock(lock_file: str | Path, what: str) -> Iterator[None]:
    """Hold the file lock ``lock_file``; when another process holds it, log ``waiting for another process
    <what>`` (WARNING) before waiting, and how long the wait took after."""
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process %s (lock %s)", what, lock_file)
        started = time.monotonic()
        lock.acquire()
        log.warning("the other process is done (waited %.1f s); going on", time.monotonic() - started)
    try:
        yield
    finally:
        lock.release()


def _parse_content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200" -> 100
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _attempt(
    session: requests.Session, url: str, part: Path, timeout: tuple[float, float], show: bool, label: str
) -> tuple[str, int]:
    """One GET (with Range when ``part`` holds bytes). Returns (sha256, size) of the complete ``part``."""
    from ..progress import progress_bar

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
    except requests.ConnectTimeout as exc:
        raise _Transient(f"no connection to {url} within {timeout[0]:g} s (SLOWONLY_ZOO_CONNECT_TIMEOUT)") from exc
    except requests.ReadTimeout as exc:
        raise _Transient(f"connected, but no answer within {timeout[1]:g} s (SLOWONLY_ZOO_TIMEOUT)") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        if _name_resolution_failed(exc):  # no DNS (offline machine, typo'd host): retrying will not help
            raise DownloadError(
                f"cannot resolve the host of {url} (no network or DNS?): use a mirror "
                "(SLOWONLY_ZOO_MIRRORS), `slowonly-zoo import`, or SLOWONLY_ZOO_OFFLINE=1"
            ) from exc
        raise _Transient(_connection_failure(exc, url)) from exc
    with response:
        status = response.status_code
        if status in (404, 410):
            raise HTTPAccessError(f"HTTP {status} Not Found: {url}", status)
        if status in (401, 403):
            raise HTTPAccessError(
                f"HTTP {status} Forbidden: {url} (the server refuses access; check the URL or use another source)",
                status,
            )
        if status == 416:  # our partial file is not a prefix of what the server has: start over
            part.unlink(missing_ok=True)
            raise _Transient(f"HTTP 416 for a resume at byte {have}; restarting from zero")
        if status >= 500 or status in (408, 429):
            raise _Transient(f"HTTP {status} {response.reason}")
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} {response.reason} from {url}")

        hasher = new_hasher()
        if status == 206 and have and _parse_content_range_start(response.headers.get("Content-Range")) == have:
            mode = "ab"
            with open(part, "rb") as fh:
                hash_file_into(hasher, fh)
        else:
            if have:
                log.info("%s: server ignored the Range request; restarting the download", label)
            mode, have = "wb", 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        received = have
        bar = progress_bar(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            progress=show,
            leave=False,
        )
        try:
            out = open(part, mode)  # noqa: SIM115 - closed below, where a failing flush is a disk error too
        except OSError as exc:
            bar.close()
            raise _disk_error(exc, part, received) from exc
        try:
            with out:
                while True:
                    try:
                        # read1 hands over whatever has arrived, so bytes received before a drop are kept.
                        chunk = response.raw.read1(CHUNK_SIZE, decode_content=True)
                    except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
                        raise _Transient(f"connection lost after {received} bytes ({_describe(exc)})") from exc
                    if not chunk:
                        break
                    out.write(chunk)  # an OSError here is the disk's, not the connection's
                    hasher.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except OSError as exc:
            raise _disk_error(exc, part, received) from exc
        finally:
            bar.close()
        if total is not None and received != total:
            raise _Transient(f"connection closed after {received} of {total} bytes")
    return hasher.hexdigest(), received


def _matches(digest: str, prefix: str | None, full: str | None) -> bool:
    """True when ``digest`` equals ``full`` (when given; it wins) or else starts with ``prefix``."""
    if full:
        return digest.lower() == full.lower()
    return sha256_matches_prefix(digest, prefix)


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256_prefix: str | None = None,
    sha256: str | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    session: requests.Session | None = None,
    connect_timeout: float | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest`` (atomically, verified, resumable, once across processes).

    Args:
        url: http(s) URL.
        dest: final path; ``<dest>.part`` and ``<dest>.lock`` are used beside it.
        sha256_prefix: required leading hex digits of the file's sha256 (the upstream name suffix); the file is
            deleted and ``ChecksumMismatchError`` raised when they differ.
        sha256: the file's full sha256, when known; it wins over ``sha256_prefix`` (the file must match it in full).
        progress: force the progress bar on/off (default: ``progress_enabled()``).
        timeout: seconds to wait for the answer and each read (default ``$SLOWONLY_ZOO_TIMEOUT`` or 30).
        connect_timeout: seconds to wait for the connection (default ``$SLOWONLY_ZOO_CONNECT_TIMEOUT`` or 10,
            at most ``timeout``).
        retries: retries after the first attempt on transient errors (default ``$SLOWONLY_ZOO_RETRIES`` or 5).
        backoff: first retry delay in seconds, doubled each time (default ``$SLOWONLY_ZOO_BACKOFF`` or 1).

    Raises:
        HTTPAccessError: 404/410/401/403 (not retried).
        ChecksumMismatchError: the bytes do not match ``sha256`` (when given) or ``sha256_prefix``.
        DownloadError: every attempt failed (the last reason is in the message), or the disk cannot take the file
            (at once; the partial file is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    timeout = config.timeout(DEFAULT_TIMEOUT) if timeout is None else timeout
    connect_timeout = config.connect_timeout(DEFAULT_CONNECT_TIMEOUT) if connect_timeout is None else connect_timeout
    timeouts = (min(connect_timeout, timeout), timeout)
    retries = config.retries(DEFAULT_RETRIES) if retries is None else retries
    backoff = config.backoff(DEFAULT_BACKOFF) if backoff is None else backoff
    show = show_progress(progress)
    own_session = session is None
    session = session or requests.Session()
    try:
        with announced_lock(dest.with_name(dest.name + ".lock"), f"downloading {dest.name}"):
            if dest.is_file():
                digest = sha256_file(dest)
                if _matches(digest, sha256_prefix, sha256):
                    return DownloadResult(dest, digest, dest.stat().st_size, url, reused=True)
                log.warning("%s does not match sha256 %s; downloading it again", dest, sha256 or sha256_prefix)
                dest.unlink()
            last = "no attempt made"
            restarted_after_mismatch = False
            attempt = 0
            while attempt <= retries:
                if attempt:
                    delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF)
                    log.warning("%s: %s; retry %d of %d in %.1f s", url, last, attempt, retries, delay)
                    time.sleep(delay)
                attempt += 1
                resumed = part.exists() and part.stat().st_size > 0
                log.info("downloading %s%s", url, f" (resuming at byte {part.stat().st_size})" if resumed else "")
                try:
                    digest, size = _attempt(session, url, part, timeouts, show, dest.name)
                except _Transient as exc:
                    last = str(exc)
                    continue
                except DownloadError:
                    with contextlib.suppress(OSError):  # a folder that refused the write may refuse this too
                        part.unlink(missing_ok=True)
                    raise
                if not _matches(digest, sha256_prefix, sha256):
                    part.unlink(missing_ok=True)
                    if resumed and not restarted_after_mismatch:
                        # The old partial may have come from a different file: one clean retry.
                        restarted_after_mismatch = True
                        last = "sha256 mismatch after resuming; restarting from zero"
                        attempt -= 1
                        continue
                    raise ChecksumMismatchError(
                        f"sha256 {digest if sha256 else digest[:8] + '…'} of {size} bytes, expected "
                        f"{sha256 or str(sha256_prefix) + '…'}, from {url}: "
                        "the server sent a different or damaged file (it was deleted)"
                    )
                commit_file(part, dest)
                return DownloadResult(dest, digest, size, url, reused=False)
            kept = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"{url}: gave up after {attempt} attempts; last error: {last}"
                + (f". The partial file {part} ({kept} bytes) is kept and the next try resumes it." if kept else ".")
            )
    finally:
        if own_session:
            session.close()
