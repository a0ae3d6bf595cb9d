"""Register every index entry with timm, so ``timm.create_model(name, pretrained=True)`` works after
``import slowonly_zoo`` and goes through the same verified loading path as :func:`slowonly_zoo.create_model`.

timm keys its registry by the entrypoint function's ``__name__`` and reads pretrained metadata from the
``default_cfgs`` of the function's module; both live here. timm's image-only data config helpers do not apply
to video models: use :mod:`slowonly_zoo.data` for the test-time pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model

from .factory import create_model
from .index import ModelEntry

default_cfgs: dict[str, dict[str, Any]] = {}
"""timm-style pretrained configs, one per registered name (filled by :func:`register_entry`)."""


def _timm_cfg(entry: ModelEntry) -> dict[str, Any]:
    protocol = entry.protocol
    crop = protocol.crop_size if protocol else 224
    scale = 255.0
    mean = tuple(m / scale for m in protocol.mean) if protocol else None
    std = tuple(s / scale for s in protocol.std) if protocol else None
    cfg: dict[str, Any] = {
        "url": entry.checkpoint.url if entry.checkpoint else "",
        "hf_hub_id": entry.checkpoint.hf_hub_id if entry.checkpoint and entry.checkpoint.hf_hub_id else None,
        "num_classes": entry.num_classes,
        "input_size": (entry.architecture.in_channels, crop, crop),
        "first_conv": "backbone.stem.conv",
        "classifier": "head.fc",
        "license": "apache-2.0",
        "notes": (
            f"video model: input (N, C, T={entry.architecture.clip_len}, H, W); test protocol in "
            "slowonly_zoo.get_model_info(name).protocol",
        ),
    }
    if mean is not None:
        cfg.update(mean=mean, std=std)
    return cfg


def _entrypoint(name: str) -> Callable[..., Any]:
    def entrypoint(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: Any = None,
        cache_dir: Any = None,
        **kwargs: Any,
    ):
        overlay = pretrained_cfg_overlay or {}
        if overlay.get("file"):
            kwargs.setdefault("checkpoint_path", overlay["file"])
        return create_model(name, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"SlowOnly {name} (timm entrypoint; see slowonly_zoo.create_model)."
    return entrypoint


def register_entry(entry: ModelEntry) -> None:
    """Make ``entry`` creatable through timm (ensembles are skipped: they are not a single network)."""
    if entry.members:
        return
    default_cfgs[entry.name] = _timm_cfg(entry)
    globals()[entry.name] = register_model(_entrypoint(entry.name))
