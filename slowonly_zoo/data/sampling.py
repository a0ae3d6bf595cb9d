"""Test-time clip sampling: which frames of a video go into each clip.

The default, ``'mmaction0x'``, is mmaction2 0.x's ``SampleFrames(test_mode=True)`` (``mmaction/datasets/pipelines/
loading.py``), the sampler behind
every number in the upstream 0.x README. ``'pyslowfast'`` is mmaction2 1.x's test sampling (PySlowFast-style evenly
spaced offsets, mmaction 1.2.0 ``mmaction/datasets/transforms/loading.py`` ``SampleFrames._get_test_clips``): the
test pipeline uses it for the index's 1.x entries (protocol Sampling 'mmaction1x'); on 0.x entries it is a
comparison only and does **not** reproduce their README numbers.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

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
# FAIR's test sampling (index protocols with Sampling 'pyslowfast-decoder' / 'segment-middle'). Frame plans for
# TestPipeline(frame_plan=...); verify and predict do not run FAIR's protocols yet (they refuse those entries).
# ----------------------------------------------------------------------------------------------------------


def pyslowfast_decoder_indices(
    total_frames: int, fps: float, clip_len: int, frame_interval: int, num_clips: int, target_fps: float = 30.0
) -> np.ndarray:
    """0-based frame indices ``(num_clips, clip_len)`` as PySlowFast's test decoder picks them (SlowFast
    ``slowfast/datasets/decoder.py`` ``get_start_end_idx`` and ``temporal_sampling``, as
    ../shared/reference/fair_slow_checkpoints.md section 1c reads them).

    The clip spans ``frame_interval * (clip_len - 1)`` frames at ``target_fps``, i.e. ``window = frame_interval *
    (clip_len - 1) * fps / target_fps`` frames of the video; clip ``k`` starts at ``delta * k / num_clips`` with
    ``delta = max(total_frames - 1 - window, 0)``; its frames are ``linspace(start, start + window, clip_len)``,
    clamped to the video and truncated to integers (``torch.linspace(...).clamp(...).long()``).

    This is the window model of the reference notes, not yet PySlowFast's exact indices, which depend on its
    version and decoding backend: e.g. its current PyAV path decodes ``ceil(frame_interval * (clip_len - 1) * fps /
    target_fps)`` frames from the clip start, then takes ``linspace(0, frame_interval * clip_len * fps / target_fps
    - 1, clip_len)`` clamped into them (SlowFast ``slowfast/datasets/decoder.py`` ``pyav_decode``, ``decode``), so
    its last frame can repeat. verify and predict do not run FAIR's protocols until that is settled.
    """
    if total_frames <= 0 or fps <= 0 or target_fps <= 0:
        raise ValueError(f"total_frames, fps and target_fps must be positive, got {total_frames}, {fps}, {target_fps}")
    if clip_len <= 0 or frame_interval <= 0 or num_clips <= 0:
        raise ValueError(
            f"clip_len, frame_interval and num_clips must be positive, got {clip_len}, {frame_interval}, {num_clips}"
        )
    window = frame_interval * (clip_len - 1) * fps / target_fps
    delta = max(total_frames - 1 - window, 0.0)
    starts = delta * np.arange(num_clips) / num_clips
    step = window / (clip_len - 1) if clip_len > 1 else 0.0  # torch.linspace's step (exact for integer spans)
    indices = starts[:, None] + step * np.arange(clip_len)[None, :]
    return np.clip(indices, 0, total_frames - 1).astype(np.int64)


def segment_middle_indices(total_frames: int, num_segments: int) -> np.ndarray:
    """0-based frame indices ``(1, num_segments)``: the middle frame of each of ``num_segments`` equal segments of
    the whole video, the test sampling of FAIR's Something-Something V2 model (SlowFast ``slowfast/datasets/
    ssv2.py`` ``get_seq_frames``, test mode: ``seg = (N - 1) / num_segments``, frame ``(round(seg * i) +
    round(seg * (i + 1))) // 2``; numpy's round, half to even)."""
    if total_frames <= 0 or num_segments <= 0:
        raise ValueError(f"total_frames and num_segments must be positive, got {total_frames}, {num_segments}")
    seg = (total_frames - 1) / num_segments
    bounds = np.round(seg * np.arange(num_segments + 1)).astype(np.int64)
    return ((bounds[:-1] + bounds[1:]) // 2)[None, :]
