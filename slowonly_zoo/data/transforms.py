"""Spatial transforms of the upstream test pipeline, on uint8 frames.

Everything here works on a stack of frames ``(n, H, W, C)`` (``torch.uint8``) and reproduces the exact integer
arithmetic of the upstream operators:

* :func:`resize_short_side_size` is mmcv's ``Resize(scale=(-1, S), keep_ratio=True)`` size rule.
* :func:`resize_linear` is OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on uint8, bit for bit: the
  11-bit fixed-point separable bilinear filter (horizontal pass to int32; vertical pass that pre-shifts by 4, keeps
  the high 16 bits of each 16-bit product and rounds by 2 bits, as OpenCV's vector kernel and its scalar tail both
  do), and the 2x2 box average OpenCV switches to for an exact 2x downscale. Checked bit-exact against OpenCV
  4.10 and 5.0.
* :func:`three_crop_offsets` / :func:`center_crop_offset` are mmaction2's ``ThreeCrop`` / ``CenterCrop``.
* :func:`normalize_rgb` / :func:`normalize_flow` are mmcv's ``imnormalize_`` (``(x - mean) * (1 / std)``, OpenCV
  with double scalars) and mmaction2's flow ``Normalize`` (``(x - 128) / 128`` by division), done exactly as a
  per-channel lookup table of the 256 uint8 levels.
* :func:`format_views` is ``FormatShape('NCTHW')``: views ordered crop-major (view = crop * num_clips + clip).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "COEF_BITS",
    "center_crop_offset",
    "format_views",
    "linear_coefficients",
    "apply_table",
    "normalization_table",
    "normalize_flow",
    "normalize_rgb",
    "resize_linear",
    "resize_short_side_size",
    "three_crop_offsets",
]

COEF_BITS = 11
"""OpenCV's ``INTER_RESIZE_COEF_BITS``: bilinear weights are integers summing to about ``1 << 11``."""
_COEF_SCALE = 1 << COEF_BITS


def resize_short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """New ``(height, width)`` of mmcv ``Resize(scale=(-1, short_side), keep_ratio=True)``.

    The factor is ``short_side / min(h, w)`` (a Python float) and each side becomes ``int(side * factor + 0.5)``,
    e.g. 320x426 -> 256x341 and 100x176 -> 256x451.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    # mmcv rescale_size: scale (inf, S) -> factor min(max_long / long, S / short) = S / short.
    factor = min(float("inf") / max(height, width), short_side / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def linear_coefficients(src_size: int, dst_size: int, clamp_fraction: bool) -> tuple[np.ndarray, ...]:
    """Source indices ``i0, i1`` and 11-bit weights ``w0, w1`` (each ``(dst_size,)``) of OpenCV's uint8 bilinear.

    Follows ``cv::resize``'s table set-up: the source coordinate ``(d + 0.5) * scale - 0.5`` is computed in double
    with ``scale = 1 / (dst / src)`` and stored as float32; ``s = floor``, ``f`` the float32 remainder; the weights
    are ``round((1 - f) * 2048)`` and ``round(f * 2048)`` in float32, ties to even. Along the horizontal axis
    (``clamp_fraction=True``) OpenCV clamps ``s`` to the image and sets ``f = 0`` at both borders; along the vertical
    axis it keeps ``f`` and reads the clamped row twice. Out-of-image indices are clamped here.
    """
    scale = 1.0 / (dst_size / src_size)
    d = np.arange(dst_size, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = f - s.astype(np.float32)
    if clamp_fraction:
        low = s < 0
        high = s >= src_size - 1
        f = np.where(low | high, np.float32(0.0), f).astype(np.float32)
        s = np.where(low, 0, np.where(high, src_size - 1, s))
    w0 = np.rint((np.float32(1.0) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    i0 = np.clip(s, 0, src_size - 1)
    i1 = np.clip(s + 1, 0, src_size - 1)
    return i0, i1, w0, w1


def _axis_tables(src_size: int, dst_size: int, clamp_fraction: bool) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(t) for t in linear_coefficients(src_size, dst_size, clamp_fraction))


def _box2x(frames: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``INTER_AREA`` fast path, which ``INTER_LINEAR`` uses for an exact 2x downscale.

    1, 3 and 4 channels take its vector kernel, ``(a + b + c + d + 2) >> 2``; other channel counts (2: flow) its
    generic loop, ``cvRound(sum * 0.25)``, which rounds halves to even.
    """
    x = frames.to(torch.int32)
    s = x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]
    if frames.shape[-1] in (1, 3, 4):
        return ((s + 2) >> 2).to(torch.uint8)
    q = s >> 2
    r = s & 3
    up = (r > 2) | ((r == 2) & ((q & 1) == 1))
    return (q + up.to(torch.int32)).to(torch.uint8)


def resize_linear(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 frames ``(n, H, W, C)`` to ``size = (new_h, new_w)`` exactly like ``cv2.resize(INTER_LINEAR)``.

    Returns a new contiguous uint8 tensor ``(n, new_h, new_w, C)``. Same size returns a copy.
    """
    if frames.dtype != torch.uint8 or frames.dim() != 4:
        raise TypeError(f"resize_linear expects a uint8 tensor (n, H, W, C), got {frames.dtype} {tuple(frames.shape)}")
    n, h, w, c = frames.shape
    new_h, new_w = int(size[0]), int(size[1])
    if new_h <= 0 or new_w <= 0:
        raise ValueError(f"target size must be positive, got {new_h}x{new_w}")
    if (new_h, new_w) == (h, w):
        return frames.clone()
    if w == 2 * new_w and h == 2 * new_h:
        return _box2x(frames)

    xi0, xi1, xw0, xw1 = _axis_tables(w, new_w, clamp_fraction=True)
    yi0, yi1, yw0, yw1 = _axis_tables(h, new_h, clamp_fraction=False)
    xw0 = xw0.view(1, -1, 1).expand(1, new_w, c).contiguous()
    xw1 = xw1.view(1, -1, 1).expand(1, new_w, c).contiguous()
    yw0 = yw0.view(-1, 1, 1)
    yw1 = yw1.view(-1, 1, 1)
    out = torch.empty((n, new_h, new_w, c), dtype=torch.uint8)
    # One frame at a time keeps the int32 intermediates in cache (and avoids page-faulting big fresh buffers).
    for k in range(n):
        frame = frames[k]
        # Horizontal pass: int32 S[x0] * a0 + S[x1] * a1, then the >> 4 of the vertical kernel (done once per row).
        horiz = frame.index_select(1, xi0).to(torch.int32).mul_(xw0)
        horiz.add_(frame.index_select(1, xi1).to(torch.int32).mul_(xw1)).bitwise_right_shift_(4)
        # Vertical pass, with OpenCV's arithmetic for 8-bit output (its vector kernel and its scalar tail agree):
        # ((((S0 >> 4) * b0) >> 16) + (((S1 >> 4) * b1) >> 16) + 2) >> 2.
        top = horiz.index_select(0, yi0).mul_(yw0).bitwise_right_shift_(16)
        top.add_(horiz.index_select(0, yi1).mul_(yw1).bitwise_right_shift_(16)).add_(2).bitwise_right_shift_(2)
        out[k] = top.clamp_(0, 255)
    return out


def three_crop_offsets(height: int, width: int, crop_size: int) -> list[tuple[int, int]]:
    """``(top, left)`` of mmaction2 ``ThreeCrop(crop_size)``: [left/top, right/bottom, middle].

    Like upstream it requires one side to equal ``crop_size`` (``ThreeCrop`` asserts it); the crops then slide
    along the other side at offsets ``[0, 2 * step, step]`` with ``step = (side - crop_size) // 2``.
    """
    if height != crop_size and width != crop_size:
        raise ValueError(
            f"ThreeCrop({crop_size}) needs one side of the frame to equal {crop_size}, got {height}x{width}; "
            "resize the short side to the crop size first (or use a protocol with resize_short set)"
        )
    if height == crop_size:  # landscape (or square): crops slide along the width
        if width < crop_size:
            raise ValueError(f"ThreeCrop({crop_size}) cannot crop a {height}x{width} frame")
        step = (width - crop_size) // 2
        return [(0, 0), (0, 2 * step), (0, step)]
    if height < crop_size:
        raise ValueError(f"ThreeCrop({crop_size}) cannot crop a {height}x{width} frame")
    step = (height - crop_size) // 2
    return [(0, 0), (2 * step, 0), (step, 0)]


def center_crop_offset(height: int, width: int, crop_h: int, crop_w: int | None = None) -> tuple[int, int]:
    """``(top, left)`` of mmaction2 ``CenterCrop``: ``((H - ch) // 2, (W - cw) // 2)``.

    Upstream clips the crop box to the frame when the frame is smaller; we raise instead, since a smaller crop
    would silently change the model input size.
    """
    crop_w = crop_h if crop_w is None else crop_w
    if height < crop_h or width < crop_w:
        raise ValueError(f"CenterCrop({crop_h}x{crop_w}) cannot crop a {height}x{width} frame")
    return (height - crop_h) // 2, (width - crop_w) // 2


def _rgb_formula(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """mmcv ``imnormalize_`` on float32 ``x`` (..., C) with 0.x's float32 ``mean``/``std`` arrays.

    ``cv2.subtract(img, float64(mean))`` then ``cv2.multiply(img, 1 / float64(std))``: OpenCV keeps the scalars in
    double, so each step is computed exactly and rounded once to the float32 image. Multiplying by a float32
    reciprocal, or dividing by ``std``, differs in the last bit for about a quarter of the values.
    """
    mean64 = np.asarray(mean, dtype=np.float32).astype(np.float64)
    inv64 = 1.0 / np.asarray(std, dtype=np.float32).astype(np.float64)
    centred = (x.astype(np.float64) - mean64).astype(np.float32)
    return (centred.astype(np.float64) * inv64).astype(np.float32)


def _flow_formula(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """0.x flow ``Normalize``: ``(x - mean) / std`` in numpy float32 (float32 mean and std), per channel."""
    mean32 = np.asarray(mean, dtype=np.float32)
    std32 = np.asarray(std, dtype=np.float32)
    return ((x.astype(np.float32) - mean32) / std32).astype(np.float32)


def normalization_table(mean: Sequence[float], std: Sequence[float], kind: str = "rgb") -> torch.Tensor:
    """Float32 ``(C, 256)`` table: the normalised value of every uint8 level of every channel.

    Normalisation is a per-channel function of the uint8 value, so a table lookup gives upstream's exact float32
    results (``kind='rgb'``: mmcv ``imnormalize_``; ``kind='flow'``: ``(x - 128) / 128``) at the cost of a gather.
    """
    levels = np.repeat(np.arange(256, dtype=np.float32)[:, None], len(mean), axis=1)  # (256, C)
    if kind == "rgb":
        table = _rgb_formula(levels, mean, std)
    elif kind == "flow":
        table = _flow_formula(levels, mean, std)
    else:
        raise ValueError(f"kind must be 'rgb' or 'flow', got {kind!r}")
    return torch.from_numpy(np.ascontiguousarray(table.T))


def apply_table(frames: torch.Tensor, table: torch.Tensor, channel_dim: int = -1) -> torch.Tensor:
    """Look up uint8 ``frames`` in a ``(C, 256)`` table along ``channel_dim``; returns float32, same shape."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"apply_table expects uint8 frames, got {frames.dtype}")
    table = table.to(frames.device)
    out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
    for c in range(table.shape[0]):
        src = frames.select(channel_dim, c)
        dst = out.select(channel_dim, c)
        # one leading slice at a time keeps the int64 index small
        for k in range(src.shape[0]):
            dst[k] = table[c][src[k].to(torch.int64)]
    return out


def normalize_rgb(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Upstream's RGB ``Normalize`` of uint8 frames ``(..., C)``: ``(x - mean) * (1 / std)``, float32, RGB kept.

    Exactly mmaction2 0.x + mmcv: float32 ``mean``/``std`` arrays, then ``cv2.subtract``/``cv2.multiply`` with the
    scalars in double (see :func:`normalization_table`).
    """
    return apply_table(frames, normalization_table(mean, std, "rgb"))


def normalize_flow(frames: torch.Tensor, mean: Sequence[float] = (128.0, 128.0), std: Sequence[float] = (128.0, 128.0)) -> torch.Tensor:
    """Upstream's flow ``Normalize`` of uint8 frames ``(..., 2)``: ``(x - mean) / std`` per channel (x, y), float32."""
    return apply_table(frames, normalization_table(mean, std, "flow"))


def format_views(crops: torch.Tensor, num_clips: int, clip_len: int) -> torch.Tensor:
    """``FormatShape('NCTHW')``: ``(num_crops * num_clips * clip_len, H, W, C)`` -> ``(V, C, T, H, W)``.

    The input frames are ordered crop-major, then clip, then time; view ``v = crop * num_clips + clip``.
    """
    total, h, w, c = crops.shape
    per_crop = num_clips * clip_len
    if total % per_crop:
        raise ValueError(f"{total} frames are not a whole number of {num_clips} clips x {clip_len} frames")
    x = crops.view(total // per_crop, num_clips, clip_len, h, w, c)
    x = x.permute(0, 1, 5, 2, 3, 4)
    return x.reshape(-1, c, clip_len, h, w)
