"""Register the zoo with timm as soon as timm is imported, without importing timm ourselves.

If timm is already imported, registration happens at once. Otherwise a one-shot import hook wraps timm's module
loader so that, right after ``import timm`` finishes, every index entry is registered. Entries added later with
``register_model_entry`` reach timm through :mod:`slowonly_zoo._entry_listeners`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any

from ._entry_listeners import add_entry_listener

_registered_with_timm = threading.Event()
"""Set once every index entry has been registered with timm; later entries are then registered one by one."""


def _register_all() -> None:
    from . import timm_registry
    from .index import get_model_info, list_models

    for name in list_models():
        timm_registry.register_entry(get_model_info(name))
    _registered_with_timm.set()


def _register_new_entry(entry: Any) -> None:
    """Listener for ``register_model_entry``: before the zoo's timm registration has run, that registration picks
    the entry up with the rest (timm not imported yet, or still importing)."""
    if _registered_with_timm.is_set():
        from . import timm_registry

        timm_registry.register_entry(entry)


class _TimmImportHook(importlib.abc.MetaPathFinder):
    """Finds timm like the path finder does, with a loader that registers the zoo once timm has executed.

    It stays on ``sys.meta_path`` until timm is really imported: a mere ``importlib.util.find_spec('timm')``
    (torch.hub's dependency check does one) must not use it up.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "timm":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module
        hook = self

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
            _register_all()

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def register_with_timm_when_imported() -> None:
    """Register every entry with timm now (timm imported) or right after timm's import, and every entry
    registered later as it is added."""
    add_entry_listener(_register_new_entry)
    if "timm" in sys.modules:
        _register_all()
    elif not any(isinstance(finder, _TimmImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TimmImportHook())
