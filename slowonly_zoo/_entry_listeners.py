"""Callbacks run for every entry :func:`slowonly_zoo.index.register_model_entry` adds at run time.

The timm bridge (:mod:`slowonly_zoo._timm_hook`) is one: it registers an entry added after timm was imported, so
timm never holds a stale view of the index. This is a leaf module (standard library only, like
:mod:`slowonly_zoo.errors`), so the index can call listeners without importing the layers that listen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_listeners: list[Callable[[Any], None]] = []
_lock = threading.Lock()


def add_entry_listener(listener: Callable[[Any], None]) -> None:
    """Call ``listener(entry)`` for every entry registered from now on (once, however often it is added)."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def notify_entry_registered(entry: Any) -> None:
    """Run every listener on a newly registered ``entry`` (a :class:`~slowonly_zoo.index.ModelEntry`)."""
    with _lock:
        listeners = tuple(_listeners)
    for listener in listeners:
        listener(entry)
