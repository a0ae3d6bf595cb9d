"""Command-line inputs to a list of sources: what ``slowonly-zoo predict`` and ``extract`` accept besides plain
video files and frame folders.

* a list file (``.txt`` / ``.lst`` / ``.list``): one path per line, its first field (so upstream annotation lists
  work as they are), relative to ``root`` or else to the list file's folder; blank lines and ``#`` comments are
  skipped;
* a frame folder (holds ``.jpg`` / ``.png`` files): itself;
* any other folder: the video files directly inside it (by :data:`~slowonly_zoo.data.formats.VIDEO_EXTENSIONS`,
  sorted);
* anything else: itself (checked later, by :func:`slowonly_zoo.inference.check_source`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .data.annotations import read_list_text
from .data.formats import VIDEO_EXTENSIONS
from .data.rawframes import is_frame_folder
from .errors import InferenceError

__all__ = ["LIST_SUFFIXES", "expand_inputs", "read_input_list"]

LIST_SUFFIXES: tuple[str, ...] = (".txt", ".lst", ".list")
"""Suffixes of files read as lists of inputs."""


def read_input_list(list_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The paths a list file names (first field per line), relative to ``root`` or else to the list's folder."""
    list_file = Path(list_file)
    base = Path(root) if root is not None else list_file.parent
    out: list[Path] = []
    for line in read_list_text(list_file).splitlines():  # UTF-8, a byte-order mark dropped, as annotation lists
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = Path(line.split()[0])  # annotation files ("path label", "frame_dir total label") work as lists too
        out.append(first if first.is_absolute() else base / first)
    if not out:
        raise InferenceError(f"{list_file} lists no videos; write one path per line")
    return out


def expand_inputs(items: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Turn command-line inputs into a list of video files / frame folders (see the module docstring)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            out.extend(read_input_list(path, root))
        elif path.is_dir() and not is_frame_folder(path):
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise InferenceError(
                    f"{path} holds neither video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) nor frames; "
                    "pass a folder of videos, a frame folder or a list file"
                )
            out.extend(found)
        else:
            out.append(path)
    return out
