"""Reading and writing weight files: upstream ``.pth`` checkpoints, this package's ``.safetensors``, export folders.

Upstream files are read with ``torch.load(weights_only=True)`` only; a file that needs arbitrary unpickling is
refused. Converted files are safetensors (no code runs on load, memory-mapped).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .convert import upstream_to_zoo

EXPORT_WEIGHTS_FILE = "model.safetensors"
"""The weights file inside an export folder (and a Hugging Face Hub repository)."""


class UnsafeCheckpointError(RuntimeError):
    """A ``.pth`` file holds objects that only arbitrary unpickling could restore; it is not loaded."""


def read_upstream_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an mmaction2 checkpoint (``{'meta', 'state_dict'}`` or a bare state dict) into this package's layout."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path} holds more than tensors and plain values, so it would need arbitrary unpickling to load; "
            "slowonly-zoo refuses that. Re-save its state_dict with torch.save(ckpt['state_dict'], ...) in a "
            f"trusted environment. (torch said: {str(err).splitlines()[0]})"
        ) from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a SlowOnly checkpoint: expected a state dict of tensors")
    return upstream_to_zoo(obj)


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (memory-mapped) into a state dict on the CPU."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return dict(handle.metadata() or {})


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> None:
    """Write a zoo-layout state dict as safetensors with string metadata."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    save_file(tensors, str(path), metadata={str(k): str(v) for k, v in metadata.items()})


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights in this package's layout from an upstream ``.pth``, a ``.safetensors`` file or an export folder."""
    path = Path(path)
    if path.is_dir():
        path = path / EXPORT_WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        state_dict = read_safetensors(path)
        if any(key.startswith(("cls_head.", "backbone.conv1.")) for key in state_dict):
            state_dict = upstream_to_zoo(state_dict)
        return state_dict
    return read_upstream_checkpoint(path)
