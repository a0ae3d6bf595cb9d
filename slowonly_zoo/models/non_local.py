"""The embedded-Gaussian non-local block used by the SlowOnly non-local models (fact sheet section 1.3)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import ConvBN3d


class NonLocal3d(nn.Module):
    """Embedded-Gaussian non-local block with spatial sub-sampling of the keys and values.

    ``theta``, ``phi`` and ``g`` are 1x1x1 convolutions with bias to ``channels // 2``; ``phi`` and ``g`` are
    followed by a (1, 2, 2) max-pool. The affinity ``theta^T phi`` is scaled by ``1/sqrt(channels // 2)``
    and soft-maxed over the keys; the aggregated values go through a bias-free 1x1x1 conv + BN
    (``conv_out``) and are added to the input.
    """

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        inter = channels // reduction
        self.inter_channels = inter
        # Attribute order gives upstream's state-dict order: g, conv_out, theta, phi.
        self.g = nn.Conv3d(channels, inter, 1)
        self.conv_out = ConvBN3d(inter, channels, (1, 1, 1), relu=False)
        self.theta = nn.Conv3d(channels, inter, 1)
        self.phi = nn.Conv3d(channels, inter, 1)
        self.pool = nn.MaxPool3d((1, 2, 2), (1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, h, w = x.shape
        inter = self.inter_channels
        # g, theta, phi in mmcv's order (NonLocalNd.forward): autograd then sums their input gradients in the
        # same order, so the backward rounds as upstream's does
        g = self.pool(self.g(x)).reshape(n, inter, -1).transpose(1, 2)  # (N, T h w, inter)
        theta = self.theta(x).reshape(n, inter, -1).transpose(1, 2)  # (N, THW, inter)
        phi = self.pool(self.phi(x)).reshape(n, inter, -1)  # (N, inter, T h w)
        affinity = torch.matmul(theta, phi) / math.sqrt(inter)
        y = torch.matmul(affinity.softmax(dim=-1), g)  # (N, THW, inter)
        # contiguous before the reshape, as mmcv's NonLocalNd.forward: a strided view here makes conv_out pick
        # another kernel, which rounds differently (bit-exact training parity with mmaction2 0.24.1 needs it)
        y = y.transpose(1, 2).contiguous().reshape(n, inter, t, h, w)
        return x + self.conv_out(y)
