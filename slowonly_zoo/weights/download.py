"""Verified, resumable, lock-protected HTTP downloads.

``download_file(url, dest, sha256_prefix=...)`` streams ``url`` into ``<dest>.part`` (beside ``dest``), resumes
an interrupted ``.part`` with an HTTP ``Range`` request when the server honours it (restarts otherwise),
retries connection errors, timeouts and 5xx/429 with exponential backoff, fails at once with a clear error on
404/410/401/403 (and when the host name does not resolve), checks the sha256 prefix and only then renames the file into place. A file lock
(``<dest>.lock``) makes concurrent processes download once: the others wait and reuse the verified file.

Environment (arguments take precedence):
    SLOWONLY_ZOO_TIMEOUT   seconds to wait for the connection and for each read (default 30)
    SLOWONLY_ZOO_RETRIES   attempts after the first on transient errors (default 5)
    SLOWONLY_ZOO_BACKOFF   first backoff delay in seconds, doubled each retry, capped at 30 (default 1)
    SLOWONLY_ZOO_PROGRESS  1 / 0 to force the tqdm progress bar on / off (default: on when stderr is a TTY)
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from filelock import FileLock

from .hashing import CHUNK_SIZE, hash_file_into, new_hasher, sha256_file, sha256_matches_prefix

__all__ = [
    "ChecksumMismatchError",
    "DownloadError",
    "DownloadResult",
    "HTTPAccessError",
    "download_file",
    "progress_enabled",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 30.0
_USER_AGENT = "slowonly-zoo (+https://pypi.org/project/slowonly-zoo/)"


class DownloadError(RuntimeError):
    """A download failed; the message says why and what to try next. No file is left at the destination."""


class HTTPAccessError(DownloadError):
    """The server answered with a definitive refusal (404/410 not found, 401/403 forbidden): not retried."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes do not hash to the expected sha256 prefix (the file was deleted)."""


@dataclass(frozen=True)
class DownloadResult:
    """A verified file on disk."""

    path: Path
    sha256: str
    size: int
    url: str
    reused: bool  # True when a verified file was already there (e.g. another process downloaded it)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to draw progress bars: the argument, else ``SLOWONLY_ZOO_PROGRESS``, else stderr is a TTY."""
    if progress is not None:
        return progress
    raw = os.environ.get("SLOWONLY_ZOO_PROGRESS", "").strip().lower()
    if raw in {"0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    return sys.stderr.isatty()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _name_resolution_failed(exc: BaseException) -> bool:
    """Whether a connection error was caused by a failed host name lookup."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, (socket.gaierror, urllib3.exceptions.NameResolutionError)):
            return True
        stack += [cur.__cause__, cur.__context__, getattr(cur, "reason", None)]
        stack += [a for a in cur.args if isinstance(a, BaseException)]
    return False


class _Transient(Exception):
    """Internal: an attempt failed in a way worth retrying."""


def _parse_content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200" -> 100
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _attempt(
    session: requests.Session, url: str, part: Path, timeout: float, show_progress: bool, label: str
) -> tuple[str, int]:
    """One GET (with Range when ``part`` holds bytes). Returns (sha256, size) of the complete ``part``."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=(timeout, timeout), allow_redirects=True)
    except (requests.ConnectionError, requests.Timeout) as exc:
        if _name_resolution_failed(exc):  # no DNS (offline machine, typo'd host): retrying will not help
            raise DownloadError(
                f"cannot resolve the host of {url} (no network or DNS?): use a mirror "
                "(SLOWONLY_ZOO_MIRRORS), `slowonly-zoo import`, or SLOWONLY_ZOO_OFFLINE=1"
            ) from exc
        raise _Transient(_describe(exc)) from exc
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
        bar = tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not show_progress,
            leave=False,
        )
        try:
            with open(part, mode) as out:
                try:
                    # read1 hands over whatever has arrived, so bytes received before a drop are kept for resuming.
                    while True:
                        chunk = response.raw.read1(CHUNK_SIZE, decode_content=True)
                        if not chunk:
                            break
                        out.write(chunk)
                        hasher.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
                    raise _Transient(f"connection lost after {received} bytes ({_describe(exc)})") from exc
        finally:
            bar.close()
        if total is not None and received != total:
            raise _Transient(f"connection closed after {received} of {total} bytes")
    return hasher.hexdigest(), received


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256_prefix: str | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    session: requests.Session | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest`` (atomically, verified, resumable, once across processes).

    Args:
        url: http(s) URL.
        dest: final path; ``<dest>.part`` and ``<dest>.lock`` are used beside it.
        sha256_prefix: required leading hex digits of the file's sha256 (the upstream name suffix); the file is
            deleted and ``ChecksumMismatchError`` raised when they differ.
        progress: force the progress bar on/off (default: ``progress_enabled()``).
        timeout: connect and per-read timeout in seconds (default ``$SLOWONLY_ZOO_TIMEOUT`` or 30).
        retries: retries after the first attempt on transient errors (default ``$SLOWONLY_ZOO_RETRIES`` or 5).
        backoff: first retry delay in seconds, doubled each time (default ``$SLOWONLY_ZOO_BACKOFF`` or 1).

    Raises:
        HTTPAccessError: 404/410/401/403 (not retried).
        ChecksumMismatchError: the bytes do not match ``sha256_prefix``.
        DownloadError: every attempt failed (the last reason is in the message).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    timeout = _env_float("SLOWONLY_ZOO_TIMEOUT", DEFAULT_TIMEOUT) if timeout is None else timeout
    retries = int(_env_float("SLOWONLY_ZOO_RETRIES", DEFAULT_RETRIES)) if retries is None else retries
    backoff = _env_float("SLOWONLY_ZOO_BACKOFF", DEFAULT_BACKOFF) if backoff is None else backoff
    show = progress_enabled(progress)
    own_session = session is None
    session = session or requests.Session()
    try:
        with FileLock(str(dest.with_name(dest.name + ".lock"))):
            if dest.is_file():
                digest = sha256_file(dest)
                if sha256_matches_prefix(digest, sha256_prefix):
                    return DownloadResult(dest, digest, dest.stat().st_size, url, reused=True)
                log.warning("%s does not match sha256 %s; downloading it again", dest, sha256_prefix)
                dest.unlink()
            last = "no attempt made"
            restarted_after_mismatch = False
            attempt = 0
            while attempt <= retries:
                if attempt:
                    delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF)
                    log.info("retrying %s in %.1f s (%s)", url, delay, last)
                    time.sleep(delay)
                attempt += 1
                resumed = part.exists() and part.stat().st_size > 0
                try:
                    digest, size = _attempt(session, url, part, timeout, show, dest.name)
                except _Transient as exc:
                    last = str(exc)
                    continue
                except DownloadError:
                    part.unlink(missing_ok=True)
                    raise
                if not sha256_matches_prefix(digest, sha256_prefix):
                    part.unlink(missing_ok=True)
                    if resumed and not restarted_after_mismatch:
                        # The old partial may have come from a different file: one clean retry.
                        restarted_after_mismatch = True
                        last = "sha256 mismatch after resuming; restarting from zero"
                        attempt -= 1
                        continue
                    raise ChecksumMismatchError(
                        f"{url} downloaded {size} bytes with sha256 {digest[:8]}…, expected {sha256_prefix}…: "
                        "the server sent a different or damaged file (it was deleted)"
                    )
                os.replace(part, dest)
                return DownloadResult(dest, digest, size, url, reused=False)
            raise DownloadError(
                f"{url}: gave up after {attempt} attempts; last error: {last}. "
                "The partial file is kept and the next try resumes it."
            )
    finally:
        if own_session:
            session.close()
