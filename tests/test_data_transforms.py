"""Resize (bit-exact with OpenCV), crops, normalisation and view layout against OpenCV / mmcv / mmaction2 0.x."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from slowonly_zoo.data.decode import read_frames
from slowonly_zoo.data.transforms import (
    LinearResizer,
    center_crop_offset,
    format_views,
    normalize_flow,
    normalize_rgb,
    resize_linear,
    resize_short_side_size,
    three_crop_offsets,
)

cv2.setNumThreads(1)


def _cv2_resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(h, w, -1)


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((256, 340), (256, 340)),
        ((320, 426), (256, 341)),
        ((360, 640), (256, 455)),
        ((100, 176), (256, 451)),
        ((480, 270), (455, 256)),
    ],
)
def test_resize_size_rule_spec_examples(hw, expected):
    assert resize_short_side_size(*hw, 256) == expected


SIZES = [
    ((240, 320), (256, 341)),  # upscale, K400-like
    ((360, 640), (256, 455)),  # downscale
    ((100, 176), (256, 451)),  # Jester-like strong upscale
    ((480, 270), (455, 256)),  # portrait
    ((37, 53), (11, 19)),  # odd, strong downscale
    ((20, 31), (61, 97)),  # odd, strong upscale
    ((512, 640), (256, 320)),  # exact 2x down: OpenCV switches to INTER_AREA
    ((128, 170), (256, 340)),  # exact 2x up
    ((257, 341), (256, 340)),
    ((99, 101), (256, 261)),
    ((3, 5), (7, 2)),
]


@pytest.mark.parametrize(("src", "dst"), SIZES)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_resize_bit_exact_with_opencv_random(src, dst, channels):
    rng = np.random.default_rng(hash((src, dst, channels)) % 2**32)
    imgs = rng.integers(0, 256, (2, *src, channels), dtype=np.uint8)
    ours = resize_linear(torch.from_numpy(imgs), dst).numpy()
    for img, out in zip(imgs, ours):
        ref = _cv2_resize(img, *dst)
        assert out.shape == ref.shape
        assert np.array_equal(out, ref), f"{int((out != ref).sum())} of {ref.size} values differ"


def test_resize_bit_exact_with_opencv_real_frames(shared_videos):
    for name in ["archery.avi", "chaplin.mp4"]:
        frames = read_frames(shared_videos / name, [0, 17, 40])
        h, w = frames.shape[1:3]
        for short in (256, 128, 300):
            nh, nw = resize_short_side_size(h, w, short)
            ours = resize_linear(torch.from_numpy(frames), (nh, nw)).numpy()
            for img, out in zip(frames, ours):
                assert np.array_equal(out, _cv2_resize(img, nh, nw)), (name, short)


def test_resize_same_size_is_copy_and_rejects_bad_input():
    x = torch.randint(0, 256, (1, 4, 5, 3), dtype=torch.uint8)
    y = resize_linear(x, (4, 5))
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()
    with pytest.raises(TypeError):
        resize_linear(x.float(), (8, 8))


def test_three_crop_offsets_spec():
    assert three_crop_offsets(256, 341, 256) == [(0, 0), (0, 84), (0, 42)]  # column 340 unused
    assert three_crop_offsets(455, 256, 256) == [(0, 0), (198, 0), (99, 0)]  # portrait: top, bottom, middle
    assert three_crop_offsets(256, 256, 256) == [(0, 0), (0, 0), (0, 0)]
    assert three_crop_offsets(128, 170, 128) == [(0, 0), (0, 42), (0, 21)]
    with pytest.raises(ValueError, match="needs one side"):
        three_crop_offsets(240, 320, 256)  # K600/K700 without resize: upstream's assertion


def test_center_crop_offset():
    assert center_crop_offset(256, 341, 256) == (0, 42)
    assert center_crop_offset(455, 256, 256) == (99, 0)
    with pytest.raises(ValueError):
        center_crop_offset(200, 341, 256)


def test_rgb_normalize_equals_mmcv_imnormalize():
    from reference import import_mmaction

    import_mmaction()
    import mmcv

    mean = np.array([123.675, 116.28, 103.53], dtype=np.float32)  # 0.x keeps float32 arrays
    std = np.array([58.395, 57.12, 57.375], dtype=np.float32)
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1).reshape(16, 16, 3)
    ref = mmcv.imnormalize_(levels.astype(np.float32), mean, std, False)
    ours = normalize_rgb(torch.from_numpy(levels), mean.tolist(), std.tolist()).numpy()
    assert ours.dtype == np.float32
    assert np.array_equal(ours, ref)
    # Why it matters: multiplying by a float32 reciprocal is off by one ulp on some values (OpenCV keeps the
    # reciprocal in double).
    recip32 = (levels.astype(np.float32) - mean) * (np.float32(1) / std)
    assert (recip32 != ref).any()


def test_flow_normalize_is_division_by_128():
    levels = np.stack([np.arange(256), np.arange(256)[::-1]], -1).astype(np.uint8)
    ours = normalize_flow(torch.from_numpy(levels), (128, 128), (128, 128)).numpy()
    ref = (levels.astype(np.float32) - np.float32(128)) / np.float32(128)
    assert np.array_equal(ours, ref)
    assert ours[0, 0] == -1.0 and ours[0, 1] == pytest.approx(127 / 128)


def test_format_views_is_crop_major():
    crops, clips, t = 3, 2, 4
    frames = torch.zeros(crops * clips * t, 2, 2, 3, dtype=torch.uint8)
    for k in range(crops):
        for c in range(clips):
            for j in range(t):
                frames[(k * clips + c) * t + j] = k * 100 + c * 10 + j
    views = format_views(frames, clips, t)
    assert views.shape == (crops * clips, 3, t, 2, 2)
    for v in range(crops * clips):
        k, c = divmod(v, clips)
        assert views[v, 0, :, 0, 0].tolist() == [k * 100 + c * 10 + j for j in range(t)]


@pytest.mark.parametrize(
    ("src", "dst"), [((240, 320), (256, 341)), ((360, 640), (256, 455)), ((37, 53), (11, 19)), ((5, 3), (9, 40))]
)
def test_resize_saturated_and_striped_frames_bit_exact(src, dst):
    """Extremes: all-white, all-black and 0/255 stripes (the largest intermediate values and the sharpest edges)."""
    h, w = src
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, ::2] = 255
    stripes[::3, :, 1] = 255
    checker = ((np.indices((h, w)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    imgs = np.stack([np.full((h, w, 3), 255, np.uint8), np.zeros((h, w, 3), np.uint8), stripes, checker])
    ours = resize_linear(torch.from_numpy(imgs), dst).numpy()
    for img, out in zip(imgs, ours):
        assert np.array_equal(out, _cv2_resize(img, *dst))


def test_linear_resizer_reuses_buffers_and_checks_input():
    from slowonly_zoo.data.transforms import LinearResizer

    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (3, 30, 41, 3), dtype=np.uint8)
    resizer = LinearResizer(30, 41, 3, 47, 64)
    out = torch.empty(47, 64, 3, dtype=torch.uint8)
    for img in imgs:  # same buffers every call, same results as OpenCV each time
        assert resizer(torch.from_numpy(img), out=out) is out
        assert np.array_equal(out.numpy(), _cv2_resize(img, 47, 64))
    with pytest.raises(ValueError, match="shape"):
        resizer(torch.zeros(30, 40, 3, dtype=torch.uint8))


def _protocol_normalisations():
    from slowonly_zoo.index import get_model_info, list_models

    seen = {}
    for name in list_models():
        p = get_model_info(name).protocol
        if p is not None:
            seen[(tuple(p.mean), tuple(p.std), p.normalize)] = name
    return sorted(seen)


@pytest.mark.parametrize(("mean", "std", "kind"), _protocol_normalisations())
def test_arithmetic_normalisation_is_exact_for_every_protocol(mean, std, kind):
    """Every (mean, std) in the model index takes the arithmetic path, and it equals the exact table on all levels."""
    from slowonly_zoo.data.transforms import Normalizer, normalization_table

    fast = Normalizer(mean, std, kind)
    assert fast.arithmetic, "float32 (x - mean) / std is not exact here; the slower table lookup would be used"
    levels = torch.arange(256, dtype=torch.uint8).repeat(len(mean), 1)  # (C, 256)
    assert torch.equal(fast(levels, channel_dim=0), normalization_table(mean, std, kind))


def test_table_fallback_equals_arithmetic_on_frames():
    from slowonly_zoo.data.transforms import Normalizer

    mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    frames = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)  # channels on dim 1, like views
    fast = Normalizer(mean, std, "rgb")(frames, channel_dim=1)
    table = Normalizer(mean, std, "rgb", arithmetic=False)(frames, channel_dim=1)
    assert fast.dtype == table.dtype == torch.float32 and torch.equal(fast, table)
    with pytest.raises(ValueError, match="channels"):
        Normalizer(mean, std, "rgb")(frames, channel_dim=2)


def test_separate_planes_resize_each_channel_like_a_grey_image():
    """Flow frames are two grey planes upstream; on an exact 2x downscale OpenCV rounds 2-channel images otherwise."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 64, 96, 2), dtype=np.uint8)
    for size in [(32, 48), (40, 50)]:
        want = np.stack(
            [np.stack([cv2.resize(f[..., k], size[::-1], interpolation=cv2.INTER_LINEAR) for k in range(2)], -1)
             for f in frames]
        )  # fmt: skip
        got = resize_linear(torch.from_numpy(frames), size, separate_planes=True).numpy()
        np.testing.assert_array_equal(got, want)
        planar = LinearResizer(64, 96, 2, *size, separate_planes=True)
        np.testing.assert_array_equal(planar(torch.from_numpy(frames[0])).numpy(), want[0])
    as_image = resize_linear(torch.from_numpy(frames), (32, 48)).numpy()  # OpenCV on a 2-channel image
    np.testing.assert_array_equal(as_image[0], cv2.resize(frames[0], (48, 32), interpolation=cv2.INTER_LINEAR))
    assert (as_image != resize_linear(torch.from_numpy(frames), (32, 48), separate_planes=True).numpy()).any()
