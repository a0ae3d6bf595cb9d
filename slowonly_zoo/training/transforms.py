"""The train-time data pipeline of the upstream recipes, with explicit randomness.

mmaction2 0.24.1's train pipeline (``mmaction/datasets/pipelines/loading.py``, ``augmentations.py``)::

    SampleFrames(clip_len, frame_interval, num_clips=1)   # train mode: random offsets
    RawFrameDecode | DecordInit + DecordDecode
    Resize(scale=(-1, S))                                 # optional (resize_short)
    RandomResizedCrop(area_range, aspect_ratio_range)
    Resize(scale=(out_size, out_size), keep_ratio=False)
    Flip(flip_ratio, flip_label_map)
    Normalize(mean, std)                                  # RGB, or flow's (x - 128) / 128
    FormatShape('NCTHW')

Upstream draws from numpy's and Python's global RNGs; here every draw comes from an explicit
``numpy.random.Generator``, in upstream's order and with the same bounds:

==============================  ============================================  ==========================================
op                              upstream draw                                 here
==============================  ============================================  ==========================================
SampleFrames                    ``np.random.randint(avg, size=n)`` or         ``rng.integers(0, avg, size=n)`` / ``(0,
                                ``np.random.randint(N - L + 1, size=n)``      N - L + 1, size=n)``
RandomResizedCrop aspect        ``np.random.uniform(log lo, log hi, 10)``     ``rng.uniform(log lo, log hi, size=10)``
RandomResizedCrop area          ``np.random.uniform(lo, hi, 10)``             ``rng.uniform(lo, hi, size=10)``
RandomResizedCrop x, y          ``random.randint(0, W - w)``, ``(0, H - h)``  ``rng.integers(0, W - w + 1)``, ...
Flip                            ``np.random.rand() < flip_ratio``             ``rng.random() < flip_ratio``
==============================  ============================================  ==========================================

so the same draws give bit-identical clips (the tests replay this module's draws into 0.24.1's ops). Frames are
decoded by :mod:`slowonly_zoo.data` (only the sampled ones, each once) and resized with its OpenCV-exact bilinear
resize; the validation pipeline is the test pipeline with one clip and a centre crop (:func:`val_pipeline`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from ..data.decode import VideoFile
from ..data.formats import check_source_format, format_of
from ..data.pipeline import TestPipeline
from ..data.rawframes import FLOW_TEMPLATE, RGB_TEMPLATE, count_rawframes, read_flow_frames, read_rgb_frames
from ..data.transforms import Normalizer, resize_linear, resize_short_side_size
from ..errors import TrainTransformError
from ..index import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD, TestProtocol

__all__ = [
    "TrainPipeline",
    "TrainTransformError",
    "flip_frames",
    "random_resized_crop_box",
    "train_clip_indices",
    "train_clip_offsets",
    "val_clip_indices",
    "val_pipeline",
]

CROP_ATTEMPTS = 10
"""``RandomResizedCrop.get_crop_bbox``'s ``max_attempts``."""


def _check_sampling(num_frames: int, clip_len: int, frame_interval: int, num_clips: int) -> None:
    if num_frames <= 0:
        raise TrainTransformError(f"the video has no frames (num_frames={num_frames}); drop it from the annotations")
    if min(clip_len, frame_interval, num_clips) <= 0:
        raise TrainTransformError(
            f"clip_len, frame_interval and num_clips must be positive, got {clip_len}, {frame_interval}, {num_clips}"
        )


def train_clip_offsets(
    num_frames: int, clip_len: int, frame_interval: int, num_clips: int, rng: np.random.Generator
) -> np.ndarray:
    """Start frame of each clip, ``SampleFrames._get_train_clips`` (``keep_tail_frames=False``), int64 ``(num_clips,)``.

    With ``L = clip_len * frame_interval`` and ``avg = (N - L + 1) // num_clips``: ``arange(n) * avg + randint(avg)``
    if ``avg > 0``; else sorted ``randint(N - L + 1)`` if ``N > max(num_clips, L)``; else ``around(arange(n) *
    (N - L + 1) / n)`` if ``avg == 0``; else zeros.
    """
    _check_sampling(num_frames, clip_len, frame_interval, num_clips)
    ori_clip_len = clip_len * frame_interval
    avg_interval = (num_frames - ori_clip_len + 1) // num_clips
    if avg_interval > 0:
        base = np.arange(num_clips) * avg_interval
        return (base + rng.integers(0, avg_interval, size=num_clips)).astype(np.int64)
    if num_frames > max(num_clips, ori_clip_len):
        return np.sort(rng.integers(0, num_frames - ori_clip_len + 1, size=num_clips)).astype(np.int64)
    if avg_interval == 0:
        ratio = (num_frames - ori_clip_len + 1.0) / num_clips
        return np.around(np.arange(num_clips) * ratio).astype(np.int64)
    return np.zeros((num_clips,), dtype=np.int64)


def train_clip_indices(
    num_frames: int,
    clip_len: int,
    frame_interval: int,
    num_clips: int,
    rng: np.random.Generator,
    start_index: int = 0,
) -> np.ndarray:
    """Frame indices ``(num_clips * clip_len,)`` of ``SampleFrames`` in train mode (``out_of_bound_opt='loop'``).

    ``offset + j * frame_interval`` wrapped modulo ``num_frames``, plus ``start_index`` (1 for upstream frame folders).
    """
    offsets = train_clip_offsets(num_frames, clip_len, frame_interval, num_clips, rng)
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return (np.mod(inds, num_frames) + start_index).reshape(-1).astype(np.int64)


def val_clip_indices(
    num_frames: int, clip_len: int, frame_interval: int, num_clips: int = 1, start_index: int = 0
) -> np.ndarray:
    """Frame indices ``(num_clips * clip_len,)`` of ``SampleFrames(test_mode=True)`` (the 0.x validation sampling)."""
    from ..data.sampling import sample_frame_indices

    _check_sampling(num_frames, clip_len, frame_interval, num_clips)
    return sample_frame_indices(num_frames, clip_len, frame_interval, num_clips, start_index).reshape(-1)


def random_resized_crop_box(
    h: int,
    w: int,
    rng: np.random.Generator,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_range: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """``(x, y, crop_w, crop_h)`` of ``RandomResizedCrop.get_crop_bbox`` on an ``h x w`` image.

    Draws 10 log-uniform aspect ratios and 10 uniform area fractions at once; candidate sizes are
    ``round(sqrt(area * ar))`` x ``round(sqrt(area / ar))`` (int32); the first that fits gets uniform integer offsets
    (x first); if none fits, the centred ``min(h, w)`` square (no offset draw).
    """
    if h <= 0 or w <= 0:
        raise TrainTransformError(f"cannot crop a {h}x{w} image")
    if not 0 < area_range[0] <= area_range[1] <= 1:
        raise TrainTransformError(f"area_range must satisfy 0 < low <= high <= 1, got {area_range}")
    if not 0 < aspect_range[0] <= aspect_range[1]:
        raise TrainTransformError(f"aspect_range must satisfy 0 < low <= high, got {aspect_range}")
    area = h * w
    min_ar, max_ar = aspect_range
    aspect_ratios = np.exp(rng.uniform(np.log(min_ar), np.log(max_ar), size=CROP_ATTEMPTS))
    target_areas = rng.uniform(area_range[0], area_range[1], size=CROP_ATTEMPTS) * area
    crop_ws = np.round(np.sqrt(target_areas * aspect_ratios)).astype(np.int32)
    crop_hs = np.round(np.sqrt(target_areas / aspect_ratios)).astype(np.int32)
    for crop_w, crop_h in zip(crop_ws.tolist(), crop_hs.tolist(), strict=True):
        if crop_h <= h and crop_w <= w:
            x = int(rng.integers(0, w - crop_w + 1))
            y = int(rng.integers(0, h - crop_h + 1))
            return x, y, crop_w, crop_h
    side = min(h, w)
    return (w - side) // 2, (h - side) // 2, side, side


def flip_frames(frames: torch.Tensor, modality: str) -> torch.Tensor:
    """Horizontal ``Flip`` of uint8 frames ``(n, H, W, C)``; flow also inverts x (``255 - x``, mmcv ``iminvert``)."""
    out = frames.flip(2)
    if modality == "flow":
        out[..., 0] = 255 - out[..., 0]
    return out


def _resize(frames: torch.Tensor, size: tuple[int, int], modality: str) -> torch.Tensor:
    """OpenCV-exact bilinear resize; flow frames one channel at a time, as upstream resizes each gray x/y image."""
    return resize_linear(frames, size, separate_planes=modality == "flow")


class TrainPipeline:
    """One random training clip from a video file or frame folder, as 0.24.1's train pipeline makes it.

    Args:
        clip_len, frame_interval: the sampling (``num_clips`` is 1 in every recipe; more clips return
            ``(num_clips, C, T, H, W)``).
        resize_short: ``Resize(-1, S)`` before the crop, or ``None`` (K600/K700, Jester: frames stored small).
        out_size: the crop is resized to ``out_size x out_size``.
        flip_ratio: probability of a horizontal flip; ``flip_label_map`` remaps the label when flipped (Jester).
        mean, std: normalisation (defaults: ImageNet RGB, or 128/128 for flow).
        modality: ``"rgb"`` or ``"flow"`` (frame folders of ``x_``/``y_`` JPEGs).
        area_range, aspect_range: ``RandomResizedCrop``'s ranges.
        normalize: return float32 normalised clips (default) or the uint8 clip (normalise later, e.g. on the GPU).
        source_format: ``"auto"`` (a directory is a frame folder), ``"video"`` or ``"rawframes"``.
        filename_tmpl: frame file names (default ``img_{:05}.jpg``, flow ``{}_{:05d}.jpg``).
        start_index: number of a folder's first frame (upstream ``RawframeDataset``: 1); videos always start at 0.

    ``pipeline(source, label, rng, total_frames=None)`` returns ``(clip (C, T, H, W), label)``.
    """

    def __init__(
        self,
        clip_len: int,
        frame_interval: int,
        *,
        num_clips: int = 1,
        resize_short: int | None = 256,
        out_size: int = 224,
        flip_ratio: float = 0.5,
        flip_label_map: Mapping[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        modality: Literal["rgb", "flow"] = "rgb",
        area_range: tuple[float, float] = (0.08, 1.0),
        aspect_range: tuple[float, float] = (3 / 4, 4 / 3),
        normalize: bool = True,
        source_format: str = "auto",
        filename_tmpl: str | None = None,
        start_index: int = 1,
    ) -> None:
        _check_sampling(1, clip_len, frame_interval, num_clips)
        if modality not in ("rgb", "flow"):
            raise TrainTransformError(f"modality must be 'rgb' or 'flow', got {modality!r}")
        if not 0 <= flip_ratio <= 1:
            raise TrainTransformError(f"flip_ratio must be in [0, 1], got {flip_ratio}")
        if out_size <= 0 or (resize_short is not None and resize_short <= 0):
            raise TrainTransformError(f"sizes must be positive, got resize_short={resize_short}, out_size={out_size}")
        random_resized_crop_box(1, 1, np.random.default_rng(0), area_range, aspect_range)  # validates the ranges
        self.clip_len = int(clip_len)
        self.frame_interval = int(frame_interval)
        self.num_clips = int(num_clips)
        self.resize_short = None if resize_short is None else int(resize_short)
        self.out_size = int(out_size)
        self.flip_ratio = float(flip_ratio)
        self.flip_label_map = dict(flip_label_map) if flip_label_map else None
        self.modality = modality
        default_mean, default_std = (FLOW_MEAN, FLOW_STD) if modality == "flow" else (RGB_MEAN, RGB_STD)
        self.mean = tuple(float(m) for m in (mean if mean is not None else default_mean))
        self.std = tuple(float(s) for s in (std if std is not None else default_std))
        channels = 2 if modality == "flow" else 3
        if len(self.mean) != channels or len(self.std) != channels:
            raise TrainTransformError(f"{modality} needs {channels} mean and std values, got {self.mean}, {self.std}")
        self.area_range = (float(area_range[0]), float(area_range[1]))
        self.aspect_range = (float(aspect_range[0]), float(aspect_range[1]))
        self.normalize = normalize
        self.source_format = check_source_format(source_format)
        self.filename_tmpl = filename_tmpl or (FLOW_TEMPLATE if modality == "flow" else RGB_TEMPLATE)
        self.start_index = int(start_index)
        self._normalizer = Normalizer(self.mean, self.std, modality) if normalize else None

    def __repr__(self) -> str:
        return (
            f"TrainPipeline({self.clip_len}x{self.frame_interval}x{self.num_clips}, resize_short={self.resize_short}, "
            f"crop area={self.area_range} aspect={self.aspect_range} -> {self.out_size}, flip={self.flip_ratio}, "
            f"{self.modality})"
        )

    # -- pieces -------------------------------------------------------------------------------------------------

    def decode(
        self, source: str | os.PathLike[str], rng: np.random.Generator, total_frames: int | None = None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Sample the clip's frame indices (one draw) and decode the distinct frames.

        Returns the distinct uint8 frames ``(n, H, W, C)`` and, for each of the ``num_clips * clip_len`` sampled
        frames, its position among them.
        """
        if format_of(source, self.source_format) == "video":
            if self.modality == "flow":
                raise TrainTransformError(f"flow training reads frame folders of x_/y_ JPEGs, got the video {source}")
            with VideoFile(source) as video:
                total = len(video) if total_frames is None else int(total_frames)
                indices = train_clip_indices(total, self.clip_len, self.frame_interval, self.num_clips, rng, 0)
                distinct, inverse = np.unique(indices, return_inverse=True)
                raw = video.read(distinct)
        else:
            total = (
                int(total_frames)
                if total_frames is not None
                else count_rawframes(source, self.filename_tmpl, self.modality)
            )
            indices = train_clip_indices(
                total, self.clip_len, self.frame_interval, self.num_clips, rng, self.start_index
            )
            distinct, inverse = np.unique(indices, return_inverse=True)
            reader = read_flow_frames if self.modality == "flow" else read_rgb_frames
            raw = reader(source, distinct, self.filename_tmpl)
        return torch.from_numpy(np.ascontiguousarray(raw)), inverse.reshape(-1)

    def augment(self, frames: torch.Tensor, label: int, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        """Resize, random-resized-crop, resize, flip (draws in that order) uint8 frames ``(n, H, W, C)``."""
        if self.resize_short is not None:
            h, w = frames.shape[1:3]
            size = resize_short_side_size(h, w, self.resize_short)
            if size != (h, w):
                frames = _resize(frames, size, self.modality)
        h, w = frames.shape[1:3]
        x, y, crop_w, crop_h = random_resized_crop_box(h, w, rng, self.area_range, self.aspect_range)
        frames = frames[:, y : y + crop_h, x : x + crop_w]
        frames = _resize(frames, (self.out_size, self.out_size), self.modality)
        if rng.random() < self.flip_ratio:
            frames = flip_frames(frames, self.modality)
            if self.flip_label_map is not None:
                label = self.flip_label_map.get(label, label)
        return frames, label

    def format(self, frames: torch.Tensor, inverse: np.ndarray) -> torch.Tensor:
        """Gather the sampled frames, normalise, ``FormatShape('NCTHW')``: ``(C, T, H, W)`` (or with clips first)."""
        clip = frames[torch.from_numpy(inverse.astype(np.int64))]
        if self._normalizer is not None:
            clip = self._normalizer(clip)
        _, h, w, c = clip.shape
        clip = clip.reshape(self.num_clips, self.clip_len, h, w, c).permute(0, 4, 1, 2, 3).contiguous()
        return clip[0] if self.num_clips == 1 else clip

    def __call__(
        self,
        source: str | os.PathLike[str],
        label: int,
        rng: np.random.Generator,
        total_frames: int | None = None,
    ) -> tuple[torch.Tensor, int]:
        frames, inverse = self.decode(source, rng, total_frames)
        frames, label = self.augment(frames, int(label), rng)
        return self.format(frames, inverse), label


def val_pipeline(
    clip_len: int,
    frame_interval: int,
    *,
    resize_short: int | None = 256,
    crop_size: int = 224,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    modality: Literal["rgb", "flow"] = "rgb",
    source_format: str = "auto",
    filename_tmpl: str | None = None,
    start_index: int = 1,
    normalize: bool = True,
) -> TestPipeline:
    """The recipes' validation pipeline: ``SampleFrames(test_mode=True, num_clips=1)``, ``Resize(-1, S)``,
    ``CenterCrop(crop_size)``, Normalize, ``FormatShape`` -- the test pipeline with one clip and a centre crop.

    Calling it returns ``(1, C, T, crop, crop)``.
    """
    flow = modality == "flow"
    protocol = TestProtocol(
        num_clips=1,
        clip_len=int(clip_len),
        frame_interval=int(frame_interval),
        resize_short=resize_short,
        crop="center",
        crop_size=int(crop_size),
        mean=tuple(mean if mean is not None else (FLOW_MEAN if flow else RGB_MEAN)),
        std=tuple(std if std is not None else (FLOW_STD if flow else RGB_STD)),
        normalize=modality,
        average_clips="prob",
        data_format="rawframes",
        filename_tmpl=filename_tmpl or (FLOW_TEMPLATE if flow else RGB_TEMPLATE),
        start_index=int(start_index),
    )
    return TestPipeline(
        protocol, normalize=normalize, source_format=check_source_format(source_format), decode_thread=False
    )
