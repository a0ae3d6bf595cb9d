"""Inference-time rewrites that keep the outputs (to float rounding) and do less work.

``fuse_batchnorm`` folds every eval-mode BatchNorm3d into the convolution before it: ``y = gamma * (conv(x) -
mean) / sqrt(var + eps) + beta`` becomes one convolution with scaled weights and a bias. That removes a full
read and write of every activation per conv. ``optimize_for_inference`` adds the channels-last 3D memory
format, which cuDNN runs faster (and oneDNN on CPU too, for the 8-frame models), and ``compile=True``:
``torch.compile`` with weight freezing, which on CPU lets oneDNN pre-pack the weights and fuse bias, ReLU and the
residual add into the convolutions.

``views_per_forward`` is the other half of fast inference: how many views to put through the network at once.
On CUDA a large batch keeps the GPU busy; on CPU one view at a time is fastest, because a single 8x256x256 view's
activations stay close to the cores while a 30-view batch streams gigabytes through memory (benchmarks/run.py
measures both; see the README's Benchmarks section).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import cast

import torch
from torch import nn

from .. import config
from .layers import ConvBN3d, can_run_over_time, conv2d_over_time, max_pool2d_over_time, pool_runs_over_time, spatial

logger = logging.getLogger("slowonly_zoo")

CPU_VIEWS_PER_FORWARD = 1
"""Views per forward pass on CPU (measured fastest; the 30-view batch upstream uses is memory-bound there)."""


def views_per_forward(device: torch.device | str, batch_views: int) -> int:
    """How many views to run through the model at once on ``device``: ``batch_views`` on accelerators,
    :data:`CPU_VIEWS_PER_FORWARD` (at most ``batch_views``) on CPU. Outputs do not depend on it."""
    if torch.device(device).type == "cpu":
        return max(1, min(CPU_VIEWS_PER_FORWARD, batch_views))
    return max(1, batch_views)


def fold_batchnorm_into_conv(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> nn.Conv3d:
    """A new Conv3d equal to ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    triple = tuple[int, int, int]
    fused = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        cast(triple, conv.kernel_size),
        cast(triple, conv.stride),
        cast("str | triple", conv.padding),
        cast(triple, conv.dilation),
        conv.groups,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    running_mean, running_var = cast(torch.Tensor, bn.running_mean), cast(torch.Tensor, bn.running_var)
    with torch.no_grad():
        # in float64, so folding itself adds no rounding beyond the final cast
        scale = bn.weight.double() / torch.sqrt(running_var.double() + bn.eps)
        weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1, 1)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        bias = (bias - running_mean.double()) * scale + bn.bias.double()
        fused.weight.copy_(weight.to(conv.weight.dtype))
        cast(torch.Tensor, fused.bias).copy_(bias.to(conv.weight.dtype))
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


class Conv2dOverTime(nn.Module):
    """A Conv3d whose temporal kernel is 1 (no temporal stride or padding), run as a Conv2d on ``(N*T, C, H, W)``
    (:func:`~slowonly_zoo.models.layers.conv2d_over_time`; the module docstring of ``models.layers`` says why).
    Holds the 5D ``weight`` and ``bias`` of the Conv3d it replaces (same state-dict keys and shapes)."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        if not can_run_over_time(conv):
            raise ValueError(f"{conv} has a temporal kernel, stride or padding; it cannot run as a Conv2d over time")
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride, self.padding, self.dilation = (spatial(v) for v in (conv.stride, conv.padding, conv.dilation))
        self.groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_over_time(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2dOverTime(nn.Module):
    """The stem's (1, k, k) MaxPool3d as a 2D max-pool over ``(N*T, C, H, W)`` (see :class:`Conv2dOverTime`)."""

    def __init__(self, pool: nn.MaxPool3d) -> None:
        super().__init__()
        sizes = (pool.kernel_size, pool.stride, pool.padding)
        self.kernel_size, self.stride, self.padding = (spatial(v) for v in sizes)
        self.ceil_mode = pool.ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d_over_time(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


def fold_time_into_batch(model: nn.Module) -> nn.Module:
    """Replace (in place) every Conv3d and MaxPool3d of ``model`` that works frame by frame with its 2D form over
    ``(N*T, C, H, W)`` (:class:`Conv2dOverTime`, :class:`MaxPool2dOverTime`). Meant for channels-last 3D models
    (elsewhere each fold copies the activations); the state dict keeps its keys and shapes. Returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv3d) and can_run_over_time(child):
                setattr(parent, name, Conv2dOverTime(child))
            elif isinstance(child, nn.MaxPool3d) and pool_runs_over_time(child):
                setattr(parent, name, MaxPool2dOverTime(child))
    return model


def optimize_for_inference(
    model: nn.Module,
    *,
    fuse_bn: bool = True,
    channels_last: bool = True,
    time_as_batch: bool = True,
    dtype: torch.dtype | None = None,
    compile: bool = False,
    inplace: bool = False,
) -> nn.Module:
    """The fast inference form of a SlowOnly model.

    Args:
        fuse_bn: fold BatchNorm into the convolutions.
        channels_last: channels-last 3D weights (faster with cuDNN and, with ``time_as_batch``, with oneDNN on
            CPU; see the README's Benchmarks section). On CPU the eval-mode backbone runs channels-last activations
            whatever this says (``models.layers``); without it the weights keep their default layout.
        time_as_batch: run every convolution and pool that works frame by frame (all but the temporal (3, 1, 1)
            convs) as its 2D form with the frames folded into the batch (:func:`fold_time_into_batch`). Only
            with ``channels_last`` (where the fold copies nothing); ignored otherwise.
        dtype: e.g. ``torch.bfloat16`` (feed it inputs of that dtype).
        compile: ``torch.compile`` with weight freezing (needs a C++ compiler on CPU; about a minute of one-time
            compilation per input shape, cached on disk by torch). Falls back to eager, with a warning, when
            compilation is not available. Use :class:`FixedBatch` to keep the batch shape constant.
        inplace: modify ``model`` instead of a copy.

    Inputs may stay in the default (contiguous) layout: the first convolution converts them.
    """
    if fuse_bn:
        model = fuse_batchnorm(model, inplace=inplace)
    elif not inplace:
        model = copy.deepcopy(model)
    if dtype is not None:
        model = model.to(dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        if time_as_batch:
            fold_time_into_batch(model)
    model.eval()
    if compile:
        model = compile_for_inference(model)
    return model


def compile_for_inference(model: nn.Module) -> nn.Module:
    """``torch.compile`` with inductor's weight freezing, falling back to eager (with a warning) when compiling
    fails here, e.g. without a C++ compiler. torch compiles lazily, so the fallback happens on the first call.
    The compiled artefacts go to :func:`use_compile_cache`'s folder, so a later run skips most of the compile."""
    use_compile_cache()
    return _CompiledOrEager(model)


def use_compile_cache() -> Path:
    """Keep inductor's compiled artefacts (FX graph cache, autotuning results, generated C++ and its builds) in
    ``<SLOWONLY_ZOO_HOME>/compile-cache`` (unless the user set ``TORCHINDUCTOR_CACHE_DIR`` to a folder of their
    own), so ``--compile`` pays the compile once per machine instead of once per run (torch's default folder is
    under ``/tmp``, cleared at reboot). Call before compiling. Returns the folder."""
    from torch._inductor import config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    # inductor writes its default folder to the environment once loaded (importing torch._dynamo is enough), so
    # that value is torch's choice, not the user's: replace it (inductor reads the variable at each use)
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "").strip()
    if not current or os.path.abspath(current) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(config.home() / "compile-cache")

    inductor_config.fx_graph_cache = True
    inductor_config.autotune_local_cache = True
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


class _CompiledOrEager(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.eager = model
        self.compiled = torch.compile(model, dynamic=False, options={"freezing": True})
        self._use_compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_compiled:
            try:
                return self.compiled(x)
            except Exception as err:
                if not _is_backend_failure(err):
                    raise
                logger.warning(
                    "torch.compile failed here (%s); running the model eagerly", str(err).splitlines()[0][:200]
                )
                self._use_compiled = False
        return self.eager(x)


def _is_backend_failure(err: Exception) -> bool:
    module = type(err).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor")) or isinstance(err, (OSError, ImportError))


class FixedBatch(nn.Module):
    """Run ``model`` on batches padded to ``batch_size`` along dim 0 (and split larger ones), so a shape-specialised
    compiled model sees one shape only. Outputs are sliced back to the real batch."""

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.model = model
        self.batch_size = batch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in x.split(self.batch_size):
            n = chunk.shape[0]
            if n < self.batch_size:
                pad = chunk.new_zeros((self.batch_size - n, *chunk.shape[1:]))
                chunk = torch.cat([chunk, pad])
            outputs.append(self.model(chunk)[:n])
        return torch.cat(outputs)
