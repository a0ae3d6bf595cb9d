"""What the weight files this package writes look like: file names, header metadata keys, and the one reader of
that metadata.

An export folder (``slowonly-zoo export``, and a Hugging Face Hub repository holding one) is
``{WEIGHTS_FILE, CONFIG_FILE, MODEL_CARD_FILE}``; every converted ``.safetensors`` (in the cache or an export)
carries the string metadata keys below in its header. Importing this module does not import torch.
"""

from __future__ import annotations

import os

__all__ = [
    "CONFIG_FILE",
    "META_CONVERTER_VERSION",
    "META_NAME",
    "META_SOURCE_FILENAME",
    "META_SOURCE_SHA256",
    "MODEL_CARD_FILE",
    "WEIGHTS_FILE",
    "read_safetensors_metadata",
]

#: The weights file of an export folder and of a Hugging Face Hub repository.
WEIGHTS_FILE = "model.safetensors"
#: The JSON description beside it (architecture, labels, test protocol, source checkpoint).
CONFIG_FILE = "config.json"
#: The model card beside it.
MODEL_CARD_FILE = "README.md"

# Keys of the string metadata stored in every converted / exported .safetensors header.
META_NAME = "slowonly_zoo.name"
META_SOURCE_SHA256 = "slowonly_zoo.source_sha256"
META_SOURCE_FILENAME = "slowonly_zoo.source_filename"
META_CONVERTER_VERSION = "slowonly_zoo.converter_version"


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` header (read with ``safe_open``; no tensor is loaded).

    A file that is not safetensors raises safetensors' own error (``SafetensorError``) or ``OSError``.
    """
    from safetensors import safe_open

    # framework="numpy": only the header is read, and torch is not imported for it (``slowonly-zoo list``).
    with safe_open(str(path), framework="numpy") as handle:
        return dict(handle.metadata() or {})
