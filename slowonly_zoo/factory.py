"""``create_model``: the model index, the architectures and the weights sources glued together."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .index import ModelEntry, get_model_info
from .models import SlowOnly
from .weights.checkpoint import read_state_dict
from .weights.convert import load_state_dict_strict

logger = logging.getLogger("slowonly_zoo")


def build_architecture(entry: ModelEntry, **kwargs: Any) -> SlowOnly:
    """An untrained SlowOnly with the entry's architecture and head size (``kwargs`` override SlowOnly's)."""
    if entry.members:
        raise ValueError(
            f"{entry.name} is an ensemble of {', '.join(entry.members)}, not a single network: create its members "
            "and fuse their scores (slowonly-zoo verify/fuse do this for you)"
        )
    arch = entry.architecture
    options: dict[str, Any] = dict(
        depth=arch.depth,
        num_classes=entry.num_classes,
        in_channels=arch.in_channels,
        non_local=arch.non_local,
        with_pool1=arch.with_pool1,
    )
    options.update(kwargs)
    return SlowOnly(**options)


def adapt_input_channels(stem_weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a (64, C, kT, kH, kW) stem kernel to ``in_chans`` input channels.

    Every new input channel gets the kernel summed over the old channels divided by ``in_chans``: the stem's
    response to an input that is the same on every channel is unchanged, whatever the two channel counts
    (RGB <-> flow <-> grey). Fine-tuning then learns the per-channel differences.
    """
    summed = stem_weight.sum(dim=1, keepdim=True) / in_chans
    return summed.expand(-1, in_chans, -1, -1, -1).contiguous()


def create_model(
    name: str,
    pretrained: bool = False,
    *,
    checkpoint_path: str | Path | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> SlowOnly:
    """Build a SlowOnly model by name (canonical name or any alias), optionally with weights.

    Args:
        name: a name from :func:`slowonly_zoo.list_models`, an upstream config name or a checkpoint file stem.
        pretrained: load the released weights, fetched and verified through the weights sources (local cache,
            Hugging Face Hub mirrors, ``SLOWONLY_ZOO_MIRRORS``, the upstream URL).
        checkpoint_path: load this file instead: an upstream ``.pth``, a slowonly-zoo ``.safetensors`` or an
            export folder. Implies loading weights.
        num_classes: a head size other than the checkpoint's replaces the classifier by a freshly initialised one
            (logged); everything else is loaded strictly.
        in_chans: an input channel count other than the checkpoint's adapts the stem kernel (logged).
        device: where to put the model.
        progress: show a download progress bar (default: when stderr is a terminal).
        kwargs: other :class:`~slowonly_zoo.models.SlowOnly` arguments (e.g. ``dropout``).

    Returns the model in eval mode, with ``model.pretrained_cfg`` describing the entry it was built from.
    """
    entry = get_model_info(name)
    model = build_architecture(entry, **kwargs)
    source: str | None = None
    if checkpoint_path is not None or pretrained:
        if checkpoint_path is None:
            from .weights.sources import fetch_weights

            checkpoint_path = fetch_weights(entry, progress=progress)
        source = str(checkpoint_path)
        load_state_dict_strict(model, read_state_dict(checkpoint_path))
    if in_chans is not None and in_chans != model.in_channels:
        with torch.no_grad():
            new_weight = adapt_input_channels(model.backbone.stem.conv.weight, in_chans)
            stem = model.backbone.stem
            stem.conv = torch.nn.Conv3d(in_chans, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
            stem.conv.weight.copy_(new_weight)
            model.backbone.in_channels = in_chans
        logger.info(
            "%s: stem adapted from %d to %d input channels", entry.name, entry.architecture.in_channels, in_chans
        )
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
        logger.info(
            "%s: classifier replaced (%d -> %d classes, freshly initialised)",
            entry.name,
            entry.num_classes,
            num_classes,
        )
    model.pretrained_cfg = pretrained_cfg(entry, source)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def pretrained_cfg(entry: ModelEntry, weights_source: str | None) -> dict[str, Any]:
    """The metadata attached to a created model (timm-style ``pretrained_cfg`` plus the video protocol)."""
    protocol = entry.protocol
    return {
        "architecture": entry.name,
        "num_classes": entry.num_classes,
        "dataset": entry.dataset,
        "url": entry.checkpoint.url if entry.checkpoint else None,
        "weights_source": weights_source,
        "protocol": None if protocol is None else entry.to_dict().get("protocol"),
        "entry": entry,
    }
