"""``create_model``: the model index, the architectures and the weights sources glued together.

A model is built at the size asked for (head ``num_classes``, stem ``in_chans``), the checkpoint's tensors are
fitted to it (:mod:`slowonly_zoo.weights.adapt`) and loaded strictly. What the model is then is recorded as plain
data in ``model.pretrained_cfg`` (timm's keys, so ``timm.data.resolve_data_config`` reads it, plus the video
protocol): the class names there belong to the weights, so a replaced head has none unless given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointMismatchError, ModelOptionError, UnsupportedModelError
from .index import Architecture, ModelEntry, UnknownModelError, get_model_info
from .models import SlowOnly
from .progress import logger
from .weights.adapt import Adaptation, fit_state_dict
from .weights.checkpoint import WeightsFile, read_weights_file
from .weights.convert import load_state_dict_strict

__all__ = [
    "build_architecture",
    "check_model_name",
    "class_names_of",
    "create_model",
    "create_model_for_entry",
    "pretrained_cfg",
    "timm_pretrained_cfg",
]

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".pyth", ".pkl")
"""Endings that make a model name a file path (timm's ``parse_model_name`` refuses path-like names too)."""

INTERPOLATION = "bilinear"
"""The resize of every test protocol: mmaction2 1.2.0 ``mmaction/datasets/transforms/processing.py`` ``Resize``
(``interpolation='bilinear'``, OpenCV), as :mod:`slowonly_zoo.data.transforms` reproduces it."""

PIXEL_SCALE = 255.0
"""The index keeps mean/std on the 0-255 scale (mmaction2's data preprocessor); timm's configs use 0-1."""


def check_model_name(name: str, *, checkpoint_given: bool = False) -> None:
    """Refuse a model name that is a file path (:class:`~slowonly_zoo.errors.ModelOptionError`).

    A name with a directory separator, a weights-file ending (``.pth``, ``.safetensors``, ...) or that names a
    file or folder on disk would otherwise resolve as an alias (checkpoint file stems are aliases) and give a model
    without reading the file. With ``checkpoint_given`` (weights come from ``checkpoint_path``), a plain name that
    also names something on disk is taken as the model name.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    has_separator = any(sep in name for sep in ("/", "\\", os.sep))
    has_suffix = name.lower().endswith(WEIGHT_FILE_SUFFIXES)
    on_disk = not checkpoint_given and os.path.exists(name)
    if not (has_separator or has_suffix or on_disk):
        return
    try:
        suggestion = get_model_info(name).name
    except UnknownModelError:
        suggestion = "NAME"
    raise ModelOptionError(
        f"{name!r} is a file path, not a model name, and create_model reads no weights from a name: pass the file "
        f"as checkpoint_path= with the model's name, e.g. create_model({suggestion!r}, checkpoint_path={name!r}) "
        "(on the command line: NAME --checkpoint FILE)"
    )


def build_architecture(entry: ModelEntry, **kwargs: Any) -> SlowOnly:
    """An untrained SlowOnly with the entry's architecture and head size (``kwargs`` override SlowOnly's)."""
    arch = _single_network(entry)
    options: dict[str, Any] = dict(
        depth=arch.depth,
        num_classes=entry.num_classes,
        in_channels=arch.in_channels,
        non_local=arch.non_local,
        with_pool1=arch.with_pool1,
    )
    if arch.head_mode != "global":  # FAIR's heads (models/head.py); the default head takes no extra arguments
        options.update(
            head_mode=arch.head_mode,
            head_frames=arch.clip_len,
            head_activation=entry.protocol.score_activation if entry.protocol else "softmax",
        )
    options.update(kwargs)
    return SlowOnly(**options)


def _single_network(entry: ModelEntry) -> Architecture:
    if entry.unsupported is not None:
        raise UnsupportedModelError(
            f"{entry.name} is recorded in the index but slowonly-zoo cannot build it: {entry.unsupported}"
        )
    if entry.members or entry.architecture is None:
        raise ValueError(
            f"{entry.name} is an ensemble of {', '.join(entry.members)}, not a single network: create its members "
            "and fuse their scores (slowonly-zoo verify/fuse do this for you)"
        )
    return entry.architecture


def create_model(
    name: str,
    pretrained: bool = False,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> SlowOnly:
    """Build a SlowOnly model by name (canonical name or any alias), optionally with weights.

    Args:
        name: a name from :func:`slowonly_zoo.list_models`, an upstream config name or a checkpoint file stem. A
            file path is refused (:class:`~slowonly_zoo.errors.ModelOptionError`): pass it as ``checkpoint_path``.
        pretrained: load the released weights, fetched and verified through the weights sources (local cache,
            Hugging Face Hub mirrors, ``SLOWONLY_ZOO_MIRRORS``, the upstream URL).
        checkpoint_path: load this file instead: an upstream ``.pth``, a slowonly-zoo ``.safetensors`` or an
            export folder. Implies loading weights.
        num_classes: the head size. One other than the checkpoint's gives a freshly initialised classifier
            (logged) and no class names unless ``class_names`` are given; everything else is loaded strictly.
            Default: the head size the checkpoint records (a fine-tune written by ``slowonly-zoo train``), else
            the entry's.
        in_chans: the input channel count. One other than the checkpoint's adapts the stem kernel (logged).
        class_names: names of the head outputs, in order (at most ``num_classes``), e.g. of your fine-tuning
            dataset. Default: the names the checkpoint records, else the entry's when the head is the entry's.
        device: where to put the model.
        progress: show a download progress bar (default: when stderr is a terminal).
        kwargs: other :class:`~slowonly_zoo.models.SlowOnly` arguments (e.g. ``dropout``).

    Returns the model in eval mode, with ``model.pretrained_cfg`` (plain data) describing it and its weights.
    """
    check_model_name(name, checkpoint_given=checkpoint_path is not None)
    return create_model_for_entry(
        get_model_info(name),
        pretrained,
        checkpoint_path=checkpoint_path,
        num_classes=num_classes,
        in_chans=in_chans,
        class_names=class_names,
        device=device,
        progress=progress,
        **kwargs,
    )


def create_model_for_entry(
    entry: ModelEntry,
    pretrained: bool = False,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> SlowOnly:
    """:func:`create_model` for an entry already resolved (what the torch.hub and timm entry points call)."""
    weights: WeightsFile | None = None
    source: str | None = None
    if checkpoint_path is not None or pretrained:
        if checkpoint_path is None:
            from .weights.sources import fetch_weights

            checkpoint_path = fetch_weights(entry, progress=progress)
        else:  # the user's file: a regular file, and verified when its name carries a sha256 prefix
            from .weights.file_checks import check_user_checkpoint

            check_user_checkpoint(checkpoint_path)
        source = str(checkpoint_path)
        weights = read_weights_file(Path(checkpoint_path))
    if num_classes is not None:
        head = int(num_classes)
    elif weights is not None and weights.num_classes is not None:
        # a fine-tuned checkpoint records its head size (slowonly_zoo/training/checkpoints.py): build that head;
        # the load below stays strict, so tensors of another size are still an error
        head = weights.num_classes
    else:
        head = entry.num_classes
    model = build_architecture(
        entry,
        num_classes=head,
        in_channels=_single_network(entry).in_channels if in_chans is None else int(in_chans),
        **kwargs,
    )
    names = _entry_names(entry, model)
    if weights is not None:
        state_dict, adaptation = fit_state_dict(
            weights.state_dict,
            model.state_dict(),
            replace_classifier=num_classes is not None,
            adapt_stem=in_chans is not None,
        )
        load_state_dict_strict(model, state_dict)
        _log_adaptation(entry, adaptation)
        if adaptation.classifier_replaced:
            names = None
        elif weights.class_names is not None:
            names = _checked_names(weights.class_names, model.num_classes, f"the class names recorded in {source}")
    if class_names is not None:
        names = _checked_names(class_names, model.num_classes, "class_names")
    model.pretrained_cfg = pretrained_cfg(
        entry, num_classes=model.num_classes, in_chans=model.in_channels, label_names=names, weights_source=source
    )
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _entry_names(entry: ModelEntry, model: SlowOnly) -> tuple[str, ...] | None:
    """The entry's class names, when the model's head is the entry's (same size); None otherwise."""
    if model.num_classes != entry.num_classes or model.num_classes == 0:
        return None
    return entry.labels or None


def _checked_names(names: Sequence[str], num_classes: int, what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ModelOptionError(f"{what} must be a sequence of strings, one per head output")
    names = tuple(names)
    if num_classes == 0 or len(names) > num_classes:
        error = CheckpointMismatchError if what.startswith("the class names recorded") else ModelOptionError
        raise error(
            f"{what} has {len(names)} names but the head has {num_classes} outputs; give at most one name per "
            "output (or set num_classes to the number of names)"
        )
    return names


def _log_adaptation(entry: ModelEntry, adaptation: Adaptation) -> None:
    if adaptation.stem_adapted:
        logger.info(
            "%s: stem adapted from %d to %d input channels", entry.name, adaptation.from_chans, adaptation.to_chans
        )
    if adaptation.classifier_replaced:
        logger.info(
            "%s: classifier replaced (%d -> %d classes, freshly initialised)",
            entry.name,
            adaptation.from_classes,
            adaptation.to_classes,
        )


# --------------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------------


def timm_pretrained_cfg(entry: ModelEntry) -> dict[str, Any]:
    """The entry's weights as timm describes them (only ``timm.models.PretrainedCfg`` fields), for timm's
    registry: the entry's head size, channels and class names, and its data config (:func:`_data_config`)."""
    return _data_config(entry, entry.num_classes, _single_network(entry).in_channels, entry.labels or None)


def pretrained_cfg(
    entry: ModelEntry,
    *,
    num_classes: int,
    in_chans: int,
    label_names: Sequence[str] | None,
    weights_source: str | None,
) -> dict[str, Any]:
    """The plain-data metadata attached to a created model as ``model.pretrained_cfg``.

    timm's keys (:func:`_data_config`; ``label_names`` None when the head has no names), plus ``dataset``,
    ``weights_source`` (the file the weights came from, None for random weights), ``in_chans`` and ``protocol``
    (the entry's test protocol as a dict; None when ``in_chans`` differs from the entry's, because the protocol
    normalises the entry's channels).
    """
    cfg = _data_config(entry, num_classes, in_chans, label_names)
    channels_match = in_chans == _single_network(entry).in_channels
    cfg.update(
        dataset=entry.dataset,
        weights_source=weights_source,
        in_chans=in_chans,
        protocol=entry.to_dict().get("protocol") if entry.protocol is not None and channels_match else None,
        provenance=entry.provenance,
        # 'pyslowfast' heads apply softmax/sigmoid per window position in eval mode (models/head.py)
        head_mode=_single_network(entry).head_mode,
        outputs="probabilities" if _single_network(entry).head_mode == "pyslowfast" else "logits",
    )
    return cfg


def _data_config(
    entry: ModelEntry, num_classes: int, in_chans: int, label_names: Sequence[str] | None
) -> dict[str, Any]:
    """timm's fields for a model of ``entry`` with this head and stem.

    The data config is the entry's test protocol seen as one image crop: ``input_size`` (C, crop, crop),
    bilinear resize, ``crop_pct`` = crop / short side (1.0 where the protocol has no resize: user videos are
    resized to the crop size, see :mod:`slowonly_zoo.inference`), centre crop, mean/std on the 0-1 scale. mean/std
    are left out when ``in_chans`` differs from the entry's (the protocol's normalisation has the entry's channels).
    """
    arch = _single_network(entry)
    protocol = entry.protocol
    crop = protocol.crop_size if protocol else 224
    cfg: dict[str, Any] = {
        "url": entry.checkpoint.url if entry.checkpoint else None,
        "hf_hub_id": entry.checkpoint.hf_hub_id if entry.checkpoint and entry.checkpoint.hf_hub_id else None,
        "architecture": entry.name,
        "num_classes": num_classes,
        "label_names": tuple(label_names) if label_names else None,
        "input_size": (in_chans, crop, crop),
        "interpolation": INTERPOLATION,
        "crop_pct": (crop / protocol.resize_short) if protocol and protocol.resize_short else 1.0,
        "crop_mode": "center",
        "first_conv": "backbone.stem.conv",
        "classifier": "head.fc",
        "license": "apache-2.0",
        "notes": (
            f"video model: input (N, C, T={arch.clip_len}, H, W); the full test protocol (clips x crops) is "
            "slowonly_zoo.get_model_info(name).protocol",
        ),
    }
    if protocol is not None and in_chans == arch.in_channels:
        cfg["mean"] = tuple(m / PIXEL_SCALE for m in protocol.mean)
        cfg["std"] = tuple(s / PIXEL_SCALE for s in protocol.std)
    return cfg


def class_names_of(model: nn.Module, entry: ModelEntry | None = None) -> tuple[str, ...]:
    """The class names of ``model``'s head outputs, () when it has none.

    The names :func:`create_model` attached (``pretrained_cfg['label_names']``) count only while the head still
    has the size they were attached for (a later ``reset_classifier`` drops them). Without attached names, an
    ``entry`` given by the caller supplies its names unless the model's ``num_classes`` differs from the entry's.
    """
    num_classes = getattr(model, "num_classes", None)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg:
        names = cfg.get("label_names")
        return tuple(names) if names and cfg.get("num_classes") == num_classes else ()
    if entry is not None and num_classes in (None, entry.num_classes):  # None: a model that does not say
        return entry.labels
    return ()
