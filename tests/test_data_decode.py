"""PyAV decoding by decode order: frame counts equal decord's, frames equal an in-order decode, clear errors."""

from __future__ import annotations

import shutil

import decord
import numpy as np
import pytest
from mm_pipeline import write_clip

from slowonly_zoo.data.decode import VideoDecodeError, VideoFile, count_frames, read_frames

REAL = {"archery.avi": 131, "arm_wrestling.mp4": 280, "chaplin.mp4": 241, "cleaning_pool_32f.mp4": 32}


def _decord_in_order(path) -> np.ndarray:
    reader = decord.VideoReader(str(path), num_threads=1)
    return np.stack([reader.next().asnumpy() for _ in range(len(reader))])


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_clips_count_and_frames(shared_videos, name):
    path = shared_videos / name
    n = count_frames(path)
    assert n == len(decord.VideoReader(str(path), num_threads=1)) == REAL[name]
    idx = np.array([n - 1, 0, 5, 5, n // 2, 3])
    ours = read_frames(path, idx)
    assert ours.dtype == np.uint8 and ours.shape[0] == len(idx) and ours.shape[-1] == 3
    assert np.array_equal(ours, decord.VideoReader(str(path), num_threads=1).get_batch(idx).asnumpy())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "bframes_x264.mp4": write_clip(d / "bframes_x264.mp4", 176, 144, 50, options={"bf": "3", "g": "12"}),
        "portrait.mp4": write_clip(d / "portrait.mp4", 144, 256, 30),
        "odd_width.mp4": write_clip(d / "odd_width.mp4", 175, 100, 20, pix_fmt="yuv444p"),
        "short.mp4": write_clip(d / "short.mp4", 64, 48, 5),
        "bframes_mpeg4.avi": write_clip(
            d / "bframes_mpeg4.avi", 160, 120, 60, codec="mpeg4", max_b_frames=2, container_format="avi"
        ),
    }


@pytest.mark.parametrize(
    "name", ["bframes_x264.mp4", "portrait.mp4", "odd_width.mp4", "short.mp4", "bframes_mpeg4.avi"]
)
def test_generated_clips_count_and_in_order_frames(generated, name):
    path = generated[name]
    with VideoFile(path) as video:
        n = len(video)
        assert n == len(decord.VideoReader(str(path), num_threads=1))
        idx = np.arange(n)[::-1][::3]
        ours = video.read(idx)
    assert np.array_equal(ours, _decord_in_order(path)[idx])


def test_decord_seeking_is_wrong_on_bframe_avi_we_match_in_order(generated):
    """decord's get_batch (upstream's DecordDecode) seeks and returns wrong frames on MPEG-4 AVI with B-frames;
    our frames equal the in-order decode instead (the reference doc's finding, reproduced on a generated file)."""
    path = generated["bframes_mpeg4.avi"]
    n = count_frames(path)
    idx = np.arange(n)[::-1][::3]
    seeking = decord.VideoReader(str(path), num_threads=1).get_batch(idx).asnumpy()
    in_order = _decord_in_order(path)[idx]
    ours = read_frames(path, idx)
    assert np.array_equal(ours, in_order)
    assert not np.array_equal(seeking, in_order), "decord no longer mis-seeks here; the test premise changed"


def test_errors_name_file_and_reason(tmp_path, generated):
    with pytest.raises(VideoDecodeError, match="file not found") as info:
        count_frames(tmp_path / "missing.mp4")
    assert info.value.path.endswith("missing.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        read_frames(empty, [0])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        read_frames(garbage, [0])
    # truncated: keep the header and part of the data; either fewer frames, or an error when reading the end
    src = generated["bframes_x264.mp4"]
    data = src.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="truncated.mp4"):
        n = count_frames(truncated)
        read_frames(truncated, [n - 1])
    folder = tmp_path / "a_folder.mp4"
    folder.mkdir()
    with pytest.raises(VideoDecodeError, match="not a regular file"):
        count_frames(folder)


def test_index_out_of_range(generated, tmp_path):
    path = shutil.copy(generated["short.mp4"], tmp_path / "s.mp4")
    with pytest.raises(IndexError):
        read_frames(path, [5])
