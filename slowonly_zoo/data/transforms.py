"""Spatial transforms of the upstream test pipeline, on uint8 frames.

Everything here works on a stack of frames ``(n, H, W, C)`` (``torch.uint8``) and reproduces the exact integer
arithmetic of the upstream operators:

* :func:`resize_short_side_size` is mmcv's ``Resize(scale=(-1, S), keep_ratio=True)`` size rule.
* :func:`resize_linear` is OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on uint8, bit for bit: the
  11-bit fixed-point separable bilinear filter (horizontal pass to int32; vertical pass that pre-shifts by 4, keeps
  the high 16 bits of each 16-bit product and rounds by 2 bits, as OpenCV's vector kernel and its scalar tail both
  do), and the 2x2 box average OpenCV switches to for an exact 2x downscale. Checked bit-exact against OpenCV
  4.10 and 5.0. :class:`LinearResizer` does it frame by frame with reused buffers.
* :func:`three_crop_offsets` / :func:`center_crop_offset` are mmaction2's ``ThreeCrop`` / ``CenterCrop``.
* :func:`normalize_rgb` / :func:`normalize_flow` are mmcv's ``imnormalize_`` (``(x - mean) * (1 / std)``, OpenCV
  with double scalars) and mmaction2's flow ``Normalize`` (``(x - 128) / 128`` by division), through
  :class:`Normalizer`: float32 ``(x - mean) / std``, checked equal to the exact per-channel table of the 256 uint8
  levels (the table itself is the fallback where the check fails).
* :func:`format_views` is ``FormatShape('NCTHW')``: views ordered crop-major (view = crop * num_clips + clip).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from .threads import run_serially

__all__ = [
    "COEF_BITS",
    "LinearResizer",
    "Normalizer",
    "apply_table",
    "center_crop_offset",
    "format_views",
    "linear_coefficients",
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


def _box2x(frames: torch.Tensor, separate_planes: bool = False) -> torch.Tensor:
    """OpenCV's ``INTER_AREA`` fast path, which ``INTER_LINEAR`` uses for an exact 2x downscale.

    1, 3 and 4 channels take its vector kernel, ``(a + b + c + d + 2) >> 2``; other channel counts (2) its generic
    loop, ``cvRound(sum * 0.25)``, which rounds halves to even. ``separate_planes`` resizes every channel as its
    own single-channel image (the vector kernel), as upstream resizes the x and y planes of flow frames.
    """
    x = frames.to(torch.int32)
    s = x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]
    if separate_planes or frames.shape[-1] in (1, 3, 4):
        return ((s + 2) >> 2).to(torch.uint8)
    q = s >> 2
    r = s & 3
    up = (r > 2) | ((r == 2) & ((q & 1) == 1))
    return (q + up.to(torch.int32)).to(torch.uint8)


class LinearResizer:
    """``cv2.resize(INTER_LINEAR)`` of uint8 frames ``(H, W, C)`` to ``(new_h, new_w)``, one frame per call.

    Tables and scratch buffers are made once, so resizing many frames of one size allocates nothing. Same arithmetic
    as OpenCV, in fewer passes:

    * horizontal: ``S[x0] * a0 + S[x1] * a1`` (11-bit weights), then ``>> 4``, computed in float32 as
      ``S[x0] * (a0 / 16) + S[x1] * (a1 / 16)``: every product and partial sum is a multiple of 1/16 below 2**16,
      which float32 holds exactly, and the conversion to int32 truncates, i.e. floors these non-negative values.
      The gathers run on a ``(H, W * C)`` float32 view with per-byte indices (torch's fast ``index_select`` path).
    * vertical, in int32 like OpenCV's 8-bit vector kernel: ``((((h0 * b0) >> 16) + ((h1 * b1) >> 16) + 2) >> 2``.

    ``separate_planes=True`` resizes each channel as its own grey image, the way upstream resizes flow frames (a
    list of x and y planes, ``mmcv.imresize`` on each); it differs from a multi-channel resize only on an exact 2x
    downscale of 2-channel frames (see :func:`_box2x`).

    Not thread-safe (the buffers are reused): use one resizer per thread.
    """

    def __init__(
        self, height: int, width: int, channels: int, new_h: int, new_w: int, *, separate_planes: bool = False
    ) -> None:
        if min(height, width, channels, new_h, new_w) <= 0:
            raise ValueError(f"cannot resize {height}x{width}x{channels} to {new_h}x{new_w}")
        self.src = (height, width, channels)
        self.dst = (new_h, new_w, channels)
        self.same = (new_h, new_w) == (height, width)
        self.box = not self.same and width == 2 * new_w and height == 2 * new_h
        self.separate_planes = separate_planes
        if self.same or self.box:
            return
        c = channels
        xi0, xi1, xw0, xw1 = linear_coefficients(width, new_w, clamp_fraction=True)
        yi0, yi1, yw0, yw1 = linear_coefficients(height, new_h, clamp_fraction=False)
        lanes = np.arange(c)
        self._b0 = torch.from_numpy((xi0[:, None] * c + lanes).reshape(-1))
        self._b1 = torch.from_numpy((xi1[:, None] * c + lanes).reshape(-1))
        self._a0 = torch.from_numpy(np.repeat(xw0.astype(np.float32) / np.float32(16), c))
        self._a1 = torch.from_numpy(np.repeat(xw1.astype(np.float32) / np.float32(16), c))
        self._yi0 = torch.from_numpy(yi0)
        self._yi1 = torch.from_numpy(yi1)
        self._yw0 = torch.from_numpy(yw0).view(-1, 1)
        self._yw1 = torch.from_numpy(yw1).view(-1, 1)
        # With weight sums <= 2048 on both axes the result is at most 255: OpenCV's saturation never applies.
        self._clamp = bool((xw0 + xw1).max() > 2048 or (yw0 + yw1).min() < 0 or (yw0 + yw1).max() > 2048)
        row = new_w * c
        self._x = torch.empty((height, width * c), dtype=torch.float32)
        self._h = torch.empty((height, row), dtype=torch.float32)
        self._g = torch.empty((height, row), dtype=torch.float32)
        self._hs = torch.empty((height, row), dtype=torch.int32)
        self._v0 = torch.empty((new_h, row), dtype=torch.int32)
        self._v1 = torch.empty((new_h, row), dtype=torch.int32)

    def __call__(self, frame: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Resize one uint8 frame ``(H, W, C)``; returns uint8 ``(new_h, new_w, C)`` (written into ``out`` if given)."""
        if tuple(frame.shape) != self.src or frame.dtype != torch.uint8:
            raise ValueError(
                f"this resizer takes uint8 frames of shape {self.src}, got {frame.dtype} {tuple(frame.shape)}"
            )
        if out is None:
            out = torch.empty(self.dst, dtype=torch.uint8)
        if self.same:
            return out.copy_(frame)
        if self.box:
            return out.copy_(_box2x(frame.unsqueeze(0), self.separate_planes)[0])
        x, h, g, hs, v0, v1 = self._x, self._h, self._g, self._hs, self._v0, self._v1
        x.copy_(frame.reshape(x.shape))
        torch.index_select(x, 1, self._b0, out=h).mul_(self._a0)
        h.addcmul_(torch.index_select(x, 1, self._b1, out=g), self._a1)
        hs.copy_(h)  # float -> int32 truncates: floor((S0 * a0 + S1 * a1) / 16), exactly OpenCV's ``>> 4``
        torch.index_select(hs, 0, self._yi0, out=v0).mul_(self._yw0).bitwise_right_shift_(16)
        torch.index_select(hs, 0, self._yi1, out=v1).mul_(self._yw1).bitwise_right_shift_(16)
        v0.add_(v1).add_(2).bitwise_right_shift_(2)
        if self._clamp:
            v0.clamp_(0, 255)
        return out.copy_(v0.view(self.dst))


def resize_linear(frames: torch.Tensor, size: tuple[int, int], *, separate_planes: bool = False) -> torch.Tensor:
    """Resize uint8 frames ``(n, H, W, C)`` to ``size = (new_h, new_w)`` exactly like ``cv2.resize(INTER_LINEAR)``
    (of each channel on its own with ``separate_planes``, as upstream resizes flow frames; see :class:`LinearResizer`).

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
        return _box2x(frames, separate_planes)
    resizer = LinearResizer(h, w, c, new_h, new_w, separate_planes=separate_planes)
    out = torch.empty((n, new_h, new_w, c), dtype=torch.uint8)

    def resize_all() -> None:
        for k in range(n):
            resizer(frames[k], out=out[k])

    run_serially(resize_all)  # many small ops: no intra-op thread team (see .threads)
    return out


def three_crop_offsets(height: int, width: int, crop_size: int) -> list[tuple[int, int]]:
    """``(top, left)`` of mmaction2 ``ThreeCrop(crop_size)``: [left/top, right/bottom, middle].

    Like upstream it requires one side to equal ``crop_size`` (``ThreeCrop`` asserts it); the crops then slide
    along the other side at offsets ``[0, 2 * step, step]`` with ``step = (side - crop_size) // 2``.
    """
    if crop_size not in (height, width):
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
    reciprocal differs in the last bit for about a quarter of the values.
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

    Normalisation is a per-channel function of the uint8 value, so this table is the whole truth about it
    (``kind='rgb'``: mmcv ``imnormalize_``; ``kind='flow'``: ``(x - 128) / 128``); :class:`Normalizer` checks its
    arithmetic against it.
    """
    levels = np.repeat(np.arange(256, dtype=np.float32)[:, None], len(mean), axis=1)  # (256, C)
    if kind == "rgb":
        table = _rgb_formula(levels, mean, std)
    elif kind == "flow":
        table = _flow_formula(levels, mean, std)
    else:
        raise ValueError(f"kind must be 'rgb' or 'flow', got {kind!r}")
    return torch.from_numpy(np.ascontiguousarray(table.T))


def apply_table(
    frames: torch.Tensor, table: torch.Tensor, channel_dim: int = -1, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Look up uint8 ``frames`` in a ``(C, 256)`` table along ``channel_dim``; returns float32, same shape."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"apply_table expects uint8 frames, got {frames.dtype}")
    table = table.to(frames.device)
    if out is None:
        out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
    for c in range(table.shape[0]):
        src = frames.select(channel_dim, c)
        dst = out.select(channel_dim, c)
        if src.dim() == 0:
            dst.copy_(table[c][src.to(torch.int64)])
            continue
        # one leading slice at a time keeps the int64 index small
        for k in range(src.shape[0]):
            dst[k] = table[c][src[k].to(torch.int64)]
    return out


@functools.lru_cache(maxsize=32)
def _arithmetic_is_exact(mean: tuple[float, ...], std: tuple[float, ...], kind: str, device: str) -> bool:
    """Whether float32 ``(x - mean) / std`` on ``device`` equals the table for all 256 levels of every channel."""
    table = normalization_table(mean, std, kind)
    levels = torch.arange(256, dtype=torch.uint8, device=device).expand(len(mean), 256).contiguous()
    got = Normalizer(mean, std, kind, device=device, arithmetic=True)(levels, channel_dim=0)
    return torch.equal(got.cpu(), table)


class Normalizer:
    """Upstream's exact per-channel normalisation of uint8 frames to float32, as cheap arithmetic when possible.

    For the protocols' mean/std, float32 ``(x - mean) / std`` (each step correctly rounded, as IEEE subtraction and
    division are) gives the same float32 numbers as mmcv's double-precision ``imnormalize_`` for every uint8 level:
    the subtraction is exact or singly rounded either way, and the division happens to round like the double
    product. That is checked once per (mean, std, kind, device) on all 256 levels of each channel, the only inputs
    there are, so it holds for every frame; where it does not hold, the exact table lookup is used instead.

    ``device`` is where the mean/std tensors live (the frames' device). ``arithmetic``: ``None`` (default) checks
    as above; ``False`` always uses the table; ``True`` skips the check (only for the check itself and tests).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        kind: str = "rgb",
        device: str | torch.device = "cpu",
        arithmetic: bool | None = None,
    ) -> None:
        if kind not in ("rgb", "flow"):
            raise ValueError(f"kind must be 'rgb' or 'flow', got {kind!r}")
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have one value per channel, got {len(mean)} and {len(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.kind = kind
        self.device = torch.device(device)
        if arithmetic is None:
            arithmetic = _arithmetic_is_exact(self.mean, self.std, kind, str(self.device))
        self.arithmetic = arithmetic
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        self._table = None if arithmetic else normalization_table(self.mean, self.std, kind).to(self.device)

    def __call__(self, frames: torch.Tensor, channel_dim: int = -1, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise uint8 ``frames`` whose channels lie along ``channel_dim``; float32, same shape (``out`` if
        given)."""
        if frames.dtype != torch.uint8:
            raise TypeError(f"normalisation expects uint8 frames, got {frames.dtype}")
        c = len(self.mean)
        if frames.shape[channel_dim] != c:
            raise ValueError(f"expected {c} channels along dim {channel_dim}, got shape {tuple(frames.shape)}")
        if not self.arithmetic:
            assert self._table is not None  # built in __init__ whenever arithmetic is off
            return apply_table(frames, self._table, channel_dim, out)
        shape = [1] * frames.dim()
        shape[channel_dim] = c
        if out is None:
            out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
        torch.sub(frames, self._mean.view(shape), out=out)
        return out.div_(self._std.view(shape))


def normalize_rgb(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Upstream's RGB ``Normalize`` of uint8 frames ``(..., C)``: ``(x - mean) * (1 / std)``, float32, RGB kept.

    Exactly mmaction2 0.x + mmcv: float32 ``mean``/``std`` arrays, then ``cv2.subtract``/``cv2.multiply`` with the
    scalars in double (see :class:`Normalizer`).
    """
    return Normalizer(mean, std, "rgb", frames.device)(frames)


def normalize_flow(
    frames: torch.Tensor, mean: Sequence[float] = (128.0, 128.0), std: Sequence[float] = (128.0, 128.0)
) -> torch.Tensor:
    """Upstream's flow ``Normalize`` of uint8 frames ``(..., 2)``: ``(x - mean) / std`` per channel (x, y), float32."""
    return Normalizer(mean, std, "flow", frames.device)(frames)


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
