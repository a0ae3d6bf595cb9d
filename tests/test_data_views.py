"""Streaming view assembly: the threaded path equals the single-threaded path bit for bit, errors from either worker
thread reach the caller, and no worker thread outlives a call."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from mm_pipeline import write_clip

from slowonly_zoo.data.decode import VideoDecodeError
from slowonly_zoo.data.pipeline import TestPipeline
from slowonly_zoo.data.threads import run_serially, serial_torch_in_this_thread
from slowonly_zoo.data.views import ViewWriter, assemble_views
from slowonly_zoo.index import get_model_info


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("slowonly-zoo-")]


@pytest.mark.parametrize("normalize", [True, False])
def test_threaded_and_inline_paths_agree(shared_videos, normalize):
    p = get_model_info("slowonly_r50_8x8x1_k400").protocol
    path = shared_videos / "archery.avi"  # 320x240: resized to 256x341
    threaded = TestPipeline(p, normalize=normalize)(path)
    inline = TestPipeline(p, normalize=normalize, decode_thread=False)(path)
    assert threaded.dtype == (torch.float32 if normalize else torch.uint8)
    assert threaded.shape == (30, 3, 8, 256, 256) and threaded.is_contiguous()
    assert torch.equal(threaded, inline)
    assert not _workers()


def test_decoder_error_in_worker_thread_reaches_caller(shared_videos, monkeypatch):
    """A decoding failure after some frames (as on a corrupt file) is raised to the caller as VideoDecodeError."""
    from slowonly_zoo.data import decode

    real = decode.VideoFile.iter_frames

    def fails_midway(self, indices):
        for k, item in enumerate(real(self, indices)):
            if k == 5:
                raise VideoDecodeError(self.path, "decoding failed at frame 40 (InvalidDataError: corrupt)")
            yield item

    monkeypatch.setattr(decode.VideoFile, "iter_frames", fails_midway)
    p = get_model_info("slowonly_r50_4x16x1_k400").protocol
    with pytest.raises(VideoDecodeError, match="chaplin.mp4.*corrupt"):
        TestPipeline(p)(shared_videos / "chaplin.mp4")
    assert not _workers()


def test_writer_error_stops_the_decoder(tmp_path):
    """A writing error (here: a frame too small for ThreeCrop without resize) is raised and the decoder stops."""
    path = write_clip(tmp_path / "portrait.mp4", 144, 256, 40)
    p = get_model_info("slowonly_r50_8x8x1_k600").protocol  # no resize: ThreeCrop(256) needs a 256-pixel side
    with pytest.raises(ValueError, match="ThreeCrop"):
        TestPipeline(p)(path)
    assert not _workers()


def test_assemble_views_reports_source_errors_and_missing_frames():
    writer_args = dict(num_clips=1, clip_len=2, resized=(4, 4), offsets=[(0, 0)], crop_size=4, normalizer=None)

    def make(size):
        return ViewWriter(np.array([0, 1]), frame_size=size, **writer_args)

    def broken():
        yield 0, np.zeros((4, 4, 3), np.uint8)
        raise OSError("disk went away")

    for threaded in (True, False):
        with pytest.raises(OSError, match="disk went away"):
            assemble_views(broken(), make, threaded=threaded)
        with pytest.raises(RuntimeError, match="never written"):
            assemble_views(iter([(0, np.zeros((4, 4, 3), np.uint8))]), make, threaded=threaded)
        with pytest.raises(ValueError, match="no frames"):
            assemble_views(iter([]), make, threaded=threaded)
    assert not _workers()


def test_serial_torch_only_in_the_worker_thread():
    before = torch.get_num_threads()
    seen = []

    def worker():
        serial_torch_in_this_thread()
        seen.append(torch.get_num_threads())

    if not torch.backends.openmp.is_available():
        pytest.skip("this torch build has no OpenMP: serial_torch_in_this_thread has nothing to set")
    torch.set_num_threads(2)  # a team to leave: with one thread the check below could not fail
    try:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert torch.get_num_threads() == 2
        assert seen == [1]
    finally:
        torch.set_num_threads(before)


def test_run_serially_returns_and_raises_like_the_function():
    assert run_serially(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError, match="nope"):
        run_serially({}.__getitem__, "nope")
    assert not _workers()
