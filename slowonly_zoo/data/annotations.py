"""Upstream annotation lists.

* video list (``VideoDataset``): ``relative/path.mp4 label``;
* rawframe list (``RawframeDataset``): ``frame_dir total_frames label``;
* the Kinetics-400 validation list of the upstream README note: ``video_id, num_frames, label_index`` (commas
  optional), i.e. the rawframe layout, where ``video_id`` may name a video file without its extension.

Fields are separated by whitespace and/or commas; blank lines are skipped. A malformed line raises
:class:`AnnotationError` naming the file and the line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Annotation", "AnnotationError", "read_annotations"]

_SPLIT = re.compile(r"[\s,]+")
KINDS = ("auto", "video", "rawframes")


class AnnotationError(ValueError):
    """A malformed annotation line (``path`` and 1-based ``line`` say where)."""

    def __init__(self, path: str | os.PathLike[str], line: int, reason: str, text: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        shown = f": {text!r}" if text else ""
        super().__init__(f"{self.path}, line {line}: {reason}{shown}")


@dataclass(frozen=True)
class Annotation:
    """One annotated video: ``id`` as written in the list (relative to the data root), its label, and the frame
    count the list gives (``None`` for video lists: the decoder counts)."""

    id: str
    label: int
    total_frames: int | None = None


def _int(field: str, what: str, path: str | os.PathLike[str], line_no: int, text: str) -> int:
    try:
        value = int(field)
    except ValueError:
        raise AnnotationError(path, line_no, f"{what} must be an integer, got {field!r}", text) from None
    if value < 0:
        raise AnnotationError(path, line_no, f"{what} must not be negative, got {value}", text)
    return value


def read_annotations(path: str | os.PathLike[str], kind: str = "auto") -> list[Annotation]:
    """Read an annotation list.

    ``kind='video'`` expects ``path label``; ``'rawframes'`` expects ``frame_dir total_frames label`` (also the K400
    validation list); ``'auto'`` decides per file from the first line's field count (2 or 3).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {path}") from None
    out: list[Annotation] = []
    expected: int | None = {"video": 2, "rawframes": 3}.get(kind)
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        if expected is None:
            if len(fields) not in (2, 3):
                raise AnnotationError(
                    path,
                    line_no,
                    f"expected 'path label' or 'frame_dir total_frames label', got {len(fields)} fields",
                    raw,
                )
            expected = len(fields)
        if len(fields) != expected:
            layout = "'path label'" if expected == 2 else "'frame_dir total_frames label'"
            raise AnnotationError(path, line_no, f"expected {expected} fields ({layout}), got {len(fields)}", raw)
        if expected == 2:
            out.append(Annotation(fields[0], _int(fields[1], "label", path, line_no, raw)))
        else:
            total = _int(fields[1], "total_frames", path, line_no, raw)
            out.append(Annotation(fields[0], _int(fields[2], "label", path, line_no, raw), total))
    return out
