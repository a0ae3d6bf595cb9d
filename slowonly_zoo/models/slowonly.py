"""The SlowOnly recognizer: backbone + I3D head, with the timm-style model API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .head import I3DHead
from .resnet3d import SlowOnlyBackbone


class SlowOnly(nn.Module):
    """SlowOnly video classifier (mmaction2's ``Recognizer3D`` with ``ResNet3dSlowOnly`` + ``I3DHead``).

    Args:
        depth: 50 or 101.
        num_classes: classifier outputs; 0 builds a feature extractor without classifier.
        in_channels: 3 for RGB, 2 for optical flow (x, y).
        non_local: True for the embedded-Gaussian non-local layout of the upstream NL models, or the block
            indices per stage.
        with_pool1: False removes the stem max-pool (the Something-Something V1 model).
        dropout: dropout before the classifier (training only).
        head_mode: 'global' (mmaction2's head, the default), 'pytorchvideo' or 'pyslowfast' (FAIR's window-pooled
            heads, see :mod:`.head`; 'pyslowfast' outputs probabilities in eval mode).
        head_frames: temporal size of the FAIR heads' pooling window (the clip length the checkpoint was made for).
        head_activation: 'softmax' or 'sigmoid', applied per position by the 'pyslowfast' head in eval mode.

    Input: float (N, C, T, H, W), normalised as the model's test protocol says. A new model holds upstream's
    initialisation for training from scratch (:meth:`init_weights`).
    """

    def __init__(
        self,
        depth: int = 50,
        num_classes: int = 400,
        in_channels: int = 3,
        non_local: bool | Sequence[Sequence[int]] = False,
        with_pool1: bool = True,
        dropout: float = 0.5,
        head_mode: str = "global",
        head_frames: int | None = None,
        head_activation: str = "softmax",
    ) -> None:
        super().__init__()
        self.backbone = SlowOnlyBackbone(depth, in_channels, non_local, with_pool1)
        self.head = I3DHead(self.backbone.out_channels, num_classes, dropout, head_mode, head_frames, head_activation)
        self.num_features = self.backbone.out_channels
        self.pretrained_cfg: dict[str, Any] = {}
        """Plain-data metadata of the weights this model was built with (filled by ``create_model``)."""

    def init_weights(self) -> None:
        """Re-initialise every weight as upstream does for training from scratch (the constructor already has):
        see :meth:`SlowOnlyBackbone.init_weights` and :meth:`I3DHead.init_weights`."""
        self.backbone.init_weights()
        self.head.init_weights()

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def in_channels(self) -> int:
        return self.backbone.in_channels

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SlowOnly expects a float tensor of shape (N, {self.in_channels}, T, H, W) "
                f"(batch, {'RGB' if self.in_channels == 3 else f'{self.in_channels}'} channels, frames, height, "
                f"width); got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"SlowOnly expects a normalised float tensor, got dtype {x.dtype}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> backbone feature map (N, 2048, T, h, w)."""
        self._check_input(x)
        return self.backbone(x)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (N, num_classes), or the pooled (N, 2048) embedding when ``pre_logits``."""
        return self.head(feats, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (0 removes it)."""
        self.head.reset(num_classes)
