"""Test-time clip sampling: which frames of a video go into each clip.

The default, ``'mmaction0x'``, is mmaction2 0.x's ``SampleFrames(test_mode=True)`` (``mmaction/datasets/pipelines/
loading.py``), the sampler behind
every number in the upstream 0.x README. ``'pyslowfast'`` is mmaction2 1.x's test sampling (PySlowFast-style evenly
spaced offsets, mmaction 1.2.0 ``mmaction/datasets/transforms/loading.py`` ``SampleFrames._get_test_clips``): the
test pipeline uses it for the index's 1.x entries (protocol Sampling 'mmaction1x'); on 0.x entries it is a
comparison only and does **not** reproduce their README numbers.

FAIR's protocols have their own samplers below: PySlowFast's decoder (:func:`pyslowfast_decoder_indices`, which needs
the video's frame rate and time base) and the middle frame of each segment (:func:`segment_middle_indices`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

__all__ = [
    "SAMPLINGS",
    "Sampling",
    "clip_offsets",
    "pyslowfast_decoder_indices",
    "sample_frame_indices",
    "segment_middle_indices",
]

Sampling = Literal["mmaction0x", "pyslowfast"]
SAMPLINGS: tuple[str, ...] = ("mmaction0x", "pyslowfast")


def clip_offsets(
    total_frames: int, clip_len: int, frame_interval: int, num_clips: int, sampling: str = "mmaction0x"
) -> np.ndarray:
    """0-based start frame of each of the ``num_clips`` test clips (int64 array).

    ``'mmaction0x'``: with ``L = clip_len * frame_interval`` and ``avg = (N - L + 1) / num_clips`` (float), offsets
    are ``int(i * avg + avg / 2)`` when ``N > L - 1`` and all 0 otherwise.

    ``'pyslowfast'`` (mmaction2 1.x): ``max_off = max(N - ((clip_len - 1) * frame_interval + 1), 0)`` and offsets
    ``round(i * max_off / (num_clips - 1))`` (numpy's round half to even), or ``max_off // 2`` for a single clip.
    """
    if total_frames <= 0:
        raise ValueError(f"total_frames must be positive, got {total_frames}")
    if clip_len <= 0 or frame_interval <= 0 or num_clips <= 0:
        raise ValueError(
            f"clip_len, frame_interval and num_clips must be positive, got {clip_len}, {frame_interval}, {num_clips}"
        )
    if sampling == "mmaction0x":
        ori_clip_len = clip_len * frame_interval
        avg_interval = (total_frames - ori_clip_len + 1) / float(num_clips)
        if total_frames > ori_clip_len - 1:
            base = np.arange(num_clips) * avg_interval
            return (base + avg_interval / 2.0).astype(np.int64)
        return np.zeros((num_clips,), dtype=np.int64)
    if sampling == "pyslowfast":
        ori_clip_len = (clip_len - 1) * frame_interval + 1
        max_offset = max(total_frames - ori_clip_len, 0)
        if num_clips > 1:
            num_segments = num_clips - 1
            return np.around(np.arange(num_clips) * (max_offset / num_segments)).astype(np.int64)
        return np.array([max_offset // 2], dtype=np.int64)
    raise ValueError(
        f"unknown sampling {sampling!r}; choose one of {SAMPLINGS} ('mmaction0x' reproduces the README numbers)"
    )


def sample_frame_indices(
    total_frames: int,
    clip_len: int,
    frame_interval: int,
    num_clips: int,
    start_index: int = 0,
    sampling: str = "mmaction0x",
) -> np.ndarray:
    """Frame indices ``(num_clips, clip_len)`` of the test clips, as upstream feeds them to the decoder.

    ``offset + j * frame_interval`` for ``j < clip_len``, wrapped modulo ``total_frames`` (``out_of_bound_opt='loop'``,
    so short videos repeat from the start), plus ``start_index`` (1 for rawframe folders, whose files are numbered
    from 1; 0 for videos).
    """
    offsets = clip_offsets(total_frames, clip_len, frame_interval, num_clips, sampling)
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    inds = np.mod(inds, total_frames)
    return (inds + start_index).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# FAIR's test sampling (index protocols with Sampling 'pyslowfast-decoder' / 'segment-middle'); TestPipeline uses
# them for those protocols, with the video's own frame rate and time base (slowonly_zoo/data/pipeline.py).
# ----------------------------------------------------------------------------------------------------------


def _check_fair(total_frames: int, fps: float, clip_len: int, frame_interval: int, num_clips: int, target_fps: float):
    if total_frames <= 0 or fps <= 0 or target_fps <= 0:
        raise ValueError(f"total_frames, fps and target_fps must be positive, got {total_frames}, {fps}, {target_fps}")
    if clip_len <= 0 or frame_interval <= 0 or num_clips <= 0:
        raise ValueError(
            f"clip_len, frame_interval and num_clips must be positive, got {clip_len}, {frame_interval}, {num_clips}"
        )


def _linspace_long(start: float, end: float, steps: int, last: int) -> np.ndarray:
    """SlowFast ``slowfast/datasets/decoder.py`` ``temporal_sampling``: ``torch.linspace`` (float32, torch's own
    arithmetic), clamped to ``[0, last]``, then ``.long()`` (truncation toward zero)."""
    index = torch.linspace(start, end, steps)
    return torch.clamp(index, 0, last).long().numpy()


def pyslowfast_decoder_indices(
    total_frames: int,
    fps: float,
    clip_len: int,
    frame_interval: int,
    num_clips: int,
    target_fps: float = 30.0,
    pts_per_frame: float | None = None,
) -> np.ndarray:
    """0-based frame indices ``(num_clips, clip_len)`` of PySlowFast's test clips (Kinetics ``kinetics.py`` test
    mode, whose frames come from SlowFast ``slowfast/datasets/decoder.py`` ``decode`` with its PyAV backend).

    The rules, each from that file:

    * ``get_start_end_idx(video_size, clip_size, clip_idx, num_clips)``: ``clip_size = frame_interval * clip_len *
      fps / target_fps`` frames (the clip's span at ``target_fps`` in the video's own frames), ``delta =
      max(video_size - clip_size, 0)``, clip ``k`` starts at ``delta * k / num_clips`` and ends ``clip_size - 1``
      frames later (floats);
    * ``pyav_decode`` when the stream declares a duration (``pts_per_frame`` = stream duration / frame count, the
      file's "timebase"): the start and end become ``int(index * pts_per_frame)`` timestamps,
      ``pyav_decode_stream`` keeps the frames with ``start_pts <= pts <= end_pts`` plus the first frame past
      ``end_pts`` (``buffer_size=0``), and ``decode`` samples that list with ``get_start_end_idx(len, clip_size,
      0, 1)``, i.e. ``linspace(0, clip_size - 1, clip_len)`` clamped to the list;
    * without a duration (``pts_per_frame=None``) it decodes the whole video and samples ``linspace(start, end,
      clip_len)`` clamped to the video;
    * ``temporal_sampling``: ``torch.linspace``, ``torch.clamp(0, n - 1)``, ``.long()``.

    Frame ``i`` is taken to have the timestamp ``i * pts_per_frame`` (a constant-rate stream starting at 0, as
    Kinetics' re-encoded clips are); ``fps`` is the stream's average rate (``float(stream.average_rate)``). Read from
    SlowFast's ``decoder.py`` at commits 163ad2e and 70af7f6 (the same rules). The pytorchvideo ``.pyth`` entries'
    numbers came through pytorchvideo's time-based clip sampler instead (``ptv_datasets.py``), which picks the same
    frames to within one position for videos longer than the clip; tests/test_fair_protocols.py compares the two.
    """
    _check_fair(total_frames, fps, clip_len, frame_interval, num_clips, target_fps)
    clip_size = frame_interval * clip_len / target_fps * fps  # decoder.py's order of operations
    delta = max(total_frames - clip_size, 0)
    out = np.empty((num_clips, clip_len), dtype=np.int64)
    for k in range(num_clips):
        start = delta * k / num_clips
        end = start + clip_size - 1
        if pts_per_frame is None:  # decode_all_video: sample the whole video directly
            out[k] = _linspace_long(start, end, clip_len, total_frames - 1)
            continue
        start_pts, end_pts = int(start * pts_per_frame), int(end * pts_per_frame)
        first = math.ceil(start_pts / pts_per_frame)  # first frame with i * pts_per_frame >= start_pts
        if first * pts_per_frame < start_pts:  # float guard
            first += 1
        inside = math.floor(end_pts / pts_per_frame)  # last frame with i * pts_per_frame <= end_pts
        if inside * pts_per_frame > end_pts:
            inside -= 1
        last = min(inside + 1, total_frames - 1)  # + the one frame past end_pts that the decode loop keeps
        if first > last:
            raise ValueError(f"no frame of the {total_frames}-frame video falls in clip {k} (start {start:.2f})")
        out[k] = first + _linspace_long(0, clip_size - 1, clip_len, last - first)
    return out


def segment_middle_indices(total_frames: int, num_segments: int) -> np.ndarray:
    """0-based frame indices ``(1, num_segments)``: the middle frame of each of ``num_segments`` equal segments of
    the whole video, the test sampling of FAIR's Something-Something V2 model (PySlowFast ``ptv_datasets.py``
    ``Ptvssv2`` uses pytorchvideo 0.1.5 ``pytorchvideo/data/ssv2.py`` ``SSv2._sample_clip_frames``; SlowFast
    ``slowfast/datasets/ssv2.py`` ``get_seq_frames`` has the same test rule): ``seg = (N - 1) / num_segments``,
    frame ``(round(seg * i) + round(seg * (i + 1))) // 2`` (numpy's round, half to even). Shorter videos repeat
    frames."""
    if total_frames <= 0 or num_segments <= 0:
        raise ValueError(f"total_frames and num_segments must be positive, got {total_frames}, {num_segments}")
    seg = (total_frames - 1) / num_segments
    bounds = np.round(seg * np.arange(num_segments + 1)).astype(np.int64)
    return ((bounds[:-1] + bounds[1:]) // 2)[None, :]
