"""Learning-rate schedules of the upstream recipes, iteration by iteration.

:func:`lr_at` is the lr that mmcv 1.7.0's ``LrUpdaterHook`` subclasses (``CosineAnnealingLrUpdaterHook``,
``StepLrUpdaterHook``; mmcv 1.7.0 ``mmcv/runner/hooks/lr_updater.py``) have set on the optimizer when iteration
``iter_in_epoch`` of epoch ``epoch`` runs (both 0-based), in an ``EpochBasedRunner`` whose hooks run
``before_train_epoch`` then ``before_train_iter``:

* the *regular* lr: cosine ``min_lr + (base_lr - min_lr) * (1 + cos(pi * progress / max_progress)) / 2``, or step
  ``base_lr * gamma ** (number of milestones <= progress)`` (then ``max(lr, min_lr)``), where progress counts
  epochs when ``by_epoch`` (updated once at the start of each epoch) or global iterations otherwise (updated every
  iteration; ``max_progress = max_epochs * iters_per_epoch``; step milestones are then iterations too, as in mmcv);
* linear warmup over ``warmup_iters = warmup_epochs * iters_per_epoch`` global iterations (mmaction2's recipes give
  warmup in epochs, ``warmup_by_epoch=True``): ``regular * (1 - (1 - i / warmup_iters) * (1 - warmup_ratio))`` at
  global iteration ``i < warmup_iters``. mmcv's two branches are written differently (per iteration: regular from
  ``i >= warmup_iters``; per epoch: regular set at ``i == warmup_iters`` and kept for ``i > warmup_iters``, the lr
  set at the epoch's start or at ``i == warmup_iters`` being that epoch's regular lr) but set the same lr.

:class:`LrScheduler` applies it to a ``torch.optim.Optimizer`` every iteration and can be checkpointed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LrScheduleError
from ..index.recipes import LrPolicy

__all__ = ["LrSchedule", "LrScheduleError", "LrScheduler", "lr_at", "regular_lr"]


@dataclass(frozen=True)
class LrSchedule(LrPolicy):
    """One of mmcv's lr policies used by the SlowOnly recipes (see the module docstring for the formulas): a recipe's
    :class:`~slowonly_zoo.index.recipes.LrPolicy` (the same fields), checked, with the iteration arithmetic.

    Attributes:
        policy: ``"cosine"`` (``CosineAnnealingLrUpdaterHook``) or ``"step"`` (``StepLrUpdaterHook``).
        by_epoch: update the regular lr once per epoch (True) or every iteration (False).
        steps: step milestones (``policy="step"``), in epochs when ``by_epoch``, in global iterations otherwise.
        gamma: step decay factor.
        min_lr: cosine's final lr; for step, the floor of the decayed lr.
        warmup: ``"linear"`` or ``None``.
        warmup_epochs: warmup length in epochs (mmcv's ``warmup_iters`` with ``warmup_by_epoch=True``); a fraction
            of an epoch is allowed when it is a whole number of iterations.
        warmup_ratio: the warmup starts at ``warmup_ratio * regular lr``.
    """

    def __post_init__(self) -> None:
        if self.policy not in ("cosine", "step"):
            raise LrScheduleError(f"lr policy must be 'cosine' or 'step', got {self.policy!r}")
        if self.policy == "step" and not self.steps:
            raise LrScheduleError("a step schedule needs at least one milestone in `steps`, e.g. steps=(90, 130)")
        if any(int(s) != s or s <= 0 for s in self.steps):
            raise LrScheduleError(f"step milestones must be positive integers, got {self.steps}")
        if list(self.steps) != sorted(self.steps):
            raise LrScheduleError(f"step milestones must be increasing, got {self.steps}")
        if self.warmup not in (None, "linear"):
            raise LrScheduleError(f"warmup must be 'linear' or None, got {self.warmup!r}")
        if self.warmup is not None:
            if not self.warmup_epochs > 0:
                raise LrScheduleError(f"a linear warmup needs warmup_epochs > 0, got {self.warmup_epochs}")
            if not 0 < self.warmup_ratio <= 1:
                raise LrScheduleError(f"warmup_ratio must be in (0, 1], got {self.warmup_ratio}")

    @classmethod
    def from_policy(cls, policy: LrPolicy) -> LrSchedule:
        """The schedule of a recipe's lr policy (``entry.train_recipe.schedule``; the same fields, checked here)."""
        return cls(**dataclasses.asdict(policy))

    def warmup_iters(self, iters_per_epoch: int) -> int:
        """Warmup length in global iterations (0 without warmup)."""
        if self.warmup is None:
            return 0
        total = self.warmup_epochs * iters_per_epoch
        if total != int(total):
            raise LrScheduleError(
                f"warmup of {self.warmup_epochs} epochs is {total} iterations at {iters_per_epoch} iterations per "
                "epoch; choose warmup_epochs so that it is a whole number of iterations"
            )
        return int(total)


def _check_position(epoch: int, iter_in_epoch: int, iters_per_epoch: int, max_epochs: int) -> None:
    if iters_per_epoch <= 0 or max_epochs <= 0:
        raise LrScheduleError(
            f"iters_per_epoch and max_epochs must be positive, got {iters_per_epoch} and {max_epochs}"
        )
    if not 0 <= epoch < max_epochs or not 0 <= iter_in_epoch < iters_per_epoch:
        raise LrScheduleError(
            f"iteration {iter_in_epoch} of epoch {epoch} is outside a run of {max_epochs} epochs x "
            f"{iters_per_epoch} iterations (both are 0-based)"
        )


def regular_lr(schedule: LrSchedule, base_lr: float, progress: int, max_progress: int) -> float:
    """The lr without warmup at ``progress`` (epochs or global iterations) of ``max_progress``.

    mmcv 1.7.0 ``CosineAnnealingLrUpdaterHook.get_lr`` / ``StepLrUpdaterHook.get_lr``.
    """
    if schedule.policy == "cosine":
        # annealing_cos(start, end, factor) = end + 0.5 * (start - end) * (cos(pi * factor) + 1)
        factor = progress / max_progress
        return schedule.min_lr + 0.5 * (base_lr - schedule.min_lr) * (math.cos(math.pi * factor) + 1)
    exponent = len(schedule.steps)
    for i, milestone in enumerate(schedule.steps):
        if progress < milestone:
            exponent = i
            break
    return max(base_lr * schedule.gamma**exponent, schedule.min_lr)


def lr_at(
    schedule: LrSchedule, base_lr: float, *, epoch: int, iter_in_epoch: int, iters_per_epoch: int, max_epochs: int
) -> float:
    """The lr mmcv 1.7.0's lr hook has set when iteration ``iter_in_epoch`` of ``epoch`` runs (both 0-based)."""
    _check_position(epoch, iter_in_epoch, iters_per_epoch, max_epochs)
    cur_iter = epoch * iters_per_epoch + iter_in_epoch
    warmup_iters = schedule.warmup_iters(iters_per_epoch)
    if schedule.by_epoch:
        regular = regular_lr(schedule, base_lr, epoch, max_epochs)
    else:
        regular = regular_lr(schedule, base_lr, cur_iter, max_epochs * iters_per_epoch)
    if schedule.warmup is None or cur_iter >= warmup_iters:
        return regular
    k = (1 - cur_iter / warmup_iters) * (1 - schedule.warmup_ratio)
    return regular * (1 - k)


class LrScheduler:
    """Sets the lr of every param group of ``optimizer`` from :func:`lr_at`, one iteration at a time.

    Each group's base lr is its ``initial_lr`` (set from its current ``lr`` the first time, as mmcv's
    ``LrUpdaterHook.before_run`` does). Call :meth:`step` before each optimizer step: it applies the lr of the next
    iteration and advances; :meth:`apply` sets a given iteration. :meth:`state_dict` / :meth:`load_state_dict` save
    and restore the position and base lrs (resuming continues with the next iteration).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, schedule: LrSchedule, *, iters_per_epoch: int, max_epochs: int
    ) -> None:
        _check_position(0, 0, iters_per_epoch, max_epochs)
        schedule.warmup_iters(iters_per_epoch)  # fails now, not mid-run, on a fractional warmup
        self.optimizer = optimizer
        self.schedule = schedule
        self.iters_per_epoch = int(iters_per_epoch)
        self.max_epochs = int(max_epochs)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.next_iter = 0
        """Global index of the iteration the next :meth:`step` sets up."""

    @property
    def total_iters(self) -> int:
        return self.iters_per_epoch * self.max_epochs

    def apply(self, epoch: int, iter_in_epoch: int) -> float:
        """Set the lr of iteration ``iter_in_epoch`` of ``epoch``; returns the first group's lr."""
        lrs = [
            lr_at(
                self.schedule,
                base_lr,
                epoch=epoch,
                iter_in_epoch=iter_in_epoch,
                iters_per_epoch=self.iters_per_epoch,
                max_epochs=self.max_epochs,
            )
            for base_lr in self.base_lrs
        ]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.next_iter = epoch * self.iters_per_epoch + iter_in_epoch + 1
        return lrs[0]

    def step(self) -> float:
        """Set the lr of the next iteration and advance; returns the first group's lr."""
        if self.next_iter >= self.total_iters:
            raise LrScheduleError(
                f"the schedule has {self.total_iters} iterations ({self.max_epochs} epochs x "
                f"{self.iters_per_epoch}); it has no iteration {self.next_iter}"
            )
        epoch, iter_in_epoch = divmod(self.next_iter, self.iters_per_epoch)
        return self.apply(epoch, iter_in_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "next_iter": self.next_iter,
            "base_lrs": list(self.base_lrs),
            "iters_per_epoch": self.iters_per_epoch,
            "max_epochs": self.max_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s position and base lrs (the run length must be the same)."""
        if (int(state["iters_per_epoch"]), int(state["max_epochs"])) != (self.iters_per_epoch, self.max_epochs):
            raise LrScheduleError(
                f"the saved schedule is {state['max_epochs']} epochs x {state['iters_per_epoch']} iterations but this "
                f"one is {self.max_epochs} x {self.iters_per_epoch}; resume with the same data and epochs"
            )
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise LrScheduleError(
                f"the saved schedule has {len(state['base_lrs'])} param groups, the optimizer has {len(self.base_lrs)}"
            )
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["initial_lr"] = lr
        self.next_iter = int(state["next_iter"])
