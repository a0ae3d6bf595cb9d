"""slowonly-zoo: mmaction2's SlowOnly video models in plain PyTorch, with verified weights and the upstream
test protocol.

    >>> import slowonly_zoo
    >>> slowonly_zoo.list_models("*k400*")[:2]
    ['slowonly_r101_8x8x1_k400', 'slowonly_r101_8x8x1_k400_omni']
    >>> model = slowonly_zoo.create_model("slowonly_r50_8x8x1_k400", pretrained=True)  # doctest: +SKIP

The public names below are imported on first use (PEP 562 module ``__getattr__``), so ``import slowonly_zoo``
is fast and imports neither torch nor timm; ``slowonly_zoo.index`` never imports torch.

Importing the package also registers every model with timm (``timm.create_model(name, pretrained=True)``):
at once when timm is already imported, otherwise the moment it is (timm's import costs ~2 s, so the package does
not import it for you). Entries added later with :func:`register_model_entry` are registered with timm too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors as _errors
from . import progress as _progress  # noqa: F401 - puts the quiet switch on the "slowonly_zoo" logger
from ._timm_hook import register_with_timm_when_imported as _register_with_timm_when_imported

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "ModelEntry": ".index",
    "get_model_info": ".index",
    "list_models": ".index",
    "register_model_entry": ".index",
    "resolve_name": ".index",
    "SlowOnly": ".models",
    "optimize_for_inference": ".models.fuse",
    "create_model": ".factory",
    "predict": ".inference",
    "extract": ".features",
    "verify": ".evaluation.verification",
}
"""Public name -> the module that defines it (imported when the name is first read)."""

_ERRORS: tuple[str, ...] = tuple(_errors.__all__)
"""Every error class of :mod:`slowonly_zoo.errors`, re-exported as ``slowonly_zoo.<Name>``."""

__all__ = [
    "ModelEntry",
    "SlowOnly",
    "__version__",
    "create_model",
    "extract",
    "get_model_info",
    "list_models",
    "optimize_for_inference",
    "predict",
    "register_model_entry",
    "resolve_name",
    "verify",
]
__all__ += _errors.__all__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time these come from __getattr__
    from .errors import *  # noqa: F403
    from .evaluation.verification import verify
    from .factory import create_model
    from .features import extract
    from .index import ModelEntry, get_model_info, list_models, register_model_entry, resolve_name
    from .inference import predict
    from .models import SlowOnly
    from .models.fuse import optimize_for_inference


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        return getattr(_errors, name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later reads skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


_register_with_timm_when_imported()
