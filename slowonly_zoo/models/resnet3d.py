"""The SlowOnly ResNet3D backbone: the Slow pathway of SlowFast, as mmaction2's ``ResNet3dSlowOnly`` builds it.

Every fact below is from the upstream implementation (fact sheet sections 1 and 5):

* stem: Conv3d (1, 7, 7) stride (1, 2, 2) padding (0, 3, 3) + BN + ReLU, then MaxPool3d (1, 3, 3) stride
  (1, 2, 2) padding (0, 1, 1) unless ``with_pool1=False`` (Something-Something V1);
* four stages of bottlenecks, (3, 4, 6, 3) blocks for ResNet-50 and (3, 4, 23, 3) for ResNet-101;
* stages 3 and 4 are "inflated": their first 1x1 conv becomes (3, 1, 1) with temporal padding 1;
* the spatial stride sits on the 3x3 conv ("pytorch" style) of the first block of stages 2-4;
* every block 0 (stage 1 included) has a 1x1 conv + BN shortcut;
* no temporal stride anywhere and no pool2: T is kept from input to output;
* optional embedded-Gaussian non-local blocks after layer2 blocks 0, 2 and layer3 blocks 0, 2, 4.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import ConvBN3d, max_pool3d_frame_wise, pool_runs_over_time
from .non_local import NonLocal3d

STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
"""Blocks per stage for each supported depth."""

INFLATED_STAGES = (False, False, True, True)
"""Stages whose first conv of every block is temporal (3, 1, 1)."""

NON_LOCAL_BLOCKS: tuple[tuple[int, ...], ...] = ((), (0, 2), (0, 2, 4), ())
"""Block indices per stage that end with a non-local block, in the upstream non-local configs."""

EXPANSION = 4
BASE_CHANNELS = 64


class Bottleneck3d(nn.Module):
    """1x1(x3) -> 3x3 -> 1x1 bottleneck with a residual connection and an optional non-local block after it."""

    def __init__(
        self,
        in_channels: int,
        planes: int,
        spatial_stride: int,
        inflate: bool,
        shortcut: bool,
        non_local: bool,
    ) -> None:
        super().__init__()
        out_channels = planes * EXPANSION
        if inflate:
            self.conv1 = ConvBN3d(in_channels, planes, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.conv1 = ConvBN3d(in_channels, planes, (1, 1, 1))
        self.conv2 = ConvBN3d(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1))
        self.conv3 = ConvBN3d(planes, out_channels, (1, 1, 1), relu=False)
        self.downsample = (
            ConvBN3d(in_channels, out_channels, (1, 1, 1), stride=(1, spatial_stride, spatial_stride), relu=False)
            if shortcut
            else None
        )
        self.relu = nn.ReLU(inplace=True)
        self.non_local = NonLocal3d(out_channels) if non_local else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        out = self.relu(out + identity)
        if self.non_local is not None:
            out = self.non_local(out)
        return out


class Stem(ConvBN3d):
    """conv1 (1, 7, 7) / (1, 2, 2) + BN + ReLU, then the (1, 3, 3) / (1, 2, 2) max-pool when ``with_pool``."""

    def __init__(self, in_channels: int, with_pool: bool) -> None:
        super().__init__(in_channels, BASE_CHANNELS, (1, 7, 7), (1, 2, 2), (0, 3, 3))
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if with_pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        pool = self.pool
        if isinstance(pool, nn.MaxPool3d) and pool_runs_over_time(pool) and self.folds_frames(x):
            return max_pool3d_frame_wise(pool, x)
        return pool(x)


class SlowOnlyBackbone(nn.Module):
    """The ResNet3D Slow pathway. Input (N, C, T, H, W); output (N, 2048, T, H/32, W/32) (H/16 without pool1)."""

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self,
        depth: int = 50,
        in_channels: int = 3,
        non_local: bool | Sequence[Sequence[int]] = False,
        with_pool1: bool = True,
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"SlowOnly depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        if isinstance(non_local, bool):
            non_local_blocks = NON_LOCAL_BLOCKS if non_local else ((), (), (), ())
        else:
            non_local_blocks = tuple(tuple(stage) for stage in non_local)
        self.depth = depth
        self.in_channels = in_channels
        self.stem = Stem(in_channels, with_pool1)
        channels = BASE_CHANNELS
        for stage, num_blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = BASE_CHANNELS * 2**stage
            blocks = []
            for index in range(num_blocks):
                blocks.append(
                    Bottleneck3d(
                        channels,
                        planes,
                        spatial_stride=2 if (stage > 0 and index == 0) else 1,
                        inflate=INFLATED_STAGES[stage],
                        shortcut=index == 0,
                        non_local=index in non_local_blocks[stage],
                    )
                )
                channels = planes * EXPANSION
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.out_channels = channels
        self.init_weights()

    def init_weights(self) -> None:
        """Upstream's from-scratch initialisation (mmaction2 1.2.0 ``mmaction/models/backbones/resnet3d.py``
        ``ResNet3d._init_weights`` with ``pretrained=None`` and the default ``zero_init_residual=True``):

        * every Conv3d, the non-local block's included: Kaiming normal, ``fan_out``, ReLU gain, bias 0 (mmengine
          ``kaiming_init``'s defaults). This loop runs after ``NonLocal3d``'s own std-0.01 initialisation upstream,
          so it overrides it, and the non-local ``conv_out`` BatchNorm ends with weight 1, not 0;
        * every BatchNorm3d: weight 1, bias 0 (running statistics reset too);
        * the last BatchNorm of every bottleneck (``conv3.bn``): weight 0, so each residual block starts as the
          identity.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_running_stats()
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, Bottleneck3d) and isinstance(module.conv3.bn, nn.BatchNorm3d):
                nn.init.zeros_(module.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and x.device.type == "cpu":
            # eval on CPU: channels-last 3D activations, so that every frame-wise conv and pool runs as its 2D form
            # (models.layers); contiguous weights are fine, the state dict does not change
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)
