"""Getting verified tensors onto disk and into a state dict.

The modules, each with one job: :mod:`.convert` (upstream -> zoo key names, strict loading), :mod:`.checkpoint`
(reading ``.pth`` / ``.safetensors`` / export folders), :mod:`.layout` (file names and metadata keys of the
weights files), :mod:`.hashing`, :mod:`.cache` (layout and records of the local cache), :mod:`.download` (HTTP
only), :mod:`.sources` (the order of sources: cache, Hugging Face Hub, mirrors, upstream), :mod:`.transfer`
(``import`` / ``download``), :mod:`.hub_export` (``export``: a folder for the Hub with config and model card),
:mod:`.mirror` (``mirror``: the cached originals in the upstream hosts' layout, plus their lock file).

The public names below are imported lazily (on first use), so ``import slowonly_zoo`` does not pay for
``requests`` / ``filelock`` until weights are fetched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoint import read_safetensors, read_state_dict, read_upstream_checkpoint, save_safetensors
    from .convert import load_state_dict_strict, upstream_to_zoo, zoo_to_upstream
    from .hashing import sha256_file
    from .hub_export import ExportResult, export
    from .layout import CONFIG_FILE, MODEL_CARD_FILE, WEIGHTS_FILE
    from .mirror import MirrorResult, mirror
    from .sources import FetchResult, WeightsNotFoundError, fetch_weights, fetch_weights_report
    from .transfer import DownloadReport, ImportResult, download, import_files

_PUBLIC = {
    "read_safetensors": "checkpoint",
    "read_state_dict": "checkpoint",
    "read_upstream_checkpoint": "checkpoint",
    "save_safetensors": "checkpoint",
    "load_state_dict_strict": "convert",
    "upstream_to_zoo": "convert",
    "zoo_to_upstream": "convert",
    "ExportResult": "hub_export",
    "export": "hub_export",
    "sha256_file": "hashing",
    "CONFIG_FILE": "layout",
    "MODEL_CARD_FILE": "layout",
    "WEIGHTS_FILE": "layout",
    "MirrorResult": "mirror",
    "mirror": "mirror",
    "FetchResult": "sources",
    "WeightsNotFoundError": "sources",
    "fetch_weights": "sources",
    "fetch_weights_report": "sources",
    "DownloadReport": "transfer",
    "ImportResult": "transfer",
    "download": "transfer",
    "import_files": "transfer",
}

__all__ = [
    "CONFIG_FILE",
    "MODEL_CARD_FILE",
    "WEIGHTS_FILE",
    "DownloadReport",
    "ExportResult",
    "FetchResult",
    "ImportResult",
    "MirrorResult",
    "WeightsNotFoundError",
    "download",
    "export",
    "fetch_weights",
    "fetch_weights_report",
    "import_files",
    "load_state_dict_strict",
    "mirror",
    "read_safetensors",
    "read_state_dict",
    "read_upstream_checkpoint",
    "save_safetensors",
    "sha256_file",
    "upstream_to_zoo",
    "zoo_to_upstream",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
