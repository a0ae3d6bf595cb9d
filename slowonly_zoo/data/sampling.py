"""Test-time clip sampling: which frames of a video go into each clip.

The default, ``'mmaction0x'``, is mmaction2 0.x's ``SampleFrames(test_mode=True)`` (spec §3.2), the sampler behind
every number in the upstream README. ``'pyslowfast'`` is mmaction2 1.x's test sampling (PySlowFast-style evenly
spaced offsets); it is offered for comparison only and does **not** reproduce the README numbers.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["SAMPLINGS", "Sampling", "clip_offsets", "sample_frame_indices"]

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
