"""torch.distributed for the evaluation loop: joining ``torchrun``'s process group, the small collective messages
between ranks, and merging every rank's records into one score table. Each rank's device is chosen by
:func:`slowonly_zoo.runtime.resolve_device` (a bare ``cuda`` is ``cuda:$LOCAL_RANK``).

Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) the process group uses NCCL on CUDA and gloo on CPU; the
long waits between ranks run on a gloo group with a timeout of ``SLOWONLY_ZOO_DIST_TIMEOUT`` seconds (default 21600).
In a plain run everything here is a no-op single-process context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from .. import config
from .scores import SCORES_FILE, ScoreTable, read_records, read_scores, write_scores

__all__ = ["DistContext", "merge_records", "setup_distributed"]


@dataclass
class DistContext:
    """This process's place among the ``torchrun`` ranks (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None
    """A gloo process group for the control messages (None: the default group, or not distributed)."""
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier(group=self.group)

    def all_true(self, flag: bool) -> bool:
        """True on every rank iff ``flag`` is True on every rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([0 if flag else 1], dtype=torch.int64)
        torch.distributed.all_reduce(t, group=self.group)
        return int(t.item()) == 0

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t, group=self.group)
        return float(t.item())

    def close(self) -> None:
        if self.initialized_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_distributed(device: torch.device) -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (env:// rendezvous), else a single-process context."""
    world = _env_world_size()
    if world <= 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return DistContext()
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run a single process")
    timeout = timedelta(seconds=config.dist_timeout())
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timeout)
        initialized_here = True
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        group=group,
        initialized_here=initialized_here,
    )


def merge_records(ctx: DistContext, out_dir: Path, num_selected: int) -> tuple[Path, ScoreTable]:
    """Rank 0 merges every rank's record files in ``out_dir`` into ``scores.npz`` (the first ``num_selected``
    videos of the list, each exactly once); then every rank reads it. Returns its path and the table."""
    scores_path = out_dir / SCORES_FILE
    if ctx.rank == 0:
        records = read_records(out_dir)
        missing = [i for i in range(num_selected) if i not in records]
        if missing:
            raise RuntimeError(
                f"{len(missing)} videos have no recorded result (first: annotation index {missing[0]}); "
                f"the record files in {out_dir} are incomplete. Rerun the same command to finish them."
            )
        table = ScoreTable.from_records(records[i] for i in range(num_selected))
        write_scores(scores_path, table)
    ctx.barrier()
    return scores_path, read_scores(scores_path)
