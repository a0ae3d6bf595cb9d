"""Training data: the annotation formats ``verify`` reads, a folder-per-class layout, and the datasets the trainer
iterates.

Sources (all paths relative to a data root):

* a video list (``path label``), a rawframe list (``frame_dir total_frames label``; flow folders too): see
  :mod:`slowonly_zoo.data.annotations`;
* a folder per class: ``ROOT/<class name>/<video file or frame folder>``; the class names are the sorted folder
  names (label = position in that order) and are stored with the run.

Randomness: sample ``index`` of epoch ``epoch`` draws everything (clip offset, crop, flip) from its own
``numpy.random.Generator`` seeded with ``(seed, epoch, index)`` (:func:`sample_rng`), so the sample stream is the same
whatever the number of DataLoader workers, and a resumed run sees the same samples as an uninterrupted one.

A missing or undecodable training video does not stop training: it is replaced by another sample, chosen from the
same generator (so deterministically), and reported with the batch (:class:`BadSample`); the trainer logs and
counts them and lists them in the epoch summary. An empty list or a label outside ``num_classes`` is an error naming
the file and the line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.annotations import AnnotationError, read_annotations
from ..data.dataset import TestDataset
from ..data.decode import VideoDecodeError
from ..data.formats import VIDEO_EXTENSIONS, resolve_source
from ..data.rawframes import FrameReadError
from ..errors import TrainDataError

__all__ = [
    "BadSample",
    "TrainBatch",
    "TrainDataError",
    "TrainDataset",
    "TrainItem",
    "TrainSample",
    "ValDataset",
    "class_folder_items",
    "load_items",
    "read_train_list",
    "sample_rng",
    "train_collate",
]

BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    VideoDecodeError,
    FrameReadError,
    FileNotFoundError,
    OSError,
    ValueError,
    IndexError,
)
"""What a bad video raises in the decoders and pipelines (a sample that raises one of these is replaced)."""

MAX_REPLACEMENTS = 10


@dataclass(frozen=True)
class TrainItem:
    """One training video: ``id`` relative to the data root, its label, the frame count a rawframe list gives,
    and where it was listed (``origin`` file or folder, 1-based ``line``; 0 for folder-per-class items)."""

    id: str
    label: int
    total_frames: int | None = None
    origin: str = ""
    line: int = 0


@dataclass(frozen=True)
class BadSample:
    """A sample that could not be loaded and was replaced: which item, why, and what replaced it."""

    index: int
    id: str
    error: str
    replaced_by: int


@dataclass
class TrainSample:
    """One loaded training clip ``(C, T, H, W)`` float32 and its label; ``index`` is the dataset index asked for
    (the clip may come from a replacement, see ``bad``)."""

    clip: torch.Tensor
    label: int
    index: int
    bad: tuple[BadSample, ...] = ()


@dataclass
class TrainBatch:
    """A collated batch: clips ``(N, C, T, H, W)``, labels ``(N,)``, the dataset indices and the replaced samples."""

    clips: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    bad: tuple[BadSample, ...]

    def pin_memory(self) -> TrainBatch:
        return TrainBatch(self.clips.pin_memory(), self.labels.pin_memory(), self.indices, self.bad)


def train_collate(samples: Sequence[TrainSample]) -> TrainBatch:
    """DataLoader ``collate_fn`` for :class:`TrainDataset`."""
    return TrainBatch(
        clips=torch.stack([s.clip for s in samples]),
        labels=torch.tensor([s.label for s in samples], dtype=torch.int64),
        indices=torch.tensor([s.index for s in samples], dtype=torch.int64),
        bad=tuple(b for s in samples for b in s.bad),
    )


def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of sample ``index`` in (0-based) ``epoch``; ``attempt`` > 0 for its replacements."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), int(attempt)]))


# -- reading the sources ------------------------------------------------------------------------------------------


def read_train_list(path: str | os.PathLike[str], num_classes: int, kind: str = "auto") -> list[TrainItem]:
    """Read a video or rawframe list for training; every label must be in ``0 .. num_classes - 1``."""
    path = Path(path)
    try:
        annotations = read_annotations(path, kind)
    except AnnotationError as exc:
        raise TrainDataError(str(exc)) from exc
    except FileNotFoundError:
        raise TrainDataError(f"annotation file not found: {path}; check --ann-file") from None
    if not annotations:
        raise TrainDataError(
            f"{path}, line 1: the annotation list is empty; it needs one 'path label' or "
            "'frame_dir total_frames label' line per video"
        )
    items = []
    for ann in annotations:
        line = ann.line  # the reader's own line number: a byte-order mark or CRLF ends cannot shift it
        if not 0 <= ann.label < num_classes:
            raise TrainDataError(
                f"{path}, line {line}: label {ann.label} of {ann.id!r} is outside 0..{num_classes - 1} "
                f"(num_classes={num_classes}); fix the label or pass --num-classes"
            )
        items.append(TrainItem(ann.id, ann.label, ann.total_frames, str(path), line))
    return items


def _is_sample(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in VIDEO_EXTENSIONS


def class_folder_items(
    root: str | os.PathLike[str], class_names: Sequence[str] | None = None
) -> tuple[list[TrainItem], tuple[str, ...]]:
    """Items of a folder-per-class layout ``root/<class>/<video or frame folder>`` and the class names.

    The classes are the sorted sub-folder names; ``class_names`` (e.g. the training set's, for a validation folder)
    fixes them instead, and a folder not among them is an error. Hidden entries are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise TrainDataError(f"{root} is not a folder; pass a folder with one sub-folder per class")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = tuple(class_names) if class_names is not None else tuple(found)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise TrainDataError(
            f"{root}: class folders {unknown[:5]} are not among the training classes {list(names)[:10]}"
        )
    label_of = {name: k for k, name in enumerate(names)}
    items = []
    for name in found:
        for sample in sorted((root / name).iterdir()):
            if sample.name.startswith(".") or not _is_sample(sample):
                continue
            items.append(TrainItem(f"{name}/{sample.name}", label_of[name], None, str(root / name), 0))
    if not items:
        raise TrainDataError(
            f"{root}: no videos or frame folders in its class sub-folders; the layout is ROOT/<class>/<video file>"
        )
    return items, names


def load_items(
    ann_file: str | os.PathLike[str] | None,
    data_root: str | os.PathLike[str],
    num_classes: int | None,
    class_names: Sequence[str] | None = None,
) -> tuple[list[TrainItem], tuple[str, ...] | None]:
    """The items of an annotation list (``ann_file``) or, when ``ann_file`` is None or a folder, of a
    folder-per-class layout; returns them with the class names (from the folders, else ``class_names``)."""
    if ann_file is None or Path(ann_file).is_dir():
        folder = Path(data_root) if ann_file is None else Path(ann_file)
        items, names = class_folder_items(folder, class_names)
        if num_classes is not None and len(names) > num_classes:
            raise TrainDataError(
                f"{folder} has {len(names)} class folders but the model has {num_classes} classes; "
                "pass --num-classes or remove folders"
            )
        return items, names
    if num_classes is None:
        raise TrainDataError("num_classes is needed to check the labels of an annotation list")
    return read_train_list(ann_file, num_classes), tuple(class_names) if class_names is not None else None


# -- datasets -----------------------------------------------------------------------------------------------------

TrainTransform = Callable[[Path, TrainItem, np.random.Generator], tuple[torch.Tensor, int]]
"""``(path, item, rng) -> (clip (C, T, H, W), label)``: decode and augment one item (the label changes only with a
flip label map); see ``trainer.make_train_transform``."""


def resolve_path(data_root: Path, item_id: str, source_format: str = "auto") -> Path:
    """The file or folder an item names (a bare K400-style id finds ``id.<video suffix>``)."""
    return resolve_source(data_root, item_id, source_format)


class TrainDataset(torch.utils.data.Dataset):
    """Random training clips of a list of items. Call :meth:`set_epoch` before each epoch (the trainer does).

    Args:
        items: from :func:`load_items`.
        data_root: folder the item ids are relative to.
        transform: ``(path, item, rng) -> (clip, label)`` (decode + train pipeline).
        seed: the run's seed; sample ``i`` of epoch ``e`` uses :func:`sample_rng` ``(seed, e, i)``.
        source_format: ``'auto'``, ``'video'`` or ``'rawframes'`` (how ids resolve; :mod:`slowonly_zoo.data.formats`).
    """

    def __init__(
        self,
        items: Sequence[TrainItem],
        data_root: str | os.PathLike[str],
        transform: TrainTransform,
        seed: int = 0,
        source_format: str = "auto",
    ) -> None:
        if not items:
            raise TrainDataError("no training items")
        self.items = list(items)
        self.data_root = Path(data_root)
        self.transform = transform
        self.seed = int(seed)
        self.source_format = source_format
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Select the (0-based) epoch whose random draws ``__getitem__`` makes."""
        self.epoch = int(epoch)

    def load(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        """The clip and label of item ``index`` drawn with ``rng``; raises on bad input."""
        item = self.items[index]
        path = resolve_path(self.data_root, item.id, self.source_format)
        if not path.exists():
            kind = "frame folder" if self.source_format == "rawframes" else "video"
            raise FileNotFoundError(f"{kind} not found: {path}")
        return self.transform(path, item, rng)

    def __getitem__(self, index: int) -> TrainSample:
        bad: list[BadSample] = []
        current = int(index)
        for attempt in range(MAX_REPLACEMENTS + 1):
            rng = sample_rng(self.seed, self.epoch, index, attempt)
            try:
                clip, label = self.load(current, rng)
            except BAD_INPUT_ERRORS as exc:
                if isinstance(exc, TrainDataError):
                    raise
                # the replacement comes from this sample's next generator: deterministic, never the same item
                nxt = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index, attempt, 1]))
                replacement = int(nxt.integers(len(self.items) - 1)) if len(self.items) > 1 else current
                if len(self.items) > 1 and replacement >= current:
                    replacement += 1
                bad.append(BadSample(current, self.items[current].id, f"{type(exc).__name__}: {exc}", replacement))
                current = replacement
                continue
            return TrainSample(clip, int(label), int(index), tuple(bad))
        shown = "; ".join(f"{b.id}: {b.error}" for b in bad[:3])
        raise TrainDataError(
            f"{MAX_REPLACEMENTS + 1} samples in a row could not be loaded (e.g. {shown}); check --data-root and "
            "the annotation paths"
        )


class ValDataset(TestDataset):
    """The recipe's validation input: one clip, centre crop (``slowonly_zoo.data``'s test pipeline with the val
    protocol of the recipe). Items yield :class:`slowonly_zoo.data.Sample` (``views`` ``(1, C, T, H, W)`` or an
    ``error``)."""

    def __init__(
        self,
        protocol: Any,
        items: Sequence[TrainItem],
        data_root: str | os.PathLike[str],
        source_format: str = "auto",
    ) -> None:
        from ..data.annotations import Annotation

        if protocol.num_clips != 1 or protocol.crop != "center":
            protocol = dataclasses.replace(protocol, num_clips=1, crop="center")
        annotations = [Annotation(item.id, item.label, item.total_frames) for item in items]
        super().__init__(protocol, "", data_root, source_format, annotations=annotations, decode_thread=False)
