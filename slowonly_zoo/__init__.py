"""slowonly-zoo: mmaction2's SlowOnly video models in plain PyTorch, with verified weights and the upstream
test protocol.

    >>> import slowonly_zoo
    >>> slowonly_zoo.list_models("*k400*")[:2]
    ['slowonly_r101_8x8x1_k400', 'slowonly_r101_8x8x1_k400_omni']
    >>> model = slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", pretrained=True)  # doctest: +SKIP

Importing the package also registers every model with timm (``timm.create_model(name, pretrained=True)``):
at once when timm is already imported, otherwise the moment it is (timm's import costs ~2 s, so the package does
not import it for you).
"""

from __future__ import annotations

import sys as _sys
from typing import Any

from . import index as _index
from ._timm_hook import register_with_timm_when_imported as _register_with_timm_when_imported
from .factory import create_model
from .index import ModelEntry, UnknownModelError, get_model_info, list_models, resolve_name
from .models import SlowOnly

__version__ = "0.1.0"


def register_model_entry(entry: ModelEntry | dict[str, Any]) -> ModelEntry:
    """Add a model (e.g. your fine-tuned checkpoint with its URL and sha256) to the index and to timm.

    Takes a :class:`ModelEntry` or a dict in the ``model_index.yml`` schema; a name that clashes with an existing
    name or alias is an error. The entry then works with ``create_model(..., pretrained=True)``, the weights
    sources, verification and ``slowonly-zoo verify``.
    """
    registered = _index.register_model_entry(entry)
    if "timm" in _sys.modules:
        from . import timm_registry

        timm_registry.register_entry(registered)
    return registered


_register_with_timm_when_imported()

__all__ = [
    "ModelEntry",
    "SlowOnly",
    "UnknownModelError",
    "__version__",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model_entry",
    "resolve_name",
]
