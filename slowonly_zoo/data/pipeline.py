"""The per-entry test pipeline: one video file or frame folder -> the model's test views ``(V, C, T, H, W)``.

It is upstream's test pipeline (spec §3.2-3.3), done in a cheaper order with the same numbers:

1. frame count: the video's packet count (what decord reports) or the annotation's ``total_frames``;
2. frame indices: ``SampleFrames(test_mode=True)`` (0.x offsets by default, see :mod:`.sampling`);
3. decode each distinct frame once (videos: PyAV by decode order up to the last needed frame; folders: only the
   listed JPEGs);
4. ``Resize(-1, S)`` each distinct frame once, on uint8, bit-exact with OpenCV;
5. normalise each distinct resized frame once (per-pixel, so it commutes with cropping);
6. ``ThreeCrop``/``CenterCrop`` and ``FormatShape('NCTHW')`` in one strided copy into the output, view index
   ``crop * num_clips + clip``.

The protocol is any object with the attributes of :class:`slowonly_zoo.index.TestProtocol` (``num_clips``,
``clip_len``, ``frame_interval``, ``resize_short``, ``crop``, ``crop_size``, ``mean``, ``std``, ``normalize``,
``data_format``, ``filename_tmpl``, ``start_index``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .decode import VideoFile
from .rawframes import FLOW_TEMPLATE, RGB_TEMPLATE, count_rawframes, read_flow_frames, read_rgb_frames
from .sampling import SAMPLINGS, sample_frame_indices
from .transforms import (
    apply_table,
    center_crop_offset,
    normalization_table,
    resize_linear,
    resize_short_side_size,
    three_crop_offsets,
)

__all__ = ["DecodedClip", "TestPipeline", "normalize_views"]

FORMATS = ("auto", "video", "rawframes")


@dataclass
class DecodedClip:
    """What :meth:`TestPipeline.decode` returns: distinct resized uint8 frames and how the clips use them."""

    frames: torch.Tensor  #: uint8 (n_distinct, H, W, C), resized
    inverse: torch.Tensor  #: int64 (num_clips * clip_len,): position in ``frames`` of each sampled frame
    indices: np.ndarray  #: (num_clips, clip_len) sampled frame indices (start index included)
    total_frames: int


def _modality(protocol: Any) -> str:
    norm = getattr(protocol, "normalize", "rgb")
    if norm not in ("rgb", "flow"):
        raise ValueError(f"protocol.normalize must be 'rgb' or 'flow', got {norm!r}")
    return norm


def normalize_views(views: torch.Tensor, protocol: Any) -> torch.Tensor:
    """Normalise uint8 views ``(V, C, T, H, W)`` (from ``TestPipeline(..., normalize=False)``) to float32.

    Same numbers as the pipeline's own normalisation; works on any device (e.g. after moving uint8 views to the
    GPU, which moves 4x fewer bytes).
    """
    table = normalization_table(protocol.mean, protocol.std, _modality(protocol))
    return apply_table(views, table, channel_dim=1)


class TestPipeline:
    """Turn a video path or a frame folder into the protocol's test views.

    Args:
        protocol: a :class:`slowonly_zoo.index.TestProtocol` (or any object with its attributes).
        sampling: ``'mmaction0x'`` (default; the spec's ``SampleFrames``, which produced the README numbers) or
            ``'pyslowfast'`` (mmaction2 1.x test offsets; for comparison only).
        normalize: return float32 normalised views (default) or uint8 views (normalise later with
            :func:`normalize_views`, e.g. on the GPU).
        fmt: ``'auto'`` (a directory is a frame folder, a file is a video), ``'video'`` or ``'rawframes'``.

    Calling it returns a tensor ``(V, C, T, H, W)`` with ``V = num_crops * num_clips`` ordered crop-major.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, protocol: Any, sampling: str = "mmaction0x", normalize: bool = True, fmt: str = "auto") -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; choose one of {SAMPLINGS}")
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
        if protocol.crop not in ("three", "center"):
            raise ValueError(f"protocol.crop must be 'three' or 'center', got {protocol.crop!r}")
        self.protocol = protocol
        self.modality = _modality(protocol)
        self.sampling = sampling
        self.normalize = normalize
        self.fmt = fmt

    def __repr__(self) -> str:
        p = self.protocol
        return (
            f"TestPipeline({p.clip_len}x{p.frame_interval}x{p.num_clips}, resize_short={p.resize_short}, "
            f"crop={p.crop}{p.crop_size}, {self.modality}, sampling={self.sampling!r})"
        )

    # -- pieces -------------------------------------------------------------------------------------------------

    def source_format(self, source: str | os.PathLike[str]) -> str:
        """'video' or 'rawframes' for this source (resolving ``fmt='auto'`` by whether it is a directory)."""
        if self.fmt != "auto":
            return self.fmt
        return "rawframes" if Path(source).is_dir() else "video"

    def start_index(self, fmt: str) -> int:
        """Number of the first frame: 0 for decoded videos; the protocol's (upstream: 1) for frame folders."""
        if fmt == "video":
            return 0
        if getattr(self.protocol, "data_format", "rawframes") == "rawframes":
            return int(self.protocol.start_index)
        return 1

    def filename_tmpl(self) -> str:
        tmpl = getattr(self.protocol, "filename_tmpl", None)
        if tmpl:
            return tmpl
        return FLOW_TEMPLATE if self.modality == "flow" else RGB_TEMPLATE

    def frame_indices(self, total_frames: int, start_index: int = 0) -> np.ndarray:
        """Sampled frame indices ``(num_clips, clip_len)``."""
        p = self.protocol
        return sample_frame_indices(total_frames, p.clip_len, p.frame_interval, p.num_clips, start_index, self.sampling)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """Frame size after the protocol's resize (unchanged when it has none)."""
        if self.protocol.resize_short is None:
            return height, width
        return resize_short_side_size(height, width, int(self.protocol.resize_short))

    def crop_offsets(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(top, left)`` of each crop on a resized frame, in upstream's order."""
        size = int(self.protocol.crop_size)
        if self.protocol.crop == "three":
            return three_crop_offsets(height, width, size)
        return [center_crop_offset(height, width, size)]

    def decode(self, source: str | os.PathLike[str], total_frames: int | None = None) -> DecodedClip:
        """Steps 1-4: the distinct sampled frames, decoded and resized (uint8)."""
        fmt = self.source_format(source)
        if fmt == "video":
            if self.modality == "flow":
                raise ValueError(f"a flow protocol needs a frame folder of x_/y_ JPEGs, got the video file {source}")
            with VideoFile(source) as video:
                total = len(video)
                indices = self.frame_indices(total, 0)
                distinct, inverse = np.unique(indices.reshape(-1), return_inverse=True)
                raw = video.read(distinct)
        else:
            tmpl = self.filename_tmpl()
            total = int(total_frames) if total_frames is not None else count_rawframes(source, tmpl, self.modality)
            if total <= 0:
                raise ValueError(f"{source}: no frames (total_frames={total})")
            indices = self.frame_indices(total, self.start_index(fmt))
            distinct, inverse = np.unique(indices.reshape(-1), return_inverse=True)
            reader = read_flow_frames if self.modality == "flow" else read_rgb_frames
            raw = reader(source, distinct, tmpl)
        frames = torch.from_numpy(raw)
        h, w = frames.shape[1:3]
        new_h, new_w = self.resized_size(h, w)
        if (new_h, new_w) != (h, w):
            frames = resize_linear(frames, (new_h, new_w))
        return DecodedClip(frames, torch.from_numpy(inverse.reshape(-1).astype(np.int64)), indices, total)

    def views_from_frames(self, clip: DecodedClip) -> torch.Tensor:
        """Steps 5-6: normalise (optional), crop and lay out ``(V, C, T, H, W)``."""
        p = self.protocol
        frames = clip.frames
        n, h, w, c = frames.shape
        offsets = self.crop_offsets(h, w)
        if self.normalize:
            frames = apply_table(frames, normalization_table(p.mean, p.std, self.modality))
        size = int(p.crop_size)
        num_clips, clip_len = int(p.num_clips), int(p.clip_len)
        out = torch.empty((len(offsets) * num_clips, c, clip_len, size, size), dtype=frames.dtype)
        for k, (top, left) in enumerate(offsets):
            crop = frames[:, top : top + size, left : left + size, :].index_select(0, clip.inverse)
            dst = out[k * num_clips : (k + 1) * num_clips].permute(0, 2, 3, 4, 1)  # (clips, T, H, W, C) view
            dst.copy_(crop.view(num_clips, clip_len, size, size, c))
        return out

    def __call__(self, source: str | os.PathLike[str], total_frames: int | None = None) -> torch.Tensor:
        """Views ``(V, C, T, H, W)`` of one video file or frame folder (float32, or uint8 with ``normalize=False``)."""
        return self.views_from_frames(self.decode(source, total_frames))
