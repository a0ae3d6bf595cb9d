"""The hosts an mmaction2 checkpoint is published on: the upstream URL(s) of its entry, then the same path on each
alternate origin of the openmmlab bucket.

download.openmmlab.com is a custom domain on an Aliyun object-storage bucket; the early mmaction2 0.x READMEs
(e.g. mmaction2 v0.9.0 ``configs/recognition/slowonly/README.md``) link the same paths on the bucket's own hosts,
``openmmlab.oss-cn-hangzhou.aliyuncs.com`` and ``openmmlab.oss-accelerate.aliyuncs.com``. An entry URL whose
prefix is :data:`UPSTREAM_PREFIX` is therefore also tried below each origin of :func:`origin_list`, in order;
every file fetched this way passes the same hash check as the upstream one. ``$SLOWONLY_ZOO_ORIGINS`` replaces
the built-in list (comma-separated base URLs; set but empty: the upstream URLs only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import config

if TYPE_CHECKING:
    from ..index import Checkpoint

__all__ = ["DEFAULT_ORIGINS", "UPSTREAM_PREFIX", "Candidate", "origin_candidates", "origin_list"]

#: The host every mmaction2 entry URL starts with.
UPSTREAM_PREFIX = "https://download.openmmlab.com/"

#: The other hosts of the same bucket, in the order they are tried (mmaction2 0.x READMEs).
DEFAULT_ORIGINS: tuple[str, ...] = (
    "https://openmmlab.oss-cn-hangzhou.aliyuncs.com/",
    "https://openmmlab.oss-accelerate.aliyuncs.com/",
)


@dataclass(frozen=True)
class Candidate:
    """One URL to try: 'upstream' (as the entry lists it) or 'origin' (an upstream path on another host)."""

    kind: str
    url: str


def origin_list() -> tuple[str, ...]:
    """``$SLOWONLY_ZOO_ORIGINS`` when set (possibly empty), else :data:`DEFAULT_ORIGINS`."""
    chosen = config.origins()
    return DEFAULT_ORIGINS if chosen is None else chosen


def upstream_path(url: str) -> str | None:
    """The part of ``url`` after the upstream host (``mmaction/recognition/...``), or None for another host."""
    for prefix in (UPSTREAM_PREFIX, UPSTREAM_PREFIX.replace("https://", "http://")):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return None


def origin_candidates(checkpoint: Checkpoint, origins: tuple[str, ...] | None = None) -> list[Candidate]:
    """Every URL of ``checkpoint`` in the order tried: its listed URLs, then each upstream-hosted one's path on
    each origin (``origins``, default :func:`origin_list`); duplicates dropped."""
    listed = (checkpoint.url, *checkpoint.alternate_urls)
    bases = origin_list() if origins is None else origins
    found = [Candidate("upstream", url) for url in listed]
    for base in bases:
        for url in listed:
            rel = upstream_path(url)
            if rel is not None:
                found.append(Candidate("origin", base.rstrip("/") + "/" + rel))
    seen: set[str] = set()
    unique = []
    for candidate in found:
        if candidate.url not in seen:
            seen.add(candidate.url)
            unique.append(candidate)
    return unique
