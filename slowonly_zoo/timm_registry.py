"""Register every index entry with timm, so ``timm.create_model(name, pretrained=True)`` works after
``import slowonly_zoo`` and goes through the same verified loading path as :func:`slowonly_zoo.create_model`.

timm keys its registry by the entrypoint function's ``__name__`` and reads pretrained metadata from the
``default_cfgs`` of the function's module; both live here. The configs are the entry's own
(:func:`slowonly_zoo.factory.timm_pretrained_cfg`: bilinear resize, the protocol's crop size and fraction, its
mean/std, class names), so ``timm.data.resolve_data_config`` describes one centre-crop view of the test protocol;
the full multi-clip, multi-crop pipeline is :mod:`slowonly_zoo.data`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model

from .factory import create_model_for_entry, timm_pretrained_cfg
from .index import ModelEntry, get_model_info

default_cfgs: dict[str, dict[str, Any]] = {}
"""timm-style pretrained configs, one per registered name (filled by :func:`register_entry`)."""


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
        return create_model_for_entry(get_model_info(name), pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"SlowOnly {name} (timm entrypoint; see slowonly_zoo.create_model)."
    return entrypoint


def register_entry(entry: ModelEntry) -> None:
    """Make ``entry`` creatable through timm (ensembles are skipped: they are not a single network)."""
    if entry.members:
        return
    default_cfgs[entry.name] = timm_pretrained_cfg(entry)
    globals()[entry.name] = register_model(_entrypoint(entry.name))
