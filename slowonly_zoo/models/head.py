"""The I3D classification head: global average pool over (T, H, W), dropout, linear (fact sheet section 2).

Two more pooling modes reproduce FAIR's heads (../shared/reference/fair_slow_checkpoints.md sections 2-3), with the
same weights: ``'pytorchvideo'`` (pytorchvideo 0.1.5 ``models/head.py`` ``ResNetBasicHead``: ``AvgPool3d((T, 7,
7), stride=1)``, the linear layer at every window position, then the mean of those logits) and ``'pyslowfast'``
(SlowFast ``slowfast/models/head_helper.py`` ``ResNetBasicHead``: the same window and per-position linear layer; in
eval mode softmax or sigmoid per position, then the mean, so the network outputs probabilities). At 224 crops the
7x7 feature map has one window position and all three agree; at 256 crops (an 8x8 map: 2x2 positions) they differ.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_MODES = ("global", "pytorchvideo", "pyslowfast")
#: The fixed spatial window of FAIR's heads: 224 // 32 (SlowFast video_model_builder.py, TRAIN_CROP_SIZE // 32).
FAIR_POOL_SIZE = 7


class I3DHead(nn.Module):
    """Average-pool the whole feature map, apply dropout (identity in eval mode), then a linear classifier."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.5,
        mode: str = "global",
        pool_frames: int | None = None,
        activation: str = "softmax",
    ) -> None:
        """``mode`` 'global' (mmaction2), 'pytorchvideo' or 'pyslowfast' (see the module docstring);
        ``pool_frames``: the temporal size of FAIR's window (the clip length; default: the whole feature map);
        ``activation``: what 'pyslowfast' applies per position in eval mode ('softmax' or 'sigmoid')."""
        super().__init__()
        if mode not in HEAD_MODES:
            raise ValueError(f"unknown head mode {mode!r}; choose one of {HEAD_MODES}")
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(f"unknown head activation {activation!r}; choose 'softmax' or 'sigmoid'")
        self.in_channels = in_channels
        self.mode = mode
        self.pool_frames = pool_frames
        self.activation = activation
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        """Upstream's initialisation of the classifier: weight normal with std 0.01, bias 0 (mmaction2 1.2.0
        ``mmaction/models/heads/i3d_head.py`` ``I3DHead.init_weights``, ``init_std=0.01``)."""
        if isinstance(self.fc, nn.Linear):
            nn.init.normal_(self.fc.weight, mean=0.0, std=0.01)
            nn.init.zeros_(self.fc.bias)

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else 0

    def pool_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, C, T, h, w) -> (N, C): the pooled clip embedding (FAIR modes: the mean of the window averages, whose
        linear map is the mean of the per-position logits)."""
        if self.mode != "global":
            return nn.functional.avg_pool3d(feats, self._window(feats), stride=1).mean(dim=(2, 3, 4))
        return self.pool(feats).flatten(1)

    def forward(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.mode != "global" and not pre_logits and isinstance(self.fc, nn.Linear):
            return self._fair_forward(feats)
        x = self.dropout(self.pool_features(feats))
        return x if pre_logits else self.fc(x)

    def _window(self, feats: torch.Tensor) -> tuple[int, int, int]:
        """FAIR's fixed (T, 7, 7) window, clamped to the feature map (their heads fail on smaller inputs)."""
        _, _, t, h, w = feats.shape
        frames = t if self.pool_frames is None else min(self.pool_frames, t)
        return frames, min(FAIR_POOL_SIZE, h), min(FAIR_POOL_SIZE, w)

    def _fair_forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Window average pool (stride 1), dropout, the linear layer at every window position (N, t', h', w', K),
        then the mean over positions: of the logits ('pytorchvideo', and 'pyslowfast' in training) or of the
        per-position softmax/sigmoid ('pyslowfast' in eval)."""
        x = nn.functional.avg_pool3d(feats, self._window(feats), stride=1)
        x = self.dropout(x.permute(0, 2, 3, 4, 1))
        x = self.fc(x)
        if self.mode == "pyslowfast" and not self.training:
            x = torch.softmax(x, dim=-1) if self.activation == "softmax" else torch.sigmoid(x)
        return x.mean(dim=(1, 2, 3))

    @property
    def outputs_probabilities(self) -> bool:
        """True when the eval-mode output is already softmax/sigmoid scores (the 'pyslowfast' mode)."""
        return self.mode == "pyslowfast" and isinstance(self.fc, nn.Linear)

    def reset(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs (0: no classifier)."""
        self.fc = nn.Linear(self.in_channels, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()
