"""The per-entry test pipeline: one video file or frame folder -> the model's test views ``(V, C, T, H, W)``.

It is upstream's test pipeline (spec §3.2-3.3), done in a cheaper order with the same numbers:

1. frame count: the video's packet count (what decord reports) or the annotation's ``total_frames``;
2. frame indices: ``SampleFrames(test_mode=True)`` (0.x offsets by default, see :mod:`.sampling`);
3. decode each distinct frame once (videos: PyAV by decode order up to the last needed frame, converting only the
   needed frames to RGB; folders: only the listed JPEGs);
4. ``Resize(-1, S)`` each distinct frame once, on uint8, bit-exact with OpenCV;
5. normalise each distinct resized frame once (per-pixel, so it commutes with cropping);
6. ``ThreeCrop``/``CenterCrop`` and ``FormatShape('NCTHW')``: each crop copied straight into its slots of the output,
   view index ``crop * num_clips + clip``.

Calling the pipeline streams: step 3 runs in a background thread while steps 4-6 run frame by frame as frames
arrive (see :mod:`.views`). :meth:`TestPipeline.decode` + :meth:`TestPipeline.views_from_frames` do the same steps
in two stages, keeping the resized uint8 frames in between.

The protocol is any object with the attributes of :class:`slowonly_zoo.index.TestProtocol` (``num_clips``,
``clip_len``, ``frame_interval``, ``resize_short``, ``crop``, ``crop_size``, ``mean``, ``std``, ``normalize``,
``data_format``, ``filename_tmpl``, ``start_index``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .decode import VideoFile
from .rawframes import (
    FLOW_TEMPLATE,
    RGB_TEMPLATE,
    count_rawframes,
    iter_flow_frames,
    iter_rgb_frames,
    read_flow_frames,
    read_rgb_frames,
)
from .sampling import SAMPLINGS, sample_frame_indices
from .threads import run_serially
from .transforms import Normalizer, center_crop_offset, resize_linear, resize_short_side_size, three_crop_offsets
from .views import ViewWriter, assemble_views

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
    return _normalizer(tuple(protocol.mean), tuple(protocol.std), _modality(protocol), str(views.device))(
        views, channel_dim=1
    )


@functools.lru_cache(maxsize=16)
def _normalizer(mean: tuple[float, ...], std: tuple[float, ...], kind: str, device: str) -> Normalizer:
    return Normalizer(mean, std, kind, device)


def _numbered(frames: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
    """``(position, frame)`` in increasing position order -> ``(distinct number, frame)``."""
    try:
        for k, (_, frame) in enumerate(frames):
            yield k, frame
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


class TestPipeline:
    """Turn a video path or a frame folder into the protocol's test views.

    Args:
        protocol: a :class:`slowonly_zoo.index.TestProtocol` (or any object with its attributes).
        sampling: ``'mmaction0x'`` (default; the spec's ``SampleFrames``, which produced the README numbers) or
            ``'pyslowfast'`` (mmaction2 1.x test offsets; for comparison only).
        normalize: return float32 normalised views (default) or uint8 views (normalise later with
            :func:`normalize_views`, e.g. on the GPU).
        fmt: ``'auto'`` (a directory is a frame folder, a file is a video), ``'video'`` or ``'rawframes'``.
        decode_thread: use worker threads (default): one decodes while another resizes, normalises and crops the
            frames already decoded, and both write frames once decoding is done; their torch ops run serially (see
            :mod:`.threads`). ``False`` does everything in the calling thread, with its torch settings.

    Calling it returns a tensor ``(V, C, T, H, W)`` with ``V = num_crops * num_clips`` ordered crop-major.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        protocol: Any,
        sampling: str = "mmaction0x",
        normalize: bool = True,
        fmt: str = "auto",
        decode_thread: bool = True,
    ) -> None:
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
        self.decode_thread = decode_thread

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

    def normalizer(self) -> Normalizer | None:
        """The exact normalisation of this protocol on the CPU, or ``None`` with ``normalize=False``."""
        if not self.normalize:
            return None
        p = self.protocol
        return _normalizer(tuple(p.mean), tuple(p.std), self.modality, "cpu")

    def writer(
        self, inverse: np.ndarray, num_clips: int, clip_len: int, frame_size: tuple[int, int, int]
    ) -> ViewWriter:
        """A :class:`~.views.ViewWriter` for frames of ``frame_size`` (before the resize) sampled as ``inverse``."""
        h, w, _ = frame_size
        new_h, new_w = self.resized_size(h, w)
        offsets = self.crop_offsets(new_h, new_w)
        return ViewWriter(
            inverse,
            num_clips,
            clip_len,
            frame_size,
            (new_h, new_w),
            offsets,
            int(self.protocol.crop_size),
            self.normalizer(),
        )

    def _check_video(self, source: str | os.PathLike[str]) -> None:
        if self.modality == "flow":
            raise ValueError(f"a flow protocol needs a frame folder of x_/y_ JPEGs, got the video file {source}")

    def _folder_plan(
        self, source: str | os.PathLike[str], fmt: str, total_frames: int | None
    ) -> tuple[int, np.ndarray]:
        tmpl = self.filename_tmpl()
        total = int(total_frames) if total_frames is not None else count_rawframes(source, tmpl, self.modality)
        if total <= 0:
            raise ValueError(f"{source}: no frames (total_frames={total})")
        return total, self.frame_indices(total, self.start_index(fmt))

    def decode(self, source: str | os.PathLike[str], total_frames: int | None = None) -> DecodedClip:
        """Steps 1-4: the distinct sampled frames, decoded and resized (uint8)."""
        fmt = self.source_format(source)
        if fmt == "video":
            self._check_video(source)
            with VideoFile(source) as video:
                total = len(video)
                indices = self.frame_indices(total, 0)
                distinct, inverse = np.unique(indices.reshape(-1), return_inverse=True)
                raw = video.read(distinct)
        else:
            total, indices = self._folder_plan(source, fmt, total_frames)
            distinct, inverse = np.unique(indices.reshape(-1), return_inverse=True)
            reader = read_flow_frames if self.modality == "flow" else read_rgb_frames
            raw = reader(source, distinct, self.filename_tmpl())
        frames = torch.from_numpy(raw)
        h, w = frames.shape[1:3]
        new_h, new_w = self.resized_size(h, w)
        if (new_h, new_w) != (h, w):
            frames = resize_linear(frames, (new_h, new_w))
        return DecodedClip(frames, torch.from_numpy(inverse.reshape(-1).astype(np.int64)), indices, total)

    def views_from_frames(self, clip: DecodedClip) -> torch.Tensor:
        """Steps 5-6: normalise (optional), crop and lay out ``(V, C, T, H, W)``."""
        frames = clip.frames
        n, h, w, c = frames.shape
        num_clips, clip_len = clip.indices.shape
        offsets = self.crop_offsets(h, w)
        writer = ViewWriter(
            clip.inverse.numpy(),
            num_clips,
            clip_len,
            (h, w, c),
            (h, w),
            offsets,
            int(self.protocol.crop_size),
            self.normalizer(),
        )

        def write_all() -> torch.Tensor:
            for d in range(n):
                writer.write(d, frames[d])
            return writer.result()

        return run_serially(write_all) if self.decode_thread else write_all()

    def __call__(self, source: str | os.PathLike[str], total_frames: int | None = None) -> torch.Tensor:
        """Views ``(V, C, T, H, W)`` of one video file or frame folder (float32, or uint8 with ``normalize=False``)."""
        cls = type(self)
        if cls.decode is not TestPipeline.decode or cls.views_from_frames is not TestPipeline.views_from_frames:
            return self.views_from_frames(self.decode(source, total_frames))  # a subclass changed a stage
        fmt = self.source_format(source)
        if fmt == "video":
            self._check_video(source)
            with VideoFile(source) as video:
                indices = self.frame_indices(len(video), 0)
                distinct, inverse = np.unique(indices.reshape(-1), return_inverse=True)
                frames = _numbered(video.iter_frames(distinct))
                return assemble_views(
                    frames, lambda size: self.writer(inverse, *indices.shape, size), self.decode_thread
                )
        _, indices = self._folder_plan(source, fmt, total_frames)
        distinct, inverse = np.unique(indices.reshape(-1), return_inverse=True)
        reader = iter_flow_frames if self.modality == "flow" else iter_rgb_frames
        frames = _numbered(reader(source, distinct, self.filename_tmpl()))
        return assemble_views(frames, lambda size: self.writer(inverse, *indices.shape, size), self.decode_thread)
