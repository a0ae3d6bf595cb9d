"""Upstream annotation lists.

* video list (``VideoDataset``): ``relative/path.mp4 label``;
* rawframe list (``RawframeDataset``): ``frame_dir total_frames label``;
* the Kinetics-400 validation list of the upstream README note: ``video_id, num_frames, label_index`` (commas
  optional), i.e. the rawframe layout, where ``video_id`` may name a video file without its extension;
* multi-label lists (``multi_label=True``; mmaction2's ``multi_class`` datasets, e.g. Charades): ``path label1
  label2 ...`` or, with ``source_format='rawframes'``, ``frame_dir total_frames label1 label2 ...``.

Fields are separated by whitespace and/or commas; blank lines are skipped. A malformed line raises
:class:`AnnotationError` naming the file and the line. One rule for each kind of hostile list, for every reader of
lists (``verify``'s :class:`~slowonly_zoo.data.dataset.TestDataset` and training's ``read_train_list``):

* the text is UTF-8; a leading byte-order mark (Notepad's ``utf-8-sig``) is dropped, CRLF / CR line ends and
  trailing spaces are accepted; any other encoding is refused with the line of the first undecodable byte;
* an id may appear only once: a second line with the same id is refused, naming both lines (``scores.npz`` and
  score fusion key the results by id, so a repeated id could not be told apart);
* with ``num_classes``, a label outside ``0 .. num_classes - 1`` is refused with its line: it would be scored as a
  miss that no model could avoid.

Ids are taken literally: ``*``, ``?`` and ``[`` are ordinary characters (see
:func:`~slowonly_zoo.data.formats.resolve_source`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AnnotationError
from .formats import check_source_format

__all__ = ["Annotation", "AnnotationError", "read_annotations", "read_list_text"]

_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Annotation:
    """One annotated video: ``id`` as written in the list (relative to the data root), its label, the frame
    count the list gives (``None`` for video lists: the decoder counts), and the 1-based ``line`` it is on (0 when
    not read from a file; not part of equality)."""

    id: str
    label: int
    total_frames: int | None = None
    line: int = field(default=0, compare=False)
    labels: tuple[int, ...] = ()  #: every label of a multi-label list's line (``label`` is the first); () otherwise


def _int(field: str, what: str, path: str | os.PathLike[str], line_no: int, text: str) -> int:
    try:
        value = int(field)
    except ValueError:
        raise AnnotationError(path, line_no, f"{what} must be an integer, got {field!r}", text) from None
    if value < 0:
        raise AnnotationError(path, line_no, f"{what} must not be negative, got {value}", text)
    return value


def read_list_text(path: str | os.PathLike[str]) -> str:
    """The text of a list file (annotation list, or ``predict``/``extract``'s list of inputs): UTF-8, a leading
    byte-order mark dropped; else :class:`AnnotationError` naming the line of the first undecodable byte."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"list file not found: {path}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = len((data[: exc.start].decode("utf-8-sig") + "x").splitlines())  # any line end (LF, CRLF, CR)
        raise AnnotationError(
            path, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the list as UTF-8"
        ) from None


def read_annotations(
    path: str | os.PathLike[str],
    source_format: str = "auto",
    num_classes: int | None = None,
    multi_label: bool = False,
) -> list[Annotation]:
    """Read an annotation list.

    ``source_format='video'`` expects ``path label``; ``'rawframes'`` expects ``frame_dir total_frames label``
    (also the K400 validation list); ``'auto'`` decides per file from the first line's field count (2 or 3).
    ``num_classes``: refuse labels outside ``0 .. num_classes - 1`` (see the module docstring for the other rules).
    ``multi_label``: every line lists one or more labels after the path (and, for ``'rawframes'``, the frame count;
    ``'auto'`` reads such a list as a video list); each annotation's ``labels`` holds them all.
    """
    check_source_format(source_format)
    path = Path(path)
    try:
        text = read_list_text(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {path}") from None
    out: list[Annotation] = []
    first_line: dict[str, int] = {}
    expected: int | None = {"video": 2, "rawframes": 3}.get(source_format)
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        if multi_label:
            out.append(_multi_label_line(fields, source_format, num_classes, path, line_no, raw, first_line))
            continue
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
        total = None if expected == 2 else _int(fields[1], "total_frames", path, line_no, raw)
        label = _int(fields[-1], "label", path, line_no, raw)
        if num_classes is not None and label >= num_classes:
            raise AnnotationError(
                path,
                line_no,
                f"label {label} is outside 0..{num_classes - 1} (the model has {num_classes} classes); "
                "fix the label or use a model of this list's dataset",
                raw,
            )
        sid = fields[0]
        if sid in first_line:
            raise AnnotationError(
                path,
                line_no,
                f"{sid!r} is already listed on line {first_line[sid]}; list each video once",
                raw,
            )
        first_line[sid] = line_no
        out.append(Annotation(sid, label, total, line_no))
    return out


def _multi_label_line(
    fields: list[str],
    source_format: str,
    num_classes: int | None,
    path: Path,
    line_no: int,
    raw: str,
    first_line: dict[str, int],
) -> Annotation:
    """One line of a multi-label list: ``path label...`` or ``frame_dir total_frames label...``."""
    head = 2 if source_format == "rawframes" else 1
    if len(fields) <= head:
        layout = "'frame_dir total_frames label...'" if head == 2 else "'path label...'"
        raise AnnotationError(path, line_no, f"expected {layout} with at least one label", raw)
    total = _int(fields[1], "total_frames", path, line_no, raw) if head == 2 else None
    labels = tuple(_int(f, "label", path, line_no, raw) for f in fields[head:])
    bad = [lab for lab in labels if num_classes is not None and lab >= num_classes]
    if bad and num_classes is not None:
        raise AnnotationError(
            path, line_no, f"label {bad[0]} is outside 0..{num_classes - 1} (the model has {num_classes} classes)", raw
        )
    sid = fields[0]
    if sid in first_line:
        raise AnnotationError(
            path, line_no, f"{sid!r} is already listed on line {first_line[sid]}; list each video once", raw
        )
    first_line[sid] = line_no
    return Annotation(sid, labels[0], total, line_no, labels)
