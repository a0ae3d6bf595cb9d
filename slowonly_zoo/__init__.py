"""slowonly-zoo: mmaction2's SlowOnly video models in plain PyTorch, with verified weights and the upstream
test protocol.

    >>> import slowonly_zoo
    >>> slowonly_zoo.list_models("*k400*")[:2]
    ['slowonly_r101_8x8x1_k400', 'slowonly_r101_8x8x1_k400_omni']
    >>> model = slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", pretrained=True)  # doctest: +SKIP

Importing the package also registers every model with timm (``timm.create_model(name, pretrained=True)``).
"""

from __future__ import annotations

from typing import Any

from . import index as _index
from . import timm_registry as _timm_registry
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
    _timm_registry.register_entry(registered)
    return registered


for _name in list_models():
    _timm_registry.register_entry(get_model_info(_name))
del _name

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
