"""Shared pieces of the weights tests: small checkpoints in the exact upstream format, index entries for them,
and the worker used by the multi-process download test.

The small checkpoints are real mmaction2-format files (``torch.save({'meta', 'state_dict'})`` with upstream key
names, renamed ``<stem>-<sha256[:8]>.pth`` by ``upstream_checkpoints.save_published``) holding only the stem
and the classifier, with random values: the download / verification / cache machinery does not depend on the
model size, and the full-size R50 file (~130 MB) is used only where a whole model must load.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import torch
from safetensors import safe_open
from upstream_checkpoints import save_published

from slowonly_zoo.index import Checkpoint, ModelEntry, get_model_info, register_model_entry

BASE_MODEL = "slowonly_r50_8x8x1_k400"
UPSTREAM = "https://download.openmmlab.com/mmaction/recognition/slowonly"
_counter = itertools.count()


def tiny_upstream_state_dict(seed: int, num_classes: int = 5) -> dict[str, torch.Tensor]:
    """Upstream-named stem + BN + classifier tensors (a subset of a SlowOnly state dict), randomised."""
    g = torch.Generator().manual_seed(seed)
    c = 8
    return {
        "backbone.conv1.conv.weight": torch.randn(c, 3, 1, 7, 7, generator=g),
        "backbone.conv1.bn.weight": torch.rand(c, generator=g),
        "backbone.conv1.bn.bias": torch.randn(c, generator=g),
        "backbone.conv1.bn.running_mean": torch.randn(c, generator=g),
        "backbone.conv1.bn.running_var": torch.rand(c, generator=g) + 0.5,
        "backbone.conv1.bn.num_batches_tracked": torch.tensor(1000 + seed, dtype=torch.int64),
        "cls_head.fc_cls.weight": torch.randn(num_classes, c, generator=g),
        "cls_head.fc_cls.bias": torch.randn(num_classes, generator=g),
    }


def write_tiny_checkpoint(directory: Path, seed: int, stem: str | None = None) -> Path:
    """Write a small upstream-format checkpoint named ``<stem>-<sha256[:8]>.pth``; return its path."""
    stem = stem or f"slowonly_test_r50_8x8x1_seed{seed}_20240101"
    return save_published(tiny_upstream_state_dict(seed), Path(directory), stem)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file, read with safetensors itself (not the package's reader)."""
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open is no dict


def upstream_url(filename: str) -> str:
    """Where upstream would publish ``filename`` (the real host; mirrors replace its prefix)."""
    stem = filename.rsplit("-", 1)[0]
    return f"{UPSTREAM}/{stem}/{filename}"


def make_entry(
    checkpoint_file: Path,
    *,
    url: str | None = None,
    hf_hub_id: str | None = None,
    name: str | None = None,
    register: bool = True,
) -> ModelEntry:
    """An index entry (a copy of the R50 8x8x1 K400 entry) whose checkpoint is ``checkpoint_file``'s name and
    hash prefix, under a fresh unique name; registered in the index unless ``register=False``."""
    filename = checkpoint_file.name
    prefix = filename.rsplit("-", 1)[1].removesuffix(".pth")
    base = get_model_info(BASE_MODEL)
    entry = dataclasses.replace(
        base,
        name=name or f"test_weights_{os.getpid()}_{next(_counter)}",
        aliases=(),
        checkpoint=Checkpoint(
            url=url or upstream_url(filename), filename=filename, sha256_prefix=prefix, hf_hub_id=hf_hub_id
        ),
    )
    return register_model_entry(entry) if register else entry


def fetch_in_child(entry: ModelEntry, barrier, results) -> None:  # runs in a spawned process
    """Wait for all workers, then fetch ``entry``; report (pid, from_cache, path, sha256 recorded)."""
    from slowonly_zoo.weights.sources import fetch_weights_report

    torch.set_num_threads(1)
    try:
        barrier.wait(timeout=120)
        result = fetch_weights_report(entry, progress=False)
        results.put((os.getpid(), result.from_cache, str(result.path), result.record.sha256))
    except BaseException as exc:  # report instead of leaving the parent waiting
        results.put((os.getpid(), "error", f"{type(exc).__name__}: {exc}", None))
        raise
