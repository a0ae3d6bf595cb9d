"""Inference-time rewrites that keep the outputs (to float rounding) and do less work.

``fuse_batchnorm`` folds every eval-mode BatchNorm3d into the convolution before it: ``y = gamma * (conv(x) -
mean) / sqrt(var + eps) + beta`` becomes one convolution with scaled weights and a bias. That removes a full
read and write of every activation per conv. ``optimize_for_inference`` adds the channels-last 3D memory
format, which the oneDNN (CPU) and cuDNN convolution kernels run faster.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import ConvBN3d


def fold_batchnorm_into_conv(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> nn.Conv3d:
    """A new Conv3d equal to ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    fused = nn.Conv3d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        # in float64, so folding itself adds no rounding beyond the final cast
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1, 1)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        bias = (bias - bn.running_mean.double()) * scale + bn.bias.double()
        fused.weight.copy_(weight.to(conv.weight.dtype))
        fused.bias.copy_(bias.to(conv.weight.dtype))
    return fused


def fuse_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every ``ConvBN3d``'s BatchNorm into its convolution (for inference only: training would need the BN).

    Returns the fused model (a deep copy unless ``inplace``), in eval mode. Its state dict has conv biases and
    no BN entries, so load checkpoints *before* fusing.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in model.modules():
        if isinstance(module, ConvBN3d) and isinstance(module.bn, nn.BatchNorm3d):
            module.conv = fold_batchnorm_into_conv(module.conv, module.bn)
            module.bn = nn.Identity()
    return model


def optimize_for_inference(
    model: nn.Module,
    *,
    fuse_bn: bool = True,
    channels_last: bool | None = None,
    dtype: torch.dtype | None = None,
    inplace: bool = False,
) -> nn.Module:
    """The fast inference form of a SlowOnly model: BN folded into convs, optionally channels-last 3D weights and
    another dtype (``torch.bfloat16``: feed it bf16 inputs, or run it under autocast).

    ``channels_last=None`` picks what is faster where the model lives: channels-last on CUDA (cuDNN), contiguous
    on CPU (measured on this project's CPU machine: channels-last 3D was slower there; see benchmarks/).
    Inputs may stay in the default (contiguous) layout: the first convolution converts them.
    """
    if channels_last is None:
        channels_last = next(model.parameters()).is_cuda
    if fuse_bn:
        model = fuse_batchnorm(model, inplace=inplace)
    elif not inplace:
        model = copy.deepcopy(model)
    if dtype is not None:
        model = model.to(dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model.eval()
