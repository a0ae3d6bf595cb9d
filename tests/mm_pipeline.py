"""mmaction2's own test pipeline, as the reference for the data-pipeline parity tests (and the model-level ones).

Runs mmaction2 1.2.0's transforms (``DecordInit``/``DecordDecode`` or ``PyAVDecode``, ``RawFrameDecode``, ``Resize``,
``ThreeCrop``/``CenterCrop``, ``FormatShape``) for a slowonly-zoo test protocol. Two deliberate substitutions make it
mmaction2 0.x's pipeline, the one behind the README numbers:

* ``SampleFrames`` keeps 1.x's code for everything except the test-mode clip offsets, which are 0.x's
  (0.x ``mmaction/datasets/pipelines/loading.py``, written out here independently of
  ``slowonly_zoo.data.sampling``);
* normalisation is 0.x's ``Normalize`` (mmcv ``imnormalize_``: ``cv2.subtract``/``cv2.multiply`` per frame for
  RGB; ``(x - 128) / 128`` in numpy float32 for flow) instead of 1.x's ``ActionDataPreprocessor``.

Only the tests import this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from reference import import_mmaction

__all__ = ["decord_frame_count", "mmaction_views", "sample_0x_offsets"]


def sample_0x_offsets(num_frames: int, clip_len: int, frame_interval: int, num_clips: int) -> np.ndarray:
    """mmaction2 0.x ``SampleFrames._get_test_clips`` (``mmaction/datasets/pipelines/loading.py``)."""
    ori_clip_len = clip_len * frame_interval
    avg_interval = (num_frames - ori_clip_len + 1) / float(num_clips)
    if num_frames > ori_clip_len - 1:
        base_offsets = np.arange(num_clips) * avg_interval
        return (base_offsets + avg_interval / 2.0).astype(np.int64)
    return np.zeros((num_clips,), dtype=np.int64)


def decord_frame_count(path: str | os.PathLike[str]) -> int:
    """``len(decord.VideoReader)``, the frame count upstream's ``DecordInit`` reports."""
    import decord

    return len(decord.VideoReader(str(path), num_threads=1))


def _sample_frames(protocol: Any, sampling: str = "0x"):
    import_mmaction()
    from mmaction.datasets.transforms import SampleFrames

    if sampling == "1x":  # mmaction2 1.x's own test offsets, unmodified
        return SampleFrames(
            clip_len=protocol.clip_len,
            frame_interval=protocol.frame_interval,
            num_clips=protocol.num_clips,
            test_mode=True,
        )

    class SampleFrames0x(SampleFrames):
        def _get_test_clips(self, num_frames, ori_clip_len):
            return sample_0x_offsets(num_frames, self.clip_len, self.frame_interval, self.num_clips)

    return SampleFrames0x(
        clip_len=protocol.clip_len, frame_interval=protocol.frame_interval, num_clips=protocol.num_clips, test_mode=True
    )


def _normalize_0x(views: np.ndarray, protocol: Any) -> np.ndarray:
    """0.x ``Normalize`` applied to FormatShape'd uint8 views ``(V, C, T, H, W)``; returns float32, same layout."""
    import mmcv

    v, c, t, h, w = views.shape
    frames = np.ascontiguousarray(views.transpose(0, 2, 3, 4, 1).reshape(v * t, h, w, c))
    mean = np.array(protocol.mean, dtype=np.float32)
    std = np.array(protocol.std, dtype=np.float32)
    if protocol.normalize == "flow":
        out = np.empty(frames.shape, dtype=np.float32)
        for ch in range(c):
            plane = frames[..., ch].astype(np.float32)
            out[..., ch] = (plane - mean[ch]) / std[ch]
    else:
        out = np.empty(frames.shape, dtype=np.float32)
        out[...] = frames
        for img in out:
            mmcv.imnormalize_(img, mean, std, False)
    return np.ascontiguousarray(out.reshape(v, t, h, w, c).transpose(0, 4, 1, 2, 3))


def mmaction_views(
    protocol: Any,
    source: str | os.PathLike[str],
    total_frames: int | None = None,
    decoder: str = "decord",
    normalize: bool = True,
    sampling: str = "0x",
) -> np.ndarray:
    """mmaction2's test views ``(V, C, T, H, W)`` of ``source`` under ``protocol`` (float32, or uint8).

    ``source`` is a video file or a frame folder (decided by whether it is a directory). For videos,
    ``decoder='decord'`` is upstream's ``DecordDecode`` (``mode='accurate'``: seeks per frame); ``decoder='pyav'``
    is mmaction2's ``PyAVDecode`` (``mode='accurate'``: an in-order decode), for files where decord's seeking is
    wrong. Either way ``total_frames`` is decord's count, as ``DecordInit`` reports it. ``sampling='1x'`` keeps
    mmaction2 1.x's own test offsets instead of 0.x's.
    """
    import_mmaction()
    from mmaction.datasets.transforms import (
        CenterCrop,
        DecordDecode,
        DecordInit,
        FormatShape,
        PyAVDecode,
        RawFrameDecode,
        Resize,
        ThreeCrop,
    )

    source = Path(source)
    pipeline: list[Any] = []
    if source.is_dir():
        modality = "Flow" if protocol.normalize == "flow" else "RGB"
        tmpl = protocol.filename_tmpl or ("{}_{:05d}.jpg" if modality == "Flow" else "img_{:05}.jpg")
        if total_frames is None:
            raise ValueError("mmaction_views needs total_frames for a frame folder (upstream reads it from the list)")
        results: dict[str, Any] = dict(
            frame_dir=str(source),
            total_frames=int(total_frames),
            filename_tmpl=tmpl,
            modality=modality,
            start_index=int(protocol.start_index) if protocol.data_format == "rawframes" else 1,
            offset=0,
        )
        pipeline += [_sample_frames(protocol, sampling), RawFrameDecode(io_backend="disk", decoding_backend="cv2")]
    else:
        results = dict(filename=str(source), start_index=0, modality="RGB")
        results = DecordInit(num_threads=1).transform(results)
        if decoder == "decord":
            pipeline += [_sample_frames(protocol, sampling), DecordDecode(mode="accurate")]
        elif decoder == "pyav":
            import av

            def _open_pyav(res: dict[str, Any]) -> dict[str, Any]:
                res["video_reader"] = av.open(str(source))
                return res

            pipeline += [_sample_frames(protocol, sampling), _open_pyav, PyAVDecode(mode="accurate")]
        else:
            raise ValueError(f"decoder must be 'decord' or 'pyav', got {decoder!r}")
    if protocol.resize_short is not None:
        pipeline.append(Resize(scale=(-1, int(protocol.resize_short)), keep_ratio=True))
    if protocol.crop == "three":
        pipeline.append(ThreeCrop(crop_size=int(protocol.crop_size)))
    else:
        pipeline.append(CenterCrop(crop_size=int(protocol.crop_size)))
    pipeline.append(FormatShape(input_format="NCTHW"))
    for step in pipeline:
        results = step(results) if callable(step) and not hasattr(step, "transform") else step.transform(results)
    views = np.asarray(results["imgs"])
    if views.dtype != np.uint8:
        raise AssertionError(f"expected uint8 views from mmaction2's pipeline, got {views.dtype}")
    return _normalize_0x(views, protocol) if normalize else views


# -- test clips and frame folders written by the tests ---------------------------------------------------------------


def synthetic_frame(i: int, height: int, width: int) -> np.ndarray:
    """A deterministic moving RGB pattern (uint8 ``(H, W, 3)``), different for every frame index."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 3 + i * 5) % 256, (yy * 2 + i * 7) % 256, (xx + yy + i * 11) % 256], -1).astype(np.uint8)
    band = (i * 3) % max(height - 8, 1)
    img[band : band + 8, :, :] = 255 - img[band : band + 8, :, :]
    return img


def write_clip(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    frames: int,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    max_b_frames: int | None = None,
    container_format: str | None = None,
) -> Path:
    """Encode a synthetic clip with PyAV (e.g. libx264 with B-frames, or MPEG-4 Part 2 in AVI)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.options = options
        if max_b_frames is not None:
            stream.codec_context.max_b_frames = max_b_frames
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, height, width), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_rgb_folder(
    folder: str | os.PathLike[str], frames: np.ndarray, tmpl: str = "img_{:05}.jpg", start: int = 1
) -> Path:
    """Write RGB frames ``(n, H, W, 3)`` as JPEGs with OpenCV (as upstream's extraction tools do)."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(frames):
        ok = cv2.imwrite(str(folder / tmpl.format(k + start)), np.ascontiguousarray(img[..., ::-1]))
        assert ok
    return folder


def write_flow_folder(
    folder: str | os.PathLike[str], n: int, height: int, width: int, tmpl: str = "{}_{:05d}.jpg", start: int = 1
) -> Path:
    """Write ``n`` synthetic grayscale flow pairs ``x_00001.jpg``/``y_00001.jpg`` ... with OpenCV."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = synthetic_frame(k, height, width)
        for axis, plane in (("x", img[..., 0]), ("y", img[..., 1])):
            assert cv2.imwrite(str(folder / tmpl.format(axis, k + start)), plane)
    return folder
