"""A torch ``Dataset`` over an annotation list: one :class:`Sample` (all test views of one video) per item.

Bad inputs (missing, empty, truncated or undecodable videos, missing frame files, frames too small for the crop) do
not raise: the sample comes back with ``views=None`` and ``error`` saying what went wrong, so an evaluation run can
count and report them. ``strict=True`` raises instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .annotations import Annotation, read_annotations
from .decode import VideoDecodeError
from .pipeline import TestPipeline
from .rawframes import FrameReadError

__all__ = ["Sample", "TestDataset", "collate"]

_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg")


@dataclass
class Sample:
    """One video's test input: ``views`` ``(V, C, T, H, W)`` or ``None`` with ``error`` set."""

    id: str
    label: int
    views: torch.Tensor | None
    error: str | None = None


def _protocol_of(entry_or_protocol: Any) -> Any:
    protocol = getattr(entry_or_protocol, "protocol", entry_or_protocol)
    if protocol is None:
        name = getattr(entry_or_protocol, "name", "this entry")
        raise ValueError(f"{name} has no test protocol; evaluation needs one")
    return protocol


class TestDataset(torch.utils.data.Dataset):
    """Test views of every video of an annotation list.

    Args:
        entry: a :class:`slowonly_zoo.index.ModelEntry` (its ``protocol`` is used) or a ``TestProtocol``.
        ann_file: upstream video list, rawframe list or K400 validation list (see :mod:`.annotations`).
        data_root: folder the list's paths are relative to.
        fmt: ``'auto'`` (each item: a folder is a frame folder, a file a video; ids without extension are looked
            up as ``id.*``), ``'video'`` or ``'rawframes'``.
        sampling: ``'mmaction0x'`` (default, reproduces the README) or ``'pyslowfast'``.
        strict: raise on the first bad video instead of returning an error sample.
        normalize: float32 views (default) or uint8 views (normalise later with ``normalize_views``, e.g. on the
            model's device: 4x fewer bytes through the DataLoader and to the GPU).
        decode_thread: per video, decode in one worker thread while another resizes, normalises and crops (default);
            ``False`` does it all in the calling thread (the DataLoader worker).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        entry: Any,
        ann_file: str | os.PathLike[str],
        data_root: str | os.PathLike[str],
        fmt: str = "auto",
        sampling: str = "mmaction0x",
        strict: bool = False,
        normalize: bool = True,
        annotations: list[Annotation] | None = None,
        decode_thread: bool = True,
    ) -> None:
        self.protocol = _protocol_of(entry)
        self.data_root = Path(data_root)
        self.fmt = fmt
        self.strict = strict
        self.pipeline = TestPipeline(
            self.protocol, sampling=sampling, normalize=normalize, fmt=fmt, decode_thread=decode_thread
        )
        self.annotations = annotations if annotations is not None else read_annotations(ann_file)

    def __len__(self) -> int:
        return len(self.annotations)

    def resolve(self, ann: Annotation) -> Path:
        """The file or folder an annotation names (``id`` under ``data_root``; a bare K400 id finds ``id.*``)."""
        path = self.data_root / ann.id
        if path.exists() or self.fmt == "rawframes":
            return path
        if not path.suffix or path.suffix.lower() not in _VIDEO_SUFFIXES:
            matches = sorted(p for p in path.parent.glob(path.name + ".*") if p.suffix.lower() in _VIDEO_SUFFIXES)
            if matches:
                return matches[0]
        return path

    def load(self, ann: Annotation) -> torch.Tensor:
        """Views of one annotation; raises on bad input."""
        path = self.resolve(ann)
        if not path.exists():
            kind = "frame folder" if self.fmt == "rawframes" else "video"
            raise FileNotFoundError(f"{kind} not found: {path}")
        fmt = self.pipeline.source_format(path)
        if fmt == "video" and path.is_dir():
            raise ValueError(f"{path} is a folder but fmt='video'")
        if fmt == "rawframes" and not path.is_dir():
            raise ValueError(f"{path} is not a frame folder (fmt='rawframes')")
        return self.pipeline(path, ann.total_frames if fmt == "rawframes" else None)

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
