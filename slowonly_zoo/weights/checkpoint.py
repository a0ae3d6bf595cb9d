"""Reading and writing weight files: upstream ``.pth`` checkpoints, this package's ``.safetensors``, export folders.

Upstream files are read with ``torch.load(weights_only=True)`` only; a file that needs arbitrary unpickling is
refused. Converted files are safetensors (no code runs on load, memory-mapped).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from ..errors import CheckpointMismatchError, UnsafeCheckpointError
from .convert import upstream_to_zoo
from .file_checks import check_torch_file, damaged, require_regular_file
from .layout import WEIGHTS_FILE, read_safetensors_metadata

CLASS_NAMES_METADATA_KEY = "slowonly_zoo.class_names"
"""The safetensors metadata key holding the class names of a checkpoint's head, as a JSON list of strings (a
``.pth`` file keeps the same list under ``meta['class_names']``)."""

NUM_CLASSES_METADATA_KEY = "num_classes"
"""The safetensors metadata key (and ``.pth`` ``meta`` key) holding the head size a fine-tuned checkpoint was
trained with, as written by :mod:`slowonly_zoo.training.checkpoints`; ``create_model`` builds that head when no
``num_classes`` is given."""


@dataclass(frozen=True)
class WeightsFile:
    """What a weights file holds: the state dict in this package's layout and, when it records them, the class
    names of its head and the head size it was trained with (None otherwise)."""

    state_dict: dict[str, torch.Tensor]
    class_names: tuple[str, ...] | None = None
    num_classes: int | None = None


#: Checkpoint formats of the index (``Checkpoint.format``) -> the file ending that selects their reader.
FORMAT_SUFFIXES = {
    "mmaction2-pth": ".pth",
    "pytorchvideo-pyth": ".pyth",
    "pyslowfast-pyth": ".pyth",
    "caffe2-pkl": ".pkl",
}


def read_upstream_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an upstream checkpoint into this package's layout: an mmaction2 ``.pth`` (``{'meta', 'state_dict'}`` or a
    bare state dict), or FAIR's ``.pyth`` (pytorchvideo / PySlowFast) and Caffe2 ``.pkl`` (:mod:`.fair`)."""
    path = Path(path)
    fair = _read_fair(path)
    return fair.state_dict if fair is not None else _read_pth(path).state_dict


def _read_fair(path: Path) -> WeightsFile | None:
    """FAIR's files, chosen by their ending (``.pyth`` torch pickle, ``.pkl`` Caffe2 pickle); None for others."""
    from .fair import read_caffe2_checkpoint, read_fair_pyth

    if path.suffix == ".pyth":
        return WeightsFile(read_fair_pyth(path))
    if path.suffix == ".pkl":
        return WeightsFile(read_caffe2_checkpoint(path))
    return None


def _read_pth(path: Path) -> WeightsFile:
    require_regular_file(path, "checkpoint")
    check_torch_file(path)  # a text file is not "a file that needs unpickling"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, KeyError, IndexError, ValueError, OSError) as err:  # what truncation raises
        raise damaged(path, ".pth", err) from None
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path} holds more than tensors and plain values, so it would need arbitrary unpickling to load; "
            "slowonly-zoo refuses that. Re-save its state_dict with torch.save(ckpt['state_dict'], ...) in a "
            f"trusted environment. (torch said: {str(err).splitlines()[0]})"
        ) from None
    class_names = None
    num_classes = None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        meta = obj.get("meta")
        if isinstance(meta, Mapping) and meta.get("class_names") is not None:
            class_names = _class_names(meta["class_names"], path, "meta['class_names']")
        if isinstance(meta, Mapping) and meta.get(NUM_CLASSES_METADATA_KEY) is not None:
            num_classes = _num_classes(meta[NUM_CLASSES_METADATA_KEY], path, f"meta[{NUM_CLASSES_METADATA_KEY!r}]")
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a SlowOnly checkpoint: expected a state dict of tensors")
    return WeightsFile(upstream_to_zoo(obj), class_names, num_classes)


def _num_classes(value: object, path: Path, where: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise CheckpointMismatchError(f"{path}: {where} must be a non-negative integer; fix it or remove the entry")
    return number


def _class_names(value: object, path: Path, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise CheckpointMismatchError(
            f"{path}: {where} must be a list of class-name strings; rewrite the file with a JSON list there, "
            "or remove the entry"
        )
    return tuple(value)


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (memory-mapped) into a state dict on the CPU; a damaged or truncated one (a header
    that does not describe the bytes that follow) is a ``WeightsFileError`` naming it."""
    path = require_regular_file(path, ".safetensors file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as err:  # noqa: BLE001 - safetensors raises its own SafetensorError (and OSError) for damage
        raise damaged(path, ".safetensors", err) from None


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> None:
    """Write a zoo-layout state dict as safetensors with string metadata, to ``path`` itself.

    Serialised in memory and written here, not with ``safetensors.torch.save_file``: that writes a ``.tmpXXXXXX``
    of its own beside ``path`` (safetensors 0.4+), which a killed process leaves behind under a name no sweep can
    tell from a user's file; callers pass a temporary from :mod:`slowonly_zoo._fileio`, whose names it can."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    data = save_bytes(tensors, metadata={str(k): str(v) for k, v in metadata.items()})
    with open(path, "wb") as fh:
        fh.write(data)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights in this package's layout from an upstream ``.pth`` (FAIR: ``.pyth``, ``.pkl``), a
    ``.safetensors`` file or an export folder."""
    return read_weights_file(path).state_dict


def read_weights_file(path: str | Path) -> WeightsFile:
    """:func:`read_state_dict` plus the class names the file records (:data:`CLASS_NAMES_METADATA_KEY` in a
    safetensors header, ``meta['class_names']`` in a ``.pth``), read in the same pass."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    require_regular_file(path)
    if path.suffix == ".safetensors":
        state_dict = read_safetensors(path)
        if any(key.startswith(("cls_head.", "backbone.conv1.")) for key in state_dict):
            state_dict = upstream_to_zoo(state_dict)
        metadata = read_safetensors_metadata(path)
        raw = metadata.get(CLASS_NAMES_METADATA_KEY)
        names = None if raw is None else _class_names(raw, path, f"metadata {CLASS_NAMES_METADATA_KEY!r}")
        raw_classes = metadata.get(NUM_CLASSES_METADATA_KEY)
        where = f"metadata {NUM_CLASSES_METADATA_KEY!r}"
        num_classes = None if raw_classes is None else _num_classes(raw_classes, path, where)
        return WeightsFile(state_dict, names, num_classes)
    return _read_fair(path) or _read_pth(path)
