"""A torch ``Dataset`` over an annotation list: one :class:`Sample` (all test views of one video) per item.

Bad inputs (missing, empty, truncated or undecodable videos, missing frame files, frames too small for the crop) do
not raise: the sample comes back with ``views=None`` and ``error`` saying what went wrong, so an evaluation run can
count and report them. ``strict=True`` raises instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..index import ModelEntry, TestProtocol
from .annotations import Annotation, read_annotations
from .decode import VideoDecodeError
from .formats import resolve_source
from .pipeline import TestPipeline
from .rawframes import FrameReadError

__all__ = ["Sample", "TestDataset", "collate"]


@dataclass
class Sample:
    """One video's test input: ``views`` ``(V, C, T, H, W)`` or ``None`` with ``error`` set."""

    id: str
    label: int
    views: torch.Tensor | None
    error: str | None = None


def _protocol_of(entry_or_protocol: ModelEntry | TestProtocol) -> TestProtocol:
    if isinstance(entry_or_protocol, TestProtocol):
        return entry_or_protocol
    if entry_or_protocol.protocol is None:
        raise ValueError(f"{entry_or_protocol.name} has no test protocol; evaluation needs one")
    return entry_or_protocol.protocol


class TestDataset(torch.utils.data.Dataset):
    """Test views of every video of an annotation list.

    Args:
        entry: a :class:`slowonly_zoo.index.ModelEntry` (its ``protocol`` is used) or a ``TestProtocol``.
        ann_file: upstream video list, rawframe list or K400 validation list (see :mod:`.annotations`).
        data_root: folder the list's paths are relative to.
        source_format: ``'auto'`` (each item: a folder is a frame folder, a file a video; ids without extension
            are looked up as ``id.*``), ``'video'`` or ``'rawframes'`` (see :mod:`.formats`).
        sampling: ``None`` (default: the protocol's own test offsets, which produced its reported numbers),
            ``'mmaction0x'`` or ``'pyslowfast'`` (mmaction2 1.x's offsets) to force one.
        strict: raise on the first bad video instead of returning an error sample.
        normalize: float32 views (default) or uint8 views (normalise later with ``normalize_views``, e.g. on the
            model's device: 4x fewer bytes through the DataLoader and to the GPU).
        decode_thread: per video, decode in one worker thread while another resizes, normalises and crops (default);
            ``False`` does it all in the calling thread (the DataLoader worker).
        num_classes: refuse list lines whose label is outside ``0 .. num_classes - 1`` (default: the entry's
            ``num_classes``; no check for a bare ``TestProtocol``).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        entry: ModelEntry | TestProtocol,
        ann_file: str | os.PathLike[str],
        data_root: str | os.PathLike[str],
        source_format: str = "auto",
        sampling: str | None = None,
        strict: bool = False,
        normalize: bool = True,
        annotations: list[Annotation] | None = None,
        decode_thread: bool = True,
        num_classes: int | None = None,
    ) -> None:
        self.protocol = _protocol_of(entry)
        self.data_root = Path(data_root)
        self.source_format = source_format
        self.strict = strict
        self.pipeline = TestPipeline(
            self.protocol,
            sampling=sampling,
            normalize=normalize,
            source_format=source_format,
            decode_thread=decode_thread,
        )
        if num_classes is None and isinstance(entry, ModelEntry):
            num_classes = entry.num_classes
        self.annotations = (
            annotations if annotations is not None else read_annotations(ann_file, num_classes=num_classes)
        )

    def __len__(self) -> int:
        return len(self.annotations)

    def resolve(self, ann: Annotation) -> Path:
        """The file or folder an annotation names (``id`` under ``data_root``; a bare K400 id finds ``id.*``)."""
        return resolve_source(self.data_root, ann.id, self.source_format)

    def load(self, ann: Annotation) -> torch.Tensor:
        """Views of one annotation; raises on bad input."""
        path = self.resolve(ann)
        if not path.exists():
            what = "frame folder" if self.source_format == "rawframes" else "video"
            raise FileNotFoundError(f"{what} not found: {path}")
        source_format = self.pipeline.format_of(path)
        if source_format == "video" and path.is_dir():
            raise ValueError(f"{path} is a folder but source_format='video'")
        if source_format == "rawframes" and not path.is_dir():
            raise ValueError(f"{path} is not a frame folder (source_format='rawframes')")
        return self.pipeline(path, ann.total_frames if source_format == "rawframes" else None)

    def __getitem__(self, index: int) -> Sample:
        ann = self.annotations[index]
        try:
            views = self.load(ann)
        except (VideoDecodeError, FrameReadError, FileNotFoundError, ValueError, IndexError, OSError) as exc:
            if self.strict:
                raise
            return Sample(ann.id, ann.label, None, f"{type(exc).__name__}: {exc}")
        return Sample(ann.id, ann.label, views, None)


def collate(samples: list[Sample]) -> list[Sample]:
    """DataLoader ``collate_fn`` keeping samples as a list (each video has its own stack of views)."""
    return list(samples)
