"""Test-time data pipeline: videos and frame folders -> the upstream test views ``(V, C, T, H, W)``."""

from __future__ import annotations

from .annotations import Annotation, AnnotationError, read_annotations
from .dataset import Sample, TestDataset, collate
from .decode import VideoDecodeError, VideoFile, count_frames, read_frames
from .formats import FRAME_SUFFIXES, SOURCE_FORMATS, VIDEO_EXTENSIONS
from .pipeline import ClipPlan, FramePlan, TestPipeline, normalize_views
from .rawframes import (
    FrameReadError,
    count_rawframes,
    find_rgb_template,
    is_frame_folder,
    read_flow_frames,
    read_rgb_frames,
)
from .sampling import SAMPLINGS, clip_offsets, sample_frame_indices
from .transforms import LinearResizer, Normalizer, resize_linear, resize_short_side_size

__all__ = [
    "FRAME_SUFFIXES",
    "SAMPLINGS",
    "SOURCE_FORMATS",
    "VIDEO_EXTENSIONS",
    "Annotation",
    "AnnotationError",
    "ClipPlan",
    "FramePlan",
    "FrameReadError",
    "LinearResizer",
    "Normalizer",
    "Sample",
    "TestDataset",
    "TestPipeline",
    "VideoDecodeError",
    "VideoFile",
    "clip_offsets",
    "collate",
    "count_frames",
    "count_rawframes",
    "find_rgb_template",
    "is_frame_folder",
    "normalize_views",
    "read_annotations",
    "read_flow_frames",
    "read_frames",
    "read_rgb_frames",
    "resize_linear",
    "resize_short_side_size",
    "sample_frame_indices",
]
