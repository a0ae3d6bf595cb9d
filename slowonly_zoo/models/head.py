"""The I3D classification head: global average pool over (T, H, W), dropout, linear (fact sheet section 2)."""

from __future__ import annotations

import torch
from torch import nn


class I3DHead(nn.Module):
    """Average-pool the whole feature map, apply dropout (identity in eval mode), then a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else 0

    def pool_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, C, T, h, w) -> (N, C): the pooled clip embedding."""
        return self.pool(feats).flatten(1)

    def forward(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.pool_features(feats))
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs (0: no classifier)."""
        self.fc = nn.Linear(self.in_channels, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(self.fc, nn.Linear):
            nn.init.normal_(self.fc.weight, std=0.01)
            nn.init.zeros_(self.fc.bias)
