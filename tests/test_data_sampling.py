"""Test-clip frame indices against examples of mmaction2 0.x ``SampleFrames``
(``mmaction/datasets/pipelines/loading.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from slowonly_zoo.data.sampling import clip_offsets, sample_frame_indices


def test_spec_4x16x10_n300_start1():
    inds = sample_frame_indices(300, 4, 16, 10, start_index=1)
    assert inds.shape == (10, 4)
    assert inds[0].tolist() == [12, 28, 44, 60]
    assert inds[9].tolist() == [226, 242, 258, 274]


def test_spec_4x16x10_n50_every_clip_loops():
    inds = sample_frame_indices(50, 4, 16, 10, start_index=1)
    assert all(row == [1, 17, 33, 49] for row in inds.tolist())


def test_spec_8x4x10_n37_offsets():
    assert clip_offsets(37, 8, 4, 10).tolist() == [0, 0, 1, 2, 2, 3, 3, 4, 5, 5]


def test_reference_doc_280_frames_0x_vs_1x():
    assert sample_frame_indices(280, 4, 16, 10)[0].tolist() == [10, 26, 42, 58]
    assert sample_frame_indices(280, 4, 16, 10, sampling="pyslowfast")[0].tolist() == [0, 16, 32, 48]


def test_fewer_frames_than_one_clip_wraps_modulo():
    # N=20 < L=64: all offsets 0, indices wrap ('loop'), then + start_index
    inds = sample_frame_indices(20, 8, 8, 10, start_index=0)
    assert (inds == (np.arange(8) * 8) % 20).all()
    inds = sample_frame_indices(5, 4, 16, 10, start_index=1)
    assert inds[0].tolist() == [1, 2, 3, 4]  # 0,16,32,48 mod 5 = 0,1,2,3


@pytest.mark.parametrize("n", [1, 31, 32, 63, 64, 65, 280, 1000])
def test_indices_in_range_and_match_formula(n):
    for clip_len, interval in [(4, 16), (8, 8), (8, 4)]:
        inds = sample_frame_indices(n, clip_len, interval, 10, start_index=1)
        assert inds.min() >= 1 and inds.max() <= n
        avg = (n - clip_len * interval + 1) / 10
        expected = [int(i * avg + avg / 2) if n > clip_len * interval - 1 else 0 for i in range(10)]
        assert clip_offsets(n, clip_len, interval, 10).tolist() == expected


def test_pyslowfast_formula_and_bad_arguments():
    n, clip_len, interval = 100, 8, 8
    max_off = n - ((clip_len - 1) * interval + 1)
    assert clip_offsets(n, clip_len, interval, 10, "pyslowfast").tolist() == [
        int(np.round(i * max_off / 9)) for i in range(10)
    ]
    with pytest.raises(ValueError, match="unknown sampling"):
        clip_offsets(100, 8, 8, 10, "uniform")
    with pytest.raises(ValueError):
        clip_offsets(0, 8, 8, 10)
