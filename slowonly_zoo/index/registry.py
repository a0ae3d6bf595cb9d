"""Name resolution and the registry of entries: the packaged index, ``SLOWONLY_ZOO_EXTRA_INDEX`` files and run-time
registrations, looked up by canonical name or any alias."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import threading
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .. import config
from .._entry_listeners import notify_entry_registered
from ..errors import ModelIndexError, UnknownModelError
from .records import ModelEntry
from .schema import entry_from_index, load_index_file, parse_index_text, validate_entry

__all__ = [
    "EXTRA_INDEX_ENV",
    "PACKAGED_ORIGIN",
    "entry_origin",
    "get_model_info",
    "list_models",
    "register_model_entry",
    "reload_index",
    "resolve_name",
]

#: Environment variable naming extra index files (``os.pathsep``-separated), merged on first use.
EXTRA_INDEX_ENV = "SLOWONLY_ZOO_EXTRA_INDEX"


def _lookup_key(name: str) -> str:
    """The form names are compared in: no directory/URL, no .py/.pth, lower case."""
    key = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".pth", ".py"):
        if key.lower().endswith(suffix):
            key = key[: -len(suffix)]
    return key.lower()


class _Registry:
    def __init__(self) -> None:
        self.entries: dict[str, ModelEntry] = {}
        self.origins: dict[str, str] = {}
        self.lookup: dict[str, str] = {}  # lookup key -> canonical name
        self.lock = threading.RLock()

    def add(self, entry: ModelEntry, origin: str) -> ModelEntry:
        with self.lock:
            keys: dict[str, str] = {}
            for n in (entry.name, *entry.aliases):
                k = _lookup_key(n)
                if k in self.lookup:
                    other = self.lookup[k]
                    raise ModelIndexError(
                        f"{origin}: model {entry.name!r}: name {n!r} clashes with model {other!r} "
                        f"(from {self.origins[other]}); choose another name or alias"
                    )
                keys[k] = n
            for m in entry.members:
                if _lookup_key(m) not in self.lookup:
                    raise ModelIndexError(
                        f"{origin}: ensemble {entry.name!r} names unknown member {m!r}; register the members first"
                    )
            members = tuple(self.lookup[_lookup_key(m)] for m in entry.members)
            if members != entry.members:
                entry = dataclasses.replace(entry, members=members)
            self.entries[entry.name] = entry
            self.origins[entry.name] = origin
            for k in keys:
                self.lookup[k] = entry.name
            return entry

    def resolve(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"model name must be a string, got {type(name).__name__}")
        key = _lookup_key(name)
        canonical = self.lookup.get(key)
        if canonical is None:
            close = difflib.get_close_matches(key, list(self.lookup), n=8, cutoff=0.5)
            suggestions: list[str] = []
            for k in close:
                c = self.lookup[k]
                if c not in suggestions:
                    suggestions.append(c)
            if not suggestions:  # e.g. a fragment such as 'k700': fall back to substring matches
                suggestions = sorted({c for k, c in self.lookup.items() if key and key in k})
            raise UnknownModelError(name, suggestions[:5])
        return canonical


def _packaged_index_text() -> str:
    return resources.files("slowonly_zoo").joinpath("model_index.yml").read_text(encoding="utf-8")


@functools.cache
def _registry() -> _Registry:
    reg = _Registry()
    for e in parse_index_text(_packaged_index_text(), PACKAGED_ORIGIN):
        reg.add(e, PACKAGED_ORIGIN)
    for path in config.extra_index_paths():
        if not path.is_file():
            raise ModelIndexError(
                f"{EXTRA_INDEX_ENV} names {str(path)!r}, which is not a file; fix or unset the variable"
            )
        for e in load_index_file(path):
            reg.add(e, str(path))
    return reg


def reload_index() -> None:
    """Forget the loaded index (and every :func:`register_model_entry` entry); the next call reloads it,
    re-reading ``SLOWONLY_ZOO_EXTRA_INDEX``."""
    _registry.cache_clear()


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def resolve_name(name: str) -> str:
    """The canonical name for a canonical name or any alias; :class:`UnknownModelError` otherwise."""
    return _registry().resolve(name)


#: :func:`entry_origin` of the entries of the packaged index.
PACKAGED_ORIGIN = "packaged model_index.yml"


def entry_origin(name: str) -> str:
    """Where the entry ``name`` comes from: :data:`PACKAGED_ORIGIN`, the path of the extra index file that holds it
    (``SLOWONLY_ZOO_EXTRA_INDEX``), or ``"register_model_entry"`` for an entry added at run time."""
    reg = _registry()
    return reg.origins[reg.resolve(name)]


def get_model_info(name: str) -> ModelEntry:
    """The :class:`ModelEntry` for a canonical name or any alias; :class:`UnknownModelError` otherwise."""
    reg = _registry()
    return reg.entries[reg.resolve(name)]


def list_models(
    pattern: str = "*", pretrained: bool | None = None, *, provenance: str | None = None, supported: bool = True
) -> list[str]:
    """Canonical names matching the shell-style ``pattern`` (case-insensitive), sorted.

    ``pretrained=True`` keeps entries that have a checkpoint (so not the GYM99 fusion ensemble),
    ``pretrained=False`` keeps those without one, ``None`` keeps all. ``provenance`` keeps the entries of one
    publisher (``'mmaction2-0.x'``, ``'pytorchvideo'``, ``'pyslowfast'``, ...). Entries recorded only to say why
    they cannot be built (``ModelEntry.unsupported``, e.g. FAIR's AVA detector) are left out unless
    ``supported=False``, which lists every entry.
    """
    reg = _registry()
    pat = pattern.lower()
    names = [
        n
        for n, e in reg.entries.items()
        if fnmatch.fnmatchcase(n.lower(), pat)
        and (pretrained is None or e.has_checkpoint == pretrained)
        and (provenance is None or e.provenance == provenance)
        and (e.supported or not supported)
    ]
    return sorted(names)


def register_model_entry(entry: ModelEntry | Mapping[str, Any]) -> ModelEntry:
    """Add an entry to the index at run time: a :class:`ModelEntry` or a dict in the ``model_index.yml`` schema
    (:func:`~slowonly_zoo.index.entry_to_index`). Its name and aliases must not clash with any existing name or alias
    (:class:`ModelIndexError`, a ``ValueError``). Returns the stored entry.

    Every listener of :mod:`slowonly_zoo._entry_listeners` then sees the entry: the timm bridge registers it with
    timm when timm is imported (otherwise timm's import registers it with the rest)."""
    if isinstance(entry, ModelEntry):
        validate_entry(entry, "register_model_entry")
    elif isinstance(entry, Mapping):
        if "Name" not in entry:
            raise ModelIndexError(
                "register_model_entry: a dict entry must use the model_index.yml schema ('Name', 'Architecture', "
                "'Test Protocol', ...; see slowonly_zoo.index.entry_to_index()); ModelEntry.to_dict() output is "
                "for reading"
            )
        entry = entry_from_index(entry, "register_model_entry")
    else:
        raise TypeError(f"register_model_entry takes a ModelEntry or a dict, got {type(entry).__name__}")
    registered = _registry().add(entry, "register_model_entry")
    notify_entry_registered(registered)
    return registered
