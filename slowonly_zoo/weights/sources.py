"""Where weights come from: cache → Hugging Face Hub → user mirrors → upstream URL → origins, verified at every step.

``fetch_weights(entry)`` returns the path of a verified, converted ``.safetensors`` in the local cache
(see :mod:`.cache`), trying in order until one source verifies:

1. the local cache (cheap check: size + recorded hashes; ``verify=True`` re-hashes the file);
2. the Hugging Face Hub: ``entry.checkpoint.hf_hub_id`` or ``$SLOWONLY_ZOO_HF_PREFIX/<canonical name>``
   (an id may pin a revision as ``org/name@revision``; else ``$SLOWONLY_ZOO_HF_REVISION``, else ``main``);
   files ``model.safetensors`` + ``config.json`` as written by ``slowonly-zoo export``, fetched with
   ``huggingface_hub.hf_hub_download`` (its cache, ``HF_ENDPOINT``, ``HF_HUB_CACHE``, ``HF_TOKEN`` honoured);
   the file's recorded source sha256 must match the index, and since that is a claim the file makes about
   itself (nothing here can re-derive it), such a file is used only with ``SLOWONLY_ZOO_TRUST_CLAIMS=1``;
3. ``$SLOWONLY_ZOO_MIRRORS``: a **comma-separated** list of base URLs (``http(s)://…``) or local directories
   (plain paths or ``file://`` URLs) that replace the upstream ``https://download.openmmlab.com/`` prefix; the
   rest of the path is kept (``<base>/mmaction/recognition/slowonly/<file>``); a flat ``<base>/<file>`` is
   tried as well;
4. the upstream URL(s) of the entry, then the same path on each alternate origin of the openmmlab bucket
   (``openmmlab.oss-cn-hangzhou.aliyuncs.com``, ``openmmlab.oss-accelerate.aliyuncs.com``; see :mod:`.origins`),
   or on the base URLs of ``$SLOWONLY_ZOO_ORIGINS`` instead (set but empty: the upstream URLs only).

Offline (``SLOWONLY_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``): only the cache (and files already in the
Hugging Face cache) are used, and a miss fails at once naming the missing file and the import command.

A file lock per model makes concurrent processes (e.g. the ranks of a distributed job) fetch once; the
others wait (logging ``waiting for another process fetching <name>``) and read the cache. Each source tried is
logged at INFO on the ``slowonly_zoo`` logger, with why it failed (retries and waits inside a download at
WARNING). Cached files are only opened with ``safetensors.safe_open``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from .. import config
from ..errors import WeightsNotFoundError
from ..progress import logger as log
from ..progress import tqdm_class
from . import cache, lockfile, pins
from .download import announced_lock, download_file
from .hashing import hash_prefix_from_filename, sha256_file, sha256_matches_prefix
from .layout import CONFIG_FILE, META_SOURCE_FILENAME, META_SOURCE_SHA256, WEIGHTS_FILE, read_safetensors_metadata
from .origins import UPSTREAM_PREFIX, origin_candidates, upstream_path

if TYPE_CHECKING:
    from ..index import ModelEntry

__all__ = [
    "UPSTREAM_PREFIX",
    "FetchResult",
    "SourceAttempt",
    "WeightsNotFoundError",
    "accepted_prefixes",
    "fetch_weights",
    "fetch_weights_report",
    "hf_repo_for",
    "is_offline",
    "mirror_candidates",
    "mirror_list",
    "source_plan",
]


@dataclass(frozen=True)
class SourceAttempt:
    """One source tried: its kind ('cache', 'huggingface', 'mirror', 'upstream', 'origin'), where, and what happened."""

    kind: str
    location: str
    error: str | None  # None when this source delivered

    def __str__(self) -> str:
        return f"{self.kind} {self.location}: {self.error or 'ok'}"


@dataclass(frozen=True)
class FetchResult:
    """Verified weights in the cache and how they got there."""

    name: str
    path: Path
    record: cache.CacheRecord
    from_cache: bool  # True when the cache already held a valid entry
    attempts: tuple[SourceAttempt, ...]
    discarded: str | None = None  # why an invalid cache entry was thrown away first, if one was


# ----------------------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------------------


def is_offline(offline: bool | None = None) -> bool:
    """The argument, else ``SLOWONLY_ZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` set to a true value."""
    if offline is not None:
        return offline
    return config.offline()


def mirror_list() -> list[str]:
    """The entries of ``$SLOWONLY_ZOO_MIRRORS`` (comma-separated), stripped, in order."""
    return config.mirrors()


def _relative_path(url: str) -> str:
    """The part of ``url`` a mirror keeps: after the upstream prefix, else the URL's path."""
    rel = upstream_path(url)
    return rel if rel is not None else unquote(urlparse(url).path).lstrip("/")


def mirror_candidates(mirror: str, url: str, filename: str) -> tuple[str, list[str]]:
    """('url' | 'dir', candidate locations) for one mirror: the prefix-replaced path, then the flat file name."""
    rel = _relative_path(url)
    if mirror.startswith(("http://", "https://")):
        base = mirror.rstrip("/")
        found = [f"{base}/{rel}", f"{base}/{filename}"]
        kind = "url"
    else:
        root = Path(unquote(urlparse(mirror).path) if mirror.startswith("file://") else mirror).expanduser()
        found = [str(root / rel), str(root / filename)]
        kind = "dir"
    return kind, list(dict.fromkeys(found))


def hf_repo_for(entry: ModelEntry) -> tuple[str, str | None] | None:
    """(repo id, revision or None) of the Hub mirror of ``entry``, or None when none is configured."""
    repo = entry.checkpoint.hf_hub_id if entry.checkpoint else None
    if not repo:
        prefix = config.hf_prefix()
        if not prefix:
            return None
        repo = f"{prefix}/{entry.name}"
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return repo, revision or config.hf_revision()


def source_plan(entry: ModelEntry) -> list[tuple[str, str]]:
    """(kind, location) of every source :func:`fetch_weights_report` tries after the cache for ``entry``, in its
    order: the Hub repository (when one is configured), each mirror's candidate locations
    (:func:`mirror_candidates`), then the upstream URL(s) and their origins (:func:`.origins.origin_candidates`).
    Built from the same functions the fetch uses, for ``slowonly-zoo info`` to show; offline, only the cache is
    used (see :func:`is_offline`)."""
    ck = entry.checkpoint
    if ck is None:
        return []
    plan: list[tuple[str, str]] = []
    hf = hf_repo_for(entry)
    if hf is not None:
        plan.append(("huggingface", hf[0] + (f"@{hf[1]}" if hf[1] else "")))
    for mirror in mirror_list():
        plan += [("mirror", where) for where in mirror_candidates(mirror, ck.url, ck.filename)[1]]
    plan += [(c.kind, c.url) for c in origin_candidates(ck)]
    return plan


def accepted_prefixes(entry: ModelEntry) -> tuple[str, ...]:
    """sha256 prefixes an original file of ``entry`` may have: the index's, plus those of earlier published names."""
    ck = entry.checkpoint
    if ck is None:
        return ()
    older = (hash_prefix_from_filename(f) for f in getattr(ck, "previous_filenames", ()) or ())
    return tuple(dict.fromkeys(p for p in (ck.sha256_prefix, *older) if p))


def pinned_on_first_use(entry: ModelEntry) -> bool:
    """True for an entry whose index pins no hash (no prefix, no full sha256: FAIR's files): its first verified
    download is trusted and pinned (:mod:`.pins`)."""
    ck = entry.checkpoint
    return ck is not None and not ck.sha256_prefix and not getattr(ck, "sha256", None)


def pinned_sha256(entry: ModelEntry) -> str | None:
    """The full sha256 the original file of ``entry`` must have (it wins over the prefixes): the index's, else the
    one pinned on first use (:mod:`.pins`); None when there is none yet."""
    ck = entry.checkpoint
    if ck is None:
        return None
    lock = lockfile.locked_file(entry.name)  # a lock in force wins, and refuses a model it does not list
    if lock is not None:
        return lock.sha256
    if getattr(ck, "sha256", None):
        return str(ck.sha256)
    if pinned_on_first_use(entry):
        pin = pins.read_pin(entry.name)
        return pin.sha256 if pin is not None else None
    return None


def pinned_size(entry: ModelEntry) -> int | None:
    """The byte size of the original file of ``entry``: the lock's in force, else the first-use pin's, else None."""
    lock = lockfile.locked_file(entry.name) if entry.checkpoint is not None else None
    if lock is not None:
        return lock.size
    pin = pins.read_pin(entry.name) if pinned_on_first_use(entry) else None
    return pin.size if pin is not None else None


def _pin_text(entry: ModelEntry) -> str:
    ck = entry.checkpoint
    assert ck is not None
    full = pinned_sha256(entry)
    if full:
        return f"sha256 {full}"
    return f"sha256 {ck.sha256_prefix}…" if ck.sha256_prefix else "no hash pinned yet: the first download is trusted"


def matches_pin(entry: ModelEntry, digest: str) -> bool:
    """True when ``digest`` (a full sha256) is an accepted original of ``entry``: equal to its pinned full sha256
    where the index has one, else starting with one of :func:`accepted_prefixes` (or no pin at all)."""
    full = pinned_sha256(entry)
    if full:
        return digest.lower() == full
    prefixes = accepted_prefixes(entry)
    return not prefixes or any(sha256_matches_prefix(digest, p) for p in prefixes)


def pin_mismatch(entry: ModelEntry, digest: str) -> str:
    """One phrase naming both hashes: ``digest`` and what ``entry`` expects."""
    full = pinned_sha256(entry)
    if full:
        return f"sha256 {digest} differs from the pinned full sha256 {full}"
    return f"sha256 {digest[:8]}… does not match the expected {' or '.join(accepted_prefixes(entry))}"


def _resolve(entry: ModelEntry | str) -> ModelEntry:
    if isinstance(entry, str):
        from ..index import get_model_info

        return get_model_info(entry)
    return entry


def _short(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------------------
# the sources
# ----------------------------------------------------------------------------------------------------------


def _convert_and_store(entry: ModelEntry, original: Path, sha256: str, *, source: str, kind: str) -> cache.CacheRecord:
    from .checkpoint import read_upstream_checkpoint

    state = read_upstream_checkpoint(original)
    return cache.store_state_dict(
        entry.name,
        state,
        source=source,
        source_kind=kind,
        original_filename=original.name,
        original_sha256=sha256,
        original_size=original.stat().st_size,
    )


def _from_hf(
    entry: ModelEntry, repo: str, revision: str | None, *, offline: bool, progress: bool | None
) -> cache.CacheRecord:
    from huggingface_hub import hf_hub_download

    kwargs: dict[str, Any] = {"repo_id": repo, "revision": revision, "local_files_only": offline}
    if os.environ.get("HF_ENDPOINT"):
        kwargs["endpoint"] = os.environ["HF_ENDPOINT"].rstrip("/")
    if os.environ.get("HF_HUB_CACHE"):
        kwargs["cache_dir"] = os.environ["HF_HUB_CACHE"]
    quiet_bars = tqdm_class(progress)
    if quiet_bars is not None:
        kwargs["tqdm_class"] = quiet_bars
    config_path = Path(hf_hub_download(filename=CONFIG_FILE, **kwargs))
    weights = Path(hf_hub_download(filename=WEIGHTS_FILE, **kwargs))
    model_config = json.loads(config_path.read_text(encoding="utf-8"))
    if isinstance(model_config, dict) and model_config.get("num_classes") not in (None, entry.num_classes):
        raise ValueError(
            f"{repo} holds a {model_config['num_classes']}-class model, {entry.name} has {entry.num_classes}"
        )
    meta = read_safetensors_metadata(weights)
    source_sha = meta.get(META_SOURCE_SHA256, "")
    if not source_sha:
        raise ValueError(
            f"{WEIGHTS_FILE} in {repo} has no '{META_SOURCE_SHA256}' metadata, so it cannot "
            "be verified against the index; re-create it with `slowonly-zoo export`"
        )
    if not matches_pin(entry, source_sha):
        raise ValueError(f"{repo} was converted from a file with {pin_mismatch(entry, source_sha)}")
    if not config.trust_claims():
        raise ValueError(
            f"unverified: {WEIGHTS_FILE} in {repo} claims to be converted from "
            f"{meta.get(META_SOURCE_FILENAME) or 'the checkpoint'} (sha256 {source_sha[:8]}…), which nothing here "
            "can check; set SLOWONLY_ZOO_TRUST_CLAIMS=1 if you trust that repository"
        )
    commit = weights.parent.name
    return cache.store_safetensors_file(
        entry.name, weights, source=f"hf://{repo}@{commit}", source_kind="hf", link=True
    )


def _from_local_file(entry: ModelEntry, path: Path, *, kind: str) -> cache.CacheRecord:
    digest = sha256_file(path)
    if not matches_pin(entry, digest):
        raise ValueError(pin_mismatch(entry, digest))
    return _convert_and_store(entry, path, digest, source=str(path), kind=kind)


def _from_url(entry: ModelEntry, url: str, *, kind: str, progress: bool | None) -> cache.CacheRecord:
    ck = entry.checkpoint
    assert ck is not None
    log.info("%s: trying %s %s", entry.name, kind, url)
    dest = cache.download_path(ck.filename)
    result = download_file(url, dest, sha256_prefix=ck.sha256_prefix, sha256=pinned_sha256(entry), progress=progress)
    try:
        return _convert_and_store(entry, result.path, result.sha256, source=url, kind=kind)
    finally:
        if not config.keep_downloads():
            result.path.unlink(missing_ok=True)


def _offline_message(entry: ModelEntry, why: str, extra: list[SourceAttempt]) -> str:
    ck = entry.checkpoint
    assert ck is not None
    lines = [
        f"offline mode (SLOWONLY_ZOO_OFFLINE=1 or HF_HUB_OFFLINE=1): the weights of {entry.name!r} are not available "
        f"locally: {why}.",
        f"  needed file: {ck.filename} ({_pin_text(entry)}), upstream {ck.url}",
    ]
    lines += [f"  also tried: {a}" for a in extra]
    lines.append(f"  copy that file to this machine and run:  slowonly-zoo import /path/to/{ck.filename}")
    lines.append("  (or unset SLOWONLY_ZOO_OFFLINE / HF_HUB_OFFLINE to download it)")
    return "\n".join(lines)


def _failure_message(entry: ModelEntry, attempts: list[SourceAttempt]) -> str:
    ck = entry.checkpoint
    assert ck is not None
    lines = [f"could not get verified weights for {entry.name!r} ({ck.filename}, {_pin_text(entry)}). Sources tried:"]
    lines += [f"  {i}. {a}" for i, a in enumerate(attempts, 1)]
    lines += [
        "What to do: if you have the file (any name), run:  slowonly-zoo import /path/to/the/file.pth",
        f"  or point SLOWONLY_ZOO_MIRRORS at a directory or URL holding {ck.filename}",
        "  (or SLOWONLY_ZOO_ORIGINS at hosts serving the upstream paths),",
        "  or set SLOWONLY_ZOO_HF_PREFIX to a Hugging Face organisation that hosts `slowonly-zoo export` folders.",
    ]
    return "\n".join(lines)


def fetch_weights_report(
    entry: ModelEntry | str, *, progress: bool | None = None, offline: bool | None = None, verify: bool = False
) -> FetchResult:
    """Like :func:`fetch_weights`, returning what happened (sources tried, whether the cache was used)."""
    entry = _resolve(entry)
    ck = entry.checkpoint
    if ck is None:
        members = ", ".join(getattr(entry, "members", ()) or ())
        raise WeightsNotFoundError(
            f"{entry.name!r} has no checkpoint of its own" + (f" (it fuses {members}; fetch those)" if members else ""),
            entry.name,
        )
    prefixes = accepted_prefixes(entry)
    offline = is_offline(offline)

    def cached(full: bool) -> cache.CacheCheck:
        return cache.check_cached(
            entry.name,
            source_sha256_prefixes=prefixes,
            source_sha256=pinned_sha256(entry),
            source_size=pinned_size(entry),
            full=full,
        )

    first = cached(verify)
    if first.ok:
        assert first.path is not None and first.record is not None
        return FetchResult(entry.name, first.path, first.record, True, (SourceAttempt("cache", str(first.path), None),))
    assert first.problem is not None

    if offline:
        extra: list[SourceAttempt] = []
        hf = hf_repo_for(entry)
        if hf is not None:  # files already in the Hugging Face cache count as local
            try:
                with announced_lock(cache.lock_path(entry.name), f"fetching {entry.name}"):
                    record = _from_hf(entry, hf[0], hf[1], offline=True, progress=progress)
                path = cache.weights_path(entry.name)
                return FetchResult(
                    entry.name,
                    path,
                    record,
                    False,
                    (SourceAttempt("cache", str(path), first.problem), SourceAttempt("huggingface-cache", hf[0], None)),
                )
            except Exception as exc:  # noqa: BLE001 - reported to the user below
                extra.append(SourceAttempt("huggingface-cache", hf[0], _short(exc)))
        raise WeightsNotFoundError(
            _offline_message(entry, first.problem, extra),
            entry.name,
            (SourceAttempt("cache", str(cache.weights_path(entry.name)), first.problem), *extra),
        )

    with announced_lock(cache.lock_path(entry.name), f"fetching {entry.name}"):
        again = cached(verify)
        if again.ok:  # another process filled the cache while we waited
            assert again.path is not None and again.record is not None
            return FetchResult(
                entry.name, again.path, again.record, True, (SourceAttempt("cache", str(again.path), None),)
            )
        discarded = None
        if again.record is not None or cache.weights_path(entry.name).exists():
            discarded = again.problem
            log.warning("discarding invalid cache entry for %s: %s", entry.name, again.problem)
            cache.remove_entry(entry.name)
        attempts = [SourceAttempt("cache", str(cache.weights_path(entry.name)), again.problem)]

        def failed(kind: str, where: str, exc: BaseException) -> None:
            attempts.append(SourceAttempt(kind, where, _short(exc)))
            log.info("%s: %s %s failed: %s", entry.name, kind, where, _short(exc))

        def done(kind: str, where: str, record: cache.CacheRecord) -> FetchResult:
            attempts.append(SourceAttempt(kind, where, None))
            if pinned_on_first_use(entry) and pins.read_pin(entry.name) is None:
                # FAIR's file names carry no hash (README "Getting the weights"): trust this first one, pin it.
                pins.write_pin(
                    entry.name, ck.filename, record.original_sha256, int(record.original_size or 0), record.source
                )
            return FetchResult(entry.name, cache.weights_path(entry.name), record, False, tuple(attempts), discarded)

        # 2. Hugging Face Hub
        hf = hf_repo_for(entry)
        if hf is None:
            attempts.append(
                SourceAttempt(
                    "huggingface",
                    "-",
                    "not configured (no hf_hub_id in the index and SLOWONLY_ZOO_HF_PREFIX is unset)",
                )
            )
        else:
            where = hf[0] + (f"@{hf[1]}" if hf[1] else "")
            try:
                return done("huggingface", where, _from_hf(entry, hf[0], hf[1], offline=False, progress=progress))
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next source is tried
                failed("huggingface", where, exc)

        # 3. user mirrors
        mirrors = mirror_list()
        if not mirrors:
            attempts.append(SourceAttempt("mirror", "-", "none configured (SLOWONLY_ZOO_MIRRORS is unset)"))
        for mirror in mirrors:
            kind, candidates = mirror_candidates(mirror, ck.url, ck.filename)
            if kind == "dir":
                present = [Path(c) for c in candidates if Path(c).is_file()]
                if not present:
                    attempts.append(
                        SourceAttempt(
                            "mirror", mirror, f"no {ck.filename} there (looked for {' and '.join(candidates)})"
                        )
                    )
                for path in present:
                    try:
                        return done("mirror", str(path), _from_local_file(entry, path, kind="mirror"))
                    except Exception as exc:  # noqa: BLE001
                        failed("mirror", str(path), exc)
            else:
                for url in candidates:
                    try:
                        return done("mirror", url, _from_url(entry, url, kind="mirror", progress=progress))
                    except Exception as exc:  # noqa: BLE001
                        failed("mirror", url, exc)

        # 4. upstream URL(s), then the same paths on the bucket's other hosts (.origins)
        for candidate in origin_candidates(ck):
            try:
                record = _from_url(entry, candidate.url, kind=candidate.kind, progress=progress)
                return done(candidate.kind, candidate.url, record)
            except Exception as exc:  # noqa: BLE001
                failed(candidate.kind, candidate.url, exc)
        raise WeightsNotFoundError(_failure_message(entry, attempts), entry.name, tuple(attempts))


def fetch_weights(
    entry: ModelEntry | str, *, progress: bool | None = None, offline: bool | None = None, verify: bool = False
) -> Path:
    """Path of verified, converted weights for ``entry`` (a :class:`ModelEntry` or a model name) in the cache.

    Tries the cache, the Hugging Face Hub, ``$SLOWONLY_ZOO_MIRRORS``, the upstream URL and the alternate origins in
    that order (see the module docstring). ``progress`` forces download progress bars on/off; ``offline`` overrides the
    ``SLOWONLY_ZOO_OFFLINE`` / ``HF_HUB_OFFLINE`` environment; ``verify`` re-hashes a cached file in full.

    Raises:
        WeightsNotFoundError: every source failed (the message lists each and why, and names
            ``slowonly-zoo import``), or offline mode and the cache lacks the weights.
    """
    return fetch_weights_report(entry, progress=progress, offline=offline, verify=verify).path
