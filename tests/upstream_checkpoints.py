"""Write checkpoint files in the exact upstream format, for the tests to load, serve and import.

What mmaction2 publishes (fact sheet section 6): ``torch.save({'meta': {...}, 'state_dict': {...}})`` with
upstream key names and no ``optimizer``, renamed ``<stem>-<first 8 hex of the file's sha256>.pth``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from reference import randomize_

from slowonly_zoo.factory import build_architecture
from slowonly_zoo.index import ModelEntry, get_model_info
from slowonly_zoo.weights.convert import zoo_to_upstream
from slowonly_zoo.weights.hashing import sha256_file


def save_published(upstream_state_dict: dict[str, torch.Tensor], directory: Path, stem: str) -> Path:
    """Save like mmcv's save_checkpoint + publish_model.py: ``{'meta', 'state_dict'}``, then the sha256 suffix."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{stem}.pth"
    meta = {
        "mmcv_version": "1.1.1",
        "time": time.asctime(),
        "epoch": 256,
        "iter": 1000,
        "mmaction_version": "0.7.0+abcdef0",
        "config": "model = dict(type='Recognizer3D')\n",
    }
    torch.save({"meta": meta, "state_dict": upstream_state_dict}, tmp)
    final = directory / f"{stem}-{sha256_file(tmp)[:8]}.pth"
    tmp.rename(final)
    return final


def randomized_upstream_state_dict(entry: ModelEntry | str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomised state dict of ``entry``'s architecture, in upstream key layout and order."""
    entry = get_model_info(entry) if isinstance(entry, str) else entry
    model = randomize_(build_architecture(entry), seed)
    return zoo_to_upstream(model.state_dict())


def write_upstream_checkpoint(directory: Path, entry: ModelEntry | str, seed: int = 0) -> Path:
    """Write a randomised checkpoint of ``entry``'s architecture, named like the upstream file but with the
    sha256 prefix of *these* bytes (so it verifies as a correctly named upstream file would)."""
    entry = get_model_info(entry) if isinstance(entry, str) else entry
    stem = entry.checkpoint.filename.rsplit("-", 1)[0] if entry.checkpoint else entry.name
    return save_published(randomized_upstream_state_dict(entry, seed), Path(directory), stem)
