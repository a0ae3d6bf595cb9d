"""Building blocks shared by the backbone and the non-local block."""

from __future__ import annotations

import torch
from torch import nn


class ConvBN3d(nn.Module):
    """A bias-free Conv3d followed by BatchNorm3d and, optionally, ReLU (upstream's ``ConvModule``)."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))
