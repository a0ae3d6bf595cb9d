"""What the data layer reads: the names of the source formats and the file suffixes of videos and frames.

A *source* is one video file or one frame folder. Its *source format* is ``'video'`` or ``'rawframes'`` (upstream's
``VideoDataset`` / ``RawframeDataset``); ``'auto'`` decides per source: a folder is a frame folder, a file a video.
The same word names an annotation list's layout (``path label`` for videos, ``frame_dir total_frames label`` for
frame folders), so one parameter name, ``source_format``, is used everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "FRAME_SUFFIXES",
    "SOURCE_FORMATS",
    "VIDEO_EXTENSIONS",
    "check_source_format",
    "format_of",
    "resolve_source",
]

SOURCE_FORMATS: tuple[str, ...] = ("auto", "video", "rawframes")
"""``source_format`` values: decide per source, video files, frame folders."""

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ogv",
    ".ts",
    ".gif",
)
"""Suffixes (lower case) taken for video files: when a folder of videos is expanded, and when an annotation id
without a suffix is looked up as ``id.*``."""

FRAME_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
"""Suffixes (lower case) of frame images: a folder holding such files is a frame folder."""


def check_source_format(source_format: str) -> str:
    """``source_format`` itself when it is one of :data:`SOURCE_FORMATS`, else a ``ValueError`` naming them."""
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {source_format!r}; choose one of {', '.join(SOURCE_FORMATS)}")
    return source_format


def format_of(source: str | os.PathLike[str], source_format: str = "auto") -> str:
    """``'video'`` or ``'rawframes'`` for ``source``: ``source_format`` itself, or with ``'auto'`` whether
    ``source`` is a folder."""
    if source_format != "auto":
        return source_format
    return "rawframes" if Path(source).is_dir() else "video"


def resolve_source(data_root: str | os.PathLike[str], source_id: str, source_format: str = "auto") -> Path:
    """The file or folder a list entry names: ``data_root / source_id``, or, when that does not exist and the id
    has no video suffix (the K400 validation list's bare ids), the one file named ``source_id`` plus a video
    extension (any case) there.

    The id is taken literally: ``*``, ``?`` and ``[`` are ordinary characters, never a pattern. Several such files
    (``a.mp4`` and ``a.mkv``) are a ``ValueError`` naming them: which one was meant cannot be guessed.
    """
    path = Path(data_root) / source_id
    if path.exists() or source_format == "rawframes":
        return path
    if path.suffix and path.suffix.lower() in VIDEO_EXTENSIONS:
        return path
    matches = _named_videos(path)
    if len(matches) > 1:
        raise ValueError(
            f"{path} matches {len(matches)} videos ({', '.join(m.name for m in matches)}); "
            "write the file name with its extension in the list"
        )
    return matches[0] if matches else path


def _named_videos(path: Path) -> list[Path]:
    """The files named ``path.name`` + a video extension: found by name (a few ``stat`` calls, so a folder of
    20 000 videos is not listed once per id), or, when none is, by listing the folder (mixed-case extensions)."""
    found: dict[tuple[int, int], Path] = {}
    for ext in VIDEO_EXTENSIONS:
        for candidate in (ext, ext.upper()):
            p = path.parent / (path.name + candidate)
            try:
                st = p.stat()
            except OSError:
                continue
            found.setdefault((st.st_dev, st.st_ino), p)  # one file, whatever case a case-blind disk answers to
    if found:
        return sorted(found.values())
    prefix = path.name + "."
    try:
        with os.scandir(path.parent) as entries:
            return sorted(
                path.parent / e.name
                for e in entries
                if e.name.startswith(prefix) and ("." + e.name[len(prefix) :]).lower() in VIDEO_EXTENSIONS
            )
    except OSError:  # the folder is missing or unreadable: the caller reports the id as not found
        return []
