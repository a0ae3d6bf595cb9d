"""The per-entry test pipeline: one video file or frame folder -> the model's test views ``(V, C, T, H, W)``.

It is upstream's test pipeline (mmaction2 0.x ``configs/recognition/slowonly/*.py`` ``test_pipeline``:
``SampleFrames(test_mode=True)``, ``DecordDecode`` / ``RawFrameDecode``, ``Resize((-1, S))``, ``ThreeCrop`` /
``CenterCrop``, ``Normalize``, ``FormatShape('NCTHW')``), done in a cheaper order with the same numbers:

1. frame count: the video's packet count (what decord reports) or the annotation's ``total_frames``;
2. frame indices: ``SampleFrames(test_mode=True)`` (0.x offsets by default, see :mod:`.sampling`), or any other
   frame-index plan passed in (``frame_plan``, e.g. the sliding windows of :mod:`slowonly_zoo.features`);
3. decode each distinct frame once (videos: PyAV by decode order up to the last needed frame, converting only the
   needed frames to RGB; folders: only the listed JPEGs);
4. ``Resize(-1, S)`` each distinct frame once, on uint8, bit-exact with OpenCV;
5. normalise each distinct resized frame once (per-pixel, so it commutes with cropping);
6. ``ThreeCrop``/``CenterCrop`` and ``FormatShape('NCTHW')``: each crop copied straight into its slots of the output,
   view index ``crop * num_clips + clip``.

There is one code path and it streams: step 3 runs in a background thread while steps 4-6 run frame by frame as
frames arrive (see :mod:`.views`). :meth:`TestPipeline.run` also returns the :class:`ClipPlan` (frame count and
sampled indices) for callers that record where each clip starts.

FAIR's protocols (index Sampling 'pyslowfast-decoder' / 'segment-middle', ../shared/reference/fair_slow_checkpoints.md
section 1c) run through the same path with PySlowFast's rules in steps 2, 4 and 6: the frames of
:func:`.sampling.pyslowfast_decoder_indices` (with the video's frame rate and time base) or
:func:`.sampling.segment_middle_indices`; the short side scaled to ``resize_short`` with the long side
``floor(long / short * S)`` and no resize when the short side already is ``S`` (SlowFast
``slowfast/datasets/transform.py`` ``random_short_side_scale_jitter``); crops at ``ceil((side - S) / 2)`` and the two
ends of the long side, in ``spatial_idx`` order 0, 1, 2 (``uniform_crop``). One difference remains: PySlowFast
resizes the normalised float frames with ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``,
this pipeline resizes the uint8 frames with OpenCV's bilinear (the same half-pixel sampling grid, 11-bit weights,
rounded to uint8) and normalises after, so pixels differ by under one grey level (at most 0.79 / 255 / 0.225 in
normalised units on the clip of tests/test_fair_protocols.py); exact parity would need a float resize of every frame.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import UnsupportedProtocolError
from ..index.records import MMACTION2_SAMPLINGS
from .decode import VideoFile
from .formats import check_source_format, format_of
from .rawframes import FLOW_TEMPLATE, RGB_TEMPLATE, count_rawframes, iter_flow_frames, iter_rgb_frames
from .sampling import SAMPLINGS, pyslowfast_decoder_indices, sample_frame_indices, segment_middle_indices
from .transforms import Normalizer, center_crop_offset, resize_short_side_size, three_crop_offsets
from .views import ViewWriter, assemble_views

if TYPE_CHECKING:
    from ..index import TestProtocol

__all__ = ["ClipPlan", "FramePlan", "TestPipeline", "fair_crop_offsets", "normalize_views"]

FramePlan = Callable[[int, int], np.ndarray]
"""``(total_frames, start_index) -> frame indices (num_clips, clip_len)``, start index included: which frames make
each clip. The default is the protocol's ``SampleFrames(test_mode=True)``."""


@dataclass(frozen=True)
class ClipPlan:
    """Which frames of one source the pipeline sampled (what :meth:`TestPipeline.run` returns with the views)."""

    source_format: str  #: 'video' or 'rawframes'
    total_frames: int
    start_index: int  #: number of the first frame (0 for videos, the protocol's for frame folders)
    indices: np.ndarray  #: (num_clips, clip_len) sampled frame numbers, ``start_index`` included


def fair_crop_offsets(height: int, width: int, size: int, num_crops: int) -> list[tuple[int, int]]:
    """``(top, left)`` of PySlowFast's test crops (SlowFast ``slowfast/datasets/transform.py`` ``uniform_crop``):
    centre at ``ceil((side - size) / 2)``; with 3 crops, ``spatial_idx`` 0, 1, 2 = top, centre, bottom when the
    frame is taller than wide, else left, centre, right. One crop is the centre one (``spatial_idx`` 1)."""
    if height < size or width < size:
        raise ValueError(f"a {size}x{size} crop does not fit a {height}x{width} frame")
    top, left = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
    if num_crops == 1:
        return [(top, left)]
    if height > width:
        return [(0, left), (top, left), (height - size, left)]
    return [(top, 0), (top, left), (top, width - size)]


def _modality(protocol: TestProtocol) -> str:
    norm = protocol.normalize
    if norm not in ("rgb", "flow"):
        raise ValueError(f"protocol.normalize must be 'rgb' or 'flow', got {norm!r}")
    return norm


def normalize_views(views: torch.Tensor, protocol: TestProtocol) -> torch.Tensor:
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
        protocol: the entry's :class:`slowonly_zoo.index.TestProtocol`.
        sampling: ``None`` (default): the protocol's own test offsets (mmaction2 0.x ``SampleFrames`` for the 0.x
            entries, which produced their README numbers; mmaction2 1.x's for protocols with Sampling
            'mmaction1x'); ``'mmaction0x'`` or ``'pyslowfast'`` (mmaction2 1.x's offsets) forces one, for comparison.
        normalize: return float32 normalised views (default) or uint8 views (normalise later with
            :func:`normalize_views`, e.g. on the GPU).
        source_format: ``'auto'`` (a directory is a frame folder, a file is a video), ``'video'`` or
            ``'rawframes'`` (see :mod:`.formats`).
        decode_thread: use worker threads (default): one decodes while another resizes, normalises and crops the
            frames already decoded, and both write frames once decoding is done; their torch ops run serially (see
            :mod:`.threads`). ``False`` does everything in the calling thread, with its torch settings.
        frame_plan: which frames make the clips (a :data:`FramePlan`); default: the protocol's test sampling
            (``num_clips`` clips of ``clip_len`` frames every ``frame_interval``, by ``sampling``).

    Calling it returns a tensor ``(V, C, T, H, W)`` with ``V = num_crops * num_clips`` ordered crop-major.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        protocol: TestProtocol,
        sampling: str | None = None,
        normalize: bool = True,
        source_format: str = "auto",
        decode_thread: bool = True,
        frame_plan: FramePlan | None = None,
    ) -> None:
        if sampling is not None and sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; choose one of {SAMPLINGS}")
        self.fair = getattr(protocol, "sampling", "mmaction0x") not in MMACTION2_SAMPLINGS
        if sampling is not None and self.fair:
            raise UnsupportedProtocolError(
                f"sampling={sampling!r} chooses between mmaction2's test offsets; this protocol samples "
                f"{protocol.sampling!r} clips (FAIR's), so leave sampling unset"
            )
        check_source_format(source_format)
        if protocol.crop not in ("three", "center"):
            raise ValueError(f"protocol.crop must be 'three' or 'center', got {protocol.crop!r}")
        self.protocol = protocol
        self.modality = _modality(protocol)
        self.sampling = sampling if sampling is not None else getattr(protocol, "data_sampling", "mmaction0x")
        self.normalize = normalize
        self.source_format = source_format
        self.decode_thread = decode_thread
        self.frame_plan = frame_plan

    def __repr__(self) -> str:
        p = self.protocol
        plan = "" if self.frame_plan is None else ", frame_plan=custom"
        return (
            f"TestPipeline({p.clip_len}x{p.frame_interval}x{p.num_clips}, resize_short={p.resize_short}, "
            f"crop={p.crop}{p.crop_size}, {self.modality}, sampling={self.sampling!r}{plan})"
        )

    # -- pieces -------------------------------------------------------------------------------------------------

    def format_of(self, source: str | os.PathLike[str]) -> str:
        """'video' or 'rawframes' for this source (resolving ``source_format='auto'`` by whether it is a folder)."""
        return format_of(source, self.source_format)

    def start_index(self, source_format: str) -> int:
        """Number of the first frame: 0 for decoded videos; the protocol's (upstream: 1) for frame folders."""
        if source_format == "video":
            return 0
        if self.protocol.data_format == "rawframes":
            return int(self.protocol.start_index)
        return 1

    def filename_tmpl(self) -> str:
        """The frame-file template of a frame folder: the protocol's, else upstream's default for the modality."""
        if self.protocol.filename_tmpl:
            return self.protocol.filename_tmpl
        return FLOW_TEMPLATE if self.modality == "flow" else RGB_TEMPLATE

    def frame_indices(
        self, total_frames: int, start_index: int = 0, fps: float | None = None, pts_per_frame: float | None = None
    ) -> np.ndarray:
        """Sampled frame indices ``(num_clips, clip_len)``: the ``frame_plan``'s, or the protocol's test clips.

        ``fps`` / ``pts_per_frame``: the video's average frame rate and time base per frame, which PySlowFast's
        decoder sampling needs (:func:`.sampling.pyslowfast_decoder_indices`); frame folders have neither, and are
        taken to hold frames at the protocol's ``target_fps``, sampled like a video without a declared duration."""
        if self.frame_plan is not None:
            indices = np.asarray(self.frame_plan(total_frames, start_index))
            if indices.ndim != 2 or indices.size == 0:
                raise ValueError(f"a frame plan must give (num_clips, clip_len) indices, got shape {indices.shape}")
            return indices
        p = self.protocol
        if p.sampling == "pyslowfast-decoder":
            target = float(p.target_fps or 30.0)
            inds = pyslowfast_decoder_indices(
                total_frames, fps or target, p.clip_len, p.frame_interval, p.num_clips, target, pts_per_frame
            )
            return inds + start_index
        if p.sampling == "segment-middle":
            return np.repeat(segment_middle_indices(total_frames, p.clip_len), p.num_clips, axis=0) + start_index
        if self.fair:
            raise UnsupportedProtocolError(f"the test pipeline does not know the sampling {p.sampling!r}")
        return sample_frame_indices(total_frames, p.clip_len, p.frame_interval, p.num_clips, start_index, self.sampling)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """Frame size after the protocol's resize (unchanged when it has none)."""
        if self.protocol.resize_short is None:
            return height, width
        size = int(self.protocol.resize_short)
        if self.fair:  # SlowFast transform.py random_short_side_scale_jitter: floor, and no-op at the size
            if (width <= height and width == size) or (height <= width and height == size):
                return height, width
            if width < height:
                return math.floor(float(height) / width * size), size
            return size, math.floor(float(width) / height * size)
        return resize_short_side_size(height, width, size)

    def crop_offsets(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(top, left)`` of each crop on a resized frame, in upstream's order."""
        size = int(self.protocol.crop_size)
        if self.fair:
            return fair_crop_offsets(height, width, size, 3 if self.protocol.crop == "three" else 1)
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
            separate_planes=self.modality == "flow",
        )

    def _assemble(self, frames: Iterator[tuple[int, np.ndarray]], indices: np.ndarray) -> torch.Tensor:
        """Steps 4-6 over the distinct frames ``frames`` yields (numbered in increasing order)."""
        _, inverse = np.unique(indices.reshape(-1), return_inverse=True)
        num_clips, clip_len = indices.shape
        return assemble_views(frames, lambda size: self.writer(inverse, num_clips, clip_len, size), self.decode_thread)

    # -- the pipeline -------------------------------------------------------------------------------------------

    def run(self, source: str | os.PathLike[str], total_frames: int | None = None) -> tuple[ClipPlan, torch.Tensor]:
        """Which frames were sampled, and the views ``(V, C, T, H, W)`` of one video file or frame folder.

        ``total_frames``: a frame folder's frame count as the annotation list gives it (default: counted, as
        upstream's file-list tools count); videos are always counted by the decoder.
        """
        source_format = self.format_of(source)
        start = self.start_index(source_format)
        if source_format == "video":
            if self.modality == "flow":
                raise ValueError(f"a flow protocol needs a frame folder of x_/y_ JPEGs, got the video file {source}")
            with VideoFile(source) as video:
                total = len(video)
                indices = self.frame_indices(total, start, video.fps, video.pts_per_frame)
                plan = ClipPlan(source_format, total, start, indices)
                distinct = np.unique(plan.indices.reshape(-1))
                return plan, self._assemble(_numbered(video.iter_frames(distinct)), plan.indices)
        tmpl = self.filename_tmpl()
        total = int(total_frames) if total_frames is not None else count_rawframes(source, tmpl, self.modality)
        if total <= 0:
            raise ValueError(f"{source}: no frames (total_frames={total})")
        plan = ClipPlan(source_format, total, start, self.frame_indices(total, start))
        distinct = np.unique(plan.indices.reshape(-1))
        reader = iter_flow_frames if self.modality == "flow" else iter_rgb_frames
        return plan, self._assemble(_numbered(reader(source, distinct, tmpl)), plan.indices)

    def __call__(self, source: str | os.PathLike[str], total_frames: int | None = None) -> torch.Tensor:
        """Views ``(V, C, T, H, W)`` of one video file or frame folder (float32, or uint8 with ``normalize=False``)."""
        return self.run(source, total_frames)[1]
