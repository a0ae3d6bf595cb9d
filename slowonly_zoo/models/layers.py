"""Building blocks shared by the backbone and the non-local block, and the frame-wise 2D form of their 3D ops.

A Conv3d or MaxPool3d whose temporal kernel is 1 (no temporal stride or padding) mixes only within frames, so it
equals the 2D op on ``(N*T, C, H, W)``: the same products and sums. oneDNN's 2D channels-last kernels are much
faster on CPU than its 3D ones for these shapes (a 1x3x3 conv at 4x64x64 with 64 channels: about 5x in this
project's measurements), and in channels-last 3D the fold is free: ``(N, C, T, H, W)`` in channels-last 3D and
``(N*T, C, H, W)`` in channels-last 2D are the same memory. :class:`ConvBN3d` takes that path by itself in eval
mode on channels-last inputs; ``models.fuse`` uses the same functions for the inference form.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

Pair = tuple[int, int]


def can_run_over_time(conv: nn.Conv3d) -> bool:
    """Whether ``conv`` only mixes within frames (temporal kernel 1, stride 1, padding 0)."""
    return (
        conv.kernel_size[0] == 1
        and conv.stride[0] == 1
        and not isinstance(conv.padding, str)
        and conv.padding[0] == 0
        and conv.padding_mode == "zeros"
    )


def conv2d_over_time(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> torch.Tensor:
    """A Conv3d with the 5D ``weight`` (temporal kernel 1) on ``x`` (N, C, T, H, W), run as a Conv2d over the frames
    folded into the batch; ``stride``, ``padding`` and ``dilation`` are the spatial ones."""
    n, c, t, h, w = x.shape
    y = F.conv2d(x.transpose(1, 2).reshape(n * t, c, h, w), weight[:, :, 0], bias, stride, padding, dilation, groups)
    return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)


def max_pool2d_over_time(
    x: torch.Tensor, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool
) -> torch.Tensor:
    """A (1, k, k) MaxPool3d on ``x`` (N, C, T, H, W) as a 2D max-pool over the frames folded into the batch."""
    n, c, t, h, w = x.shape
    y = F.max_pool2d(x.transpose(1, 2).reshape(n * t, c, h, w), kernel_size, stride, padding, ceil_mode=ceil_mode)
    return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)


def conv3d_frame_wise(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a conv that :func:`can_run_over_time`, as :func:`conv2d_over_time`."""
    stride, padding, dilation = (spatial(v) for v in (conv.stride, conv.padding, conv.dilation))
    return conv2d_over_time(x, conv.weight, conv.bias, stride, padding, dilation, conv.groups)


def triple(value: object) -> tuple[int, int, int]:
    """An int or a 3-sequence (a pool's or conv's size argument) as a 3-tuple."""
    if isinstance(value, int):
        return (value, value, value)
    return cast(tuple[int, int, int], tuple(cast("tuple[int, ...]", value)))


def spatial(value: object) -> Pair:
    """The spatial (H, W) part of a 3D size argument (an int or a 3-sequence)."""
    _, h, w = triple(value)
    return (h, w)


def pool_runs_over_time(pool: nn.MaxPool3d) -> bool:
    """Whether ``pool`` only pools within frames (temporal kernel and stride 1, no temporal padding, no dilation)."""
    kernel, stride, padding = (triple(v) for v in (pool.kernel_size, pool.stride, pool.padding))
    return (
        kernel[0] == 1
        and stride[0] == 1
        and padding[0] == 0
        and triple(pool.dilation) == (1, 1, 1)
        and not pool.return_indices
    )


def max_pool3d_frame_wise(pool: nn.MaxPool3d, x: torch.Tensor) -> torch.Tensor:
    """``pool(x)`` for a pool that :func:`pool_runs_over_time`, as :func:`max_pool2d_over_time`."""
    kernel, stride, padding = (spatial(v) for v in (pool.kernel_size, pool.stride, pool.padding))
    return max_pool2d_over_time(x, kernel, stride, padding, pool.ceil_mode)


def frames_fold_for_free(x: torch.Tensor) -> bool:
    """Whether ``x`` (N, C, T, H, W) is channels-last 3D, where folding the frames into the batch copies nothing."""
    return x.is_contiguous(memory_format=torch.channels_last_3d)


class ConvBN3d(nn.Module):
    """A bias-free Conv3d followed by BatchNorm3d and, optionally, ReLU (upstream's ``ConvModule``).

    In eval mode, on a channels-last 3D input, a frame-wise conv (temporal kernel 1) runs as its 2D form
    (:func:`conv3d_frame_wise`) and the output stays channels-last: same parameters and state dict, the same
    numbers to float rounding, faster on CPU (README, Benchmarks).
    Training always runs the Conv3d module, so training keeps upstream's kernels and rounding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn: nn.Module = nn.BatchNorm3d(out_channels, eps=1e-5, momentum=0.1)  # Identity once fused
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def folds_frames(self, x: torch.Tensor) -> bool:
        """Whether this module runs its frame-wise ops on ``x`` in their 2D form (eval mode, channels-last input)."""
        return not self.training and frames_fold_for_free(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if isinstance(conv, nn.Conv3d) and self.folds_frames(x):
            if can_run_over_time(conv):
                y = conv3d_frame_wise(conv, x)
            else:  # oneDNN returns a contiguous output here; one copy keeps the next frame-wise ops fold-free
                y = conv(x).contiguous(memory_format=torch.channels_last_3d)
        else:
            y = conv(x)
        return self.act(self.bn(y))
